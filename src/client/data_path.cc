#include "client/data_path.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <future>
#include <list>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include "client/ds_conn.h"
#include "client/layout.h"
#include "rpc/event_loop.h"

namespace loom::client::internal {

namespace {

using Verf = std::array<uint8_t, 8>;
// Marks a data file that got two different write verifiers for one extent: its server
// restarted in between, so the extent is resent whatever COMMIT says.
constexpr Verf kMixedVerf = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};

int64_t NowMs() { return rpc::NowMs(); }

void GrowSize(FileState& f, uint64_t end) {
  uint64_t cur = f.size.load();
  while (cur < end && !f.size.compare_exchange_weak(cur, end)) {
  }
}

// Waits for n callbacks.
class Latch {
 public:
  explicit Latch(size_t n) : n_(n) {}
  void Done() {
    std::lock_guard<std::mutex> g(mu_);
    if (--n_ == 0) cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> g(mu_);
    cv_.wait(g, [&] { return n_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t n_;
};

// A data-server failure as a public Status.
Status DsStatus(const DsReply& r, const std::string& path, const std::string& addr) {
  if (!r.transport.ok())
    return Status(r.transport.code(), path + ": " + r.transport.message());
  Status s = FromNfs4(static_cast<int>(r.nfs_status), path + " (data server " + addr + ")");
  if (s.code() == Errc::kStale) return Status(Errc::kIo, s.message(), s.nfs_status());
  return s;
}

// Errors that no other mirror or layout can cure: the write fails with them.
bool FinalWriteError(uint32_t nfs3) {
  switch (nfs3) {
    case 27:  // FBIG
    case 28:  // NOSPC
    case 30:  // ROFS
    case 69:  // DQUOT
      return true;
    default:
      return false;
  }
}

// Splits [off, off+len) at stripe-unit boundaries and at `max_io`.
template <typename Fn>
void ForEachPiece(uint64_t su, size_t stripes, uint64_t off, size_t len, uint32_t max_io, Fn fn) {
  size_t pos = 0;
  while (pos < len) {
    const uint64_t fo = off + pos;
    uint64_t n = std::min<uint64_t>(len - pos, max_io);
    if (stripes > 1 && su) n = std::min<uint64_t>(n, su - fo % su);
    const size_t s = stripes > 1 && su ? static_cast<size_t>((fo / su) % stripes) : 0;
    fn(s, fo, pos, static_cast<uint32_t>(n));
    pos += n;
  }
}

uint32_t MaxIo(const Layout& l, bool write) {
  uint32_t m = UINT32_MAX;
  for (const auto& mir : l.mirrors)
    for (const auto& d : mir) m = std::min(m, write ? d.wsize : d.rsize);
  return std::max<uint32_t>(m, 4096);
}

}  // namespace

// Bytes written UNSTABLE and not yet known to be stable everywhere (RFC 1813 §3.3.7: a
// server that restarts between WRITE and COMMIT loses them; the verifier tells).
struct Extent {
  uint64_t off = 0;
  size_t len = 0;
  std::shared_ptr<Buffer> copy;  // null when retention is off
  bool done = false;             // every write of it has answered
  std::map<std::string, Verf> verfs;  // data file key -> verifier its WRITEs returned
};

// A data file this client wrote UNSTABLE, with where its stripe sits.
struct WrittenFile {
  DataFile df;
  size_t stripe = 0, stripes = 1;
  uint64_t stripe_unit = 0;
};

struct FileCtx {
  std::mutex mu;  // guards everything below but fetch_mu
  std::shared_ptr<const Layout> layout;
  bool none = false;  // no layout: through the MDS until retry_ms (or a new epoch)
  int64_t retry_ms = 0;
  uint64_t none_epoch = 0;
  bool no_mds_io = false;  // the last layout said FF_FLAGS_NO_IO_THRU_MDS
  std::vector<IoError> errors;  // not yet reported (NFSv4.1: LAYOUTRETURN carries them)
  std::set<std::pair<uint64_t, DeviceId>> reported;  // (layout serial, device)
  std::list<std::shared_ptr<Extent>> extents;
  size_t retained = 0;
  std::map<std::string, WrittenFile> written;
  uint64_t ds_end = 0;  // end of bytes written to data servers since the last LAYOUTCOMMIT
  std::shared_ptr<const Layout> commit_layout;  // the layout those writes used
  bool mds_unstable = false;
  std::mutex fetch_mu;  // one LAYOUTGET/LAYOUTRETURN of the file at a time
};

struct IoOp {
  std::shared_ptr<FileState> f;
  std::shared_ptr<FileCtx> c;
  uint64_t off = 0;
  uint8_t* buf = nullptr;
  size_t len = 0;
  IoCallback cb;
  std::atomic<size_t> pending{0};
  std::atomic<uint64_t> end{0};  // reads: bytes up to the first end of file seen
  std::mutex mu;
  Status status;
  std::vector<std::pair<uint64_t, uint32_t>> failed;  // writes: pieces to redo (offset, length)
  std::shared_ptr<Extent> ext;
  std::shared_ptr<const Layout> layout;
  void Fail(const Status& s) {
    std::lock_guard<std::mutex> g(mu);
    if (status.ok()) status = s;
  }
};
using OpPtr = std::shared_ptr<IoOp>;

struct DataPath::Impl {
  Impl(Session* s, const Options& o, Counters* k)
      : session(s), opts(o), counters(k), layouts(s, o, k), workers(std::make_unique<rpc::WorkerPool>(4)) {}
  ~Impl() {
    layouts.CloseAll();  // calls in flight fail; new ones fail at once
    layouts.JoinAll();   // no data-server callback runs after this
    {
      std::lock_guard<std::mutex> g(defer_mu);
      closing = true;
    }
    workers.reset();  // runs what is queued
    layouts.JoinAll();  // and the threads of connections those tasks opened
  }

  Session* const session;
  const Options opts;
  Counters* const counters;
  Layouts layouts;
  std::mutex defer_mu;
  bool closing = false;
  std::unique_ptr<rpc::WorkerPool> workers;
  struct Shard {
    std::mutex mu;
    std::unordered_map<const FileState*, std::shared_ptr<FileCtx>> files;
  };
  std::array<Shard, 32> shards;

  // --- files and layouts
  Shard& ShardOf(const FileState* f) { return shards[(reinterpret_cast<uintptr_t>(f) >> 6) % shards.size()]; }
  std::shared_ptr<FileCtx> Ctx(const FileState* f, bool create = true);
  std::shared_ptr<const Layout> Current(FileCtx& c, bool* need_fetch);
  std::shared_ptr<const Layout> Refresh(FileCtx& c, const FileState& f, const Layout* failed);
  void Defer(std::function<void()> fn);
  void NoteError(const OpPtr& op, const Layout& l, const DataFile& df, uint64_t off, uint64_t len,
                 const DsReply& r, nfs_opnum4 opnum);
  void NoteError(FileCtx& c, const FileState& f, const Layout& l, const DataFile& df, uint64_t off,
                 uint64_t len, const DsReply& r, nfs_opnum4 opnum);

  // --- reads
  void StartRead(const OpPtr& op, std::shared_ptr<const Layout> l);
  void ReadPiece(const OpPtr& op, std::shared_ptr<const Layout> l, uint64_t fo, uint8_t* dst, uint32_t n,
                 size_t m0, size_t tried, int round);
  void RetryReadPiece(const OpPtr& op, std::shared_ptr<const Layout> failed, uint64_t fo, uint8_t* dst,
                      uint32_t n, int round, Status last);
  void ReadDone(const OpPtr& op);
  void MdsRead(const OpPtr& op);
  void MdsReadChunk(const OpPtr& op, uint64_t fo, uint8_t* dst, uint32_t n);

  // --- writes
  void StartWrite(const OpPtr& op, std::shared_ptr<const Layout> l);
  void WritePiece(const OpPtr& op, std::shared_ptr<const Layout> l, size_t m, uint64_t fo,
                  const uint8_t* src, uint32_t n);
  void WriteDone(const OpPtr& op);
  void RedoWrite(const OpPtr& op);
  void MdsWrite(const OpPtr& op);
  void MdsWriteChunk(const OpPtr& op, uint64_t fo, const uint8_t* src, uint32_t n);
  Status MdsWriteSync(const FileState& f, uint64_t off, const uint8_t* src, size_t len);
  // FILE_SYNC to every mirror of `l`; false with *err on a failure (reported).
  bool WriteStable(FileCtx& c, const FileState& f, const Layout& l, uint64_t off, const uint8_t* src,
                   size_t len, Status* err);
  // Extents (with their copies) onto the layout the MDS gives now, or through the MDS.
  Status Rewrite(FileCtx& c, const FileState& f, const std::vector<std::shared_ptr<Extent>>& exts,
                 const Layout* failed);
  bool OverBudget(FileCtx& c, size_t len);

  // --- sync
  Status CommitDs(FileCtx& c, const FileState& f);
  Status SyncImpl(FileCtx& c, FileState& f);
};

// ------------------------------------------------------------------ files and layouts

std::shared_ptr<FileCtx> DataPath::Impl::Ctx(const FileState* f, bool create) {
  Shard& s = ShardOf(f);
  std::lock_guard<std::mutex> g(s.mu);
  auto it = s.files.find(f);
  if (it != s.files.end()) return it->second;
  if (!create) return nullptr;
  auto c = std::make_shared<FileCtx>();
  s.files.emplace(f, c);
  return c;
}

void DataPath::Impl::Defer(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> g(defer_mu);
    if (!closing) {
      workers->Submit(std::move(fn));
      return;
    }
  }
  fn();
}

std::shared_ptr<const Layout> DataPath::Impl::Current(FileCtx& c, bool* need_fetch) {
  const uint64_t epoch = session->epoch();
  std::lock_guard<std::mutex> g(c.mu);
  *need_fetch = false;
  if (c.layout && c.layout->epoch == epoch) return c.layout;
  if (!c.layout && c.none && c.none_epoch == epoch && NowMs() < c.retry_ms) return nullptr;
  *need_fetch = true;
  return nullptr;
}

std::shared_ptr<const Layout> DataPath::Impl::Refresh(FileCtx& c, const FileState& f, const Layout* failed) {
  std::lock_guard<std::mutex> fg(c.fetch_mu);
  const uint64_t epoch = session->epoch();
  std::shared_ptr<const Layout> old;
  std::vector<IoError> errors;
  {
    std::lock_guard<std::mutex> g(c.mu);
    if (c.layout && c.layout->epoch == epoch && c.layout.get() != failed) return c.layout;
    if (!c.layout && c.none && c.none_epoch == epoch && NowMs() < c.retry_ms) return nullptr;
    old = std::move(c.layout);
    errors.swap(c.errors);
  }
  // The old layout goes back first (with what went wrong): the MDS recalls layouts when it
  // drops a mirror, and a recall waits for every holder, this client included.
  if (old && old->epoch == epoch) (void)layouts.Return(f, *old, errors);
  const layoutiomode4 mode = (f.share_access & OPEN4_SHARE_ACCESS_WRITE) ? LAYOUTIOMODE4_RW : LAYOUTIOMODE4_READ;
  auto g = layouts.Get(f, mode);
  std::lock_guard<std::mutex> lg(c.mu);
  if (g.ok() && g->layout) {
    c.layout = g->layout;
    c.none = false;
    c.no_mds_io = (g->layout->flags & FF_FLAGS_NO_IO_THRU_MDS) != 0;
    return c.layout;
  }
  // None now: through the MDS for a while. A refusal that names a passing state (a recall
  // in progress, TRYLATER) is asked again soon; LAYOUTUNAVAILABLE (loom-mds says it after
  // repeated data-server errors, for a minute) later.
  c.none = true;
  c.none_epoch = epoch;
  const bool soon = !g.ok() || g->refused == NFS4ERR_LAYOUTTRYLATER || g->refused == NFS4ERR_RECALLCONFLICT;
  c.retry_ms = NowMs() + (soon ? 1000 : 10000);
  return nullptr;
}

void DataPath::Impl::NoteError(const OpPtr& op, const Layout& l, const DataFile& df, uint64_t off,
                               uint64_t len, const DsReply& r, nfs_opnum4 opnum) {
  NoteError(*op->c, *op->f, l, df, off, len, r, opnum);
}

void DataPath::Impl::NoteError(FileCtx& c, const FileState& f, const Layout& l, const DataFile& df,
                               uint64_t off, uint64_t len, const DsReply& r, nfs_opnum4 opnum) {
  counters->ds_errors++;
  IoError e;
  e.offset = off;
  e.length = len;
  e.deviceid = df.deviceid;
  e.status = ReportedStatus(r);
  e.op = opnum;
  // One report per data server and layout: loom-mds stops granting layouts of a file after a
  // few reports (the Linux client would otherwise loop), and one says all there is to say.
  bool first;
  const bool v42 = session->minor_version() >= 2;
  {
    std::lock_guard<std::mutex> g(c.mu);
    first = c.reported.insert({l.serial, df.deviceid}).second;
    if (first && !v42 && c.errors.size() < 64) c.errors.push_back(e);
  }
  if (!r.transport.ok()) layouts.ForgetDevice(df.deviceid);  // its address may have changed
  if (first && v42) layouts.ReportAsync(f, l, e);
}

// ------------------------------------------------------------------ reads

void DataPath::Impl::StartRead(const OpPtr& op, std::shared_ptr<const Layout> l) {
  const uint32_t max_io = MaxIo(*l, false);
  const size_t mirrors = l->mirrors.size();
  std::vector<std::tuple<uint64_t, size_t, uint32_t>> pieces;
  ForEachPiece(l->stripe_unit, l->stripes(), op->off, op->len, max_io,
               [&](size_t, uint64_t fo, size_t pos, uint32_t n) { pieces.emplace_back(fo, pos, n); });
  op->pending = pieces.size();
  for (const auto& [fo, pos, n] : pieces) {
    // Mirrors take turns by offset, so one large read spreads over all of them.
    const size_t m0 = static_cast<size_t>((fo / max_io) % mirrors);
    ReadPiece(op, l, fo, op->buf + pos, n, m0, 0, 0);
  }
}

void DataPath::Impl::ReadPiece(const OpPtr& op, std::shared_ptr<const Layout> l, uint64_t fo, uint8_t* dst,
                               uint32_t n, size_t m0, size_t tried, int round) {
  const size_t m = (m0 + tried) % l->mirrors.size();
  const DataFile& df = l->mirrors[m][l->StripeOf(fo)];
  df.pool->Pick().Read(df.cred, df.fh, fo, n, dst, [this, op, l, fo, dst, n, m0, m, tried, round, &df](const DsReply& r) {
    if (r.ok()) {
      counters->ds_read_bytes += r.count;
      if (tried > 0) counters->read_failovers++;
      if (r.count < n) {
        if (!r.eof && r.count > 0) {
          // A short read inside the data file: ask for the rest from the same mirror.
          return ReadPiece(op, l, fo + r.count, dst + r.count, n - r.count, m, 0, round);
        }
        // The data file ends before the piece does, inside the file: a hole (sparse
        // striping leaves data files short), which reads as zeros.
        std::memset(dst + r.count, 0, n - r.count);
      }
      return ReadDone(op);
    }
    NoteError(op, *l, df, fo, n, r, OP_READ);
    if (tried + 1 < l->mirrors.size()) return ReadPiece(op, l, fo, dst, n, m0, tried + 1, round);
    // Every mirror failed: perhaps fenced (new ids in a new layout) or a server down that
    // the MDS leaves out of the next layout.
    Status last = DsStatus(r, op->f->path, df.address);
    Defer([this, op, l, fo, dst, n, round, last] { RetryReadPiece(op, l, fo, dst, n, round + 1, last); });
  });
}

void DataPath::Impl::RetryReadPiece(const OpPtr& op, std::shared_ptr<const Layout> failed, uint64_t fo,
                                    uint8_t* dst, uint32_t n, int round, Status last) {
  if (round > 4) {
    op->Fail(last);
    return ReadDone(op);
  }
  if (round > 1) std::this_thread::sleep_for(std::chrono::milliseconds(100 << std::min(round, 4)));
  auto nl = Refresh(*op->c, *op->f, failed.get());
  if (!nl) {
    bool no_mds;
    {
      std::lock_guard<std::mutex> g(op->c->mu);
      no_mds = op->c->no_mds_io;
    }
    if (no_mds) {
      op->Fail(Status(Errc::kUnavailable, op->f->path + ": no data server answers and the layout forbids I/O through the metadata server"));
      return ReadDone(op);
    }
    return MdsReadChunk(op, fo, dst, n);
  }
  const size_t m0 = static_cast<size_t>((fo / MaxIo(*nl, false)) % nl->mirrors.size());
  ReadPiece(op, nl, fo, dst, n, m0, 0, round);
}

void DataPath::Impl::ReadDone(const OpPtr& op) {
  if (op->pending.fetch_sub(1) != 1) return;
  Status s;
  {
    std::lock_guard<std::mutex> g(op->mu);
    s = op->status;
  }
  op->cb(s, s.ok() ? std::min<uint64_t>(op->len, op->end.load()) : 0);
}

void DataPath::Impl::MdsRead(const OpPtr& op) {
  const uint32_t room = session->max_response() > 8192 ? session->max_response() - 4096 : 4096;
  const uint32_t chunk = std::max<uint32_t>(4096, std::min(opts.io_size, room));
  size_t n = (op->len + chunk - 1) / chunk;
  op->pending = n;
  for (size_t pos = 0; pos < op->len; pos += chunk)
    MdsReadChunk(op, op->off + pos, op->buf + pos, static_cast<uint32_t>(std::min<size_t>(chunk, op->len - pos)));
}

void DataPath::Impl::MdsReadChunk(const OpPtr& op, uint64_t fo, uint8_t* dst, uint32_t n) {
  std::vector<nfs_argop4> ops;
  ops.push_back(PutFhOp(op->f->fh));
  ops.push_back(ReadOp(op->f->open_stateid(), fo, n));
  session->CallAsync(std::move(ops), [this, op, fo, dst, n](Status t, COMPOUND4res res) {
    if (!t.ok()) {
      op->Fail(Status(t.code(), op->f->path + ": " + t.message(), t.nfs_status()));
      return ReadDone(op);
    }
    if (res.status != NFS4_OK || res.resarray.empty() || !res.resarray.back().opread) {
      op->Fail(FromNfs4(res.status != NFS4_OK ? res.status : NFS4ERR_SERVERFAULT, op->f->path));
      return ReadDone(op);
    }
    const READ4resok& ok = res.resarray.back().opread->resok4;
    const uint32_t got = std::min<uint32_t>(ok.data.size, n);
    if (got && !ok.data.is_file()) std::memcpy(dst, ok.data.data, got);
    counters->mds_read_bytes += got;
    if (got < n) {
      if (!ok.eof && got > 0) return MdsReadChunk(op, fo + got, dst + got, n - got);
      // End of file before the size we knew: the file shrank; the read ends here.
      uint64_t at = fo + got - op->off;
      uint64_t cur = op->end.load();
      while (at < cur && !op->end.compare_exchange_weak(cur, at)) {
      }
    }
    ReadDone(op);
  });
}

// ------------------------------------------------------------------ writes

bool DataPath::Impl::OverBudget(FileCtx& c, size_t len) {
  if (opts.max_uncommitted_bytes == 0) return false;
  std::lock_guard<std::mutex> g(c.mu);
  return c.retained > 0 && c.retained + len > opts.max_uncommitted_bytes;
}

void DataPath::Impl::StartWrite(const OpPtr& op, std::shared_ptr<const Layout> l) {
  auto ext = std::make_shared<Extent>();
  ext->off = op->off;
  ext->len = op->len;
  if (opts.max_uncommitted_bytes > 0) {
    // Kept until COMMIT says the bytes are stable on every data file they went to.
    ext->copy = Buffer::Allocate(op->len);
    std::memcpy(ext->copy->data(), op->buf, op->len);
  }
  op->ext = ext;
  op->layout = l;
  {
    std::lock_guard<std::mutex> g(op->c->mu);
    op->c->extents.push_back(ext);
    op->c->retained += op->len;
  }
  std::vector<std::pair<uint64_t, uint32_t>> pieces;
  ForEachPiece(l->stripe_unit, l->stripes(), op->off, op->len, MaxIo(*l, true),
               [&](size_t, uint64_t fo, size_t, uint32_t n) { pieces.emplace_back(fo, n); });
  op->pending = pieces.size() * l->mirrors.size();
  for (const auto& [fo, n] : pieces)
    for (size_t m = 0; m < l->mirrors.size(); m++) WritePiece(op, l, m, fo, op->buf + (fo - op->off), n);
}

void DataPath::Impl::WritePiece(const OpPtr& op, std::shared_ptr<const Layout> l, size_t m, uint64_t fo,
                                const uint8_t* src, uint32_t n) {
  const size_t s = l->StripeOf(fo);
  const DataFile& df = l->mirrors[m][s];
  df.pool->Pick().Write(df.cred, df.fh, fo, src, n, 0 /* UNSTABLE */, [this, op, l, m, s, fo, src, n, &df](const DsReply& r) {
    if (r.ok() && r.count > 0 && r.count <= n) {
      counters->ds_write_bytes += r.count;
      {
        std::lock_guard<std::mutex> g(op->c->mu);
        Verf v;
        std::memcpy(v.data(), r.verf, 8);
        auto [it, fresh] = op->ext->verfs.emplace(df.key, v);
        if (!fresh && it->second != v) it->second = kMixedVerf;
        auto& w = op->c->written[df.key];
        if (w.df.key.empty()) w = WrittenFile{df, s, l->stripes(), l->stripe_unit};
      }
      if (r.count < n) return WritePiece(op, l, m, fo + r.count, src + r.count, n - r.count);
      return WriteDone(op);
    }
    DsReply e = r;
    if (e.ok()) e.nfs_status = 5;  // a WRITE that wrote nothing (or more than sent): NFS3ERR_IO
    NoteError(op, *l, df, fo, n, e, OP_WRITE);
    if (e.transport.ok() && FinalWriteError(e.nfs_status)) {
      op->Fail(DsStatus(e, op->f->path, df.address));
    } else {
      std::lock_guard<std::mutex> g(op->mu);
      if (std::find(op->failed.begin(), op->failed.end(), std::make_pair(fo, n)) == op->failed.end())
        op->failed.emplace_back(fo, n);
    }
    WriteDone(op);
  });
}

void DataPath::Impl::WriteDone(const OpPtr& op) {
  if (op->pending.fetch_sub(1) != 1) return;
  bool redo;
  {
    std::lock_guard<std::mutex> g(op->mu);
    redo = op->status.ok() && !op->failed.empty();
  }
  if (redo) return Defer([this, op] { RedoWrite(op); });
  Status s;
  {
    std::lock_guard<std::mutex> g(op->mu);
    s = op->status;
  }
  {
    std::lock_guard<std::mutex> g(op->c->mu);
    if (op->ext) op->ext->done = true;
    if (s.ok() && op->layout) {
      op->c->ds_end = std::max<uint64_t>(op->c->ds_end, op->off + op->len);
      op->c->commit_layout = op->layout;
    }
  }
  if (s.ok()) GrowSize(*op->f, op->off + op->len);
  op->cb(s, s.ok() ? op->len : 0);
}

bool DataPath::Impl::WriteStable(FileCtx& c, const FileState& f, const Layout& l, uint64_t off,
                                 const uint8_t* src, size_t len, Status* err) {
  struct Piece {
    size_t m, s;
    uint64_t fo;
    uint32_t n;
    DsReply r;
  };
  std::vector<Piece> pieces;
  ForEachPiece(l.stripe_unit, l.stripes(), off, len, MaxIo(l, true), [&](size_t s, uint64_t fo, size_t, uint32_t n) {
    for (size_t m = 0; m < l.mirrors.size(); m++) pieces.push_back(Piece{m, s, fo, n, {}});
  });
  Latch latch(pieces.size());
  for (auto& p : pieces) {
    const DataFile& df = l.mirrors[p.m][p.s];
    df.pool->Pick().Write(df.cred, df.fh, p.fo, src + (p.fo - off), p.n, 2 /* FILE_SYNC */,
                          [&p, &latch](const DsReply& r) {
                            p.r = r;
                            latch.Done();
                          });
  }
  latch.Wait();
  bool ok = true;
  for (auto& p : pieces) {
    const DataFile& df = l.mirrors[p.m][p.s];
    if (p.r.ok() && p.r.count == p.n) {
      counters->ds_write_bytes += p.n;
      continue;
    }
    DsReply e = p.r;
    if (e.ok()) e.nfs_status = 5;  // short FILE_SYNC write: retried as a failure
    NoteError(c, f, l, df, p.fo, p.n, e, OP_WRITE);
    if (ok) *err = DsStatus(e, f.path, df.address);
    ok = false;
  }
  return ok;
}

Status DataPath::Impl::MdsWriteSync(const FileState& f, uint64_t off, const uint8_t* src, size_t len) {
  const uint32_t room = session->max_request() > 8192 ? session->max_request() - 4096 : 4096;
  const uint32_t chunk = std::max<uint32_t>(4096, std::min(opts.io_size, room));
  size_t pos = 0;
  while (pos < len) {
    const uint32_t n = static_cast<uint32_t>(std::min<size_t>(chunk, len - pos));
    std::vector<nfs_argop4> ops;
    ops.push_back(PutFhOp(f.fh));
    ops.push_back(WriteOp(f.open_stateid(), off + pos, src + pos, n, FILE_SYNC4));
    auto r = session->Call(std::move(ops));
    if (!r.ok()) return Status(r.status().code(), f.path + ": " + r.status().message());
    if (r->status != NFS4_OK) return FromNfs4(r->status, f.path);
    const uint32_t done = r->resarray.back().opwrite->resok4.count;
    if (done == 0 || done > n) return Status(Errc::kIo, f.path + ": the metadata server wrote nothing");
    counters->mds_write_bytes += done;
    pos += done;
  }
  return Status::Ok();
}

Status DataPath::Impl::Rewrite(FileCtx& c, const FileState& f, const std::vector<std::shared_ptr<Extent>>& exts,
                               const Layout* failed) {
  const int64_t deadline = NowMs() + opts.retry_for_ms;
  std::shared_ptr<const Layout> fl;
  Status last;
  for (int round = 0;; round++) {
    // The MDS checks a server reported unreachable before it leaves it out of new layouts:
    // give it a moment between attempts.
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(100 << std::min(round, 4), 1000)));
    auto nl = Refresh(c, f, failed);
    if (!nl) {
      bool no_mds;
      {
        std::lock_guard<std::mutex> g(c.mu);
        no_mds = c.no_mds_io;
      }
      if (no_mds) return last.ok() ? Status(Errc::kUnavailable, f.path + ": no layout, and I/O through the MDS is not allowed") : last;
      for (const auto& e : exts) {
        Status s = MdsWriteSync(f, e->off, e->copy->data(), e->len);
        if (!s.ok()) return s;
      }
      return Status::Ok();
    }
    bool ok = true;
    for (const auto& e : exts) {
      if (!WriteStable(c, f, *nl, e->off, e->copy->data(), e->len, &last)) {
        ok = false;
        break;
      }
    }
    if (ok) {
      std::lock_guard<std::mutex> g(c.mu);
      for (const auto& e : exts) c.ds_end = std::max<uint64_t>(c.ds_end, e->off + e->len);
      c.commit_layout = nl;
      return Status::Ok();
    }
    fl = nl;
    failed = fl.get();
    // No other layout cures a full or read-only data server.
    if (last.code() == Errc::kNoSpace || last.code() == Errc::kReadOnly) return last;
    if (NowMs() > deadline || round >= 8) return last;
  }
}

void DataPath::Impl::RedoWrite(const OpPtr& op) {
  // Some pieces missed a mirror. The write stands once they are on every mirror of the
  // layout the MDS gives now (it drops a mirror whose server it finds down, marking it stale
  // for a resync from the others), or on the MDS when it gives none.
  std::vector<std::shared_ptr<Extent>> pieces;
  {
    std::lock_guard<std::mutex> g(op->mu);
    for (const auto& [fo, n] : op->failed) {
      // Rewrite takes its bytes from Extent::copy (this slow path copies the piece).
      auto e = std::make_shared<Extent>();
      e->off = fo;
      e->len = n;
      e->copy = Buffer::Allocate(n);
      std::memcpy(e->copy->data(), op->buf + (fo - op->off), n);
      pieces.push_back(e);
    }
    op->failed.clear();
  }
  Status s = Rewrite(*op->c, *op->f, pieces, op->layout.get());
  if (!s.ok()) op->Fail(s);
  // The FILE_SYNC rewrites need no COMMIT; the UNSTABLE pieces that made it stay tracked.
  op->layout = nullptr;
  {
    std::lock_guard<std::mutex> g(op->c->mu);
    op->c->ds_end = std::max<uint64_t>(op->c->ds_end, op->off + op->len);
  }
  op->pending = 1;
  WriteDone(op);
}

void DataPath::Impl::MdsWrite(const OpPtr& op) {
  const uint32_t room = session->max_request() > 8192 ? session->max_request() - 4096 : 4096;
  const uint32_t chunk = std::max<uint32_t>(4096, std::min(opts.io_size, room));
  op->pending = (op->len + chunk - 1) / chunk;
  for (size_t pos = 0; pos < op->len; pos += chunk)
    MdsWriteChunk(op, op->off + pos, op->buf + pos, static_cast<uint32_t>(std::min<size_t>(chunk, op->len - pos)));
}

void DataPath::Impl::MdsWriteChunk(const OpPtr& op, uint64_t fo, const uint8_t* src, uint32_t n) {
  std::vector<nfs_argop4> ops;
  ops.push_back(PutFhOp(op->f->fh));
  // The caller's buffer goes out as it is (a view, valid until the callback). FILE_SYNC: these
  // bytes are not retained, so an MDS restart before a COMMIT could not be repaired.
  ops.push_back(WriteOp(op->f->open_stateid(), fo, src, n, FILE_SYNC4));
  session->CallAsync(std::move(ops), [this, op, fo, src, n](Status t, COMPOUND4res res) {
    if (!t.ok()) {
      op->Fail(Status(t.code(), op->f->path + ": " + t.message(), t.nfs_status()));
      return WriteDone(op);
    }
    if (res.status != NFS4_OK || res.resarray.empty() || !res.resarray.back().opwrite) {
      op->Fail(FromNfs4(res.status != NFS4_OK ? res.status : NFS4ERR_SERVERFAULT, op->f->path));
      return WriteDone(op);
    }
    const WRITE4resok& ok = res.resarray.back().opwrite->resok4;
    if (ok.count == 0 || ok.count > n) {
      op->Fail(Status(Errc::kIo, op->f->path + ": the metadata server wrote nothing"));
      return WriteDone(op);
    }
    counters->mds_write_bytes += ok.count;
    if (ok.committed != FILE_SYNC4) {
      std::lock_guard<std::mutex> g(op->c->mu);
      op->c->mds_unstable = true;
    }
    if (ok.count < n) return MdsWriteChunk(op, fo + ok.count, src + ok.count, n - ok.count);
    WriteDone(op);
  });
}

// ------------------------------------------------------------------ sync

Status DataPath::Impl::CommitDs(FileCtx& c, const FileState& f) {
  std::vector<std::shared_ptr<Extent>> snap;
  std::map<std::string, WrittenFile> files;
  {
    std::lock_guard<std::mutex> g(c.mu);
    for (auto it = c.extents.begin(); it != c.extents.end();) {
      if ((*it)->done) {
        c.retained -= (*it)->len;
        snap.push_back(std::move(*it));
        it = c.extents.erase(it);
      } else {
        ++it;
      }
    }
    for (const auto& e : snap)
      for (const auto& [key, v] : e->verfs) {
        auto w = c.written.find(key);
        if (w != c.written.end()) files.emplace(key, w->second);
      }
  }
  // The layout in force decides which data files must hold the bytes. One it left out (the
  // MDS dropped a mirror whose server went down, marking it stale) is resynced by the MDS
  // from the others: its COMMIT is moot. The others are reached with the current layout's
  // ids (a fence since the writes changed them).
  std::shared_ptr<const Layout> cur;
  {
    std::lock_guard<std::mutex> g(c.mu);
    if (c.layout && c.layout->epoch == session->epoch()) cur = c.layout;
  }
  if (cur) {
    std::map<std::string, const DataFile*> in_force;
    for (const auto& m : cur->mirrors)
      for (const auto& d : m) in_force[d.key] = &d;
    for (auto it = files.begin(); it != files.end();) {
      auto f2 = in_force.find(it->first);
      if (f2 == in_force.end()) {
        it = files.erase(it);
      } else {
        it->second.df = *f2->second;
        ++it;
      }
    }
  }
  if (files.empty()) return Status::Ok();
  struct Done {
    const WrittenFile* w;
    DsReply r;
  };
  std::vector<Done> done;
  for (const auto& [key, w] : files) done.push_back(Done{&w, {}});
  Latch latch(done.size());
  for (auto& d : done) {
    d.w->df.pool->Pick().Commit(d.w->df.cred, d.w->df.fh, [&d, &latch](const DsReply& r) {
      d.r = r;
      latch.Done();
    });
  }
  latch.Wait();
  bool lost = false;
  Status err;
  if (!cur) {
    std::lock_guard<std::mutex> g(c.mu);
    cur = c.commit_layout;  // for the reports only
  }
  for (auto& d : done) {
    const WrittenFile& w = *d.w;
    if (!d.r.ok()) {
      if (cur) NoteError(c, f, *cur, w.df, 0, NFS4_UINT64_MAX, d.r, OP_COMMIT);
      lost = true;
      continue;
    }
    Verf cv;
    std::memcpy(cv.data(), d.r.verf, 8);
    // RFC 1813 §3.3.21: a verifier unlike the WRITEs' means the server restarted and may have
    // lost them: send this data file its part of those extents again, stable this time.
    for (const auto& e : snap) {
      auto v = e->verfs.find(w.df.key);
      if (v == e->verfs.end() || v->second == cv) continue;
      if (!e->copy) {
        err = Status(Errc::kIo, f.path + ": data server " + w.df.address + " restarted and lost unstable writes");
        continue;
      }
      ForEachPiece(w.stripe_unit, w.stripes, e->off, e->len, std::max<uint32_t>(w.df.wsize, 4096),
                   [&](size_t s, uint64_t fo, size_t pos, uint32_t n) {
                     if (s != w.stripe || lost) return;
                     std::promise<DsReply> p;
                     w.df.pool->Pick().Write(w.df.cred, w.df.fh, fo, e->copy->data() + pos, n, 2,
                                             [&p](const DsReply& r) { p.set_value(r); });
                     DsReply r = p.get_future().get();
                     if (r.ok() && r.count == n) {
                       counters->ds_write_bytes += n;
                     } else {
                       if (cur) NoteError(c, f, *cur, w.df, fo, n, r, OP_WRITE);
                       lost = true;
                     }
                   });
    }
  }
  if (!err.ok()) return err;
  if (!lost) return Status::Ok();
  // A data file could not be made stable: the whole of what this sync covers goes onto the
  // layout the MDS gives now (without the failed mirror once it finds the server down).
  for (const auto& e : snap)
    if (!e->copy) return Status(Errc::kIo, f.path + ": a data server failed before COMMIT and the bytes were not retained");
  return Rewrite(c, f, snap, cur.get());
}

Status DataPath::Impl::SyncImpl(FileCtx& c, FileState& f) {
  bool mds_commit;
  {
    std::lock_guard<std::mutex> g(c.mu);
    mds_commit = c.mds_unstable;
    c.mds_unstable = false;
  }
  if (mds_commit) {
    std::vector<nfs_argop4> ops;
    ops.push_back(PutFhOp(f.fh));
    ops.push_back(CommitOp());
    auto r = session->Call(std::move(ops));
    if (!r.ok()) return Status(r.status().code(), f.path + ": " + r.status().message());
    if (r->status != NFS4_OK) return FromNfs4(r->status, f.path);
  }
  Status s = CommitDs(c, f);
  if (!s.ok()) return s;
  uint64_t end;
  std::shared_ptr<const Layout> l;
  {
    std::lock_guard<std::mutex> g(c.mu);
    end = c.ds_end;
    l = c.commit_layout;
    c.ds_end = 0;
  }
  if (end == 0 || !l) return Status::Ok();
  if (!(l->flags & FF_FLAGS_NO_LAYOUTCOMMIT)) {
    // RFC 8881 §18.42: the last byte written; the MDS grows the size to it.
    s = layouts.Commit(f, *l, end - 1);
    if (!s.ok() && s.code() != Errc::kUnavailable && s.code() != Errc::kTimeout) {
      // The layout stateid is gone (an MDS restart, a layout given up after errors and
      // refused since): commit with the layout in force, fetching one if need be.
      auto nl = Refresh(c, f, l->epoch == session->epoch() ? l.get() : nullptr);
      if (nl && nl != l) s = layouts.Commit(f, *nl, end - 1);
    }
    if (!s.ok()) {
      std::lock_guard<std::mutex> g(c.mu);
      c.ds_end = std::max(c.ds_end, end);
      return s;
    }
  }
  GrowSize(f, end);
  return Status::Ok();
}

// ------------------------------------------------------------------ DataPath

DataPath::DataPath(Session* session, const Options& opts, Counters* counters)
    : impl_(std::make_unique<Impl>(session, opts, counters)) {}

DataPath::~DataPath() = default;

void DataPath::Read(const std::shared_ptr<FileState>& f, uint64_t off, void* buf, size_t len, IoCallback cb) {
  const uint64_t size = f->size.load();
  if (len == 0 || off >= size) return cb(Status::Ok(), 0);
  len = static_cast<size_t>(std::min<uint64_t>(len, size - off));
  Impl* d = impl_.get();
  auto op = std::make_shared<IoOp>();
  op->f = f;
  op->c = d->Ctx(f.get());
  op->off = off;
  op->buf = static_cast<uint8_t*>(buf);
  op->len = len;
  op->end = len;
  op->cb = std::move(cb);
  if (!d->opts.pnfs) return d->MdsRead(op);
  bool need = false;
  auto l = d->Current(*op->c, &need);
  // RFC 8435 §5.1: FF_FLAGS_NO_READ_IO layouts are for writing; reads go to the MDS.
  if (l && !(l->flags & FF_FLAGS_NO_READ_IO)) return d->StartRead(op, std::move(l));
  if (!need) return d->MdsRead(op);
  d->Defer([d, op] {
    auto nl = d->Refresh(*op->c, *op->f, nullptr);
    if (nl && !(nl->flags & FF_FLAGS_NO_READ_IO)) d->StartRead(op, std::move(nl));
    else d->MdsRead(op);
  });
}

void DataPath::Write(const std::shared_ptr<FileState>& f, uint64_t off, const void* buf, size_t len, IoCallback cb) {
  if (len == 0) return cb(Status::Ok(), 0);
  Impl* d = impl_.get();
  auto op = std::make_shared<IoOp>();
  op->f = f;
  op->c = d->Ctx(f.get());
  op->off = off;
  op->buf = static_cast<uint8_t*>(const_cast<void*>(buf));
  op->len = len;
  op->cb = std::move(cb);
  if (!d->opts.pnfs) return d->MdsWrite(op);
  bool need = false;
  auto l = d->Current(*op->c, &need);
  if (!l && !need) return d->MdsWrite(op);
  const bool over = d->OverBudget(*op->c, len);
  if (l && !over) return d->StartWrite(op, std::move(l));
  d->Defer([d, op, over] {
    if (over) {
      // Past Options::max_uncommitted_bytes: what is retained is committed (and dropped)
      // before more is taken on.
      Status s = d->CommitDs(*op->c, *op->f);
      if (!s.ok()) {
        op->cb(s, 0);
        return;
      }
    }
    auto nl = d->Refresh(*op->c, *op->f, nullptr);
    if (nl) d->StartWrite(op, std::move(nl));
    else d->MdsWrite(op);
  });
}

Status DataPath::Sync(const std::shared_ptr<FileState>& f) {
  auto c = impl_->Ctx(f.get(), false);
  if (!c) return Status::Ok();
  return impl_->SyncImpl(*c, *f);
}

Status DataPath::Release(const std::shared_ptr<FileState>& f) {
  Impl* d = impl_.get();
  std::shared_ptr<FileCtx> c;
  {
    auto& s = d->ShardOf(f.get());
    std::lock_guard<std::mutex> g(s.mu);
    auto it = s.files.find(f.get());
    if (it == s.files.end()) return Status::Ok();
    c = std::move(it->second);
    s.files.erase(it);
  }
  std::lock_guard<std::mutex> fg(c->fetch_mu);
  std::shared_ptr<const Layout> l;
  std::vector<IoError> errors;
  {
    std::lock_guard<std::mutex> g(c->mu);
    l = std::move(c->layout);
    errors.swap(c->errors);
  }
  if (!l || l->epoch != d->session->epoch()) return Status::Ok();
  return d->layouts.Return(*f, *l, errors);
}

Result<LayoutInfo> DataPath::Describe(const std::shared_ptr<FileState>& f) {
  Impl* d = impl_.get();
  if (!d->opts.pnfs) return LayoutInfo();
  auto c = d->Ctx(f.get());
  bool need = false;
  auto l = d->Current(*c, &need);
  if (!l && need) l = d->Refresh(*c, *f, nullptr);
  if (!l) return LayoutInfo();
  return l->Describe();
}

}  // namespace loom::client::internal
