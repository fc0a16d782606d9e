// Reference-counted byte buffers and file ranges: the memory that I/O payloads live in.
// A decoded WRITE payload is a view into the receive buffer; a READ reply payload may be
// a view into a file (sent with sendfile, or from a read-only mapping of it) — neither is
// copied in user space.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace loom {

// An owned, heap-allocated, 64-byte aligned block. Thread-compatible.
class Buffer {
 public:
  static std::shared_ptr<Buffer> Allocate(size_t n);
  ~Buffer();
  // Bytes of large blocks kept for reuse (see buffer.cc: up to the peak in use, trimmed when
  // idle). Thread-safe.
  static size_t PooledBytes();
  // Frees pooled blocks that stayed idle for a whole trim period (beyond the 32 MiB always
  // kept). Daemons call it about once a second; frees call it too. Thread-safe.
  static void TrimIdle();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  Buffer(uint8_t* d, size_t n) : data_(d), size_(n) {}
  uint8_t* data_;
  size_t size_;
};

// A read-only shared mapping of a window of a file, file[off, off+len) at base; unmapped
// with the last reference. Reading a page of it beyond the file's end (after a truncate)
// faults: a process read would get SIGBUS, a system call reading it (send) fails with
// EFAULT. Only system calls read it here (rpc::Connection, which falls back to sendfile on
// EFAULT).
struct FileMapping {
  FileMapping(const uint8_t* b, uint64_t o, size_t n) : base(b), off(o), len(n) {}
  ~FileMapping();
  FileMapping(const FileMapping&) = delete;
  FileMapping& operator=(const FileMapping&) = delete;
  // Where file offset `at` is. REQUIRES: Covers(at, 0).
  const uint8_t* At(uint64_t at) const { return base + (at - off); }
  bool Covers(uint64_t at, uint64_t n) const { return at >= off && at + n <= off + len; }
  const uint8_t* base;
  uint64_t off;
  size_t len;
};

// An open file descriptor shared by whoever still needs it; closed with the last reference.
class FileRef {
 public:
  explicit FileRef(int fd) : fd_(fd) {}
  ~FileRef();
  FileRef(const FileRef&) = delete;
  FileRef& operator=(const FileRef&) = delete;
  int fd() const { return fd_; }
  // A mapping of the file that covers [off, off+n): one of the two windows mapped last when
  // one does, else a new window of kMapWindow-aligned kMapWindow bytes (two where the range
  // crosses a window's end), which replaces the older of the two; a replaced window lives on
  // while replies still hold it. So what a reader touches stays mapped (and counted in the
  // process's resident set, and in the OOM killer's score) only while it reads there: at
  // most about two windows per open file, whatever the file's size. Null where the file
  // cannot be mapped (a descriptor opened write-only, a special file). Thread-safe.
  std::shared_ptr<const FileMapping> Map(uint64_t off, uint64_t n) const;
  static constexpr uint64_t kMapWindow = uint64_t{32} << 20;

 private:
  int fd_;
  mutable std::mutex map_mu_;
  mutable std::shared_ptr<const FileMapping> map_[2];  // [0]: the newer
};

// A byte range that is either memory (kept alive by `owner`) or a range of an open file.
// This is the type of every variable-length XDR opaque.
struct Bytes {
  const uint8_t* data = nullptr;
  uint32_t size = 0;
  std::shared_ptr<const void> owner;     // keeps `data` alive when it is a view
  std::shared_ptr<const FileRef> file;   // when set, the bytes are file[file_offset, +size)
  uint64_t file_offset = 0;

  Bytes() = default;
  // A copy of p[0..n) owned by this object.
  static Bytes Copy(const void* p, size_t n);
  static Bytes Copy(std::string_view s) { return Copy(s.data(), s.size()); }
  // A view of memory owned by `owner`.
  static Bytes View(const void* p, size_t n, std::shared_ptr<const void> owner) {
    Bytes b;
    b.data = static_cast<const uint8_t*>(p);
    b.size = static_cast<uint32_t>(n);
    b.owner = std::move(owner);
    return b;
  }
  static Bytes FromFile(std::shared_ptr<const FileRef> f, uint64_t off, uint32_t n) {
    Bytes b;
    b.size = n;
    b.file = std::move(f);
    b.file_offset = off;
    return b;
  }

  // file[off, +n) as bytes of its mapping `m` (m->At(off)): sent as memory, so replies
  // gather with their headers into one sendmsg; `file` stays set, so whoever cannot read the
  // mapping (a fault after a truncate) reads the file instead. REQUIRES: m->Covers(off, n).
  static Bytes FromMapping(std::shared_ptr<const FileRef> f, std::shared_ptr<const FileMapping> m,
                           uint64_t off, uint32_t n) {
    Bytes b = FromFile(std::move(f), off, n);
    b.data = m->At(off);
    b.owner = std::move(m);
    return b;
  }

  bool is_file() const { return file != nullptr; }
  bool empty() const { return size == 0; }
  // REQUIRES: !is_file()
  std::string_view view() const {
    return {reinterpret_cast<const char*>(data), size};
  }
  std::string str() const { return std::string(view()); }
  bool operator==(const Bytes& o) const {
    return !is_file() && !o.is_file() && size == o.size &&
           (size == 0 || std::memcmp(data, o.data, size) == 0);
  }
};

}  // namespace loom
