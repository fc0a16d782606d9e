// PollWindow: how long a thread that is out of work keeps polling for more before it sleeps,
// adapted to what polling finds (in the manner of KVM's halt polling). A thread blocked on an
// idle CPU takes tens of µs to wake (on a VM, the vCPU's halt and the host's wake-up): with one
// request in flight per connection that is the whole round trip's cost twice over (measured:
// loom-ds 4 KiB reads 13 800 IOPS blocking, 41 000 polling 60 µs). Polling is worth it only
// when the next piece of work comes soon, so:
//  - work found while polling keeps the window, and a wait that blocked but ended within
//    kGrowLimit x `max_us` (a wider window would have caught it, give or take the wake-up
//    itself) grows it, doubling from kStartUs up to `max_us`;
//  - a longer wait (the connection went quiet) halves it, and below kStartUs it is 0: an idle
//    server does not spin; only work arriving closely brings polling back.
// Used by the RPC event loops (rpc/event_loop.h) and by RocksKvStore's syncer. One thread
// only. Deterministic: tests feed it outcomes.
#pragma once

#include <cstdint>

namespace loom {

class PollWindow {
 public:
  static constexpr int kStartUs = 8;
  static constexpr int kGrowLimit = 4;
  explicit PollWindow(int max_us) : max_us_(max_us < 0 ? 0 : max_us), window_us_(max_us_) {}
  int max_us() const { return max_us_; }
  // How long to poll before blocking now.
  int window_us() const { return window_us_; }
  // The thread blocked (after polling its window, or at once if that was 0), and the block
  // ended after `blocked_us` (counted from the start of the poll).
  void Blocked(int64_t blocked_us) {
    if (max_us_ == 0) return;
    if (blocked_us <= int64_t{kGrowLimit} * max_us_) {
      window_us_ = window_us_ * 2 < kStartUs ? kStartUs : window_us_ * 2;
      if (window_us_ > max_us_) window_us_ = max_us_;
    } else {
      window_us_ /= 2;
      if (window_us_ < kStartUs) window_us_ = 0;
    }
  }

 private:
  int max_us_;
  int window_us_;
};

}  // namespace loom
