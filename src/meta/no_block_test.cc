// NoBlockScope (kv.h): inside it no store call waits. What would wait — a write or row lock,
// a read that needs the disk, a read of a commit that is not durable yet — fails with
// Code::kWouldBlock and changes nothing, so loom-mds can run the operation again on a worker.
#include <condition_variable>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

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

TYPED_TEST(NoBlockTest, WritesAndRowLocksAreRefusedAndChangeNothing) {
  KvStore& s = *this->b_.store();
  ASSERT_TRUE(PutOne(s, "k", "old").ok());
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
    // RunTxn hands the refusal back at once: it is no conflict to retry.
    EXPECT_EQ(PutOne(s, "k", "newer").code(), Code::kWouldBlock);
    // Reads of durable, cached data are what the scope is for.
    auto v = (*t)->Get("k");
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_EQ(v->value_or("-"), "old");
    EXPECT_TRUE((*t)->Commit().ok());
  }
  EXPECT_FALSE(NoBlockScope::Active());
  auto v = GetOne(s, "k");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->value_or("-"), "old");
  // Out of the scope the same calls work again.
  EXPECT_TRUE(PutOne(s, "k", "new").ok());
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

// A kSync commit is visible (its WAL write is done) while its sync is held. A reader in a
// NoBlockScope must not return it — the reply could show a change a crash undoes — and must
// not wait for the sync either: it is refused. Out of the scope the reader waits, as before.
TEST(NoBlockRocksTest, ACommitNotYetDurableIsRefusedNotWaitedFor) {
  testing::TempDir dir;
  std::mutex mu;
  std::condition_variable cv;
  bool armed = false, in_sync = false, release = false;
  RocksKvStore::Options o;
  o.path = dir.path() + "/db";
  o.before_sync = [&](const std::string& f) {
    if (!f.ends_with(".log")) return Status::Ok();
    std::unique_lock<std::mutex> l(mu);
    if (!armed) return Status::Ok();
    in_sync = true;
    cv.notify_all();
    cv.wait(l, [&] { return release; });
    return Status::Ok();
  };
  auto opened = RocksKvStore::Open(o);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  RocksKvStore& store = **opened;
  ASSERT_TRUE(PutOne(store, "a/durable", "1").ok());  // synced before the hook holds one
  {
    std::lock_guard<std::mutex> l(mu);
    armed = true;
  }
  std::thread writer([&] { EXPECT_TRUE(PutOne(store, "a/pending", "2").ok()); });
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return in_sync; });
  }
  {
    NoBlockScope nb;
    auto t = store.Begin();
    ASSERT_TRUE(t.ok());
    EXPECT_EQ((*t)->Get("a/pending").status().code(), Code::kWouldBlock);
    auto d = (*t)->Get("a/durable");
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(d->value_or("-"), "1");
    // A scan over a range that holds the pending key is refused as a whole.
    Status sc = (*t)->Scan(KeyRange::Prefix("a/"), 0, [](std::string_view, std::string_view) {
      return true;
    });
    EXPECT_EQ(sc.code(), Code::kWouldBlock) << sc.ToString();
    // A range without it is not.
    Status other = (*t)->Scan(KeyRange::Prefix("a/d"), 0, [](std::string_view, std::string_view) {
      return true;
    });
    EXPECT_TRUE(other.ok()) << other.ToString();
    EXPECT_TRUE((*t)->Commit().ok());  // read nothing pending: returns at once
  }
  // Out of the scope a read of it ends once the sync is done.
  {
    std::lock_guard<std::mutex> l(mu);
    release = true;
    cv.notify_all();
  }
  auto v = GetOne(store, "a/pending");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->value_or("-"), "2");
  writer.join();
  {
    NoBlockScope nb;
    auto again = GetOne(store, "a/pending");  // durable now
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_EQ(again->value_or("-"), "2");
  }
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

}  // namespace
}  // namespace loom::meta
