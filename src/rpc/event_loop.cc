#include "rpc/event_loop.h"

#include <sched.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

#include "common/log.h"
#include "common/stats.h"

namespace loom::rpc {

namespace {
std::atomic<int64_t> clock_offset_ms{0};  // moved only by tests (testing::AdvanceClockMs)
thread_local EventLoop* current_loop = nullptr;
}  // namespace

EventLoop* EventLoop::Current() { return current_loop; }

void EventLoop::AfterEvents(std::function<void()> fn) { after_events_.push_back(std::move(fn)); }

void EventLoop::RunAfterEvents() {
  // What these functions queue runs after the next batch (the wait below does not block
  // while some are queued).
  std::vector<std::function<void()>> fns;
  fns.swap(after_events_);
  for (auto& f : fns) f();
}

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000 +
         clock_offset_ms.load(std::memory_order_relaxed);
}

namespace testing {
void AdvanceClockMs(int64_t ms) { clock_offset_ms.fetch_add(ms, std::memory_order_relaxed); }
}  // namespace testing

int64_t NowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000 + ts.tv_nsec / 1000;
}

EventLoop::EventLoop(const Options& opts) : opts_(opts), poll_(opts.poll_max_us) {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // nullptr marks the wake fd
  epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev);
}

EventLoop::~EventLoop() {
  ::close(wakefd_);
  ::close(epfd_);
}

void EventLoop::Run() {
  current_loop = this;
  epoll_event evs[128];
  while (!stop_.load(std::memory_order_acquire)) {
    int timeout = -1;
    if (!after_events_.empty()) {
      timeout = 0;
    } else if (!timers_.empty()) {
      int64_t now = NowMs(), next = INT64_MAX;
      for (const Timer& t : timers_) next = std::min(next, t.next_ms);
      timeout = static_cast<int>(std::max<int64_t>(0, next - now));
    }
    int n = Wait(evs, 128, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      LOG_ERROR("epoll_wait: %d", errno);
      break;
    }
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == nullptr) {
        uint64_t v;
        while (::read(wakefd_, &v, sizeof v) > 0) {
        }
        continue;
      }
      static_cast<Handler*>(evs[i].data.ptr)->OnEvents(evs[i].events);
    }
    RunPosted();
    if (!after_events_.empty()) RunAfterEvents();
    if (!timers_.empty()) RunTimers();
  }
  RunPosted();
  while (!after_events_.empty()) RunAfterEvents();
  current_loop = nullptr;
}

namespace {
// A sched_yield that took longer than this gave the CPU to another thread.
constexpr int64_t kYieldedUs = 5;
}  // namespace

int EventLoop::Wait(epoll_event* evs, int max, int timeout_ms) {
  if (poll_.max_us() == 0 || timeout_ms == 0) return epoll_wait(epfd_, evs, max, timeout_ms);
  const int window = poll_.window_us();
  const int64_t t0 = NowUs();
  int64_t now = t0;
  int64_t others_us = 0;  // time other threads ran while this one yielded
  while (window > 0) {
    int n = epoll_wait(epfd_, evs, max, 0);
    if (n != 0) {
      if (opts_.poll_hit) opts_.poll_hit->Record(static_cast<uint64_t>(NowUs() - t0), 0, 0, false);
      return n;
    }
    now = NowUs();
    if (now - t0 >= window) break;
    // Polling must not take the CPU from threads that have work on it (the client on the
    // same machine, the workers): yield returns at once when nothing else is runnable. When
    // other threads ran for more than half the window, this CPU is contended: polling would
    // only compete with them (measured: with 4 clients on 2 CPUs, 4 KiB reads' p50 went from
    // 10 to 177 µs), so stop and block. One slow yield (a host hiccup, a short-lived thread)
    // does not end it: stopping at the first one cost loom-mds ~20 % of its stat rate at qd 1.
    ::sched_yield();
    const int64_t after = NowUs();
    if (after - now > kYieldedUs) {
      others_us += after - now;
      if (others_us * 2 > window) {
        now = after;
        break;
      }
    }
  }
  if (window > 0 && opts_.poll_miss) {
    opts_.poll_miss->Record(static_cast<uint64_t>(now - t0), 0, 0, false);
  }
  if (timeout_ms > 0) timeout_ms = std::max(0, timeout_ms - static_cast<int>((now - t0) / 1000));
  int n = epoll_wait(epfd_, evs, max, timeout_ms);
  poll_.Blocked(NowUs() - t0);
  return n;
}

void EventLoop::Stop() {
  stop_.store(true, std::memory_order_release);
  uint64_t one = 1;
  ssize_t r = ::write(wakefd_, &one, sizeof one);
  (void)r;
}

void EventLoop::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> l(mu_);
    posted_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  ssize_t r = ::write(wakefd_, &one, sizeof one);
  (void)r;
}

void EventLoop::Every(int ms, std::function<bool()> fn) {
  Post([this, ms, fn = std::move(fn)]() mutable {
    timers_.push_back(Timer{NowMs() + ms, ms, std::move(fn)});
  });
}

void EventLoop::RunPosted() {
  std::vector<std::function<void()>> run;
  {
    std::lock_guard<std::mutex> l(mu_);
    run.swap(posted_);
  }
  for (auto& f : run) f();
}

void EventLoop::RunTimers() {
  int64_t now = NowMs();
  for (size_t i = 0; i < timers_.size();) {
    if (timers_[i].next_ms <= now) {
      timers_[i].next_ms = now + timers_[i].period_ms;
      if (!timers_[i].fn()) {
        timers_.erase(timers_.begin() + static_cast<ptrdiff_t>(i));
        continue;
      }
    }
    i++;
  }
}

Status EventLoop::Add(int fd, uint32_t events, Handler* h) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = h;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) return Status::FromErrno(errno, "epoll add");
  return Status::Ok();
}

Status EventLoop::Modify(int fd, uint32_t events, Handler* h) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = h;
  if (epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) != 0) return Status::FromErrno(errno, "epoll mod");
  return Status::Ok();
}

void EventLoop::Remove(int fd) { epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr); }

LoopGroup::LoopGroup(int n, const EventLoop::Options& opts) {
  if (n < 1) n = 1;
  for (int i = 0; i < n; i++) loops_.push_back(std::make_unique<EventLoop>(opts));
}

LoopGroup::~LoopGroup() { Stop(); }

void LoopGroup::Start() {
  for (auto& l : loops_) threads_.emplace_back([p = l.get()] { p->Run(); });
}

void LoopGroup::Stop() {
  for (auto& l : loops_) l->Stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

EventLoop* LoopGroup::Next() {
  return loops_[next_.fetch_add(1, std::memory_order_relaxed) % loops_.size()].get();
}

WorkerPool::WorkerPool(int threads) {
  if (threads < 1) threads = 1;
  for (int i = 0; i < threads; i++) threads_.emplace_back([this] { Work(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void WorkerPool::Submit(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> l(mu_);
    q_.push_back(std::move(fn));
  }
  cv_.notify_one();
}

namespace {
thread_local WorkerPool* current_pool = nullptr;
}  // namespace

WorkerPool* WorkerPool::Current() { return current_pool; }

void WorkerPool::Work() {
  current_pool = this;
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [this] { return stop_ || !q_.empty(); });
      if (q_.empty()) return;
      fn = std::move(q_.front());
      q_.pop_front();
    }
    fn();
  }
}

}  // namespace loom::rpc
