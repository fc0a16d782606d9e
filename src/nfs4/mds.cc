#include "nfs4/mds.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/file_util.h"
#include "common/log.h"
#include "mds/data_servers.h"
#include "meta/client_state.h"
#include "nfs4/attrs.h"
#include "nfs4/state.h"

namespace loom::nfs4 {

namespace {

constexpr const char* kServerName = "loom-mds";

}  // namespace

Mds::Mds(Options o, meta::KvStore* store, mds::DataServerPool* ds)
    : opts_(std::move(o)), store_(store), ds_(ds) {}

Mds::~Mds() { StopBackground(); }

Status Mds::Init() {
  LOOM_RETURN_IF_ERROR(LoadOrCreateSecret(opts_.state_dir, "fh-secret", fh_key_.data(), fh_key_.size()));
  ns_ = std::make_unique<meta::Namespace>(store_, opts_.fsid);
  Status mk = meta::RunTxn(*store_, [&](meta::Txn& t) {
    return ns_->Mkfs(t, opts_.root_mode, opts_.root_uid, opts_.root_gid);
  });
  if (!mk.ok() && meta::ErrOf(mk) != meta::MetaErr::kExist) return mk;
  // df's used files; nothing serves yet, so the count is exact (Namespace::CountInodes).
  LOOM_RETURN_IF_ERROR(ns_->CountInodes());
  // A new boot epoch (persisted) makes client ids, session ids and stateids of the previous
  // boot recognisably stale; the client records of that boot may reclaim during grace.
  uint64_t epoch = 0;
  std::vector<meta::ClientRecord> previous;
  Status gs = meta::RunTxn(*store_, [&](meta::Txn& t) -> Status {
    auto g = meta::GetGrace(t, kServerName, true);
    if (!g.ok()) return g.status();
    meta::GraceState st;
    if (g.value()) {
      st = *g.value();
    } else {
      // A new store: the first epoch is random, not 1. Client ids, session ids and stateids
      // carry it (RFC 8881 §2.4: a client id must not be reused by a later incarnation of the
      // server), and a server whose state directory was made afresh (wiped, or a new machine
      // at the same address) would otherwise hand out the ids of the old one again, which
      // clients of the old one still hold.
      uint32_t r = 0;
      if (getrandom(&r, sizeof r, 0) != static_cast<ssize_t>(sizeof r)) {
        r = static_cast<uint32_t>(rpc::NowUs());
      }
      st.epoch = r & 0x3fffffffu;  // room for a billion restarts before the 32 bits wrap
    }
    st.recovery_epoch = st.epoch;
    st.epoch++;
    epoch = st.epoch;
    auto cl = meta::ListClients(t);
    if (!cl.ok()) return cl.status();
    previous = std::move(cl.value());
    st.in_grace = !previous.empty();
    return meta::PutGrace(t, kServerName, st);
  });
  LOOM_RETURN_IF_ERROR(gs);
  for (const auto& c : previous) reclaimable_.insert(c.owner);
  if (!previous.empty()) {
    grace_end_ms_ = rpc::NowMs() + int64_t{opts_.grace_seconds} * 1000;
    in_grace_.store(opts_.grace_seconds > 0);
    LOG_INFO("loom-mds: %zu clients of the previous boot may reclaim for %us", previous.size(),
             opts_.grace_seconds);
  }
  // Whether any placement policy exists (meta/policy.h): without one, creates read none.
  auto any_policy = meta::RunTxn(*store_, [&](meta::Txn& t) -> Result<bool> {
    bool found = false;
    LOOM_RETURN_IF_ERROR(t.Scan(meta::KeyRange::Prefix(std::string(1, meta::tag::kPolicy)), 1,
                                [&](std::string_view, std::string_view) {
                                  found = true;
                                  return false;
                                }));
    return found;
  });
  has_policies_.store(any_policy.ok() && *any_policy);
  BuildOpTable();
  SessionTable::Options so;
  so.lease_seconds = opts_.lease_seconds;
  so.boot_epoch = static_cast<uint32_t>(epoch);
  so.limits.max_request = opts_.max_io + 64 * 1024;
  so.limits.max_response = opts_.max_io + 64 * 1024;
  // The smallest fore channel that works: SEQUENCE + PUTROOTFH + GETATTR as the op table
  // bounds their replies (sessions.h).
  so.limits.min_fore_response = kRpcReplyHeader + 12 + 44 + ops_[OP_PUTROOTFH].max_reply +
                                ops_[OP_GETATTR].max_reply;
  so.has_state = [this](clientid4 id) {
    return state_->HasState(id) || !layouts_->FilesOf(id).empty();
  };
  so.pnfs = opts_.pnfs && ds_ != nullptr;
  layouts_ = std::make_unique<LayoutTable>(static_cast<uint32_t>(epoch));
  if (getrandom(so.server_owner_minor.data(), 8, 0) != 8) so.server_owner_minor.fill(1);
  sessions_ = std::make_unique<SessionTable>(so);
  StateManager::Options sto;
  sto.boot_epoch = static_cast<uint32_t>(epoch);
  sto.on_last_close = [this](uint64_t ino) { OnLastClose(ino); };
  state_ = std::make_unique<StateManager>(sto);
  uint64_t v = static_cast<uint64_t>(rpc::NowUs()) ^ (epoch << 48);
  std::memcpy(write_verf_.data(), &v, 8);
  fs_stats_ = std::make_unique<FsStats>();
  fs_stats_->lease_time = opts_.lease_seconds;
  fs_stats_->maxread = fs_stats_->maxwrite = opts_.max_io;
  if (so.pnfs) {
    // fs_layout_types (RFC 8881 §5.12.1): what makes the Linux client load its flexfiles
    // driver. layout_blksize is the data servers' I/O size; no alignment is needed.
    fs_stats_->layout_types = {LAYOUT4_FLEX_FILES};
    fs_stats_->layout_blksize = opts_.max_io;
    fs_stats_->layout_alignment = 1;
  }
  RefreshFsStats();
  // Files unlinked while open before the restart (orphans): with no grace period no open of
  // them can be reclaimed, so they go now (EndGrace does this when there is one).
  if (!InGrace()) {
    if (!previous.empty()) EndGrace();  // also drops the previous boot's client records
    else ReleaseOrphans();
  }
  return Status::Ok();
}

void Mds::RefreshFsStats() {
  // Files (RFC 8881 §5.8.2.10-12, df -i): the namespace's inodes, out of 2^40 -- inodes are
  // rows, not a table of fixed size, so the total is a bound that no store reaches.
  constexpr uint64_t kFilesTotal = uint64_t{1} << 40;
  const uint64_t used = std::min(ns_ ? ns_->inodes().value_or(0) : 0, kFilesTotal);
  fs_stats_->files_total = kFilesTotal;
  fs_stats_->files_free = kFilesTotal - used;
  fs_stats_->files_avail = kFilesTotal - used;
  // Space (§5.8.2.35-37): where files' bytes live. With data servers, the sum of their last
  // FSSTATs (total bytes; available bytes as free, since only those can be written); servers
  // that share one filesystem count it once each. Until one has answered, and without data
  // servers, the metadata server's own filesystem.
  uint64_t total = 0, avail = 0;
  bool known = false;
  if (ds_ != nullptr) {
    for (const mds::DataServerState& s : ds_->Servers()) {
      if (!s.space_known) continue;
      known = true;
      total += s.capacity;
      avail += s.free;
    }
  }
  if (known) {
    fs_stats_->space_total = total;
    fs_stats_->space_free = avail;
    fs_stats_->space_avail = avail;
    return;
  }
  struct statvfs sv;
  if (::statvfs(opts_.state_dir.c_str(), &sv) == 0) {
    fs_stats_->space_total = uint64_t{sv.f_blocks} * sv.f_frsize;
    fs_stats_->space_free = uint64_t{sv.f_bfree} * sv.f_frsize;
    fs_stats_->space_avail = uint64_t{sv.f_bavail} * sv.f_frsize;
  }
}

const FsStats& Mds::fs_stats() const { return *fs_stats_; }

bool Mds::InGrace() const { return in_grace_.load(std::memory_order_relaxed); }

bool Mds::MayReclaim(const std::string& owner) const {
  std::lock_guard<std::mutex> l(mu_);
  return InGrace() && reclaimable_.count(owner) > 0;
}

void Mds::ProbeBackChannel(const SessionId& sid) {
  uint32_t prog = NFS4_CALLBACK;
  auto bc = sessions_->BackChannelOfSession(sid, &prog);
  if (!bc) return;
  clientid4 id = 0;
  std::memcpy(&id, sid.data(), 8);  // session ids start with the client id
  // The completion may run on this thread (a closed connection fails the call at once), so
  // it takes the session table's lock itself and must not be called with it held.
  bc->CallAsync(prog, NFS_CB, CB_NULL, rpc::Cred(), [](xdr::Encoder&) {},
                [this, sid, id](Result<rpc::Reply> r) {
                  sessions_->SetCallbackPath(sid, r.ok());
                  if (r.ok()) {
                    LOG_INFO("loom-mds: back channel to client %016llx works", (unsigned long long)id);
                  } else {
                    LOG_WARN("loom-mds: back channel to client %016llx: %s", (unsigned long long)id,
                             r.status().ToString().c_str());
                  }
                });
}

bool Mds::NonReclaimAllowed(clientid4 client) {
  return !InGrace() && sessions_->ReclaimCompleted(client);
}

void Mds::ReclaimDone(const std::string& owner) {
  bool all = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    reclaimable_.erase(owner);
    all = reclaimable_.empty();
  }
  // §8.4.2.1: with every previous client done, nothing remains to protect.
  if (all && InGrace()) grace_end_ms_ = 0;
}

void Mds::OnSequence(Cx& cx, SEQUENCE4resok& res) {
  // §18.46.3: tell the client about state it lost so it can FREE_STATEID / recover.
  if (state_->HasRevoked(cx.client)) res.sr_status_flags |= SEQ4_STATUS_ADMIN_STATE_REVOKED;
}

const OpDesc* Mds::LookupOp(nfs_opnum4 op) const {
  if (op < OP_ACCESS || op > OP_REMOVEXATTR) return nullptr;
  const OpDesc& d = ops_[op];
  return d.name ? &d : nullptr;
}

void Mds::BuildOpTable() {
  // Every operation number of 4.1 and 4.2 has a row (known ops without a handler answer
  // NFS4ERR_NOTSUPP); numbers outside are OP_ILLEGAL.
  for (int op = OP_ACCESS; op <= OP_REMOVEXATTR; op++) {
    const char* n = nfs_opnum4_name(op);
    if (n && std::strcmp(n, "?") != 0) ops_[op].name = n;
  }
  auto set = [&](nfs_opnum4 op, OpHandler fn, uint32_t flags) {
    ops_[op].fn = fn;
    ops_[op].flags = flags;
  };
  for (nfs_opnum4 op : {OP_OPEN_CONFIRM, OP_RENEW, OP_SETCLIENTID, OP_SETCLIENTID_CONFIRM,
                        OP_RELEASE_LOCKOWNER}) {
    ops_[op].flags = kV40Only;
  }
  for (int op = OP_ALLOCATE; op <= OP_REMOVEXATTR; op++) ops_[op].flags |= kMinor2;
  set(OP_EXCHANGE_ID, OpExchangeId, kSessionless);
  set(OP_CREATE_SESSION, OpCreateSession, kSessionless);
  set(OP_DESTROY_SESSION, OpDestroySession, kSessionless);
  set(OP_DESTROY_CLIENTID, OpDestroyClientId, kSessionless);
  set(OP_BIND_CONN_TO_SESSION, OpBindConnToSession, kSessionless);
  set(OP_RECLAIM_COMPLETE, OpReclaimComplete, 0);
  set(OP_PUTROOTFH, OpPutRootFh, 0);
  set(OP_PUTPUBFH, OpPutPubFh, 0);
  set(OP_PUTFH, OpPutFh, 0);
  set(OP_GETFH, OpGetFh, kNeedCfh);
  set(OP_SAVEFH, OpSaveFh, kNeedCfh);
  set(OP_RESTOREFH, OpRestoreFh, 0);
  set(OP_SECINFO, OpSecinfo, kNeedCfh);
  set(OP_SECINFO_NO_NAME, OpSecinfoNoName, kNeedCfh);
  set(OP_LOOKUP, OpLookup, kNeedCfh);
  set(OP_LOOKUPP, OpLookupp, kNeedCfh);
  set(OP_ACCESS, OpAccess, kNeedCfh);
  set(OP_GETATTR, OpGetattr, kNeedCfh);
  set(OP_SETATTR, OpSetattr, kNeedCfh);
  set(OP_VERIFY, OpVerify, kNeedCfh);
  set(OP_NVERIFY, OpNverify, kNeedCfh);
  set(OP_CREATE, OpCreate, kNeedCfh);
  set(OP_LINK, OpLink, kNeedCfh);
  set(OP_REMOVE, OpRemove, kNeedCfh);
  set(OP_RENAME, OpRename, kNeedCfh);
  set(OP_READDIR, OpReaddir, kNeedCfh);
  set(OP_READLINK, OpReadlink, kNeedCfh);
  set(OP_OPEN, OpOpen, kNeedCfh);
  set(OP_CLOSE, OpClose, kNeedCfh);
  set(OP_OPEN_DOWNGRADE, OpOpenDowngrade, kNeedCfh);
  set(OP_TEST_STATEID, OpTestStateid, 0);
  set(OP_FREE_STATEID, OpFreeStateid, 0);
  set(OP_DELEGRETURN, OpDelegReturn, kNeedCfh);
  set(OP_LOCK, OpLock, kNeedCfh);
  set(OP_LOCKT, OpLockt, kNeedCfh);
  set(OP_LOCKU, OpLocku, kNeedCfh);
  set(OP_READ, OpRead, kNeedCfh);
  set(OP_WRITE, OpWrite, kNeedCfh);
  set(OP_COMMIT, OpCommit, kNeedCfh);
  set(OP_GET_DIR_DELEGATION, OpGetDirDelegation, kNeedCfh);
  set(OP_SEEK, OpSeek, kNeedCfh | kMinor2);
  // Operations that answer from memory (the session and state tables, the store's cache) and
  // change nothing when they would wait: a COMPOUND of only these runs on the event loop.
  ops_[OP_SEQUENCE].flags |= kOnLoop;
  for (nfs_opnum4 op : {OP_PUTROOTFH, OP_PUTPUBFH, OP_PUTFH, OP_GETFH, OP_SAVEFH, OP_RESTOREFH,
                        OP_SECINFO, OP_SECINFO_NO_NAME, OP_LOOKUP, OP_LOOKUPP, OP_ACCESS,
                        OP_GETATTR, OP_VERIFY, OP_NVERIFY, OP_READDIR, OP_READLINK,
                        OP_TEST_STATEID,
                        // Changes made in one store transaction and nothing outside it that
                        // waits: committed on the loop, their replies held until durable.
                        OP_CREATE, OP_LINK, OP_REMOVE, OP_RENAME,
                        // ... and then the open state, in memory (OpenFitsTheLoop).
                        OP_OPEN,
                        // The open state, and a last close's release of an unlinked file
                        // (OnLastClose); not a close that returns layouts.
                        OP_CLOSE}) {
    ops_[op].flags |= kOnLoop;
  }
  // Replies that can be large: attributes (fattr4 with a handle and owner strings), handles,
  // symlink targets, security flavors, layouts later.
  ops_[OP_GETATTR].max_reply = 2048;
  ops_[OP_GETFH].max_reply = 16 + NFS4_FHSIZE;
  ops_[OP_READLINK].max_reply = 16 + 4096;
  ops_[OP_EXCHANGE_ID].max_reply = 2048;
  ops_[OP_CREATE_SESSION].max_reply = 256;
  ops_[OP_TEST_STATEID].max_reply = 4096;
  ops_[OP_SECINFO].max_reply = 256;
  ops_[OP_SECINFO_NO_NAME].max_reply = 256;
  ops_[OP_OPEN].max_reply = 256;
  // Status-only results (op number + status): keep the READ compound's bound tight, since
  // clients size ca_maxresponsesize as one full READ plus little more.
  for (nfs_opnum4 op : {OP_PUTFH, OP_PUTROOTFH, OP_PUTPUBFH, OP_SAVEFH, OP_RESTOREFH, OP_LOOKUP,
                        OP_LOOKUPP, OP_VERIFY, OP_NVERIFY, OP_RECLAIM_COMPLETE}) {
    ops_[op].max_reply = 8;
  }
  ops_[OP_LOCK].max_reply = 64 + NFS4_OPAQUE_LIMIT;   // LOCK4denied carries the owner
  ops_[OP_LOCKT].max_reply = 64 + NFS4_OPAQUE_LIMIT;
  set(OP_ALLOCATE, OpAllocate, kNeedCfh | kMinor2);
  set(OP_DEALLOCATE, OpDeallocate, kNeedCfh | kMinor2);
  set(OP_READ_PLUS, OpReadPlus, kNeedCfh | kMinor2);
  set(OP_LAYOUTGET, OpLayoutGet, kNeedCfh);
  set(OP_GETDEVICEINFO, OpGetDeviceInfo, 0);
  set(OP_GETDEVICELIST, OpGetDeviceList, kNeedCfh);
  set(OP_LAYOUTCOMMIT, OpLayoutCommit, kNeedCfh);
  set(OP_LAYOUTRETURN, OpLayoutReturn, 0);  // FSID and ALL need no filehandle
  set(OP_LAYOUTERROR, OpLayoutError, kNeedCfh | kMinor2);
  set(OP_LAYOUTSTATS, OpLayoutStats, kNeedCfh | kMinor2);
  // A layout body is at most 4 KiB (ops_layout.cc); MaxReply bounds LAYOUTGET by the
  // client's loga_maxcount. A device address is a few dozen bytes.
  ops_[OP_LAYOUTGET].max_reply = 64 + 4096;
  ops_[OP_GETDEVICEINFO].max_reply = 512;
  ops_[OP_GETDEVICELIST].max_reply = 64 + 256 * NFS4_DEVICEID4_SIZE;
  ops_[OP_LAYOUTRETURN].max_reply = 32;
  ops_[OP_LAYOUTCOMMIT].max_reply = 24;
}

rpc::ProgramDesc Mds::Program() {
  rpc::ProgramDesc p;
  p.prog = NFS4_PROGRAM;
  p.vers = NFS_V4;
  p.stats_prefix = "nfs4";
  p.procs.resize(2);
  p.procs[0] = {"NULL", [](const rpc::CallContext&, xdr::Decoder&, xdr::Encoder&) { return rpc::SUCCESS; },
                true, true};
  // COMPOUND: exactly-once semantics come from the session slots, not the RPC reply cache.
  p.procs[1] = {"COMPOUND", [this](const rpc::CallContext& c, xdr::Decoder& d, xdr::Encoder& e) {
                  return RunCompound(*this, c, d, e);
                }};
  if (opts_.run_to_completion) {
    p.procs[1].try_inline = [this](const rpc::CallContext& c, xdr::Decoder& d, xdr::Encoder& e) {
      return RunCompound(*this, c, d, e, /*on_loop=*/true);
    };
  }
  return p;
}

void Mds::Tick() {
  sessions_->Reap([this](clientid4 id) {
    LOG_INFO("loom-mds: lease of client %016llx expired", (unsigned long long)id);
    Status s = ForgetClient(id);
    if (!s.ok()) LOG_WARN("delete client record: %s", s.ToString().c_str());
  });
  if (InGrace() && rpc::NowMs() >= grace_end_ms_) EndGrace();
  RefreshFsStats();
}

void Mds::EndGrace() {
  in_grace_.store(false);
  std::vector<std::string> gone;
  {
    std::lock_guard<std::mutex> l(mu_);
    reclaimable_.clear();
  }
  // Client records of the previous boot that did not come back are dropped, and files that
  // were unlinked while open (orphans) can go now that no open can be reclaimed.
  Status s = meta::RunTxn(*store_, [&](meta::Txn& t) -> Status {
    auto cl = meta::ListClients(t);
    if (!cl.ok()) return cl.status();
    for (const auto& c : cl.value()) {
      if (!sessions_->Known(c.clientid)) LOOM_RETURN_IF_ERROR(meta::DeleteClient(t, c.clientid));
    }
    auto g = meta::GetGrace(t, kServerName, true);
    if (!g.ok()) return g.status();
    meta::GraceState st = g.value().value_or(meta::GraceState{});
    st.in_grace = false;
    return meta::PutGrace(t, kServerName, st);
  });
  if (!s.ok()) LOG_WARN("end of grace: %s", s.ToString().c_str());
  ReleaseOrphans();
  LOG_INFO("loom-mds: grace period over");
}

void Mds::ReleaseOrphans() {
  auto orphans = meta::RunTxn(*store_, [&](meta::Txn& t) { return ns_->ListOrphans(t, 10000); });
  if (!orphans.ok()) return;
  for (const auto& o : orphans.value()) {
    if (IsOpen(o.ino)) continue;
    Status s = meta::RunTxn(*store_, [&](meta::Txn& t) { return ns_->ReleaseOrphan(t, o.ino); });
    if (!s.ok()) LOG_WARN("release orphan %llu: %s", (unsigned long long)o.ino, s.ToString().c_str());
  }
}

Status Mds::ForgetClient(clientid4 id) {
  DropClientState(id);
  return meta::RunTxn(*store_, [&](meta::Txn& t) { return meta::DeleteClient(t, id); });
}

bool Mds::IsOpen(uint64_t ino) { return state_->IsOpen(ino); }

void Mds::AfterUnlink(const meta::Unlinked& u) {
  if (u.nlink == 0 && !u.orphaned) ForgetLayout(u.ino);
}

void Mds::OnLastClose(uint64_t ino) {
  // An unlinked file whose last open went away: delete it and queue its data files. During
  // grace the orphan stays: its opens may still be reclaimed.
  if (InGrace() || state_->IsOpen(ino)) return;
  auto release = [&] {
    return meta::RunTxn(*store_, [&](meta::Txn& t) { return ns_->ReleaseOrphan(t, ino); });
  };
  Status s = release();
  if (meta::ErrOf(s) == meta::MetaErr::kWouldBlock) {
    // A CLOSE run to completion on the event loop, after the open state is gone: it cannot
    // be handed to a worker any more. Rare (the orphan record is locked by a change in
    // flight, or not cached): wait here.
    meta::NoBlockScope::Suspend may_wait;
    s = release();
  }
  if (!s.ok()) LOG_WARN("release orphan %llu: %s", (unsigned long long)ino, s.ToString().c_str());
}

void Mds::DropClientState(clientid4 id) {
  // Files whose last open went away are reported through on_last_close. Layouts go with the
  // lease (RFC 8881 §12.5.5.1: a client that loses its lease loses its layouts).
  (void)state_->DropClient(id);
  for (uint64_t ino : layouts_->FilesOf(id)) {
    layouts_->ReturnAll(id, ino);
    OnLayoutReturned(id, ino);
  }
}

Result<meta::Layout> Mds::LayoutOf(uint64_t ino) {
  uint64_t epoch = 0;
  if (auto cached = layout_cache_.Get(ino, &epoch)) return *std::move(cached);
  auto r = meta::RunTxn(*store_, [&](meta::Txn& t) { return ns_->GetLayout(t, ino); });
  if (!r.ok()) return r.status();
  layout_cache_.Fill(ino, r.value(), epoch);
  return r;
}

Result<meta::Layout> Mds::EnsureLayout(uint64_t ino) {
  auto l = LayoutOf(ino);
  if (l.ok() || meta::ErrOf(l.status()) != meta::MetaErr::kNoEnt) return l;
  if (!ds_) return Status::Unavailable("no data servers configured");
  std::lock_guard<std::mutex> g(create_mu_);  // one creator per file at a time
  l = LayoutOf(ino);
  if (l.ok()) return l;
  mds::Placement p = PlacementFor(ino);
  auto made = ds_->CreateDataFile(opts_.fsid, ino, p);
  if (!made.ok()) return made.status();
  Status s = meta::RunTxn(*store_, [&](meta::Txn& t) { return ns_->SetLayout(t, ino, made.value()); });
  if (!s.ok()) return s;
  layout_cache_.Put(ino, made.value());
  return made;
}

void Mds::ForgetLayout(uint64_t ino) { layout_cache_.Forget(ino); }

nfsstat4 Mds::TruncateData(uint64_t ino, uint64_t size, clientid4 caller) {
  auto l = LayoutOf(ino);
  if (!l.ok() && meta::ErrOf(l.status()) == meta::MetaErr::kNoEnt) {
    if (size == 0) return NFS4_OK;  // no data file: nothing to cut
    l = EnsureLayout(ino);
    if (!l.ok()) return FromDataServer(l.status());
  }
  if (!l.ok()) return FromMeta(l.status());
  mds::FailedMirrors failed;
  Status s = ds_->Truncate(l.value(), size, &failed);
  if (!s.ok()) return FromDataServer(s);
  for (uint32_t m : failed) (void)MarkMirrorStale(ino, m, "missed a truncate");
  if (layouts_->Holders(ino).size() > (layouts_->Holders(ino).count(caller) ? 1u : 0u))
    RecallLayouts(ino, "truncate", caller);
  return NFS4_OK;
}

nfsstat4 FromDataServer(const Status& s) {
  switch (s.code()) {
    case Code::kOk: return NFS4_OK;
    case Code::kUnavailable:
    case Code::kTimeout: return NFS4ERR_DELAY;
    case Code::kNoSpace: return NFS4ERR_NOSPC;
    default:
      if (s.os_errno() == EDQUOT) return NFS4ERR_DQUOT;
      if (s.os_errno() == EFBIG) return NFS4ERR_FBIG;
      if (s.os_errno() == EROFS) return NFS4ERR_ROFS;
      LOG_WARN("data server: %s", s.ToString().c_str());
      return NFS4ERR_IO;
  }
}

Status Mds::ConfirmClient(const SessionTable::Confirmation& conf) {
  meta::ClientRecord c;
  c.clientid = conf.id;
  c.owner = conf.owner;
  std::memcpy(&c.verifier, conf.verifier.data(), 8);
  c.flags = meta::ClientRecord::kConfirmed;
  c.created = meta::NowRealtime();
  return meta::RunTxn(*store_, [&](meta::Txn& t) -> Status {
    for (clientid4 old : conf.replaced) LOOM_RETURN_IF_ERROR(meta::DeleteClient(t, old));
    return meta::PutClient(t, c);
  });
}

Status Mds::PersistClient(clientid4 id, const std::string& owner, const verifier4& verf,
                          bool reclaim_complete) {
  meta::ClientRecord c;
  c.clientid = id;
  c.owner = owner;
  std::memcpy(&c.verifier, verf.data(), 8);
  c.flags = meta::ClientRecord::kConfirmed;
  if (reclaim_complete) c.flags |= meta::ClientRecord::kReclaimComplete;
  c.created = meta::NowRealtime();
  return meta::RunTxn(*store_, [&](meta::Txn& t) { return meta::PutClient(t, c); });
}

}  // namespace loom::nfs4
