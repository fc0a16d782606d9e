// Sync points: named places in concurrent code where a test can run a callback, to force one
// interleaving of threads instead of hoping a sleep finds it (RocksDB's SyncPoint, smaller).
//
// Production code marks a place with LOOM_SYNC_POINT("Class::Method:where"). With no callback
// installed anywhere in the process that costs one relaxed atomic load. A test installs a
// callback with testing::SetSyncPoint and must ClearSyncPoints() before it ends (the guard
// SyncPointScope does). Callbacks run on whatever thread reaches the point.
#pragma once

#include <atomic>
#include <functional>
#include <string>

namespace loom::testing {

void SetSyncPoint(const std::string& name, std::function<void()> fn);
void ClearSyncPoints();
void RunSyncPoint(const char* name);

namespace internal {
extern std::atomic<bool> sync_points_on;
}  // namespace internal

// Installs callbacks for the scope's lifetime.
class SyncPointScope {
 public:
  SyncPointScope() = default;
  ~SyncPointScope() { ClearSyncPoints(); }
  void Set(const std::string& name, std::function<void()> fn) { SetSyncPoint(name, std::move(fn)); }
  SyncPointScope(const SyncPointScope&) = delete;
  SyncPointScope& operator=(const SyncPointScope&) = delete;
};

}  // namespace loom::testing

#define LOOM_SYNC_POINT(name)                                                             \
  do {                                                                                    \
    if (::loom::testing::internal::sync_points_on.load(std::memory_order_relaxed))        \
      ::loom::testing::RunSyncPoint(name);                                                \
  } while (0)
