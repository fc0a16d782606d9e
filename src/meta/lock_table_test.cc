// LockTable (lock_table.h): exclusive, re-entrant per owner, released to waiters, bounded by
// the timeout, and refusing a wait that would close a cycle.
#include "meta/lock_table.h"

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

namespace loom::meta {
namespace {

using std::chrono::milliseconds;

TEST(LockTableTest, ExclusiveReentrantAndReleasedOnlyByItsOwner) {
  LockTable t;
  ASSERT_TRUE(t.Lock(1, "k", milliseconds(0)).ok());
  EXPECT_TRUE(t.Lock(1, "k", milliseconds(0)).ok());  // its own lock again
  bool would_wait = false;
  Status s = t.Lock(2, "k", milliseconds(0), &would_wait);
  EXPECT_EQ(s.code(), Code::kConflict);
  EXPECT_TRUE(would_wait);
  t.Unlock(2, "k");  // not 2's: nothing happens
  EXPECT_EQ(t.Lock(2, "k", milliseconds(0)).code(), Code::kConflict);
  EXPECT_TRUE(t.Lock(2, "other", milliseconds(0)).ok());
  EXPECT_EQ(t.held(), 2u);
  t.Unlock(1, "k");
  EXPECT_TRUE(t.Lock(2, "k", milliseconds(0)).ok());
  t.Unlock(2, "k");
  t.Unlock(2, "other");
  EXPECT_EQ(t.held(), 0u);
}

TEST(LockTableTest, AWaiterGetsTheLockWhenItIsReleased) {
  LockTable t;
  ASSERT_TRUE(t.Lock(1, "k", milliseconds(0)).ok());
  std::atomic<bool> got{false};
  Status s;
  std::thread w([&] {
    s = t.Lock(2, "k", milliseconds(10000));
    got = true;
  });
  std::this_thread::sleep_for(milliseconds(20));
  EXPECT_FALSE(got.load());  // still held by 1
  t.Unlock(1, "k");
  w.join();
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(t.Lock(1, "k", milliseconds(0)).code(), Code::kConflict);  // 2 holds it now
}

TEST(LockTableTest, AWaitThatTimesOutIsConflictAndTakesNothing) {
  LockTable t;
  ASSERT_TRUE(t.Lock(1, "k", milliseconds(0)).ok());
  bool would_wait = false;
  Status s = t.Lock(2, "k", milliseconds(20), &would_wait);
  EXPECT_EQ(s.code(), Code::kConflict);
  EXPECT_FALSE(would_wait);  // it did wait
  EXPECT_EQ(t.held(), 1u);
}

// 1 holds a and waits for b; 2 holds b and waits for c; 3 holds c and asks for a: the cycle
// is refused at once, however long the timeout. Releasing 3's lock lets the others finish.
TEST(LockTableTest, AWaitClosingACycleIsRefused) {
  LockTable t;
  ASSERT_TRUE(t.Lock(1, "a", milliseconds(0)).ok());
  ASSERT_TRUE(t.Lock(2, "b", milliseconds(0)).ok());
  ASSERT_TRUE(t.Lock(3, "c", milliseconds(0)).ok());
  Status s1, s2;
  std::thread w1([&] {
    s1 = t.Lock(1, "b", milliseconds(60000));
    t.Unlock(1, "b");
    t.Unlock(1, "a");
  });
  std::thread w2([&] {
    s2 = t.Lock(2, "c", milliseconds(60000));
    t.Unlock(2, "c");
    t.Unlock(2, "b");
  });
  // Once both wait (the chain 1 -> 2 -> 3 exists), 3 closes it.
  while (t.waiting() < 2) std::this_thread::sleep_for(milliseconds(1));
  Status s3 = t.Lock(3, "a", milliseconds(60000));
  EXPECT_EQ(s3.code(), Code::kConflict);
  EXPECT_NE(s3.message().find("deadlock"), std::string::npos) << s3.ToString();
  t.Unlock(3, "c");
  w2.join();
  w1.join();
  EXPECT_TRUE(s1.ok()) << s1.ToString();
  EXPECT_TRUE(s2.ok()) << s2.ToString();
  EXPECT_EQ(t.held(), 0u);
}

TEST(LockTableTest, WithoutDetectionACycleEndsByTheTimeout) {
  LockTable t(/*detect_deadlocks=*/false);
  ASSERT_TRUE(t.Lock(1, "a", milliseconds(0)).ok());
  ASSERT_TRUE(t.Lock(2, "b", milliseconds(0)).ok());
  Status s1;
  std::thread w1([&] { s1 = t.Lock(1, "b", milliseconds(60000)); });
  std::this_thread::sleep_for(milliseconds(20));
  Status s2 = t.Lock(2, "a", milliseconds(50));
  EXPECT_EQ(s2.code(), Code::kConflict);
  EXPECT_EQ(s2.message().find("deadlock"), std::string::npos) << s2.ToString();
  t.Unlock(2, "b");
  w1.join();
  EXPECT_TRUE(s1.ok());
}

TEST(LockTableTest, ManyThreadsNeverShareALock) {
  LockTable t;
  constexpr int kThreads = 4, kRounds = 2000;
  std::atomic<int> inside{0};
  std::atomic<bool> overlap{false};
  std::vector<std::thread> ts;
  for (int i = 0; i < kThreads; ++i) {
    ts.emplace_back([&, i] {
      const uint64_t base = static_cast<uint64_t>(i + 1) * 1000000;
      for (int r = 0; r < kRounds; ++r) {
        const uint64_t owner = base + r;
        ASSERT_TRUE(t.Lock(owner, "hot", milliseconds(10000)).ok());
        if (inside.fetch_add(1) != 0) overlap = true;
        inside.fetch_sub(1);
        t.Unlock(owner, "hot");
      }
    });
  }
  for (auto& th : ts) th.join();
  EXPECT_FALSE(overlap.load());
  EXPECT_EQ(t.held(), 0u);
}

}  // namespace
}  // namespace loom::meta
