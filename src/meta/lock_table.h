// LockTable: exclusive per-key row locks for RocksKvStore's transactions (kv.h's contract:
// GetForUpdate, Put and Delete lock a key until Commit/Rollback; a lock not granted within the
// timeout, or one that would close a wait cycle, fails with kConflict).
//
// Why the store has its own instead of RocksDB's TransactionDB: a loom-mds change locks and
// writes a handful of keys and then commits one WriteBatch. RocksDB's pessimistic transaction
// adds, per change, a lock manager round per key, an indexed write batch (a skiplist insert per
// write and a batch search before every read of the database) and a transaction object; at 16
// changes in flight that was a large share of loom-mds's CPU per change. Here a lock is a hash
// insert under one of 64 stripe mutexes; nobody waits unless two changes touch one key.
//
// Deadlocks: a transaction waits for at most one key at a time, held by one owner, so the
// wait-for graph is a set of chains. Before it waits, a transaction follows the chain from the
// holder; reaching itself means the wait would close a cycle, and it is refused at once (the
// caller rolls back, releasing what it holds, and RunTxn reruns it). An edge left by a waiter
// that has just been granted can make a false cycle; that costs one retry, never a missed one.
//
// Thread-safe. Owners are nonzero ids the caller hands out (one per transaction).
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/status.h"

namespace loom::meta {

class LockTable {
 public:
  static constexpr size_t kStripes = 64;

  // detect_deadlocks false: a wait cycle ends only by the timeout.
  explicit LockTable(bool detect_deadlocks = true) : detect_deadlocks_(detect_deadlocks) {}

  // Locks key for owner, waiting up to `timeout` (0: fail at once if another holds it).
  // OK also when owner already holds it. kConflict on timeout or a wait cycle; `*would_wait`
  // (when given) is set when a lock was refused without waiting because timeout is 0.
  Status Lock(uint64_t owner, std::string_view key, std::chrono::milliseconds timeout,
              bool* would_wait = nullptr);
  // Releases key if owner holds it.
  void Unlock(uint64_t owner, std::string_view key);

  // Locks held now, and transactions waiting for one (tests).
  size_t held() const;
  size_t waiting() const;

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  struct Stripe {
    mutable std::mutex mu;
    std::condition_variable released;
    std::unordered_map<std::string, uint64_t, Hash, std::equal_to<>> owner;  // key -> owner
    int waiters = 0;
  };
  Stripe& StripeOf(std::string_view key) { return stripes_[Hash()(key) % kStripes]; }
  // Records that `waiter` waits for `holder`; false (and nothing recorded) if `holder`'s
  // chain of waits leads back to `waiter`.
  bool AddWait(uint64_t waiter, uint64_t holder);
  void EndWait(uint64_t waiter);

  const bool detect_deadlocks_;
  std::array<Stripe, kStripes> stripes_;
  mutable std::mutex waits_mu_;  // taken after a stripe's mutex, never before
  std::unordered_map<uint64_t, uint64_t> waits_for_;  // waiter -> holder
};

}  // namespace loom::meta
