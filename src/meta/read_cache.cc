#include "meta/read_cache.h"

namespace loom::meta {

std::optional<std::string> ReadCache::Get(std::string_view key, uint64_t* epoch) {
  Shard& s = ShardOf(key);
  {
    std::lock_guard<std::mutex> l(s.mu);
    auto it = s.map.find(key);
    if (it != s.map.end()) {
      hits_.fetch_add(1, std::memory_order_relaxed);
      return it->second;
    }
    if (epoch) *epoch = s.epoch;
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  return std::nullopt;
}

void ReadCache::Fill(std::string_view key, std::string_view value, uint64_t epoch) {
  const size_t cost = Cost(key, value);
  if (cost > shard_budget_) return;
  Shard& s = ShardOf(key);
  std::lock_guard<std::mutex> l(s.mu);
  if (s.epoch != epoch) {
    // A commit to this shard came between the caller's database read and now: what it read
    // may be older than that commit.
    stale_fills_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  auto it = s.map.find(key);
  if (it != s.map.end()) {
    // Another reader filled it first (with the same committed value: no commit came between).
    return;
  }
  while (s.bytes + cost > shard_budget_ && !s.map.empty()) {
    auto victim = s.map.begin();
    s.bytes -= Cost(victim->first, victim->second);
    s.map.erase(victim);
    evictions_.fetch_add(1, std::memory_order_relaxed);
  }
  s.map.emplace(std::string(key), std::string(value));
  s.bytes += cost;
  fills_.fetch_add(1, std::memory_order_relaxed);
}

void ReadCache::Invalidate(std::string_view key) {
  Shard& s = ShardOf(key);
  std::lock_guard<std::mutex> l(s.mu);
  ++s.epoch;
  auto it = s.map.find(key);
  if (it == s.map.end()) return;
  s.bytes -= Cost(it->first, it->second);
  s.map.erase(it);
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
    st.entries += s.map.size();
    st.bytes += s.bytes;
  }
  return st;
}

}  // namespace loom::meta
