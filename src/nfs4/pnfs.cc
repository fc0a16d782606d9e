// The metadata server's side of pNFS beyond the operations themselves: which layout clients
// get (synthetic owner ids, stale mirrors), layout recalls over the back channel
// (CB_LAYOUTRECALL, RFC 8881 §20.3) with fencing of clients that do not return, data-server
// errors reported by clients, mirror resync and moving a file's bytes (RFC 8435 §2.2, §2.3).
#include <cstring>

#include "common/log.h"
#include "mds/data_servers.h"
#include "nfs4/attrs.h"
#include "nfs4/mds.h"
#include "nfs4/names.h"
#include "nfs4/state.h"

namespace loom::nfs4 {

namespace {

// Synthetic owners of data files (loosely coupled, RFC 8435 §2.2): even uids from 2^28 up,
// gid = uid, mode 0640. The READ layout's uid is uid + 1, which only the group read bit
// admits. Far above the ids of real users, and below 2^31 so that no tool reads them as
// negative.
constexpr uint32_t kSynBase = 0x10000000;
constexpr uint32_t kSynRange = 0x30000000;  // pairs
constexpr uint32_t kDataFileMode = 0640;

uint32_t SyntheticUid(uint64_t ino, uint32_t previous) {
  uint64_t x = ino * 0x9E3779B97F4A7C15ull ^ (uint64_t{previous} << 17) ^ previous;
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  uint32_t u = kSynBase + 2 * static_cast<uint32_t>(x % kSynRange);
  return u == previous ? u + 2 : u;
}

bool HasSyntheticOwner(const meta::Layout& l) {
  for (const auto& m : l.mirrors)
    for (const auto& f : m.files)
      if (f.uid < kSynBase) return false;
  return !l.mirrors.empty();
}

void SetOwnerIds(meta::Layout* l, uint32_t uid) {
  for (auto& m : l->mirrors)
    for (auto& f : m.files) f.uid = f.gid = uid;
}

}  // namespace

// --- Counters ---------------------------------------------------------------------------

void Mds::UseStats(StatsRegistry* reg) {
  stats_ = reg ? reg : &own_stats_;
  for (auto& p : op_stats_) p.store(nullptr, std::memory_order_relaxed);
}

void Mds::CountOp(nfs_opnum4 op, uint64_t us, const nfs_argop4& a, const nfs_resop4& r, nfsstat4 st) {
  if (op < 0 || op > OP_REMOVEXATTR) return;
  OpStats* s = op_stats_[op].load(std::memory_order_acquire);
  if (!s) {
    std::string name = OpName(op);
    if (name.rfind("OP_", 0) == 0) name.erase(0, 3);  // "nfs4.op.READ"
    s = stats_->Get("nfs4.op." + name);
    op_stats_[op].store(s, std::memory_order_release);
  }
  uint64_t in = 0, out = 0;
  if (op == OP_WRITE && a.opwrite) in = a.opwrite->data.size;
  if (op == OP_READ && r.opread && st == NFS4_OK) out = r.opread->resok4.data.size;
  s->Record(us, in, out, st != NFS4_OK);
}

void Mds::CountLayoutRefusal(nfsstat4 st) {
  stats_->Get(std::string("pnfs.layoutget_refused.") + nfsstat4_name(st))->Record(0, 0, 0, true);
}

void Mds::CountLayoutCommit() { stats_->Get("pnfs.layoutcommit")->Record(0, 0, 0, false); }

void Mds::NoteLayoutStats(uint32_t ds, uint64_t read_bytes, uint64_t write_bytes) {
  // LAYOUTSTATS counts are cumulative per layout; the entry keeps the latest report's bytes as
  // a running sum of reports, good enough to see which data servers carry the load.
  stats_->Get("pnfs.ds" + std::to_string(ds) + ".client_stats")->Record(0, write_bytes, read_bytes, false);
}

// --- Which layout clients get -------------------------------------------------------------

Status Mds::UpdateLayout(uint64_t ino, const std::function<Status(meta::Layout*)>& change) {
  // Called with layout_mu_ held.
  auto cur = meta::RunTxn(*store_, [&](meta::Txn& t) { return ns_->GetLayout(t, ino); });
  if (!cur.ok()) return cur.status();
  meta::Layout l = cur.value();
  LOOM_RETURN_IF_ERROR(change(&l));
  l.generation++;
  LOOM_RETURN_IF_ERROR(meta::RunTxn(*store_, [&](meta::Txn& t) { return ns_->SetLayout(t, ino, l); }));
  layout_cache_.Put(ino, l);
  return Status::Ok();
}

Result<meta::Layout> Mds::LayoutForClients(uint64_t ino, bool rw) {
  auto l = EnsureLayout(ino);
  if (!l.ok()) return l;
  bool need_ids = !HasSyntheticOwner(l.value());
  std::vector<size_t> down;
  if (rw) {
    for (size_t i = 0; i < l->mirrors.size(); i++) {
      if (MirrorIsStale(l->mirrors[i])) continue;
      for (const auto& f : l->mirrors[i].files)
        if (ds_->HealthOf(f.ds_id) == mds::Health::kDown) {
          down.push_back(i);
          break;
        }
    }
  }
  if (!need_ids && down.empty()) return l;
  std::lock_guard<std::mutex> g(layout_mu_);
  if (need_ids) {
    // Data files made before layouts existed (or by an older loom-mds) belong to root: give
    // them their synthetic owner before any client is told to use one.
    Status s = UpdateLayout(ino, [&](meta::Layout* nl) -> Status {
      if (HasSyntheticOwner(*nl)) return Status::Ok();
      uint32_t u = SyntheticUid(ino, 0);
      LOOM_RETURN_IF_ERROR(ds_->SetOwner(*nl, u, u, kDataFileMode));
      SetOwnerIds(nl, u);
      return Status::Ok();
    });
    if (!s.ok()) return s;
  }
  for (size_t m : down) {
    // A client with an RW layout writes every mirror it lists; a mirror on a down server
    // would stop all its writes. Leave it out, marked stale, so it is resynced before use.
    size_t good = 0;
    auto cur = LayoutOf(ino);
    if (!cur.ok()) return cur;
    for (size_t i = 0; i < cur->mirrors.size(); i++)
      if (i != m && !MirrorIsStale(cur->mirrors[i])) good++;
    if (good == 0) break;  // the only copy: nothing to hand out instead
    Status s = MarkMirrorStaleLocked(ino, m, "its data server is down");
    if (!s.ok()) return s;
  }
  ForgetLayout(ino);
  return LayoutOf(ino);
}

mds::Placement Mds::PlacementFor(uint64_t ino) {
  mds::Placement p;
  p.mirrors = std::max<uint32_t>(1, opts_.mirrors);
  p.stripes = std::max<uint32_t>(1, opts_.stripes);
  p.stripe_unit = opts_.stripe_unit;
  if (has_policies_.load()) {
    auto pol = meta::RunTxn(*store_, [&](meta::Txn& t) { return meta::GetPolicy(t, opts_.fsid, ino); });
    if (pol.ok() && *pol) {
      const meta::PlacementPolicy& q = **pol;
      if (q.mirrors) p.mirrors = q.mirrors;
      if (q.stripes) p.stripes = q.stripes;
      if (q.stripe_unit) p.stripe_unit = q.stripe_unit;
      p.require_labels = q.labels;
    }
  }
  // Born with its synthetic owner (loosely coupled security, RFC 8435 §2.2).
  p.uid = p.gid = SyntheticUid(ino, 0);
  p.mode = kDataFileMode;
  return p;
}

Status Mds::InheritPolicy(meta::Txn& t, uint64_t dir, uint64_t file) {
  if (!has_policies_.load()) return Status::Ok();
  auto eff = meta::EffectivePolicy(t, *ns_, dir);
  if (!eff.ok()) return eff.status();
  if (*eff == meta::PlacementPolicy{}) return Status::Ok();
  return meta::PutPolicy(t, opts_.fsid, file, *eff);
}

Status Mds::SetPolicy(uint64_t dir, const std::optional<meta::PlacementPolicy>& p) {
  Status s = meta::RunTxn(*store_, [&](meta::Txn& t) -> Status {
    auto n = ns_->GetAttr(t, dir);
    if (!n.ok()) return n.status();
    if (n->type != meta::FileType::kDir) return Status::Invalid("a placement policy is set on a directory");
    return meta::PutPolicy(t, opts_.fsid, dir, p);
  });
  if (s.ok() && p) has_policies_.store(true);
  return s;
}

bool Mds::ClientCanStripe(clientid4 client) {
  // Linux decodes one data server per mirror before 6.18 and fails the I/O (EIO) on more
  // (shared/notes/linux-flexfiles-client.md §2). Its EXCHANGE_ID names the kernel release.
  std::string impl = sessions_->ImplName(client);
  if (impl.rfind("Linux ", 0) != 0) return true;
  int major = 0, minor = 0;
  if (std::sscanf(impl.c_str() + 6, "%d.%d", &major, &minor) != 2) return false;
  return major > 6 || (major == 6 && minor >= 18);
}

nfsstat4 Mds::LayoutAllowed(clientid4 client, uint64_t ino, const meta::Layout& l) {
  if (l.stripe_count > 1 && !ClientCanStripe(client)) return NFS4ERR_LAYOUTUNAVAILABLE;
  std::lock_guard<std::mutex> g(recall_mu_);
  auto it = client_errors_.find({client, ino});
  if (it != client_errors_.end() && rpc::NowMs() < it->second.refuse_until_ms)
    return NFS4ERR_LAYOUTUNAVAILABLE;
  return NFS4_OK;
}

// --- Errors reported by clients -------------------------------------------------------------

void Mds::NoteDataServerError(clientid4 client, uint64_t ino, uint32_t ds, nfsstat4 st, nfs_opnum4 op) {
  stats_->Get("pnfs.ds" + std::to_string(ds) + ".client_errors")->Record(0, 0, 0, true);
  LOG_INFO("loom-mds: client %016llx reports %s from data server %u (%s) on file %llu",
           (unsigned long long)client, nfsstat4_name(st), ds, OpName(op), (unsigned long long)ino);
  // A client that cannot reach a data server may be the one cut off: the MDS checks the
  // server itself (soon, on the background thread) before marking it down for everyone.
  if (st == NFS4ERR_NXIO && ds_) {
    std::lock_guard<std::mutex> g(recall_mu_);
    to_ping_.insert(ds);
  }
  // The Linux client re-asks for a layout after each failed data-server I/O and would loop
  // on a data server that keeps failing (notes §5, §7): after a few errors on one file in a
  // short time it gets LAYOUTUNAVAILABLE, and does I/O through the MDS for two minutes.
  std::lock_guard<std::mutex> g(recall_mu_);
  ErrorWindow& w = client_errors_[{client, ino}];
  int64_t now = rpc::NowMs();
  if (now - w.first_ms > 60000) w = ErrorWindow{0, now, 0};
  if (++w.count >= 3) w.refuse_until_ms = now + 60000;
  if (client_errors_.size() > 100000) client_errors_.clear();
}

void Mds::NoteLayoutReturnBody(clientid4 client, uint64_t ino, const Bytes& body) {
  xdr::Decoder d(body.data, body.size, nullptr);
  ff_layoutreturn4 fr;
  if (!xdr_decode(d, fr)) {
    stats_->Get("pnfs.layoutreturn_bad_body")->Record(0, 0, 0, true);
    return;
  }
  for (const ff_ioerr4& e : fr.fflr_ioerr_report) {
    for (const device_error4& de : e.ffie_errors) {
      uint32_t id = 0;
      if (DsIdOfDevice(de.de_deviceid, &id)) NoteDataServerError(client, ino, id, de.de_status, de.de_opnum);
    }
  }
  for (const ff_iostats4& s : fr.fflr_iostats_report) {
    uint32_t id = 0;
    if (DsIdOfDevice(s.ffis_deviceid, &id)) NoteLayoutStats(id, s.ffis_read.ii_bytes, s.ffis_write.ii_bytes);
  }
}

// --- Recalls --------------------------------------------------------------------------------

void Mds::OnClientClosed(clientid4 client, uint64_t ino) {
  // RFC 8881 §18.43.3, logr_return_on_close: the layouts are returned with the last CLOSE.
  if (layouts_->Holders(ino).count(client) == 0) return;
  layouts_->ReturnAll(client, ino);
  OnLayoutReturned(client, ino);
}

bool Mds::HoldsLayout(clientid4 client, uint64_t ino) {
  return layouts_->Holders(ino).count(client) != 0;
}

void Mds::OnLayoutReturned(clientid4 client, uint64_t ino) { RecallAnswered(client, ino); }

void Mds::NoteRwLayout(uint64_t ino) {
  std::lock_guard<std::mutex> g(unsettled_mu_);
  unsettled_.insert(ino);
  unsettled_count_.store(unsettled_.size(), std::memory_order_release);
}

bool Mds::SizeUnsettled(uint64_t ino) {
  if (unsettled_count_.load(std::memory_order_acquire) == 0) return false;
  std::lock_guard<std::mutex> g(unsettled_mu_);
  return unsettled_.count(ino) != 0;
}

void Mds::SettleSize(meta::Inode* n) {
  if (!SizeUnsettled(n->ino)) return;
  // Decided before asking: a writer that gets its RW layout after this reads a size that
  // includes what the data servers hold now, and marks the file again.
  bool rw_left = false;
  for (const auto& [client, modes] : layouts_->Holders(n->ino)) rw_left |= (modes & kIoRw) != 0;
  auto l = LayoutOf(n->ino);
  if (!l.ok() || l->mirrors.empty()) return;
  auto on_ds = ds_->GetSize(*l);
  if (!on_ds.ok()) return;  // the recorded size, as without layouts; still unsettled
  if (*on_ds > n->size) {
    auto size_lock = size_locks_.Shared(n->ino);
    meta::SetAttrArgs sa;
    sa.size_at_least = *on_ds;
    auto grown = meta::RunTxn(*store_, [&](meta::Txn& t) { return ns_->SetAttr(t, n->ino, sa); });
    if (!grown.ok()) return;
    *n = *grown;
    stats_->Get("pnfs.size_settled_from_ds")->Record(0, 0, 0, false);
  }
  if (!rw_left) {
    std::lock_guard<std::mutex> g(unsettled_mu_);
    unsettled_.erase(n->ino);
    unsettled_count_.store(unsettled_.size(), std::memory_order_release);
  }
}

void Mds::RecallAnswered(clientid4 client, uint64_t ino) {
  bool done = false;
  {
    std::lock_guard<std::mutex> g(recall_mu_);
    auto it = recalls_.find(ino);
    if (it == recalls_.end()) return;
    it->second.waiting.erase(client);
    if (it->second.waiting.empty()) {
      recalls_.erase(it);
      done = true;
    }
  }
  if (done) {
    layouts_->EndRecall(ino);
    recall_cv_.notify_all();
  }
}

void Mds::RecallLayouts(uint64_t ino, const char* why, clientid4 except) {
  std::vector<RecallTarget> targets = layouts_->BeginRecall(ino, except);
  if (targets.empty()) {
    layouts_->EndRecall(ino);
    return;
  }
  {
    std::lock_guard<std::mutex> g(recall_mu_);
    Recall& r = recalls_[ino];
    if (!r.waiting.empty()) layouts_->EndRecall(ino);  // one recall per file at a time
    for (const auto& t : targets) r.waiting.insert(t.client);
    const int64_t timeout = opts_.recall_timeout_ms ? opts_.recall_timeout_ms
                                                    : int64_t{opts_.lease_seconds} * 1000;
    r.deadline_ms = rpc::NowMs() + timeout;
    r.why = why;
  }
  // A holder may have returned between BeginRecall and the registration above.
  {
    auto holders = layouts_->Holders(ino);
    for (const auto& t : targets)
      if (!holders.count(t.client)) RecallAnswered(t.client, ino);
  }
  stats_->Get("pnfs.recalls")->Record(0, 0, 0, false);
  LOG_INFO("loom-mds: recalling %zu layouts of file %llu (%s)", targets.size(), (unsigned long long)ino, why);
  for (const auto& t : targets) SendLayoutRecall(t, 0);
}

void Mds::SendLayoutRecall(const RecallTarget& t, int attempt) {
  SessionId sid{};
  uint32_t seq = 0, prog = NFS4_CALLBACK, minor = 1;
  auto bc = sessions_->BackChannelOf(t.client, &sid, &seq, &prog, &minor);
  if (!bc) {
    // No back channel: the client cannot be told. It is fenced at the deadline.
    LOG_WARN("loom-mds: no back channel to client %016llx for a layout recall", (unsigned long long)t.client);
    return;
  }
  auto args = std::make_shared<CB_COMPOUND4args>();
  args->minorversion = minor;  // the session's (§18.36.3: callbacks use its minor version)
  nfs_cb_argop4 s;
  s.argop = OP_CB_SEQUENCE;
  s.opcbsequence = std::make_unique<CB_SEQUENCE4args>();
  s.opcbsequence->csa_sessionid = sid;
  s.opcbsequence->csa_sequenceid = seq;
  s.opcbsequence->csa_slotid = 0;
  s.opcbsequence->csa_highest_slotid = 0;
  args->argarray.push_back(std::move(s));
  nfs_cb_argop4 lr;
  lr.argop = OP_CB_LAYOUTRECALL;
  lr.opcblayoutrecall = std::make_unique<CB_LAYOUTRECALL4args>();
  auto& la = *lr.opcblayoutrecall;
  la.clora_type = LAYOUT4_FLEX_FILES;
  la.clora_iomode = LAYOUTIOMODE4_ANY;
  la.clora_changed = true;  // the layout will differ: the client must not keep using it
  la.clora_recall.lor_recalltype = LAYOUTRECALL4_FILE;
  // The handle exactly as the client got it (handles are a function of fsid and ino).
  la.clora_recall.lor_layout.lor_fh = Bytes::Copy(SealFh(fh_key_, MdsHandle{opts_.fsid, t.file}));
  la.clora_recall.lor_layout.lor_offset = 0;
  la.clora_recall.lor_layout.lor_length = NFS4_UINT64_MAX;
  la.clora_recall.lor_layout.lor_stateid = t.stateid;
  args->argarray.push_back(std::move(lr));
  RecallTarget target = t;
  // AUTH_SYS: the Linux client's callback service takes AUTH_NONE for CB_NULL only
  // (fs/nfs/callback.c) and answers anything else with an RPC error; AUTH_SYS is the callback
  // security its CREATE_SESSION asks for (csa_sec_parms).
  static const rpc::Cred kCallbackCred = rpc::Cred::Sys(0, 0, {}, "loom-mds");
  bc->CallAsync(prog, NFS_CB, CB_COMPOUND, kCallbackCred, [args](xdr::Encoder& e) { xdr_encode(e, *args); },
                [this, target, attempt, sid](Result<rpc::Reply> r) {
                  nfsstat4 st = NFS4ERR_SERVERFAULT;
                  if (r.ok()) {
                    xdr::Decoder d = r->results();
                    CB_COMPOUND4res res;
                    if (xdr_decode(d, res)) {
                      st = res.status;
                      sessions_->SetCallbackPath(sid, true);
                    }
                  } else {
                    sessions_->SetCallbackPath(sid, false);
                  }
                  stats_->Get(std::string("pnfs.recall_reply.") + nfsstat4_name(st))->Record(0, 0, 0, st != NFS4_OK);
                  if (st == NFS4ERR_NOMATCHING_LAYOUT || st == NFS4ERR_BAD_STATEID ||
                      st == NFS4ERR_OLD_STATEID) {
                    // §20.3.3: the client holds nothing of it (or no longer this layout: it
                    // returned it after a data-server error and has asked again): as good as
                    // returned; its later LAYOUTGETs start from its open stateid.
                    layouts_->ReturnAll(target.client, target.file);
                    RecallAnswered(target.client, target.file);
                  } else if (st == NFS4ERR_DELAY && attempt < 50) {
                    // The client is busy with its layout (§20.3.4): ask again shortly, from
                    // the background thread.
                    std::lock_guard<std::mutex> g(recall_mu_);
                    recall_retries_.push_back({target, attempt + 1, rpc::NowMs() + 100});
                  } else if (st != NFS4_OK) {
                    LOG_INFO("loom-mds: layout recall of file %llu from client %016llx: %s",
                             (unsigned long long)target.file, (unsigned long long)target.client,
                             nfsstat4_name(st));
                  }
                  // NFS4_OK: the client sends LAYOUTRETURN when its I/O has drained.
                });
}

bool Mds::WaitRecall(uint64_t ino, int timeout_ms) {
  std::unique_lock<std::mutex> g(recall_mu_);
  return recall_cv_.wait_for(g, std::chrono::milliseconds(timeout_ms),
                             [&] { return recalls_.count(ino) == 0; });
}

void Mds::CheckRecallDeadlines() {
  std::vector<std::pair<uint64_t, std::set<clientid4>>> late;
  {
    std::lock_guard<std::mutex> g(recall_mu_);
    int64_t now = rpc::NowMs();
    for (auto it = recalls_.begin(); it != recalls_.end();) {
      if (now < it->second.deadline_ms) {
        ++it;
        continue;
      }
      late.emplace_back(it->first, std::move(it->second.waiting));
      it = recalls_.erase(it);
    }
  }
  for (auto& [ino, clients] : late) {
    // §12.5.5.2: a client that does not return a recalled layout in time loses it. The data
    // servers cannot revoke anything themselves, so the file's data files change owner: the
    // late client's ids get NFS3ERR_ACCES there (RFC 8435 §2.2: fencing).
    LOG_WARN("loom-mds: %zu clients did not return layouts of file %llu in time: fencing",
             clients.size(), (unsigned long long)ino);
    for (clientid4 c : clients) layouts_->ReturnAll(c, ino);
    Status s = Fence(ino);
    if (!s.ok()) LOG_WARN("loom-mds: fencing file %llu: %s", (unsigned long long)ino, s.ToString().c_str());
    layouts_->EndRecall(ino);
    recall_cv_.notify_all();
  }
}

Status Mds::Fence(uint64_t ino) {
  std::lock_guard<std::mutex> g(layout_mu_);
  Status s = UpdateLayout(ino, [&](meta::Layout* l) -> Status {
    uint32_t prev = l->mirrors.empty() || l->mirrors[0].files.empty() ? 0 : l->mirrors[0].files[0].uid;
    uint32_t u = SyntheticUid(ino, prev);
    LOOM_RETURN_IF_ERROR(ds_->SetOwner(*l, u, u, kDataFileMode));
    SetOwnerIds(l, u);
    return Status::Ok();
  });
  if (s.ok()) LOG_INFO("loom-mds: fenced file %llu (new data-file owner)", (unsigned long long)ino);
  stats_->Get("pnfs.fenced")->Record(0, 0, 0, !s.ok());
  return s;
}

// --- Stale mirrors and resync -----------------------------------------------------------------

Status Mds::MarkMirrorStale(uint64_t ino, size_t m, const std::string& why) {
  std::lock_guard<std::mutex> g(layout_mu_);
  return MarkMirrorStaleLocked(ino, m, why);
}

Status Mds::MarkMirrorStaleLocked(uint64_t ino, size_t m, const std::string& why) {
  Status s = UpdateLayout(ino, [&](meta::Layout* l) -> Status {
    if (m >= l->mirrors.size()) return Status::Invalid("no such mirror");
    l->mirrors[m].stale = true;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  LOG_WARN("loom-mds: mirror %zu of file %llu is stale (%s)", m, (unsigned long long)ino, why.c_str());
  stats_->Get("pnfs.mirrors_stale")->Record(0, 0, 0, false);
  {
    std::lock_guard<std::mutex> r(recall_mu_);
    stale_files_.insert(ino);
  }
  // Layouts that list the stale mirror must go: their holders would read old bytes from it
  // once its server is back.
  RecallLayouts(ino, "a mirror went stale");
  return Status::Ok();
}

void Mds::ResyncStaleMirrors() {
  std::vector<uint64_t> files;
  {
    std::lock_guard<std::mutex> r(recall_mu_);
    files.assign(stale_files_.begin(), stale_files_.end());
  }
  for (uint64_t ino : files) {
    auto l = LayoutOf(ino);
    if (!l.ok()) {
      std::lock_guard<std::mutex> r(recall_mu_);
      stale_files_.erase(ino);
      continue;
    }
    std::vector<size_t> ready;
    bool any = false;
    for (size_t i = 0; i < l->mirrors.size(); i++) {
      if (!l->mirrors[i].stale) continue;
      any = true;
      bool up = true;
      for (const auto& f : l->mirrors[i].files)
        if (ds_->Ping(f.ds_id).ok() == false) up = false;
      if (up) ready.push_back(i);
    }
    if (!any) {
      std::lock_guard<std::mutex> r(recall_mu_);
      stale_files_.erase(ino);
      continue;
    }
    if (ready.empty()) continue;
    // Nobody may write while the copy runs: layouts are recalled (LAYOUTGET answers
    // RECALLCONFLICT meanwhile) and the MDS's own writes wait on the size lock.
    layouts_->Block(ino);
    RecallLayouts(ino, "resync");
    WaitRecall(ino, static_cast<int>(opts_.lease_seconds) * 1000 + 1000);
    Status s;
    {
      auto excl = size_locks_.Exclusive(ino);
      auto cur = LayoutOf(ino);
      meta::Inode n;
      auto in = meta::RunTxn(*store_, [&](meta::Txn& t) { return ns_->GetAttr(t, ino); });
      if (!cur.ok() || !in.ok()) {
        layouts_->EndRecall(ino);
        continue;
      }
      n = in.value();
      // Bytes a client wrote to the good mirrors but never LAYOUTCOMMITted (its layout was
      // revoked, say) lie past the size the MDS knows: copy up to the larger of the two.
      uint64_t size = n.size;
      if (auto on_ds = ds_->GetSize(cur.value()); on_ds.ok()) size = std::max(size, *on_ds);
      for (size_t m : ready) {
        s = ds_->ResyncMirror(cur.value(), m, size);
        if (!s.ok()) break;
        std::lock_guard<std::mutex> g(layout_mu_);
        s = UpdateLayout(ino, [&](meta::Layout* nl) -> Status {
          if (m < nl->mirrors.size()) nl->mirrors[m].stale = false;
          return Status::Ok();
        });
        if (!s.ok()) break;
        LOG_INFO("loom-mds: mirror %zu of file %llu resynced (%llu bytes)", m, (unsigned long long)ino,
                 (unsigned long long)size);
        stats_->Get("pnfs.mirrors_resynced")->Record(0, size, 0, false);
      }
    }
    layouts_->EndRecall(ino);
    if (!s.ok()) LOG_WARN("loom-mds: resync of file %llu: %s", (unsigned long long)ino, s.ToString().c_str());
  }
}

// --- Moving a file's bytes ------------------------------------------------------------------

Status Mds::MoveData(uint64_t ino, const std::vector<uint32_t>& ds_ids) {
  auto cur = LayoutForClients(ino);
  if (!cur.ok()) return cur.status();
  const meta::Layout old = cur.value();
  const size_t want = old.mirrors.size() * old.stripe_count;
  if (ds_ids.size() != want)
    return Status::Invalid("the file has " + std::to_string(old.mirrors.size()) + " mirrors of " +
                                   std::to_string(old.stripe_count) + " stripes: name " +
                                   std::to_string(want) + " data servers");
  mds::Placement p;
  p.mirrors = static_cast<uint32_t>(old.mirrors.size());
  p.stripes = old.stripe_count;
  p.stripe_unit = old.stripe_unit;
  p.uid = p.gid = old.mirrors[0].files[0].uid;
  p.mode = kDataFileMode;
  // A generation above every one the layout has: the new names never collide with the old
  // data files, and the GC worker does not take them for leftovers mid-copy.
  auto made = ds_->CreateDataFilesOn(opts_.fsid, ino, p, ds_ids, mds::NextNameGen(old));
  if (!made.ok()) return made.status();
  meta::Layout next = made.value();
  auto size_now = [&]() -> Result<meta::Inode> {
    return meta::RunTxn(*store_, [&](meta::Txn& t) { return ns_->GetAttr(t, ino); });
  };
  // 1. Bulk copy while clients keep reading and writing the old data files.
  auto n1 = size_now();
  if (!n1.ok()) return n1.status();
  Status s = ds_->CopyRange(old, next, 0, n1->size, n1->size);
  if (!s.ok()) {
    (void)ds_->AbandonDataFiles(opts_.fsid, ino, next);
    return s;
  }
  // 2. Recall: clients commit what they wrote and return their layouts; new LAYOUTGETs get
  // RECALLCONFLICT and MDS writes wait on the size lock until the switch.
  // Writers with a layout write the data servers without the MDS seeing it (until their
  // LAYOUTCOMMIT, which a revoked one never sends): with any, the catch-up copies everything.
  bool rw_held = false;
  for (const auto& [c, io] : layouts_->Holders(ino)) rw_held |= (io & kIoRw) != 0;
  layouts_->Block(ino);
  RecallLayouts(ino, "data move");
  WaitRecall(ino, static_cast<int>(opts_.lease_seconds) * 1000 + 1000);
  {
    auto excl = size_locks_.Exclusive(ino);
    // 3. Catch up: whatever changed since the bulk copy. The change attribute and size tell
    // what the MDS saw; a client whose layout was revoked at the deadline may have written
    // (and committed on the data servers) past the size it could no longer LAYOUTCOMMIT, so
    // the old data files' own size counts too: nothing acknowledged there is left behind.
    auto n2 = size_now();
    uint64_t end = 0;
    if (!n2.ok()) {
      s = n2.status();
    } else {
      end = n2->size;
      auto on_ds = ds_->GetSize(old);
      if (!on_ds.ok()) s = on_ds.status();
      else end = std::max(end, *on_ds);
    }
    if (s.ok() && (rw_held || n2->change != n1->change || end != n1->size))
      s = ds_->CopyRange(old, next, 0, end, end);
    // A fence while the recall was out gave the old data files a new owner: the new ones take
    // it too, or the fenced client's ids would work on them.
    if (s.ok()) {
      auto cur = LayoutOf(ino);
      if (!cur.ok()) s = cur.status();
      else if (!cur->mirrors.empty() && !cur->mirrors[0].files.empty() &&
               cur->mirrors[0].files[0].uid != next.mirrors[0].files[0].uid) {
        const uint32_t u = cur->mirrors[0].files[0].uid;
        s = ds_->SetOwner(next, u, u, kDataFileMode);
        if (s.ok()) SetOwnerIds(&next, u);
      }
    }
    if (s.ok() && end > n2->size) {
      meta::SetAttrArgs sa;
      sa.size_at_least = end;
      s = meta::RunTxn(*store_, [&](meta::Txn& t) { return ns_->SetAttr(t, ino, sa).status(); });
    }
    // 4. Switch: the new layout replaces the old in one commit, which also queues the old data
    // files for removal.
    if (s.ok()) {
      std::lock_guard<std::mutex> g(layout_mu_);
      next.generation = old.generation + 1;
      s = meta::RunTxn(*store_, [&](meta::Txn& t) { return ns_->ReplaceLayout(t, ino, next); });
      if (s.ok()) layout_cache_.Put(ino, next);
    }
  }
  layouts_->EndRecall(ino);
  if (!s.ok()) {
    (void)ds_->AbandonDataFiles(opts_.fsid, ino, next);
    return s;
  }
  stats_->Get("pnfs.moves")->Record(0, n1->size, 0, false);
  LOG_INFO("loom-mds: moved the data of file %llu", (unsigned long long)ino);
  return Status::Ok();
}

// --- Background work -------------------------------------------------------------------------

void Mds::StartBackground() {
  std::lock_guard<std::mutex> g(recall_mu_);
  if (background_.joinable()) return;
  stopping_ = false;
  background_ = std::thread([this] { BackgroundLoop(); });
}

void Mds::StopBackground() {
  {
    std::lock_guard<std::mutex> g(recall_mu_);
    stopping_ = true;
  }
  recall_cv_.notify_all();
  if (background_.joinable()) background_.join();
}

void Mds::BackgroundLoop() {
  int64_t last_resync = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> g(recall_mu_);
      recall_cv_.wait_for(g, std::chrono::milliseconds(200), [&] { return stopping_; });
      if (stopping_) return;
    }
    CheckRecallDeadlines();
    std::vector<RecallRetry> due;
    {
      std::lock_guard<std::mutex> g(recall_mu_);
      const int64_t now = rpc::NowMs();
      for (auto it = recall_retries_.begin(); it != recall_retries_.end();) {
        if (it->at_ms <= now) {
          due.push_back(*it);
          it = recall_retries_.erase(it);
        } else {
          ++it;
        }
      }
    }
    std::set<uint32_t> ping;
    {
      std::lock_guard<std::mutex> g(recall_mu_);
      ping.swap(to_ping_);
    }
    for (uint32_t id : ping) {
      Status ps = ds_ ? ds_->Ping(id) : Status::Ok();  // marks the server down when it fails
      if (!ps.ok()) LOG_WARN("loom-mds: data server %u reported unreachable and does not answer: %s", id, ps.ToString().c_str());
    }
    for (const auto& r : due) {
      if (layouts_->Holders(r.target.file).count(r.target.client)) SendLayoutRecall(r.target, r.attempt);
    }
    if (ds_ && rpc::NowMs() - last_resync > 1000) {
      last_resync = rpc::NowMs();
      ResyncStaleMirrors();
    }
  }
}

}  // namespace loom::nfs4
