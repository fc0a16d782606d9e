#include "rpc/record.h"

#include <algorithm>
#include <cstring>

namespace loom::rpc {

namespace {
constexpr uint32_t kLastFragment = 0x80000000u;
constexpr size_t kMinAlloc = 4096;
}  // namespace

bool ByteBudget::Take(size_t n) {
  size_t cur = used_.load(std::memory_order_relaxed);
  do {
    if (n > limit_ || cur > limit_ - n) return false;
  } while (!used_.compare_exchange_weak(cur, cur + n, std::memory_order_relaxed));
  return true;
}

RecordAssembler::~RecordAssembler() { Release(); }

void RecordAssembler::Release() {
  if (budget_ && cap_) budget_->Give(cap_);
  cap_ = 0;
  record_.reset();
}

bool RecordAssembler::Reserve(size_t need) {
  if (need <= cap_) return true;
  // Twice what is needed, but never more than the record can still grow to: the bytes that
  // came plus the rest of the fragment that is being received.
  size_t limit = have_ + frag_left_;
  size_t want = std::min(std::max(need * 2, kMinAlloc), limit);
  want = std::max(want, need);
  if (budget_ && !budget_->Take(want - cap_)) {
    over_budget_ = true;
    return false;
  }
  auto grown = Buffer::Allocate(want);
  if (have_) std::memcpy(grown->data(), record_->data(), have_);
  record_ = std::move(grown);
  cap_ = want;
  return true;
}

bool RecordAssembler::StartFragment(uint32_t mark, std::vector<Record>* out) {
  size_t len = mark & ~kLastFragment;
  last_ = (mark & kLastFragment) != 0;
  if (len > max_record_ || have_ + len > max_record_) return false;
  in_fragment_ = true;
  frag_left_ = len;
  if (len == 0) FinishFragment(out);
  return true;
}

void RecordAssembler::FinishFragment(std::vector<Record>* out) {
  in_fragment_ = false;
  if (!last_) return;
  // The finished record is handed out: from now on it is a call in progress, bounded by the
  // connection's in-flight limit, not a partial record.
  if (have_ > 0) out->push_back(Record{record_, have_});
  Release();
  have_ = 0;  // an empty record carries no xid: nothing to answer, dropped
}

bool RecordAssembler::Feed(const uint8_t* p, size_t n, std::vector<Record>* out) {
  size_t i = 0;
  while (i < n) {
    if (!in_fragment_) {
      while (mark_have_ < 4 && i < n) mark_[mark_have_++] = p[i++];
      if (mark_have_ < 4) return true;
      mark_have_ = 0;
      uint32_t mark = (uint32_t{mark_[0]} << 24) | (uint32_t{mark_[1]} << 16) |
                      (uint32_t{mark_[2]} << 8) | mark_[3];
      if (!StartFragment(mark, out)) return false;
      continue;
    }
    size_t take = std::min(frag_left_, n - i);
    if (!Reserve(have_ + take)) return false;
    std::memcpy(record_->data() + have_, p + i, take);
    i += take;
    have_ += take;
    frag_left_ -= take;
    if (frag_left_ == 0) FinishFragment(out);
  }
  return true;
}

size_t RecordAssembler::DirectTarget(uint8_t** dst) const {
  if (!in_fragment_ || frag_left_ == 0 || cap_ <= have_) return 0;
  *dst = record_->data() + have_;
  return std::min(frag_left_, cap_ - have_);
}

void RecordAssembler::DirectDone(size_t n, std::vector<Record>* out) {
  have_ += n;
  frag_left_ -= n;
  if (frag_left_ == 0) FinishFragment(out);
}

}  // namespace loom::rpc
