// Event loops (epoll) and the worker pool.
//
// Threading model: a few loop threads own sockets (each connection stays on one loop) and do
// non-blocking work: socket I/O, and calls that run to completion from memory. Anything that
// may block — file I/O, a metadata store read that misses its caches — runs on the
// WorkerPool, whose threads hand replies back to the connection. The one bounded exception:
// loom-mds's loop syncs its log for a lone change after a batch (AfterEvents; see
// meta::KvStore::WhenDurableSyncLater).
// The loop interface is small so an io_uring backend can replace epoll later.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/poll_window.h"
#include "common/status.h"

namespace loom {
class OpStats;
}

namespace loom::rpc {

class EventLoop {
 public:
  // Receives readiness events for a registered fd. Called on the loop thread.
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void OnEvents(uint32_t events) = 0;
  };

  struct Options {
    // Most µs to poll for events before blocking (PollWindow); 0 never polls.
    int poll_max_us = 0;
    // When set, polls that found an event ("hit", latency = µs polled) and polls that ran out
    // ("miss", latency = µs polled in vain) are counted here.
    OpStats* poll_hit = nullptr;
    OpStats* poll_miss = nullptr;
  };
  EventLoop() : EventLoop(Options{}) {}
  explicit EventLoop(const Options& opts);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs until Stop(). Call from exactly one thread.
  void Run();
  // Thread-safe. Run() returns after the current iteration.
  void Stop();
  // Thread-safe: queue fn to run on the loop thread.
  void Post(std::function<void()> fn);
  // Thread-safe: run fn on the loop thread every `ms` milliseconds while it returns true (and
  // the loop runs); returning false removes the timer.
  void Every(int ms, std::function<bool()> fn);
  // The loop this thread runs (inside Run), or nullptr.
  static EventLoop* Current();
  bool InLoopThread() const { return Current() == this; }
  // Loop thread only: runs fn once, on this thread, after the events in hand (the batch the
  // current wait returned, and posted functions) have been handled, before the loop waits
  // again. For work that should see the whole batch first: the metadata server syncs its log
  // there for the changes the batch made (meta::KvStore::SyncOwed).
  void AfterEvents(std::function<void()> fn);

  // epoll_ctl wrappers; thread-safe (epoll is).
  Status Add(int fd, uint32_t events, Handler* h);
  Status Modify(int fd, uint32_t events, Handler* h);
  void Remove(int fd);

 private:
  struct Timer {
    int64_t next_ms;
    int period_ms;
    std::function<bool()> fn;
  };
  void RunPosted();
  void RunAfterEvents();
  void RunTimers();
  // Waits for events as epoll_wait(timeout) would, polling first within poll_'s window.
  int Wait(epoll_event* evs, int max, int timeout_ms);

  const Options opts_;
  PollWindow poll_;  // loop thread only
  int epfd_;
  int wakefd_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::function<void()>> posted_;
  std::vector<Timer> timers_;  // loop thread only
  std::vector<std::function<void()>> after_events_;  // loop thread only
};

// A fixed set of loop threads; connections are spread round-robin.
class LoopGroup {
 public:
  explicit LoopGroup(int n, const EventLoop::Options& opts = {});
  ~LoopGroup();
  void Start();
  void Stop();
  EventLoop* Next();
  EventLoop* At(int i) { return loops_[i].get(); }
  int size() const { return static_cast<int>(loops_.size()); }

 private:
  std::vector<std::unique_ptr<EventLoop>> loops_;
  std::vector<std::thread> threads_;
  std::atomic<uint32_t> next_{0};
};

// Bounded-thread pool for blocking work. Submit never blocks; queued work is bounded by the
// callers' own admission control (connections stop reading at their in-flight limit).
class WorkerPool {
 public:
  explicit WorkerPool(int threads);
  ~WorkerPool();  // drains the queue, then joins
  void Submit(std::function<void()> fn);
  int threads() const { return static_cast<int>(threads_.size()); }
  // The pool whose worker runs the calling thread; nullptr on any other thread.
  static WorkerPool* Current();

 private:
  void Work();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

int64_t NowMs();
namespace testing {
// Moves NowMs() (and so leases, grace periods, recall deadlines and timers) forward by `ms`
// for the whole process: tests advance time instead of sleeping through it.
void AdvanceClockMs(int64_t ms);
}  // namespace testing
int64_t NowUs();

}  // namespace loom::rpc
