#include "prefetcher.h"

#include <algorithm>

namespace loom::python {

using client::Errc;
using client::File;

// One item in the window [next_out_, next_open_).
struct Prefetcher::Slot {
  enum class State { kOpening, kOpened, kReading, kDone };
  State state = State::kOpening;
  std::shared_ptr<File> file;
  uint64_t off = 0;
  size_t len = 0;       // bytes to read (known once opened)
  size_t reserved = 0;  // what it counts against the budget
  size_t pieces_left = 0;
  size_t eof_at = 0;    // the first byte a short piece did not get
  PrefetchBuffer buf;
  Status status;
};

Prefetcher::Prefetcher(std::shared_ptr<client::Client> client, std::vector<PrefetchItem> items,
                       PrefetchOptions opts)
    : client_(std::move(client)), items_(std::move(items)), opts_(opts) {
  opts_.max_ahead = std::max<size_t>(opts_.max_ahead, 1);
  opts_.piece_bytes = std::max<size_t>(opts_.piece_bytes, 4096);
  stats_.items = items_.size();
  stats_.budget_bytes = opts_.budget_bytes;
  int n = std::max(opts_.open_threads, 1);
  for (int i = 0; i < n; ++i) openers_.emplace_back([this] { OpenerLoop(); });
}

Prefetcher::~Prefetcher() { Close(); }

void Prefetcher::OpenerLoop() {
  std::unique_lock<std::mutex> g(mu_);
  for (;;) {
    cv_.wait(g, [&] {
      return stopping_ || !to_close_.empty() ||
             (next_open_ < items_.size() && next_open_ < next_out_ + opts_.max_ahead);
    });
    if (!to_close_.empty()) {
      auto [path, f] = std::move(to_close_.front());
      to_close_.pop_front();
      ++busy_[path];
      g.unlock();
      // A read-only file: nothing to flush, so a failed CLOSE loses nothing the consumer
      // could act on (the server drops the state with the lease).
      (void)f->Close();
      f.reset();
      g.lock();
      if (--busy_[path] == 0) busy_.erase(path);
      cv_.notify_all();
      continue;
    }
    if (stopping_) return;
    const size_t i = next_open_++;
    slots_[i] = std::make_unique<Slot>();
    const PrefetchItem& item = items_[i];
    Result<std::shared_ptr<File>> opened = Acquire(g, item.path);
    std::shared_ptr<File> f;
    Status st;
    if (opened.ok()) {
      f = std::move(*opened);
    } else {
      st = opened.status();
    }
    Slot& s = *slots_[i];
    if (f) {
      uint64_t size = f->size();
      s.file = f;
      s.off = item.offset;
      if (item.length == PrefetchItem::kToEnd) {
        s.len = item.offset >= size ? 0 : static_cast<size_t>(size - item.offset);
      } else {
        s.len = static_cast<size_t>(item.length);
      }
      s.state = Slot::State::kOpened;
    } else {
      s.status = st;
      s.state = Slot::State::kDone;
    }
    std::vector<PendingRead> reads = TakeIssuable();
    cv_.notify_all();
    if (!reads.empty()) {
      g.unlock();
      StartReads(std::move(reads));
      g.lock();
    }
  }
}

Result<std::shared_ptr<File>> Prefetcher::Acquire(std::unique_lock<std::mutex>& g,
                                                  const std::string& path) {
  for (;;) {
    if (auto o = open_.find(path); o != open_.end()) {
      ++o->second.users;
      return o->second.file;
    }
    // Waiting to be closed: take it back instead.
    for (auto q = to_close_.begin(); q != to_close_.end(); ++q) {
      if (q->first == path) {
        std::shared_ptr<File> f = std::move(q->second);
        to_close_.erase(q);
        open_[path] = OpenFile{f, 1};
        return f;
      }
    }
    if (stopping_) return Status(Errc::kInvalid, "the prefetcher is closed");
    if (busy_.count(path) == 0) break;
    cv_.wait(g);  // another opener is opening or closing this path
  }
  ++busy_[path];
  g.unlock();
  client::OpenFlags flags;  // read-only
  auto r = client_->Open(path, flags);
  g.lock();
  if (--busy_[path] == 0) busy_.erase(path);
  ++stats_.opens;
  cv_.notify_all();
  if (!r.ok()) return r.status();
  open_[path] = OpenFile{*r, 1};
  return std::move(*r);
}

std::vector<Prefetcher::PendingRead> Prefetcher::TakeIssuable() {
  std::vector<PendingRead> out;
  while (!stopping_ && next_issue_ < next_open_) {
    Slot& s = *slots_.at(next_issue_);
    if (s.state == Slot::State::kOpening) break;
    if (s.state == Slot::State::kOpened) {
      // Strictly in order: the item needed first gets the budget first.
      if (held_ > 0 && held_ + s.len > opts_.budget_bytes) break;
      held_ += s.len;
      s.reserved = s.len;
      stats_.peak_held_bytes = std::max(stats_.peak_held_bytes, held_);
      if (s.len == 0) {
        s.state = Slot::State::kDone;
        s.file.reset();
        ReleaseFile(items_[next_issue_].path);
      } else {
        s.buf.data.reset(new char[s.len]);
        s.eof_at = s.len;
        s.state = Slot::State::kReading;
        for (size_t p = 0; p < s.len; p += opts_.piece_bytes) {
          size_t n = std::min(opts_.piece_bytes, s.len - p);
          out.push_back(PendingRead{s.file, next_issue_, s.off + p, s.buf.data.get() + p, n, p});
          ++s.pieces_left;
          ++inflight_;
        }
        stats_.peak_reads_in_flight = std::max(stats_.peak_reads_in_flight, inflight_);
      }
    }
    ++next_issue_;  // kDone here: the open failed, nothing to read
  }
  return out;
}

void Prefetcher::StartReads(std::vector<PendingRead> reads) {
  for (PendingRead& r : reads) {
    size_t index = r.index, piece_off = r.piece_off, len = r.len;
    r.file->ReadAsync(r.off, r.buf, r.len, [this, index, piece_off, len](Status st, size_t got) {
      OnRead(index, piece_off, len, std::move(st), got);
    });
  }
}

void Prefetcher::OnRead(size_t index, size_t piece_off, size_t want, Status st, size_t got) {
  std::lock_guard<std::mutex> g(mu_);
  --inflight_;
  Slot& s = *slots_.at(index);
  if (!st.ok() && s.status.ok()) s.status = std::move(st);
  if (got < want) s.eof_at = std::min(s.eof_at, piece_off + got);  // the file ends there
  if (--s.pieces_left == 0) {
    s.state = Slot::State::kDone;
    s.buf.size = s.status.ok() ? s.eof_at : 0;
    s.file.reset();
    ReleaseFile(items_[index].path);
  }
  cv_.notify_all();
}

void Prefetcher::ReleaseFile(const std::string& path) {
  auto o = open_.find(path);
  if (o == open_.end() || --o->second.users > 0) return;
  to_close_.emplace_back(path, std::move(o->second.file));
  open_.erase(o);
  cv_.notify_all();
}

std::optional<Result<PrefetchBuffer>> Prefetcher::Next() {
  std::unique_lock<std::mutex> g(mu_);
  if (next_out_ >= items_.size()) return std::nullopt;
  Slot* s = nullptr;
  cv_.wait(g, [&] {
    auto it = slots_.find(next_out_);
    s = it == slots_.end() ? nullptr : it->second.get();
    return stopping_ || (s && s->state == Slot::State::kDone);
  });
  if (!s || s->state != Slot::State::kDone) {
    return Result<PrefetchBuffer>(Status(Errc::kInvalid, "the prefetcher is closed"));
  }
  std::unique_ptr<Slot> slot = std::move(slots_[next_out_]);
  slots_.erase(next_out_);
  held_ -= slot->reserved;
  ++next_out_;
  next_issue_ = std::max(next_issue_, next_out_);  // a failed open is never issued
  ++stats_.delivered;
  if (slot->status.ok()) stats_.bytes_read += slot->buf.size;
  std::vector<PendingRead> reads = TakeIssuable();
  cv_.notify_all();  // the window moved: openers may go on
  g.unlock();
  StartReads(std::move(reads));
  if (!slot->status.ok()) return Result<PrefetchBuffer>(slot->status);
  return Result<PrefetchBuffer>(std::move(slot->buf));
}

void Prefetcher::Close() {
  {
    std::unique_lock<std::mutex> g(mu_);
    if (closed_) return;
    closed_ = stopping_ = true;
    cv_.notify_all();
    // The reads in flight write into buffers this object owns.
    cv_.wait(g, [&] { return inflight_ == 0; });
  }
  for (std::thread& t : openers_) t.join();
  openers_.clear();
  std::vector<std::shared_ptr<File>> files;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (auto& [path, o] : open_) files.push_back(std::move(o.file));
    for (auto& [path, f] : to_close_) files.push_back(std::move(f));
    open_.clear();
    to_close_.clear();
    slots_.clear();
    held_ = 0;
  }
  for (auto& f : files) (void)f->Close();
}

PrefetchStats Prefetcher::stats() const {
  std::lock_guard<std::mutex> g(mu_);
  PrefetchStats s = stats_;
  s.held_bytes = held_;
  s.reads_in_flight = inflight_;
  return s;
}

}  // namespace loom::python
