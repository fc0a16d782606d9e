// SHA-256 (FIPS 180-4) for `loom cp --checksum`: the CLI hashes the source as it streams
// and the destination's temporary file before publishing it. Not thread-safe per object.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace loom::cli {

class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t len);
  // The digest as 64 lowercase hex digits. The object must not be updated afterwards.
  std::string HexDigest();

 private:
  void Block(const uint8_t* p);

  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

}  // namespace loom::cli
