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
#include <string>

#include "meta/kv.h"

namespace loom::meta {

// Thread-safe.
class MemKvStore final : public KvStore {
 public:
  struct Options {
    std::chrono::milliseconds lock_timeout{1000};
  };
  MemKvStore() : MemKvStore(Options{}) {}
  explicit MemKvStore(Options opts) : opts_(opts) {}

  Result<std::unique_ptr<Txn>> Begin() override;
  Status Sync() override;  // nothing to do: memory is not durable

  // Committed key count (for tests).
  size_t Size() const;

 private:
  class MemTxn;
  friend class MemTxn;

  const Options opts_;
  mutable std::mutex mu_;
  std::condition_variable lock_released_;
  std::map<std::string, std::string, std::less<>> data_;   // guarded by mu_
  std::map<std::string, uint64_t, std::less<>> locks_;     // key -> owning txn id; mu_
  uint64_t next_txn_id_ = 1;                               // mu_
};

}  // namespace loom::meta
