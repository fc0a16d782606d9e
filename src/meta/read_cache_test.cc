// ReadCache (read_cache.h) alone, and in front of a RocksKvStore: a read served from memory
// must never be older than a commit that finished before the read began, a transaction must
// see its own writes, and the cache stays within its memory.
#include "meta/read_cache.h"

#include <atomic>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "meta/kv.h"
#include "meta/rocks_kv.h"
#include "meta/test_util.h"

namespace loom::meta {
namespace {

TEST(ReadCacheTest, AFillRacingACommitIsDropped) {
  ReadCache c(1 << 20);
  // A reader misses, notes the epoch, reads the database...
  uint64_t e = 0;
  EXPECT_FALSE(c.Get("k", &e).has_value());
  // ...meanwhile a writer commits and invalidates...
  c.Invalidate("k");
  // ...so what the reader read may be the old value: not remembered.
  c.Fill("k", "old", e);
  EXPECT_FALSE(c.Get("k").has_value());
  // A reader that began after the commit fills it.
  EXPECT_FALSE(c.Get("k", &e).has_value());
  c.Fill("k", "new", e);
  EXPECT_EQ(c.Get("k").value(), "new");
  // A commit whose write failed erases it.
  c.Invalidate("k");
  EXPECT_FALSE(c.Get("k").has_value());
  // A reader that missed before a commit written through cannot put its older value back.
  EXPECT_FALSE(c.Get("k", &e).has_value());
  const std::string committed = "newer";
  c.Written("k", &committed);
  c.Fill("k", "old", e);
  EXPECT_EQ(c.Get("k").value(), "newer");
  c.Written("k", nullptr);  // a delete
  EXPECT_FALSE(c.Get("k").has_value());
  ReadCache::Stats st = c.stats();
  EXPECT_EQ(st.fills, 1u);
  EXPECT_EQ(st.stale_fills, 2u);
  EXPECT_EQ(st.hits, 2u);
  EXPECT_EQ(st.entries, 0u);
  EXPECT_EQ(st.bytes, 0u);
}

TEST(ReadCacheTest, StaysWithinItsMemory) {
  const size_t capacity = 64 * 1024;
  ReadCache c(capacity);
  const std::string value(200, 'v');
  for (int i = 0; i < 10000; i++) {
    std::string k = "key" + std::to_string(i);
    uint64_t e = 0;
    EXPECT_FALSE(c.Get(k, &e).has_value());
    c.Fill(k, value, e);
  }
  ReadCache::Stats st = c.stats();
  EXPECT_LE(st.bytes, capacity);
  EXPECT_GT(st.entries, 0u);
  EXPECT_GT(st.evictions, 0u);
  EXPECT_EQ(st.fills, 10000u);
  EXPECT_EQ(st.entries, st.fills - st.evictions);
  // A value larger than a shard's share is never kept (it would evict everything).
  std::string huge(capacity, 'h');
  uint64_t e = 0;
  EXPECT_FALSE(c.Get("huge", &e).has_value());
  c.Fill("huge", huge, e);
  EXPECT_FALSE(c.Get("huge").has_value());
}

// Fills, commits (Written, and Invalidate for a failed one) and evictions in random order
// against a model: every key the cache answers for has its latest value; with room for
// everything, every key filled or written since its last invalidation or delete is answered. Many keys per shard make long probe runs, so erasing
// from the middle of one (the backward shift) is exercised.
TEST(ReadCacheTest, RandomFillsAndCommitsMatchAModel) {
  for (size_t capacity : {size_t{1} << 30, size_t{48} << 10}) {
    SCOPED_TRACE(capacity);
    ReadCache c(capacity);
    std::map<std::string, std::string> model;  // committed values
    std::set<std::string> cached;              // filled and not invalidated since
    std::mt19937_64 rng(7);
    for (int step = 0; step < 60000; step++) {
      std::string k = "I" + std::to_string(rng() % 3000);
      switch (rng() % 5) {
        case 0: {  // a commit of a new value that failed to reach the database: erased
          c.Invalidate(k);
          cached.erase(k);
          break;
        }
        case 3: {  // a commit of a new value, written through
          model[k] = "v" + std::to_string(step);
          c.Written(k, &model[k]);
          cached.insert(k);
          break;
        }
        case 4: {  // a commit that deleted it
          model.erase(k);
          c.Written(k, nullptr);
          cached.erase(k);
          break;
        }
        case 1: {  // a read that misses fills
          uint64_t e = 0;
          std::optional<std::string> v = c.Get(k, &e);
          if (!v && model.count(k)) {
            c.Fill(k, model[k], e);
            cached.insert(k);
          }
          break;
        }
        default: {
          std::optional<std::string> v = c.Get(k);
          if (v) {
            ASSERT_TRUE(model.count(k)) << k;
            ASSERT_EQ(*v, model[k]) << k;
          }
          if (capacity > (size_t{1} << 20) && cached.count(k)) {
            ASSERT_TRUE(v) << k;
          }
        }
      }
    }
    ReadCache::Stats st = c.stats();
    EXPECT_LE(st.bytes, capacity);
    if (capacity > (size_t{1} << 20)) {
      EXPECT_EQ(st.entries, cached.size());
      EXPECT_EQ(st.evictions, 0u);
    } else {
      EXPECT_GT(st.evictions, 0u);
    }
  }
}

// GetMany answers as Get does, key by key (hits, misses with the epoch Fill needs), for more
// keys than one batch and a key listed twice.
TEST(ReadCacheTest, GetManyAnswersAsGetDoes) {
  ReadCache c(1 << 20);
  std::vector<std::string> keys;
  for (int i = 0; i < 300; i++) {
    keys.push_back("key" + std::to_string(i));
    if (i % 3 != 0) {
      uint64_t e = 0;
      (void)c.Get(keys.back(), &e);
      c.Fill(keys.back(), "value" + std::to_string(i), e);
    }
  }
  keys.push_back("key1");
  c.Invalidate("key2");
  std::vector<std::string_view> views(keys.begin(), keys.end());
  std::vector<std::optional<std::string>> out(keys.size());
  std::vector<uint64_t> epochs(keys.size(), ~uint64_t{0});
  const uint64_t hits_before = c.stats().hits;
  c.GetMany(views.data(), views.size(), out.data(), epochs.data());
  size_t hits = 0;
  for (size_t i = 0; i < keys.size(); i++) {
    uint64_t e = ~uint64_t{0};
    std::optional<std::string> one = c.Get(keys[i], &e);
    EXPECT_EQ(out[i], one) << keys[i];
    if (one) {
      ++hits;
    } else {
      EXPECT_EQ(epochs[i], e) << keys[i];  // a Fill with it is accepted
      c.Fill(keys[i], "filled", epochs[i]);
      EXPECT_EQ(c.Get(keys[i]), "filled");
    }
  }
  EXPECT_EQ(hits, 300u - 100u - 1u + 1u);  // two thirds filled, key2 invalidated, key1 twice
  // GetMany's hits, the Gets' hits, and the Gets after each Fill.
  EXPECT_EQ(c.stats().hits - hits_before, 2 * hits + (keys.size() - hits));
}

class RocksReadCacheTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }
  // A fresh store (and so an empty cache) over the same database.
  void Reopen() {
    store_.reset();
    RocksKvStore::Options o;
    o.path = dir_.path() + "/db";
    o.sync = false;  // what is tested here is visibility, not durability
    auto s = RocksKvStore::Open(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }
  Status Put(std::string_view k, std::string_view v) {
    return RunTxn(*store_, [&](Txn& t) { return t.Put(k, v); });
  }
  MaybeValue Get(std::string_view k) {
    auto r = RunTxn(*store_, [&](Txn& t) { return t.Get(k); });
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : MaybeValue();
  }
  testing::TempDir dir_;
  std::unique_ptr<RocksKvStore> store_;
};

TEST_F(RocksReadCacheTest, ReadsComeFromMemoryAndCommitsReplaceThem) {
  ASSERT_TRUE(Put("a", "1").ok());
  EXPECT_EQ(Get("a"), "1");  // the commit put it in the cache (write-through)
  EXPECT_EQ(Get("a"), "1");
  RocksKvStore::Stats st = store_->stats();
  EXPECT_EQ(st.read_cache.hits, 2u);
  EXPECT_EQ(st.read_cache.misses, 0u);
  EXPECT_EQ(st.read_cache.entries, 1u);
  // A commit that changes it: the next read sees the new value, never the cached old one.
  ASSERT_TRUE(Put("a", "2").ok());
  EXPECT_EQ(Get("a"), "2");
  EXPECT_EQ(store_->stats().read_cache.hits, 3u);
  // A delete: gone, not served from memory.
  ASSERT_TRUE(RunTxn(*store_, [&](Txn& t) { return t.Delete("a"); }).ok());
  EXPECT_EQ(store_->stats().read_cache.entries, 0u);
  EXPECT_EQ(Get("a"), std::nullopt);
  EXPECT_EQ(Get("a"), std::nullopt);  // absent keys are not cached either way
  EXPECT_EQ(store_->stats().read_cache.hits, 3u);
  // What a store finds on disk when it opens is read once, then served from memory.
  ASSERT_TRUE(Put("b", "x").ok());
  Reopen();
  EXPECT_EQ(Get("b"), "x");  // miss: read from RocksDB, remembered
  EXPECT_EQ(Get("b"), "x");
  st = store_->stats();
  EXPECT_EQ(st.read_cache.misses, 1u);
  EXPECT_EQ(st.read_cache.hits, 1u);
}

TEST_F(RocksReadCacheTest, ATransactionSeesItsOwnWritesNotTheCache) {
  ASSERT_TRUE(Put("k", "committed").ok());
  EXPECT_EQ(Get("k"), "committed");  // cached
  auto t = store_->Begin();
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE((*t)->Put("k", "mine").ok());
  EXPECT_EQ((*t)->Get("k").value(), "mine");
  ASSERT_TRUE((*t)->Delete("k").ok());
  EXPECT_EQ((*t)->Get("k").value(), std::nullopt);
  // Others still see the committed value until this commits.
  EXPECT_EQ(Get("k"), "committed");
  (*t)->Rollback();
  EXPECT_EQ(Get("k"), "committed");  // a rollback changed nothing, the cache neither
  // Many writes in one transaction (past the per-key search): still its own view.
  auto big = store_->Begin();
  ASSERT_TRUE(big.ok());
  for (int i = 0; i < 100; i++) ASSERT_TRUE((*big)->Put("b" + std::to_string(i), "x").ok());
  ASSERT_TRUE((*big)->Put("k", "big").ok());
  EXPECT_EQ((*big)->Get("k").value(), "big");
  ASSERT_TRUE((*big)->Commit().ok());
  EXPECT_EQ(Get("k"), "big");
}

// Txn::GetMany is Get key by key: the transaction's own puts and deletes, cached values,
// misses (read from the database, then cached), absent keys.
TEST_F(RocksReadCacheTest, GetManyIsGetKeyByKey) {
  for (int i = 0; i < 200; i++) ASSERT_TRUE(Put("g" + std::to_string(i), std::to_string(i)).ok());
  Reopen();  // the commits put every key in the cache: start again with only the even ones
  for (int i = 0; i < 200; i += 2) EXPECT_EQ(Get("g" + std::to_string(i)), std::to_string(i));
  auto t = store_->Begin();
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE((*t)->Put("g5", "mine").ok());
  ASSERT_TRUE((*t)->Delete("g6").ok());
  std::vector<std::string> keys;
  for (int i = 0; i < 210; i++) keys.push_back("g" + std::to_string(i));
  std::vector<Result<MaybeValue>> got;
  (*t)->GetMany(keys, &got);
  ASSERT_EQ(got.size(), keys.size());
  for (size_t i = 0; i < keys.size(); i++) {
    ASSERT_TRUE(got[i].ok()) << keys[i];
    MaybeValue want = i >= 200 ? MaybeValue() : MaybeValue(std::to_string(i));
    if (i == 5) want = "mine";
    if (i == 6) want.reset();
    EXPECT_EQ(*got[i], want) << keys[i];
    EXPECT_EQ((*t)->Get(keys[i]).value(), want) << keys[i];
  }
  (*t)->Rollback();
  // The odd keys were misses; GetMany put them in the cache.
  const uint64_t hits = store_->stats().read_cache.hits;
  EXPECT_EQ(Get("g7"), "7");
  EXPECT_EQ(store_->stats().read_cache.hits, hits + 1);
}

// Writers move a counter forward (read-modify-write under GetForUpdate), readers read it in
// their own transactions, as loom-mds's loop and workers do at once. A reader must never see
// the counter go backwards, and once a writer's commit has returned, no later read may show
// less than what it wrote: a stale value left in the cache breaks one of the two. The writers'
// GetForUpdate is served from the cache too: a stale entry there would lose an increment, and
// the total would fall short.
TEST_F(RocksReadCacheTest, ConcurrentReadersNeverSeeACommitUndone) {
  const int kKeys = 4, kWrites = 400;
  for (int k = 0; k < kKeys; k++) ASSERT_TRUE(Put("c" + std::to_string(k), "0").ok());
  std::atomic<int> committed[kKeys];
  for (auto& c : committed) c = 0;
  std::atomic<bool> stop{false};
  std::atomic<int> violations{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; r++) {
    readers.emplace_back([&, r] {
      int last[kKeys] = {};
      while (!stop.load()) {
        for (int k = 0; k < kKeys; k++) {
          const int floor = committed[k].load();  // commits finished before this read began
          auto v = RunTxn(*store_, [&](Txn& t) { return t.Get("c" + std::to_string(k)); });
          if (!v.ok() || !v->has_value()) {
            violations++;
            continue;
          }
          const int seen = std::stoi(**v);
          if (seen < floor || seen < last[k]) violations++;
          last[k] = seen;
        }
      }
      (void)r;
    });
  }
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; w++) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < kWrites; i++) {
        const int k = (i + w) % kKeys;
        const std::string key = "c" + std::to_string(k);
        int wrote = 0;
        Status s = RunTxn(*store_, [&](Txn& t) -> Status {
          auto v = t.GetForUpdate(key);
          if (!v.ok()) return v.status();
          wrote = std::stoi(v->value()) + 1;
          return t.Put(key, std::to_string(wrote));
        });
        ASSERT_TRUE(s.ok()) << s.ToString();
        int prev = committed[k].load();
        while (prev < wrote && !committed[k].compare_exchange_weak(prev, wrote)) {
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(violations.load(), 0);
  int total = 0;
  for (int k = 0; k < kKeys; k++) {
    auto v = Get("c" + std::to_string(k));
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(std::stoi(*v), committed[k].load());
    total += std::stoi(*v);
  }
  EXPECT_EQ(total, 2 * kWrites);
  EXPECT_GT(store_->stats().read_cache.hits, 0u);
}

TEST_F(RocksReadCacheTest, OffMeansEveryReadGoesToTheDatabase) {
  store_.reset();
  RocksKvStore::Options o;
  o.path = dir_.path() + "/db";
  o.sync = false;
  o.read_cache_bytes = 0;
  auto s = RocksKvStore::Open(o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  store_ = std::move(s).value();
  ASSERT_TRUE(Put("a", "1").ok());
  EXPECT_EQ(Get("a"), "1");
  EXPECT_EQ(Get("a"), "1");
  EXPECT_EQ(store_->stats().read_cache.hits, 0u);
  EXPECT_EQ(store_->stats().read_cache.entries, 0u);
}

}  // namespace
}  // namespace loom::meta
