// NoBlockScope (kv.h): inside it no store call waits. What would wait — a write or row lock,
// a read that needs the disk, a read of a commit that is not durable yet — fails with
// Code::kWouldBlock and changes nothing, so loom-mds can run the operation again on a worker.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "common/stats.h"
#include "common/sync_point.h"
#include "meta/errors.h"
#include "meta/kv.h"
#include "meta/test_util.h"

namespace loom::meta {
namespace {

using testing::BackendNames;
using testing::Backends;

Status PutOne(KvStore& store, std::string_view k, std::string_view v) {
  return RunTxn(store, [&](Txn& t) { return t.Put(k, v); });
}

Result<MaybeValue> GetOne(KvStore& store, std::string_view k) {
  return RunTxn(store, [&](Txn& t) { return t.Get(k); });
}

template <typename B>
class NoBlockTest : public ::testing::Test {
 protected:
  B b_;
};

TYPED_TEST_SUITE(NoBlockTest, Backends, BackendNames);

TYPED_TEST(NoBlockTest, ALockHeldElsewhereIsRefusedAndChangesNothing) {
  KvStore& s = *this->b_.store();
  ASSERT_TRUE(PutOne(s, "k", "old").ok());
  auto holder = s.Begin();
  ASSERT_TRUE(holder.ok());
  ASSERT_TRUE((*holder)->GetForUpdate("k").ok());  // held outside any scope
  {
    NoBlockScope nb;
    EXPECT_TRUE(NoBlockScope::Active());
    auto t = s.Begin();
    ASSERT_TRUE(t.ok());
    Status put = (*t)->Put("k", "new");
    EXPECT_EQ(put.code(), Code::kWouldBlock) << put.ToString();
    EXPECT_EQ(ErrOf(put), MetaErr::kWouldBlock);
    EXPECT_EQ((*t)->Delete("k").code(), Code::kWouldBlock);
    EXPECT_EQ((*t)->GetForUpdate("k").status().code(), Code::kWouldBlock);
    // RunTxn hands the refusal back at once: it is no conflict to retry after a sleep.
    EXPECT_EQ(PutOne(s, "k", "newer").code(), Code::kWouldBlock);
    // Reads take no lock.
    auto v = (*t)->Get("k");
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_EQ(v->value_or("-"), "old");
    EXPECT_TRUE((*t)->Commit().ok());
    // Keys nobody holds are written and committed without waiting.
    EXPECT_TRUE(PutOne(s, "other", "1").ok());
  }
  EXPECT_FALSE(NoBlockScope::Active());
  (*holder)->Rollback();
  auto v = GetOne(s, "k");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->value_or("-"), "old");
  auto o = GetOne(s, "other");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->value_or("-"), "1");
}

TYPED_TEST(NoBlockTest, ScopesNest) {
  {
    NoBlockScope outer;
    {
      NoBlockScope inner;
      EXPECT_TRUE(NoBlockScope::Active());
    }
    EXPECT_TRUE(NoBlockScope::Active());  // the inner scope's end leaves the outer one on
  }
  EXPECT_FALSE(NoBlockScope::Active());
}

// Commits k = "v" as the event loop does (in a NoBlockScope): returns the ticket it owes.
uint64_t PutOnLoop(RocksKvStore& store, const std::string& k) {
  NoBlockScope nb;
  EXPECT_TRUE(PutOne(store, k, "v").ok());
  EXPECT_GT(nb.owed(), 0u);
  return nb.owed();
}

// Syncs held by a test hook: a commit made in a NoBlockScope returns while its sync is
// held, owes its ticket, and WhenDurable runs its function only after the sync. A reader in a
// scope that sees a commit not durable yet owes it too instead of waiting.
class HeldSyncs {
 public:
  explicit HeldSyncs(const std::string& path) {
    o_.path = path;
    // The syncer's thread syncs (held); inline syncs would hold the test's own thread.
    o_.inline_sync_max_us = 0;
    o_.before_sync = [this](const std::string& f) {
      if (!f.ends_with(".log")) return Status::Ok();
      std::unique_lock<std::mutex> l(mu_);
      if (!held_) return Status::Ok();
      in_sync_ = true;
      cv_.notify_all();
      cv_.wait(l, [&] { return !held_; });
      return Status::Ok();
    };
  }
  RocksKvStore::Options options() const { return o_; }
  void Hold() {
    std::lock_guard<std::mutex> l(mu_);
    held_ = true;
  }
  void WaitInSync() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return in_sync_; });
  }
  void Release() {
    std::lock_guard<std::mutex> l(mu_);
    held_ = false;
    cv_.notify_all();
  }

 private:
  RocksKvStore::Options o_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false, in_sync_ = false;
};

// The loop's short wait for a row lock (Options::no_block_lock_wait_us): a holder that lets go
// within it leaves the key to the loop's transaction; with no wait it is refused at once.
TEST(NoBlockRocksTest, ALockReleasedWithinTheLoopsWaitIsTaken) {
  for (int wait_us : {0, 60'000'000}) {
    SCOPED_TRACE(wait_us);
    testing::TempDir dir;
    RocksKvStore::Options o;
    o.path = dir.path() + "/db";
    o.sync = false;
    o.no_block_lock_wait_us = wait_us;
    auto opened = RocksKvStore::Open(o);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    RocksKvStore& store = **opened;
    ASSERT_TRUE(PutOne(store, "k", "old").ok());
    auto holder = store.Begin();
    ASSERT_TRUE(holder.ok());
    ASSERT_TRUE((*holder)->GetForUpdate("k").ok());
    bool waited = false;
    {
      ::loom::testing::SyncPointScope sp;
      // The holder finishes once the loop's transaction has begun to wait for it.
      sp.Set("KvTxn::LockKey:no_block_wait", [&] {
        waited = true;
        (*holder)->Rollback();
      });
      NoBlockScope nb;
      Status put = PutOne(store, "k", "new");
      if (wait_us == 0) {
        EXPECT_EQ(put.code(), Code::kWouldBlock) << put.ToString();
      } else {
        EXPECT_TRUE(put.ok()) << put.ToString();
      }
    }
    EXPECT_EQ(waited, wait_us != 0);
    (*holder)->Rollback();
    auto v = GetOne(store, "k");
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->value_or("-"), wait_us == 0 ? "old" : "new");
  }
}

TEST(NoBlockRocksTest, ACommitInTheScopeDoesNotWaitForItsSync) {
  testing::TempDir dir;
  HeldSyncs syncs(dir.path() + "/db");
  auto opened = RocksKvStore::Open(syncs.options());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  RocksKvStore& store = **opened;
  ASSERT_TRUE(PutOne(store, "a/durable", "1").ok());
  syncs.Hold();
  uint64_t owed = 0;
  {
    NoBlockScope nb;
    EXPECT_EQ(nb.owed(), 0u);
    ASSERT_TRUE(PutOne(store, "a/pending", "2").ok());  // returns with its sync not done
    owed = nb.owed();
  }
  EXPECT_GT(owed, 0u);
  std::promise<void> ran;
  store.WhenDurable(owed, [&] { ran.set_value(); });
  syncs.WaitInSync();  // the syncer thread is syncing for it, held by the hook
  auto ran_future = ran.get_future();
  EXPECT_EQ(ran_future.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  {
    // Another reader in a scope sees the commit (visible) and owes it; it does not wait.
    NoBlockScope nb;
    auto v = GetOne(store, "a/pending");
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_EQ(v->value_or("-"), "2");
    EXPECT_EQ(nb.owed(), owed);
    // What it did not read owes nothing more.
    NoBlockScope inner;
    ASSERT_TRUE(GetOne(store, "a/durable").ok());
    EXPECT_EQ(inner.owed(), 0u);
  }
  syncs.Release();
  ran_future.wait();  // run once the sync is done
  EXPECT_GE(store.stats().wal_syncs, 2u);
  // Durable now: WhenDurable runs its function at once, here.
  bool now = false;
  store.WhenDurable(owed, [&] { now = true; });
  EXPECT_TRUE(now);
  store.WaitUntilDurable(owed);
}

// A worker that holds its reply (OweScope): its commit returns while the sync is held and owes
// its ticket, as on the loop, but nothing is refused; a ReadWaitScope ending in it owes the
// commits it read instead of waiting; inside a Suspend a commit is durable when it returns.
TEST(NoBlockRocksTest, AnOweScopeOwesWhatItWouldHaveWaitedFor) {
  testing::TempDir dir;
  HeldSyncs syncs(dir.path() + "/db");
  auto opened = RocksKvStore::Open(syncs.options());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  RocksKvStore& store = **opened;
  ASSERT_TRUE(PutOne(store, "a/durable", "1").ok());
  syncs.Hold();
  uint64_t owed = 0;
  {
    OweScope owe;
    EXPECT_TRUE(OweScope::Active());
    EXPECT_FALSE(NoBlockScope::Active());  // reads and locks may still wait
    ASSERT_TRUE(PutOne(store, "a/pending", "2").ok());  // returns with its sync not done
    owed = owe.owed();
  }
  EXPECT_FALSE(OweScope::Active());
  EXPECT_GT(owed, 0u);
  std::promise<void> ran;
  store.WhenDurable(owed, [&] { ran.set_value(); });
  syncs.WaitInSync();  // the syncer thread is syncing for it, held by the hook
  auto ran_future = ran.get_future();
  {
    // A reader in a ReadWaitScope inside the scope: its read of the pending commit is owed.
    OweScope owe;
    {
      ReadWaitScope reads(store);
      auto v = GetOne(store, "a/pending");
      ASSERT_TRUE(v.ok()) << v.status().ToString();
      EXPECT_EQ(v->value_or("-"), "2");
    }
    EXPECT_EQ(owe.owed(), owed);
  }
  // Suspended, a commit waits for its sync: it finishes only after the hook lets go.
  std::promise<void> committed;
  std::thread suspended([&] {
    OweScope owe;
    OweScope::Suspend durable;
    EXPECT_FALSE(OweScope::Active());
    EXPECT_TRUE(PutOne(store, "a/suspended", "3").ok());
    committed.set_value();
    EXPECT_EQ(owe.owed(), 0u);
  });
  auto done = committed.get_future();
  EXPECT_EQ(done.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  EXPECT_EQ(ran_future.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  syncs.Release();
  done.wait();
  suspended.join();
  ran_future.wait();
  store.WaitUntilDurable(owed);
}

// After a restart the data sits in table files that no read has brought into the block
// cache: a read in the scope would go to the disk, so it is refused; once a read outside the
// scope has cached the block, the scope's read is answered.
TEST(NoBlockRocksTest, AReadThatNeedsTheDiskIsRefusedUntilCached) {
  testing::TempDir dir;
  RocksKvStore::Options o;
  o.path = dir.path() + "/db";
  {
    auto opened = RocksKvStore::Open(o);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    for (int i = 0; i < 100; i++) {
      ASSERT_TRUE(PutOne(**opened, "k" + std::to_string(i), std::string(100, 'x')).ok());
    }
  }
  auto opened = RocksKvStore::Open(o);  // recovery writes the log into a table file
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  RocksKvStore& store = **opened;
  {
    NoBlockScope nb;
    EXPECT_EQ(GetOne(store, "k7").status().code(), Code::kWouldBlock);
    size_t rows = 0;
    Status sc = RunTxn(store, [&](Txn& t) {
      return t.Scan(KeyRange::Prefix("k"), 0, [&](std::string_view, std::string_view) {
        rows++;
        return true;
      });
    });
    EXPECT_EQ(sc.code(), Code::kWouldBlock) << sc.ToString();
  }
  auto v = GetOne(store, "k7");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->value_or("-"), std::string(100, 'x'));
  NoBlockScope nb;
  auto cached = GetOne(store, "k7");
  ASSERT_TRUE(cached.ok()) << cached.status().ToString();
  EXPECT_EQ(cached->value_or("-"), std::string(100, 'x'));
}

// Group commit's delay (RocksKvStore::Options::commit_delay_us, SyncerLoop). The WAL syncs are
// let through one at a time by a hook, so what each one covers is known. One change at a time
// never waits. Four replies wait at once, then two: the syncer waits for more before it syncs
// (at most the 5 s set here), and the third that comes ends the wait, so one sync covers all
// three.
TEST(NoBlockRocksTest, GroupCommitWaitsOnlyWhileMoreChangesAreComing) {
  testing::TempDir dir;
  std::mutex mu;
  std::condition_variable cv;
  bool gate = false;
  int entered = 0, passes = 0;
  RocksKvStore::Options o;
  o.path = dir.path() + "/db";
  o.commit_delay_us = 5'000'000;
  o.inline_sync_max_us = 0;  // every sync by the syncer (see the test below for the others)
  o.before_sync = [&](const std::string& f) {
    if (!f.ends_with(".log")) return Status::Ok();
    std::unique_lock<std::mutex> l(mu);
    const int me = entered++;
    cv.notify_all();
    cv.wait(l, [&] { return !gate || passes > me; });
    return Status::Ok();
  };
  auto opened = RocksKvStore::Open(o);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  RocksKvStore& store = **opened;
  std::atomic<int> ran{0};
  auto change = [&](const std::string& k) {
    const uint64_t owed = PutOnLoop(store, k);
    store.WhenDurable(owed, [&] {
      ran.fetch_add(1);
      std::lock_guard<std::mutex> l(mu);
      cv.notify_all();
    });
  };
  auto wait_for = [&](auto done) {
    std::unique_lock<std::mutex> l(mu);
    ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(60), done));
  };

  for (int i = 0; i < 20; i++) {  // one at a time, each waiting for its reply
    change("one/" + std::to_string(i));
    wait_for([&] { return ran.load() == i + 1; });
  }
  EXPECT_EQ(store.stats().delayed_syncs, 0u);

  int base = 0;
  {
    std::lock_guard<std::mutex> l(mu);
    gate = true;
    base = passes = entered;
  }
  change("a");  // its sync starts and is held
  wait_for([&] { return entered == base + 1; });
  for (const char* k : {"b", "c", "d", "e"}) change(k);
  {
    std::lock_guard<std::mutex> l(mu);
    ++passes;  // a's sync ends; b-e (four at once) go in the next without a wait
    cv.notify_all();
  }
  wait_for([&] { return entered == base + 2; });
  EXPECT_EQ(store.stats().delayed_syncs, 0u);
  change("f");
  change("g");
  const uint64_t syncs_before = store.stats().wal_syncs;
  {
    std::lock_guard<std::mutex> l(mu);
    ++passes;  // b-e's sync ends; two wait, fewer than the four before: the syncer waits
    cv.notify_all();
  }
  wait_for([&] { return ran.load() == 20 + 5; });
  for (int i = 0; i < 1000 && store.stats().delayed_syncs == 0; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(store.stats().delayed_syncs, 1u);
  EXPECT_EQ(entered, base + 2);  // f and g are not being synced yet
  change("h");                   // the third: the wait ends
  wait_for([&] { return entered == base + 3; });
  {
    std::lock_guard<std::mutex> l(mu);
    gate = false;
    cv.notify_all();
  }
  wait_for([&] { return ran.load() == 20 + 8; });
  EXPECT_EQ(store.stats().wal_syncs, syncs_before + 2);  // b-e's, then one for f, g and h
  EXPECT_EQ(store.stats().delayed_syncs, 1u);
}

// One change at a time (WhenDurableSyncLater, SyncOwed): with nothing else owed and the
// syncer idle, the store leaves the sync to its caller, which syncs in SyncOwed and runs the
// function there. A second change owed before SyncOwed wakes the syncer as WhenDurable does;
// so does any change while a sync is in flight, once recent syncs are slow, and always with
// Options::inline_sync_max_us at 0.
TEST(NoBlockRocksTest, OneChangeAtATimeIsSyncedByItsCaller) {
  testing::TempDir dir;
  std::mutex mu;
  std::condition_variable cv;
  bool hold = false;      // the next WAL sync waits until released
  bool holding = false;   // a sync is waiting
  int sleep_ms = 0;       // each WAL sync takes this long
  RocksKvStore::Options o;
  o.path = dir.path() + "/db";
  // A cap far above what a loaded machine's syncs take (the default 1 ms is not: under ctest
  // -j2 a sync may take longer, and the changes below would go to the syncer), and far below
  // the slow syncs the end of the test makes.
  o.inline_sync_max_us = 50'000;
  o.before_sync = [&](const std::string& f) {
    if (!f.ends_with(".log")) return Status::Ok();
    std::unique_lock<std::mutex> l(mu);
    if (hold) {
      holding = true;
      cv.notify_all();
      cv.wait(l, [&] { return !hold; });
      holding = false;
    }
    const int ms = sleep_ms;
    l.unlock();
    if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return Status::Ok();
  };
  StatsRegistry reg;  // before the store: it must outlive it
  auto opened = RocksKvStore::Open(o);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  RocksKvStore& store = **opened;
  store.UseStats(&reg);

  // Commits `k` as the loop does and hands its reply to WhenDurableSyncLater (its result).
  // `done` counts the functions run, `here` those run on this thread.
  std::atomic<int> done{0}, here{0};
  const std::thread::id me = std::this_thread::get_id();
  auto change = [&](const std::string& k) {
    const uint64_t owed = PutOnLoop(store, k);
    return store.WhenDurableSyncLater(owed, [&, owed] {
      store.WaitUntilDurable(owed);  // durable when it runs: returns at once
      if (std::this_thread::get_id() == me) here.fetch_add(1);
      done.fetch_add(1);
      std::lock_guard<std::mutex> l(mu);
      cv.notify_all();
    });
  };
  auto wait_for = [&](auto pred) {
    std::unique_lock<std::mutex> l(mu);
    ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(60), pred));
  };

  // The syncer thread starts with the first function the store owes, and syncs what it finds
  // owed as it starts: one change through it first, then it sleeps.
  {
    const uint64_t owed = PutOnLoop(store, "first");
    std::promise<void> ran;
    store.WhenDurable(owed, [&] { ran.set_value(); });
    ran.get_future().wait();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const uint64_t syncs0 = store.stats().wal_syncs;
  for (int i = 0; i < 10; i++) {
    ASSERT_TRUE(change("one/" + std::to_string(i))) << i;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    EXPECT_EQ(done.load(), i) << "ran before it was synced";
    store.SyncOwed();
    EXPECT_EQ(done.load(), i + 1);
  }
  EXPECT_EQ(here.load(), 10);
  EXPECT_EQ(store.stats().inline_syncs, 10u);
  EXPECT_EQ(store.stats().wal_syncs, syncs0 + 10);
  // Counted for the stats file: every sync, and the loop's own apart, one commit each.
  EXPECT_EQ(reg.Get("store.wal_sync_on_loop")->calls(), 10u);
  EXPECT_EQ(reg.Get("store.wal_sync_on_loop")->bytes_in(), 10u);
  EXPECT_EQ(reg.Get("store.wal_sync")->calls(), 11u);  // + the syncer's for "first"

  // Two owed before SyncOwed: the second wakes the syncer, which syncs for both.
  EXPECT_TRUE(change("two/a"));
  EXPECT_FALSE(change("two/b"));
  wait_for([&] { return done.load() == 12; });
  store.SyncOwed();  // nothing left to do
  EXPECT_EQ(store.stats().inline_syncs, 10u);

  // A sync in flight on another thread: the syncer's work.
  {
    std::lock_guard<std::mutex> l(mu);
    hold = true;
  }
  std::thread other([&] { EXPECT_TRUE(PutOne(store, "other", "v").ok()); });  // syncs, held
  wait_for([&] { return holding; });
  EXPECT_FALSE(change("while-syncing"));
  EXPECT_EQ(done.load(), 12);  // not durable yet
  {
    std::lock_guard<std::mutex> l(mu);
    hold = false;
    cv.notify_all();
  }
  other.join();
  wait_for([&] { return done.load() == 13; });

  // Slow syncs: once the recent average passes the cap (50 ms here), the syncer again. The
  // average moves an eighth of the way per sync, so one 500 ms sync takes it past the cap.
  {
    std::lock_guard<std::mutex> l(mu);
    sleep_ms = 500;
  }
  int later = 0;
  for (int i = 0; i < 3; i++) {
    const int before = done.load();
    if (change("slow/" + std::to_string(i))) {
      ++later;
      store.SyncOwed();
    }
    wait_for([&] { return done.load() == before + 1; });
  }
  EXPECT_GE(later, 1);  // the first: the average was still that of fast syncs
  EXPECT_LT(later, 3);
}

TEST(NoBlockRocksTest, InlineSyncsOffLeaveEverySyncToTheSyncer) {
  testing::TempDir dir;
  RocksKvStore::Options o;
  o.path = dir.path() + "/db";
  o.inline_sync_max_us = 0;
  auto opened = RocksKvStore::Open(o);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  RocksKvStore& store = **opened;
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  const std::thread::id me = std::this_thread::get_id();
  for (int i = 0; i < 5; i++) {
    const uint64_t owed = PutOnLoop(store, "k" + std::to_string(i));
    EXPECT_FALSE(store.WhenDurableSyncLater(owed, [&] {
      EXPECT_NE(std::this_thread::get_id(), me);
      std::lock_guard<std::mutex> l(mu);
      ++done;
      cv.notify_all();
    }));
    std::unique_lock<std::mutex> l(mu);
    ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(60), [&] { return done == i + 1; }));
  }
  EXPECT_EQ(store.stats().inline_syncs, 0u);
}

}  // namespace
}  // namespace loom::meta
