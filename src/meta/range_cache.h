// RangeCache: the rows of whole key ranges kept in memory, for scans that page through one
// range in order: a directory's listing (READDIR's R|fs|dir keys), where every page was a
// RocksDB iterator over memtables and tables (half of READDIR's CPU at 10^6 entries). The
// cache of point reads (read_cache.h) is its sibling and follows the same two rules:
//  - A commit, after its write is in the database and before it releases its row locks,
//    drops the listing of every cached range holding a key it wrote (Invalidate).
//  - A scan that extends a listing (rows read from the database past what is cached) first
//    notes the listing's generation; the extension is installed only if that listing is still
//    there, unchanged (Extend). So rows read before a commit are never installed after that
//    commit's invalidation.
// A listing is built as scans go: the first READDIR of a directory caches its page, the next
// one (which starts where that ended) appends its own, so `ls` of a huge directory costs no
// up-front read. A listing holds the range's rows from its start up to `covered` (exclusive),
// or all of them (`complete`). Snapshots are immutable and shared: a scan walks one without a
// lock, as a RocksDB iterator reads at the sequence number it was made at.
//
// Only prefix ranges are cached ([p, PrefixEnd(p))); a commit drops the listing of every
// cached prefix of each key it wrote, nested prefixes included. Memory is
// bounded by `capacity_bytes`; a listing that would pass it stops growing, and older listings
// are dropped to make room (first cached, first dropped).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace loom::meta {

class RangeCache {
 public:
  // Rows in key order, packed: per row [key length u32][value length u32][key][value].
  class Chunk {
   public:
    void Add(std::string_view k, std::string_view v);
    size_t rows() const { return starts_.size(); }
    size_t bytes() const { return data_.size() + starts_.size() * sizeof(uint32_t); }
    std::string_view key(size_t i) const;
    std::string_view value(size_t i) const;
    // The first row whose key is >= k (rows() if none).
    size_t LowerBound(std::string_view k) const;

   private:
    std::string data_;
    std::vector<uint32_t> starts_;
  };
  struct Listing {
    uint64_t gen = 0;
    std::vector<std::shared_ptr<const Chunk>> chunks;
    std::string covered;    // rows below this key are all here
    bool complete = false;  // every row of the range is here
    size_t bytes = 0;
  };

  explicit RangeCache(size_t capacity_bytes) : capacity_(capacity_bytes) {}

  // The listing of the range with this prefix. If none is cached, an empty one is started
  // (covering nothing) for the caller to extend.
  std::shared_ptr<const Listing> Get(std::string_view prefix);
  // Installs `from` plus `rows` (read from the database at from->covered, up to `covered`,
  // or to the range's end when `complete`) if `from` is still the prefix's listing.
  void Extend(std::string_view prefix, const std::shared_ptr<const Listing>& from,
              std::shared_ptr<const Chunk> rows, std::string covered, bool complete);
  // After a commit that wrote key reached the database.
  void Invalidate(std::string_view key);

  struct Stats {
    uint64_t hits = 0;          // scans served from a listing, at least in part
    uint64_t extensions = 0;    // pages appended
    uint64_t stale = 0;         // extensions refused: a commit came between
    uint64_t invalidations = 0; // listings dropped by a commit
    uint64_t evictions = 0;     // listings dropped for room
    size_t listings = 0, bytes = 0;
  };
  Stats stats() const;
  void CountHit() {
    std::lock_guard<std::mutex> l(mu_);
    ++stats_.hits;
  }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  using Map = std::unordered_map<std::string, std::shared_ptr<const Listing>, Hash, std::equal_to<>>;
  // Accounting per listing beyond its rows (the map's node, the listing, its chunk list).
  static constexpr size_t kListingOverhead = 256;
  void DropLocked(Map::iterator it);
  // Drops the oldest listings but `keep` until `need` more bytes fit; false if they cannot.
  bool MakeRoomLocked(size_t need, std::string_view keep);

  const size_t capacity_;
  mutable std::mutex mu_;
  Map listings_;
  std::multiset<size_t> prefix_lens_;  // of the cached prefixes, for Invalidate
  std::deque<std::string> order_;      // cached prefixes, oldest first (may hold stale names)
  uint64_t next_gen_ = 0;
  size_t bytes_ = 0;
  Stats stats_;
};

}  // namespace loom::meta
