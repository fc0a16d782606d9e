// The local backend: pread from a directory of this machine. With the data set in the page
// cache it is the upper reference: what the accelerators get when storage costs only a copy.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "bench_backend.h"

namespace loom::bench {
namespace {

std::string Errno(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

class LocalReader : public Reader {
 public:
  explicit LocalReader(const BackendConfig& cfg) : cfg_(cfg) {}
  ~LocalReader() override {
    for (auto& [path, fd] : open_) ::close(fd);
  }

  std::string ReadBatch(const std::vector<Extent>& extents, uint64_t file_bytes) override {
    slots_.EnsureFor(cfg_, extents);
    for (const Extent& e : extents) {
      int fd;
      auto it = open_.find(e.path);
      if (it != open_.end()) {
        fd = it->second;
      } else {
        fd = ::open(e.path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return Errno("open", e.path);
        struct stat st;
        std::string err;
        if (::fstat(fd, &st) != 0) {
          err = Errno("stat", e.path);
        } else if (static_cast<uint64_t>(st.st_size) != file_bytes) {
          err = WrongSize(e.path, static_cast<uint64_t>(st.st_size), file_bytes);
        }
        if (!err.empty()) {
          ::close(fd);
          return err;
        }
        if (cfg_.keep_open) open_[e.path] = fd;
      }
      std::string err = ReadRange(fd, e);
      if (!cfg_.keep_open) ::close(fd);
      if (!err.empty()) return err;
    }
    return "";
  }

 private:
  // One pread per slot, the slots used round robin so that the copies go to memory the size
  // of the window (as the other backends' reads do), not to one cache-hot buffer.
  std::string ReadRange(int fd, const Extent& e) {
    uint64_t off = e.off, end = e.off + e.len;
    while (off < end) {
      char* buf = slots_[next_slot_];
      next_slot_ = (next_slot_ + 1) % slots_.size();
      size_t want = static_cast<size_t>(std::min<uint64_t>(slots_.bytes(), end - off));
      ssize_t n = ::pread(fd, buf, want, static_cast<off_t>(off));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Errno("read", e.path);
      }
      if (n == 0) return "short read of " + e.path + " at " + std::to_string(off);
      off += static_cast<uint64_t>(n);
    }
    return "";
  }

  BackendConfig cfg_;
  ReadSlots slots_;
  size_t next_slot_ = 0;
  std::map<std::string, int> open_;
};

class LocalBackend : public Backend {
 public:
  explicit LocalBackend(const BackendConfig& cfg) : cfg_(cfg) {}

  std::string NewReader(std::unique_ptr<Reader>* out) override {
    *out = std::make_unique<LocalReader>(cfg_);
    return "";
  }

  std::string MakeDirs(const std::string& dir) override {
    std::string cur;
    size_t i = 0;
    while (i <= dir.size()) {
      size_t j = dir.find('/', i);
      if (j == std::string::npos) j = dir.size();
      cur = dir.substr(0, j);
      if (!cur.empty() && ::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) {
        return Errno("mkdir", cur);
      }
      i = j + 1;
    }
    return "";
  }

  std::string WriteFile(const std::string& path, const char* data, uint64_t len) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Errno("create", path);
    uint64_t off = 0;
    while (off < len) {
      uint64_t want = len - off < cfg_.chunk_bytes ? len - off : cfg_.chunk_bytes;
      ssize_t n = ::pwrite(fd, data + off, want, static_cast<off_t>(off));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        std::string err = Errno("write", path);
        ::close(fd);
        return err;
      }
      off += static_cast<uint64_t>(n);
    }
    // Durable, as the other backends' writes are after their COMMIT.
    if (::fsync(fd) != 0) {
      std::string err = Errno("fsync", path);
      ::close(fd);
      return err;
    }
    if (::close(fd) != 0) return Errno("close", path);
    return "";
  }

 private:
  BackendConfig cfg_;
};

}  // namespace

std::string MakeLocalBackend(const BackendConfig& cfg, std::unique_ptr<Backend>* out) {
  *out = std::make_unique<LocalBackend>(cfg);
  return "";
}

}  // namespace loom::bench
