// The metadata server's cache of stored layouts by inode (Mds::LayoutOf): every READ, WRITE,
// LAYOUTGET and truncate through the MDS asks for a file's layout, and the store is the truth.
//
// 16 shards by inode, each with its own mutex, so lookups of different files do not share a
// lock (issue 13: no global mutex on the per-request path). Bounded: a full shard evicts one
// entry to make room, never the whole cache. Not stale, by construction (as meta/read_cache.h):
// a reader that missed notes its shard's epoch before it reads the store, and its Fill is
// dropped if a Put or Forget of that shard came meanwhile; so a layout read just before a
// change committed cannot overwrite the changed one.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "meta/records.h"

namespace loom::nfs4 {

class LayoutCache {
 public:
  explicit LayoutCache(size_t capacity = 100000)
      : per_shard_(capacity / kShards > 0 ? capacity / kShards : 1) {}

  // The cached layout; on a miss, `*epoch` gets what Fill needs.
  std::optional<meta::Layout> Get(uint64_t ino, uint64_t* epoch) const {
    const Shard& s = ShardOf(ino);
    std::lock_guard<std::mutex> l(s.mu);
    auto it = s.map.find(ino);
    if (it != s.map.end()) return it->second;
    *epoch = s.epoch;
    return std::nullopt;
  }
  // A layout just read from the store, after a Get that missed with `epoch`.
  void Fill(uint64_t ino, const meta::Layout& layout, uint64_t epoch) {
    Shard& s = ShardOf(ino);
    std::lock_guard<std::mutex> l(s.mu);
    if (s.epoch != epoch) return;  // changed meanwhile: the next reader reads it again
    InsertLocked(s, ino, layout);
  }
  // A layout just committed to the store.
  void Put(uint64_t ino, const meta::Layout& layout) {
    Shard& s = ShardOf(ino);
    std::lock_guard<std::mutex> l(s.mu);
    ++s.epoch;
    InsertLocked(s, ino, layout);
  }
  // The stored layout is gone or changed without a new one at hand.
  void Forget(uint64_t ino) {
    Shard& s = ShardOf(ino);
    std::lock_guard<std::mutex> l(s.mu);
    ++s.epoch;
    s.map.erase(ino);
  }
  size_t size() const {
    size_t n = 0;
    for (const Shard& s : shards_) {
      std::lock_guard<std::mutex> l(s.mu);
      n += s.map.size();
    }
    return n;
  }
  static constexpr size_t kShards = 16;

 private:
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<uint64_t, meta::Layout> map;
    uint64_t epoch = 0;
  };
  Shard& ShardOf(uint64_t ino) { return shards_[Mix(ino) % kShards]; }
  const Shard& ShardOf(uint64_t ino) const { return shards_[Mix(ino) % kShards]; }
  static uint64_t Mix(uint64_t ino) { return (ino * 0x9E3779B97F4A7C15ull) >> 32; }
  void InsertLocked(Shard& s, uint64_t ino, const meta::Layout& layout) {
    auto it = s.map.find(ino);
    if (it != s.map.end()) {
      it->second = layout;
      return;
    }
    if (s.map.size() >= per_shard_) s.map.erase(s.map.begin());  // one entry, not all
    s.map.emplace(ino, layout);
  }

  const size_t per_shard_;
  std::array<Shard, kShards> shards_;
};

}  // namespace loom::nfs4
