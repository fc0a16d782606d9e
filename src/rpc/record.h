// Record marking for ONC RPC over TCP (RFC 5531 §11): a record is a sequence of fragments, each
// preceded by a 4-byte mark whose top bit flags the last fragment and whose low 31 bits give
// the fragment length. RecordAssembler turns a byte stream back into records, each in one
// contiguous buffer, and refuses records larger than its bound before allocating them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/buffer.h"

namespace loom::rpc {

struct Record {
  std::shared_ptr<Buffer> buf;  // owns the bytes; data()[0..size)
  size_t size = 0;
};

class RecordAssembler {
 public:
  explicit RecordAssembler(size_t max_record) : max_record_(max_record) {}

  // Consumes n bytes of the stream; appends completed non-empty records to *out. Returns false
  // when the stream violates the bound (the connection must then be closed).
  [[nodiscard]] bool Feed(const uint8_t* p, size_t n, std::vector<Record>* out);

  // When inside a fragment body: where its remaining bytes go and how many there are, so a
  // large body can be read from the socket straight into the record buffer.
  size_t DirectTarget(uint8_t** dst) const;
  // n bytes were written at the DirectTarget.
  void DirectDone(size_t n, std::vector<Record>* out);

 private:
  [[nodiscard]] bool StartFragment(uint32_t mark, std::vector<Record>* out);
  void FinishFragment(std::vector<Record>* out);

  const size_t max_record_;
  uint8_t mark_[4];
  int mark_have_ = 0;
  bool in_fragment_ = false;
  bool last_ = false;
  size_t frag_left_ = 0;
  std::shared_ptr<Buffer> record_;
  size_t have_ = 0;
};

}  // namespace loom::rpc
