// Per-file serialization of size changes. A regular file's size lives in two places: the data
// files on the data servers and the inode in the metadata store. Changing it takes two steps
// (data-server call, then metadata transaction), so two changes that interleave can leave the
// two disagreeing: a WRITE past EOF racing a truncate could end with a size that covers bytes
// the truncate already cut (they read back as zeros), or with data bytes past EOF.
//
//   WRITE (proxied)                      holds Shared(ino)   across data-server WRITE + size_at_least
//   SETATTR(size), OPEN(truncate),
//   ALLOCATE                             holds Exclusive(ino) across re-reading the inode,
//                                        data-server SETATTR(size) + metadata size
//
// WRITEs share the lock with each other: their size updates commute (size_at_least only
// grows, under the inode's row lock). A size change excludes every WRITE of the file.
//
// Lock order: a size lock is taken before any metadata transaction begins and released after
// the last one commits; it is never taken while a transaction is open (so it never waits
// behind a row lock held by its own thread). Nothing held under it can block forever:
// data-server calls end with DataServerPool's RPC timeout, store transactions with the
// lock timeout. Locks are striped by inode number; one operation holds one stripe at a time.
//
// Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <shared_mutex>

namespace loom::nfs4 {

class SizeLocks {
 public:
  // Points at which a test may pause an operation (SetTestHook).
  enum class Step {
    kWriteDataDone,        // a WRITE's bytes are on the data servers, its size not yet set
    kTruncateDataDone,     // a size change is on the data servers, not yet in the store
    kWaitShared,           // a WRITE is about to wait for Shared
    kWaitExclusive,        // a size change is about to wait for Exclusive
  };
  using Hook = std::function<void(uint64_t ino, Step step)>;

  std::shared_lock<std::shared_mutex> Shared(uint64_t ino) {
    Reached(ino, Step::kWaitShared);
    return std::shared_lock<std::shared_mutex>(Stripe(ino));
  }
  std::unique_lock<std::shared_mutex> Exclusive(uint64_t ino) {
    Reached(ino, Step::kWaitExclusive);
    return std::unique_lock<std::shared_mutex>(Stripe(ino));
  }

  // Tests only: called at each Step (from the operation's thread, possibly under the lock).
  void SetTestHook(Hook h) {
    std::lock_guard<std::mutex> l(hook_mu_);
    hook_ = std::move(h);
  }
  void Reached(uint64_t ino, Step step) {
    Hook h;
    {
      std::lock_guard<std::mutex> l(hook_mu_);
      if (!hook_) return;
      h = hook_;
    }
    h(ino, step);
  }

 private:
  static constexpr size_t kStripes = 256;
  std::shared_mutex& Stripe(uint64_t ino) { return stripes_[(ino * 0x9e3779b97f4a7c15ull) >> 56]; }

  std::array<std::shared_mutex, kStripes> stripes_;
  std::mutex hook_mu_;
  Hook hook_;  // guarded by hook_mu_
};

}  // namespace loom::nfs4
