// Reference-counted byte buffers and file ranges: the memory that I/O payloads live in.
// A decoded WRITE payload is a view into the receive buffer; a READ reply payload may be
// a view into a file (sent with sendfile) — neither is copied in user space.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
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

// An open file descriptor shared by whoever still needs it; closed with the last reference.
class FileRef {
 public:
  explicit FileRef(int fd) : fd_(fd) {}
  ~FileRef();
  FileRef(const FileRef&) = delete;
  FileRef& operator=(const FileRef&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
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
