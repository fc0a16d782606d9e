// FlushBatch: while one is open on a thread, output that would be flushed now (an RPC reply's
// sendmsg) is flushed once at the scope's end instead, per destination. A thread that sends
// several replies in a row to one connection (RocksKvStore's syncer releasing every reply one
// WAL sync covered) then makes one sendmsg of them all instead of one each: fewer system
// calls, and on loopback fewer wake-ups of the receiver.
//
// Only delays: what is queued in a batch leaves when the outermost batch on the thread ends
// (nested batches join it). Keep a batch short (no waits inside), since what others send to
// a deferred destination meanwhile waits for it too.
#pragma once

#include <functional>
#include <utility>
#include <vector>

namespace loom {

class FlushBatch {
 public:
  FlushBatch() : outer_(current_) {
    if (!outer_) current_ = this;
  }
  ~FlushBatch() {
    if (outer_ || current_ != this) return;
    // Flushes may queue more (a flush that finds new output): run until none is left.
    for (size_t i = 0; i < flushes_.size(); ++i) {
      std::function<void()> f = std::move(flushes_[i]);
      f();
    }
    current_ = nullptr;
  }
  FlushBatch(const FlushBatch&) = delete;
  FlushBatch& operator=(const FlushBatch&) = delete;

  // With a batch open on this thread, queues `flush` for its end and returns true; else
  // returns false and the caller flushes now.
  static bool Defer(std::function<void()> flush) {
    if (!current_) return false;
    current_->flushes_.push_back(std::move(flush));
    return true;
  }

 private:
  FlushBatch* outer_;
  std::vector<std::function<void()>> flushes_;
  static inline thread_local FlushBatch* current_ = nullptr;
};

}  // namespace loom
