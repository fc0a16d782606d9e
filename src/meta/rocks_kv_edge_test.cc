// RocksKvStore's edges: opening a missing, damaged, locked or non-directory path; calls on a
// finished transaction; Scan bounds and limits; lock timeouts and deadlocks as kConflict; the
// durability counters of sync and deferred commits; nested read-wait scopes.
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "meta/rocks_kv.h"
#include "meta/test_util.h"

namespace loom::meta {
namespace {

using testing::TempDir;

RocksKvStore::Options At(const std::string& path) {
  RocksKvStore::Options o;
  o.path = path;
  return o;
}

std::unique_ptr<RocksKvStore> OpenOk(RocksKvStore::Options o) {
  auto s = RocksKvStore::Open(o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

// A store whose row-lock waits end after `ms` (the lock tests).
std::unique_ptr<RocksKvStore> OpenWithLockTimeout(const std::string& path, int ms) {
  RocksKvStore::Options o = At(path);
  o.lock_timeout_ms = ms;
  return OpenOk(o);
}

Status Put(KvStore& s, const std::string& k, const std::string& v) {
  return RunTxn(s, [&](Txn& t) { return t.Put(k, v); });
}

std::vector<std::string> ScanKeys(KvStore& s, const KeyRange& r, size_t limit) {
  std::vector<std::string> keys;
  Status st = RunTxn(s, [&](Txn& t) {
    keys.clear();
    return t.Scan(r, limit, [&](std::string_view k, std::string_view) {
      keys.emplace_back(k);
      return true;
    });
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  return keys;
}

TEST(RocksKvEdgeTest, OpenRefusesMissingDamagedLockedAndNonDirectoryPaths) {
  TempDir dir;
  // Missing, and not to be created.
  RocksKvStore::Options o = At(dir.path() + "/absent");
  o.create_if_missing = false;
  auto r = RocksKvStore::Open(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().ToString();
  EXPECT_NE(r.status().message().find("open " + o.path), std::string::npos);

  // A regular file where the database directory should be.
  std::string file = dir.path() + "/file";
  std::ofstream(file) << "not a database";
  r = RocksKvStore::Open(At(file));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().code(), Code::kOk);

  // Held by another open store: the LOCK file refuses a second opener.
  std::string db = dir.path() + "/db";
  {
    auto first = OpenOk(At(db));
    ASSERT_NE(first, nullptr);
    ASSERT_TRUE(Put(*first, "k", "v").ok());
    auto second = RocksKvStore::Open(At(db));
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), Code::kIo) << second.status().ToString();
  }
  // Closed: it opens again, with the data.
  {
    auto again = OpenOk(At(db));
    ASSERT_NE(again, nullptr);
    auto v = RunTxn(*again, [&](Txn& t) { return t.Get("k"); });
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->value_or(""), "v");
  }
  // A damaged CURRENT (it names the manifest) is refused, not served from.
  {
    std::ofstream cur(db + "/CURRENT", std::ios::trunc);
    cur << "MANIFEST-999999\n";
  }
  r = RocksKvStore::Open(At(db));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().code(), Code::kOk);
}

TEST(RocksKvEdgeTest, FinishedTransactionRefusesEveryCall) {
  TempDir dir;
  auto store = OpenOk(At(dir.path() + "/db"));
  ASSERT_NE(store, nullptr);
  for (bool commit : {true, false}) {
    SCOPED_TRACE(commit ? "after commit" : "after rollback");
    auto t = store->Begin();
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE((*t)->Put("a", "1").ok());
    if (commit) {
      ASSERT_TRUE((*t)->Commit().ok());
    } else {
      (*t)->Rollback();
    }
    EXPECT_EQ((*t)->Get("a").status().code(), Code::kInvalidArgument);
    EXPECT_EQ((*t)->GetForUpdate("a").status().code(), Code::kInvalidArgument);
    EXPECT_EQ((*t)->Put("a", "2").code(), Code::kInvalidArgument);
    EXPECT_EQ((*t)->Delete("a").code(), Code::kInvalidArgument);
    EXPECT_EQ((*t)->Scan(KeyRange{"", ""}, 0, [](auto, auto) { return true; }).code(),
              Code::kInvalidArgument);
    EXPECT_EQ((*t)->Commit().code(), Code::kInvalidArgument);
    (*t)->Rollback();  // a second end does nothing
  }
  auto v = RunTxn(*store, [&](Txn& t) { return t.Get("a"); });
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->value_or(""), "1");
}

TEST(RocksKvEdgeTest, ScanRangesAndLimits) {
  TempDir dir;
  auto store = OpenOk(At(dir.path() + "/db"));
  ASSERT_NE(store, nullptr);
  for (std::string k : std::vector<std::string>{"a", "b1", "b2", "b3", "c", "b\xff", "\xff\xff"})
    ASSERT_TRUE(Put(*store, k, "v").ok());
  EXPECT_EQ(ScanKeys(*store, KeyRange::Prefix("b"), 0),
            (std::vector<std::string>{"b1", "b2", "b3", "b\xff"}));
  EXPECT_EQ(ScanKeys(*store, KeyRange::Prefix("b"), 2), (std::vector<std::string>{"b1", "b2"}));
  EXPECT_EQ(ScanKeys(*store, KeyRange::PrefixFrom("b", "b2"), 0),
            (std::vector<std::string>{"b2", "b3", "b\xff"}));
  EXPECT_EQ(ScanKeys(*store, KeyRange{"c", ""}, 0), (std::vector<std::string>{"c", "\xff\xff"}));
  EXPECT_TRUE(ScanKeys(*store, KeyRange{"d", "e"}, 0).empty());
  EXPECT_TRUE(ScanKeys(*store, KeyRange{"b2", "b2"}, 0).empty());
  // A prefix of 0xff bytes has no end: to the end of the keyspace.
  EXPECT_EQ(PrefixEnd("\xff\xff"), "");
  EXPECT_EQ(PrefixEnd("b\xff"), "c");
  EXPECT_EQ(ScanKeys(*store, KeyRange::Prefix("\xff"), 0),
            (std::vector<std::string>{"\xff\xff"}));
  // The callback stops the scan; own puts and deletes are merged in.
  auto t = store->Begin();
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE((*t)->Delete("b1").ok());
  ASSERT_TRUE((*t)->Put("b0", "new").ok());
  std::vector<std::string> seen;
  ASSERT_TRUE((*t)->Scan(KeyRange::Prefix("b"), 0, [&](std::string_view k, std::string_view v) {
                  seen.emplace_back(std::string(k) + "=" + std::string(v));
                  return seen.size() < 2;
                }).ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"b0=new", "b2=v"}));
  (*t)->Rollback();
}

TEST(RocksKvEdgeTest, LockTimeoutIsConflictAndTheHolderIsUnharmed) {
  TempDir dir;
  auto store = OpenWithLockTimeout(dir.path() + "/db", 20);
  ASSERT_NE(store, nullptr);
  auto holder = store->Begin();
  auto other = store->Begin();
  ASSERT_TRUE(holder.ok() && other.ok());
  ASSERT_TRUE((*holder)->Put("k", "mine").ok());
  EXPECT_EQ((*other)->GetForUpdate("k").status().code(), Code::kConflict);
  EXPECT_EQ((*other)->Put("k", "theirs").code(), Code::kConflict);
  EXPECT_EQ((*other)->Delete("k").code(), Code::kConflict);
  // Plain reads take no lock: they see the last committed state (nothing yet).
  auto seen = (*other)->Get("k");
  ASSERT_TRUE(seen.ok());
  EXPECT_FALSE(seen->has_value());
  (*other)->Rollback();
  ASSERT_TRUE((*holder)->Commit().ok());
  auto v = RunTxn(*store, [&](Txn& t) { return t.GetForUpdate("k"); });
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->value_or(""), "mine");
}

// A transaction that locks many keys, some more than once, leaves none locked when it ends,
// committed or rolled back: another transaction (with a short lock timeout) gets them all.
TEST(RocksKvEdgeTest, ATransactionOfManyKeysReleasesEveryLock) {
  TempDir dir;
  auto store = OpenWithLockTimeout(dir.path() + "/db", 20);
  ASSERT_NE(store, nullptr);
  for (bool commit : {true, false}) {
    auto t = store->Begin();
    ASSERT_TRUE(t.ok());
    for (int round = 0; round < 2; round++) {
      for (int i = 0; i < 200; i++) {
        ASSERT_TRUE((*t)->Put("m" + std::to_string(i), std::to_string(round)).ok());
      }
    }
    ASSERT_TRUE((*t)->GetForUpdate("m5").ok());
    EXPECT_EQ((*t)->Get("m7").value().value_or(""), "1");
    if (commit) {
      ASSERT_TRUE((*t)->Commit().ok());
    } else {
      (*t)->Rollback();
    }
    Status s = RunTxn(*store, [&](Txn& other) -> Status {
      for (int i = 0; i < 200; i++) LOOM_RETURN_IF_ERROR(other.Delete("m" + std::to_string(i)));
      return Status::Ok();
    }, /*max_retries=*/0);
    EXPECT_TRUE(s.ok()) << (commit ? "after commit: " : "after rollback: ") << s.ToString();
  }
}

TEST(RocksKvEdgeTest, DeadlockIsDetectedAsConflict) {
  TempDir dir;
  // Only deadlock detection may end the wait in time.
  auto store = OpenWithLockTimeout(dir.path() + "/db", 8000);
  ASSERT_NE(store, nullptr);
  auto a = store->Begin();
  auto b = store->Begin();
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->Put("k1", "a").ok());
  ASSERT_TRUE((*b)->Put("k2", "b").ok());
  Status sa, sb;
  std::thread ta([&] {
    sa = (*a)->GetForUpdate("k2").status();
    if (!sa.ok()) (*a)->Rollback();  // frees k1 for b
  });
  sb = (*b)->GetForUpdate("k1").status();
  if (!sb.ok()) (*b)->Rollback();  // frees k2 for a
  ta.join();
  // Whichever closed the cycle was refused; the other got its lock.
  EXPECT_NE(sa.ok(), sb.ok()) << sa.ToString() << " / " << sb.ToString();
  EXPECT_EQ((sa.ok() ? sb : sa).code(), Code::kConflict);
  if (sa.ok()) {
    EXPECT_TRUE((*a)->Commit().ok());
  }
  if (sb.ok()) {
    EXPECT_TRUE((*b)->Commit().ok());
  }
}

TEST(RocksKvEdgeTest, DurabilityCounters) {
  TempDir dir;
  auto store = OpenOk(At(dir.path() + "/db"));
  ASSERT_NE(store, nullptr);
  auto base = store->stats();
  // A transaction that only reads commits nothing.
  ASSERT_TRUE(RunTxn(*store, [&](Txn& t) { return t.Get("x").status(); }).ok());
  EXPECT_EQ(store->stats().sync_commits, base.sync_commits);
  ASSERT_TRUE(Put(*store, "x", "1").ok());
  EXPECT_EQ(store->stats().sync_commits, base.sync_commits + 1);
  EXPECT_GT(store->stats().wal_syncs, base.wal_syncs);
  // A deferred commit is counted as such and made durable by Sync.
  ASSERT_TRUE(RunTxn(*store, [&](Txn& t) {
                t.SetDurability(Durability::kDeferred);
                return t.Put("y", "2");
              }).ok());
  auto mid = store->stats();
  EXPECT_EQ(mid.deferred_commits, base.deferred_commits + 1);
  ASSERT_TRUE(store->Sync().ok());
  EXPECT_GT(store->stats().wal_syncs, mid.wal_syncs);
  // Once everything is durable, Sync makes no WAL sync of its own.
  auto after = store->stats();
  ASSERT_TRUE(store->Sync().ok());
  EXPECT_EQ(store->stats().wal_syncs, after.wal_syncs);

  // A store without sync: every commit is deferred and Sync does nothing.
  RocksKvStore::Options nosync = At(dir.path() + "/db2");
  nosync.sync = false;
  auto fast = OpenOk(nosync);
  ASSERT_NE(fast, nullptr);
  ASSERT_TRUE(Put(*fast, "z", "3").ok());
  EXPECT_EQ(fast->stats().deferred_commits, 1u);
  EXPECT_EQ(fast->stats().sync_commits, 0u);
  ASSERT_TRUE(fast->Sync().ok());
  EXPECT_EQ(fast->stats().wal_syncs, 0u);
}

TEST(RocksKvEdgeTest, NestedReadWaitScopes) {
  TempDir dir;
  auto store = OpenOk(At(dir.path() + "/db"));
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(Put(*store, "k", "v").ok());
  {
    ReadWaitScope outer(*store);
    {
      ReadWaitScope inner(*store);
      auto v = RunTxn(*store, [&](Txn& t) { return t.Get("k"); });
      ASSERT_TRUE(v.ok());
      EXPECT_EQ(v->value_or(""), "v");
      inner.End();
      inner.End();  // a second End does nothing
    }
    auto t = store->Begin();
    ASSERT_TRUE(t.ok());
    auto got = (*t)->Scan(KeyRange::Prefix("k"), 0, [](auto, auto) { return true; });
    EXPECT_TRUE(got.ok());
    (*t)->Rollback();
  }
  // Unbalanced End is ignored.
  store->EndDeferredReadWaits();
  ASSERT_TRUE(Put(*store, "k2", "v2").ok());
}

}  // namespace
}  // namespace loom::meta
