// loom-mds: the NFSv4.1/4.2 metadata server. Wires the COMPOUND engine to the session table,
// the open/lock state, the namespace in the metadata store, and the data servers that hold
// file contents (proxied I/O until Flex Files layouts exist).
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <condition_variable>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <string>
#include <unordered_map>

#include "common/siphash.h"
#include "common/stats.h"
#include "meta/kv.h"
#include "meta/namespace.h"
#include "meta/policy.h"
#include "nfs4/compound.h"
#include "nfs4/layout_cache.h"
#include "nfs4/layouts.h"
#include "nfs4/sessions.h"
#include "nfs4/size_locks.h"
#include "rpc/server.h"

namespace loom::mds {
class DataServerPool;
struct Placement;
}

namespace loom::nfs4 {

class StateManager;
struct FsStats;

class Mds {
 public:
  struct Options {
    std::string state_dir;        // handle secret
    uint32_t lease_seconds = 90;
    uint32_t grace_seconds = 90;  // after a restart, time for clients to reclaim
    uint64_t fsid = 1;
    uint32_t max_io = 1u << 20;   // READ/WRITE size advertised (maxread/maxwrite)
    // The namespace root made on the first start (0755 root:root: only root adds names there).
    uint32_t root_mode = 0755;
    uint32_t root_uid = 0, root_gid = 0;
    // pNFS (RFC 8435 Flexible File layouts): EXCHANGE_ID answers USE_PNFS_MDS and clients get
    // layouts; off, every byte goes through the MDS (clients without pNFS always do).
    bool pnfs = true;
    // Default placement of a new file's data (a directory's policy overrides it).
    uint32_t mirrors = 1, stripes = 1;
    uint64_t stripe_unit = 1u << 20;
    // How long a client has to return a recalled layout before it is fenced (0: the lease).
    uint32_t recall_timeout_ms = 0;
    // Run to completion: COMPOUNDs run on the RPC event loop as long as their operations
    // can be answered from memory (RunCompound); off, every COMPOUND goes to a worker.
    bool run_to_completion = true;
  };
  Mds(Options o, meta::KvStore* store, mds::DataServerPool* ds);
  ~Mds();

  // Makes the filesystem on first start, loads the handle secret and the client records of
  // the previous boot (they may reclaim during the grace period).
  Status Init();
  // NFS program 100003 version 4: NULL and COMPOUND.
  rpc::ProgramDesc Program();
  // Periodic work: lease expiry, end of grace.
  void Tick();

  // For operations.
  const OpDesc* LookupOp(nfs_opnum4 op) const;
  SessionTable& sessions() { return *sessions_; }
  StateManager& state() { return *state_; }
  meta::KvStore& store() { return *store_; }
  meta::Namespace& ns() { return *ns_; }
  mds::DataServerPool* data_servers() { return ds_; }
  const Options& options() const { return opts_; }
  const SipKey& fh_key() const { return fh_key_; }
  std::string RootFh() const { return SealFh(fh_key_, MdsHandle{opts_.fsid, ns_->root()}); }
  bool InGrace() const;
  // Called after each successful SEQUENCE (lease bookkeeping, status flags).
  void OnSequence(Cx& cx, SEQUENCE4resok& res);
  // Whether a file has opens (decides orphan vs. delete when its last name goes).
  bool IsOpen(uint64_t ino);
  // After a name went away: drop cached layouts of a deleted file.
  void AfterUnlink(const meta::Unlinked& u);
  // Sets a regular file's data size on its data servers (SETATTR/OPEN truncation).
  // Other clients' layouts of the file are recalled when it shrinks (their cached layouts
  // and writes in flight would otherwise land past the new end).
  nfsstat4 TruncateData(uint64_t ino, uint64_t size, clientid4 caller = 0);
  const FsStats& fs_stats() const;
  // The layout of a regular file (cached; layouts change only when data moves).
  Result<meta::Layout> LayoutOf(uint64_t ino);
  // The layout, creating the data files first if the file has none yet (data files are made
  // at the first write, so creating files costs the data servers nothing).
  Result<meta::Layout> EnsureLayout(uint64_t ino);
  void ForgetLayout(uint64_t ino);
  // Grace (RFC 8881 §8.4.2): whether `owner` had state before the restart and may reclaim.
  bool MayReclaim(const std::string& owner) const;
  // A client of the previous boot finished reclaiming (RECLAIM_COMPLETE); grace ends early
  // once all of them have.
  void ReclaimDone(const std::string& owner);
  // Persists a confirmed client record (RFC 8881 §8.4.3) before its CREATE_SESSION reply.
  Status PersistClient(clientid4 id, const std::string& owner, const verifier4& verf,
                       bool reclaim_complete);
  // CREATE_SESSION confirming a client: its record is persisted and the records it replaces
  // (earlier incarnations of the same owner) are deleted, in one commit.
  Status ConfirmClient(const SessionTable::Confirmation& c);
  // Whether `client` may take locking state other than by reclaim: not during grace, and
  // not before its own RECLAIM_COMPLETE (RFC 8881 §8.4.2.1, §18.51.3); else NFS4ERR_GRACE.
  bool NonReclaimAllowed(clientid4 client);
  // CB_NULL over the session's back channel (RFC 8881 §20): verifies the path callbacks will
  // take; a failure shows as SEQ4_STATUS_CB_PATH_DOWN. Asynchronous.
  void ProbeBackChannel(const SessionId& sid);
  // Drops a client's open, lock and orphan state (not its durable record).
  void DropClientState(clientid4 id);
  // Drops a client's state and its durable record (DESTROY_CLIENTID, lease expiry).
  Status ForgetClient(clientid4 id);
  // The last open of `ino` went away.
  void OnLastClose(uint64_t ino);
  // Whether `client` holds a layout of `ino`.
  bool HoldsLayout(clientid4 client, uint64_t ino);
  // The server's write verifier for proxied writes (changes on restart).
  const verifier4& write_verifier() const { return write_verf_; }
  // Serializes size changes of a file across data servers and store (size_locks.h).
  SizeLocks& size_locks() { return size_locks_; }

  // --- Counters: per NFSv4 operation ("nfs4.op.READ" ...) and pNFS events ("pnfs.*") ---
  // Points the counters at `reg` (the RPC server's, so that one JSON holds everything). Call
  // before serving.
  void UseStats(StatsRegistry* reg);
  StatsRegistry& stats() { return *stats_; }
  void CountOp(nfs_opnum4 op, uint64_t us, const nfs_argop4& a, const nfs_resop4& r, nfsstat4 st);

  // --- pNFS (layouts.cc for state, ops_layout.cc for the operations, pnfs.cc for this) ---
  LayoutTable& layouts() { return *layouts_; }
  // The layout clients get for `ino` (data files made if the file has none; synthetic owner
  // ids given to data files that have none; for RW, a mirror whose data server is down is
  // marked stale first, since the client will write without it).
  Result<meta::Layout> LayoutForClients(uint64_t ino, bool rw = false);
  // Whether `client` may have a layout of `ino` now: LAYOUTUNAVAILABLE for a striped layout
  // to a client that cannot decode one (Linux before 6.18) and for a client whose recent data
  // server errors on the file say it should do I/O through the MDS for a while.
  nfsstat4 LayoutAllowed(clientid4 client, uint64_t ino, const meta::Layout& l);
  void CountLayoutRefusal(nfsstat4 st);
  void CountLayoutCommit();
  // LAYOUTRETURN's ff_layoutreturn4 body (RFC 8435 §9): errors and statistics.
  void NoteLayoutReturnBody(clientid4 client, uint64_t ino, const Bytes& body);
  // A client reported an error of data server `ds` (LAYOUTERROR, LAYOUTRETURN ioerr).
  void NoteDataServerError(clientid4 client, uint64_t ino, uint32_t ds, nfsstat4 st, nfs_opnum4 op);
  void NoteLayoutStats(uint32_t ds, uint64_t read_bytes, uint64_t write_bytes);
  // Sizes written through layouts and not yet LAYOUTCOMMITted. Linux commits a flexfiles
  // layout's writes from inode writeback, which may come after the CLOSE and after the next
  // OPEN's GETATTR; a client that believed that GETATTR would put its next O_APPEND write
  // over its own last one (seen: "line 1, line 3" in the kernel-client test). A file with an
  // RW layout granted since its size was last settled is "unsettled"; GETATTR of its size
  // takes the data servers' size first (growing the recorded one, never shrinking it: RFC 8881
  // §12.5.4 lets the MDS ask the storage devices), and it is settled once no RW layout of it
  // is left. Memory only: after a restart, clients reclaim and LAYOUTCOMMIT (§18.42.3).
  void NoteRwLayout(uint64_t ino);
  void SettleSize(meta::Inode* n);
  bool SizeUnsettled(uint64_t ino);
  // A client returned (or dropped) its layouts of `ino`: ends its part of a recall.
  void OnLayoutReturned(clientid4 client, uint64_t ino);
  // The client's last open of `ino` closed: its layouts go with it (return on close).
  void OnClientClosed(clientid4 client, uint64_t ino);
  // CB_LAYOUTRECALL of every layout of `ino` (but `except`'s). Asynchronous: LAYOUTGETs of the
  // file get RECALLCONFLICT until every holder returned; a holder that does not return within
  // the recall timeout is fenced (Fence) and its layout state dropped.
  void RecallLayouts(uint64_t ino, const char* why, clientid4 except = 0);
  // Waits until no recall of `ino` is in progress; false on timeout.
  bool WaitRecall(uint64_t ino, int timeout_ms);
  // Changes the owner of every data file of `ino` to new synthetic ids: every layout handed
  // out so far stops working on the data servers (NFS3ERR_ACCES), new ones carry the new ids.
  Status Fence(uint64_t ino);
  // Marks mirror `m` of `ino`'s layout stale (it missed writes) and recalls the layouts that
  // list it. The resync thread copies it from a good mirror once its data server is up.
  Status MarkMirrorStale(uint64_t ino, size_t m, const std::string& why);
  // Moves `ino`'s bytes to data servers `ds_ids` (mirrors x stripes of the current layout,
  // mirror-major) while clients keep it open: copy, recall, catch up, switch, remove the old.
  Status MoveData(uint64_t ino, const std::vector<uint32_t>& ds_ids);
  // Resyncs every stale mirror whose data server is up (the resync thread calls it).
  void ResyncStaleMirrors();
  // Starts and stops the background thread (recall deadlines, resync).
  void StartBackground();
  void StopBackground();

 private:
  void BuildOpTable();
  void RefreshFsStats();
  void EndGrace();
  void ReleaseOrphans();

  struct Recall {
    std::set<clientid4> waiting;  // holders that have not returned yet
    int64_t deadline_ms = 0;
    std::string why;
  };
  void SendLayoutRecall(const RecallTarget& t, int attempt);
  void RecallAnswered(clientid4 client, uint64_t ino);
  void CheckRecallDeadlines();
  Status MarkMirrorStaleLocked(uint64_t ino, size_t m, const std::string& why);
  Status UpdateLayout(uint64_t ino, const std::function<Status(meta::Layout*)>& change);
  bool ClientCanStripe(clientid4 client);
  // Where a new file's data goes: its directory's policy (inherited), else the defaults.
  mds::Placement PlacementFor(uint64_t ino);
 public:
  // Placement policies (meta/policy.h). A new file takes its directory's effective policy in
  // its create transaction; nothing is read while no policy was ever set.
  Status InheritPolicy(meta::Txn& t, uint64_t dir, uint64_t file);
  Status SetPolicy(uint64_t dir, const std::optional<meta::PlacementPolicy>& p);
 private:
  void BackgroundLoop();

  Options opts_;
  meta::KvStore* store_;
  mds::DataServerPool* ds_;
  std::unique_ptr<meta::Namespace> ns_;
  std::unique_ptr<SessionTable> sessions_;
  std::unique_ptr<StateManager> state_;
  std::array<OpDesc, OP_REMOVEXATTR + 1> ops_{};
  SipKey fh_key_{};
  verifier4 write_verf_{};
  int64_t grace_end_ms_ = 0;
  std::atomic<bool> in_grace_{false};
  std::unique_ptr<FsStats> fs_stats_;
  mutable std::mutex mu_;
  std::mutex create_mu_;  // serializes data-file creation (EnsureLayout)
  std::set<std::string> reclaimable_;                     // guarded by mu_
  LayoutCache layout_cache_;  // stored layouts by inode (own locks)
  SizeLocks size_locks_;

  StatsRegistry own_stats_;
  StatsRegistry* stats_ = &own_stats_;
  std::array<std::atomic<OpStats*>, OP_REMOVEXATTR + 1> op_stats_{};
  std::unique_ptr<LayoutTable> layouts_;
  std::mutex layout_mu_;  // serializes changes of stored layouts (ids, stale marks, moves)
  std::mutex recall_mu_;
  std::condition_variable recall_cv_;
  std::map<uint64_t, Recall> recalls_;                      // guarded by recall_mu_
  // (client, ino) -> recent data-server errors, and until when layouts are refused.
  struct ErrorWindow {
    int count = 0;
    int64_t first_ms = 0;
    int64_t refuse_until_ms = 0;
  };
  std::map<std::pair<clientid4, uint64_t>, ErrorWindow> client_errors_;  // guarded by recall_mu_
  std::set<uint64_t> stale_files_;                           // guarded by recall_mu_
  std::mutex unsettled_mu_;
  std::set<uint64_t> unsettled_;  // files whose size may lag their data servers'; guarded by unsettled_mu_
  // unsettled_.size(), read without the mutex: GETATTR of a settled file takes no lock.
  std::atomic<size_t> unsettled_count_{0};
  std::atomic<bool> has_policies_{false};
  struct RecallRetry {
    RecallTarget target;
    int attempt = 0;
    int64_t at_ms = 0;
  };
  std::vector<RecallRetry> recall_retries_;                  // guarded by recall_mu_
  std::set<uint32_t> to_ping_;  // data servers clients could not reach; guarded by recall_mu_
  std::thread background_;
  bool stopping_ = false;                                    // guarded by recall_mu_
};

// Data-server device ids (ops_layout.cc): "loom" + 8 zero bytes + the data server's id.
std::array<uint8_t, NFS4_DEVICEID4_SIZE> DeviceIdOf(uint32_t ds_id);
bool DsIdOfDevice(const std::array<uint8_t, NFS4_DEVICEID4_SIZE>& d, uint32_t* id);

// Operation handlers, grouped by file (ops_*.cc). Registered in Mds::BuildOpTable.
nfsstat4 OpExchangeId(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpCreateSession(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpDestroySession(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpDestroyClientId(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpBindConnToSession(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpReclaimComplete(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpPutRootFh(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpPutPubFh(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpPutFh(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpGetFh(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpSaveFh(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpRestoreFh(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpSecinfo(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpSecinfoNoName(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpLookup(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpLookupp(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpAccess(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpGetattr(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpSetattr(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpVerify(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpNverify(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpCreate(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpLink(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpRemove(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpRename(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpReaddir(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpReadlink(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpOpen(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpClose(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpOpenDowngrade(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpTestStateid(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpFreeStateid(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpDelegReturn(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpLock(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpLockt(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpLocku(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpRead(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpWrite(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpCommit(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpSeek(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpAllocate(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpDeallocate(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpReadPlus(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpGetDirDelegation(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpLayoutGet(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpGetDeviceInfo(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpGetDeviceList(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpLayoutCommit(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpLayoutReturn(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpLayoutError(Cx&, const nfs_argop4&, nfs_resop4&);
nfsstat4 OpLayoutStats(Cx&, const nfs_argop4&, nfs_resop4&);

// Maps a metadata-layer error (meta/errors.h) to nfsstat4, the one place that does.
nfsstat4 FromMeta(const Status& s);
// Maps a data-server error (mds/data_servers.h) to nfsstat4.
nfsstat4 FromDataServer(const Status& s);

}  // namespace loom::nfs4
