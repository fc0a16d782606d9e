#include "rpc/reply_cache.h"

#include <cstring>

#include "common/siphash.h"

namespace loom::rpc {

std::string ReplyCache::MakeKey(const std::string& peer, uint32_t xid, uint32_t prog,
                                uint32_t vers, uint32_t proc, uint32_t cred_flavor,
                                std::string_view cred_body, const uint8_t* args, size_t len) {
  static const SipKey kKey = {'l', 'o', 'o', 'm', '-', 'd', 'r', 'c', 0, 1, 2, 3, 4, 5, 6, 7};
  uint64_t h = SipHash24(kKey, args, len);
  std::string k = peer;
  k.push_back('\0');  // the peer string never contains NUL: ends it unambiguously
  uint32_t words[6] = {xid, prog, vers, proc, cred_flavor,
                       static_cast<uint32_t>(cred_body.size())};
  k.append(reinterpret_cast<const char*>(words), sizeof words);
  k.append(cred_body);
  k.append(reinterpret_cast<const char*>(&h), sizeof h);
  uint64_t l = len;
  k.append(reinterpret_cast<const char*>(&l), sizeof l);
  return k;
}

ReplyCache::State ReplyCache::Begin(const std::string& key, std::string* reply) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = map_.find(key);
  if (it != map_.end()) {
    hits_++;
    if (!it->second.done) return State::kInProgress;
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    *reply = it->second.reply;
    return State::kDone;
  }
  lru_.push_front(key);
  Entry e;
  e.lru = lru_.begin();
  map_.emplace(key, std::move(e));
  EvictLocked();
  return State::kNew;
}

void ReplyCache::Finish(const std::string& key, std::string reply) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) return;  // evicted while in progress
  it->second.done = true;
  it->second.reply = std::move(reply);
}

void ReplyCache::Abandon(const std::string& key) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) return;
  lru_.erase(it->second.lru);
  map_.erase(it);
}

size_t ReplyCache::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return map_.size();
}

void ReplyCache::EvictLocked() {
  // Evict the oldest finished entries; in-progress ones are skipped (they finish soon).
  auto it = lru_.end();
  while (map_.size() > capacity_ && it != lru_.begin()) {
    --it;
    auto m = map_.find(*it);
    if (m->second.done) {
      map_.erase(m);
      it = lru_.erase(it);
    }
  }
}

}  // namespace loom::rpc
