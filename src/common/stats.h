// Per-operation counters every daemon keeps: calls, errors, bytes in and out, and a latency
// histogram. Lock-free on the hot path (relaxed atomics); read by metrics exporters and tests.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace loom {

class OpStats {
 public:
  // Buckets: latency < 2^i microseconds, i = 0..kBuckets-1 (last bucket takes the rest).
  static constexpr int kBuckets = 24;

  void Record(uint64_t latency_us, uint64_t bytes_in, uint64_t bytes_out, bool error);

  uint64_t calls() const { return calls_.load(std::memory_order_relaxed); }
  uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }
  uint64_t bytes_in() const { return bytes_in_.load(std::memory_order_relaxed); }
  uint64_t bytes_out() const { return bytes_out_.load(std::memory_order_relaxed); }
  uint64_t latency_sum_us() const { return lat_sum_.load(std::memory_order_relaxed); }
  uint64_t bucket(int i) const { return hist_[i].load(std::memory_order_relaxed); }
  // Upper bound (µs) of the bucket holding quantile q (0..1) of recorded latencies.
  uint64_t QuantileUs(double q) const;

 private:
  std::atomic<uint64_t> calls_{0}, errors_{0}, bytes_in_{0}, bytes_out_{0}, lat_sum_{0};
  std::array<std::atomic<uint64_t>, kBuckets> hist_{};
};

// A named set of OpStats ("nfs3.READ", "mount3.MNT", ...). Entries are never removed, so
// pointers returned by Get stay valid for the registry's lifetime. Thread-safe.
class StatsRegistry {
 public:
  OpStats* Get(const std::string& name);
  // {"nfs3.READ":{"calls":..,"errors":..,"bytes_in":..,"bytes_out":..,"lat_sum_us":..,
  //  "p50_us":..,"p99_us":..}, ...}
  std::string ToJson() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<OpStats>> ops_;
};

}  // namespace loom
