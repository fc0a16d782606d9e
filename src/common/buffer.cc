#include "common/buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

namespace loom {

namespace {

// Large buffers (record buffers of WRITE calls, READ staging) are recycled through a pool
// instead of going back to malloc. malloc would hand a megabyte block back to the kernel (an
// mmap chunk is unmapped, an arena's top is trimmed) and the next one would be faulted in and
// zeroed again: measured on loom-ds serving 1 MiB reads with ~60 in flight, page faults on the
// fresh READ buffers took 18% of its CPU. The pool keeps what is in use at the busiest moment,
// so it is as large as the peak of buffers in flight (bounded by the servers' admission
// control), never above kPoolCap, and gives back what was not needed: bytes above kPoolKeep
// that stayed idle for a whole kTrimPeriodMs (the low-water mark of the free bytes over the
// period) are freed, when a block is freed or when the daemon's once-a-second TrimIdle() runs
// (so an idle server shrinks too). Sizes are rounded up to 64 KiB classes.
constexpr size_t kPoolMin = 64 * 1024;
constexpr size_t kPoolKeep = 32u << 20;
constexpr size_t kPoolCap = 512u << 20;
constexpr int64_t kTrimPeriodMs = 1000;

struct Pool {
  std::mutex mu;
  std::map<size_t, std::vector<void*>> free;
  size_t bytes = 0;
  size_t low_water = 0;  // the least `bytes` has been since period_start_ms
  int64_t period_start_ms = 0;
};

Pool& GetPool() {
  static Pool* p = new Pool();  // never destroyed: buffers may outlive static destructors
  return *p;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Ends a trim period when one is over: takes the blocks that stayed idle through it (beyond
// kPoolKeep) out of the pool, largest classes first, into `out` to be freed without the lock.
// REQUIRES: pool.mu held.
void TakeIdleLocked(Pool& pool, std::vector<void*>* out) {
  int64_t now = NowMs();
  if (now - pool.period_start_ms < kTrimPeriodMs) return;
  size_t idle = pool.low_water > kPoolKeep ? pool.low_water - kPoolKeep : 0;
  for (auto it = pool.free.rbegin(); idle > 0 && it != pool.free.rend(); ++it) {
    while (idle > 0 && !it->second.empty()) {
      out->push_back(it->second.back());
      it->second.pop_back();
      pool.bytes -= it->first;
      idle = idle > it->first ? idle - it->first : 0;
    }
  }
  pool.low_water = pool.bytes;
  pool.period_start_ms = now;
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
        if (pool.bytes < pool.low_water) pool.low_water = pool.bytes;
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
    std::vector<void*> idle;
    bool kept = false;
    {
      std::lock_guard<std::mutex> l(pool.mu);
      if (pool.bytes + cls <= kPoolCap) {
        pool.free[cls].push_back(data_);
        pool.bytes += cls;
        kept = true;
      }
      TakeIdleLocked(pool, &idle);
    }
    for (void* q : idle) std::free(q);
    if (kept) return;
  }
  std::free(data_);
}

void Buffer::TrimIdle() {
  Pool& pool = GetPool();
  std::vector<void*> idle;
  {
    std::lock_guard<std::mutex> l(pool.mu);
    TakeIdleLocked(pool, &idle);
  }
  for (void* q : idle) std::free(q);
}

size_t Buffer::PooledBytes() {
  Pool& pool = GetPool();
  std::lock_guard<std::mutex> l(pool.mu);
  return pool.bytes;
}

FileRef::~FileRef() {
  if (fd_ >= 0) ::close(fd_);
}

FileMapping::~FileMapping() { ::munmap(const_cast<uint8_t*>(base), len); }

std::shared_ptr<const FileMapping> FileRef::Map(uint64_t off, uint64_t n) const {
  std::lock_guard<std::mutex> l(map_mu_);
  for (int i = 0; i < 2; i++) {
    if (map_[i] && map_[i]->Covers(off, n)) {
      if (i == 1) std::swap(map_[0], map_[1]);  // the one in use is the newer
      return map_[0];
    }
  }
  if (fd_ < 0) return nullptr;
  // Pages of a window past the file's end cost nothing until touched (and are never
  // touched: a read stops at the size).
  const uint64_t from = off / kMapWindow * kMapWindow;
  const uint64_t to = (std::max(off + n, off + 1) + kMapWindow - 1) / kMapWindow * kMapWindow;
  void* p = ::mmap(nullptr, to - from, PROT_READ, MAP_SHARED, fd_, static_cast<off_t>(from));
  if (p == MAP_FAILED) return nullptr;
  map_[1] = std::move(map_[0]);
  map_[0] = std::make_shared<const FileMapping>(static_cast<const uint8_t*>(p), from, to - from);
  return map_[0];
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
