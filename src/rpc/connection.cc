#include "rpc/connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/flush_batch.h"
#include "common/log.h"
#include "common/sync_point.h"

namespace loom::rpc {

namespace {
constexpr size_t kStagingSize = 64 * 1024;
constexpr uint32_t kLastFragment = 0x80000000u;  // RFC 5531 §11
}  // namespace

std::shared_ptr<Connection> Connection::Create(EventLoop* loop, int fd, std::string peer,
                                               Options opts, Callbacks cb) {
  return std::shared_ptr<Connection>(
      new Connection(loop, fd, std::move(peer), opts, std::move(cb)));
}

Connection::Connection(EventLoop* loop, int fd, std::string peer, Options opts, Callbacks cb)
    : loop_(loop),
      fd_(fd),
      peer_(std::move(peer)),
      opts_(opts),
      cb_(std::move(cb)),
      last_active_ms_(NowMs()),
      assembler_(opts.max_record, opts.budget) {
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Connection::~Connection() { ::close(fd_); }

void Connection::Start() {
  auto self = shared_from_this();
  loop_->Post([self] {
    if (self->closed()) return;
    Status s = self->loop_->Add(self->fd_, EPOLLIN | EPOLLRDHUP, self.get());
    if (!s.ok()) {
      LOG_WARN("register %s: %s", self->peer_.c_str(), s.ToString().c_str());
      self->closed_.store(true);
      if (self->cb_.on_close) self->cb_.on_close(self.get());
      return;
    }
    self->registered_ = true;
  });
}

void Connection::OnEvents(uint32_t events) {
  if (closed()) return;
  if (events & EPOLLOUT) {
    {
      std::lock_guard<std::mutex> l(send_mu_);
      if (flushing_) return;
      want_out_ = false;
      flushing_ = true;
    }
    UpdateInterest();
    Flush();
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) HandleRead();
}

void Connection::UpdateInterest() {
  if (!registered_ || closed()) return;
  uint32_t ev = EPOLLRDHUP;
  if (!reading_paused_) ev |= EPOLLIN;
  {
    std::lock_guard<std::mutex> l(send_mu_);
    if (want_out_) ev |= EPOLLOUT;
  }
  (void)loop_->Modify(fd_, ev, this);
}

void Connection::HandleRead() {
  std::vector<Record> recs;
  for (;;) {
    if (closed()) return;
    if (!DeliverHeld() || inflight_.load(std::memory_order_acquire) >= opts_.max_inflight) {
      if (!reading_paused_) {
        reading_paused_ = true;
        UpdateInterest();
      }
      LOOM_SYNC_POINT("Connection::HandleRead:paused");
      return;
    }
    uint8_t* direct = nullptr;
    size_t want = assembler_.DirectTarget(&direct);
    ssize_t n;
    if (want >= kStagingSize / 2) {
      // A large fragment body (a WRITE payload): read it straight into the record buffer.
      n = ::read(fd_, direct, want);
      if (n > 0) {
        last_active_ms_.store(NowMs(), std::memory_order_relaxed);
        assembler_.DirectDone(static_cast<size_t>(n), &recs);
        DeliverBatched(&recs);
        continue;
      }
    } else {
      // Small reads land in a buffer of the loop thread, shared by its connections (each read
      // is consumed before the next): an idle connection holds no receive memory.
      static thread_local std::vector<uint8_t> staging(kStagingSize);
      n = ::read(fd_, staging.data(), staging.size());
      if (n > 0) {
        last_active_ms_.store(NowMs(), std::memory_order_relaxed);
        bool ok = assembler_.Feed(staging.data(), static_cast<size_t>(n), &recs);
        DeliverBatched(&recs);
        if (!ok) {
          LOG_DEBUG("closing %s: %s", peer_.c_str(),
                    assembler_.over_budget() ? "the server's buffer budget for partial records "
                                               "is spent"
                                             : "record over the size limit");
          Close();
          return;
        }
        continue;
      }
    }
    if (n == 0) {
      Close();
      return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    if (errno == EINTR) continue;
    Close();
    return;
  }
}

void Connection::DeliverBatched(std::vector<Record>* recs) {
  if (!opts_.batch_replies || recs->size() < 2) {
    Deliver(recs);
    return;
  }
  FlushBatch batch;
  Deliver(recs);
}

// One read() may complete several records (a client pipelining small calls). Only as many
// as max_inflight allows are handed on; the rest wait in held_, in order, and reading stops
// until they are all out: admission control holds for pipelined clients too, and what is
// held is bounded by one read's bytes.
void Connection::Deliver(std::vector<Record>* recs) {
  size_t left = recs->size();
  for (Record& r : *recs) {
    --left;
    if (closed()) break;
    // A REPLY (a back channel's answer) is never held: it may be what the calls ahead of it
    // wait for (a CB_LAYOUTRECALL answer that a data move blocked on). It takes no in-flight
    // slot for long: its handler only hands it on.
    if (!r.IsReply() &&
        (!held_.empty() || inflight_.load(std::memory_order_acquire) >= opts_.max_inflight)) {
      held_.push_back(std::move(r));
      continue;
    }
    waiting_.store(static_cast<int>(left + held_.size()), std::memory_order_relaxed);
    Admit(std::move(r));
  }
  recs->clear();
  waiting_.store(static_cast<int>(held_.size()), std::memory_order_relaxed);
}

bool Connection::Alone() const {
  if (inflight_.load(std::memory_order_acquire) > 1 ||
      waiting_.load(std::memory_order_relaxed) > 0) {
    return false;
  }
  // Calls the client sent that this side has not read yet.
  int unread = 0;
  return ::ioctl(fd_, FIONREAD, &unread) == 0 && unread == 0;
}

void Connection::Admit(Record r) {
  inflight_.fetch_add(1, std::memory_order_acq_rel);
  LOOM_SYNC_POINT("Connection::Deliver:admitted");
  cb_.on_record(shared_from_this(), std::move(r));
}

bool Connection::DeliverHeld() {
  while (!held_.empty()) {
    if (closed()) {
      held_.clear();
      return true;
    }
    if (inflight_.load(std::memory_order_acquire) >= opts_.max_inflight) return false;
    Record r = std::move(held_.front());
    held_.pop_front();
    waiting_.store(static_cast<int>(held_.size()), std::memory_order_relaxed);
    Admit(std::move(r));
  }
  return true;
}

void Connection::RecordDone() { AfterDone(inflight_.fetch_sub(1, std::memory_order_acq_rel)); }

void Connection::AfterDone(int before) {
  if (before == opts_.max_inflight) {
    auto self = shared_from_this();
    loop_->Post([self] {
      if (self->closed()) return;
      // Held records first; reading resumes only when none is left.
      if (self->DeliverHeld() && self->reading_paused_) {
        self->reading_paused_ = false;
        self->UpdateInterest();
        self->HandleRead();
      }
    });
  }
}

void Connection::Send(std::unique_ptr<xdr::Encoder> msg) { Queue(std::move(msg), false); }

void Connection::SendReply(std::unique_ptr<xdr::Encoder> msg) { Queue(std::move(msg), true); }

void Connection::Queue(std::unique_ptr<xdr::Encoder> msg, bool done) {
  if (closed()) {
    if (done) RecordDone();
    return;
  }
  // Before the count drops: the idle reaper closes only connections with nothing in flight
  // and nothing sent for a while.
  last_active_ms_.store(NowMs(), std::memory_order_relaxed);
  msg->patch_u32(0, kLastFragment | static_cast<uint32_t>(msg->size() - 4));
  int before = 0;
  bool flush = false;
  {
    std::lock_guard<std::mutex> l(send_mu_);
    pending_.push_back(std::move(msg));
    // Under send_mu_: no flusher can take the reply to the socket before the count drops.
    if (done) before = inflight_.fetch_sub(1, std::memory_order_acq_rel);
    if (!flushing_ && !want_out_) flush = flushing_ = true;
  }
  if (done) AfterDone(before);
  if (!flush) return;
  // In a FlushBatch the flush (and whatever else is sent here meanwhile) waits for the batch's
  // end: one sendmsg for all of it. flushing_ stays set, so later Sends only queue.
  if (FlushBatch::Defer([self = shared_from_this()] { self->Flush(); })) return;
  Flush();
  LOOM_SYNC_POINT("Connection::Queue:flushed");
}

void Connection::Flush() {
  for (;;) {
    if (out_msg_ == out_.size()) {
      out_.clear();
      out_msg_ = out_seg_ = out_off_ = 0;
      std::vector<std::unique_ptr<xdr::Encoder>> batch;
      {
        std::lock_guard<std::mutex> l(send_mu_);
        if (pending_.empty() || closed()) {
          flushing_ = false;
          return;
        }
        batch.swap(pending_);
      }
      for (auto& e : batch) {
        OutMsg m;
        m.segs = e->Segments();
        m.enc = std::move(e);
        out_.push_back(std::move(m));
      }
    }
    bool again = false;
    if (!WriteSome(&again)) {
      {
        std::lock_guard<std::mutex> l(send_mu_);
        flushing_ = false;
      }
      Close();
      return;
    }
    if (again) {
      {
        std::lock_guard<std::mutex> l(send_mu_);
        flushing_ = false;
        want_out_ = true;
      }
      auto self = shared_from_this();
      loop_->Post([self] { self->UpdateInterest(); });
      return;
    }
  }
}

bool Connection::WriteSome(bool* again) {
  static const uint8_t kZeros[4096] = {0};
  while (out_msg_ < out_.size()) {
    // Gather memory segments (across messages) up to the next file segment.
    iovec iov[64];
    int niov = 0;
    size_t mi = out_msg_, si = out_seg_, off = out_off_;
    bool file_next = false, mapped = false;
    while (mi < out_.size() && niov < 64) {
      const auto& segs = out_[mi].segs;
      if (si == segs.size()) {
        mi++;
        si = 0;
        off = 0;
        continue;
      }
      const xdr::Segment& s = segs[si];
      // A file range goes with sendfile unless it is mapped (and no mapping faulted here).
      if (s.file != nullptr && (s.data == nullptr || unmapped_)) {
        file_next = true;
        break;
      }
      mapped |= s.file != nullptr;
      iov[niov].iov_base = const_cast<uint8_t*>(s.data) + off;
      iov[niov].iov_len = s.size - off;
      niov++;
      si++;
      off = 0;
    }
    if (niov > 0) {
      msghdr mh{};
      mh.msg_iov = iov;
      mh.msg_iovlen = niov;
      LOOM_SYNC_POINT("Connection::WriteSome:sendmsg");
      ssize_t n = ::sendmsg(fd_, &mh, MSG_NOSIGNAL | (file_next ? MSG_MORE : 0));
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EFAULT && mapped) {
          // A mapped file range past the file's end: it shrank after the reply was built.
          // TCP sends nothing of a piece it cannot read whole, so the fault may lie anywhere
          // in the next piece; from here on this connection sends file ranges with sendfile,
          // which pads a shrunk range with zeros (the record length is promised already).
          LOOM_SYNC_POINT("Connection::WriteSome:unmapped");
          unmapped_ = true;
          continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          *again = true;
          return true;
        }
        return false;
      }
      // Advance the cursor by n bytes.
      size_t left = static_cast<size_t>(n);
      while (left > 0) {
        const xdr::Segment& s = out_[out_msg_].segs[out_seg_];
        size_t avail = s.size - out_off_;
        if (left < avail) {
          out_off_ += left;
          left = 0;
        } else {
          left -= avail;
          out_seg_++;
          out_off_ = 0;
          while (out_msg_ < out_.size() && out_seg_ == out_[out_msg_].segs.size()) {
            out_[out_msg_].enc.reset();
            out_msg_++;
            out_seg_ = 0;
          }
        }
      }
      while (out_msg_ < out_.size() && out_seg_ == out_[out_msg_].segs.size()) {
        out_[out_msg_].enc.reset();
        out_msg_++;
        out_seg_ = 0;
      }
      continue;
    }
    if (!file_next) {
      // Skip over empty trailing segments.
      while (out_msg_ < out_.size() && out_seg_ == out_[out_msg_].segs.size()) {
        out_[out_msg_].enc.reset();
        out_msg_++;
        out_seg_ = 0;
      }
      continue;
    }
    // A file segment at the cursor.
    const xdr::Segment& s = out_[out_msg_].segs[out_seg_];
    size_t want = s.size - out_off_;
    ssize_t n;
    if (s.file->fd() >= 0) {
      off_t pos = static_cast<off_t>(s.offset + out_off_);
      n = ::sendfile(fd_, s.file->fd(), &pos, want);
    } else {
      n = 0;
    }
    if (n == 0) {
      // The file shrank under us: the record length is already promised, so pad with zeros.
      n = ::send(fd_, kZeros, std::min(want, sizeof kZeros), MSG_NOSIGNAL | MSG_MORE);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        *again = true;
        return true;
      }
      return false;
    }
    out_off_ += static_cast<size_t>(n);
    if (out_off_ == s.size) {
      out_seg_++;
      out_off_ = 0;
      while (out_msg_ < out_.size() && out_seg_ == out_[out_msg_].segs.size()) {
        out_[out_msg_].enc.reset();
        out_msg_++;
        out_seg_ = 0;
      }
    }
  }
  return true;
}

void Connection::SetReplySink(std::function<void(Record)> sink) {
  std::lock_guard<std::mutex> l(sink_mu_);
  reply_sink_ = std::move(sink);
}

std::function<void(Record)> Connection::reply_sink() {
  std::lock_guard<std::mutex> l(sink_mu_);
  return reply_sink_;
}

void Connection::Close() {
  // The reference comes before closed_ is published. The loop thread calls this through the
  // raw pointer epoll hands it; once another thread sees closed() it may drop what it holds
  // (an RpcClient whose call just failed), and that may be the last reference: taking it
  // after the exchange could find the connection already destroyed (bad_weak_ptr, seen in the
  // crash test). The posted CloseOnLoop then keeps it alive until it leaves epoll.
  auto self = shared_from_this();
  bool was = closed_.exchange(true, std::memory_order_acq_rel);
  if (was) return;
  LOOM_SYNC_POINT("Connection::Close:marked");
  ::shutdown(fd_, SHUT_RDWR);
  loop_->Post([self] { self->CloseOnLoop(); });
}

void Connection::CloseOnLoop() {
  if (registered_) {
    loop_->Remove(fd_);
    registered_ = false;
  }
  if (cb_.on_close) cb_.on_close(this);
  held_.clear();
  cb_.on_record = nullptr;
  SetReplySink(nullptr);
}

}  // namespace loom::rpc
