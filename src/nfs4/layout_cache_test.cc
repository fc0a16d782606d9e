// LayoutCache (layout_cache.h): a layout read before a change never overwrites the changed
// one; a full shard evicts one entry, not all; concurrent readers and writers end with the
// cache equal to the store.
#include "nfs4/layout_cache.h"

#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace loom::nfs4 {
namespace {

meta::Layout Gen(uint64_t g) {
  meta::Layout l;
  l.generation = g;
  return l;
}

TEST(LayoutCacheTest, AReadBeforeAChangeDoesNotOverwriteIt) {
  LayoutCache c;
  uint64_t epoch = 0;
  EXPECT_FALSE(c.Get(7, &epoch).has_value());
  c.Put(7, Gen(2));            // a change commits while the reader reads generation 1
  c.Fill(7, Gen(1), epoch);    // the reader's fill is dropped
  uint64_t e2 = 0;
  ASSERT_TRUE(c.Get(7, &e2).has_value());
  EXPECT_EQ(c.Get(7, &e2)->generation, 2u);

  // The same after a Forget: the stale read is not cached, the next reader reads the store.
  EXPECT_FALSE(c.Get(8, &epoch).has_value());
  c.Forget(8);
  c.Fill(8, Gen(1), epoch);
  EXPECT_FALSE(c.Get(8, &e2).has_value());
  // With no change in between the fill is kept.
  c.Fill(8, Gen(3), e2);
  ASSERT_TRUE(c.Get(8, &e2).has_value());
  EXPECT_EQ(c.Get(8, &e2)->generation, 3u);
}

TEST(LayoutCacheTest, AFullShardEvictsOneEntryNotAll) {
  LayoutCache c(/*capacity=*/16 * 10);
  for (uint64_t ino = 1; ino <= 10000; ino++) c.Put(ino, Gen(ino));
  EXPECT_LE(c.size(), 160u);
  EXPECT_GE(c.size(), 150u);  // shards stay full; nothing cleared them
  uint64_t e = 0;
  auto last = c.Get(10000, &e);  // the newest is always there
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->generation, 10000u);
}

TEST(LayoutCacheTest, ConcurrentReadersAndWritersEndEqualToTheStore) {
  LayoutCache c(/*capacity=*/1 << 20);
  std::mutex store_mu;
  std::map<uint64_t, uint64_t> store;  // ino -> generation, the truth
  constexpr uint64_t kFiles = 64;
  for (uint64_t i = 0; i < kFiles; i++) store[i] = 1;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; w++) {
    threads.emplace_back([&, w] {
      for (uint64_t n = 0; n < 20000; n++) {
        const uint64_t ino = (n * 7 + static_cast<uint64_t>(w)) % kFiles;
        // A change and its Put in one critical section, as the MDS's changes hold layout_mu_.
        std::lock_guard<std::mutex> l(store_mu);
        const uint64_t g = ++store[ino];
        if (n % 5 == 0) c.Forget(ino);
        else c.Put(ino, Gen(g));
      }
    });
  }
  for (int r = 0; r < 4; r++) {
    threads.emplace_back([&, r] {
      uint64_t n = static_cast<uint64_t>(r);
      while (!stop.load()) {
        const uint64_t ino = (n++ * 13) % kFiles;
        uint64_t epoch = 0;
        if (c.Get(ino, &epoch)) continue;
        uint64_t g;
        {
          std::lock_guard<std::mutex> l(store_mu);
          g = store[ino];
        }
        std::this_thread::yield();  // a store read takes a while; changes land meanwhile
        c.Fill(ino, Gen(g), epoch);
      }
    });
  }
  threads[0].join();
  threads[1].join();
  stop = true;
  for (size_t i = 2; i < threads.size(); i++) threads[i].join();
  // Whatever the readers filled is what the store holds now.
  size_t cached = 0;
  for (uint64_t ino = 0; ino < kFiles; ino++) {
    uint64_t e = 0;
    auto got = c.Get(ino, &e);
    if (!got) continue;
    ++cached;
    EXPECT_EQ(got->generation, store[ino]) << "file " << ino;
  }
  EXPECT_GT(cached, 0u);
}

}  // namespace
}  // namespace loom::nfs4
