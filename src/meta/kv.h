// The transactional key-value interface under loom-mds's namespace. Filesystem operations
// (namespace.h) are written once against Txn; backends are MemKvStore (tests), RocksKvStore
// (embedded default) and, later, PostgreSQL. See docs/metadata-store.md.
//
// Isolation contract — the weakest of the three backends, so code written against it is
// correct on all of them (RocksDB pessimistic TransactionDB without snapshots; PostgreSQL READ
// COMMITTED with SELECT ... FOR UPDATE):
//  - Get and Scan read the latest committed data merged with this transaction's own writes.
//    They take no locks: two Gets of one key may differ, and a Scan may miss or gain rows that
//    other transactions commit meanwhile.
//  - GetForUpdate, Put and Delete lock the key exclusively until Commit/Rollback (a row lock in
//    SQL). GetForUpdate reads after the lock is granted, so what it returns cannot change
//    until this transaction ends. A read-modify-write must read with GetForUpdate.
//  - A lock that cannot be granted within the backend's lock timeout, or a detected deadlock,
//    fails the call with Code::kConflict. Commit may also fail with kConflict (SQL
//    serialization failures). After kConflict the transaction is dead: roll back and rerun
//    the whole operation — RunTxn does exactly that.
//  - Commit makes all writes visible atomically; with the backend's default options an OK
//    Commit is durable (survives a crash). Rollback, or destroying an unfinished Txn, discards
//    every write and releases every lock.
//  - Neither Commit nor Rollback returns while a kSync commit this transaction could have
//    read is not durable yet: a reply built from a read — an error such as "no such file"
//    included — never shows a change that a crash could undo. kDeferred commits (below) are
//    the exception the writer asks for: they are visible before they are durable. Inside a
//    ReadWaitScope (below) a transaction that ends without writing hands that wait to the
//    scope's end instead.
//  - If the backend cannot make a commit durable (a failed log sync), it stops the process
//    (fail-stop): the change may already be visible, and after a failed fsync the kernel may
//    have dropped the data while a retried fsync reports success, so serving on would show
//    readers changes that a restart loses. Restarting recovers the last durable state.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/status.h"

namespace loom::meta {

// When an OK Commit of a transaction that wrote something is durable.
enum class Durability {
  kSync,      // before Commit returns (the default)
  // Visible at once, durable at the next KvStore::Sync (or when a later kSync commit's log
  // sync covers it). For changes that the client redoes itself if the server restarts before
  // it asked for them to be stable, e.g. the size and mtime of an NFS UNSTABLE WRITE
  // (RFC 8881 §18.32.3: the client resends when the write verifier changes).
  kDeferred,
};

// A present value, or nullopt for "no such key".
using MaybeValue = std::optional<std::string>;

// Keys in [begin, end) in byte order; an empty `end` means "to the end of the keyspace".
struct KeyRange {
  std::string begin;
  std::string end;

  // Every key that starts with `prefix`.
  static KeyRange Prefix(std::string_view prefix);
  // Keys that start with `prefix` and sort at or after `from` (which must start with prefix).
  static KeyRange PrefixFrom(std::string_view prefix, std::string_view from);
};

// The smallest key greater than every key starting with `prefix`; "" if there is none
// (prefix is all 0xff bytes).
std::string PrefixEnd(std::string_view prefix);

// Scan callback: return false to stop early. The views are valid only during the call.
// The callback must not call back into the same Txn (collect keys, then write after Scan).
using ScanFn = std::function<bool(std::string_view key, std::string_view value)>;

// One transaction. Thread-compatible: one thread at a time (the MDS runs one NFS operation
// or one batch of them per transaction, on one worker).
class Txn {
 public:
  virtual ~Txn() = default;  // an unfinished transaction is rolled back

  virtual Result<MaybeValue> Get(std::string_view key) = 0;
  virtual Result<MaybeValue> GetForUpdate(std::string_view key) = 0;
  // Get of several keys: (*out)[i] is what Get(keys[i]) would return. A store may overlap
  // the lookups (READDIR reads a page of inodes at once); this default does them in turn.
  virtual void GetMany(const std::vector<std::string>& keys, std::vector<Result<MaybeValue>>* out);
  virtual Status Put(std::string_view key, std::string_view value) = 0;
  // Deleting a missing key is OK (and still locks it).
  virtual Status Delete(std::string_view key) = 0;
  // Calls fn for keys in `range` in ascending byte order, at most `limit` of them (0: no limit).
  virtual Status Scan(const KeyRange& range, size_t limit, const ScanFn& fn) = 0;
  // Scan of [from, PrefixEnd(prefix)), where from starts with prefix: one page of a range that
  // is read in pages, in order (a directory's listing). A store may keep such a range's rows
  // in memory as the pages go by (RangeCache); the results are Scan's. This default scans.
  virtual Status ScanPrefixFrom(std::string_view prefix, std::string_view from, size_t limit,
                                const ScanFn& fn) {
    return Scan(KeyRange::PrefixFrom(prefix, from), limit, fn);
  }
  // After Commit (whatever its result) or Rollback the transaction is finished; further
  // calls fail with kInvalidArgument.
  virtual Status Commit() = 0;
  virtual void Rollback() = 0;
  // Applies to this transaction's Commit; kSync unless set. Call before Commit.
  virtual void SetDurability(Durability d) = 0;
  // Runs fn on the committing thread once Commit has succeeded (the changes are visible; a
  // kSync commit's are durable unless it ran in a NoBlockScope), before Commit returns; never
  // after a failed Commit or a Rollback. For in-memory bookkeeping that must follow exactly
  // what was committed (Namespace's count of inodes). fn must not use this transaction.
  virtual void OnCommit(std::function<void()> fn) = 0;
};

// A store. Thread-safe: any number of threads may Begin and run transactions concurrently.
// The store must outlive its transactions.
class KvStore {
 public:
  virtual ~KvStore() = default;
  virtual Result<std::unique_ptr<Txn>> Begin() = 0;
  // Makes every commit that returned before this call durable (kDeferred ones included).
  // Costs nothing when there is nothing to sync.
  virtual Status Sync() = 0;
  // ReadWaitScope's hooks, for this thread; a backend without commits that are visible
  // before they are durable needs none.
  virtual void BeginDeferredReadWaits() {}
  virtual void EndDeferredReadWaits() {}
  // A NoBlockScope's ticket (NoBlockScope::owed): runs fn once every commit up to it is
  // durable — at once, on this thread, if they are; otherwise later, on a thread of the
  // store's. fn must not block. Pure, so that a store wrapper cannot forget to pass it on
  // (replies would then leave before what they show is durable).
  virtual void WhenDurable(uint64_t ticket, std::function<void()> fn) = 0;
  // WhenDurable for a caller that can sync itself a little later (an event loop, once it has
  // handled the events in hand): when a sync for this commit would be the store's only work,
  // the store may queue fn without waking its syncer and return true; the caller must then
  // call SyncOwed on this thread soon, which syncs here and runs the functions that became
  // durable (or hands them to the syncer). false: as WhenDurable. The default is WhenDurable.
  virtual bool WhenDurableSyncLater(uint64_t ticket, std::function<void()> fn) {
    WhenDurable(ticket, std::move(fn));
    return false;
  }
  virtual void SyncOwed() {}
  // Blocks until every commit up to `ticket` is durable.
  virtual void WaitUntilDurable(uint64_t ticket) = 0;
};

// Within this scope, on this thread, a transaction on `store` that ends without a commit of
// its own (read-only, rolled back) does not wait for the pending commits it read; End (or the
// destructor) waits for all of them at once. For a request that reads in some transactions
// and commits in another: a commit waits for its own log sync, which covers every commit
// read before it, so those reads cost no wait of their own. End the scope before anything
// read in it leaves the process (a reply, a cache another request may serve).
class ReadWaitScope {
 public:
  explicit ReadWaitScope(KvStore& store) : store_(&store) { store_->BeginDeferredReadWaits(); }
  ~ReadWaitScope() { End(); }
  ReadWaitScope(const ReadWaitScope&) = delete;
  ReadWaitScope& operator=(const ReadWaitScope&) = delete;
  void End() {
    if (store_) store_->EndDeferredReadWaits();
    store_ = nullptr;
  }

 private:
  KvStore* store_;
};

namespace detail {
// A stack of scopes per thread, per Tag, that collect durability tickets: the innermost scope
// on the thread keeps the newest ticket owed in it, and hands it to its outer scope when it
// ends. NoBlockScope and OweScope (below) are the two kinds.
template <class Tag>
class TicketScope {
 public:
  TicketScope() : outer_(top_) { top_ = this; }
  ~TicketScope() {
    top_ = outer_;
    // What an inner scope owes, its outer one owes too.
    if (outer_ && owed_ > outer_->owed_) outer_->owed_ = owed_;
  }
  TicketScope(const TicketScope&) = delete;
  TicketScope& operator=(const TicketScope&) = delete;
  // True inside a scope of this kind on this thread.
  static bool Active() { return top_ != nullptr; }
  // For backends: the innermost scope on this thread owes `ticket` (0: nothing).
  static void Owe(uint64_t ticket) {
    if (top_ && ticket > top_->owed_) top_->owed_ = ticket;
  }
  // The newest ticket owed in this scope (0: none).
  uint64_t owed() const { return owed_; }

  // Inside a scope, leaves this thread outside any scope of this kind until destroyed.
  class Suspend {
   public:
    Suspend() : saved_(top_) { top_ = nullptr; }
    ~Suspend() { top_ = saved_; }
    Suspend(const Suspend&) = delete;
    Suspend& operator=(const Suspend&) = delete;

   private:
    TicketScope* saved_;
  };

 private:
  static inline thread_local TicketScope* top_ = nullptr;
  TicketScope* outer_;
  uint64_t owed_ = 0;
};
}  // namespace detail

// Run to completion: loom-mds runs requests on its event-loop thread, which must never wait.
// Inside a NoBlockScope, on this thread, no transaction call waits:
//  - a read that would go to the disk fails with Code::kWouldBlock, and so does a row lock
//    (GetForUpdate, Put, Delete) that another transaction holds, or a commit the store would
//    have to stall; nothing a refused call did needs undoing (a refused Scan may have called
//    fn for some rows: drop what it saw), and the caller redoes the operation on a thread
//    that may block;
//  - a Commit that wrote returns once the commit is visible, without waiting for its log
//    sync, and a transaction that read a kSync commit not durable yet ends without waiting
//    for it. Both leave a durability ticket in the scope (owed()): the caller must not let
//    anything read or written in the scope leave the process (a reply) before
//    KvStore::WhenDurable(owed()) has run its function.
// Backends whose commits are durable at once owe nothing.
// NoBlockScope::Suspend lets this thread wait again, inside a scope: for the rare step that
// must finish once something it cannot undo has been done (a CLOSE whose open state is gone
// releasing an unlinked file). Commits in it are durable when they return.
class NoBlockScope : public detail::TicketScope<NoBlockScope> {};

// On a thread that may wait (a worker), for a request whose reply can be held: inside an
// OweScope a Commit that wrote returns once the commit is visible and leaves its durability
// ticket here instead of waiting for its log sync, and a ReadWaitScope ending in it leaves
// the tickets of the pending commits it read here too. Nothing is refused (reads may go to
// the disk, locks may wait). As with a NoBlockScope, nothing read or written in the scope may
// leave the process before KvStore::WhenDurable(owed()) has run its function; a step that
// acts outside the store after a commit (a data server told to create a file the commit
// recorded) must run in an OweScope::Suspend, where commits are durable when they return.
class OweScope : public detail::TicketScope<OweScope> {};

// The error a call refused inside a NoBlockScope returns.
Status WouldBlock(std::string_view what);

constexpr int kDefaultTxnRetries = 16;

namespace internal {
// Runs fn in a fresh transaction and commits; on kConflict (from fn or Commit) rolls back,
// sleeps a short jittered backoff and reruns, at most max_retries more times.
Status RunTxnLoop(KvStore& store, const std::function<Status(Txn&)>& fn, int max_retries);
}  // namespace internal

// RunTxn(store, fn): the retry driver every operation goes through. fn(Txn&) returns Status or
// Result<T>; RunTxn returns the same type, from the attempt that committed. Because fn may run
// several times, it must have no effects outside the transaction that a rerun would repeat
// wrongly (allocating an inode number that is then wasted is fine). Any error other than
// kConflict rolls back and is returned at once; kConflict on the last attempt is returned.
template <typename Fn>
auto RunTxn(KvStore& store, Fn&& fn, int max_retries = kDefaultTxnRetries)
    -> std::invoke_result_t<Fn&, Txn&> {
  using R = std::invoke_result_t<Fn&, Txn&>;
  if constexpr (std::is_same_v<R, Status>) {
    return internal::RunTxnLoop(store, fn, max_retries);
  } else {
    std::optional<R> out;
    Status s = internal::RunTxnLoop(
        store,
        [&](Txn& t) -> Status {
          out.emplace(fn(t));
          return out->status();
        },
        max_retries);
    if (!s.ok()) return s;
    return std::move(*out);
  }
}

}  // namespace loom::meta
