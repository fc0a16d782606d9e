#include "meta/range_cache.h"

#include <algorithm>
#include <cstring>

namespace loom::meta {

void RangeCache::Chunk::Add(std::string_view k, std::string_view v) {
  starts_.push_back(static_cast<uint32_t>(data_.size()));
  const uint32_t lens[2] = {static_cast<uint32_t>(k.size()), static_cast<uint32_t>(v.size())};
  data_.append(reinterpret_cast<const char*>(lens), sizeof(lens));
  data_.append(k);
  data_.append(v);
}

std::string_view RangeCache::Chunk::key(size_t i) const {
  uint32_t lens[2];
  std::memcpy(lens, data_.data() + starts_[i], sizeof(lens));
  return {data_.data() + starts_[i] + sizeof(lens), lens[0]};
}

std::string_view RangeCache::Chunk::value(size_t i) const {
  uint32_t lens[2];
  std::memcpy(lens, data_.data() + starts_[i], sizeof(lens));
  return {data_.data() + starts_[i] + sizeof(lens) + lens[0], lens[1]};
}

size_t RangeCache::Chunk::LowerBound(std::string_view k) const {
  size_t lo = 0, hi = rows();
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (key(mid) < k) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

std::shared_ptr<const RangeCache::Listing> RangeCache::Get(std::string_view prefix) {
  std::lock_guard<std::mutex> l(mu_);
  if (auto it = listings_.find(prefix); it != listings_.end()) return it->second;
  if (!MakeRoomLocked(kListingOverhead, prefix)) return nullptr;
  auto fresh = std::make_shared<Listing>();
  fresh->gen = ++next_gen_;
  fresh->covered = std::string(prefix);
  fresh->bytes = kListingOverhead;
  listings_.emplace(std::string(prefix), fresh);
  prefix_lens_.insert(prefix.size());
  order_.emplace_back(prefix);
  bytes_ += fresh->bytes;
  // Names of listings dropped since stay in order_ until popped; keep it near the map's size.
  if (order_.size() > 2 * listings_.size() + 64) {
    std::deque<std::string> live;
    for (std::string& p : order_) {
      if (listings_.count(p)) live.push_back(std::move(p));
    }
    order_.swap(live);
  }
  return fresh;
}

void RangeCache::Extend(std::string_view prefix, const std::shared_ptr<const Listing>& from,
                        std::shared_ptr<const Chunk> rows, std::string covered, bool complete) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = listings_.find(prefix);
  if (it == listings_.end() || it->second != from) {
    // A commit dropped it (or another scan extended it) after `from` was read: the rows may
    // be older than that commit.
    ++stats_.stale;
    return;
  }
  const size_t add = rows ? rows->bytes() : 0;
  if (!MakeRoomLocked(add, prefix)) return;  // it stays as it was: scans past it read the database
  auto next = std::make_shared<Listing>(*from);
  if (rows && rows->rows() > 0) next->chunks.push_back(std::move(rows));
  next->covered = std::move(covered);
  next->complete = complete;
  next->bytes += add;
  bytes_ += add;
  it->second = std::move(next);
  ++stats_.extensions;
}

bool RangeCache::MakeRoomLocked(size_t need, std::string_view keep) {
  size_t keep_bytes = 0;
  if (auto k = listings_.find(keep); k != listings_.end()) keep_bytes = k->second->bytes;
  if (keep_bytes + need > capacity_) return false;
  for (size_t tries = order_.size(); bytes_ + need > capacity_ && tries > 0; --tries) {
    std::string victim = std::move(order_.front());
    order_.pop_front();
    if (victim == keep) {
      order_.push_back(std::move(victim));
      continue;
    }
    auto it = listings_.find(victim);
    if (it == listings_.end()) continue;
    DropLocked(it);
    ++stats_.evictions;
  }
  return bytes_ + need <= capacity_;
}

void RangeCache::DropLocked(Map::iterator it) {
  bytes_ -= it->second->bytes;
  prefix_lens_.erase(prefix_lens_.find(it->first.size()));
  listings_.erase(it);
}

void RangeCache::Invalidate(std::string_view key) {
  std::lock_guard<std::mutex> l(mu_);
  for (auto len = prefix_lens_.begin(); len != prefix_lens_.end();) {
    const size_t n = *len;
    len = prefix_lens_.upper_bound(n);  // before DropLocked erases from the set
    if (key.size() < n) continue;
    auto it = listings_.find(key.substr(0, n));
    if (it == listings_.end()) continue;
    DropLocked(it);
    ++stats_.invalidations;
  }
}

RangeCache::Stats RangeCache::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  Stats st = stats_;
  st.listings = listings_.size();
  st.bytes = bytes_;
  return st;
}

}  // namespace loom::meta
