// loom-mds: the NFSv4.1/4.2 metadata server. Wires the COMPOUND engine to the session table,
// the open/lock state, the namespace in the metadata store, and the data servers that hold
// file contents (proxied I/O until Flex Files layouts exist).
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>

#include "common/siphash.h"
#include "meta/kv.h"
#include "meta/namespace.h"
#include "nfs4/compound.h"
#include "nfs4/sessions.h"
#include "nfs4/size_locks.h"
#include "rpc/server.h"

namespace loom::mds {
class DataServerPool;
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
  nfsstat4 TruncateData(uint64_t ino, uint64_t size);
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
  // The server's write verifier for proxied writes (changes on restart).
  const verifier4& write_verifier() const { return write_verf_; }
  // Serializes size changes of a file across data servers and store (size_locks.h).
  SizeLocks& size_locks() { return size_locks_; }

 private:
  void BuildOpTable();
  void RefreshFsStats();
  void EndGrace();
  void ReleaseOrphans();

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
  std::unordered_map<uint64_t, meta::Layout> layouts_;    // guarded by mu_
  SizeLocks size_locks_;
};

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

// Maps a metadata-layer error (meta/errors.h) to nfsstat4, the one place that does.
nfsstat4 FromMeta(const Status& s);
// Maps a data-server error (mds/data_servers.h) to nfsstat4.
nfsstat4 FromDataServer(const Status& s);

}  // namespace loom::nfs4
