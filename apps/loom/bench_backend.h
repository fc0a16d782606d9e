// Where `loom bench train` reads its samples from: Loom through libloom, a local directory
// (the page-cache reference), or any NFSv3 server through libnfs. Internal to apps/loom.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.h"

namespace loom::bench {

struct BackendConfig {
  std::string kind;     // "loom", "local" or "nfs"
  std::string mds;      // loom: the metadata server ("" = libloom's default)
  std::string nfs_url;  // nfs: nfs://host[:port]/export?nfsport=..&mountport=..&version=3
  uint32_t connections = 2;      // loom: TCP connections per data server
  uint64_t chunk_bytes = 1 << 20;  // largest single read or write
  // Bytes in flight per reader: reads land in a pool of this many bytes of buffers, reused
  // from batch to batch (the data itself is dropped, as a training job would after decoding).
  uint64_t window_bytes = 64ull << 20;
  bool keep_open = false;  // open each file once per reader and keep it (no per-sample open)
  size_t open_depth = 16;  // opens (and closes) in flight per reader
};

// A byte range of one file of the data set: one sample, or several consecutive samples of a
// file that holds many (resnet50's record files).
struct Extent {
  std::string path;
  uint64_t off = 0, len = 0;
};

// Reads extents of files. One reader serves one thread (a simulated accelerator's loader); it
// owns its buffers and, for nfs, its own connection.
class Reader {
 public:
  virtual ~Reader() = default;
  // Reads every extent of a batch (each file opened, the range read, the file closed), the
  // batch's reads in flight together (up to the window). Every file must hold exactly
  // `file_bytes` bytes (a file of the wrong size means a data set prepared for another
  // workload). Returns "" or an error.
  virtual std::string ReadBatch(const std::vector<Extent>& extents, uint64_t file_bytes) = 0;
};

// Thread-safe: NewReader may be called from any thread.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string NewReader(std::unique_ptr<Reader>* out) = 0;
  // mkdir -p.
  virtual std::string MakeDirs(const std::string& dir) = 0;
  // Creates or replaces `path` with `len` bytes from `data`, durable when it returns.
  virtual std::string WriteFile(const std::string& path, const char* data, uint64_t len) = 0;
  // Anything worth reporting next to the numbers (the data servers a loom file is spread
  // over, ...), as a JSON object, or "null".
  virtual std::string DescribeJson(const std::string& sample_path) { return "null"; }
};

// Each returns "" and sets `out`, or an error message.
std::string MakeLocalBackend(const BackendConfig& cfg, std::unique_ptr<Backend>* out);
std::string MakeLoomBackend(const BackendConfig& cfg, std::unique_ptr<Backend>* out);
// Says so when libloom was built without libnfs.
std::string MakeNfsBackend(const BackendConfig& cfg, std::unique_ptr<Backend>* out);

inline std::string MakeBackend(const BackendConfig& cfg, std::unique_ptr<Backend>* out) {
  if (cfg.kind == "local") return MakeLocalBackend(cfg, out);
  if (cfg.kind == "loom") return MakeLoomBackend(cfg, out);
  if (cfg.kind == "nfs") return MakeNfsBackend(cfg, out);
  return "unknown backend '" + cfg.kind + "' (loom, local, nfs)";
}

// Slot size for reads of extents of up to `largest` bytes: one chunk, or the whole extent when
// smaller, so that a batch of small samples is all in flight at once.
inline uint64_t SlotBytes(const BackendConfig& cfg, uint64_t largest) {
  uint64_t s = largest < cfg.chunk_bytes ? largest : cfg.chunk_bytes;
  return s == 0 ? 1 : s;
}
inline size_t SlotCount(const BackendConfig& cfg, uint64_t largest) {
  uint64_t n = cfg.window_bytes / SlotBytes(cfg, largest);
  return n == 0 ? 1 : static_cast<size_t>(n);
}
// The error for a data-set file of the wrong size.
inline std::string WrongSize(const std::string& path, uint64_t has, uint64_t want) {
  return path + ": holds " + std::to_string(has) + " bytes, the workload's files hold " +
         std::to_string(want) + " (prepare the data set again)";
}
inline uint64_t LargestExtent(const std::vector<Extent>& extents) {
  uint64_t m = 0;
  for (const Extent& e : extents) m = e.len > m ? e.len : m;
  return m;
}

// A reader's destination buffers (the loader's window): allocated on the first batch, sized by
// the configuration and that batch's largest extent (SlotBytes, SlotCount).
class ReadSlots {
 public:
  void EnsureFor(const BackendConfig& cfg, const std::vector<Extent>& extents) {
    if (region_) return;
    const uint64_t largest = LargestExtent(extents);
    bytes_ = SlotBytes(cfg, largest);
    count_ = SlotCount(cfg, largest);
    region_ = std::make_unique<IoRegion>(count_ * bytes_);
  }
  char* operator[](size_t i) { return region_->data() + i * bytes_; }
  size_t size() const { return count_; }
  uint64_t bytes() const { return bytes_; }

 private:
  std::unique_ptr<IoRegion> region_;  // count_ slots of bytes_ each
  size_t count_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace loom::bench
