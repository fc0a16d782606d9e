// MemKvStore: an in-memory KvStore with the same lock-based semantics as RocksKvStore
// (kv.h): reads see the latest commit plus the transaction's own writes; GetForUpdate, Put and
// Delete take exclusive per-key locks held to the end of the transaction, waiting at most
// `lock_timeout` (then kConflict; deadlocks also end that way). Writes are buffered in the
// transaction and applied atomically on Commit, so Rollback leaves nothing behind.
// For tests and for running loom-mds without persistence.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "meta/kv.h"

namespace loom::meta {

// Thread-safe.
class MemKvStore final : public KvStore {
 public:
  struct Options {
    std::chrono::milliseconds lock_timeout{1000};
    // Keep a second copy of the data as a disk would hold it, so that Restart() can model a
    // crash. Off for loom-mds without persistence (there is no disk to model).
    bool restartable = false;
  };
  MemKvStore() : MemKvStore(Options{}) {}
  explicit MemKvStore(Options opts) : opts_(opts) {}

  Result<std::unique_ptr<Txn>> Begin() override;
  Status Sync() override;  // nothing to do: memory is not durable
  // A commit is as durable as this store gets when it returns: nothing is ever owed.
  void WhenDurable(uint64_t, std::function<void()> fn) override { fn(); }
  void WaitUntilDurable(uint64_t) override {}

  // Committed key count (for tests).
  size_t Size() const;

  // Models a crash and restart of the process (tests' "survives a restart"): what a kSync
  // commit or Sync() made durable stays; kDeferred commits neither covered are lost, as they
  // would be from RocksDB's unsynced WAL; locks are released. A kSync commit makes every
  // commit before it durable too, as RocksKvStore's WAL sync does.
  // REQUIRES: Options::restartable, and no transaction open.
  void Restart();

 private:
  class MemTxn;
  friend class MemTxn;

  const Options opts_;
  mutable std::mutex mu_;
  std::condition_variable lock_released_;
  // A transaction's writes: key -> value, nullopt for a delete.
  using WriteSet = std::map<std::string, std::optional<std::string>, std::less<>>;
  // Applies `w` to the durable copy (under mu_).
  void MakeDurableLocked(const WriteSet& w);

  std::map<std::string, std::string, std::less<>> data_;   // guarded by mu_
  // With Options::restartable (guarded by mu_): the data as the "disk" holds it, and the
  // kDeferred commits since, oldest first, not yet in it.
  std::map<std::string, std::string, std::less<>> durable_;
  std::vector<WriteSet> unsynced_;
  std::map<std::string, uint64_t, std::less<>> locks_;     // key -> owning txn id; mu_
  uint64_t next_txn_id_ = 1;                               // mu_
};

}  // namespace loom::meta
