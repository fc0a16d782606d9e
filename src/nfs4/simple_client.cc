#include "nfs4/simple_client.h"

#include <cstring>

namespace loom::nfs4::simple {

nfs_argop4 PutRootFh() { return Op(OP_PUTROOTFH); }
nfs_argop4 GetFh() { return Op(OP_GETFH); }
nfs_argop4 SaveFh() { return Op(OP_SAVEFH); }
nfs_argop4 RestoreFh() { return Op(OP_RESTOREFH); }
nfs_argop4 Lookupp() { return Op(OP_LOOKUPP); }
nfs_argop4 Commit() {
  auto a = Op(OP_COMMIT);
  a.opcommit = std::make_unique<COMMIT4args>();
  return a;
}

nfs_argop4 PutFh(const Bytes& fh) {
  auto a = Op(OP_PUTFH);
  a.opputfh = std::make_unique<PUTFH4args>();
  a.opputfh->object = fh;
  return a;
}

nfs_argop4 Lookup(const std::string& name) {
  auto a = Op(OP_LOOKUP);
  a.oplookup = std::make_unique<LOOKUP4args>();
  a.oplookup->objname = Bytes::Copy(name);
  return a;
}

nfs_argop4 Getattr(std::vector<uint32_t> bits) {
  auto a = Op(OP_GETATTR);
  a.opgetattr = std::make_unique<GETATTR4args>();
  for (uint32_t b : bits) {
    if (a.opgetattr->attr_request.size() <= b / 32) a.opgetattr->attr_request.resize(b / 32 + 1);
    a.opgetattr->attr_request[b / 32] |= 1u << (b % 32);
  }
  return a;
}

namespace {
fattr4 ModeAttr(uint32_t mode) {
  fattr4 f;
  f.attrmask = {0, 1u << (FATTR4_MODE - 32)};
  xdr::Encoder e;
  e.u32(mode);
  f.attr_vals = Bytes::Copy(e.Flatten());
  return f;
}
}  // namespace

nfs_argop4 Mkdir(const std::string& name, uint32_t mode) {
  auto a = Op(OP_CREATE);
  a.opcreate = std::make_unique<CREATE4args>();
  a.opcreate->objtype.type = NF4DIR;
  a.opcreate->objname = Bytes::Copy(name);
  a.opcreate->createattrs = ModeAttr(mode);
  return a;
}

nfs_argop4 Symlink(const std::string& name, const std::string& target) {
  auto a = Op(OP_CREATE);
  a.opcreate = std::make_unique<CREATE4args>();
  a.opcreate->objtype.type = NF4LNK;
  a.opcreate->objtype.linkdata = Bytes::Copy(target);
  a.opcreate->objname = Bytes::Copy(name);
  return a;
}

nfs_argop4 Remove(const std::string& name) {
  auto a = Op(OP_REMOVE);
  a.opremove = std::make_unique<REMOVE4args>();
  a.opremove->target = Bytes::Copy(name);
  return a;
}

nfs_argop4 Rename(const std::string& from, const std::string& to) {
  auto a = Op(OP_RENAME);
  a.oprename = std::make_unique<RENAME4args>();
  a.oprename->oldname = Bytes::Copy(from);
  a.oprename->newname = Bytes::Copy(to);
  return a;
}

nfs_argop4 Link(const std::string& name) {
  auto a = Op(OP_LINK);
  a.oplink = std::make_unique<LINK4args>();
  a.oplink->newname = Bytes::Copy(name);
  return a;
}

nfs_argop4 Readdir(uint64_t cookie, uint32_t maxcount, std::vector<uint32_t> bits) {
  auto a = Op(OP_READDIR);
  a.opreaddir = std::make_unique<READDIR4args>();
  a.opreaddir->cookie = cookie;
  a.opreaddir->dircount = maxcount;
  a.opreaddir->maxcount = maxcount;
  a.opreaddir->attr_request = std::move(bits);
  return a;
}

nfs_argop4 Open(const std::string& owner, const std::string& name, uint32_t access, bool create,
                bool guarded, uint32_t deny) {
  auto a = Op(OP_OPEN);
  a.opopen = std::make_unique<OPEN4args>();
  OPEN4args& o = *a.opopen;
  o.share_access = access;
  o.share_deny = deny;
  o.owner.owner = Bytes::Copy(owner);
  o.openhow.opentype = create ? OPEN4_CREATE : OPEN4_NOCREATE;
  o.openhow.how.mode = guarded ? GUARDED4 : UNCHECKED4;
  o.openhow.how.createattrs = ModeAttr(0644);
  o.claim.claim = CLAIM_NULL;
  o.claim.file = Bytes::Copy(name);
  return a;
}

nfs_argop4 LayoutGet(const stateid4& sid, layoutiomode4 mode, uint32_t maxcount) {
  auto a = Op(OP_LAYOUTGET);
  a.oplayoutget = std::make_unique<LAYOUTGET4args>();
  auto& l = *a.oplayoutget;
  l.loga_layout_type = LAYOUT4_FLEX_FILES;
  l.loga_iomode = mode;
  l.loga_offset = 0;
  l.loga_length = NFS4_UINT64_MAX;
  l.loga_minlength = 4096;
  l.loga_stateid = sid;
  l.loga_maxcount = maxcount;
  return a;
}

nfs_argop4 LayoutCommit(const stateid4& sid, uint64_t last_offset) {
  auto a = Op(OP_LAYOUTCOMMIT);
  a.oplayoutcommit = std::make_unique<LAYOUTCOMMIT4args>();
  auto& c = *a.oplayoutcommit;
  c.loca_offset = 0;
  c.loca_length = last_offset + 1;
  c.loca_stateid = sid;
  c.loca_last_write_offset.no_newoffset = true;
  c.loca_last_write_offset.no_offset = last_offset;
  c.loca_layoutupdate.lou_type = LAYOUT4_FLEX_FILES;
  return a;
}

nfs_argop4 LayoutReturn(const stateid4& sid, layoutiomode4 mode) {
  auto a = Op(OP_LAYOUTRETURN);
  a.oplayoutreturn = std::make_unique<LAYOUTRETURN4args>();
  auto& r = *a.oplayoutreturn;
  r.lora_layout_type = LAYOUT4_FLEX_FILES;
  r.lora_iomode = mode;
  r.lora_layoutreturn.lr_returntype = LAYOUTRETURN4_FILE;
  r.lora_layoutreturn.lr_layout.lrf_offset = 0;
  r.lora_layoutreturn.lr_layout.lrf_length = NFS4_UINT64_MAX;
  r.lora_layoutreturn.lr_layout.lrf_stateid = sid;
  return a;
}

nfs_argop4 OpenFh(const std::string& owner, uint32_t access) {
  auto a = Op(OP_OPEN);
  a.opopen = std::make_unique<OPEN4args>();
  a.opopen->share_access = access;
  a.opopen->owner.owner = Bytes::Copy(owner);
  a.opopen->openhow.opentype = OPEN4_NOCREATE;
  a.opopen->claim.claim = CLAIM_FH;
  return a;
}

nfs_argop4 Close(const stateid4& s) {
  auto a = Op(OP_CLOSE);
  a.opclose = std::make_unique<CLOSE4args>();
  a.opclose->open_stateid = s;
  return a;
}

nfs_argop4 Read(const stateid4& s, uint64_t off, uint32_t count) {
  auto a = Op(OP_READ);
  a.opread = std::make_unique<READ4args>();
  a.opread->stateid = s;
  a.opread->offset = off;
  a.opread->count = count;
  return a;
}

nfs_argop4 WriteView(const stateid4& s, uint64_t off, const void* data, uint32_t len, stable_how4 how) {
  auto a = Op(OP_WRITE);
  a.opwrite = std::make_unique<WRITE4args>();
  a.opwrite->stateid = s;
  a.opwrite->offset = off;
  a.opwrite->stable = how;
  a.opwrite->data = Bytes::View(data, len, nullptr);
  return a;
}

nfs_argop4 Write(const stateid4& s, uint64_t off, const std::string& data, stable_how4 how) {
  auto a = WriteView(s, off, nullptr, 0, how);
  a.opwrite->data = Bytes::Copy(data);
  return a;
}

nfs_argop4 Seek(const stateid4& s, uint64_t off) {
  auto a = Op(OP_SEEK);
  a.opseek = std::make_unique<SEEK4args>();
  a.opseek->sa_stateid = s;
  a.opseek->sa_offset = off;
  a.opseek->sa_what = NFS4_CONTENT_DATA;
  return a;
}

nfs_argop4 Allocate(const stateid4& s, uint64_t off, uint64_t len) {
  auto a = Op(OP_ALLOCATE);
  a.opallocate = std::make_unique<ALLOCATE4args>();
  a.opallocate->aa_stateid = s;
  a.opallocate->aa_offset = off;
  a.opallocate->aa_length = len;
  return a;
}

nfs_argop4 ReadPlus(const stateid4& s, uint64_t off, uint32_t count) {
  auto a = Op(OP_READ_PLUS);
  a.opread_plus = std::make_unique<READ_PLUS4args>();
  a.opread_plus->rpa_stateid = s;
  a.opread_plus->rpa_offset = off;
  a.opread_plus->rpa_count = count;
  return a;
}

nfs_argop4 AccessOp(uint32_t bits) {
  auto a = Op(OP_ACCESS);
  a.opaccess = std::make_unique<ACCESS4args>();
  a.opaccess->access = bits;
  return a;
}

nfs_argop4 Secinfo(const std::string& name) {
  auto a = Op(OP_SECINFO);
  a.opsecinfo = std::make_unique<SECINFO4args>();
  a.opsecinfo->name = Bytes::Copy(name);
  return a;
}

nfs_argop4 SecinfoParent() {
  auto a = Op(OP_SECINFO_NO_NAME);
  a.opsecinfo_no_name = std::make_unique<secinfo_style4>(SECINFO_STYLE4_PARENT);
  return a;
}

nfs_argop4 SetSize(const stateid4& s, uint64_t size) {
  auto a = Op(OP_SETATTR);
  a.opsetattr = std::make_unique<SETATTR4args>();
  a.opsetattr->stateid = s;
  a.opsetattr->obj_attributes.attrmask = {1u << FATTR4_SIZE};
  xdr::Encoder e;
  e.u64(size);
  a.opsetattr->obj_attributes.attr_vals = Bytes::Copy(e.Flatten());
  return a;
}

nfs_argop4 Lock(const stateid4& open, const std::string& lock_owner, bool write, uint64_t off,
                uint64_t len) {
  auto a = Op(OP_LOCK);
  a.oplock = std::make_unique<LOCK4args>();
  a.oplock->locktype = write ? WRITE_LT : READ_LT;
  a.oplock->offset = off;
  a.oplock->length = len;
  a.oplock->locker.new_lock_owner = true;
  a.oplock->locker.open_owner.open_stateid = open;
  a.oplock->locker.open_owner.lock_owner.owner = Bytes::Copy(lock_owner);
  return a;
}

nfs_argop4 Lockt(const std::string& lock_owner, bool write, uint64_t off, uint64_t len) {
  auto a = Op(OP_LOCKT);
  a.oplockt = std::make_unique<LOCKT4args>();
  a.oplockt->locktype = write ? WRITE_LT : READ_LT;
  a.oplockt->offset = off;
  a.oplockt->length = len;
  a.oplockt->owner.owner = Bytes::Copy(lock_owner);
  return a;
}

nfs_argop4 Locku(const stateid4& lock, uint64_t off, uint64_t len) {
  auto a = Op(OP_LOCKU);
  a.oplocku = std::make_unique<LOCKU4args>();
  a.oplocku->locktype = WRITE_LT;
  a.oplocku->lock_stateid = lock;
  a.oplocku->offset = off;
  a.oplocku->length = len;
  return a;
}

Result<COMPOUND4res> V4Client::RawBytes(const std::string& args) {
  auto r = rpc_->CallSync(NFS4_PROGRAM, NFS_V4, 1, cred,
                          [&](xdr::Encoder& e) { e.raw(args.data(), args.size()); });
  if (!r.ok()) return r.status();
  COMPOUND4res res;
  xdr::Decoder d = r->results();
  if (!xdr_decode(d, res)) return Status::Invalid("undecodable COMPOUND4res");
  return res;
}

Result<COMPOUND4res> V4Client::Raw(std::vector<nfs_argop4> ops, uint32_t minor) {
  COMPOUND4args args;
  args.minorversion = minor;
  args.argarray = std::move(ops);
  xdr::Encoder e;
  xdr_encode(e, args);
  return RawBytes(e.Flatten());
}

Result<COMPOUND4res> V4Client::Call(std::vector<nfs_argop4> ops, bool cachethis) {
  seq++;
  cachethis_ = cachethis;
  return Replay(std::move(ops));
}

nfs_argop4 ExchangeId(const std::string& owner, const verifier4& verifier) {
  auto x = Op(OP_EXCHANGE_ID);
  x.opexchange_id = std::make_unique<EXCHANGE_ID4args>();
  x.opexchange_id->eia_clientowner.co_ownerid = Bytes::Copy(owner);
  x.opexchange_id->eia_clientowner.co_verifier = verifier;
  x.opexchange_id->eia_state_protect.spa_how = SP4_NONE;
  return x;
}

nfs_argop4 CreateSession(clientid4 id, sequenceid4 seq, uint32_t flags,
                         const channel_attrs4& fore, const channel_attrs4& back) {
  auto c = Op(OP_CREATE_SESSION);
  c.opcreate_session = std::make_unique<CREATE_SESSION4args>();
  auto& ca = *c.opcreate_session;
  ca.csa_clientid = id;
  ca.csa_sequence = seq;
  ca.csa_flags = flags;
  ca.csa_fore_chan_attrs = fore;
  ca.csa_back_chan_attrs = back;
  ca.csa_cb_program = 0x40000000;
  return c;
}

nfs_argop4 DestroySession(const sessionid4& s) {
  auto d = Op(OP_DESTROY_SESSION);
  d.opdestroy_session = std::make_unique<DESTROY_SESSION4args>();
  d.opdestroy_session->dsa_sessionid = s;
  return d;
}

nfs_argop4 Sequence(const sessionid4& s, sequenceid4 seq, bool cachethis) {
  auto q = Op(OP_SEQUENCE);
  q.opsequence = std::make_unique<SEQUENCE4args>();
  q.opsequence->sa_sessionid = s;
  q.opsequence->sa_sequenceid = seq;
  q.opsequence->sa_slotid = 0;
  q.opsequence->sa_cachethis = cachethis;
  return q;
}

nfs_argop4 ReclaimComplete(bool one_fs) {
  auto rc = Op(OP_RECLAIM_COMPLETE);
  rc.opreclaim_complete = std::make_unique<RECLAIM_COMPLETE4args>();
  rc.opreclaim_complete->rca_one_fs = one_fs;
  return rc;
}

Result<COMPOUND4res> V4Client::Replay(std::vector<nfs_argop4> ops) {
  ops.insert(ops.begin(), Sequence(session, seq, cachethis_));
  return Raw(std::move(ops));
}

nfsstat4 V4Client::Setup(bool reclaim_complete) {
  std::vector<nfs_argop4> v;
  v.push_back(ExchangeId(owner_, verifier));
  auto r = Raw(std::move(v));
  if (!r.ok()) return NFS4ERR_SERVERFAULT;
  if (r->status != NFS4_OK) return r->status;
  const auto& eir = r->resarray[0].opexchange_id->eir_resok4;
  clientid = eir.eir_clientid;
  // Room for a 1 MiB WRITE or READ plus the COMPOUND around it.
  const channel_attrs4 fore{0, (1 << 20) + (64 << 10), (1 << 20) + (64 << 10), 64 << 10, 16, 8, {}};
  const channel_attrs4 back{0, 4096, 4096, 0, 2, 1, {}};
  std::vector<nfs_argop4> v2;
  v2.push_back(CreateSession(clientid, eir.eir_sequenceid, 0, fore, back));
  auto cr = Raw(std::move(v2));
  if (!cr.ok()) return NFS4ERR_SERVERFAULT;
  if (cr->status != NFS4_OK) return cr->status;
  session = cr->resarray[0].opcreate_session->csr_resok4.csr_sessionid;
  seq = 0;
  if (reclaim_complete) {
    std::vector<nfs_argop4> v3;
    v3.push_back(ReclaimComplete());
    auto rr = Call(std::move(v3));
    if (!rr.ok()) return NFS4ERR_SERVERFAULT;
    return rr->status;
  }
  return NFS4_OK;
}

}  // namespace loom::nfs4::simple
