#include "common/sync_point.h"

#include <map>
#include <memory>
#include <mutex>

namespace loom::testing {

namespace internal {
std::atomic<bool> sync_points_on{false};
}  // namespace internal

namespace {
std::mutex mu;
// shared_ptr: a callback may still be running on another thread when the test clears it.
std::map<std::string, std::shared_ptr<std::function<void()>>>& Points() {
  static auto* points = new std::map<std::string, std::shared_ptr<std::function<void()>>>();
  return *points;
}
}  // namespace

void SetSyncPoint(const std::string& name, std::function<void()> fn) {
  std::lock_guard<std::mutex> l(mu);
  Points()[name] = std::make_shared<std::function<void()>>(std::move(fn));
  internal::sync_points_on.store(true, std::memory_order_release);
}

void ClearSyncPoints() {
  std::lock_guard<std::mutex> l(mu);
  Points().clear();
  internal::sync_points_on.store(false, std::memory_order_release);
}

void RunSyncPoint(const char* name) {
  std::shared_ptr<std::function<void()>> fn;
  {
    std::lock_guard<std::mutex> l(mu);
    auto it = Points().find(name);
    if (it == Points().end()) return;
    fn = it->second;
  }
  (*fn)();  // outside the lock: a callback may block until another thread passes its own point
}

}  // namespace loom::testing
