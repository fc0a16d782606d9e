#include "common/stats.h"

#include <bit>
#include <cstdio>

namespace loom {

void OpStats::Record(uint64_t latency_us, uint64_t bytes_in, uint64_t bytes_out, bool error) {
  calls_.fetch_add(1, std::memory_order_relaxed);
  if (error) errors_.fetch_add(1, std::memory_order_relaxed);
  bytes_in_.fetch_add(bytes_in, std::memory_order_relaxed);
  bytes_out_.fetch_add(bytes_out, std::memory_order_relaxed);
  lat_sum_.fetch_add(latency_us, std::memory_order_relaxed);
  int b = latency_us == 0 ? 0 : std::bit_width(latency_us);
  if (b >= kBuckets) b = kBuckets - 1;
  hist_[b].fetch_add(1, std::memory_order_relaxed);
}

uint64_t OpStats::QuantileUs(double q) const {
  uint64_t total = 0;
  for (const auto& h : hist_) total += h.load(std::memory_order_relaxed);
  if (total == 0) return 0;
  uint64_t want = static_cast<uint64_t>(q * static_cast<double>(total));
  if (want >= total) want = total - 1;
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; i++) {
    seen += hist_[i].load(std::memory_order_relaxed);
    if (seen > want) return uint64_t{1} << i;
  }
  return uint64_t{1} << (kBuckets - 1);
}

OpStats* StatsRegistry::Get(const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  auto& p = ops_[name];
  if (!p) p = std::make_unique<OpStats>();
  return p.get();
}

std::string StatsRegistry::ToJson() const {
  std::lock_guard<std::mutex> l(mu_);
  std::string out = "{";
  bool first = true;
  for (const auto& [name, s] : ops_) {
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "%s\"%s\":{\"calls\":%llu,\"errors\":%llu,\"bytes_in\":%llu,"
                  "\"bytes_out\":%llu,\"lat_sum_us\":%llu,\"p50_us\":%llu,\"p99_us\":%llu}",
                  first ? "" : ",", name.c_str(), (unsigned long long)s->calls(),
                  (unsigned long long)s->errors(), (unsigned long long)s->bytes_in(),
                  (unsigned long long)s->bytes_out(), (unsigned long long)s->latency_sum_us(),
                  (unsigned long long)s->QuantileUs(0.5), (unsigned long long)s->QuantileUs(0.99));
    out += buf;
    first = false;
  }
  out += "}";
  return out;
}

}  // namespace loom
