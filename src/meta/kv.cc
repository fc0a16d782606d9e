#include "meta/kv.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

namespace loom::meta {

std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last != 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return end;
}

KeyRange KeyRange::Prefix(std::string_view prefix) {
  return KeyRange{std::string(prefix), PrefixEnd(prefix)};
}

KeyRange KeyRange::PrefixFrom(std::string_view prefix, std::string_view from) {
  return KeyRange{std::string(from), PrefixEnd(prefix)};
}

void Txn::GetMany(const std::vector<std::string>& keys, std::vector<Result<MaybeValue>>* out) {
  out->clear();
  out->reserve(keys.size());
  for (const std::string& k : keys) out->push_back(Get(k));
}

Status WouldBlock(std::string_view what) { return Status(Code::kWouldBlock, what); }

namespace internal {

Status RunTxnLoop(KvStore& store, const std::function<Status(Txn&)>& fn, int max_retries) {
  // Jitter keeps two transactions that deadlocked (both timed out) from colliding again in
  // lockstep.
  thread_local std::minstd_rand rng(std::random_device{}());
  Status last;
  for (int attempt = 0; attempt <= max_retries; ++attempt) {
    if (attempt > 0) {
      int cap_us = std::min(100 << std::min(attempt, 7), 10000);
      std::uniform_int_distribution<int> d(cap_us / 2, cap_us);
      std::this_thread::sleep_for(std::chrono::microseconds(d(rng)));
    }
    auto begun = store.Begin();
    if (!begun.ok()) return begun.status();
    Txn& txn = **begun;
    last = fn(txn);
    if (last.ok()) last = txn.Commit();
    if (last.ok()) return last;
    txn.Rollback();
    if (last.code() != Code::kConflict) return last;
  }
  return last;
}

}  // namespace internal
}  // namespace loom::meta
