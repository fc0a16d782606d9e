#include "common/buffer.h"

#include <unistd.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

namespace loom {

namespace {

// Large buffers (record buffers of WRITE calls, READ staging) are recycled through a small
// pool instead of going back to malloc: glibc would otherwise keep raising its mmap threshold
// and leave freed megabyte blocks in per-thread arenas, so a server's RSS would creep up with
// the amount of data moved. The pool holds at most kPoolCap bytes; beyond that blocks are
// freed. Sizes are rounded up to 64 KiB classes.
constexpr size_t kPoolMin = 64 * 1024;
constexpr size_t kPoolCap = 32u << 20;

struct Pool {
  std::mutex mu;
  std::map<size_t, std::vector<void*>> free;
  size_t bytes = 0;
};

Pool& GetPool() {
  static Pool* p = new Pool();  // never destroyed: buffers may outlive static destructors
  return *p;
}

size_t ClassOf(size_t n) { return (n + kPoolMin - 1) & ~(kPoolMin - 1); }

}  // namespace

std::shared_ptr<Buffer> Buffer::Allocate(size_t n) {
  void* p = nullptr;
  if (n >= kPoolMin) {
    size_t cls = ClassOf(n);
    Pool& pool = GetPool();
    {
      std::lock_guard<std::mutex> l(pool.mu);
      auto it = pool.free.find(cls);
      if (it != pool.free.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        pool.bytes -= cls;
      }
    }
    if (p == nullptr) p = std::aligned_alloc(4096, cls);
  } else {
    size_t rounded = (n + 63) & ~size_t{63};
    p = std::aligned_alloc(64, rounded ? rounded : 64);
  }
  if (p == nullptr) throw std::bad_alloc();
  return std::shared_ptr<Buffer>(new Buffer(static_cast<uint8_t*>(p), n));
}

Buffer::~Buffer() {
  if (size_ >= kPoolMin) {
    size_t cls = ClassOf(size_);
    Pool& pool = GetPool();
    std::lock_guard<std::mutex> l(pool.mu);
    if (pool.bytes + cls <= kPoolCap) {
      pool.free[cls].push_back(data_);
      pool.bytes += cls;
      return;
    }
  }
  std::free(data_);
}

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
