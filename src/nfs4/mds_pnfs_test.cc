// pNFS Flexible File layouts end to end in one process (RFC 8881 §12, §18.40-18.44; RFC 8435):
// loom-mds hands out layouts over two in-process loom-ds data servers; the test then talks
// NFSv3 to the data servers itself, with the layout's synthetic ids, as a client would.
#include <thread>

#include "mds_fixture.h"
#include "nfs3/nfs3_client.h"
#include "nfs4/layouts.h"
#include "nfs4/raw_v4_client.h"
#include "nfs4/state.h"

namespace loom::nfs4 {
namespace {

nfs_argop4 GetDeviceInfo(const std::array<uint8_t, NFS4_DEVICEID4_SIZE>& id, uint32_t maxcount = 0) {
  auto a = Op(OP_GETDEVICEINFO);
  a.opgetdeviceinfo = std::make_unique<GETDEVICEINFO4args>();
  a.opgetdeviceinfo->gdia_device_id = id;
  a.opgetdeviceinfo->gdia_layout_type = LAYOUT4_FLEX_FILES;
  a.opgetdeviceinfo->gdia_maxcount = maxcount;
  a.opgetdeviceinfo->gdia_notify_types = {0x6};
  return a;
}

std::string Str(const Bytes& b) { return std::string(reinterpret_cast<const char*>(b.data), b.size); }

ff_layout4 DecodeFf(const LAYOUTGET4res& r) {
  EXPECT_EQ(r.logr_resok4.logr_layout.size(), 1u);
  ff_layout4 ff;
  if (r.logr_resok4.logr_layout.empty()) return ff;
  const layout4& l = r.logr_resok4.logr_layout[0];
  EXPECT_EQ(l.lo_offset, 0u);
  EXPECT_EQ(l.lo_length, NFS4_UINT64_MAX);
  EXPECT_EQ(l.lo_content.loc_type, LAYOUT4_FLEX_FILES);
  EXPECT_LE(l.lo_content.loc_body.size, 4096u);
  xdr::Decoder d(l.lo_content.loc_body.data, l.lo_content.loc_body.size);
  EXPECT_TRUE(xdr_decode(d, ff));
  return ff;
}

class PnfsTest : public MdsTest {
 protected:
  // A new file opened for read and write, written through the MDS; its layout of `mode`
  // taken in the OPEN compound as the Linux client does (current stateid).
  void OpenWithLayout(const std::string& name, const std::string& data, layoutiomode4 mode, Bytes* fh,
                      stateid4* open, LAYOUTGET4res* lg) {
    COMPOUND4res r;
    ASSERT_EQ(Run(Ops(PutRootFh(), Open("o", name, OPEN4_SHARE_ACCESS_BOTH, true), GetFh()), &r), NFS4_OK);
    *open = r.resarray[2].opopen->resok4.stateid;
    *fh = r.resarray[3].opgetfh->resok4.object;
    if (!data.empty()) {
      ASSERT_EQ(Run(Ops(PutFh(*fh), Write(*open, 0, data))), NFS4_OK);
    }
    ASSERT_EQ(Run(Ops(PutFh(*fh), LayoutGet(*open, mode)), &r), NFS4_OK);
    *lg = std::move(*r.resarray[2].oplayoutget);
  }
  // An NFSv3 client of data server `id` (1-based) with AUTH_SYS uid/gid.
  std::unique_ptr<nfs3::Nfs3Client> DsClient(uint32_t id, uint32_t uid, uint32_t gid) {
    auto c = nfs3::Nfs3Client::Connect(loops_->At(0), "127.0.0.1:" + std::to_string(ds_[id - 1].server->port()),
                                       rpc::Cred::Sys(uid, gid));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c.value()) : nullptr;
  }
  nfs3::nfsstat3 DsWrite(nfs3::Nfs3Client& c, const Bytes& fh, uint64_t off, const std::string& data) {
    nfs3::WRITE3args a;
    a.file.data = Bytes::Copy(Str(fh));
    a.offset = off;
    a.count = static_cast<uint32_t>(data.size());
    a.stable = nfs3::FILE_SYNC;
    a.data = Bytes::Copy(data);
    nfs3::WRITE3res r;
    Status s = c.Call(nfs3::NFSPROC3_WRITE, a, &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return r.status;
  }
  nfs3::nfsstat3 DsRead(nfs3::Nfs3Client& c, const Bytes& fh, uint64_t off, uint32_t n, std::string* out) {
    nfs3::READ3args a;
    a.file.data = Bytes::Copy(Str(fh));
    a.offset = off;
    a.count = n;
    nfs3::READ3res r;
    Status s = c.Call(nfs3::NFSPROC3_READ, a, &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (r.status == nfs3::NFS3_OK) *out = Str(r.resok.data);
    return r.status;
  }
  uint64_t SizeOf(const Bytes& fh) { return AttrOf<uint64_t>(fh, FATTR4_SIZE); }
};

TEST_F(PnfsTest, ExchangeIdAndAttributesAnnounceFlexFiles) {
  // USE_PNFS_MDS, never together with USE_NON_PNFS (Linux refuses the mount then).
  auto r = client_->Raw(Ops(ExchangeId("another", verifier4{1})));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, NFS4_OK);
  uint32_t flags = r->resarray[0].opexchange_id->eir_resok4.eir_flags;
  EXPECT_TRUE(flags & EXCHGID4_FLAG_USE_PNFS_MDS);
  EXPECT_FALSE(flags & EXCHGID4_FLAG_USE_NON_PNFS);
  COMPOUND4res g;
  ASSERT_EQ(Run(Ops(PutRootFh(), Getattr({FATTR4_FS_LAYOUT_TYPES})), &g), NFS4_OK);
  const Bytes& v = g.resarray[2].opgetattr->resok4.obj_attributes.attr_vals;
  xdr::Decoder d(v.data, v.size);
  uint32_t n = 0, t = 0;
  ASSERT_TRUE(d.u32(n) && d.u32(t));
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(t, static_cast<uint32_t>(LAYOUT4_FLEX_FILES));
}

TEST_F(PnfsTest, LayoutCarriesSyntheticIdsThatTheDataServerEnforces) {
  Bytes fh;
  stateid4 open;
  LAYOUTGET4res rw;
  OpenWithLayout("f", "hello world", LAYOUTIOMODE4_RW, &fh, &open, &rw);
  EXPECT_TRUE(rw.logr_resok4.logr_return_on_close);
  ff_layout4 ff = DecodeFf(rw);
  ASSERT_EQ(ff.ffl_mirrors.size(), 1u);
  ASSERT_EQ(ff.ffl_mirrors[0].ffm_data_servers.size(), 1u);
  const ff_data_server4& ds = ff.ffl_mirrors[0].ffm_data_servers[0];
  const uint32_t uid = static_cast<uint32_t>(std::stoul(Str(ds.ffds_user)));
  const uint32_t gid = static_cast<uint32_t>(std::stoul(Str(ds.ffds_group)));
  EXPECT_GE(uid, 0x10000000u);
  EXPECT_EQ(uid % 2, 0u);
  ASSERT_EQ(ds.ffds_fh_vers.size(), 1u);
  uint32_t ds_id = 0;
  ASSERT_TRUE(DsIdOfDevice(ds.ffds_deviceid, &ds_id));
  // The READ layout names the same data file with uid + 1.
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(fh), LayoutGet(rw.logr_resok4.logr_stateid, LAYOUTIOMODE4_READ)), &r), NFS4_OK);
  ff_layout4 rd = DecodeFf(*r.resarray[2].oplayoutget);
  ASSERT_EQ(rd.ffl_mirrors.size(), 1u);
  EXPECT_EQ(Str(rd.ffl_mirrors[0].ffm_data_servers[0].ffds_user), std::to_string(uid + 1));
  // One layout stateid per client and file: same "other", seqid one higher.
  const stateid4 s2 = r.resarray[2].oplayoutget->logr_resok4.logr_stateid;
  EXPECT_EQ(s2.other, rw.logr_resok4.logr_stateid.other);
  EXPECT_EQ(s2.seqid, rw.logr_resok4.logr_stateid.seqid + 1);

  // On the data server: the RW ids write, the READ ids read but do not write, root-less
  // strangers do nothing (ACCES, never PERM: the Linux client loops on PERM).
  auto w = DsClient(ds_id, uid, gid);
  auto ro = DsClient(ds_id, uid + 1, gid);
  auto other = DsClient(ds_id, 1000, 1000);
  const Bytes& dfh = ds.ffds_fh_vers[0];
  EXPECT_EQ(DsWrite(*w, dfh, 11, " and more"), nfs3::NFS3_OK);
  std::string got;
  EXPECT_EQ(DsRead(*ro, dfh, 0, 100, &got), nfs3::NFS3_OK);
  EXPECT_EQ(got, "hello world and more");
  EXPECT_EQ(DsWrite(*ro, dfh, 0, "X"), nfs3::NFS3ERR_ACCES);
  EXPECT_EQ(DsRead(*other, dfh, 0, 10, &got), nfs3::NFS3ERR_ACCES);

  // With an RW layout out, GETATTR's size is the data servers' (the write above, not yet
  // committed); LAYOUTCOMMIT agrees with it and never shrinks it.
  EXPECT_EQ(SizeOf(fh), 20u);
  ASSERT_EQ(Run(Ops(PutFh(fh), LayoutCommit(s2, 19)), &r), NFS4_OK);
  EXPECT_FALSE(r.resarray[2].oplayoutcommit->locr_resok4.locr_newsize.ns_sizechanged);
  EXPECT_EQ(SizeOf(fh), 20u);
  ASSERT_EQ(Run(Ops(PutFh(fh), LayoutCommit(s2, 3)), &r), NFS4_OK);
  EXPECT_EQ(SizeOf(fh), 20u);
  ASSERT_EQ(Run(Ops(PutFh(fh), Read(open, 0, 100)), &r), NFS4_OK);
  EXPECT_EQ(Str(r.resarray[2].opread->resok4.data), "hello world and more");
  // Another client's layout stateid is not this one's.
  auto b = NewClient("client-b");
  EXPECT_EQ(Run(Ops(PutFh(fh), LayoutCommit(s2, 30)), nullptr, b.get()), NFS4ERR_BAD_STATEID);
  // A layout given back (after a data-server error, say) still commits what was written with
  // it: Linux turns a refused LAYOUTCOMMIT into EIO on fsync.
  ASSERT_EQ(Run(Ops(PutFh(fh), LayoutReturn(s2))), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutFh(fh), LayoutCommit(s2, 24)), &r), NFS4_OK);
  EXPECT_EQ(SizeOf(fh), 25u);
  EXPECT_EQ(Run(Ops(PutFh(fh), LayoutCommit(s2, 30)), nullptr, b.get()), NFS4ERR_BAD_STATEID);
}

TEST_F(PnfsTest, DeviceInfoNamesTheDataServer) {
  Bytes fh;
  stateid4 open;
  LAYOUTGET4res lg;
  OpenWithLayout("f", "x", LAYOUTIOMODE4_READ, &fh, &open, &lg);
  ff_layout4 ff = DecodeFf(lg);
  const auto& dev = ff.ffl_mirrors[0].ffm_data_servers[0].ffds_deviceid;
  uint32_t id = 0;
  ASSERT_TRUE(DsIdOfDevice(dev, &id));
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(GetDeviceInfo(dev)), &r), NFS4_OK);
  const auto& ok = r.resarray[1].opgetdeviceinfo->gdir_resok4;
  EXPECT_EQ(ok.gdir_notification, std::vector<uint32_t>{0x6});
  ff_device_addr4 fa;
  xdr::Decoder d(ok.gdir_device_addr.da_addr_body.data, ok.gdir_device_addr.da_addr_body.size);
  ASSERT_TRUE(xdr_decode(d, fa));
  ASSERT_EQ(fa.ffda_netaddrs.size(), 1u);
  EXPECT_EQ(fa.ffda_netaddrs[0].na_r_netid, "tcp");
  const uint16_t port = ds_[id - 1].server->port();
  EXPECT_EQ(fa.ffda_netaddrs[0].na_r_addr,
            "127.0.0.1." + std::to_string(port >> 8) + "." + std::to_string(port & 0xff));
  ASSERT_EQ(fa.ffda_versions.size(), 1u);
  EXPECT_EQ(fa.ffda_versions[0].ffdv_version, 3u);
  EXPECT_EQ(fa.ffda_versions[0].ffdv_minorversion, 0u);
  EXPECT_FALSE(fa.ffda_versions[0].ffdv_tightly_coupled);
  // Too small a buffer: TOOSMALL with the size needed. Unknown device: NOENT.
  ASSERT_EQ(Run(Ops(GetDeviceInfo(dev, 16)), &r), NFS4ERR_TOOSMALL);
  EXPECT_GT(r.resarray[1].opgetdeviceinfo->gdir_mincount, 16u);
  EXPECT_EQ(Run(Ops(GetDeviceInfo(DeviceIdOf(99))), &r), NFS4ERR_NOENT);
  std::array<uint8_t, NFS4_DEVICEID4_SIZE> junk{};
  junk.fill(0xab);
  EXPECT_EQ(Run(Ops(GetDeviceInfo(junk)), &r), NFS4ERR_NOENT);
}

TEST_F(PnfsTest, LayoutGetChecksItsArguments) {
  Bytes fh;
  stateid4 open;
  CreateFile("f", "data", &fh, &open);
  COMPOUND4res r;
  auto bad = LayoutGet(open, LAYOUTIOMODE4_ANY);
  EXPECT_EQ(Run(Ops(PutFh(fh), std::move(bad))), NFS4ERR_BADIOMODE);
  auto len0 = LayoutGet(open, LAYOUTIOMODE4_READ);
  len0.oplayoutget->loga_length = 0;
  EXPECT_EQ(Run(Ops(PutFh(fh), std::move(len0))), NFS4ERR_INVAL);
  auto type = LayoutGet(open, LAYOUTIOMODE4_READ);
  type.oplayoutget->loga_layout_type = LAYOUT4_BLOCK_VOLUME;
  EXPECT_EQ(Run(Ops(PutFh(fh), std::move(type))), NFS4ERR_UNKNOWN_LAYOUTTYPE);
  // Special stateids get no layout; a directory has none.
  EXPECT_EQ(Run(Ops(PutFh(fh), LayoutGet(AnonymousStateid(), LAYOUTIOMODE4_READ))), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(Run(Ops(PutRootFh(), LayoutGet(open, LAYOUTIOMODE4_READ))), NFS4ERR_ISDIR);
  // Another client's open stateid: BAD_STATEID.
  auto b = NewClient("client-b");
  EXPECT_EQ(Run(Ops(PutFh(fh), LayoutGet(open, LAYOUTIOMODE4_READ)), nullptr, b.get()), NFS4ERR_BAD_STATEID);
  // A user without write permission gets no RW layout (the same decision as WRITE).
  client_->cred = rpc::Cred::Sys(4242, 4242);
  COMPOUND4res o;
  ASSERT_EQ(Run(Ops(PutFh(fh), OpenFh("o2", OPEN4_SHARE_ACCESS_READ)), &o), NFS4_OK);
  const stateid4 ro = o.resarray[2].opopen->resok4.stateid;
  EXPECT_EQ(Run(Ops(PutFh(fh), LayoutGet(ro, LAYOUTIOMODE4_RW))), NFS4ERR_OPENMODE);
  EXPECT_EQ(Run(Ops(PutFh(fh), LayoutGet(ro, LAYOUTIOMODE4_READ))), NFS4_OK);
}

TEST_F(PnfsTest, ReturnAndCloseEndLayouts) {
  Bytes fh;
  stateid4 open;
  LAYOUTGET4res lg;
  OpenWithLayout("f", "abc", LAYOUTIOMODE4_RW, &fh, &open, &lg);
  const uint64_t ino = mds_->layouts().FilesOf(client_->clientid).at(0);
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(fh), LayoutGet(lg.logr_resok4.logr_stateid, LAYOUTIOMODE4_READ)), &r), NFS4_OK);
  const stateid4 ls = r.resarray[2].oplayoutget->logr_resok4.logr_stateid;
  // Returning RW leaves READ held: the stateid comes back with seqid + 1.
  ASSERT_EQ(Run(Ops(PutFh(fh), LayoutReturn(ls, LAYOUTIOMODE4_RW)), &r), NFS4_OK);
  ASSERT_TRUE(r.resarray[2].oplayoutreturn->lorr_stateid.lrs_present);
  EXPECT_EQ(r.resarray[2].oplayoutreturn->lorr_stateid.lrs_stateid.seqid, ls.seqid + 1);
  EXPECT_EQ(mds_->layouts().Holders(ino).size(), 1u);
  // A forged layout stateid is refused.
  stateid4 forged = ls;
  forged.other[11] ^= 0x55;
  EXPECT_EQ(Run(Ops(PutFh(fh), LayoutReturn(forged))), NFS4ERR_BAD_STATEID);
  // The last CLOSE returns the rest (return on close).
  ASSERT_EQ(Run(Ops(PutFh(fh), Close(open))), NFS4_OK);
  EXPECT_TRUE(mds_->layouts().Holders(ino).empty());
  // Returning again is harmless.
  EXPECT_EQ(Run(Ops(PutFh(fh), LayoutReturn(ls))), NFS4_OK);
}

TEST_F(PnfsTest, ReturnAllHonoursTheIomode) {
  Bytes fh;
  stateid4 open;
  LAYOUTGET4res lg;
  OpenWithLayout("f", "abc", LAYOUTIOMODE4_READ, &fh, &open, &lg);
  Bytes fh2;
  stateid4 open2;
  LAYOUTGET4res lg2;
  OpenWithLayout("g", "def", LAYOUTIOMODE4_RW, &fh2, &open2, &lg2);
  EXPECT_EQ(mds_->layouts().FilesOf(client_->clientid).size(), 2u);
  auto ret = [&](layoutiomode4 mode) {
    auto a = LayoutReturn(stateid4{}, mode);
    a.oplayoutreturn->lora_layoutreturn.lr_returntype = LAYOUTRETURN4_ALL;
    return a;
  };
  // ALL of RW leaves the READ layout; ALL of ANY leaves nothing.
  ASSERT_EQ(Run(Ops(ret(LAYOUTIOMODE4_RW))), NFS4_OK);
  EXPECT_EQ(mds_->layouts().FilesOf(client_->clientid).size(), 1u);
  ASSERT_EQ(Run(Ops(ret(LAYOUTIOMODE4_ANY))), NFS4_OK);
  EXPECT_TRUE(mds_->layouts().FilesOf(client_->clientid).empty());
}

TEST_F(PnfsTest, RecalledLayoutNotReturnedIsFenced) {
  StopMds();
  recall_timeout_ms_ = 300;
  StartMds();
  mds_->StartBackground();
  Bytes fh;
  stateid4 open;
  LAYOUTGET4res lg;
  OpenWithLayout("f", "fence me", LAYOUTIOMODE4_RW, &fh, &open, &lg);
  ff_layout4 ff = DecodeFf(lg);
  const auto& ds = ff.ffl_mirrors[0].ffm_data_servers[0];
  const uint32_t uid = static_cast<uint32_t>(std::stoul(Str(ds.ffds_user)));
  uint32_t ds_id = 0;
  ASSERT_TRUE(DsIdOfDevice(ds.ffds_deviceid, &ds_id));
  auto w = DsClient(ds_id, uid, uid);
  ASSERT_EQ(DsWrite(*w, ds.ffds_fh_vers[0], 0, "F"), nfs3::NFS3_OK);
  const uint64_t ino = mds_->layouts().FilesOf(client_->clientid).at(0);
  // This client has no back channel, so it never hears the recall: meanwhile nobody gets a
  // layout of the file (RECALLCONFLICT), and at the deadline its ids stop working.
  mds_->RecallLayouts(ino, "test");
  EXPECT_EQ(Run(Ops(PutFh(fh), LayoutGet(open, LAYOUTIOMODE4_RW))), NFS4ERR_RECALLCONFLICT);
  ASSERT_TRUE(mds_->WaitRecall(ino, 10000));
  nfs3::nfsstat3 st = nfs3::NFS3_OK;
  for (int i = 0; i < 100 && st == nfs3::NFS3_OK; i++) {
    st = DsWrite(*w, ds.ffds_fh_vers[0], 0, "G");
    if (st == nfs3::NFS3_OK) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(st, nfs3::NFS3ERR_ACCES);
  EXPECT_TRUE(mds_->layouts().Holders(ino).empty());
  // A new layout carries the new ids, which work.
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(fh), LayoutGet(open, LAYOUTIOMODE4_RW)), &r), NFS4_OK);
  ff_layout4 ff2 = DecodeFf(*r.resarray[2].oplayoutget);
  const uint32_t uid2 = static_cast<uint32_t>(std::stoul(Str(ff2.ffl_mirrors[0].ffm_data_servers[0].ffds_user)));
  EXPECT_NE(uid2, uid);
  auto w2 = DsClient(ds_id, uid2, uid2);
  EXPECT_EQ(DsWrite(*w2, ds.ffds_fh_vers[0], 0, "H"), nfs3::NFS3_OK);
  ASSERT_EQ(Run(Ops(PutFh(fh), Read(open, 0, 8)), &r), NFS4_OK);
  EXPECT_EQ(Str(r.resarray[2].opread->resok4.data), "Hence me");
}

// A client with a back channel gets CB_LAYOUTRECALL (CB_SEQUENCE first, the layout stateid
// with its seqid one past the last grant, the file's handle as it saw it), answers it and
// returns the layout: the recall ends without fencing, and LAYOUTGETs meanwhile got
// RECALLCONFLICT.
TEST_F(PnfsTest, RecallOverTheBackChannelEndsWithLayoutReturn) {
  RawClient raw(/*answer_callbacks=*/true);
  ASSERT_TRUE(raw.Connect(port_));
  auto x = raw.Call(Ops(ExchangeId("raw-recall", verifier4{7})));
  ASSERT_TRUE(x.ok());
  ASSERT_EQ(x->status, NFS4_OK);
  const auto& eir = x->resarray[0].opexchange_id->eir_resok4;
  const channel_attrs4 fore{0, (1 << 20) + (64 << 10), (1 << 20) + (64 << 10), 64 << 10, 16, 8, {}};
  const channel_attrs4 back{0, 4096, 4096, 0, 2, 1, {}};
  auto cs = raw.Call(Ops(CreateSession(eir.eir_clientid, eir.eir_sequenceid, CREATE_SESSION4_FLAG_CONN_BACK_CHAN,
                                       fore, back)), /*minor=*/2);
  ASSERT_TRUE(cs.ok());
  ASSERT_EQ(cs->status, NFS4_OK);
  const sessionid4 sid = cs->resarray[0].opcreate_session->csr_resok4.csr_sessionid;
  uint32_t seq = 1;
  auto rc = raw.Call(Ops(Sequence(sid, seq++), ReclaimComplete()));
  ASSERT_TRUE(rc.ok());
  ASSERT_EQ(rc->status, NFS4_OK);
  auto op = raw.Call(Ops(Sequence(sid, seq++), PutRootFh(), Open("ro", "rf", OPEN4_SHARE_ACCESS_BOTH, true), GetFh(),
                         LayoutGet(CurrentStateid(), LAYOUTIOMODE4_RW)));
  ASSERT_TRUE(op.ok());
  ASSERT_EQ(op->status, NFS4_OK);
  const Bytes fh = op->resarray[3].opgetfh->resok4.object;
  const stateid4 granted = op->resarray[4].oplayoutget->logr_resok4.logr_stateid;
  const uint64_t ino = mds_->layouts().FilesOf(eir.eir_clientid).at(0);
  auto before = mds_->LayoutOf(ino);
  ASSERT_TRUE(before.ok());

  bool recalled = false;
  stateid4 recall_sid{};
  raw.on_callback = [&](const CB_COMPOUND4args& a) -> std::optional<CB_COMPOUND4res> {
    CB_COMPOUND4res r;
    if (a.argarray.size() != 2 || a.argarray[0].argop != OP_CB_SEQUENCE ||
        a.argarray[1].argop != OP_CB_LAYOUTRECALL) {
      ADD_FAILURE() << "unexpected callback";
      r.status = NFS4ERR_INVAL;
      return r;
    }
    const auto& cseq = *a.argarray[0].opcbsequence;
    EXPECT_EQ(cseq.csa_sessionid, sid);
    EXPECT_EQ(a.minorversion, 2u);  // the session's minor version (Linux: BADSESSION otherwise)
    const auto& lr = *a.argarray[1].opcblayoutrecall;
    EXPECT_EQ(lr.clora_type, LAYOUT4_FLEX_FILES);
    EXPECT_EQ(lr.clora_recall.lor_recalltype, LAYOUTRECALL4_FILE);
    EXPECT_EQ(Str(lr.clora_recall.lor_layout.lor_fh), Str(fh));
    recall_sid = lr.clora_recall.lor_layout.lor_stateid;
    recalled = true;
    r.status = NFS4_OK;
    nfs_cb_resop4 s;
    s.resop = OP_CB_SEQUENCE;
    s.opcbsequence = std::make_unique<CB_SEQUENCE4res>();
    s.opcbsequence->csr_status = NFS4_OK;
    s.opcbsequence->csr_resok4.csr_sessionid = cseq.csa_sessionid;
    s.opcbsequence->csr_resok4.csr_sequenceid = cseq.csa_sequenceid;
    r.resarray.push_back(std::move(s));
    nfs_cb_resop4 l;
    l.resop = OP_CB_LAYOUTRECALL;
    l.opcblayoutrecall = std::make_unique<CB_LAYOUTRECALL4res>();
    l.opcblayoutrecall->clorr_status = NFS4_OK;
    r.resarray.push_back(std::move(l));
    return r;
  };
  mds_->RecallLayouts(ino, "test");
  for (int i = 0; i < 5 && !recalled; i++) ASSERT_TRUE(raw.WaitCallback());
  ASSERT_TRUE(recalled);
  EXPECT_EQ(recall_sid.other, granted.other);
  EXPECT_EQ(recall_sid.seqid, granted.seqid + 1);  // exactly one past the last grant
  // Meanwhile another client gets no layout of the file.
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(fh), OpenFh("other", OPEN4_SHARE_ACCESS_READ)), &r), NFS4_OK);
  const stateid4 other = r.resarray[2].opopen->resok4.stateid;
  EXPECT_EQ(Run(Ops(PutFh(fh), LayoutGet(other, LAYOUTIOMODE4_READ))), NFS4ERR_RECALLCONFLICT);
  // The return ends the recall: layouts are handed out again, nobody was fenced.
  auto ret = raw.Call(Ops(Sequence(sid, seq++), PutFh(fh), LayoutReturn(recall_sid)));
  ASSERT_TRUE(ret.ok());
  ASSERT_EQ(ret->status, NFS4_OK);
  EXPECT_TRUE(mds_->WaitRecall(ino, 5000));
  EXPECT_EQ(Run(Ops(PutFh(fh), LayoutGet(other, LAYOUTIOMODE4_READ))), NFS4_OK);
  auto after = mds_->LayoutOf(ino);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->mirrors[0].files[0].uid, before->mirrors[0].files[0].uid);
}

TEST_F(PnfsTest, RepeatedDataServerErrorsSendTheClientThroughTheMds) {
  Bytes fh;
  stateid4 open;
  LAYOUTGET4res lg;
  OpenWithLayout("f", "x", LAYOUTIOMODE4_READ, &fh, &open, &lg);
  const uint64_t ino = mds_->layouts().FilesOf(client_->clientid).at(0);
  for (int i = 0; i < 3; i++) mds_->NoteDataServerError(client_->clientid, ino, 1, NFS4ERR_ACCESS, OP_READ);
  EXPECT_EQ(Run(Ops(PutFh(fh), LayoutGet(open, LAYOUTIOMODE4_READ))), NFS4ERR_LAYOUTUNAVAILABLE);
  // Another client is not affected, and I/O through the MDS still works.
  auto b = NewClient("client-b");
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutFh(fh), OpenFh("ob", OPEN4_SHARE_ACCESS_READ)), &r, b.get()), NFS4_OK);
  const stateid4 bs = r.resarray[2].opopen->resok4.stateid;
  EXPECT_EQ(Run(Ops(PutFh(fh), LayoutGet(bs, LAYOUTIOMODE4_READ)), nullptr, b.get()), NFS4_OK);
  ASSERT_EQ(Run(Ops(PutFh(fh), Read(open, 0, 1)), &r), NFS4_OK);
  EXPECT_EQ(Str(r.resarray[2].opread->resok4.data), "x");
}

class PnfsMirrorTest : public PnfsTest {
 protected:
  void SetUp() override {
    mirrors_ = 2;
    PnfsTest::SetUp();
  }
};

TEST_F(PnfsMirrorTest, StaleMirrorIsLeftOutThenResynced) {
  mds_->StartBackground();
  Bytes fh;
  stateid4 open;
  LAYOUTGET4res lg;
  OpenWithLayout("f", "first", LAYOUTIOMODE4_RW, &fh, &open, &lg);
  ASSERT_EQ(DecodeFf(lg).ffl_mirrors.size(), 2u);
  const uint64_t ino = mds_->layouts().FilesOf(client_->clientid).at(0);
  ASSERT_EQ(Run(Ops(PutFh(fh), Close(open))), NFS4_OK);
  // Mirror 1 missed writes: new layouts list only mirror 0 until it is resynced.
  ASSERT_TRUE(mds_->MarkMirrorStale(ino, 1, "test").ok());
  auto l = mds_->LayoutOf(ino);
  ASSERT_TRUE(l.ok());
  const meta::DataFile stale = l->mirrors[1].files[0];
  COMPOUND4res r;
  // Written through the MDS while stale (resync may already be running: retry on DELAY).
  ASSERT_EQ(Run(Ops(PutRootFh(), Open("o", "f", OPEN4_SHARE_ACCESS_BOTH, false))), NFS4_OK);
  for (int i = 0; i < 200; i++) {
    auto l2 = mds_->LayoutOf(ino);
    ASSERT_TRUE(l2.ok());
    if (!l2->mirrors[1].stale) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto l3 = mds_->LayoutOf(ino);
  ASSERT_TRUE(l3.ok());
  EXPECT_FALSE(l3->mirrors[1].stale);
  // Both data files hold the same bytes after the resync.
  auto a = DsClient(l3->mirrors[0].files[0].ds_id, 0, 0);
  auto b = DsClient(stale.ds_id, 0, 0);
  std::string x, y;
  ASSERT_EQ(DsRead(*a, Bytes::Copy(l3->mirrors[0].files[0].fh), 0, 100, &x), nfs3::NFS3_OK);
  ASSERT_EQ(DsRead(*b, Bytes::Copy(stale.fh), 0, 100, &y), nfs3::NFS3_OK);
  EXPECT_EQ(x, "first");
  EXPECT_EQ(x, y);
}

TEST_F(PnfsTest, MoveDataKeepsBytesAndHandsOutTheNewPlace) {
  StopMds();
  recall_timeout_ms_ = 200;
  StartMds();
  mds_->StartBackground();
  Bytes fh;
  stateid4 open;
  LAYOUTGET4res lg;
  std::string data(300000, 'a');
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<char>('a' + i % 26);
  OpenWithLayout("f", data, LAYOUTIOMODE4_READ, &fh, &open, &lg);
  const uint64_t ino = mds_->layouts().FilesOf(client_->clientid).at(0);
  auto before = mds_->LayoutOf(ino);
  ASSERT_TRUE(before.ok());
  const uint32_t from = before->mirrors[0].files[0].ds_id;
  const uint32_t to = from == 1 ? 2 : 1;
  // The holder has no back channel: the move waits out the recall, fences and goes on.
  ASSERT_TRUE(mds_->MoveData(ino, {to}).ok());
  auto after = mds_->LayoutOf(ino);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->mirrors[0].files[0].ds_id, to);
  EXPECT_EQ(after->mirrors[0].files[0].name_gen, before->mirrors[0].files[0].name_gen + 1);
  EXPECT_GT(after->generation, before->generation);
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutRootFh(), Open("o", "f", OPEN4_SHARE_ACCESS_READ, false))), NFS4_OK);
  std::string got;
  for (uint64_t off = 0; off < data.size(); off += 65536) {
    stateid4 anon = AnonymousStateid();
    auto rr = client_->Call(Ops(PutFh(fh), Read(anon, off, 65536)), /*cachethis=*/false);
    ASSERT_TRUE(rr.ok());
    ASSERT_EQ(rr->status, NFS4_OK);
    got += Str(rr->resarray[2].opread->resok4.data);
  }
  EXPECT_EQ(got, data);
  // The new layout names the new data server.
  auto c = NewClient("client-c");
  ASSERT_EQ(Run(Ops(PutFh(fh), OpenFh("oc", OPEN4_SHARE_ACCESS_READ)), &r, c.get()), NFS4_OK);
  const stateid4 cs = r.resarray[2].opopen->resok4.stateid;
  ASSERT_EQ(Run(Ops(PutFh(fh), LayoutGet(cs, LAYOUTIOMODE4_READ)), &r, c.get()), NFS4_OK);
  uint32_t id = 0;
  ASSERT_TRUE(DsIdOfDevice(DecodeFf(*r.resarray[2].oplayoutget).ffl_mirrors[0].ffm_data_servers[0].ffds_deviceid, &id));
  EXPECT_EQ(id, to);
  // Moving onto a wrong number of servers is refused.
  EXPECT_FALSE(mds_->MoveData(ino, {1, 2}).ok());
}


// Linux commits a flexfiles layout's writes from inode writeback, which may come after the
// CLOSE (return on close) and after the next OPEN. That OPEN's GETATTR must already count the
// bytes on the data servers, or the client's next O_APPEND write lands on its last one.
TEST_F(PnfsTest, GetattrAfterAnUncommittedWriteReportsTheDataServersSize) {
  Bytes fh;
  stateid4 open;
  LAYOUTGET4res rw;
  OpenWithLayout("log", "line 1\n", LAYOUTIOMODE4_RW, &fh, &open, &rw);
  ff_layout4 ff = DecodeFf(rw);
  ASSERT_EQ(ff.ffl_mirrors.size(), 1u);
  const ff_data_server4& ds = ff.ffl_mirrors[0].ffm_data_servers[0];
  uint32_t ds_id = 0;
  ASSERT_TRUE(DsIdOfDevice(ds.ffds_deviceid, &ds_id));
  auto w = DsClient(ds_id, static_cast<uint32_t>(std::stoul(Str(ds.ffds_user))),
                    static_cast<uint32_t>(std::stoul(Str(ds.ffds_group))));
  ASSERT_EQ(DsWrite(*w, ds.ffds_fh_vers[0], 7, "line 2\n"), nfs3::NFS3_OK);
  const uint64_t ino = mds_->layouts().FilesOf(client_->clientid).at(0);
  // CLOSE gives the layout back; no LAYOUTCOMMIT yet.
  ASSERT_EQ(Run(Ops(PutFh(fh), Close(open))), NFS4_OK);
  EXPECT_TRUE(mds_->layouts().Holders(ino).empty());
  EXPECT_TRUE(mds_->SizeUnsettled(ino));
  auto* settled = mds_->stats().Get("pnfs.size_settled_from_ds");
  const uint64_t before = settled->calls();
  // The next open's GETATTR, as in Linux's OPEN compound.
  COMPOUND4res r;
  ASSERT_EQ(Run(Ops(PutRootFh(), Open("o", "log", OPEN4_SHARE_ACCESS_WRITE, false), Getattr({FATTR4_SIZE})), &r),
            NFS4_OK);
  const stateid4 open2 = r.resarray[2].opopen->resok4.stateid;
  EXPECT_EQ(SizeOf(fh), 14u);
  EXPECT_EQ(settled->calls(), before + 1);
  // No RW layout left: settled, later GETATTRs do not ask the data servers again.
  EXPECT_FALSE(mds_->SizeUnsettled(ino));
  EXPECT_EQ(SizeOf(fh), 14u);
  EXPECT_EQ(settled->calls(), before + 1);
  // The late LAYOUTCOMMIT changes nothing.
  ASSERT_EQ(Run(Ops(PutFh(fh), LayoutCommit(rw.logr_resok4.logr_stateid, 13)), &r), NFS4_OK);
  EXPECT_EQ(SizeOf(fh), 14u);
  ASSERT_EQ(Run(Ops(PutFh(fh), Close(open2))), NFS4_OK);
}

}  // namespace
}  // namespace loom::nfs4
