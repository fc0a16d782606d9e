#include "rpc/record.h"

#include <algorithm>
#include <cstring>

namespace loom::rpc {

namespace {
constexpr uint32_t kLastFragment = 0x80000000u;
}

bool RecordAssembler::StartFragment(uint32_t mark, std::vector<Record>* out) {
  size_t len = mark & ~kLastFragment;
  last_ = (mark & kLastFragment) != 0;
  if (len > max_record_ || have_ + len > max_record_) return false;
  in_fragment_ = true;
  frag_left_ = len;
  if (len > 0) {
    // Grow the record buffer to hold this fragment (fragmented records are rare: one copy).
    auto grown = Buffer::Allocate(have_ + len);
    if (record_ && have_) std::memcpy(grown->data(), record_->data(), have_);
    record_ = std::move(grown);
  }
  if (len == 0) FinishFragment(out);
  return true;
}

void RecordAssembler::FinishFragment(std::vector<Record>* out) {
  in_fragment_ = false;
  if (!last_) return;
  if (have_ > 0) out->push_back(Record{std::move(record_), have_});
  record_.reset();
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
    std::memcpy(record_->data() + have_, p + i, take);
    i += take;
    have_ += take;
    frag_left_ -= take;
    if (frag_left_ == 0) FinishFragment(out);
  }
  return true;
}

size_t RecordAssembler::DirectTarget(uint8_t** dst) const {
  if (!in_fragment_ || frag_left_ == 0) return 0;
  *dst = record_->data() + have_;
  return frag_left_;
}

void RecordAssembler::DirectDone(size_t n, std::vector<Record>* out) {
  have_ += n;
  frag_left_ -= n;
  if (frag_left_ == 0) FinishFragment(out);
}

}  // namespace loom::rpc
