// RocksKvStore: the embedded, persistent KvStore — a rocksdb::TransactionDB with pessimistic
// (lock-based) transactions, matching the contract in kv.h.
//
// Durability: WriteOptions.sync is on by default, so an OK Commit has reached stable storage
// (an acknowledged metadata change survives a crash or power loss). Commits from concurrent
// threads are group-committed by RocksDB's write thread: one leader appends the group's
// batches to the WAL and fsyncs once for all of them, so throughput grows with the number of
// workers committing at once. The MDS can also put several NFS operations into one Txn.
//
// This header does not include RocksDB's, so only rocks_kv.cc pays for them.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>

#include <cstdint>
#include <memory>
#include <string>

#include "meta/kv.h"

namespace rocksdb {
class TransactionDB;
}

namespace loom::meta {

// Thread-safe. The store must outlive every transaction begun on it.
class RocksKvStore final : public KvStore {
 public:
  struct Options {
    std::string path;
    // The WAL is on disk before Commit returns (group commit: concurrent commits share one
    // fsync). Off only for tests and benchmarks that say so.
    bool sync = true;
    bool create_if_missing = true;
    // How long a lock request waits before failing with kConflict.
    int64_t lock_timeout_ms = 1000;
    // Detect lock cycles at once (kConflict) instead of waiting for the timeout.
    bool deadlock_detect = true;
  };

  static Result<std::unique_ptr<RocksKvStore>> Open(const Options& opts);
  ~RocksKvStore() override;

  Result<std::unique_ptr<Txn>> Begin() override;

 private:
  class RocksTxn;
  RocksKvStore(Options opts, rocksdb::TransactionDB* db);
  // Returns once the WAL holds every commit made before the call on disk (group commit:
  // one caller syncs for all that are waiting).
  Status WaitDurable();

  const Options opts_;
  std::unique_ptr<rocksdb::TransactionDB> db_;
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  uint64_t sync_requested_ = 0;  // guarded by sync_mu_
  uint64_t sync_done_ = 0;       // guarded by sync_mu_
  bool syncing_ = false;         // guarded by sync_mu_
};

}  // namespace loom::meta
