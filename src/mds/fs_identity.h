// Who owns what, decided before loom-mds serves (issue 10: never destroy data because state was
// lost).
//
// Filesystem identity. Each filesystem has a 128-bit random id made when its store is made
// (V|fsid, meta::FsIdentity), written in hex as 32 lower-case digits. Its data files live on
// every data server in loom/<tree>/ (tree = the id in hex) beside an owner marker
// loom/<tree>/.owner holding the id; the pool refuses a tree whose marker names another id.
//
// Data-server identity (issue 10.8). Each data server export holds loom/ds-id, a 128-bit
// random id in hex written by the first metadata server that used it (over NFSv3, so any filer
// can be a data server). The store maps that id to the small number layouts use
// (K|uuid -> DataServerRecord), so the order of --ds flags does not matter. The record also
// keeps what the registry knows of the server across restarts: the address clients are told,
// its labels and whether it is draining. Servers added at run time (AddDataServer) need no
// --ds flag: PlanStart brings back every server the store knows.
//
// PlanStart decides, from the store and what the data servers hold:
//   store knows its filesystem (V present)   start; a data server whose loom/<tree>/.owner
//                                             names another filesystem is refused
//   store made before ids existed (F, no V)  adopt: new id, tree = "<fsid>" (the old name),
//                                             data-server ids by --ds position (as before)
//   store empty, data servers hold no tree   new filesystem
//   store empty, some loom/* tree exists     refuse (kExists), unless
//     StartMode::kForceNew                   new filesystem with a new id beside the old
//                                             trees, which are never touched
//     StartMode::kRecover                    adopt the one filesystem found (its id and
//                                             tree): after Mkfs, AdoptTree links each of its
//                                             data files into /lost+found, nothing is
//                                             truncated or removed
// With an empty store every data server must answer (else kUnavailable: "cannot check").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "mds/data_servers.h"
#include "meta/kv.h"
#include "meta/namespace.h"
#include "meta/records.h"

namespace loom::mds {

enum class StartMode { kNormal, kRecover, kForceNew };

// 16 random bytes; their 32-digit lower-case hex form; and back (false if malformed).
std::string NewUuid();
std::string UuidHex(const std::string& raw);
bool ParseUuidHex(std::string_view hex, std::string* raw);

struct StartPlan {
  meta::FsIdentity identity;
  // Ids resolved from the servers' ds-id files; advertised address and labels from the
  // command line when given there, else from the store, draining from the store; then the
  // servers the store knows that were not given (added at run time), at their last address.
  std::vector<DataServerConfig> servers;
  bool adopt_tree = false;                // kRecover took an existing tree: run AdoptTree
  bool had_namespace = false;             // the store held the namespace (F|fsid) already
  std::string summary;                    // what was decided, one line for the log
};

// Probes the data servers (addresses in `servers`; their ids are ignored), reads or writes
// their loom/ds-id, persists the identity and data-server records, and returns the plan.
// Refusals are kExists (a filesystem's files are there), kPermission (a tree of another
// filesystem), kUnavailable (cannot check), with a message meant for the operator.
// kRecover adopts the filesystem whose id (hex) is `recover_id`, or the only one found when
// it is empty.
Result<StartPlan> PlanStart(meta::KvStore& store, meta::FsId fsid,
                            std::vector<DataServerConfig> servers, StartMode mode,
                            const DataServerPool::Options& opts,
                            const std::string& recover_id = "");

// kRecover, after the namespace was made: every data file in loom/<tree> that no layout holds
// becomes /lost+found/<ino> (renamed on the data server to the new inode's name, so later
// removal finds it); the inode allocator moves past every number found. Idempotent: run it
// again after an interrupted recovery. Returns the number of files linked.
Result<size_t> AdoptTree(meta::KvStore& store, meta::Namespace& ns, DataServerPool& pool);

// Before serving: the intent records a previous run left (it died between creating data files
// and committing their layout). Each names a file this store made that no layout holds: it is
// removed and the record deleted. A server that is down keeps its records for the next start.
// Returns the number resolved. `settled_only` (the GC worker, while serving) resolves only the
// intents of files whose stored layout already holds data files of the intent's name
// generation on other servers (a placement that moved on after a failure): creations still
// in flight — a new file's, or a move's to a new generation — are left alone.
Result<size_t> ResolveIntents(meta::KvStore& store, meta::FsId fsid, DataServerPool& pool,
                              bool settled_only = false);

// The registry at run time. SaveRegistry writes the record (K|uuid) of every server of the
// pool whose UUID is known (DataServerConfig::uuid) with its address, advertised address
// (empty when it is the address), labels and draining state, and deletes the records of the
// servers the pool removed. Call it after AddServer, SetDraining or RemoveServer.
Status SaveRegistry(meta::KvStore& store, const DataServerPool& pool);

// `loom ds add`: reads (or writes) the new server's loom/ds-id, gives it the id the store
// has for that UUID, or a new one above every id of the store and the pool, adds it to the
// pool (DataServerPool::AddServer: it must answer) and saves the registry. kExists if that
// export is in the pool already. `c.id` and `c.uuid` are ignored. Returns the id.
Result<uint32_t> AddDataServer(meta::KvStore& store, DataServerPool& pool, DataServerConfig c);

// The CreateJournal over the store (P|fsid|ino|ds[|gen] records).
class StoreJournal : public CreateJournal {
 public:
  explicit StoreJournal(meta::KvStore* store) : store_(store) {}
  Result<bool> Intend(meta::FsId fsid, meta::Ino ino, uint32_t ds_id, uint32_t name_gen) override;
  Status Cancel(meta::FsId fsid, meta::Ino ino, uint32_t ds_id, uint32_t name_gen) override;

 private:
  meta::KvStore* const store_;
};

}  // namespace loom::mds
