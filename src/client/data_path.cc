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
#include "nfs4/simple_client.h"
#include "rpc/event_loop.h"

namespace loom::client::internal {

namespace {

using Verf = std::array<uint8_t, 8>;
// Marks a data file that got two different write verifiers for one extent: its server
// restarted in between, so the extent is resent whatever COMMIT says.
constexpr Verf kMixedVerf = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};

int64_t NowMs() { return rpc::NowMs(); }

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

nfstime4 Nfstime(int64_t ns) {
  nfstime4 t;
  t.seconds = ns / 1000000000;
  t.nseconds = static_cast<uint32_t>(ns % 1000000000);
  return t;
}

// "host:port" / "[v6]:port" -> a universal address (RFC 5665 §5.2.3.3) for ff_layoutupdate4.
netaddr4 UniversalAddress(const std::string& address) {
  netaddr4 na;
  na.na_r_netid = "tcp";
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return na;
  std::string host = address.substr(0, colon);
  const unsigned port = static_cast<unsigned>(std::strtoul(address.c_str() + colon + 1, nullptr, 10));
  if (!host.empty() && host.front() == '[') {
    host = host.substr(1, host.size() - 2);
    na.na_r_netid = "tcp6";
  }
  na.na_r_addr = host + "." + std::to_string(port >> 8) + "." + std::to_string(port & 255);
  return na;
}

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

// RFC 8435 §8 (ff_io_latency4): one direction of I/O to one data server.
struct IoCount {
  uint64_t ops_req = 0, bytes_req = 0, ops_done = 0, bytes_done = 0, not_delivered = 0;
  int64_t completion_ns = 0;  // summed over the completed operations
};

// I/O of one file to one data server under one layout (LAYOUTSTATS counts are per layout).
struct DsStats {
  IoCount rd, wr;
  std::string address;
  Bytes fh;  // a data file of the file on that server (owned)
  int inflight = 0;
  int64_t busy_since_ns = 0, busy_ns = 0;  // time with at least one operation outstanding
};

struct FileCtx {
  std::mutex mu;  // guards everything below but fetch_mu
  std::weak_ptr<FileState> file;
  std::shared_ptr<const Layout> layout;
  // I/O operations that started on a layout and have not finished; `idle` is signalled when
  // it falls to zero (a recalled layout goes back once they are done).
  int active = 0;
  std::condition_variable idle;
  bool fetching = false;   // a LAYOUTGET is in flight
  // A recalled layout waits for its I/O and goes back (CB_LAYOUTRECALL, RFC 8881 §12.5.5):
  // meanwhile I/O goes through the MDS and no LAYOUTGET is sent (the MDS would answer
  // RECALLCONFLICT, §12.5.5.2.1).
  bool recalling = false;
  std::shared_ptr<const Layout> recalled;
  std::map<DeviceId, DsStats> stats;  // of `layout`, since it was granted
  int64_t stats_since_ns = 0;
  int64_t stats_sent_ms = 0;
  bool stats_dirty = false;
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
  bool counted = false;  // in FileCtx::active
  void Fail(const Status& s) {
    std::lock_guard<std::mutex> g(mu);
    if (status.ok()) status = s;
  }
};
using OpPtr = std::shared_ptr<IoOp>;

struct DataPath::Impl {
  Impl(Session* s, const Options& o, Counters* k)
      : session(s), opts(o), counters(k), layouts(s, o, k), workers(std::make_unique<rpc::WorkerPool>(4)) {
    guard->d = this;
    std::shared_ptr<Guard> gd = guard;
    session->SetCallbackHandler([gd](const nfs_cb_argop4& op) {
      std::lock_guard<std::mutex> g(gd->mu);
      return gd->d ? gd->d->OnCallback(op) : NFS4ERR_NOTSUPP;
    });
    if (opts.pnfs && session->minor_version() >= 2) {
      session->loop()->Every(1000, [gd] {
        std::lock_guard<std::mutex> g(gd->mu);
        if (!gd->d) return false;
        gd->d->SendStats();
        return true;
      });
    }
  }
  ~Impl() {
    {
      // No callback or statistics tick runs into this object from now on.
      std::lock_guard<std::mutex> g(guard->mu);
      guard->d = nullptr;
    }
    session->SetCallbackHandler(nullptr);
    layouts.CloseAll();  // calls in flight fail; new ones fail at once
    layouts.JoinAll();   // no data-server callback runs after this
    {
      std::lock_guard<std::mutex> g(defer_mu);
      closing = true;
    }
    workers.reset();  // runs what is queued
    layouts.JoinAll();  // and the threads of connections those tasks opened
  }

  // Lets the session's callbacks and timer reach this object while it lives.
  struct Guard {
    std::mutex mu;
    Impl* d = nullptr;
  };
  std::shared_ptr<Guard> guard = std::make_shared<Guard>();
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
  std::shared_ptr<FileCtx> Ctx(const std::shared_ptr<FileState>& f, bool create = true);
  // The op runs on `l` (counted in FileCtx::active); false when the file's layout is being
  // recalled, and the op goes through the MDS instead.
  bool Begin(const OpPtr& op);
  void End(const OpPtr& op);

  // --- callbacks (RFC 8881 §20) and statistics (RFC 7862 §15.7)
  nfsstat4 OnCallback(const nfs_cb_argop4& op);
  nfsstat4 OnLayoutRecall(const CB_LAYOUTRECALL4args& a);
  nfsstat4 OnRecallAny(const CB_RECALL_ANY4args& a);
  nfsstat4 OnNotifyDeviceId(const CB_NOTIFY_DEVICEID4args& a);
  // Takes the file's layout out of use for a recall; false when it holds none that matches.
  bool Detach(const std::shared_ptr<FileCtx>& c, layoutiomode4 iomode);
  void ReturnRecalled(const std::shared_ptr<FileCtx>& c, const std::shared_ptr<FileState>& f);
  int64_t StatsStart(FileCtx& c, const DataFile& df, bool write, uint32_t n);
  void StatsDone(FileCtx& c, const DataFile& df, bool write, uint32_t n, uint32_t done, int64_t t0);
  // The statistics of `l` as ff_iostats4 (c.mu held); `reset` starts a new period.
  std::vector<ff_iostats4> StatsOf(FileCtx& c, const Layout& l);
  void SendStats();
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

std::shared_ptr<FileCtx> DataPath::Impl::Ctx(const std::shared_ptr<FileState>& f, bool create) {
  Shard& s = ShardOf(f.get());
  std::lock_guard<std::mutex> g(s.mu);
  auto it = s.files.find(f.get());
  if (it != s.files.end()) return it->second;
  if (!create) return nullptr;
  auto c = std::make_shared<FileCtx>();
  c->file = f;
  s.files.emplace(f.get(), c);
  return c;
}

bool DataPath::Impl::Begin(const OpPtr& op) {
  std::lock_guard<std::mutex> g(op->c->mu);
  if (op->c->recalling) return false;
  op->c->active++;
  op->counted = true;
  return true;
}

void DataPath::Impl::End(const OpPtr& op) {
  if (!op->counted) return;
  op->counted = false;
  std::lock_guard<std::mutex> g(op->c->mu);
  if (--op->c->active == 0) op->c->idle.notify_all();
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
  if (c.recalling) return nullptr;
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
  std::vector<ff_iostats4> stats;
  {
    std::lock_guard<std::mutex> g(c.mu);
    if (c.recalling) return nullptr;  // through the MDS until the recalled layout is back
    if (c.layout && c.layout->epoch == epoch && c.layout.get() != failed) return c.layout;
    if (!c.layout && c.none && c.none_epoch == epoch && NowMs() < c.retry_ms) return nullptr;
    old = std::move(c.layout);
    errors.swap(c.errors);
    if (old) stats = StatsOf(c, *old);
    c.fetching = true;
  }
  // The old layout goes back first (with what went wrong): the MDS recalls layouts when it
  // drops a mirror, and a recall waits for every holder, this client included.
  if (old && old->epoch == epoch) (void)layouts.Return(f, *old, errors, stats);
  const layoutiomode4 mode = (f.share_access & OPEN4_SHARE_ACCESS_WRITE) ? LAYOUTIOMODE4_RW : LAYOUTIOMODE4_READ;
  auto g = layouts.Get(f, mode);
  std::lock_guard<std::mutex> lg(c.mu);
  c.fetching = false;
  if (g.ok() && g->layout) {
    c.layout = g->layout;
    c.stats.clear();
    c.stats_since_ns = NowNs();
    c.stats_sent_ms = NowMs();
    c.stats_dirty = false;
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
  if (!Begin(op)) return MdsRead(op);
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
  const int64_t t0 = StatsStart(*op->c, df, false, n);
  df.pool->Pick().Read(df.cred, df.fh, fo, n, dst, [this, op, l, fo, dst, n, m0, m, tried, round, &df, t0](const DsReply& r) {
    StatsDone(*op->c, df, false, n, r.ok() ? r.count : 0, t0);
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
  End(op);
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
  ops.push_back(loom::nfs4::simple::PutFh(op->f->fh));
  ops.push_back(loom::nfs4::simple::Read(op->f->open_stateid(), fo, n));
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
  // A write that starts while the layout is being recalled goes through the MDS: the MDS may
  // be about to copy the file's data elsewhere (a data move) and copies what its data servers
  // hold when the layouts are back.
  if (!Begin(op)) return MdsWrite(op);
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
  const int64_t t0 = StatsStart(*op->c, df, true, n);
  df.pool->Pick().Write(df.cred, df.fh, fo, src, n, 0 /* UNSTABLE */, [this, op, l, m, s, fo, src, n, &df, t0](const DsReply& r) {
    StatsDone(*op->c, df, true, n, r.ok() && r.count <= n ? r.count : 0, t0);
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
  End(op);
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
    ops.push_back(loom::nfs4::simple::PutFh(f.fh));
    ops.push_back(loom::nfs4::simple::WriteView(f.open_stateid(), off + pos, src + pos, n, FILE_SYNC4));
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
  ops.push_back(loom::nfs4::simple::PutFh(op->f->fh));
  // The caller's buffer goes out as it is (a view, valid until the callback). FILE_SYNC: these
  // bytes are not retained, so an MDS restart before a COMMIT could not be repaired.
  ops.push_back(loom::nfs4::simple::WriteView(op->f->open_stateid(), fo, src, n, FILE_SYNC4));
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
    ops.push_back(loom::nfs4::simple::PutFh(f.fh));
    ops.push_back(loom::nfs4::simple::Commit());
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

// ------------------------------------------------------------------ callbacks

nfsstat4 DataPath::Impl::OnCallback(const nfs_cb_argop4& op) {
  switch (op.argop) {
    case OP_CB_LAYOUTRECALL:
      return OnLayoutRecall(*op.opcblayoutrecall);
    case OP_CB_RECALL_ANY:
      return OnRecallAny(*op.opcbrecall_any);
    case OP_CB_NOTIFY_DEVICEID:
      return OnNotifyDeviceId(*op.opcbnotify_deviceid);
    default:
      return NFS4ERR_NOTSUPP;  // no delegations, no directory notifications
  }
}

bool DataPath::Impl::Detach(const std::shared_ptr<FileCtx>& c, layoutiomode4 iomode) {
  std::shared_ptr<FileState> f = c->file.lock();
  if (!f) return false;
  {
    std::lock_guard<std::mutex> g(c->mu);
    const auto& l = c->layout;
    if (!l || l->epoch != session->epoch() || c->recalling) return false;
    // §20.3.1: a recall of READ layouts leaves RW ones alone and the reverse; ANY takes both.
    if (iomode != LAYOUTIOMODE4_ANY && iomode != l->iomode) return false;
    c->recalled = std::move(c->layout);
    c->recalling = true;
  }
  Defer([this, c, f] { ReturnRecalled(c, f); });
  return true;
}

nfsstat4 DataPath::Impl::OnLayoutRecall(const CB_LAYOUTRECALL4args& a) {
  if (a.clora_type != LAYOUT4_FLEX_FILES) return NFS4ERR_NOMATCHING_LAYOUT;
  const bool one = a.clora_recall.lor_recalltype == LAYOUTRECALL4_FILE;
  const Bytes* fh = one ? &a.clora_recall.lor_layout.lor_fh : nullptr;
  // The files concerned. FSID: loom-mds serves one file system, so it is every file (ALL).
  std::vector<std::shared_ptr<FileCtx>> targets;
  for (auto& sh : shards) {
    std::lock_guard<std::mutex> g(sh.mu);
    for (auto& [fs, c] : sh.files) {
      if (fh) {
        auto f = c->file.lock();
        if (!f || f->fh.size != fh->size || std::memcmp(f->fh.data, fh->data, fh->size) != 0) continue;
      }
      targets.push_back(c);
    }
  }
  // §12.5.5.2.1: a recall may overtake the reply to a LAYOUTGET the server answered before it
  // (the recall's stateid seqid is then ahead of ours). The layout that reply brings is
  // recalled too: the server is asked to send the recall again once the reply is in.
  for (const auto& c : targets) {
    std::lock_guard<std::mutex> g(c->mu);
    if (c->fetching) return NFS4ERR_DELAY;
  }
  bool any = false;
  for (const auto& c : targets) any |= Detach(c, a.clora_iomode);
  // §20.3.3: nothing of it here (returned already, or never held): the server may take it as
  // returned.
  return any ? NFS4_OK : NFS4ERR_NOMATCHING_LAYOUT;
}

nfsstat4 DataPath::Impl::OnRecallAny(const CB_RECALL_ANY4args& a) {
  // §20.6 with RFC 8435 §7: bits 16 and 17 of the mask name flexible-file READ and RW layouts.
  auto bit = [&](uint32_t b) { return a.craa_type_mask.size() > b / 32 && (a.craa_type_mask[b / 32] >> (b % 32)) & 1; };
  const bool rd = bit(PNFS_FF_RCA4_TYPE_MASK_READ), rw = bit(PNFS_FF_RCA4_TYPE_MASK_RW);
  if (!rd && !rw) return NFS4_OK;  // nothing of the kinds it wants back
  std::vector<std::shared_ptr<FileCtx>> held;
  for (auto& sh : shards) {
    std::lock_guard<std::mutex> g(sh.mu);
    for (auto& [fs, c] : sh.files) {
      std::lock_guard<std::mutex> cg(c->mu);
      if (!c->layout || c->fetching) continue;
      if ((c->layout->iomode == LAYOUTIOMODE4_READ && rd) || (c->layout->iomode == LAYOUTIOMODE4_RW && rw))
        held.push_back(c);
    }
  }
  // Keep craa_objects_to_keep of them; the others go back (the next I/O asks again).
  for (size_t i = a.craa_objects_to_keep; i < held.size(); i++) (void)Detach(held[i], LAYOUTIOMODE4_ANY);
  return NFS4_OK;
}

nfsstat4 DataPath::Impl::OnNotifyDeviceId(const CB_NOTIFY_DEVICEID4args& a) {
  // §20.12: each notify4 holds, for each bit of its mask in order, an XDR-encoded
  // notify_deviceid_change4 (bit 1) or notify_deviceid_delete4 (bit 2). Either way the cached
  // address goes; the next layout naming the device asks GETDEVICEINFO again.
  for (const notify4& n : a.cnda_changes) {
    xdr::Decoder d(n.notify_vals.data, n.notify_vals.size, n.notify_vals.owner);
    for (uint32_t b = 0; b < 32 * n.notify_mask.size(); b++) {
      if (!((n.notify_mask[b / 32] >> (b % 32)) & 1)) continue;
      if (b == NOTIFY_DEVICEID4_CHANGE) {
        notify_deviceid_change4 ch;
        if (!xdr_decode(d, ch)) return NFS4ERR_BADXDR;
        if (ch.ndc_layouttype == LAYOUT4_FLEX_FILES) layouts.ForgetDevice(ch.ndc_deviceid);
      } else if (b == NOTIFY_DEVICEID4_DELETE) {
        notify_deviceid_delete4 del;
        if (!xdr_decode(d, del)) return NFS4ERR_BADXDR;
        if (del.ndd_layouttype == LAYOUT4_FLEX_FILES) layouts.ForgetDevice(del.ndd_deviceid);
      } else {
        return NFS4ERR_INVAL;  // a notification type this client never asked for
      }
    }
  }
  return NFS4_OK;
}

void DataPath::Impl::ReturnRecalled(const std::shared_ptr<FileCtx>& c, const std::shared_ptr<FileState>& f) {
  {
    // In-flight I/O on the layout finishes first (§12.5.5.1: the client completes or abandons
    // it before LAYOUTRETURN). New I/O goes through the MDS meanwhile.
    std::unique_lock<std::mutex> g(c->mu);
    c->idle.wait_for(g, std::chrono::milliseconds(opts.call_timeout_ms), [&] { return c->active == 0; });
  }
  // What was written through the layout is made stable and its size told to the MDS
  // (LAYOUTCOMMIT) before the layout goes back: after the return the MDS may move or fence the
  // data files, and copies only what is stable there (§12.5.5.2, §18.42).
  (void)SyncImpl(*c, *f);
  std::lock_guard<std::mutex> fg(c->fetch_mu);
  std::shared_ptr<const Layout> l;
  std::vector<IoError> errors;
  std::vector<ff_iostats4> stats;
  {
    std::lock_guard<std::mutex> g(c->mu);
    l = std::move(c->recalled);
    errors.swap(c->errors);
    if (l) stats = StatsOf(*c, *l);
  }
  // LAYOUTRETURN with the layout stateid as last received (§18.44.3: the server checks its
  // seqid against the recall's).
  if (l && l->epoch == session->epoch()) (void)layouts.Return(*f, *l, errors, stats);
  {
    std::lock_guard<std::mutex> g(c->mu);
    c->recalling = false;
    c->none = false;  // the next I/O asks for the layout again
    c->idle.notify_all();
  }
}

// ------------------------------------------------------------------ statistics

int64_t DataPath::Impl::StatsStart(FileCtx& c, const DataFile& df, bool write, uint32_t n) {
  const int64_t now = NowNs();
  std::lock_guard<std::mutex> g(c.mu);
  DsStats& s = c.stats[df.deviceid];
  if (s.address.empty()) {
    s.address = df.address;
    s.fh = Bytes::Copy(df.fh.data, df.fh.size);
  }
  IoCount& k = write ? s.wr : s.rd;
  k.ops_req++;
  k.bytes_req += n;
  if (s.inflight++ == 0) s.busy_since_ns = now;
  c.stats_dirty = true;
  return now;
}

void DataPath::Impl::StatsDone(FileCtx& c, const DataFile& df, bool write, uint32_t n, uint32_t done, int64_t t0) {
  const int64_t now = NowNs();
  std::lock_guard<std::mutex> g(c.mu);
  auto it = c.stats.find(df.deviceid);
  if (it == c.stats.end()) return;  // a new layout since (its statistics start afresh)
  DsStats& s = it->second;
  IoCount& k = write ? s.wr : s.rd;
  if (done > 0) {
    k.ops_done++;
    k.bytes_done += done;
  }
  if (done < n) k.not_delivered += n - done;
  k.completion_ns += now - t0;
  if (s.inflight > 0 && --s.inflight == 0) s.busy_ns += now - s.busy_since_ns;
}

std::vector<ff_iostats4> DataPath::Impl::StatsOf(FileCtx& c, const Layout& l) {
  const int64_t now = NowNs();
  std::vector<ff_iostats4> out;
  for (const auto& [dev, s] : c.stats) {
    ff_iostats4 st;
    st.ffis_offset = 0;
    st.ffis_length = NFS4_UINT64_MAX;
    st.ffis_stateid = l.stateid;
    st.ffis_read.ii_count = s.rd.ops_done;
    st.ffis_read.ii_bytes = s.rd.bytes_done;
    st.ffis_write.ii_count = s.wr.ops_done;
    st.ffis_write.ii_bytes = s.wr.bytes_done;
    st.ffis_deviceid = dev;
    // RFC 8435 §8.1: counts since the layout was granted; the busy time includes the
    // operations still outstanding.
    ff_layoutupdate4& u = st.ffis_layoutupdate;
    u.ffl_addr = UniversalAddress(s.address);
    u.ffl_fhandle = Bytes::Copy(s.fh.data, s.fh.size);
    auto lat = [](const IoCount& k) {
      ff_io_latency4 x;
      x.ffil_ops_requested = k.ops_req;
      x.ffil_bytes_requested = k.bytes_req;
      x.ffil_ops_completed = k.ops_done;
      x.ffil_bytes_completed = k.bytes_done;
      x.ffil_bytes_not_delivered = k.not_delivered;
      x.ffil_total_busy_time = Nfstime(0);
      x.ffil_aggregate_completion_time = Nfstime(k.completion_ns);
      return x;
    };
    u.ffl_read = lat(s.rd);
    u.ffl_write = lat(s.wr);
    const int64_t busy = s.busy_ns + (s.inflight > 0 ? now - s.busy_since_ns : 0);
    u.ffl_read.ffil_total_busy_time = Nfstime(busy);
    u.ffl_write.ffil_total_busy_time = Nfstime(busy);
    u.ffl_duration = Nfstime(c.stats_since_ns ? now - c.stats_since_ns : 0);
    u.ffl_local = false;
    out.push_back(std::move(st));
  }
  return out;
}

void DataPath::Impl::SendStats() {
  // Runs on the session's loop thread every second: sends only (CallAsync), never waits.
  // Period: the layout's ffl_stats_collect_hint, else a third of the lease (at most 30 s), so
  // the MDS's picture of the data servers' load is never much older than its client state.
  const int64_t now = NowMs();
  const int64_t dflt = std::clamp<int64_t>(int64_t{session->lease_seconds()} * 1000 / 3, 1000, 30000);
  struct Send {
    std::shared_ptr<FileState> f;
    std::shared_ptr<const Layout> l;
    std::vector<ff_iostats4> stats;
  };
  std::vector<Send> out;
  for (auto& sh : shards) {
    std::lock_guard<std::mutex> g(sh.mu);
    for (auto& [fs, c] : sh.files) {
      std::lock_guard<std::mutex> cg(c->mu);
      if (!c->layout || !c->stats_dirty || c->layout->epoch != session->epoch()) continue;
      const int64_t period = c->layout->stats_hint ? int64_t{c->layout->stats_hint} * 1000 : dflt;
      if (now - c->stats_sent_ms < period) continue;
      auto f = c->file.lock();
      if (!f) continue;
      c->stats_sent_ms = now;
      c->stats_dirty = false;
      out.push_back(Send{f, c->layout, StatsOf(*c, *c->layout)});
    }
  }
  for (const auto& s : out) layouts.StatsAsync(*s.f, *s.l, s.stats);
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
  op->c = d->Ctx(f);
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
  op->c = d->Ctx(f);
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
  auto c = impl_->Ctx(f, false);
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
  {
    // A recalled layout goes back before the file is closed (its LAYOUTRETURN needs the open).
    std::unique_lock<std::mutex> g(c->mu);
    c->idle.wait_for(g, std::chrono::milliseconds(d->opts.call_timeout_ms), [&] { return !c->recalling; });
  }
  std::lock_guard<std::mutex> fg(c->fetch_mu);
  std::shared_ptr<const Layout> l;
  std::vector<IoError> errors;
  std::vector<ff_iostats4> stats;
  {
    std::lock_guard<std::mutex> g(c->mu);
    l = std::move(c->layout);
    errors.swap(c->errors);
    if (l) stats = d->StatsOf(*c, *l);
  }
  if (!l || l->epoch != d->session->epoch()) return Status::Ok();
  // A return-on-close layout goes back with the CLOSE that follows (RFC 8881 §18.43.3): only
  // errors to report need a LAYOUTRETURN of their own. (The I/O statistics of a file closed
  // between two LAYOUTSTATS are not sent: one call fewer per open matters more for many small
  // files.)
  if (l->return_on_close && errors.empty()) return Status::Ok();
  return d->layouts.Return(*f, *l, errors, stats);
}

void DataPath::Adopt(const std::shared_ptr<FileState>& f, const LAYOUTGET4res& res, uint64_t epoch,
                     bool may_wait) {
  Impl* d = impl_.get();
  if (!d->opts.pnfs || res.logr_status != NFS4_OK) return;
  const layoutiomode4 mode =
      (f->share_access & OPEN4_SHARE_ACCESS_WRITE) ? LAYOUTIOMODE4_RW : LAYOUTIOMODE4_READ;
  auto g = d->layouts.Adopt(*f, res, mode, epoch, may_wait);
  if (!g.ok() || !g->layout) return;  // the first I/O asks again (Refresh)
  auto c = d->Ctx(f);
  std::lock_guard<std::mutex> fg(c->fetch_mu);
  std::lock_guard<std::mutex> lg(c->mu);
  if (c->layout || c->recalling) return;
  c->layout = g->layout;
  c->stats.clear();
  c->stats_since_ns = NowNs();
  c->stats_sent_ms = NowMs();
  c->stats_dirty = false;
  c->none = false;
  c->no_mds_io = (g->layout->flags & FF_FLAGS_NO_IO_THRU_MDS) != 0;
}

void DataPath::Defer(std::function<void()> fn) { impl_->Defer(std::move(fn)); }

Result<LayoutInfo> DataPath::Describe(const std::shared_ptr<FileState>& f) {
  Impl* d = impl_.get();
  if (!d->opts.pnfs) return LayoutInfo();
  auto c = d->Ctx(f);
  bool need = false;
  auto l = d->Current(*c, &need);
  if (!l && need) l = d->Refresh(*c, *f, nullptr);
  if (!l) return LayoutInfo();
  return l->Describe();
}

}  // namespace loom::client::internal
