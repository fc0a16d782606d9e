#include "common/buffer.h"

#include <unistd.h>

#include <cstdlib>
#include <new>

namespace loom {

std::shared_ptr<Buffer> Buffer::Allocate(size_t n) {
  size_t rounded = (n + 63) & ~size_t{63};
  void* p = std::aligned_alloc(64, rounded ? rounded : 64);
  if (p == nullptr) throw std::bad_alloc();
  return std::shared_ptr<Buffer>(new Buffer(static_cast<uint8_t*>(p), n));
}

Buffer::~Buffer() { std::free(data_); }

FileRef::~FileRef() {
  if (fd_ >= 0) ::close(fd_);
}

Bytes Bytes::Copy(const void* p, size_t n) {
  auto buf = Buffer::Allocate(n);
  if (n) std::memcpy(buf->data(), p, n);
  Bytes b;
  b.data = buf->data();
  b.size = static_cast<uint32_t>(n);
  b.owner = std::move(buf);
  return b;
}

}  // namespace loom
