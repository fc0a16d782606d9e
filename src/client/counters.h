// The live counters behind ClientStats (atomics, bumped on the I/O paths).
#pragma once

#include <atomic>
#include <cstdint>

#include "loom/client.h"

namespace loom::client::internal {

struct Counters {
  std::atomic<uint64_t> mds_calls{0}, mds_read_bytes{0}, mds_write_bytes{0};
  std::atomic<uint64_t> ds_read_bytes{0}, ds_write_bytes{0}, ds_errors{0}, read_failovers{0};
  std::atomic<uint64_t> layouts_fetched{0}, recoveries{0}, retries{0};

  ClientStats Snapshot() const {
    ClientStats s;
    s.mds_calls = mds_calls.load();
    s.mds_read_bytes = mds_read_bytes.load();
    s.mds_write_bytes = mds_write_bytes.load();
    s.ds_read_bytes = ds_read_bytes.load();
    s.ds_write_bytes = ds_write_bytes.load();
    s.ds_errors = ds_errors.load();
    s.read_failovers = read_failovers.load();
    s.layouts_fetched = layouts_fetched.load();
    s.recoveries = recoveries.load();
    s.retries = retries.load();
    return s;
  }
};

}  // namespace loom::client::internal
