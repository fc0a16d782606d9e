// Moving bytes: the pipelined copy of one file (reads and writes in flight together, the
// source hashed in order as it streams), SHA-256 of a whole file, and the progress line.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "endpoint.h"
#include "sha256.h"

namespace loom::cli {

// The one-line progress meter of `loom cp` on stderr: percent, bytes, bytes/s, ETA, files.
// Redrawn by its own thread every 250 ms; on a terminal the line is rewritten in place ("\r"),
// elsewhere (--progress into a file) each redraw is "\r"-separated too, ended by a newline.
class Progress {
 public:
  Progress(bool enabled, uint64_t total_bytes, uint64_t total_files, bool verifying);
  ~Progress();  // Finish()
  void AddBytes(uint64_t n) { bytes_.fetch_add(n, std::memory_order_relaxed); }
  void AddVerified(uint64_t n) { verified_.fetch_add(n, std::memory_order_relaxed); }
  void FileDone() { files_.fetch_add(1, std::memory_order_relaxed); }
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  // Draws the final line and stops the thread.
  void Finish();

 private:
  void Draw(bool final);
  void Loop();

  const bool enabled_, tty_, verifying_;
  const uint64_t total_bytes_, total_files_;
  std::atomic<uint64_t> bytes_{0}, verified_{0}, files_{0};
  std::chrono::steady_clock::time_point start_;
  // Samples for the rate: (seconds since start, bytes) about 3 s back.
  double rate_t_ = 0, rate_b_ = 0, rate_ = 0;
  size_t last_len_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Copies [0, r.size()) from `r` to `w` with up to `window` chunks of `chunk` bytes in flight
// each way. Bytes are fed to `hash` (may be null) in order. Stops early, with every I/O in
// flight finished, on an error or an interrupt. Returns the bytes copied; on an error
// *write_failed (when given) says whether the write side failed (else the read side).
lc::Result<uint64_t> CopyData(Reader& r, Sink& w, Sha256* hash, Progress* progress,
                              bool* write_failed = nullptr, size_t chunk = 1u << 20, size_t window = 8);

// SHA-256 of a whole file read through `r` (pipelined like CopyData).
lc::Result<std::string> HashAll(Reader& r, Progress* progress);

}  // namespace loom::cli
