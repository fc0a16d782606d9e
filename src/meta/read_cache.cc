#include "meta/read_cache.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <new>

namespace loom::meta {

struct ReadCache::Entry {
  uint32_t klen;
  uint32_t vlen;

  static Entry* Make(std::string_view k, std::string_view v) {
    auto* e = static_cast<Entry*>(::operator new(sizeof(Entry) + k.size() + v.size()));
    e->klen = static_cast<uint32_t>(k.size());
    e->vlen = static_cast<uint32_t>(v.size());
    char* p = reinterpret_cast<char*>(e + 1);
    if (!k.empty()) std::memcpy(p, k.data(), k.size());
    if (!v.empty()) std::memcpy(p + k.size(), v.data(), v.size());
    return e;
  }
  static void Free(Entry* e) { ::operator delete(e); }
  std::string_view key() const { return {reinterpret_cast<const char*>(this + 1), klen}; }
  std::string_view value() const {
    return {reinterpret_cast<const char*>(this + 1) + klen, vlen};
  }
};

namespace {
constexpr size_t kFirstSlots = 64;

// Entries span a header and usually one or two more lines (a key of ~20 bytes, an inode
// record of ~100).
void PrefetchEntry(const void* p) {
  __builtin_prefetch(p);
  __builtin_prefetch(static_cast<const char*>(p) + 64);
}
}  // namespace

ReadCache::~ReadCache() {
  for (Shard& s : shards_) {
    if (!s.slots) continue;
    for (size_t i = 0; i <= s.mask; i++) {
      if (s.slots[i].entry) Entry::Free(s.slots[i].entry);
    }
    delete[] s.slots;
  }
}

uint64_t ReadCache::HashOf(std::string_view key) { return std::hash<std::string_view>()(key); }

ReadCache::Slot* ReadCache::Find(Shard& s, uint64_t h, std::string_view key) {
  if (!s.slots) return nullptr;
  for (size_t i = Home(s, h);; i = (i + 1) & s.mask) {
    Slot& sl = s.slots[i];
    if (!sl.entry) return nullptr;
    if (sl.hash == h && sl.entry->key() == key) return &sl;
  }
}

void ReadCache::EraseAt(Shard& s, size_t i) {
  Entry::Free(s.slots[i].entry);
  s.slots[i] = Slot();
  --s.count;
  // Backward shift: move later members of the probe run into the gap when their home is not
  // between the gap and where they sit, so that every lookup still finds its key before an
  // empty slot.
  for (size_t j = (i + 1) & s.mask; s.slots[j].entry; j = (j + 1) & s.mask) {
    const size_t home = Home(s, s.slots[j].hash);
    // Distance from home to j, and from the gap to j, along the probe direction.
    if (((j - home) & s.mask) >= ((j - i) & s.mask)) {
      s.slots[i] = s.slots[j];
      s.slots[j] = Slot();
      i = j;
    }
  }
}

void ReadCache::Grow(Shard& s) {
  const size_t n = s.slots ? (s.mask + 1) * 2 : kFirstSlots;
  Slot* old = s.slots;
  const size_t old_n = old ? s.mask + 1 : 0;
  s.slots = new Slot[n];
  s.mask = n - 1;
  for (size_t i = 0; i < old_n; i++) {
    if (!old[i].entry) continue;
    size_t j = Home(s, old[i].hash);
    while (s.slots[j].entry) j = (j + 1) & s.mask;
    s.slots[j] = old[i];
  }
  delete[] old;
}

std::optional<std::string> ReadCache::Get(std::string_view key, uint64_t* epoch) {
  const uint64_t h = HashOf(key);
  Shard& s = ShardOf(h);
  {
    std::lock_guard<std::mutex> l(s.mu);
    if (Slot* sl = Find(s, h, key)) {
      hits_.fetch_add(1, std::memory_order_relaxed);
      return std::string(sl->entry->value());
    }
    if (epoch) *epoch = s.epoch;
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  return std::nullopt;
}

void ReadCache::GetMany(const std::string_view* keys, size_t n, std::optional<std::string>* out,
                        uint64_t* epochs) {
  uint64_t h[kBatch];
  Slot* cand[kBatch];
  for (size_t base = 0; base < n; base += kBatch) {
    const size_t m = std::min(kBatch, n - base);
    const std::string_view* k = keys + base;
    uint32_t touched = 0;
    static_assert(kShards <= 32, "one bit per shard");
    for (size_t i = 0; i < m; i++) {
      h[i] = HashOf(k[i]);
      touched |= uint32_t{1} << (h[i] % kShards);
    }
    // Every shard this batch touches, in index order: Fill and Invalidate take one shard at
    // a time, so no order of theirs can close a cycle with this one.
    for (size_t s = 0; s < kShards; s++) {
      if (touched & (uint32_t{1} << s)) shards_[s].mu.lock();
    }
    // Stage 1: the home slots.
    for (size_t i = 0; i < m; i++) {
      const Shard& s = ShardOf(h[i]);
      if (s.slots) __builtin_prefetch(&s.slots[Home(s, h[i])]);
    }
    // Stage 2: the first slot of each probe run whose hash matches; its entry prefetched.
    for (size_t i = 0; i < m; i++) {
      Shard& s = ShardOf(h[i]);
      cand[i] = nullptr;
      if (!s.slots) continue;
      for (size_t j = Home(s, h[i]); s.slots[j].entry; j = (j + 1) & s.mask) {
        if (s.slots[j].hash == h[i]) {
          cand[i] = &s.slots[j];
          PrefetchEntry(cand[i]->entry);
          break;
        }
      }
    }
    // Stage 3: compare keys (a full probe only after a 64-bit hash collision) and copy.
    uint64_t hits = 0;
    for (size_t i = 0; i < m; i++) {
      Shard& s = ShardOf(h[i]);
      Slot* sl = cand[i] && cand[i]->entry->key() == k[i] ? cand[i]
                 : cand[i]                                ? Find(s, h[i], k[i])
                                                          : nullptr;
      if (sl) {
        out[base + i].emplace(sl->entry->value());
        ++hits;
      } else {
        out[base + i].reset();
        epochs[base + i] = s.epoch;
      }
    }
    for (size_t s = 0; s < kShards; s++) {
      if (touched & (uint32_t{1} << s)) shards_[s].mu.unlock();
    }
    hits_.fetch_add(hits, std::memory_order_relaxed);
    misses_.fetch_add(m - hits, std::memory_order_relaxed);
  }
}

void ReadCache::Fill(std::string_view key, std::string_view value, uint64_t epoch) {
  const size_t cost = Cost(key, value);
  if (cost > shard_budget_) return;
  const uint64_t h = HashOf(key);
  Shard& s = ShardOf(h);
  std::lock_guard<std::mutex> l(s.mu);
  if (s.epoch != epoch) {
    // A commit to this shard came between the caller's database read and now: what it read
    // may be older than that commit.
    stale_fills_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (Find(s, h, key)) {
    // Another reader filled it first (with the same committed value: no commit came between).
    return;
  }
  InsertLocked(s, h, key, value);
  fills_.fetch_add(1, std::memory_order_relaxed);
}

void ReadCache::Written(std::string_view key, const std::string* value) {
  const uint64_t h = HashOf(key);
  Shard& s = ShardOf(h);
  std::lock_guard<std::mutex> l(s.mu);
  ++s.epoch;  // a reader that missed before this commit must not fill what it read
  if (Slot* sl = Find(s, h, key)) {
    s.bytes -= Cost(sl->entry->key(), sl->entry->value());
    EraseAt(s, static_cast<size_t>(sl - s.slots));
  }
  if (value && Cost(key, *value) <= shard_budget_) InsertLocked(s, h, key, *value);
}

void ReadCache::InsertLocked(Shard& s, uint64_t h, std::string_view key, std::string_view value) {
  const size_t cost = Cost(key, value);
  while (s.bytes + cost > shard_budget_ && s.count > 0) {
    // Any entry will do: the next occupied slot from where the last eviction stopped.
    size_t i = s.evict_at & s.mask;
    while (!s.slots[i].entry) i = (i + 1) & s.mask;
    s.bytes -= Cost(s.slots[i].entry->key(), s.slots[i].entry->value());
    EraseAt(s, i);
    s.evict_at = i + 1;
    evictions_.fetch_add(1, std::memory_order_relaxed);
  }
  // Load factor at most 0.7: probe runs stay short.
  if (!s.slots || (s.count + 1) * 10 > (s.mask + 1) * 7) Grow(s);
  size_t i = Home(s, h);
  while (s.slots[i].entry) i = (i + 1) & s.mask;
  s.slots[i].hash = h;
  s.slots[i].entry = Entry::Make(key, value);
  ++s.count;
  s.bytes += cost;
}

void ReadCache::Invalidate(std::string_view key) {
  const uint64_t h = HashOf(key);
  Shard& s = ShardOf(h);
  std::lock_guard<std::mutex> l(s.mu);
  ++s.epoch;
  Slot* sl = Find(s, h, key);
  if (!sl) return;
  s.bytes -= Cost(sl->entry->key(), sl->entry->value());
  EraseAt(s, static_cast<size_t>(sl - s.slots));
}

ReadCache::Stats ReadCache::stats() const {
  Stats st;
  st.hits = hits_.load(std::memory_order_relaxed);
  st.misses = misses_.load(std::memory_order_relaxed);
  st.fills = fills_.load(std::memory_order_relaxed);
  st.stale_fills = stale_fills_.load(std::memory_order_relaxed);
  st.evictions = evictions_.load(std::memory_order_relaxed);
  for (const Shard& s : shards_) {
    std::lock_guard<std::mutex> l(s.mu);
    st.entries += s.count;
    st.bytes += s.bytes;
  }
  return st;
}

}  // namespace loom::meta
