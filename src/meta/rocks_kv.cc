#include "meta/rocks_kv.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <utility>

#include "common/flush_batch.h"
#include "common/log.h"
#include "common/sync_point.h"
#include "meta/keys.h"
#include "meta/wal_prewrite.h"

namespace loom::meta {
namespace {

rocksdb::Slice ToSlice(std::string_view s) { return {s.data(), s.size()}; }

// Lock timeouts, detected deadlocks (Busy) and expired transactions all mean "roll back and
// rerun": kConflict, the one code RunTxn retries.
Status FromRocks(const rocksdb::Status& s, const char* what) {
  if (s.ok()) return Status::Ok();
  std::string msg = std::string(what) + ": " + s.ToString();
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain() || s.IsExpired()) {
    return Status(Code::kConflict, msg);
  }
  if (s.IsIOError()) return Status(s.IsNoSpace() ? Code::kNoSpace : Code::kIo, msg);
  if (s.IsInvalidArgument()) return Status::Invalid(msg);
  return Status::Internal(msg);  // Corruption and the rest
}

Status Finished() { return Status::Invalid("transaction already finished"); }

// --- The fault-injection seam (Options::before_sync) ---

using SyncHook = std::function<Status(const std::string& path)>;

rocksdb::IOStatus RunHook(const SyncHook& hook, const std::string& path) {
  Status s = hook(path);
  if (s.ok()) return rocksdb::IOStatus::OK();
  return rocksdb::IOStatus::IOError("injected sync failure: " + s.ToString());
}

class HookedFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  HookedFile(std::unique_ptr<rocksdb::FSWritableFile> f, std::string path, const SyncHook* hook)
      : FSWritableFileOwnerWrapper(std::move(f)), path_(std::move(path)), hook_(hook) {}

  rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    rocksdb::IOStatus s = RunHook(*hook_, path_);
    return s.ok() ? target()->Sync(o, d) : s;
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    rocksdb::IOStatus s = RunHook(*hook_, path_);
    return s.ok() ? target()->Fsync(o, d) : s;
  }
  rocksdb::IOStatus RangeSync(uint64_t off, uint64_t n, const rocksdb::IOOptions& o,
                              rocksdb::IODebugContext* d) override {
    rocksdb::IOStatus s = RunHook(*hook_, path_);
    return s.ok() ? target()->RangeSync(off, n, o, d) : s;
  }

 private:
  const std::string path_;
  const SyncHook* hook_;
};

// Wraps every writable file the database opens; the hook lives in the store's Options,
// which outlive the database.
class HookedFs final : public rocksdb::FileSystemWrapper {
 public:
  HookedFs(const std::shared_ptr<rocksdb::FileSystem>& base, const SyncHook* hook)
      : FileSystemWrapper(base), hook_(hook) {}
  const char* Name() const override { return "LoomHookedFs"; }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* d) override {
    return Wrap(f, target()->NewWritableFile(f, o, r, d), r);
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* d) override {
    return Wrap(f, target()->ReopenWritableFile(f, o, r, d), r);
  }
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old,
                                      const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* d) override {
    return Wrap(f, target()->ReuseWritableFile(f, old, o, r, d), r);
  }

 private:
  rocksdb::IOStatus Wrap(const std::string& f, rocksdb::IOStatus s,
                         std::unique_ptr<rocksdb::FSWritableFile>* r) {
    if (s.ok()) *r = std::make_unique<HookedFile>(std::move(*r), f, hook_);
    return s;
  }
  const SyncHook* hook_;
};

// This thread's ReadWaitScope (kv.h): the store it is for, how deeply nested, and the
// newest pending kSync ticket that a transaction ending in it read.
struct DeferredReads {
  const void* store = nullptr;
  int depth = 0;
  uint64_t owed = 0;
};
thread_local DeferredReads tl_deferred;

}  // namespace

// A transaction: row locks from the store's LockTable, writes buffered in a sorted map (a
// key's last put or delete), committed as one WriteBatch with one DB::Write. Reads see the
// latest committed data merged with the buffered writes; nothing reads a snapshot.
class RocksKvStore::RocksTxn final : public Txn {
 public:
  // no_block: begun in a NoBlockScope (kv.h), with a lock timeout of 0 and writes that fail
  // rather than stall.
  RocksTxn(RocksKvStore* store, uint64_t id, bool no_block)
      : store_(store), id_(id), no_block_(no_block) {}
  // An unfinished transaction is rolled back: its writes dropped, its locks released.
  ~RocksTxn() override { Unlock(); }

  Result<MaybeValue> Get(std::string_view key) override {
    if (done_) return Finished();
    if (auto w = writes_.find(key); w != writes_.end()) return w->second;
    return Read(key, "get");
  }

  void GetMany(const std::vector<std::string>& keys,
               std::vector<Result<MaybeValue>>* out) override {
    out->clear();
    out->reserve(keys.size());
    ReadCache* cache = store_->cache_.get();
    if (done_ || !cache) {
      for (const std::string& k : keys) out->push_back(Get(k));
      return;
    }
    // The keys this transaction has not written go to the cache together; its misses to
    // the database one at a time, as Get's would.
    std::vector<std::string_view> look;
    look.reserve(keys.size());
    for (const std::string& k : keys) {
      if (writes_.find(k) == writes_.end()) look.emplace_back(k);
    }
    std::vector<std::optional<std::string>> hits(look.size());
    std::vector<uint64_t> epochs(look.size());
    cache->GetMany(look.data(), look.size(), hits.data(), epochs.data());
    size_t j = 0;
    for (const std::string& k : keys) {
      if (auto w = writes_.find(k); w != writes_.end()) {
        out->emplace_back(MaybeValue(w->second));
        continue;
      }
      std::optional<std::string>& hit = hits[j];
      const uint64_t epoch = epochs[j++];
      if (!hit) {
        out->push_back(ReadDb(k, epoch, "get"));
        continue;
      }
      Saw(store_->PendingTicket(k));
      out->emplace_back(std::move(hit));
    }
  }

  Result<MaybeValue> GetForUpdate(std::string_view key) override {
    if (done_) return Finished();
    // Lock first, then read the latest committed value — SELECT ... FOR UPDATE under READ
    // COMMITTED. Under the lock the read cache is as good as the database: every writer of
    // this key updated it before it released the lock (Commit).
    LOOM_SYNC_POINT("KvTxn::GetForUpdate:lock");
    LOOM_RETURN_IF_ERROR(LockKey(key, "get_for_update"));
    if (auto w = writes_.find(key); w != writes_.end()) return w->second;
    return Read(key, "get_for_update");
  }

  Status Put(std::string_view key, std::string_view value) override {
    if (done_) return Finished();
    LOOM_RETURN_IF_ERROR(LockKey(key, "put"));
    Buffer(key, std::string(value));
    return Status::Ok();
  }

  Status Delete(std::string_view key) override {
    if (done_) return Finished();
    LOOM_RETURN_IF_ERROR(LockKey(key, "delete"));
    Buffer(key, std::nullopt);
    return Status::Ok();
  }

  Status Scan(const KeyRange& range, size_t limit, const ScanFn& fn) override {
    if (done_) return Finished();
    rocksdb::ReadOptions ro = ReadOpts();
    rocksdb::Slice upper = ToSlice(range.end);
    if (!range.end.empty()) ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(store_->db_->NewIterator(ro));
    // The database's rows merged with this transaction's own writes in the range: a buffered
    // put replaces or adds a row, a buffered delete hides one.
    auto w = writes_.lower_bound(range.begin);
    const auto wend = range.end.empty() ? writes_.end() : writes_.lower_bound(range.end);
    size_t n = 0;
    it->Seek(ToSlice(range.begin));
    for (;;) {
      std::string_view dk;
      bool db_valid = it->Valid();
      if (db_valid) {
        dk = std::string_view(it->key().data(), it->key().size());
        if (!range.end.empty() && dk >= range.end) db_valid = false;
      }
      const bool own = w != wend && (!db_valid || std::string_view(w->first) <= dk);
      if (!own && !db_valid) break;
      if (own) {
        const bool shadows = db_valid && std::string_view(w->first) == dk;
        auto cur = w++;
        if (shadows) it->Next();
        if (!cur->second) continue;  // deleted here
        if (limit != 0 && n++ >= limit) break;
        if (!fn(cur->first, *cur->second)) break;
      } else {
        if (limit != 0 && n++ >= limit) break;
        if (!fn(dk, std::string_view(it->value().data(), it->value().size()))) break;
        it->Next();
      }
    }
    if (no_block_ && it->status().IsIncomplete()) return WouldBlock("scan: not cached");
    // The whole range, not only the keys returned: a pending delete hides its key.
    Saw(store_->PendingTicket(range));
    return FromRocks(it->status(), "scan");
  }

  Status ScanPrefixFrom(std::string_view prefix, std::string_view from, size_t limit,
                        const ScanFn& fn) override {
    RangeCache* listings = store_->listings_.get();
    const KeyRange range = KeyRange::PrefixFrom(prefix, from);
    // Its own writes in the range, or a range with no end: the plain scan merges them.
    if (done_ || !listings || range.end.empty() || from < prefix ||
        writes_.lower_bound(range.begin) != writes_.lower_bound(range.end)) {
      return Scan(range, limit, fn);
    }
    std::shared_ptr<const RangeCache::Listing> cached = listings->Get(prefix);
    if (!cached) return Scan(range, limit, fn);
    size_t n = 0;
    bool stopped = false;
    // The cached rows at or after `from`.
    if (from < cached->covered || cached->complete) {
      auto& cs = cached->chunks;
      auto c = std::partition_point(cs.begin(), cs.end(), [&](const auto& ch) {
        return ch->key(ch->rows() - 1) < from;
      });
      size_t i = c == cs.end() ? 0 : (*c)->LowerBound(from);
      if (c != cs.end()) listings->CountHit();
      for (; c != cs.end() && !stopped; ++c, i = 0) {
        for (; i < (*c)->rows(); i++) {
          if (limit != 0 && n >= limit) {
            stopped = true;
            break;
          }
          ++n;
          if (!fn((*c)->key(i), (*c)->value(i))) {
            stopped = true;
            break;
          }
        }
      }
      if (stopped || cached->complete) {
        Saw(store_->PendingTicket(range));
        return Status::Ok();
      }
    }
    // The rest from the database, from where the listing ends (or from `from`, past it).
    rocksdb::ReadOptions ro = ReadOpts();
    rocksdb::Slice upper = ToSlice(range.end);
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(store_->db_->NewIterator(ro));
    bool contiguous = from <= cached->covered;
    it->Seek(ToSlice(cached->covered));
    if (!contiguous) {
      // `from` is past the listing's end (a listing's first page starts at its first cookie,
      // past the bare prefix): still contiguous when no row lies between the two.
      contiguous = !it->Valid() || std::string_view(it->key().data(), it->key().size()) >= from;
      if (!contiguous) it->Seek(ToSlice(from));
    }
    const std::string start = contiguous ? cached->covered : std::string(from);
    auto rows = contiguous ? std::make_shared<RangeCache::Chunk>() : nullptr;
    for (; it->Valid(); it->Next()) {
      const std::string_view k(it->key().data(), it->key().size());
      const std::string_view v(it->value().data(), it->value().size());
      if (stopped || (limit != 0 && n >= limit)) break;  // the row after the page: not cached
      if (rows) rows->Add(k, v);
      ++n;
      if (!fn(k, v)) stopped = true;
    }
    if (no_block_ && it->status().IsIncomplete()) return WouldBlock("scan: not cached");
    Status st = FromRocks(it->status(), "scan");
    if (st.ok() && rows) {
      // Every row below the last one read is in `rows`; past the end of the range, all are.
      const bool complete = !it->Valid();
      std::string covered = complete ? range.end
                                     : (rows->rows() > 0 ? std::string(rows->key(rows->rows() - 1)) + '\0'
                                                         : start);
      listings->Extend(prefix, cached, std::move(rows), std::move(covered), complete);
    }
    Saw(store_->PendingTicket(range));
    return st;
  }

  Status Commit() override {
    Status s = CommitWrites();
    if (s.ok()) {
      for (auto& fn : on_commit_) fn();
    }
    on_commit_.clear();
    return s;
  }

  Status CommitWrites() {
    if (done_) return Finished();
    if (writes_.empty()) {
      // A read-only transaction: nothing of its own to make durable (no WAL write, no fsync),
      // but what it read must be — Rollback waits for that.
      Rollback();
      return Status::Ok();
    }
    done_ = true;
    rocksdb::WriteBatch batch;
    std::vector<std::string> keys;
    keys.reserve(writes_.size());
    for (auto& [k, v] : writes_) {
      rocksdb::Status bs = v ? batch.Put(ToSlice(k), ToSlice(*v)) : batch.Delete(ToSlice(k));
      if (!bs.ok()) {
        Unlock();
        OweOrWait(seen_);
        return FromRocks(bs, "commit: batch");
      }
      keys.push_back(k);
    }
    const Durability d = store_->opts_.sync ? durability_ : Durability::kDeferred;
    const uint64_t ticket =
        store_->Reserve(d, d == Durability::kSync ? keys : std::vector<std::string>());
    rocksdb::WriteOptions wo;
    wo.sync = false;           // durability comes from the WAL sync after (group commit)
    wo.no_slowdown = no_block_;  // a write stall fails the commit instead of waiting
    rocksdb::Status s = store_->db_->Write(wo, &batch);
    // After the write is in the database and before the locks go: the cache takes the new
    // values (a reader that missed and read the old value in between finds the epoch moved,
    // read_cache.h), and the next holder of a lock may trust the cache (GetForUpdate). A
    // failed write changed nothing, and erasing is harmless.
    if (ReadCache* cache = store_->cache_.get()) {
      if (s.ok()) {
        for (const auto& [k, v] : writes_) {
          if (keys::PointRead(k)) cache->Written(k, v ? &*v : nullptr);
          else cache->Invalidate(k);
        }
      } else {
        for (const std::string& k : keys) cache->Invalidate(k);
      }
    }
    if (RangeCache* listings = store_->listings_.get()) {
      for (const std::string& k : keys) listings->Invalidate(k);
    }
    Unlock();
    writes_.clear();
    store_->Settle(ticket);
    if (!s.ok()) {
      // A write that would have stalled (no_slowdown) changed nothing: redo it elsewhere.
      if (no_block_ && s.IsIncomplete()) return WouldBlock("commit: writes stalled");
      // After a failed WAL sync RocksDB fails every later WAL write ("Writer has previous
      // error"), possibly before the syncing thread has stopped the process: wait for that
      // sync, so that such a commit ends in the fail-stop, not in an error a caller might
      // handle and go on after. A sync that succeeded leaves this commit's own error.
      if (s.IsIOError()) store_->AwaitSyncInFlight();
      OweOrWait(seen_);  // the caller may still act on what it read
      return FromRocks(s, "commit");
    }
    if (no_block_ || OweScope::Active()) {
      // Visible now; the scope's owner holds what depends on it until it is durable.
      const uint64_t owed = std::max(seen_, d == Durability::kSync ? ticket : uint64_t{0});
      if (no_block_) NoBlockScope::Owe(owed);
      else OweScope::Owe(owed);
      return Status::Ok();
    }
    // The commit is in the WAL (and visible, its locks released). A kSync commit is
    // acknowledged once the WAL is on disk; waiting after the locks are gone lets concurrent
    // commits share one fsync (group commit). A kDeferred one waits only for the kSync
    // commits it may have read.
    if (d == Durability::kSync) {
      store_->WaitDurable(ticket);
    } else {
      store_->WaitDurable(seen_, /*reader=*/true);
    }
    return Status::Ok();
  }

  void Rollback() override {
    if (done_) return;
    done_ = true;
    writes_.clear();
    Unlock();
    // What was read may be returned even so (kv.h): the kSync commits it read must be durable
    // first. Usually it read none that is pending, and this costs nothing.
    if (seen_ == 0) return;
    if (no_block_) {
      NoBlockScope::Owe(seen_);
    } else if (tl_deferred.depth > 0 && tl_deferred.store == store_) {
      tl_deferred.owed = std::max(tl_deferred.owed, seen_);  // the scope's end waits
    } else if (OweScope::Active()) {
      OweScope::Owe(seen_);
    } else {
      store_->WaitDurable(seen_, /*reader=*/true);
    }
  }

  void SetDurability(Durability d) override { durability_ = d; }
  void OnCommit(std::function<void()> fn) override { on_commit_.push_back(std::move(fn)); }

 private:
  // A committed value: the read cache, else the database (filling the cache).
  Result<MaybeValue> Read(std::string_view key, const char* what) {
    ReadCache* cache = store_->cache_.get();
    uint64_t epoch = 0;
    if (cache) {
      if (std::optional<std::string> hit = cache->Get(key, &epoch)) {
        Saw(store_->PendingTicket(key));  // a cached commit may still be on its way to disk
        return MaybeValue(std::move(*hit));
      }
    }
    return ReadDb(key, epoch, what);
  }

  // The database's committed value of key, put in the read cache unless a commit to its
  // shard came after `epoch` (what the cache's miss returned).
  Result<MaybeValue> ReadDb(std::string_view key, uint64_t epoch, const char* what) {
    ReadCache* cache = store_->cache_.get();
    std::string v;
    rocksdb::Status s = store_->db_->Get(ReadOpts(), store_->db_->DefaultColumnFamily(),
                                         ToSlice(key), &v);
    if (no_block_ && s.IsIncomplete()) return WouldBlock(std::string(what) + ": not cached");
    if (cache && s.ok()) cache->Fill(key, v, epoch);
    Saw(store_->PendingTicket(key));
    if (s.IsNotFound()) return MaybeValue();
    if (!s.ok()) return FromRocks(s, what);
    return MaybeValue(std::move(v));
  }

  Status LockKey(std::string_view key, const char* what) {
    // A few keys per transaction: a scan of what it holds is cheaper than the table's mutex.
    // Past that, the table answers "already yours" itself; a key listed twice is unlocked
    // twice, and the second finds it not ours and does nothing.
    if (locked_.size() <= kLockedSearchMax) {
      for (const std::string& k : locked_) {
        if (k == key) return Status::Ok();
      }
    }
    bool would_wait = false;
    Status s = store_->locks_.Lock(
        id_, key, std::chrono::milliseconds(no_block_ ? 0 : store_->opts_.lock_timeout_ms),
        &would_wait);
    if (!s.ok() && no_block_ && would_wait && store_->opts_.no_block_lock_wait_us > 0) {
      // The event loop found the key held by a worker's transaction. Handing this one to a
      // worker too keeps the cascade going: every remove and rename in a directory locks the
      // directory's inode, so once one runs on a worker the loop keeps finding that lock
      // held, and all of them end up on workers, switching threads (bench/README.md). A
      // holder releases its locks within tens of µs of CPU (before its durability wait), so
      // the loop yields to it for a moment first. Bounded, so a lock held long (or by a
      // transaction waiting for one of ours) still sends this one to a worker.
      LOOM_SYNC_POINT("KvTxn::LockKey:no_block_wait");
      const auto until = std::chrono::steady_clock::now() +
                         std::chrono::microseconds(store_->opts_.no_block_lock_wait_us);
      while (!s.ok() && would_wait && std::chrono::steady_clock::now() < until) {
        std::this_thread::yield();
        would_wait = false;
        s = store_->locks_.Lock(id_, key, std::chrono::milliseconds(0), &would_wait);
      }
    }
    if (!s.ok()) {
      if (no_block_ && would_wait) return WouldBlock(std::string(what) + ": locked");
      return Status(s.code(), std::string(what) + ": " + s.message());
    }
    locked_.emplace_back(key);
    return Status::Ok();
  }

  static constexpr size_t kLockedSearchMax = 16;

  void Buffer(std::string_view key, std::optional<std::string> v) {
    auto it = writes_.find(key);
    if (it == writes_.end()) {
      writes_.emplace(std::string(key), std::move(v));
    } else {
      it->second = std::move(v);
    }
  }

  void Unlock() {
    for (const std::string& k : locked_) store_->locks_.Unlock(id_, k);
    locked_.clear();
  }

  // A read touched keys of the not yet durable kSync commit `ticket` (0: none).
  void Saw(uint64_t ticket) { seen_ = std::max(seen_, ticket); }

  rocksdb::ReadOptions ReadOpts() const {
    rocksdb::ReadOptions ro;
    // RocksDB's "no I/O" read: memtables, the block cache and open tables only; whatever
    // would need the disk answers Incomplete.
    if (no_block_) ro.read_tier = rocksdb::kBlockCacheTier;
    return ro;
  }

  void OweOrWait(uint64_t ticket) {
    if (no_block_) NoBlockScope::Owe(ticket);
    else store_->WaitDurable(ticket, /*reader=*/true);
  }

  RocksKvStore* store_;
  const uint64_t id_;                 // the owner of its locks in the store's LockTable
  Durability durability_ = Durability::kSync;
  std::vector<std::function<void()>> on_commit_;  // OnCommit's, run after a successful Commit
  const bool no_block_;
  bool done_ = false;
  uint64_t seen_ = 0;                 // the newest pending kSync ticket read
  std::vector<std::string> locked_;   // keys this transaction locked
  // Buffered writes: key -> value, nullopt for a delete.
  std::map<std::string, std::optional<std::string>, std::less<>> writes_;
};

uint64_t RocksKvStore::Reserve(Durability d, std::vector<std::string> keys) {
  std::lock_guard<std::mutex> l(sync_mu_);
  const uint64_t t = ++next_ticket_;
  unsettled_.insert(t);
  if (d == Durability::kSync) {
    ++stats_.sync_commits;
    // Registered before the WAL write makes the commit visible: a reader that sees it finds
    // its ticket here afterwards.
    for (const std::string& k : keys) {
      PendingShard& sh = PendingOf(k);
      std::lock_guard<std::mutex> g(sh.mu);
      sh.keys.insert_or_assign(k, t);
    }
    pending_order_.emplace_back(t, std::move(keys));
  } else {
    ++stats_.deferred_commits;
  }
  return t;
}

void RocksKvStore::Settle(uint64_t ticket) {
  std::lock_guard<std::mutex> l(sync_mu_);
  // Only the oldest unsettled ticket holds back what a sync would cover; waking every waiter
  // for the others only burns CPU.
  const bool oldest = !unsettled_.empty() && *unsettled_.begin() == ticket;
  unsettled_.erase(ticket);
  if (oldest) sync_cv_.notify_all();  // a leader may be waiting for this prefix
}

void RocksKvStore::WaitDurable(uint64_t ticket, bool reader) {
  std::unique_lock<std::mutex> l(sync_mu_);
  if (reader && synced_ < ticket) ++stats_.read_waits;
  while (synced_ < ticket) {
    const uint64_t covered = CoveredLocked();
    if (syncing_ || covered < ticket) {
      sync_cv_.wait(l);  // a sync in flight, or an older commit still writing the WAL
      continue;
    }
    SyncLocked(l, covered);  // leader: one fsync for every commit that reached the WAL
  }
}

void RocksKvStore::AwaitSyncInFlight() {
  std::unique_lock<std::mutex> l(sync_mu_);
  // A failed sync stops the process while it holds sync_mu_ (SyncLocked), so this returns
  // only after syncs that succeeded.
  sync_cv_.wait(l, [&] { return !syncing_; });
}

uint64_t RocksKvStore::CoveredLocked() const {
  return unsettled_.empty() ? next_ticket_ : *unsettled_.begin() - 1;
}

void RocksKvStore::SyncLocked(std::unique_lock<std::mutex>& l, uint64_t covered, OpStats* also) {
  syncing_ = true;
  l.unlock();
  const auto t0 = std::chrono::steady_clock::now();
  rocksdb::Status s = db_->SyncWAL();
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now() - t0).count();
  l.lock();
  syncing_ = false;
  if (!s.ok()) FailStop(s.ToString());
  ++stats_.wal_syncs;
  const uint64_t commits = covered > synced_ ? covered - synced_ : 0;
  if (OpStats* os = wal_sync_stats_.load(std::memory_order_relaxed))
    os->Record(static_cast<uint64_t>(us), commits, 0, false);
  if (also) also->Record(static_cast<uint64_t>(us), commits, 0, false);
  sync_us_avg_ += (static_cast<int64_t>(us) - sync_us_avg_) / 8;
  synced_ = std::max(synced_, covered);
  ForgetDurable();
  sync_cv_.notify_all();
}

void RocksKvStore::UseStats(StatsRegistry* reg) {
  wal_sync_stats_.store(reg ? reg->Get("store.wal_sync") : nullptr, std::memory_order_relaxed);
  loop_sync_stats_.store(reg ? reg->Get("store.wal_sync_on_loop") : nullptr, std::memory_order_relaxed);
}

void RocksKvStore::OweLocked(uint64_t ticket, std::function<void()> fn, bool wake) {
  when_durable_.emplace(ticket, std::move(fn));
  when_durable_gen_.fetch_add(1, std::memory_order_release);
  if (!syncer_.joinable()) syncer_ = std::thread([this] { SyncerLoop(); });
  if (wake) WakeSyncerLocked();
}

void RocksKvStore::WhenDurable(uint64_t ticket, std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> l(sync_mu_);
    if (ticket > synced_) {
      OweLocked(ticket, std::move(fn), /*wake=*/true);
      return;
    }
  }
  fn();
}

// One change at a time (a client that waits for each reply: a shell's mv or rm -r, an
// untar): the syncer's hand-off costs a wake-up of a sleeping thread on every change, tens of
// µs on a VM's idle vCPU, and the syncer would sync for that one commit anyway. So when the
// syncer is idle and owes nothing, the commit's function is queued without waking it and the
// event loop syncs in SyncOwed once it has handled the events in hand. Any other commit owed
// meanwhile (more requests in the same batch of events, another loop's) wakes the syncer as
// before, and it syncs for all of them; SyncOwed then finds the sync in flight and leaves it.
// The loop is held for the sync's duration; the cap on the recent sync time bounds that, and
// a disk that turns slow moves every sync back to the syncer.
bool RocksKvStore::WhenDurableSyncLater(uint64_t ticket, std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> l(sync_mu_);
    if (ticket > synced_) {
      // peak_waiters_ (kept by the syncer's group commit, DelayCommitLocked): several
      // replies waited at once lately, so more changes are coming and the syncer, which may
      // wait for them to share its sync, does it.
      const bool later = opts_.inline_sync_max_us > 0 && !syncing_ && when_durable_.empty() &&
                         peak_waiters_ <= 1 && sync_us_avg_ <= opts_.inline_sync_max_us;
      OweLocked(ticket, std::move(fn), /*wake=*/!later);
      return later;
    }
  }
  fn();
  return false;
}

void RocksKvStore::SyncOwed() {
  std::unique_lock<std::mutex> l(sync_mu_);
  if (when_durable_.empty()) return;  // the syncer took it
  const uint64_t covered = CoveredLocked();
  if (syncing_ || when_durable_.size() > 1 || covered < when_durable_.begin()->first) {
    // A sync in flight (the syncer's, woken by another commit), more commits owed (the
    // syncer's group commit may wait for company), or a commit still writing the WAL: the
    // syncer's work.
    WakeSyncerLocked();
    return;
  }
  ++stats_.inline_syncs;
  SyncLocked(l, covered, loop_sync_stats_.load(std::memory_order_relaxed));
  std::vector<std::function<void()>> ready = TakeDurableLocked();
  l.unlock();
  RunDurable(std::move(ready));
}

void RocksKvStore::WakeSyncerLocked() {
  sync_cv_.notify_all();    // waiting for a sync in flight, an older commit, or company
  syncer_cv_.notify_one();  // asleep with nothing owed (WaitForWork)
}

std::vector<std::function<void()>> RocksKvStore::TakeDurableLocked() {
  std::vector<std::function<void()>> ready;
  for (auto it = when_durable_.begin(); it != when_durable_.end() && it->first <= synced_;) {
    ready.push_back(std::move(it->second));
    it = when_durable_.erase(it);
  }
  return ready;
}

void RocksKvStore::RunDurable(std::vector<std::function<void()>> ready) {
  // Replies released together leave together: one sendmsg per connection.
  FlushBatch batch;
  for (auto& f : ready) f();
}

void RocksKvStore::SyncerLoop() {
  std::unique_lock<std::mutex> l(sync_mu_);
  for (;;) {
    if (!when_durable_.empty() && when_durable_.begin()->first <= synced_) {
      std::vector<std::function<void()>> ready = TakeDurableLocked();
      l.unlock();
      RunDurable(std::move(ready));
      l.lock();
      continue;
    }
    const uint64_t covered = CoveredLocked();
    if (!when_durable_.empty() && !syncing_ && covered >= when_durable_.begin()->first) {
      // Everything that reached the WAL while the last sync ran goes in this one; with
      // several commits in each sync, first give the next ones a moment to join.
      if (DelayCommitLocked(l)) continue;
      SyncLocked(l, covered);  // no wait: `covered` still holds
      continue;
    }
    if (stop_syncer_) return;
    if (when_durable_.empty()) {
      WaitForWork(l);
      continue;
    }
    sync_cv_.wait(l);  // nothing owed, a sync in flight, or an older commit still writing
  }
}

// Group commit's delay (PostgreSQL's commit_delay and commit_siblings, made adaptive). A sync
// covers what reached the WAL before it started; under load each sync starts as soon as the
// last ended and covers the few commits made during it, and every sync costs CPU of its own
// (on a VM: the block device's notification exits and completion interrupts, and, where the
// WAL grows, the inode's write). So when fewer replies wait than recently waited at once (the
// others are still being worked on and will commit soon), the syncer waits up to half a
// recent sync's duration, or until as many wait as did then, before it syncs. When everyone
// who recently waited at once is already waiting (one change at a time, or every client of a
// small group waiting for this sync), nothing more can come, and it syncs at once.
// Returns true when it waited (the caller looks again at what is owed).
bool RocksKvStore::DelayCommitLocked(std::unique_lock<std::mutex>& l) {
  if (delayed_) {  // one delay per sync: after it, sync whatever is owed
    delayed_ = false;
    return false;
  }
  const size_t owed = when_durable_.size();
  // The peak decays by one per sync so that it follows a falling load.
  peak_waiters_ = std::max(owed, peak_waiters_ > 0 ? peak_waiters_ - 1 : 0);
  if (opts_.commit_delay_us == 0 || owed < 2 || owed >= peak_waiters_) return false;
  const int64_t us = opts_.commit_delay_us > 0
                         ? opts_.commit_delay_us
                         : std::min<int64_t>(sync_us_avg_ / 2, kMaxCommitDelayUs);
  if (us <= 0) return false;
  delayed_ = true;
  ++stats_.delayed_syncs;
  const size_t want = peak_waiters_;
  sync_cv_.wait_for(l, std::chrono::microseconds(us),
                    [&] { return stop_syncer_ || when_durable_.size() >= want; });
  return true;
}

// With one change in flight (a client waiting for each reply), the next commit comes a round
// trip after the last reply, tens of µs; a syncer asleep on the condition variable takes about
// as long again to wake (a futex wake of an idle vCPU), added to every such change. So it
// watches when_durable_gen_ for a while first, yielding the CPU to anyone runnable, within a
// PollWindow (common/poll_window.h) of at most 100 µs, which closes when work stops coming
// that soon.
void RocksKvStore::WaitForWork(std::unique_lock<std::mutex>& l) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto since = [&] {
    return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
  };
  const int window = syncer_poll_.window_us();
  if (window > 0) {
    const uint64_t gen = when_durable_gen_.load(std::memory_order_acquire);
    l.unlock();
    bool found = false;
    while (!found && since() < window) {
      std::this_thread::yield();
      found = when_durable_gen_.load(std::memory_order_acquire) != gen;
    }
    l.lock();
    if (found) return;  // the window stays as it is
  }
  // Anything that came while the lock was free (a stop, work) was notified to nobody.
  if (stop_syncer_ || !when_durable_.empty()) return;
  // Its own condition variable: the commits' and syncs' notifications of sync_cv_ (one per
  // commit) do not wake it when it owes nothing; WhenDurableSyncLater's queued function must
  // not wake it either.
  syncer_cv_.wait(l);
  syncer_poll_.Blocked(since());
}

uint64_t RocksKvStore::PendingTicket(std::string_view key) const {
  PendingShard& sh = PendingOf(key);
  std::lock_guard<std::mutex> l(sh.mu);
  auto it = sh.keys.find(key);
  return it == sh.keys.end() ? 0 : it->second;
}

uint64_t RocksKvStore::PendingTicket(const KeyRange& range) const {
  uint64_t t = 0;
  for (PendingShard& sh : pending_) {
    std::lock_guard<std::mutex> l(sh.mu);
    auto end = range.end.empty() ? sh.keys.end() : sh.keys.lower_bound(range.end);
    for (auto it = sh.keys.lower_bound(range.begin); it != end; ++it) {
      t = std::max(t, it->second);
    }
  }
  return t;
}

void RocksKvStore::ForgetDurable() {
  while (!pending_order_.empty() && pending_order_.front().first <= synced_) {
    for (const std::string& k : pending_order_.front().second) {
      PendingShard& sh = PendingOf(k);
      std::lock_guard<std::mutex> l(sh.mu);
      auto it = sh.keys.find(k);
      if (it != sh.keys.end() && it->second <= synced_) sh.keys.erase(it);
    }
    pending_order_.pop_front();
  }
}

void RocksKvStore::FailStop(const std::string& why) {
  LOG_ERROR("FATAL: metadata store %s: WAL sync failed (%s). Commits that are visible may not "
            "be durable; stopping so that none is served. A restart recovers the last durable "
            "state.",
            opts_.path.c_str(), why.c_str());
  std::abort();
}

Status RocksKvStore::Sync() {
  if (!opts_.sync) return Status::Ok();
  uint64_t target;
  {
    std::lock_guard<std::mutex> l(sync_mu_);
    target = next_ticket_;
  }
  WaitDurable(target);
  return Status::Ok();
}

void RocksKvStore::BeginDeferredReadWaits() {
  DeferredReads& d = tl_deferred;
  if (d.depth++ == 0) {
    d.store = this;
    d.owed = 0;
  }
}

void RocksKvStore::EndDeferredReadWaits() {
  DeferredReads& d = tl_deferred;
  if (d.depth == 0 || --d.depth > 0) return;
  const uint64_t owed = d.owed;
  d = DeferredReads();
  if (owed == 0) return;
  if (OweScope::Active()) {
    OweScope::Owe(owed);  // the scope's owner holds its reply instead
  } else {
    WaitDurable(owed, /*reader=*/true);
  }
}

RocksKvStore::Stats RocksKvStore::stats() const {
  Stats st;
  {
    std::lock_guard<std::mutex> l(sync_mu_);
    st = stats_;
  }
  if (wal_fs_) st.wal_direct_files = static_cast<uint64_t>(wal_fs_->direct_files());
  if (cache_) st.read_cache = cache_->stats();
  if (listings_) st.listing_cache = listings_->stats();
  return st;
}

RocksKvStore::RocksKvStore(Options opts, std::unique_ptr<rocksdb::Env> env, rocksdb::DB* db)
    : opts_(std::move(opts)),
      locks_(opts_.deadlock_detect),
      env_(std::move(env)),
      db_(db),
      syncer_poll_(opts_.syncer_poll_us) {
  if (opts_.read_cache_bytes > 0) cache_ = std::make_unique<ReadCache>(opts_.read_cache_bytes);
  if (opts_.listing_cache_bytes > 0) {
    listings_ = std::make_unique<RangeCache>(opts_.listing_cache_bytes);
  }
}

RocksKvStore::~RocksKvStore() {
  {
    std::lock_guard<std::mutex> l(sync_mu_);
    stop_syncer_ = true;
    WakeSyncerLocked();
  }
  if (syncer_.joinable()) syncer_.join();
  if (!when_durable_.empty()) {
    // Their owners (replies held for durability) should have drained before the store
    // closed; what they wait for is in the WAL, not known to be synced.
    LOG_WARN("metadata store %s closed with %zu waits for durability not run",
             opts_.path.c_str(), when_durable_.size());
  }
  db_.reset();  // closes the database while its Env (env_) is still alive
}

namespace {

// The memtable keeps one insert position ("splice") per key neighbourhood
// (keys::InsertHintPrefixLength) and starts each insert from it. Without it every insert but
// a strictly sequential one searched the skiplist from the top: one commit writes to several
// far-apart places (a directory's entries, the directory's inode, the object's inode), so the
// list's single last-insert position never helped, and with a few hundred thousand keys in
// the memtable the search was a third of the event loop's work for a remove (measured: 21 %
// of loom-mds's CPU, RecomputeSpliceLevels 13 %). Hints apply to writes that are not
// concurrent memtable inserts, which is how single-writer write groups insert.
class InsertHintPrefix final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "loom.InsertHintPrefix"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), keys::InsertHintPrefixLength(std::string_view(key.data(), key.size())));
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return keys::InsertHintPrefixLength(std::string_view(key.data(), key.size())) > 0;
  }
};

}  // namespace

Result<std::unique_ptr<RocksKvStore>> RocksKvStore::Open(const Options& opts) {
  rocksdb::Options o;
  o.create_if_missing = opts.create_if_missing;
  // Metadata is small and hot; two background jobs match the machines Loom starts on.
  o.max_background_jobs = 2;
  // A crash can tear only the last record of the log (every acknowledged commit was synced
  // before it). Damage anywhere else means acknowledged commits would be silently dropped:
  // the default point-in-time recovery would stop replaying there and open a partial
  // namespace. Refuse to open instead (loom-mds then refuses to start, issue 10 item 5).
  o.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  o.paranoid_checks = true;
  // Point reads of keys that are not there are common: a create, rename or link checks that
  // its new name is free, a LOOKUP of an absent name. Bloom filters answer "not here" for a
  // table without reading its blocks, and for the memtable without walking its skiplist.
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.whole_key_filtering = true;
  // Index and filter blocks stay in the block cache (charged to it) so a run-to-completion
  // read (kBlockCacheTier) finds them; RocksDB's 8 MiB default is far below a namespace of
  // a few million entries.
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  // Index and filter in partitions of ~4 KiB under a small top level (pinned). A table of a
  // namespace of 10^6 files holds a few million keys: its one full filter is over 1 MiB, more
  // than a block cache shard (64 MiB / 64 shards) can keep, so it was dropped as soon as it
  // was used and read from the file again by every Get that missed the read cache (measured:
  // a create at 10^6 files cost 440 µs of CPU, a quarter of it copying filter blocks).
  table.index_type = rocksdb::BlockBasedTableOptions::IndexType::kTwoLevelIndexSearch;
  table.partition_filters = true;
  table.metadata_block_size = 4096;
  table.pin_top_level_index_and_filter = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  table.block_cache = rocksdb::NewLRUCache(opts.block_cache_bytes);
  // A memtable flush puts the blocks it writes into the cache. The keys just written are the
  // ones about to be read again (a remove or rename soon after the create), and a read on the
  // event loop may not touch the disk (kBlockCacheTier): without this, the first read of each
  // freshly flushed block sent its COMPOUND to a worker thread.
  table.prepopulate_block_cache = rocksdb::BlockBasedTableOptions::PrepopulateBlockCache::kFlushOnly;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  o.memtable_whole_key_filtering = true;
  o.memtable_prefix_bloom_size_ratio = 0.02;
  o.memtable_insert_with_hint_prefix_extractor = std::make_shared<InsertHintPrefix>();
  // The store is built first so that the hook the file system wrapper points to (in the
  // store's own Options) lives as long as the database.
  std::unique_ptr<RocksKvStore> store(new RocksKvStore(opts, nullptr, nullptr));
  // Every store's files go through WalFs (wal_prewrite.h): WAL files written over zeros, and
  // repaired while the database opens.
  std::shared_ptr<rocksdb::FileSystem> fs =
      opts.env ? opts.env->GetFileSystem() : rocksdb::FileSystem::Default();
  auto wal_fs = std::make_shared<WalFs>(fs, opts.wal_prewrite_bytes, opts.sync && opts.wal_direct);
  store->wal_fs_ = wal_fs;
  fs = wal_fs;
  if (store->opts_.before_sync) fs = std::make_shared<HookedFs>(fs, &store->opts_.before_sync);
  store->env_ = rocksdb::NewCompositeEnv(fs);
  o.env = store->env_.get();
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, opts.path, &db);
  wal_fs->EndRecovery();
  if (!s.ok()) return FromRocks(s, ("open " + opts.path).c_str());
  if (const WalRepair r = wal_fs->repaired(); r.torn > 0) {
    LOG_WARN("metadata store %s: the last write before a power cut was torn: %d WAL file(s) "
             "cut back to their last whole record (%llu bytes that no sync covered)",
             opts.path.c_str(), r.torn, static_cast<unsigned long long>(r.bytes_cut));
  } else if (r.truncated > 0) {
    LOG_DEBUG("metadata store %s: the zeros after the log cut from %d WAL file(s)",
              opts.path.c_str(), r.truncated);
  }
  store->db_.reset(db);
  return store;
}

Result<std::unique_ptr<Txn>> RocksKvStore::Begin() {
  return std::unique_ptr<Txn>(std::make_unique<RocksTxn>(
      this, next_txn_id_.fetch_add(1, std::memory_order_relaxed) + 1, NoBlockScope::Active()));
}

}  // namespace loom::meta
