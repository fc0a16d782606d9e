#include "meta/lock_table.h"

namespace loom::meta {

Status LockTable::Lock(uint64_t owner, std::string_view key, std::chrono::milliseconds timeout,
                       bool* would_wait) {
  Stripe& s = StripeOf(key);
  std::unique_lock<std::mutex> l(s.mu);
  auto it = s.owner.find(key);
  if (it == s.owner.end()) {
    s.owner.emplace(std::string(key), owner);
    return Status::Ok();
  }
  if (it->second == owner) return Status::Ok();
  if (timeout.count() <= 0) {
    if (would_wait) *would_wait = true;
    return Status(Code::kConflict, "lock held by another transaction");
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  ++s.waiters;
  Status result = Status::Ok();
  for (;;) {
    it = s.owner.find(key);
    if (it == s.owner.end()) {
      s.owner.emplace(std::string(key), owner);
      break;
    }
    if (!AddWait(owner, it->second)) {
      result = Status(Code::kConflict, "deadlock: lock wait would close a cycle");
      break;
    }
    if (s.released.wait_until(l, deadline) == std::cv_status::timeout &&
        s.owner.count(key) != 0) {
      result = Status(Code::kConflict, "lock wait timed out");
      break;
    }
  }
  --s.waiters;
  EndWait(owner);
  return result;
}

void LockTable::Unlock(uint64_t owner, std::string_view key) {
  Stripe& s = StripeOf(key);
  std::lock_guard<std::mutex> l(s.mu);
  auto it = s.owner.find(key);
  if (it == s.owner.end() || it->second != owner) return;
  s.owner.erase(it);
  if (s.waiters > 0) s.released.notify_all();
}

bool LockTable::AddWait(uint64_t waiter, uint64_t holder) {
  if (!detect_deadlocks_) return true;
  std::lock_guard<std::mutex> l(waits_mu_);
  // The chain from holder: whom it waits for, and so on. Each waiter has one edge, so the walk
  // ends at someone running, or at waiter (a cycle); the bound guards against a stale loop
  // that does not pass through waiter.
  uint64_t x = holder;
  for (size_t steps = 0; steps <= waits_for_.size(); ++steps) {
    if (x == waiter) return false;
    auto next = waits_for_.find(x);
    if (next == waits_for_.end()) break;
    x = next->second;
  }
  waits_for_[waiter] = holder;
  return true;
}

void LockTable::EndWait(uint64_t waiter) {
  if (!detect_deadlocks_) return;
  std::lock_guard<std::mutex> l(waits_mu_);
  waits_for_.erase(waiter);
}

size_t LockTable::held() const {
  size_t n = 0;
  for (const Stripe& s : stripes_) {
    std::lock_guard<std::mutex> l(s.mu);
    n += s.owner.size();
  }
  return n;
}

size_t LockTable::waiting() const {
  std::lock_guard<std::mutex> l(waits_mu_);
  return waits_for_.size();
}

}  // namespace loom::meta
