// Record marking for ONC RPC over TCP (RFC 5531 §11): a record is a sequence of fragments, each
// preceded by a 4-byte mark whose top bit flags the last fragment and whose low 31 bits give
// the fragment length. RecordAssembler turns a byte stream back into records, each in one
// contiguous buffer, and refuses records larger than its bound before allocating them.
//
// The announced length is only a claim: the buffer grows with the bytes that actually arrive
// (doubling, never past the announced record), so a bare 4-byte mark costs nothing. A
// ByteBudget shared by the connections of a server bounds the bytes they hold for partial
// records together.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/buffer.h"

namespace loom::rpc {

struct Record {
  std::shared_ptr<Buffer> buf;  // owns the bytes; data()[0..size)
  size_t size = 0;

  // RFC 5531 §9: the word after the xid says CALL (0) or REPLY (1); false for anything else
  // or a record too short to say.
  bool IsCall() const { return MessageTypeIs(0); }
  bool IsReply() const { return MessageTypeIs(1); }

 private:
  bool MessageTypeIs(uint8_t t) const {
    if (size < 8) return false;
    const uint8_t* m = buf->data() + 4;
    return m[0] == 0 && m[1] == 0 && m[2] == 0 && m[3] == t;
  }
};

// A byte allowance shared between threads. Thread-safe.
class ByteBudget {
 public:
  explicit ByteBudget(size_t limit) : limit_(limit) {}
  // Takes n bytes; false (and nothing taken) when that would exceed the limit.
  [[nodiscard]] bool Take(size_t n);
  void Give(size_t n) { used_.fetch_sub(n, std::memory_order_relaxed); }
  size_t used() const { return used_.load(std::memory_order_relaxed); }
  size_t limit() const { return limit_; }

 private:
  const size_t limit_;
  std::atomic<size_t> used_{0};
};

class RecordAssembler {
 public:
  // `budget` (optional) is charged for the buffer of the record being assembled; when the
  // record completes and is handed out, its bytes are given back.
  explicit RecordAssembler(size_t max_record, std::shared_ptr<ByteBudget> budget = nullptr)
      : max_record_(max_record), budget_(std::move(budget)) {}
  ~RecordAssembler();
  RecordAssembler(const RecordAssembler&) = delete;
  RecordAssembler& operator=(const RecordAssembler&) = delete;

  // Consumes n bytes of the stream; appends completed non-empty records to *out. Returns false
  // when the stream violates the bound or the budget is spent (the connection must then be
  // closed; over_budget() tells which).
  [[nodiscard]] bool Feed(const uint8_t* p, size_t n, std::vector<Record>* out);

  // When inside a fragment body: where its next bytes can go without growing the buffer, and
  // how many fit (0 when the buffer is full: Feed grows it), so a large body can be read from
  // the socket straight into the record buffer.
  size_t DirectTarget(uint8_t** dst) const;
  // n bytes were written at the DirectTarget.
  void DirectDone(size_t n, std::vector<Record>* out);

  // Bytes held (allocated) for the record being assembled.
  size_t buffered() const { return cap_; }
  bool over_budget() const { return over_budget_; }

 private:
  [[nodiscard]] bool StartFragment(uint32_t mark, std::vector<Record>* out);
  void FinishFragment(std::vector<Record>* out);
  // Makes room for `need` bytes in all, growing geometrically.
  [[nodiscard]] bool Reserve(size_t need);
  void Release();

  const size_t max_record_;
  const std::shared_ptr<ByteBudget> budget_;
  uint8_t mark_[4];
  int mark_have_ = 0;
  bool in_fragment_ = false;
  bool last_ = false;
  bool over_budget_ = false;
  size_t frag_left_ = 0;
  std::shared_ptr<Buffer> record_;
  size_t cap_ = 0;   // bytes allocated in record_
  size_t have_ = 0;  // bytes of the record received
};

}  // namespace loom::rpc
