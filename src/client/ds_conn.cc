#include "client/ds_conn.h"
#include "client/session.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>

namespace loom::client::internal {

namespace {

// The longest a blocking recv or send on a data server's socket waits before its caller
// checks the call timeout and whether it should stop.
constexpr int kIoWaitMs = 250;

constexpr uint32_t kNfsProgram = 100003;
constexpr uint32_t kNfsV3 = 3;
constexpr uint32_t kProcNull = 0, kProcRead = 6, kProcWrite = 7, kProcCommit = 21;
constexpr uint32_t kFattr3Bytes = 84;   // RFC 1813 §2.5 fattr3: 21 XDR words
constexpr uint32_t kWccAttrBytes = 24;  // size, mtime, ctime
constexpr uint32_t kMaxVerifier = 400;  // RFC 5531 §8.2: opaque_auth body<400>

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

size_t Pad4(size_t n) { return (4 - (n & 3)) & 3; }

void Put32(std::vector<uint8_t>& b, uint32_t v) {
  uint8_t w[4] = {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
  b.insert(b.end(), w, w + 4);
}
void Put64(std::vector<uint8_t>& b, uint64_t v) {
  Put32(b, uint32_t(v >> 32));
  Put32(b, uint32_t(v));
}
void PutOpaque(std::vector<uint8_t>& b, const uint8_t* p, size_t n) {
  Put32(b, static_cast<uint32_t>(n));
  b.insert(b.end(), p, p + n);
  b.insert(b.end(), Pad4(n), 0);
}
uint32_t Get32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// "a.b.c.d:port" or "[v6]:port" -> a connected, blocking TCP socket.
int ConnectTo(const std::string& addr, int timeout_ms, std::string* err) {
  sockaddr_storage ss{};
  socklen_t sl = 0;
  std::string host, port;
  if (!addr.empty() && addr[0] == '[') {
    size_t e = addr.find("]:");
    if (e == std::string::npos) { *err = "bad address"; return -1; }
    host = addr.substr(1, e - 1);
    port = addr.substr(e + 2);
  } else {
    size_t c = addr.rfind(':');
    if (c == std::string::npos) { *err = "bad address"; return -1; }
    host = addr.substr(0, c);
    port = addr.substr(c + 1);
  }
  char* end = nullptr;
  unsigned long p = std::strtoul(port.c_str(), &end, 10);
  if (port.empty() || *end || p == 0 || p > 65535) { *err = "bad port"; return -1; }
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(p));
    sl = sizeof(*v4);
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(p));
    sl = sizeof(*v6);
  } else {
    *err = "bad host";
    return -1;
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) { *err = std::strerror(errno); return -1; }
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&ss), sl);
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd pf{fd, POLLOUT, 0};
    rc = ::poll(&pf, 1, std::min(timeout_ms, 10000));
    int soerr = 0;
    socklen_t l = sizeof(soerr);
    if (rc == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &l) == 0 && soerr == 0) {
      rc = 0;
    } else {
      errno = rc == 0 ? ETIMEDOUT : (soerr ? soerr : errno);
      rc = -1;
    }
  }
  if (rc != 0) {
    *err = std::strerror(errno);
    ::close(fd);
    return -1;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  // Bounded blocking: a server that stops reading (or stalls mid-reply) cannot hold a sender
  // or the receive thread for longer than this; each expiry is checked against the call timeout.
  timeval tv{0, kIoWaitMs * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return fd;
}

}  // namespace

struct DsConn::Link {
  int fd = -1;
  std::mutex send_mu;
  std::mutex mu;  // guards pending
  std::unordered_map<uint32_t, Pending> pending;
  std::atomic<bool> dead{false};  // set under mu: no new calls are registered
  std::atomic<bool> stop{false};
  std::atomic<bool> exited{false};
  std::thread thread;
  ~Link() {
    if (fd >= 0) ::close(fd);
  }
  void Kill() { ::shutdown(fd, SHUT_RDWR); }
};

// Reads RPC records off the socket piecewise (RFC 5531 §11: fragments, each behind a 4-byte
// mark), so that a payload can be received straight into its destination. Small reads (marks,
// reply headers, attributes) come out of a small buffer that one recv fills, so a READ reply
// costs one recv for its header and the first bytes of its payload, then one (or a few) for
// the rest of the payload straight into the caller's buffer; several small replies (WRITE,
// COMMIT) come in with one recv.
struct RecordReader {
  static constexpr size_t kBuf = 4096;
  int fd;
  int timeout_ms;
  const std::atomic<bool>* stop;
  uint32_t frag_left = 0;
  bool last = true;
  bool io_failed = false;  // the connection failed (rather than the reply being malformed)
  size_t bpos = 0, bend = 0;
  uint8_t buf[kBuf];

  size_t buffered() const { return bend - bpos; }

  // One recv into the empty buffer (it waits at most the socket's receive timeout, 250 ms).
  // The low-water mark goes back to 1 first (WakeAt): a small reply waits for no more.
  ssize_t Refill() {
    WakeAt(1);
    ssize_t r = ::recv(fd, buf, kBuf, 0);
    bpos = 0;
    bend = r > 0 ? static_cast<size_t>(r) : 0;
    return r;
  }

  // Waits for bytes and buffers what came. 1: there are bytes; 0: none came in time; -1: the
  // connection closed or failed.
  int Fill() {
    if (buffered() > 0) return 1;
    ssize_t r = Refill();
    if (r > 0) return 1;
    if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    return -1;
  }

  // Exactly n bytes of the stream. A stall longer than the call timeout, a close or an error
  // fails it.
  bool Raw(void* dst, size_t n) {
    auto* p = static_cast<uint8_t*>(dst);
    size_t k = std::min(n, buffered());
    if (k > 0) {
      std::memcpy(p, buf + bpos, k);
      bpos += k;
      p += k;
      n -= k;
    }
    int64_t progress = NowMs();
    bool plain = false;  // no more waits for the low-water mark in this call (WaitFor)
    while (n > 0) {
      // Large pieces go straight to their destination; small ones through the buffer, with
      // whatever follows them.
      const bool direct = n >= kBuf;
      ssize_t r;
      if (!direct) {
        r = Refill();
      } else if (n < kLowatMin || plain) {
        // A blocking recv waits for the mark's worth of bytes, so first the mark goes back to
        // 1: the few bytes left of a payload would otherwise wait for bytes that never come
        // (the receive timeout).
        WakeAt(1);
        r = ::recv(fd, p, n, 0);
      } else {
        r = ::recv(fd, p, n, MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          int w = WaitFor(n);
          if (w < 0) {
            io_failed = true;
            return false;
          }
          // The mark not reached in kLowatWaitMs: the rest of this payload is read as it
          // comes.
          if (w == 0) plain = true;
          continue;
        }
      }
      if (r > 0) {
        size_t got = static_cast<size_t>(r);
        if (!direct) {
          got = std::min(n, got);
          std::memcpy(p, buf, got);
          bpos = got;
        }
        p += got;
        n -= got;
        progress = NowMs();
        continue;
      }
      if (r == 0) {
        io_failed = true;
        return false;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        io_failed = true;
        return false;
      }
      if (stop->load() || NowMs() - progress > timeout_ms) {
        io_failed = true;
        return false;
      }
    }
    return true;
  }

  // Waits until min(bytes, kLowatMax) bytes are queued on the socket, the payload's `bytes`
  // being still to come and none of them queued now. 1: they are (or the kernel woke it
  // early, below); 0: not within kLowatWaitMs; -1: the wait itself failed.
  //
  // Why: a 1 MiB READ payload arrives over loopback in 64 KiB segments, and a blocking recv
  // woke at each one for a short copy: 5-7 recvs and as many context switches per MiB, a
  // third of libloom's CPU reading from 3 data servers (perf: finish_task_switch and the
  // wake-ups' spin unlocks, against the copy itself). Waiting for the socket's receive
  // low-water mark (SO_RCVLOWAT, socket(7)) wakes the thread once per kLowatMax instead.
  //
  // The mark must never exceed what is still to come, or the wait lasts until a timeout:
  // - a blocking recv that has copied part of what it asked for sleeps until *another*
  //   mark's worth is queued, which the rest of a payload may never make: so this wait is
  //   poll, which counts every queued byte, and everything queued after the empty check is
  //   this payload's;
  // - every blocking recv (a payload's last bytes in Raw, the next reply's header in Refill)
  //   sets the mark back to 1 first;
  // - and in case the sender stalls short of the mark (waiting for an acknowledgement the
  //   receiver's kernel delays: it acks at once only after more than one full segment), the
  //   wait is short, and after it the payload is read as it comes.
  // The kernel also wakes the poll early under receive-buffer pressure or when the window
  // it advertised is nearly used up.
  static constexpr size_t kLowatMin = 64 * 1024, kLowatMax = 256 * 1024;
  static constexpr int kLowatWaitMs = 2;
  int lowat = 1;
  int WaitFor(size_t bytes) {
    WakeAt(bytes);
    pollfd pf{fd, POLLIN, 0};
    int r = ::poll(&pf, 1, kLowatWaitMs);
    if (r < 0) return errno == EINTR ? 1 : -1;
    return r > 0 ? 1 : 0;
  }
  // Sets the mark (a setsockopt only when it changes).
  void WakeAt(size_t bytes) {
    int want = bytes >= kLowatMin ? static_cast<int>(std::min(bytes, kLowatMax)) : 1;
    if (want == lowat) return;
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &want, sizeof(want)) == 0) lowat = want;
  }
  bool Mark() {
    uint8_t m[4];
    if (!Raw(m, 4)) return false;
    uint32_t v = Get32(m);
    last = (v & 0x80000000u) != 0;
    frag_left = v & 0x7fffffffu;
    return true;
  }
  bool Begin() {
    io_failed = false;
    return Mark();
  }
  // n bytes of the record body, across fragments. False past the record's end (a malformed
  // reply) or on a transport failure.
  bool Body(void* dst, size_t n) {
    auto* p = static_cast<uint8_t*>(dst);
    while (n > 0) {
      if (frag_left == 0) {
        if (last || !Mark()) return false;
        continue;
      }
      size_t k = std::min<size_t>(n, frag_left);
      if (!Raw(p, k)) return false;
      p += k;
      n -= k;
      frag_left -= static_cast<uint32_t>(k);
    }
    return true;
  }
  bool U32(uint32_t* v) {
    uint8_t b[4];
    if (!Body(b, 4)) return false;
    *v = Get32(b);
    return true;
  }
  bool Skip(size_t n) {
    uint8_t scratch[512];
    while (n > 0) {
      size_t k = std::min(n, sizeof(scratch));
      if (!Body(scratch, k)) return false;
      n -= k;
    }
    return true;
  }
  // Whatever is left of the record (trailing bytes a reply may carry).
  bool Finish() {
    uint8_t scratch[4096];
    for (;;) {
      while (frag_left > 0) {
        size_t k = std::min<size_t>(frag_left, sizeof(scratch));
        if (!Raw(scratch, k)) return false;
        frag_left -= static_cast<uint32_t>(k);
      }
      if (last) return true;
      if (!Mark()) return false;
    }
  }
};

DsConn::DsConn(std::string address, int timeout_ms)
    : address_(std::move(address)), timeout_ms_(timeout_ms > 0 ? timeout_ms : 30000) {
  std::random_device rd;
  next_xid_.store(rd());
}

DsConn::~DsConn() {
  Close();
  Join();
}

void DsConn::Join() {
  std::vector<std::shared_ptr<Link>> all;
  {
    std::lock_guard<std::mutex> g(mu_);
    all.swap(retired_);
    if (link_) all.push_back(std::move(link_));
  }
  for (auto& l : all) {
    if (!l->thread.joinable()) continue;
    if (l->thread.get_id() == std::this_thread::get_id()) l->thread.detach();
    else l->thread.join();
  }
}

void DsConn::Close() {
  std::vector<std::shared_ptr<Link>> all;
  {
    std::lock_guard<std::mutex> g(mu_);
    closed_ = true;
    all = retired_;
    if (link_) all.push_back(link_);
  }
  for (auto& l : all) {
    l->stop = true;
    l->Kill();
  }
}

std::shared_ptr<DsConn::Link> DsConn::GetLink(Status* why) {
  std::lock_guard<std::mutex> g(mu_);
  if (closed_) {
    *why = Status(Errc::kUnavailable, "data-server connection closed: " + address_);
    return nullptr;
  }
  if (link_ && !link_->dead.load()) return link_;
  if (link_) retired_.push_back(std::move(link_));
  // Threads of dead links finish on their own; join those that have (never this thread's own).
  for (auto it = retired_.begin(); it != retired_.end();) {
    Link& l = **it;
    if (l.exited.load() && l.thread.joinable() && l.thread.get_id() != std::this_thread::get_id()) {
      l.thread.join();
      it = retired_.erase(it);
    } else {
      ++it;
    }
  }
  const int64_t now = NowMs();
  if (now < down_until_ms_) {
    *why = Status(Errc::kUnavailable, "data server " + address_ + " unreachable");
    return nullptr;
  }
  std::string err;
  int fd = ConnectTo(address_, timeout_ms_, &err);
  if (fd < 0) {
    // Fail fast for a moment: every piece of a large read would otherwise wait for its own
    // connect to a server that is down, before failing over to another mirror.
    down_until_ms_ = now + 500;
    *why = Status(Errc::kUnavailable, "cannot connect to data server " + address_ + ": " + err);
    return nullptr;
  }
  auto l = std::make_shared<Link>();
  l->fd = fd;
  l->thread = std::thread(&DsConn::ReceiveLoop, this, l);
  link_ = l;
  return l;
}

std::vector<uint8_t> DsConn::CallHeader(uint32_t xid, uint32_t proc, const DsCred& cred) {
  // RFC 5531 §9 call header with AUTH_SYS (Appendix A), after a placeholder record mark.
  static const char kMachine[] = "libloom";
  const size_t mlen = sizeof(kMachine) - 1;
  std::vector<uint8_t> h;
  h.reserve(160);
  Put32(h, 0);
  Put32(h, xid);
  Put32(h, 0);  // CALL
  Put32(h, 2);  // RPC version
  Put32(h, kNfsProgram);
  Put32(h, kNfsV3);
  Put32(h, proc);
  Put32(h, 1);  // AUTH_SYS
  Put32(h, static_cast<uint32_t>(4 + 4 + mlen + Pad4(mlen) + 4 + 4 + 4));
  Put32(h, 0);  // stamp
  PutOpaque(h, reinterpret_cast<const uint8_t*>(kMachine), mlen);
  Put32(h, cred.uid);
  Put32(h, cred.gid);
  Put32(h, 0);  // no supplementary groups: the synthetic ids are all a data file admits
  Put32(h, 0);  // verifier: AUTH_NONE
  Put32(h, 0);
  return h;
}

void DsConn::Read(const DsCred& cred, const Bytes& fh, uint64_t off, uint32_t count, void* dst,
                  DsCallback cb) {
  auto h = CallHeader(next_xid_++, kProcRead, cred);
  PutOpaque(h, fh.data, fh.size);
  Put64(h, off);
  Put32(h, count);
  Pending p;
  p.proc = kProcRead;
  p.dst = static_cast<uint8_t*>(dst);
  p.cap = count;
  p.cb = std::move(cb);
  Submit(kProcRead, std::move(h), nullptr, 0, std::move(p));
}

void DsConn::Write(const DsCred& cred, const Bytes& fh, uint64_t off, const void* src,
                   uint32_t count, uint32_t stable, DsCallback cb) {
  auto h = CallHeader(next_xid_++, kProcWrite, cred);
  PutOpaque(h, fh.data, fh.size);
  Put64(h, off);
  Put32(h, count);
  Put32(h, stable);
  Put32(h, count);  // the data's opaque length; the bytes follow from the caller's buffer
  Pending p;
  p.proc = kProcWrite;
  p.cb = std::move(cb);
  Submit(kProcWrite, std::move(h), src, count, std::move(p));
}

void DsConn::Commit(const DsCred& cred, const Bytes& fh, DsCallback cb) {
  auto h = CallHeader(next_xid_++, kProcCommit, cred);
  PutOpaque(h, fh.data, fh.size);
  Put64(h, 0);  // offset 0, count 0: the whole file (RFC 1813 §3.3.21)
  Put32(h, 0);
  Pending p;
  p.proc = kProcCommit;
  p.cb = std::move(cb);
  Submit(kProcCommit, std::move(h), nullptr, 0, std::move(p));
}

void DsConn::Null(DsCallback cb) {
  auto h = CallHeader(next_xid_++, kProcNull, DsCred{});
  Pending p;
  p.proc = kProcNull;
  p.cb = std::move(cb);
  Submit(kProcNull, std::move(h), nullptr, 0, std::move(p));
}

void DsConn::Finish(Pending& p, DsReply& r) {
  inflight_.fetch_sub(1, std::memory_order_relaxed);
  if (p.cb) p.cb(r);
}

void DsConn::Submit(uint32_t proc, std::vector<uint8_t> header, const void* payload, uint32_t len,
                    Pending p) {
  inflight_.fetch_add(1, std::memory_order_relaxed);
  Status why;
  std::shared_ptr<Link> l = GetLink(&why);
  if (!l) {
    DsReply r;
    r.transport = why;
    Finish(p, r);
    return;
  }
  const uint32_t xid = Get32(header.data() + 4);
  p.deadline_ms = NowMs() + timeout_ms_;
  {
    std::unique_lock<std::mutex> g(l->mu);
    if (l->dead.load()) {
      g.unlock();
      DsReply r;
      r.transport = Status(Errc::kUnavailable, "connection to data server " + address_ + " lost");
      Finish(p, r);
      return;
    }
    l->pending.emplace(xid, std::move(p));
  }
  const size_t pad = Pad4(len);
  const uint32_t rec = static_cast<uint32_t>(header.size() - 4 + len + pad);
  header[0] = uint8_t(0x80 | (rec >> 24));  // one fragment, the last (RFC 5531 §11)
  header[1] = uint8_t(rec >> 16);
  header[2] = uint8_t(rec >> 8);
  header[3] = uint8_t(rec);
  static const uint8_t kZero[4] = {0, 0, 0, 0};
  iovec iov[3];
  int n = 0;
  iov[n++] = {header.data(), header.size()};
  if (len) iov[n++] = {const_cast<void*>(payload), len};
  if (pad) iov[n++] = {const_cast<uint8_t*>(kZero), pad};
  bool ok = true;
  {
    std::lock_guard<std::mutex> g(l->send_mu);
    iovec* v = iov;
    int64_t progress = NowMs();
    while (n > 0) {
      msghdr m{};
      m.msg_iov = v;
      m.msg_iovlen = n;
      ssize_t w = ::sendmsg(l->fd, &m, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if ((errno == EAGAIN || errno == EWOULDBLOCK) && !l->stop.load() &&
            NowMs() - progress <= timeout_ms_)
          continue;
        ok = false;
        break;
      }
      progress = NowMs();
      size_t done = static_cast<size_t>(w);
      while (n > 0 && done >= v->iov_len) {
        done -= v->iov_len;
        v++;
        n--;
      }
      if (n > 0) {
        v->iov_base = static_cast<uint8_t*>(v->iov_base) + done;
        v->iov_len -= done;
      }
    }
  }
  // A half-sent record leaves the stream unusable: drop the connection; the receive thread
  // then fails every call on it, this one included.
  if (!ok) {
    {
      std::lock_guard<std::mutex> g(l->mu);
      l->dead = true;
    }
    l->Kill();
  }
  (void)proc;
}

void DsConn::Sweep(Link& l, int64_t now) {
  std::vector<Pending> expired;
  {
    std::lock_guard<std::mutex> g(l.mu);
    for (auto it = l.pending.begin(); it != l.pending.end();) {
      if (it->second.deadline_ms <= now) {
        expired.push_back(std::move(it->second));
        it = l.pending.erase(it);
      } else {
        ++it;
      }
    }
  }
  // A late reply to one of these finds no call and is skipped, so its buffer is never touched.
  for (auto& p : expired) {
    DsReply r;
    r.transport = Status(Errc::kTimeout, "data server " + address_ + " did not answer in time");
    Finish(p, r);
  }
}

void DsConn::FailAll(Link& l, const Status& why) {
  std::unordered_map<uint32_t, Pending> all;
  {
    std::lock_guard<std::mutex> g(l.mu);
    l.dead = true;
    all.swap(l.pending);
  }
  for (auto& [xid, p] : all) {
    DsReply r;
    r.transport = why;
    Finish(p, r);
  }
}

void DsConn::ReceiveLoop(std::shared_ptr<Link> link) {
  MarkLibraryThread();
  Link& l = *link;
  auto rd = std::make_unique<RecordReader>();
  rd->fd = l.fd;
  rd->timeout_ms = timeout_ms_;
  rd->stop = &l.stop;
  int64_t last_sweep = NowMs();
  for (;;) {
    // Waits in recv (SO_RCVTIMEO: 250 ms) rather than poll then recv: one call per reply.
    int got = rd->Fill();
    if (l.stop.load()) break;
    int64_t now = NowMs();
    if (now - last_sweep >= 250) {
      Sweep(l, now);
      last_sweep = now;
    }
    if (got == 0) continue;
    if (got < 0 || !ReadReply(l, *rd)) break;
  }
  l.Kill();
  FailAll(l, Status(Errc::kUnavailable, "connection to data server " + address_ + " lost"));
  l.exited = true;
}

bool DsConn::ReadReply(Link& l, RecordReader& rd) {
  if (!rd.Begin()) return false;
  uint8_t h[20];
  if (!rd.Body(h, sizeof(h))) return false;
  const uint32_t xid = Get32(h), mtype = Get32(h + 4), rstat = Get32(h + 8);
  if (mtype != 1) return false;  // not a REPLY: the stream is not what we think it is
  uint32_t astat = 0;
  if (rstat == 0) {  // MSG_ACCEPTED: verifier, then accept_stat (RFC 5531 §9)
    const uint32_t vlen = Get32(h + 16);
    if (vlen > kMaxVerifier || !rd.Skip(vlen + Pad4(vlen)) || !rd.U32(&astat)) return false;
  }
  Pending p;
  {
    std::lock_guard<std::mutex> g(l.mu);
    auto it = l.pending.find(xid);
    if (it == l.pending.end()) return rd.Finish();  // timed out earlier, or not ours
    p = std::move(it->second);
    l.pending.erase(it);
  }
  DsReply r;
  bool ok = true;
  if (rstat != 0) {
    r.transport = Status(Errc::kInternal, "data server " + address_ + " denied the call");
  } else if (astat != 0) {
    r.transport = Status(Errc::kInternal, "data server " + address_ + " rejected the call (accept_stat " +
                                              std::to_string(astat) + ")");
  } else if (p.proc != kProcNull) {
    uint32_t follows = 0;
    ok = rd.U32(&r.nfs_status);
    if (ok && (p.proc == kProcWrite || p.proc == kProcCommit)) {
      // wcc_data: pre_op_attr, then post_op_attr.
      ok = rd.U32(&follows) && (follows == 0 || rd.Skip(kWccAttrBytes));
    }
    ok = ok && rd.U32(&follows) && (follows == 0 || rd.Skip(kFattr3Bytes));
    if (ok && r.nfs_status == 0) {
      if (p.proc == kProcRead) {
        uint32_t count = 0, eof = 0, len = 0;
        ok = rd.U32(&count) && rd.U32(&eof) && rd.U32(&len) && eof <= 1 && len == count &&
             len <= p.cap;
        // The payload goes from the socket into the caller's buffer, nowhere else.
        ok = ok && rd.Body(p.dst, len) && rd.Skip(Pad4(len));
        r.count = len;
        r.eof = eof != 0;
      } else if (p.proc == kProcWrite) {
        ok = rd.U32(&r.count) && rd.U32(&r.committed) && rd.Body(r.verf, 8);
      } else {
        ok = rd.Body(r.verf, 8);
      }
    }
  }
  ok = ok && rd.Finish();
  if (!ok) {
    // The stream is lost: no new call may join it, even one this callback makes.
    {
      std::lock_guard<std::mutex> g(l.mu);
      l.dead = true;
    }
    r = DsReply();
    r.transport = rd.io_failed
                      ? Status(Errc::kUnavailable, "connection to data server " + address_ + " lost mid-reply")
                      : Status(Errc::kInternal, "malformed reply from data server " + address_);
  }
  Finish(p, r);
  return ok;
}

DsPool::DsPool(std::string address, uint32_t connections, int timeout_ms)
    : address_(std::move(address)) {
  if (connections == 0) connections = 1;
  for (uint32_t i = 0; i < connections; i++)
    conns_.push_back(std::make_unique<DsConn>(address_, timeout_ms));
}

DsConn& DsPool::Pick() {
  DsConn* best = conns_[0].get();
  for (auto& c : conns_)
    if (c->inflight() < best->inflight()) best = c.get();
  return *best;
}

void DsPool::Close() {
  for (auto& c : conns_) c->Close();
}

void DsPool::Join() {
  for (auto& c : conns_) c->Join();
}

}  // namespace loom::client::internal
