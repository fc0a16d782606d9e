// RangeCache (range_cache.h) alone, and behind RocksKvStore's ScanPrefixFrom: a listing read
// from memory must give what a scan of the database gives, whatever commits, rollbacks and
// evictions came between its pages.
#include "meta/range_cache.h"

#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "meta/kv.h"
#include "meta/rocks_kv.h"
#include "meta/test_util.h"

namespace loom::meta {
namespace {

TEST(RangeCacheTest, AnExtensionRacingACommitIsRefused) {
  RangeCache c(1 << 20);
  auto l = c.Get("P/");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->covered, "P/");
  EXPECT_FALSE(l->complete);
  // A scan read rows from the database...
  auto rows = std::make_shared<RangeCache::Chunk>();
  rows->Add("P/a", "1");
  rows->Add("P/b", "2");
  // ...meanwhile a commit to the range dropped the listing: what the scan read may be older.
  c.Invalidate("P/b");
  c.Extend("P/", l, rows, std::string("P/b") + '\0', false);
  RangeCache::Stats st = c.stats();
  EXPECT_EQ(st.stale, 1u);
  EXPECT_EQ(st.invalidations, 1u);
  EXPECT_EQ(st.extensions, 0u);
  // A listing started after it takes the rows.
  auto l2 = c.Get("P/");
  EXPECT_EQ(l2->chunks.size(), 0u);
  c.Extend("P/", l2, rows, "P0", true);
  auto l3 = c.Get("P/");
  ASSERT_EQ(l3->chunks.size(), 1u);
  EXPECT_TRUE(l3->complete);
  EXPECT_EQ(l3->chunks[0]->key(1), "P/b");
  EXPECT_EQ(l3->chunks[0]->value(1), "2");
  EXPECT_EQ(l3->chunks[0]->LowerBound("P/aa"), 1u);
  // A key outside every cached prefix drops nothing; one inside a nested prefix drops both.
  c.Invalidate("Q/a");
  EXPECT_EQ(c.stats().listings, 1u);
  (void)c.Get("P/x/");
  EXPECT_EQ(c.stats().listings, 2u);
  c.Invalidate("P/x/1");
  EXPECT_EQ(c.stats().listings, 0u);
  EXPECT_EQ(c.stats().bytes, 0u);
}

TEST(RangeCacheTest, StaysWithinItsMemory) {
  const size_t capacity = 16 * 1024;
  RangeCache c(capacity);
  for (int p = 0; p < 50; p++) {
    const std::string prefix = "P" + std::to_string(p) + "/";
    auto l = c.Get(prefix);
    ASSERT_TRUE(l);
    auto rows = std::make_shared<RangeCache::Chunk>();
    for (int i = 0; i < 20; i++) rows->Add(prefix + std::to_string(100 + i), std::string(20, 'v'));
    c.Extend(prefix, l, rows, prefix + "999", false);
    EXPECT_LE(c.stats().bytes, capacity);
  }
  EXPECT_GT(c.stats().evictions, 0u);
  // A listing that would pass the whole budget stops growing (and stays correct as it is).
  auto l = c.Get("big/");
  auto rows = std::make_shared<RangeCache::Chunk>();
  for (int i = 0; i < 1000; i++) rows->Add("big/" + std::to_string(1000 + i), std::string(20, 'v'));
  c.Extend("big/", l, rows, "big/9", false);
  EXPECT_EQ(c.Get("big/")->chunks.size(), 0u);
  EXPECT_LE(c.stats().bytes, capacity);
}

class ListingCacheTest : public ::testing::Test {
 protected:
  void Open(size_t listing_bytes) {
    store_.reset();
    RocksKvStore::Options o;
    o.path = dir_.path() + "/db";
    o.sync = false;  // visibility is tested here, not durability
    o.listing_cache_bytes = listing_bytes;
    auto s = RocksKvStore::Open(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }
  void SetUp() override { Open(size_t{1} << 20); }
  using Rows = std::vector<std::pair<std::string, std::string>>;
  // The whole range, page by page through ScanPrefixFrom (each page begins after the last).
  Rows Pages(Txn& t, const std::string& prefix, const std::string& from, size_t page) {
    Rows out;
    std::string at = from;
    for (;;) {
      Rows got;
      Status s = t.ScanPrefixFrom(prefix, at, page, [&](std::string_view k, std::string_view v) {
        got.emplace_back(k, v);
        return true;
      });
      EXPECT_TRUE(s.ok()) << s.ToString();
      out.insert(out.end(), got.begin(), got.end());
      if (got.size() < page || !s.ok()) return out;
      at = got.back().first + '\0';
    }
  }
  Rows Plain(Txn& t, const std::string& prefix, const std::string& from) {
    Rows out;
    Status s = t.Scan(KeyRange::PrefixFrom(prefix, from), 0, [&](std::string_view k, std::string_view v) {
      out.emplace_back(k, v);
      return true;
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }
  Status Put(const std::string& k, const std::string& v) {
    return RunTxn(*store_, [&](Txn& t) { return t.Put(k, v); });
  }
  testing::TempDir dir_;
  std::unique_ptr<RocksKvStore> store_;
};

TEST_F(ListingCacheTest, PagesBuildTheListingAndACommitDropsIt) {
  for (int i = 0; i < 100; i++) ASSERT_TRUE(Put("D1/" + std::to_string(1000 + i), "v" + std::to_string(i)).ok());
  ASSERT_TRUE(Put("D2/x", "other").ok());
  ASSERT_TRUE(Put("D0/x", "other").ok());
  auto t = store_->Begin();
  ASSERT_TRUE(t.ok());
  Rows first = Pages(**t, "D1/", "D1/", 7);
  EXPECT_EQ(first, Plain(**t, "D1/", "D1/"));
  EXPECT_EQ(first.size(), 100u);
  RangeCache::Stats st = store_->stats().listing_cache;
  EXPECT_GE(st.extensions, 100u / 8);
  EXPECT_EQ(st.listings, 1u);
  // The second listing comes from memory: no extension, every page a hit.
  Rows second = Pages(**t, "D1/", "D1/", 7);
  EXPECT_EQ(second, first);
  RangeCache::Stats st2 = store_->stats().listing_cache;
  EXPECT_EQ(st2.extensions, st.extensions);
  EXPECT_GE(st2.hits, st.hits + 100 / 7);
  // A listing whose first page starts past the bare prefix (READDIR's first cookie) builds
  // the listing too, when no row lies before it.
  t->reset();  // before the store it belongs to closes
  Open(size_t{1} << 20);
  t = store_->Begin();
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(Pages(**t, "D1/", "D1/0", 9), first);
  EXPECT_GT(store_->stats().listing_cache.extensions, 0u);
  const uint64_t hits = store_->stats().listing_cache.hits;
  EXPECT_EQ(Pages(**t, "D1/", "D1/0", 9), first);
  EXPECT_GE(store_->stats().listing_cache.hits, hits + 100 / 9);
  // One that starts past rows it skips is served, and not cached.
  t->reset();
  Open(size_t{1} << 20);
  t = store_->Begin();
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(Pages(**t, "D1/", "D1/1090", 4), Plain(**t, "D1/", "D1/1090"));
  EXPECT_EQ(store_->stats().listing_cache.extensions, 0u);
  // From the middle, and with a limit that stops inside a chunk.
  EXPECT_EQ(Pages(**t, "D1/", "D1/1050", 3), Plain(**t, "D1/", "D1/1050"));
  (*t)->Rollback();
  // A commit to the directory drops its listing; the next one shows the change.
  ASSERT_TRUE(Put("D1/1050", "changed").ok());
  EXPECT_EQ(store_->stats().listing_cache.invalidations, 1u);
  auto t2 = store_->Begin();
  ASSERT_TRUE(t2.ok());
  Rows third = Pages(**t2, "D1/", "D1/", 7);
  EXPECT_EQ(third, Plain(**t2, "D1/", "D1/"));
  EXPECT_EQ(third[50].second, "changed");
  // A transaction's own writes in the range: merged as Scan merges them.
  ASSERT_TRUE((*t2)->Put("D1/1000x", "mine").ok());
  ASSERT_TRUE((*t2)->Delete("D1/1001").ok());
  Rows own = Pages(**t2, "D1/", "D1/", 7);
  EXPECT_EQ(own, Plain(**t2, "D1/", "D1/"));
  EXPECT_EQ(own[1].first, "D1/1000x");
}

// Random puts, deletes, rolled-back writes and listings from random places with random page
// sizes, over a few prefixes: every listing equals the plain scan, with the cache large and
// with one so small that listings are evicted and stop growing.
TEST_F(ListingCacheTest, RandomChangesAndListingsMatchThePlainScan) {
  for (size_t bytes : {size_t{1} << 20, size_t{2048}}) {
    SCOPED_TRACE(bytes);
    Open(bytes);
    std::mt19937_64 rng(11);
    const std::vector<std::string> prefixes = {"L/a/", "L/b/", "L/c/"};
    for (int step = 0; step < 1500; step++) {
      const std::string& p = prefixes[rng() % prefixes.size()];
      const std::string k = p + std::to_string(rng() % 200);
      switch (rng() % 5) {
        case 0:
        case 1:
          ASSERT_TRUE(Put(k, std::to_string(step)).ok());
          break;
        case 2:
          ASSERT_TRUE(RunTxn(*store_, [&](Txn& t) { return t.Delete(k); }).ok());
          break;
        case 3: {  // written, then rolled back: nothing changes
          auto t = store_->Begin();
          ASSERT_TRUE(t.ok());
          ASSERT_TRUE((*t)->Put(k, "never").ok());
          (*t)->Rollback();
          break;
        }
        default: {
          auto t = store_->Begin();
          ASSERT_TRUE(t.ok());
          const std::string from = rng() % 2 ? p : p + std::to_string(rng() % 200);
          const size_t page = 1 + rng() % 40;
          ASSERT_EQ(Pages(**t, p, from, page), Plain(**t, p, from)) << p << " from " << from;
        }
      }
    }
    RangeCache::Stats st = store_->stats().listing_cache;
    EXPECT_GT(st.hits, 0u);
    EXPECT_GT(st.invalidations, 0u);
    EXPECT_LE(st.bytes, bytes);
  }
}

}  // namespace
}  // namespace loom::meta
