// libloom's GPU path: bytes from a Loom file (or a local file) into GPU device memory.
//
// A Loom read lands in a pinned (page-locked) host staging buffer straight from the socket;
// the buffer is then copied to the device with cudaMemcpyAsync on the reader's own stream.
// The staging buffers form a ring, so the network fills buffer k+1.. while buffer k crosses
// PCIe: the GPU copy hides behind the network read.
//
// No CUDA at build time: the CUDA runtime (libcudart) and GPUDirect Storage (libcufile) are
// loaded with dlopen on first use. Without them, or without a device, every call returns
// Errc::kUnavailable with a message that says which ("no CUDA runtime: ...", "no CUDA device:
// ..."). $LOOM_CUDART and $LOOM_CUFILE name the libraries to load instead of the default
// search (libcudart.so, .so.13, .so.12; libcufile.so.0, .so); LOOM_CUFILE=none turns
// GPUDirect Storage off.
//
// Device pointers are plain `void*` from cudaMalloc (or torch.Tensor.data_ptr()) on the
// given device. Every call here returns after the bytes are on the device: the copies are
// complete, so any stream may use them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "loom/client.h"

namespace loom::client {

// Whether the CUDA runtime loads and sees at least one device. When not, `why` (if given)
// says what is missing. Cheap after the first call.
bool GpuAvailable(std::string* why = nullptr);
// Whether GPUDirect Storage (libcufile) loads and its driver opens; `why` as above. Without
// it CopyLocalFileToDevice goes through pinned host memory.
bool GpuDirectStorageAvailable(std::string* why = nullptr);

// What one transfer (or a reader's whole life) measured.
struct GpuReadStats {
  uint64_t bytes = 0;          // bytes that reached the device
  double seconds = 0;          // wall time of the call(s)
  double read_wait_seconds = 0;  // time spent waiting for the source (network or disk)
  double copy_wait_seconds = 0;  // time spent waiting for a staging buffer's copy to finish
  bool gpudirect = false;      // the bytes went disk -> GPU through cuFile
  double bytes_per_second() const { return seconds > 0 ? bytes / seconds : 0; }
};

// Reads Loom files into device memory through a ring of pinned staging buffers.
// Thread-safety: Read calls on one reader run one at a time (they share the ring); use one
// reader per thread for parallel transfers.
class GpuReader {
 public:
  // `staging_bytes`: the size of each staging buffer (one chunk of the pipeline);
  // `nbufs`: how many (>= 2 for any overlap). Pinned memory is nbufs * staging_bytes.
  static Result<std::unique_ptr<GpuReader>> Create(int device = 0, size_t staging_bytes = 8u << 20,
                                                   int nbufs = 4);
  ~GpuReader();
  GpuReader(const GpuReader&) = delete;
  GpuReader& operator=(const GpuReader&) = delete;

  // Reads up to `len` bytes of `f` at `off` into `dev_ptr` (device memory on this reader's
  // device, at least `len` bytes). Returns the bytes copied: fewer only at end of file. On an
  // error, what reached the device before it is unspecified.
  Result<size_t> Read(File& f, uint64_t off, size_t len, void* dev_ptr);
  // The same for a local file, through cuFile when GPUDirect Storage is available, else
  // pread into the ring and async copies (what cuFile's compatibility mode does).
  Result<size_t> ReadLocal(const std::string& path, uint64_t off, size_t len, void* dev_ptr);

  int device() const;
  GpuReadStats last_stats() const;   // the last Read / ReadLocal
  GpuReadStats total_stats() const;  // every call so far

 private:
  struct Impl;
  explicit GpuReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One-shot ReadLocal with a reader made for the call (small ring). Returns the bytes copied.
Result<size_t> CopyLocalFileToDevice(const std::string& path, uint64_t off, size_t len,
                                     void* dev_ptr, int device = 0,
                                     GpuReadStats* stats = nullptr);

// The host-to-device ceiling of this machine: GB/s (1e9 bytes) of cudaMemcpyAsync from pinned
// memory, `bytes` per copy, timed with CUDA events over a few copies after a warm-up. A
// GpuReader cannot beat it; compare its bytes_per_second() with this.
Result<double> PinnedH2DCeilingGBps(size_t bytes = 256u << 20, int device = 0);

}  // namespace loom::client
