// RocksKvStore: the embedded, persistent KvStore — a rocksdb::DB with pessimistic (lock-based)
// transactions of its own, matching the contract in kv.h: row locks in a LockTable
// (lock_table.h), writes buffered in the transaction and committed as one WriteBatch. The
// database's files are those of RocksDB's TransactionDB, which this store used before (the
// same keys and values; a TransactionDB without prepared transactions writes nothing else).
//
// Durability (Options::sync, the default). A commit writes the WAL without syncing it, which
// makes it visible and releases its row locks; then the committer waits until a WAL fsync
// covers it. One waiting committer calls SyncWAL for everyone queued (group commit), so
// commits to one directory do not wait for each other's fsync under its lock. Because a
// commit is visible before it is durable, every other transaction end — read-only, kDeferred,
// rollback — first waits until the kSync commits it read are durable. The store keeps the keys
// of kSync commits not yet durable (registered before the commit's WAL write, so before anyone
// can see it); a Get or Scan that touches one of them remembers its ticket. A reader of keys
// nothing pending wrote does not wait, however busy the store is. kDeferred commits reach the
// WAL at once and are synced by Sync() or by the next kSync commit's sync.
//
// A failed WAL sync stops the process (kv.h, fail-stop): RocksDB keeps such a commit in its
// memtable and a retried fsync may succeed without the lost pages, so there is no safe way
// to go on.
//
// Ordering of the bookkeeping: every writing commit takes a ticket before its WAL write and
// settles it when the write returns. A sync covers the longest prefix of settled tickets
// (all of them were in the WAL file before SyncWAL began).
//
// Run to completion (NoBlockScope, kv.h): a commit made in the scope does not wait for its
// sync; WhenDurable hands its function to the syncer thread, which syncs the WAL for every
// such commit that has reached it (one fsync for all of them) and then runs the functions.
//
// This header does not include RocksDB's, so only rocks_kv.cc pays for them.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/poll_window.h"
#include "common/stats.h"
#include "meta/kv.h"
#include "meta/lock_table.h"
#include "meta/range_cache.h"
#include "meta/read_cache.h"

namespace rocksdb {
class DB;
class Env;
}

namespace loom::meta {

class WalFs;

// Thread-safe. The store must outlive every transaction begun on it.
class RocksKvStore final : public KvStore {
 public:
  struct Options {
    std::string path;
    // Commits are durable before they return (see above). Off only for tests and
    // benchmarks that say so.
    bool sync = true;
    bool create_if_missing = true;
    // How long a lock request waits before failing with kConflict.
    int64_t lock_timeout_ms = 1000;
    // Detect lock cycles at once (kConflict) instead of waiting for the timeout.
    bool deadlock_detect = true;
    // Fault injection, the seam leveldb's Env gives tests: when set, the database's files go
    // through a FileSystem wrapper that calls this before every sync of a file (fsync,
    // fdatasync, range sync) with the file's path. A non-OK result fails that sync with an
    // I/O error, as a failing disk would; the hook may also block, holding a commit between
    // "visible" and "durable". Tests only.
    std::function<Status(const std::string& path)> before_sync;
    // The Env the database's files go through (leveldb's Env seam); nullptr: RocksDB's
    // default. Not owned: it must outlive the store. Tests pass a fault-injecting one
    // (meta/fault_env.h) to cut the power, tear writes or fail calls. With before_sync too,
    // that hook wraps this Env's file system.
    rocksdb::Env* env = nullptr;
    // Bytes of committed values kept in memory for point reads (ReadCache, read_cache.h);
    // 0 turns the cache off.
    size_t read_cache_bytes = size_t{256} << 20;
    // Bytes of directory listings kept in memory for scans that page through a prefix
    // (RangeCache, range_cache.h; Txn::ScanPrefixFrom); 0 turns it off. 128 MiB holds a
    // listing of ~1.5 million entries.
    size_t listing_cache_bytes = size_t{128} << 20;
    // RocksDB's block cache (data, index and filter blocks of its tables).
    size_t block_cache_bytes = size_t{64} << 20;
    // Group commit: µs the syncer may wait before a WAL sync for more commits to share it,
    // while fewer replies wait than recently did at once (SyncerLoop). -1: half the recent
    // sync time (at most 1 ms); 0: never wait. One commit at a time never waits.
    int commit_delay_us = -1;
    // µs the syncer polls for new work (yielding the CPU) before it sleeps, adapted as the
    // event loops' polling is (common/poll_window.h); 0: it sleeps at once. Off by default:
    // on a 2-vCPU VM polling 100 µs cost a create at one change in flight 25-33 % more CPU
    // and won nothing at 1, 4 or 16 in flight (bench/README.md).
    int syncer_poll_us = 0;
    // WhenDurableSyncLater leaves the sync to its caller (the event loop syncs the WAL itself
    // once it has handled the events in hand, instead of waking the syncer) only while recent
    // syncs took at most this many µs, so a slow or stalling disk holds no loop. 0: always
    // the syncer. See RocksKvStore::SyncOwed.
    int inline_sync_max_us = 1000;
    // µs a transaction in a NoBlockScope (the event loop) yields, retrying, for a row lock
    // another transaction holds, before it fails as would-block (RocksTxn::LockKey); 0: at
    // once. Measured at 200 000 files, 16 in flight: 0 → 200 took removes 7 400-8 100/s →
    // 11 600-13 500/s and their CPU 162-177 → 98-109 µs (bench/README.md).
    int no_block_lock_wait_us = 200;
    // WAL files are written ahead with zeros in chunks of this many bytes, so that a commit's
    // sync overwrites blocks already on disk instead of growing the file (wal_prewrite.h);
    // 0: plain appends.
    uint64_t wal_prewrite_bytes = uint64_t{1} << 20;
    // With sync and the zeros written ahead: a commit's WAL record stays in memory until the
    // sync that covers it, which writes all records since the last sync with one direct
    // (O_DIRECT) write (WalFs, wal_prewrite.h); the committing thread makes no write call.
    // false, or a file system without O_DIRECT: each record is written to the page cache
    // as it is committed, and the sync is an fdatasync.
    bool wal_direct = true;
  };

  // Counters since Open (for tests and monitoring).
  struct Stats {
    uint64_t wal_syncs = 0;         // WAL fsyncs made (each may cover many commits)
    uint64_t sync_commits = 0;      // writing commits with Durability::kSync
    uint64_t deferred_commits = 0;  // writing commits with Durability::kDeferred
    uint64_t read_waits = 0;        // transaction ends that waited for a pending commit they read
    uint64_t delayed_syncs = 0;     // syncs the syncer delayed for more commits to join
    uint64_t inline_syncs = 0;      // syncs SyncOwed made on its caller's thread
    uint64_t wal_direct_files = 0;  // WAL files written with direct writes (Options::wal_direct)
    ReadCache::Stats read_cache;    // zeros when the cache is off
    RangeCache::Stats listing_cache;  // zeros when it is off
  };

  static Result<std::unique_ptr<RocksKvStore>> Open(const Options& opts);
  ~RocksKvStore() override;

  Result<std::unique_ptr<Txn>> Begin() override;
  Status Sync() override;
  void BeginDeferredReadWaits() override;
  void EndDeferredReadWaits() override;
  void WhenDurable(uint64_t ticket, std::function<void()> fn) override;
  bool WhenDurableSyncLater(uint64_t ticket, std::function<void()> fn) override;
  void SyncOwed() override;
  void WaitUntilDurable(uint64_t ticket) override { WaitDurable(ticket, /*reader=*/true); }
  Stats stats() const;
  // Records each WAL sync ("store.wal_sync": its µs, the commits it covered as calls' bytes
  // in; those an event loop made itself, SyncOwed, also as "store.wal_sync_on_loop") in `reg`,
  // which must outlive the store; daemons pass their RPC server's registry.
  void UseStats(StatsRegistry* reg);

 private:
  class RocksTxn;
  RocksKvStore(Options opts, std::unique_ptr<rocksdb::Env> env, rocksdb::DB* db);

  // A writing commit is about to reach the WAL: its ticket. `keys` are what a kSync commit
  // wrote; until the ticket is durable, readers of them wait for it (PendingTicket).
  uint64_t Reserve(Durability d, std::vector<std::string> keys);
  // Its WAL write returned (OK or not).
  void Settle(uint64_t ticket);
  // Returns once tickets up to `ticket` are durable (leading a SyncWAL when no one is).
  // `reader`: the wait is for commits read, not written (counted in Stats::read_waits).
  void WaitDurable(uint64_t ticket, bool reader = false);
  // The newest kSync ticket not yet durable that wrote `key` (or a key in `range`); 0 if none.
  // Called after the read, so it sees every commit the read could have seen.
  uint64_t PendingTicket(std::string_view key) const;
  uint64_t PendingTicket(const KeyRange& range) const;
  // Drops the pending keys of tickets up to synced_. Under sync_mu_.
  void ForgetDurable();
  // What one SyncWAL started now covers: every ticket below the oldest unsettled one.
  // Under sync_mu_.
  uint64_t CoveredLocked() const;
  // Returns once no WAL sync is in flight (one that fails stops the process instead).
  void AwaitSyncInFlight();
  // Syncs the WAL for every ticket up to `covered` (all settled). REQUIRES: l holds sync_mu_,
  // !syncing_; releases it during the sync.
  // `also` (if set) records the sync too.
  void SyncLocked(std::unique_lock<std::mutex>& l, uint64_t covered, OpStats* also = nullptr);
  // The syncer thread: syncs for WhenDurable's tickets and runs their functions.
  void SyncerLoop();
  [[noreturn]] void FailStop(const std::string& why);

  const Options opts_;
  LockTable locks_;
  std::atomic<uint64_t> next_txn_id_{0};
  std::shared_ptr<WalFs> wal_fs_;      // the file system below env_ (wal_prewrite.h)
  std::unique_ptr<rocksdb::Env> env_;  // before db_: the database uses it until closed
  std::unique_ptr<rocksdb::DB> db_;
  std::unique_ptr<ReadCache> cache_;  // null when Options::read_cache_bytes is 0
  std::unique_ptr<RangeCache> listings_;  // null when Options::listing_cache_bytes is 0

  mutable std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  std::condition_variable syncer_cv_;  // the syncer, asleep with nothing owed (WaitForWork)
  // All guarded by sync_mu_.
  uint64_t next_ticket_ = 0;        // the last ticket handed out
  std::set<uint64_t> unsettled_;    // tickets whose WAL write has not returned
  // Keys written by kSync commits not yet durable -> the newest such ticket; and the same
  // keys per ticket, oldest first, to drop them once synced.
  // pending_order_ is guarded by sync_mu_; the keys are split over shards by hash, each
  // under its own mutex (taken after sync_mu_, never before), so a read asks only its key's
  // shard and no read takes sync_mu_.
  struct PendingShard {
    std::mutex mu;
    std::map<std::string, uint64_t, std::less<>> keys;
  };
  static constexpr size_t kPendingShards = 16;
  PendingShard& PendingOf(std::string_view key) const {
    return pending_[std::hash<std::string_view>()(key) % kPendingShards];
  }
  mutable std::array<PendingShard, kPendingShards> pending_;
  std::deque<std::pair<uint64_t, std::vector<std::string>>> pending_order_;
  uint64_t synced_ = 0;             // tickets up to this are durable
  bool syncing_ = false;
  Stats stats_;
  // WhenDurable's functions by ticket, run by syncer_ once durable. Guarded by sync_mu_.
  std::multimap<uint64_t, std::function<void()>> when_durable_;
  bool stop_syncer_ = false;
  std::thread syncer_;  // started on the first WhenDurable that must wait
  // Bumped (under sync_mu_) by every WhenDurable that queues a function: the syncer, having
  // nothing to do, watches it for a while before it sleeps on sync_cv_ (SyncerLoop).
  std::atomic<uint64_t> when_durable_gen_{0};
  PollWindow syncer_poll_;  // syncer thread only; Options::syncer_poll_us
  // The syncer has nothing to do: watch for work a while, then sleep until notified.
  void WaitForWork(std::unique_lock<std::mutex>& l);
  // WhenDurable's functions of tickets now durable, taken out of when_durable_. Under sync_mu_.
  std::vector<std::function<void()>> TakeDurableLocked();
  // Runs them (lock not held), their replies in one FlushBatch.
  static void RunDurable(std::vector<std::function<void()>> ready);
  // Queues fn for the syncer (started on first use); with `wake`, notifies it. Under sync_mu_.
  void OweLocked(uint64_t ticket, std::function<void()> fn, bool wake);
  void WakeSyncerLocked();
  // Before a sync by the syncer: waits (lock released) for more commits to join it when
  // commits come concurrently; true if it waited. Under sync_mu_.
  bool DelayCommitLocked(std::unique_lock<std::mutex>& l);
  static constexpr int64_t kMaxCommitDelayUs = 1000;
  size_t peak_waiters_ = 0;   // most replies recently waiting at once; under sync_mu_
  std::atomic<OpStats*> wal_sync_stats_{nullptr};
  std::atomic<OpStats*> loop_sync_stats_{nullptr};
  int64_t sync_us_avg_ = 0;   // moving average of a WAL sync's µs; under sync_mu_
  bool delayed_ = false;      // the syncer already waited before the coming sync
};

}  // namespace loom::meta
