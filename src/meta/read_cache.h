// ReadCache: committed values of point reads (Txn::Get), kept in memory so that a read the
// cache holds costs a hash lookup instead of a RocksDB memtable/SST search. RocksKvStore puts
// it in front of the database: on loom-mds that is every inode and directory entry that
// GETATTR, LOOKUP, ACCESS and READDIR's per-entry attributes read (a READDIR of 128 entries
// was ~2/3 skiplist searches before it).
//
// Correctness rests on two rules, both under the key's shard mutex:
//  - A writer, after its commit is in the database and before it releases its row locks,
//    bumps the shard's epoch and puts each key it wrote in the cache with its new value, or
//    erases it for a delete (Written: write-through, so that the next change to the same
//    directory or file finds it here). A commit that failed erases its keys (Invalidate;
//    harmless).
//  - A reader that missed notes the shard's epoch (Get) before it reads the database, and
//    inserts what it read only if the epoch has not moved since (Fill). So a value read
//    before a commit can never be inserted after that commit's invalidation; and one
//    inserted before it is erased by it.
// A value served from the cache is therefore the latest committed one, or one whose writer is
// still between its database commit and its invalidation, which is the same as having read a
// moment earlier (Get takes no locks and promises no snapshot, kv.h). A GetForUpdate holds the
// key's lock, so no writer of it is between those two steps: the cache is exact for it. A
// transaction's reads of keys it wrote itself come from its own buffered writes.
//
// Only found values are cached (a miss for an absent key is not remembered). Memory is bounded
// by `capacity_bytes` (keys + values + a fixed overhead per entry); a full shard drops entries
// in no particular order (clock-free: cheap, and a dropped entry costs one database read).
//
// Layout: a lookup in a namespace of 10^5+ entries is a few cache misses, and those misses
// were READDIR's largest cost (a std::unordered_map<string, string> took five: bucket, the
// node before, the node, the key's heap bytes, the value's). Here each shard is an
// open-addressing table of {hash, entry} slots (linear probing, deletion by backward shift,
// no tombstones), and an entry is one allocation holding key and value side by side: a hit
// is one miss for the slot and one or two for the entry. GetMany looks up many keys in
// stages (every slot, then every candidate entry), prefetching each stage, so that their
// misses overlap instead of following one another.
//
// Shaped for later: one cache per store, which on a multi-MDS deployment is one per owner of a
// subtree (the store that owns its keys), so nothing here is shared across owners.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace loom::meta {

class ReadCache {
 public:
  static constexpr size_t kShards = 32;
  // Accounting per entry beyond its key and value bytes (entry header, allocator rounding,
  // its share of the slot table).
  static constexpr size_t kEntryOverhead = 48;
  // GetMany holds the shard locks of at most this many keys at a time.
  static constexpr size_t kBatch = 64;

  explicit ReadCache(size_t capacity_bytes) : shard_budget_(capacity_bytes / kShards) {}
  ~ReadCache();
  ReadCache(const ReadCache&) = delete;
  ReadCache& operator=(const ReadCache&) = delete;

  // The cached value of key, if any. On a miss, `*epoch` (when given) is the shard's epoch,
  // read under the same lock, to pass to Fill after reading the database.
  std::optional<std::string> Get(std::string_view key, uint64_t* epoch = nullptr);
  // Get of n keys at once: out[i] is key i's value or nullopt, and on a miss epochs[i] its
  // shard's epoch for Fill. The same answers as n Gets, with the memory misses overlapped.
  void GetMany(const std::string_view* keys, size_t n, std::optional<std::string>* out,
               uint64_t* epochs);
  // After that read: remember value, unless a writer invalidated the shard meanwhile.
  void Fill(std::string_view key, std::string_view value, uint64_t epoch);
  // After a commit that wrote key (put or delete) reached the database.
  void Invalidate(std::string_view key);
  // The same, for a commit whose writer still holds key's row lock: the cache takes the
  // committed value (nullptr: a delete, the entry goes). Write-through is exact only because
  // no other writer of key can reach the database between this commit's write and this call
  // (every Put and Delete locks its key), so the value given is the database's.
  void Written(std::string_view key, const std::string* value);

  struct Stats {
    uint64_t hits = 0, misses = 0, fills = 0, stale_fills = 0, evictions = 0;
    size_t entries = 0, bytes = 0;
  };
  Stats stats() const;

 private:
  struct Entry;  // one allocation: this header, then the key's bytes, then the value's
  struct Slot {
    uint64_t hash = 0;
    Entry* entry = nullptr;  // nullptr: empty
  };
  struct Shard {
    mutable std::mutex mu;
    Slot* slots = nullptr;  // mask + 1 of them, a power of two; null until the first fill
    size_t mask = 0;
    size_t count = 0;
    size_t evict_at = 0;  // where the next eviction starts looking
    uint64_t epoch = 0;
    size_t bytes = 0;
  };

  static uint64_t HashOf(std::string_view key);
  Shard& ShardOf(uint64_t h) { return shards_[h % kShards]; }
  // A slot's home position: bits above the ones that picked the shard.
  static size_t Home(const Shard& s, uint64_t h) { return (h / kShards) & s.mask; }
  // The slot holding key, or nullptr (caller holds s.mu).
  static Slot* Find(Shard& s, uint64_t h, std::string_view key);
  static void EraseAt(Shard& s, size_t i);  // frees the entry, closes the gap
  static void Grow(Shard& s);
  // Puts key (absent from s) in, dropping others for room (caller holds s.mu).
  void InsertLocked(Shard& s, uint64_t h, std::string_view key, std::string_view value);
  static size_t Cost(std::string_view k, std::string_view v) {
    return k.size() + v.size() + kEntryOverhead;
  }

  const size_t shard_budget_;
  std::array<Shard, kShards> shards_;
  std::atomic<uint64_t> hits_{0}, misses_{0}, fills_{0}, stale_fills_{0}, evictions_{0};
};

}  // namespace loom::meta
