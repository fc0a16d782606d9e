// Byte codecs shared by keys and records: fixed-width big-endian integers (so that byte order
// equals numeric order inside keys) and a bounded reader for decoding stored values.
// Internal to src/meta.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace loom::meta {

inline void PutU8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }
inline void PutU32(std::string& out, uint32_t v) {
  char b[4] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  out.append(b, 4);
}
inline void PutU64(std::string& out, uint64_t v) {
  PutU32(out, static_cast<uint32_t>(v >> 32));
  PutU32(out, static_cast<uint32_t>(v));
}
// A length-prefixed byte string (u32 length). Used in values only; keys put their one
// variable-length component last instead (see keys.h).
inline void PutBytes(std::string& out, std::string_view s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

// Reads what the Put* functions wrote. Every read checks the bytes left and every length its
// maximum, so a corrupt value is an error, never an overrun or a huge allocation. Thread-
// compatible.
class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : p_(in) {}

  size_t remaining() const { return p_.size(); }
  bool done() const { return p_.empty(); }

  [[nodiscard]] bool U8(uint8_t& v) {
    if (p_.size() < 1) return false;
    v = static_cast<uint8_t>(p_[0]);
    p_.remove_prefix(1);
    return true;
  }
  [[nodiscard]] bool U32(uint32_t& v) {
    if (p_.size() < 4) return false;
    const auto* b = reinterpret_cast<const uint8_t*>(p_.data());
    v = (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
    p_.remove_prefix(4);
    return true;
  }
  [[nodiscard]] bool U64(uint64_t& v) {
    uint32_t hi, lo;
    if (!U32(hi) || !U32(lo)) return false;
    v = (uint64_t{hi} << 32) | lo;
    return true;
  }
  [[nodiscard]] bool I64(int64_t& v) {
    uint64_t u;
    if (!U64(u)) return false;
    v = static_cast<int64_t>(u);
    return true;
  }
  [[nodiscard]] bool Bytes(std::string& out, uint32_t max) {
    uint32_t n;
    if (!U32(n) || n > max || n > p_.size()) return false;
    out.assign(p_.data(), n);
    p_.remove_prefix(n);
    return true;
  }
  // The next n bytes as a view, without copying.
  [[nodiscard]] bool Raw(std::string_view& out, size_t n) {
    if (p_.size() < n) return false;
    out = p_.substr(0, n);
    p_.remove_prefix(n);
    return true;
  }

 private:
  std::string_view p_;
};

}  // namespace loom::meta
