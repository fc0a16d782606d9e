#include "transfer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

namespace loom::cli {

// ---------------------------------------------------------------- progress

Progress::Progress(bool enabled, uint64_t total_bytes, uint64_t total_files, bool verifying)
    : enabled_(enabled), tty_(::isatty(2) == 1), verifying_(verifying), total_bytes_(total_bytes),
      total_files_(total_files), start_(std::chrono::steady_clock::now()) {
  if (enabled_) thread_ = std::thread([this] { Loop(); });
}

Progress::~Progress() { Finish(); }

void Progress::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    cv_.wait_for(l, std::chrono::milliseconds(250), [&] { return stop_; });
    if (!stop_) Draw(false);
  }
}

void Progress::Finish() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (enabled_) {
    std::lock_guard<std::mutex> l(mu_);
    Draw(true);
  }
}

namespace {
std::string Clock(double s) {
  if (s < 0 || s > 99 * 3600) return "--:--";
  unsigned t = static_cast<unsigned>(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%u:%02u:%02u", t / 3600, t / 60 % 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%u:%02u", t / 60, t % 60);
  return buf;
}
}  // namespace

// Called with mu_ held (from the loop or Finish).
void Progress::Draw(bool final) {
  double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  uint64_t b = bytes_.load(), v = verified_.load(), f = files_.load();
  // The rate over the last few seconds (the whole run for the final line).
  if (final) {
    rate_ = t > 0 ? static_cast<double>(b + v) / t : 0;
  } else if (t - rate_t_ >= 3 || rate_t_ == 0) {
    if (t > rate_t_) rate_ = (static_cast<double>(b + v) - rate_b_) / (t - rate_t_);
    rate_t_ = t;
    rate_b_ = static_cast<double>(b + v);
  }
  if (rate_ == 0 && t > 0) rate_ = static_cast<double>(b + v) / t;
  uint64_t work = total_bytes_ * (verifying_ ? 2 : 1), done = b + v;
  double pct = work ? 100.0 * static_cast<double>(done) / static_cast<double>(work) : (final ? 100.0 : 0.0);
  double eta = rate_ > 0 ? static_cast<double>(work > done ? work - done : 0) / rate_ : -1;
  char line[256];
  int n = std::snprintf(line, sizeof line, "%5.1f%% %s / %s  %s/s  %s %s  files %llu/%llu", pct,
                        HumanLong(b).c_str(), HumanLong(total_bytes_).c_str(),
                        HumanLong(static_cast<uint64_t>(rate_)).c_str(), final ? "in" : "ETA",
                        Clock(final ? t : eta).c_str(), static_cast<unsigned long long>(f),
                        static_cast<unsigned long long>(total_files_));
  std::string s(line, static_cast<size_t>(std::max(0, std::min<int>(n, sizeof line - 1))));
  if (verifying_) s += "  verified " + HumanLong(v);
  size_t len = s.size();
  if (len < last_len_) s.append(last_len_ - len, ' ');  // wipe what the last draw left
  last_len_ = len;
  std::fprintf(stderr, "\r%s%s", s.c_str(), final ? "\n" : "");
  std::fflush(stderr);
}

// ---------------------------------------------------------------- the pipeline

namespace {

// One asynchronous I/O's completion, waited for by the copying thread.
struct Pending {
  std::mutex mu;
  std::condition_variable cv;
  bool busy = false, done = false;
  lc::Status status;
  size_t n = 0;

  lc::IoCallback Arm() {
    busy = true;
    done = false;
    return [this](lc::Status s, size_t n_done) {
      std::lock_guard<std::mutex> l(mu);
      status = std::move(s);
      n = n_done;
      done = true;
      cv.notify_all();
    };
  }
  // Waits if armed; returns its status (OK when it was not armed).
  lc::Status Wait() {
    if (!busy) return lc::Status::Ok();
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return done; });
    busy = false;
    return status;
  }
};

struct Slot {
  std::vector<char> buf;
  uint64_t off = 0;
  size_t len = 0;
  Pending read, write;
};

// A test seam for the process tests (tests/cli): LOOM_CLI_TEST_HOLD="BYTES:FIFO" makes the
// copy stop once BYTES have been written, create FIFO.held, and block reading FIFO until the
// test has opened it for writing and closed it. The test waits for FIFO.held (or the end of
// the copy, which then never reached the hold) and does what it needs (SIGKILL a data
// server, signal this process) while the copy is known to be halfway.
struct Hold {
  uint64_t at = 0;
  std::string fifo;
  std::atomic<bool> done{false};
  Hold() {
    const char* e = std::getenv("LOOM_CLI_TEST_HOLD");
    if (!e) return;
    std::string s = e;
    size_t c = s.find(':');
    if (c == std::string::npos || !ParseUint(s.substr(0, c), UINT64_MAX, &at)) return;
    fifo = s.substr(c + 1);
  }
  void Maybe(uint64_t bytes) {
    if (fifo.empty() || bytes < at || done.exchange(true)) return;
    int marker = ::open((fifo + ".held").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (marker >= 0) ::close(marker);
    int fd = ::open(fifo.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char b[64];
    while (::read(fd, b, sizeof b) > 0) {
    }
    ::close(fd);
  }
};
Hold& TheHold() {
  static Hold h;
  return h;
}

}  // namespace

lc::Result<uint64_t> CopyData(Reader& r, Sink& w, Sha256* hash, Progress* progress, bool* write_failed,
                              size_t chunk, size_t window) {
  bool wrote_wrong = false;
  const uint64_t size = r.size();
  const uint64_t nchunks = (size + chunk - 1) / chunk;
  // 2*window slots: `window` reads ahead of the chunk being hashed, and up to `window`
  // writes behind it; a slot is read into again only once its last write is done.
  const size_t nslots = static_cast<size_t>(std::min<uint64_t>(2 * window, std::max<uint64_t>(nchunks, 1)));
  std::vector<std::unique_ptr<Slot>> slots;
  for (size_t i = 0; i < nslots; i++) slots.push_back(std::make_unique<Slot>());
  lc::Status err;
  uint64_t issued = 0, copied = 0;
  bool eof = false;

  auto issue_reads = [&](uint64_t upto) {
    for (; issued < std::min(upto, nchunks) && err.ok() && !eof; issued++) {
      Slot& s = *slots[issued % nslots];
      lc::Status ws = s.write.Wait();
      if (!ws.ok()) {
        err = ws;
        wrote_wrong = true;
        return;
      }
      s.off = issued * chunk;
      s.len = static_cast<size_t>(std::min<uint64_t>(chunk, size - s.off));
      if (s.buf.size() < s.len) s.buf.resize(s.len);
      r.ReadAsync(s.off, s.buf.data(), s.len, s.read.Arm());
    }
  };

  issue_reads(window);
  for (uint64_t i = 0; i < nchunks && err.ok(); i++) {
    if (g_interrupted.load()) {
      err = Interrupted();
      break;
    }
    if (i >= issued) break;  // the source ended early
    Slot& s = *slots[i % nslots];
    lc::Status rs = s.read.Wait();
    if (!rs.ok()) {
      err = rs;
      break;
    }
    size_t n = s.read.n;
    if (n < s.len) eof = true;  // the file shrank since we looked: copy what is there
    if (hash) hash->Update(s.buf.data(), n);
    if (n > 0) {
      // The progress counts a chunk when its write is issued; the writes still in flight
      // are waited for below before anything is published.
      auto cb = s.write.Arm();
      w.WriteAsync(s.off, s.buf.data(), n, std::move(cb));
      copied += n;
      if (progress) progress->AddBytes(n);
      if (progress) TheHold().Maybe(progress->bytes());
    }
    issue_reads(i + 1 + window);
  }
  // Nothing may still point into the buffers when they go.
  for (auto& s : slots) {
    lc::Status rs = s->read.Wait();
    lc::Status ws = s->write.Wait();
    if (err.ok() && !ws.ok()) {
      err = ws;
      wrote_wrong = true;
    }
    (void)rs;
  }
  if (write_failed) *write_failed = wrote_wrong;
  if (!err.ok()) return err;
  return copied;
}

namespace {
// A Sink that only counts (the hash is taken by CopyData as the bytes pass).
class NullSink : public Sink {
 public:
  explicit NullSink(Progress* p) : p_(p) {}
  void WriteAsync(uint64_t, const void*, size_t len, lc::IoCallback cb) override {
    if (p_) p_->AddVerified(len);
    cb(lc::Status::Ok(), len);
  }

 private:
  Progress* p_;
};
}  // namespace

lc::Result<std::string> HashAll(Reader& r, Progress* progress) {
  Sha256 h;
  NullSink sink(progress);
  auto n = CopyData(r, sink, &h, nullptr);
  if (!n.ok()) return n.status();
  return h.HexDigest();
}

}  // namespace loom::cli
