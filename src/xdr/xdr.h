// XDR (RFC 4506) runtime used by the generated codecs.
//
// Decoder: bounded. Every read checks the remaining length; every variable-length item checks
// its declared maximum and that the remaining bytes could possibly hold it, so a hostile length
// never causes a large allocation. Errors are a false return; the caller maps that to
// GARBAGE_ARGS / NFS4ERR_BADXDR at the protocol edge.
//
// Encoder: appends into one contiguous byte vector; large opaques (and file ranges) are kept
// as external segments so payloads are never copied. `Segments()` yields the wire order.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/buffer.h"

namespace loom::xdr {

// Upper bound applied to "unbounded" (<>) XDR arrays/opaques/strings.
constexpr uint32_t kUnbounded = 0xffffffffu;

class Decoder {
 public:
  Decoder(const uint8_t* p, size_t n, std::shared_ptr<const void> owner = nullptr)
      : p_(p), end_(p + n), owner_(std::move(owner)) {}

  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  const uint8_t* pos() const { return p_; }
  const std::shared_ptr<const void>& owner() const { return owner_; }

  [[nodiscard]] bool u32(uint32_t& v) {
    if (remaining() < 4) return false;
    v = (uint32_t{p_[0]} << 24) | (uint32_t{p_[1]} << 16) | (uint32_t{p_[2]} << 8) | p_[3];
    p_ += 4;
    return true;
  }
  [[nodiscard]] bool i32(int32_t& v) {
    uint32_t u = 0;
    if (!u32(u)) return false;
    v = static_cast<int32_t>(u);
    return true;
  }
  [[nodiscard]] bool u64(uint64_t& v) {
    uint32_t hi = 0, lo = 0;
    if (!u32(hi) || !u32(lo)) return false;
    v = (uint64_t{hi} << 32) | lo;
    return true;
  }
  [[nodiscard]] bool i64(int64_t& v) {
    uint64_t u;
    if (!u64(u)) return false;
    v = static_cast<int64_t>(u);
    return true;
  }
  // RFC 4506 §4.4: a boolean is an enum with values 0 and 1 only.
  [[nodiscard]] bool boolean(bool& v) {
    uint32_t u;
    if (!u32(u) || u > 1) return false;
    v = u != 0;
    return true;
  }
  [[nodiscard]] bool skip(size_t n) {
    size_t padded = Pad(n);
    if (padded < n || remaining() < padded) return false;
    p_ += padded;
    return true;
  }
  // Fixed-length opaque (RFC 4506 §4.9) into caller storage.
  [[nodiscard]] bool fixed(uint8_t* out, size_t n) {
    const uint8_t* src = p_;
    if (!skip(n)) return false;
    std::memcpy(out, src, n);
    return true;
  }
  // Variable-length opaque (§4.10): a zero-copy view that shares the decode buffer's owner.
  [[nodiscard]] bool opaque(Bytes& out, uint32_t max) {
    uint32_t n;
    if (!u32(n) || n > max) return false;
    const uint8_t* src = p_;
    if (!skip(n)) return false;
    out = Bytes::View(src, n, owner_);
    return true;
  }
  // String (§4.11): copied, since names are small and outlive the buffer.
  [[nodiscard]] bool string(std::string& out, uint32_t max) {
    uint32_t n;
    if (!u32(n) || n > max) return false;
    const uint8_t* src = p_;
    if (!skip(n)) return false;
    out.assign(reinterpret_cast<const char*>(src), n);
    return true;
  }
  // Length of a variable-length array (§4.13): bounded by its maximum and by the bytes left,
  // since every element of a non-void XDR type takes at least 4 bytes.
  [[nodiscard]] bool array_len(uint32_t& n, uint32_t max) {
    if (!u32(n) || n > max) return false;
    return n <= remaining() / 4;
  }

  static size_t Pad(size_t n) { return (n + 3) & ~size_t{3}; }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
  std::shared_ptr<const void> owner_;
};

// Enums travel as signed 32-bit integers (RFC 4506 §4.3). Values outside the declared set are
// kept as they are; handlers treat them as invalid where it matters (union arms reject them).
template <typename E>
[[nodiscard]] bool decode_enum(Decoder& d, E& v) {
  int32_t x;
  if (!d.i32(x)) return false;
  v = static_cast<E>(x);
  return true;
}

// A piece of an encoded message in wire order.
struct Segment {
  // Memory when file == nullptr. A file segment (file->fd() at offset) may also have data:
  // the range's address in a mapping of the file (Bytes::FromMapping), which may fault.
  const uint8_t* data = nullptr;
  size_t size = 0;
  const FileRef* file = nullptr;
  uint64_t offset = 0;
};

class Encoder {
 public:
  // Opaques at least this large are referenced, not copied.
  static constexpr uint32_t kExternalThreshold = 2048;

  Encoder() { buf_.reserve(512); }

  void u32(uint32_t v) {
    uint8_t b[4] = {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
    buf_.insert(buf_.end(), b, b + 4);
  }
  void i32(int32_t v) { u32(static_cast<uint32_t>(v)); }
  void u64(uint64_t v) {
    u32(static_cast<uint32_t>(v >> 32));
    u32(static_cast<uint32_t>(v));
  }
  void i64(int64_t v) { u64(static_cast<uint64_t>(v)); }
  void boolean(bool v) { u32(v ? 1 : 0); }
  void fixed(const uint8_t* p, size_t n) {
    buf_.insert(buf_.end(), p, p + n);
    pad(n);
  }
  void opaque(const Bytes& b) {
    u32(b.size);
    if (b.is_file() || b.size >= kExternalThreshold) {
      ext_.push_back({buf_.size(), b});
      ext_bytes_ += b.size;
      pad(b.size);
    } else {
      fixed(b.data, b.size);
    }
  }
  // Already-encoded XDR bytes (a multiple of 4 long).
  void raw(const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + n);
  }
  void string(const std::string& s) {
    u32(static_cast<uint32_t>(s.size()));
    fixed(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  void pad(size_t n) {
    static const uint8_t kZero[4] = {0, 0, 0, 0};
    size_t p = Decoder::Pad(n) - n;
    buf_.insert(buf_.end(), kZero, kZero + p);
  }

  // Reserve a 4-byte word to fill in later (e.g. a record mark or a count).
  size_t reserve_u32() {
    size_t at = buf_.size();
    u32(0);
    return at;
  }
  void patch_u32(size_t at, uint32_t v) {
    buf_[at] = uint8_t(v >> 24);
    buf_[at + 1] = uint8_t(v >> 16);
    buf_[at + 2] = uint8_t(v >> 8);
    buf_[at + 3] = uint8_t(v);
  }

  size_t size() const { return buf_.size() + ext_bytes_; }
  size_t inline_size() const { return buf_.size(); }
  // The inline bytes; the whole message when nothing external was added (ext_count 0).
  const uint8_t* inline_data() const { return buf_.data(); }
  size_t ext_count() const { return ext_.size(); }
  void truncate(size_t inline_at) {
    buf_.resize(inline_at);
    while (!ext_.empty() && ext_.back().at > inline_at) {
      ext_bytes_ -= ext_.back().ref.size;
      ext_.pop_back();
    }
  }

  // The message in wire order. Valid while the encoder lives and is not modified.
  std::vector<Segment> Segments() const;
  // The whole message as one contiguous string (reads file segments with pread).
  std::string Flatten() const;

 private:
  struct External {
    size_t at;  // inline offset the external bytes come before
    Bytes ref;
  };
  std::vector<uint8_t> buf_;
  std::vector<External> ext_;
  size_t ext_bytes_ = 0;
};

}  // namespace loom::xdr
