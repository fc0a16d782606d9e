// mdsbench -- NFSv4.1 metadata benchmark client (one TCP connection, one session, up to QD
// COMPOUNDs in flight on QD session slots). Drives loom-mds and nfs-ganesha identically.
//
// Why not libnfs: libnfs 4.0's NFSv4 support is NFSv4.0 only (SETCLIENTID, minorversion 0);
// loom-mds serves 4.1/4.2 and correctly answers NFS4ERR_MINOR_VERS_MISMATCH. See
// bench/README.md. This client is built on the project's RPC client (rpc::RpcClient, async,
// replies matched by xid) and the NFSv4 operation builders of src/nfs4/simple_client.h.
//
// Phases, per --qd value, in a fresh directory under the export root (with --dirs D > 1, in D
// subdirectories of it: file i lives in subdirectory i % D):
//   create   OPEN(CREATE, GUARDED4, WRITE, no delegation)+GETFH+GETATTR, then CLOSE
//            (2 COMPOUNDs per file; latency = OPEN sent -> CLOSE reply). The server's VmRSS
//            (/proc/PID/status of the first --cpu-pid) is read before and after it.
//   stat     PUTFH(file)+GETATTR (the attributes `stat` needs), checks type and size
//   open     OPEN(NOCREATE, READ, CLAIM_NULL by name in the directory)+GETFH+GETATTR, then
//            CLOSE: what the Linux client sends for open(2)/close(2) of an existing file
//   readdir  READDIR chain over each directory (names, type, fileid), --readdir-repeat
//            times; readdirplus: the same with stat attributes + filehandle (`ls -l`)
//            (only in the first --qd round: a READDIR chain is sequential by nature)
//   rename   PUTFH(dir) SAVEFH PUTFH(dir) RENAME(fNNNNNNN -> rNNNNNNN)
//   remove   PUTFH(dir) REMOVE(rNNNNNNN); then the directories are removed (must be empty)
// --phases picks a subset (create always runs: the others work on its files). One JSON line
// per (qd, op) on stdout. Server CPU time (utime+stime of all threads, from /proc/PID/stat) is
// sampled around each phase for every --cpu-pid NAME=PID.
//
// Nothing here is quadratic in --n: per-file state is one filehandle and one latency sample,
// and a listing is checked against a bitmap of the expected names, so --n 1000000 works.
//
// Exit: 0 ok, 2 usage, 3 verification error (wrong attributes/listing), 4 NFS/RPC error.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/proc_stat.h"
#include "nfs4/simple_client.h"
#include "rpc/client.h"
#include "rpc/event_loop.h"
#include "xdr/nfs4.h"

using namespace loom;
using namespace loom::nfs4;
using namespace loom::nfs4::simple;
using Clock = std::chrono::steady_clock;

namespace {

double Secs(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// ---- options ---------------------------------------------------------------------------
struct Options {
  std::string server;  // host:port
  std::string target = "server";
  size_t n = 10000;
  std::vector<int> qds = {1, 16};
  size_t dirs = 1;
  std::set<std::string> phases;  // empty: all
  int readdir_repeat = 3;
  uint32_t readdir_bytes = 65536;
  std::vector<std::pair<std::string, pid_t>> cpu_pids;  // first one is "the server"
  std::string json_extra;
  int timeout_ms = 60000;

  bool Want(const std::string& phase) const { return phases.empty() || phases.count(phase) > 0; }
};

// In the order they run.
const std::vector<std::string> kPhases = {"create",      "stat",   "open",  "readdir",
                                          "readdirplus", "rename", "remove"};

void Usage() {
  std::fprintf(stderr,
               "usage: mdsbench --server HOST:PORT [options]\n"
               "  --target NAME          label in the JSON (loom, ganesha, ...)\n"
               "  --n N                  files per round (default 10000)\n"
               "  --qd LIST              comma list of requests in flight (default 1,16)\n"
               "  --dirs D               spread the files over D subdirectories (default 1: all\n"
               "                         in the round's directory itself)\n"
               "  --phases LIST          comma list out of create,stat,open,readdir,readdirplus,\n"
               "                         rename,remove (default all; create always runs)\n"
               "  --readdir-repeat R     full listings per readdir variant (default 3)\n"
               "  --readdir-bytes B      READDIR maxcount/dircount (default 65536)\n"
               "  --cpu-pid NAME=PID     sample utime+stime of PID around each phase, and VmRSS\n"
               "                         around create; the first one is the server (ops per\n"
               "                         server CPU second, RSS per file); repeat\n"
               "  --json-extra 'K:V,...' raw JSON members appended to every line\n"
               "  --timeout-ms MS        per-RPC timeout (default 60000)\n");
}

// ---- /proc sampling ----------------------------------------------------------------------
// VmRSS in KiB (the resident set, shared pages included), -1 when PID is gone.
long long ProcRssKib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoll(line.c_str() + 6, nullptr, 10);
  return -1;
}

std::string LoadAvg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

// ---- JSON output --------------------------------------------------------------------------
struct Json {
  std::string s = "{";
  Json& raw(const std::string& k, const std::string& v) {
    if (s.size() > 1) s += ",";
    s += "\"" + k + "\":" + v;
    return *this;
  }
  Json& str(const std::string& k, const std::string& v) {
    std::string e;
    for (char c : v) {
      if (c == '"' || c == '\\') e += '\\';
      if (static_cast<unsigned char>(c) < 0x20) continue;
      e += c;
    }
    return raw(k, "\"" + e + "\"");
  }
  Json& num(const std::string& k, double v, int prec = 4) {
    if (!std::isfinite(v)) return raw(k, "null");
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", prec, v);
    return raw(k, b);
  }
  Json& u(const std::string& k, uint64_t v) { return raw(k, std::to_string(v)); }
  std::string done(const std::string& extra) {
    if (!extra.empty()) s += "," + extra;
    return s + "}";
  }
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::ceil(p * v.size()));
  if (i > 0) i--;
  return v[std::min(i, v.size() - 1)];
}

// ---- attribute bits ------------------------------------------------------------------------
// What `stat` needs (the Linux client's nfs4_fattr_bitmap, roughly).
const std::vector<uint32_t> kStatAttrs = {
    FATTR4_TYPE,        FATTR4_CHANGE,      FATTR4_SIZE,       FATTR4_FSID,
    FATTR4_FILEID,      FATTR4_MODE,        FATTR4_NUMLINKS,   FATTR4_OWNER,
    FATTR4_OWNER_GROUP, FATTR4_RAWDEV,      FATTR4_SPACE_USED, FATTR4_TIME_ACCESS,
    FATTR4_TIME_METADATA, FATTR4_TIME_MODIFY, FATTR4_MOUNTED_ON_FILEID};
// Plain readdir (`ls`, `find`): names plus type and fileid.
const std::vector<uint32_t> kReaddirAttrs = {FATTR4_TYPE, FATTR4_RDATTR_ERROR, FATTR4_FILEID,
                                             FATTR4_MOUNTED_ON_FILEID};
std::vector<uint32_t> ReaddirPlusAttrs() {
  auto v = kStatAttrs;
  v.push_back(FATTR4_RDATTR_ERROR);
  v.push_back(FATTR4_FILEHANDLE);
  return v;
}

bool BitSet(const std::vector<uint32_t>& mask, uint32_t bit) {
  return bit / 32 < mask.size() && (mask[bit / 32] >> (bit % 32)) & 1;
}
uint32_t BE32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}
// type (bit 1) is the first value; change (bit 3, u64) and size (bit 4, u64) follow.
bool CheckRegEmpty(const fattr4& a, std::string* why) {
  if (!BitSet(a.attrmask, FATTR4_TYPE) || !BitSet(a.attrmask, FATTR4_CHANGE) ||
      !BitSet(a.attrmask, FATTR4_SIZE) || BitSet(a.attrmask, FATTR4_SUPPORTED_ATTRS) ||
      a.attr_vals.size < 20) {
    *why = "attributes missing type/change/size";
    return false;
  }
  uint32_t type = BE32(a.attr_vals.data);
  uint64_t size = (uint64_t(BE32(a.attr_vals.data + 12)) << 32) | BE32(a.attr_vals.data + 16);
  if (type != NF4REG || size != 0) {
    *why = "type " + std::to_string(type) + " size " + std::to_string(size) + " (want 1, 0)";
    return false;
  }
  return true;
}

std::string FileName(char prefix, size_t i) {
  char b[32];
  std::snprintf(b, sizeof b, "%c%07zu", prefix, i);
  return b;
}

// ---- the client --------------------------------------------------------------------------
struct Outcome {
  bool ok = false;
  nfsstat4 status = NFS4_OK;
  std::string error;  // transport / decode error
  std::shared_ptr<COMPOUND4res> res;
};
using Done = std::function<void(Outcome)>;

class Client {
 public:
  explicit Client(const Options& o) : o_(o), loops_(1) {}

  std::string Setup() {
    loops_.Start();
    rpc::RpcClient::Options ro;
    ro.timeout_ms = o_.timeout_ms;
    auto c = rpc::RpcClient::Connect(loops_.At(0), o_.server, ro);
    if (!c.ok()) return "connect " + o_.server + ": " + c.status().ToString();
    rpc_ = c.value();
    // Delayed retries (NFS4ERR_DELAY) are run by this timer on the loop thread.
    loops_.At(0)->Every(1, [this] {
      RunDelayed();
      return true;
    });

    auto x = Op(OP_EXCHANGE_ID);
    x.opexchange_id = std::make_unique<EXCHANGE_ID4args>();
    char owner[128];
    std::snprintf(owner, sizeof owner, "mdsbench-%d-%lld", int(getpid()),
                  (long long)std::chrono::system_clock::now().time_since_epoch().count());
    x.opexchange_id->eia_clientowner.co_ownerid = Bytes::Copy(std::string(owner));
    uint64_t v = std::chrono::system_clock::now().time_since_epoch().count();
    std::memcpy(x.opexchange_id->eia_clientowner.co_verifier.data(), &v, 8);
    x.opexchange_id->eia_state_protect.spa_how = SP4_NONE;
    auto r = RawSync(std::move(x));
    if (!r.ok) return "EXCHANGE_ID: " + Describe(r);
    const auto& eir = r.res->resarray[0].opexchange_id->eir_resok4;
    clientid_ = eir.eir_clientid;

    auto cs = Op(OP_CREATE_SESSION);
    cs.opcreate_session = std::make_unique<CREATE_SESSION4args>();
    auto& ca = *cs.opcreate_session;
    ca.csa_clientid = clientid_;
    ca.csa_sequence = eir.eir_sequenceid;
    ca.csa_flags = 0;  // no back channel: we never take delegations or layouts
    ca.csa_fore_chan_attrs = channel_attrs4{0, 1 << 20, 1 << 20, 64 << 10, 16, 64, {}};
    ca.csa_back_chan_attrs = channel_attrs4{0, 4096, 4096, 0, 2, 1, {}};
    ca.csa_cb_program = 0x40000000;
    r = RawSync(std::move(cs));
    if (!r.ok) return "CREATE_SESSION: " + Describe(r);
    const auto& csr = r.res->resarray[0].opcreate_session->csr_resok4;
    session_ = csr.csr_sessionid;
    nslots_ = std::max<uint32_t>(1, csr.csr_fore_chan_attrs.ca_maxrequests);
    max_resp_ = csr.csr_fore_chan_attrs.ca_maxresponsesize;
    slot_seq_.assign(nslots_, 0);

    auto rc = Op(OP_RECLAIM_COMPLETE);
    rc.opreclaim_complete = std::make_unique<RECLAIM_COMPLETE4args>();
    r = CallSync(0, Ops(std::move(rc)), true);
    if (!r.ok && r.status != NFS4ERR_COMPLETE_ALREADY) return "RECLAIM_COMPLETE: " + Describe(r);

    r = CallSync(0, Ops(PutRootFh(), GetFh()), false);
    if (!r.ok) return "PUTROOTFH+GETFH: " + Describe(r);
    root_ = r.res->resarray[2].opgetfh->resok4.object;
    return "";
  }

  void Teardown() {
    if (!rpc_) return;
    auto d = Op(OP_DESTROY_SESSION);
    d.opdestroy_session = std::make_unique<DESTROY_SESSION4args>();
    d.opdestroy_session->dsa_sessionid = session_;
    RawSync(std::move(d));
    auto dc = Op(OP_DESTROY_CLIENTID);
    dc.opdestroy_clientid = std::make_unique<DESTROY_CLIENTID4args>();
    dc.opdestroy_clientid->dca_clientid = clientid_;
    RawSync(std::move(dc));
    rpc_->Close();
    loops_.Stop();
  }

  template <typename... T>
  static std::vector<nfs_argop4> Ops(T&&... ops) {
    std::vector<nfs_argop4> v;
    (v.push_back(std::forward<T>(ops)), ...);
    return v;
  }

  static std::string Describe(const Outcome& o) {
    if (!o.error.empty()) return o.error;
    std::string s = "status " + std::to_string(int(o.status));
    if (o.res && !o.res->resarray.empty())
      s += " at op " + std::to_string(int(o.res->resarray.back().resop)) + " (#" +
           std::to_string(o.res->resarray.size() - 1) + " of the COMPOUND)";
    return s;
  }

  // SEQUENCE(slot) + ops, asynchronously. `done` runs on the loop thread.
  void Call(uint32_t slot, std::vector<nfs_argop4> ops, bool cachethis, Done done) {
    auto args = std::make_shared<COMPOUND4args>();
    args->minorversion = 1;
    auto s = Op(OP_SEQUENCE);
    s.opsequence = std::make_unique<SEQUENCE4args>();
    args->argarray.reserve(ops.size() + 1);
    args->argarray.push_back(std::move(s));
    for (auto& op : ops) args->argarray.push_back(std::move(op));
    Send(slot, std::move(args), cachethis, std::move(done), 0);
  }
  Outcome CallSync(uint32_t slot, std::vector<nfs_argop4> ops, bool cachethis) {
    std::promise<Outcome> p;
    auto f = p.get_future();
    Call(slot, std::move(ops), cachethis, [&p](Outcome o) { p.set_value(std::move(o)); });
    return f.get();
  }

  uint32_t nslots() const { return nslots_; }
  uint32_t max_resp() const { return max_resp_; }
  const Bytes& root() const { return root_; }
  rpc::EventLoop* loop() { return loops_.At(0); }
  std::atomic<uint64_t> delay_retries{0};
  std::atomic<uint64_t> rpcs{0};

 private:
  void Send(uint32_t slot, std::shared_ptr<COMPOUND4args> args, bool cachethis, Done done,
            int attempt) {
    auto& sq = *args->argarray[0].opsequence;
    sq.sa_sessionid = session_;
    sq.sa_slotid = slot;
    sq.sa_sequenceid = ++slot_seq_[slot];
    sq.sa_highest_slotid = nslots_ - 1;
    sq.sa_cachethis = cachethis;
    rpcs++;
    rpc_->CallAsync(
        NFS4_PROGRAM, NFS_V4, NFSPROC4_COMPOUND, cred_,
        [&](xdr::Encoder& e) { xdr_encode(e, *args); },
        [this, slot, args, cachethis, done = std::move(done), attempt](Result<rpc::Reply> r) mutable {
          Outcome o;
          if (!r.ok()) {
            o.error = "RPC: " + r.status().ToString();
            done(std::move(o));
            return;
          }
          o.res = std::make_shared<COMPOUND4res>();
          xdr::Decoder d = r->results();
          if (!xdr_decode(d, *o.res)) {
            o.error = "undecodable COMPOUND4res";
            done(std::move(o));
            return;
          }
          o.status = o.res->status;
          if (o.status == NFS4ERR_DELAY && attempt < 1000) {
            // RFC 8881 §2.10.6.1: a SEQUENCE that fails leaves the slot's sequence id as it was.
            if (o.res->resarray.size() <= 1) slot_seq_[slot]--;
            delay_retries++;
            Delay(2, [this, slot, args, cachethis, done = std::move(done), attempt]() mutable {
              Send(slot, std::move(args), cachethis, std::move(done), attempt + 1);
            });
            return;
          }
          o.ok = o.status == NFS4_OK;
          done(std::move(o));
        });
  }

  Outcome RawSync(nfs_argop4 op) {
    COMPOUND4args args;
    args.minorversion = 1;
    args.argarray.push_back(std::move(op));
    Outcome o;
    rpcs++;
    auto r = rpc_->CallSync(NFS4_PROGRAM, NFS_V4, NFSPROC4_COMPOUND, cred_,
                            [&](xdr::Encoder& e) { xdr_encode(e, args); });
    if (!r.ok()) {
      o.error = "RPC: " + r.status().ToString();
      return o;
    }
    o.res = std::make_shared<COMPOUND4res>();
    xdr::Decoder d = r->results();
    if (!xdr_decode(d, *o.res)) {
      o.error = "undecodable COMPOUND4res";
      return o;
    }
    o.status = o.res->status;
    o.ok = o.status == NFS4_OK;
    return o;
  }

  void Delay(int ms, std::function<void()> fn) {
    std::lock_guard<std::mutex> g(dmu_);
    delayed_.push_back({Clock::now() + std::chrono::milliseconds(ms), std::move(fn)});
  }
  void RunDelayed() {
    std::vector<std::function<void()>> run;
    {
      std::lock_guard<std::mutex> g(dmu_);
      auto now = Clock::now();
      while (!delayed_.empty() && delayed_.front().first <= now) {
        run.push_back(std::move(delayed_.front().second));
        delayed_.pop_front();
      }
    }
    for (auto& f : run) f();
  }

  const Options& o_;
  rpc::LoopGroup loops_;
  std::shared_ptr<rpc::RpcClient> rpc_;
  rpc::Cred cred_ = rpc::Cred::Sys(0, 0, {}, "mdsbench");
  clientid4 clientid_ = 0;
  sessionid4 session_{};
  uint32_t nslots_ = 1;
  uint32_t max_resp_ = 1 << 20;
  std::vector<uint32_t> slot_seq_;  // touched on the loop thread only (and before/after phases)
  Bytes root_;
  std::mutex dmu_;
  std::deque<std::pair<Clock::time_point, std::function<void()>>> delayed_;
};

// ---- phases ----------------------------------------------------------------------------------
struct PhaseResult {
  std::string op;
  int qd = 1;
  size_t ops = 0;       // completed operations (for readdir*: directory entries listed)
  uint64_t rpcs = 0;    // COMPOUNDs sent
  double seconds = 0;   // first request sent -> last reply
  std::vector<double> lat_us;  // per operation (readdir*: per READDIR COMPOUND)
  std::vector<double> cpu;     // per --cpu-pid
  std::vector<long long> rss_before_kib, rss_after_kib;  // per --cpu-pid, -1 if unreadable
  double client_cpu = 0;
  uint64_t delay_retries = 0;
  // readdir only
  std::vector<double> listing_s;
  size_t entries_per_listing = 0;
  double t_start = 0, t_end = 0;  // wall clock (Unix seconds), to line up with server traces
  std::string error;
  bool verify_error = false;
};

class Bench {
 public:
  Bench(const Options& o, Client& c) : o_(o), c_(c) {}

  struct Sampler {
    std::vector<double> cpu0;
    std::vector<long long> rss0;
    double self0, wall0;
    uint64_t rpc0, delay0;
  };
  static double Now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  }
  Sampler Begin() {
    Sampler s;
    s.wall0 = Now();
    for (auto& [n, p] : o_.cpu_pids) {
      s.rss0.push_back(ProcRssKib(p));
      s.cpu0.push_back(ProcCpuSeconds(p));
    }
    s.self0 = SelfCpuSeconds();
    s.rpc0 = c_.rpcs.load();
    s.delay0 = c_.delay_retries.load();
    return s;
  }
  void End(const Sampler& s, PhaseResult* r) {
    r->t_start = s.wall0;
    r->t_end = Now();
    for (size_t i = 0; i < o_.cpu_pids.size(); i++) {
      r->cpu.push_back(ProcCpuSeconds(o_.cpu_pids[i].second) - s.cpu0[i]);
      r->rss_before_kib.push_back(s.rss0[i]);
      r->rss_after_kib.push_back(ProcRssKib(o_.cpu_pids[i].second));
    }
    r->client_cpu = SelfCpuSeconds() - s.self0;
    r->rpcs = c_.rpcs.load() - s.rpc0;
    r->delay_retries = c_.delay_retries.load() - s.delay0;
  }

  // Runs job(slot, i, done) for i in [0, n) with up to qd in flight (one slot per lane).
  using Job = std::function<void(uint32_t slot, size_t i, std::function<void(std::string err)> done)>;

  // OPEN (with GETFH and GETATTR) in `dir`, then CLOSE with the stateid it returned; `fh_ok`
  // checks the filehandle (an error text, or "" to go on).
  void OpenClose(uint32_t slot, const Bytes& dir, nfs_argop4 open,
                 std::function<void(std::string)> done,
                 std::function<std::string(const Bytes&)> fh_ok) {
    c_.Call(slot, Client::Ops(PutFh(dir), std::move(open), GetFh(), Getattr(kStatAttrs)), true,
            [this, slot, done, fh_ok](Outcome o) {
              if (!o.ok) return done(Client::Describe(o));
              auto& ores = *o.res->resarray[2].opopen;
              const Bytes& got = o.res->resarray[3].opgetfh->resok4.object;
              std::string why = fh_ok(got);
              if (!why.empty()) return done(why);
              if (!CheckRegEmpty(o.res->resarray[4].opgetattr->resok4.obj_attributes, &why))
                return done("VERIFY: OPEN+GETATTR: " + why);
              c_.Call(slot, Client::Ops(PutFh(got), Close(ores.resok4.stateid)), true,
                      [done](Outcome c) { done(c.ok ? "" : "CLOSE: " + Client::Describe(c)); });
            });
  }
  PhaseResult Run(const std::string& op, size_t n, int qd, Job job) {
    PhaseResult r;
    r.op = op;
    r.qd = qd;
    r.lat_us.assign(n, 0);
    struct State {
      std::atomic<size_t> next{0};
      std::atomic<size_t> completed{0};
      std::atomic<bool> abort{false};
      int lanes_left = 0;
      std::string first_error;
      Clock::time_point last;
      std::promise<void> finished;
    };
    auto st = std::make_shared<State>();
    int lanes = static_cast<int>(std::min<size_t>({size_t(qd), size_t(c_.nslots()), std::max<size_t>(n, 1)}));
    st->lanes_left = lanes;
    auto smp = Begin();
    auto t0 = Clock::now();
    st->last = t0;
    std::function<void(uint32_t)> lane = [&, st](uint32_t slot) {
      size_t i = st->next.fetch_add(1);
      if (i >= n || st->abort.load()) {
        if (--st->lanes_left == 0) st->finished.set_value();
        return;
      }
      auto ts = Clock::now();
      job(slot, i, [&, st, slot, i, ts](std::string err) {
        auto te = Clock::now();
        r.lat_us[i] = std::chrono::duration<double, std::micro>(te - ts).count();
        st->last = te;
        if (!err.empty()) {
          if (st->first_error.empty()) st->first_error = op + " #" + std::to_string(i) + ": " + err;
          st->abort = true;
        } else {
          st->completed++;
        }
        lane(slot);
      });
    };
    c_.loop()->Post([&, lanes] {
      for (int l = 0; l < lanes; l++) lane(static_cast<uint32_t>(l));
    });
    st->finished.get_future().wait();
    End(smp, &r);
    r.seconds = Secs(t0, st->last);
    r.ops = st->completed.load();
    r.lat_us.resize(std::min(r.lat_us.size(), r.ops));
    r.error = st->first_error;
    r.verify_error = r.error.find("VERIFY:") != std::string::npos;
    return r;
  }

  std::string Expect(const Outcome& o) { return o.ok ? "" : Client::Describe(o); }

  // One full READDIR chain; appends per-COMPOUND latencies; returns names or error.
  std::string ListOnce(const Bytes& dir, const std::vector<uint32_t>& bits, std::vector<double>* lat,
                       std::vector<std::string>* names) {
    uint64_t cookie = 0;
    std::array<uint8_t, NFS4_VERIFIER_SIZE> verf{};
    uint32_t bytes = std::min<uint32_t>(o_.readdir_bytes, c_.max_resp() > 2048 ? c_.max_resp() - 1024 : 1024);
    for (int guard = 0; guard < 10000000; guard++) {
      auto rd = Readdir(cookie, bytes, bits);
      rd.opreaddir->cookieverf = verf;
      rd.opreaddir->dircount = bytes;
      auto t = Clock::now();
      auto o = c_.CallSync(0, Client::Ops(PutFh(dir), std::move(rd)), false);
      lat->push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
      if (!o.ok) return "READDIR: " + Client::Describe(o);
      auto& ok = o.res->resarray[2].opreaddir->resok4;
      for (auto& e : ok.reply.entries) {
        names->emplace_back(e.name.view());
        cookie = e.cookie;
      }
      verf = ok.cookieverf;
      if (ok.reply.eof) return "";
      if (ok.reply.entries.empty()) return "READDIR: no entries and no eof";
    }
    return "READDIR: too many rounds";
  }

  // Lists every directory of the round --readdir-repeat times. File i must show up once, in
  // dirs[i % dirs.size()], and nothing else may: checked exactly, with a bitmap over [0, n).
  PhaseResult Listing(const std::string& op, const std::vector<Bytes>& dirs,
                      const std::vector<uint32_t>& bits, size_t n) {
    PhaseResult r;
    r.op = op;
    r.qd = 1;
    const size_t nd = dirs.size();
    auto smp = Begin();
    auto t0 = Clock::now();
    std::vector<bool> seen;
    for (int k = 0; k < o_.readdir_repeat && r.error.empty(); k++) {
      seen.assign(n, false);
      size_t listed = 0;
      auto ts = Clock::now();
      for (size_t d = 0; d < nd && r.error.empty(); d++) {
        std::vector<std::string> names;
        std::string err = ListOnce(dirs[d], bits, &r.lat_us, &names);
        if (!err.empty()) {
          r.error = op + ": " + err;
          break;
        }
        listed += names.size();
        std::string bad = CheckListing(names, d, nd, n, &seen);
        if (!bad.empty()) {
          std::string where = nd > 1 ? " of directory " + std::to_string(d) : "";
          r.error = "VERIFY: " + op + where + ": " + bad;
          r.verify_error = true;
        }
      }
      r.listing_s.push_back(Secs(ts, Clock::now()));
      r.ops += listed;
      r.entries_per_listing = listed;
      if (r.error.empty() && listed != n) {
        r.error = "VERIFY: " + op + " listed " + std::to_string(listed) + " entries, expected " +
                  std::to_string(n);
        r.verify_error = true;
      }
    }
    End(smp, &r);
    r.seconds = Secs(t0, Clock::now());
    return r;
  }

  // Every name must be fNNNNNNN with NNNNNNN < n, in directory NNNNNNN % nd == d, not seen before.
  static std::string CheckListing(const std::vector<std::string>& names, size_t d, size_t nd,
                                  size_t n, std::vector<bool>* seen) {
    size_t expect = n / nd + (d < n % nd ? 1 : 0);
    for (const auto& name : names) {
      char* end = nullptr;
      unsigned long long i = name.size() > 1 && name[0] == 'f' && std::isdigit(uint8_t(name[1]))
                                 ? std::strtoull(name.c_str() + 1, &end, 10)
                                 : n;
      if (end == nullptr || *end != '\0' || i >= n || i % nd != d || FileName('f', i) != name)
        return "unexpected name '" + name + "'";
      if ((*seen)[i]) return "'" + name + "' listed twice";
      (*seen)[i] = true;
    }
    if (names.size() != expect)
      return std::to_string(names.size()) + " entries, expected " + std::to_string(expect);
    return "";
  }

  std::string Emit(const PhaseResult& r) {
    Json j;
    j.str("bench", "mdsbench").str("target", o_.target).str("op", r.op).u("qd", r.qd);
    j.u("n", o_.n).u("dirs", o_.dirs).u("ops", r.ops).u("rpcs", r.rpcs).num("seconds", r.seconds, 6);
    const bool listing = r.op.rfind("readdir", 0) == 0;
    double rate = r.seconds > 0 ? r.ops / r.seconds : NAN;
    // A listing's rate is that of the median full listing (the first one may be cold).
    double med_listing = Percentile(r.listing_s, 0.5);
    if (listing) rate = med_listing > 0 ? r.entries_per_listing / med_listing : NAN;
    j.num("ops_s", rate, 1);
    j.num("p50_us", Percentile(r.lat_us, 0.50), 1).num("p99_us", Percentile(r.lat_us, 0.99), 1);
    j.str("latency_of", listing ? "one READDIR COMPOUND" : "one operation");
    if (listing) {
      j.u("entries", r.entries_per_listing).u("listings", r.listing_s.size());
      j.num("listing_s", med_listing, 6).num("entries_s", rate, 1);
      j.num("first_listing_s", r.listing_s.empty() ? NAN : r.listing_s[0], 6);
      j.num("entries_per_rpc", r.rpcs ? double(r.ops) / r.rpcs : NAN, 1);
      j.u("readdir_bytes", o_.readdir_bytes);
    }
    for (size_t i = 0; i < o_.cpu_pids.size() && i < r.cpu.size(); i++) {
      const std::string& name = o_.cpu_pids[i].first;
      double c = r.cpu[i];
      j.num(name + "_cpu_s", c, 3);
      j.num(name + "_cpu_s_per_1000_ops", r.ops ? c * 1000.0 / r.ops : NAN, 4);
      if (i == 0) {
        j.num("server_cpu_s", c, 3);
        j.num("server_cpu_s_per_1000_ops", r.ops ? c * 1000.0 / r.ops : NAN, 4);
        j.num("ops_per_server_cpu_s", c > 0 ? r.ops / c : NAN, 1);
      }
    }
    // Memory: the server's resident set after every phase; around create also the growth per
    // file created (shared pages and allocator slack included: what the machine pays).
    if (!r.rss_after_kib.empty() && r.rss_after_kib[0] >= 0)
      j.raw("server_rss_kib", std::to_string(r.rss_after_kib[0]));
    if (r.op == "create") {
      for (size_t i = 0; i < o_.cpu_pids.size() && i < r.rss_after_kib.size(); i++) {
        long long b = r.rss_before_kib[i], a = r.rss_after_kib[i];
        if (b < 0 || a < 0) continue;
        double per_file = r.ops ? double(a - b) * 1024.0 / double(r.ops) : NAN;
        const std::string& name = o_.cpu_pids[i].first;
        j.raw(name + "_rss_before_kib", std::to_string(b));
        j.raw(name + "_rss_after_kib", std::to_string(a));
        j.num(name + "_rss_bytes_per_file", per_file, 1);
        if (i == 0) {
          j.raw("rss_before_kib", std::to_string(b)).raw("rss_after_kib", std::to_string(a));
          j.num("rss_bytes_per_file", per_file, 1);
        }
      }
    }
    j.num("client_cpu_s", r.client_cpu, 3).u("delay_retries", r.delay_retries);
    j.str("loadavg", LoadAvg()).num("t_start", r.t_start, 6).num("t_end", r.t_end, 6);
    if (!r.error.empty()) j.str("error", r.error);
    std::string line = j.done(o_.json_extra);
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    return line;
  }

  // Returns 0, 3 or 4.
  int RunRound(int qd, bool with_readdir) {
    const size_t n = o_.n;
    const size_t nd = o_.dirs;
    char dname[96];
    std::snprintf(dname, sizeof dname, "mdsbench.%d.q%d", int(getpid()), qd);
    auto o = c_.CallSync(0, Client::Ops(PutFh(c_.root()), Mkdir(dname, 0755), GetFh()), true);
    if (!o.ok) {
      std::fprintf(stderr, "mdsbench: mkdir %s: %s\n", dname, Client::Describe(o).c_str());
      return 4;
    }
    Bytes top = o.res->resarray[3].opgetfh->resok4.object;
    // With one directory the files live in the round's directory itself (as before --dirs
    // existed, so the numbers stay comparable); with D, in its subdirectories dNNNN.
    std::vector<Bytes> dirs;
    if (nd == 1) dirs.push_back(top);
    for (size_t d = 0; nd > 1 && d < nd; d++) {
      o = c_.CallSync(0, Client::Ops(PutFh(top), Mkdir(SubdirName(d), 0755), GetFh()), true);
      if (!o.ok) {
        std::fprintf(stderr, "mdsbench: mkdir %s/%s: %s\n", dname, SubdirName(d).c_str(),
                     Client::Describe(o).c_str());
        return 4;
      }
      dirs.push_back(o.res->resarray[3].opgetfh->resok4.object);
    }
    auto dir = [&](size_t i) -> const Bytes& { return dirs[i % nd]; };
    std::vector<Bytes> fh(n);
    int rc = 0;
    auto account = [&](const PhaseResult& r) {
      Emit(r);
      if (!r.error.empty()) {
        std::fprintf(stderr, "mdsbench: %s: %s\n", o_.target.c_str(), r.error.c_str());
        if (rc == 0) rc = r.verify_error ? 3 : 4;
      }
      return r.error.empty();
    };
    std::fprintf(stderr, "mdsbench: %s qd %d: create %zu files in %s%s\n", o_.target.c_str(), qd, n,
                 dname, nd > 1 ? (" (" + std::to_string(nd) + " subdirectories)").c_str() : "");

    // create + close
    bool ok = account(Run("create", n, qd, [&](uint32_t slot, size_t i, auto done) {
      std::string owner = "mdsbench-owner-" + std::to_string(slot);
      auto open = Open(owner, FileName('f', i),
                       OPEN4_SHARE_ACCESS_WRITE | OPEN4_SHARE_ACCESS_WANT_NO_DELEG, true, true);
      OpenClose(slot, dir(i), std::move(open), done, [&fh, i](const Bytes& got) {
        fh[i] = got;
        return std::string();
      });
    }));
    if (!ok) return rc;

    if (o_.Want("stat")) {
      ok = account(Run("stat", n, qd, [&](uint32_t slot, size_t i, auto done) {
        c_.Call(slot, Client::Ops(PutFh(fh[i]), Getattr(kStatAttrs)), false, [done](Outcome o) {
          if (!o.ok) return done(Client::Describe(o));
          std::string why;
          if (!CheckRegEmpty(o.res->resarray[2].opgetattr->resok4.obj_attributes, &why))
            return done("VERIFY: GETATTR: " + why);
          done("");
        });
      }));
      if (!ok) return rc;
    }

    // open + close of an existing file by name, as the Linux client does for open(O_RDONLY):
    // OPEN4_NOCREATE with CLAIM_NULL relative to the directory (RFC 8881 §18.16.3), then CLOSE
    // with the stateid it returned. Both carry state, so both go through the reply cache.
    if (o_.Want("open")) {
      ok = account(Run("open", n, qd, [&](uint32_t slot, size_t i, auto done) {
        std::string owner = "mdsbench-owner-" + std::to_string(slot);
        auto open = Open(owner, FileName('f', i),
                         OPEN4_SHARE_ACCESS_READ | OPEN4_SHARE_ACCESS_WANT_NO_DELEG, false);
        OpenClose(slot, dir(i), std::move(open), done, [&fh, i](const Bytes& got) {
          // Both servers hand out persistent filehandles: the name must lead to the file
          // create made.
          return got.view() == fh[i].view()
                     ? std::string()
                     : std::string("VERIFY: OPEN returned another filehandle than create's");
        });
      }));
      if (!ok) return rc;
    }

    if (with_readdir && o_.readdir_repeat > 0 && (o_.Want("readdir") || o_.Want("readdirplus"))) {
      std::fprintf(stderr, "mdsbench: %s: readdir x%d\n", o_.target.c_str(), o_.readdir_repeat);
      if (o_.Want("readdir") && !account(Listing("readdir", dirs, kReaddirAttrs, n))) return rc;
      if (o_.Want("readdirplus") && !account(Listing("readdirplus", dirs, ReaddirPlusAttrs(), n)))
        return rc;
    }

    char prefix = 'f';  // the files' names now
    if (o_.Want("rename")) {
      ok = account(Run("rename", n, qd, [&](uint32_t slot, size_t i, auto done) {
        c_.Call(slot,
                Client::Ops(PutFh(dir(i)), SaveFh(), PutFh(dir(i)),
                            Rename(FileName('f', i), FileName('r', i))),
                true, [done](Outcome o) { done(o.ok ? "" : Client::Describe(o)); });
      }));
      if (!ok) return rc;
      prefix = 'r';
    }

    if (!o_.Want("remove")) {
      std::fprintf(stderr, "mdsbench: %s: no remove phase: %zu files left in %s\n",
                   o_.target.c_str(), n, dname);
      return rc;
    }
    ok = account(Run("remove", n, qd, [&](uint32_t slot, size_t i, auto done) {
      c_.Call(slot, Client::Ops(PutFh(dir(i)), Remove(FileName(prefix, i))), true,
              [done](Outcome o) { done(o.ok ? "" : Client::Describe(o)); });
    }));
    if (!ok) return rc;

    // Each directory must be empty now, or REMOVE fails with NFS4ERR_NOTEMPTY.
    for (size_t d = 0; nd > 1 && d < nd; d++) {
      o = c_.CallSync(0, Client::Ops(PutFh(top), Remove(SubdirName(d))), true);
      if (!o.ok) {
        std::fprintf(stderr, "mdsbench: VERIFY: removing the (now empty) directory %s/%s: %s\n",
                     dname, SubdirName(d).c_str(), Client::Describe(o).c_str());
        return 3;
      }
    }
    o = c_.CallSync(0, Client::Ops(PutFh(c_.root()), Remove(dname)), true);
    if (!o.ok) {
      std::fprintf(stderr, "mdsbench: VERIFY: removing the (now empty) directory %s: %s\n", dname,
                   Client::Describe(o).c_str());
      return 3;
    }
    return rc;
  }

  static std::string SubdirName(size_t d) {
    char b[32];
    std::snprintf(b, sizeof b, "d%04zu", d);
    return b;
  }

 private:
  const Options& o_;
  Client& c_;
};

bool ParseOptions(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "mdsbench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--server") o->server = next();
    else if (a == "--target") o->target = next();
    else if (a == "--n") o->n = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--qd") {
      o->qds.clear();
      std::stringstream ss(next());
      std::string t;
      while (std::getline(ss, t, ','))
        if (!t.empty()) o->qds.push_back(std::atoi(t.c_str()));
    } else if (a == "--dirs") o->dirs = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--phases") {
      o->phases.clear();
      std::stringstream ss(next());
      std::string t;
      while (std::getline(ss, t, ',')) {
        if (t.empty()) continue;
        if (std::find(kPhases.begin(), kPhases.end(), t) == kPhases.end()) {
          std::fprintf(stderr, "mdsbench: unknown phase '%s'\n", t.c_str());
          return false;
        }
        o->phases.insert(t);
      }
      // Every other phase works on the files create makes.
      o->phases.insert("create");
    } else if (a == "--readdir-repeat") o->readdir_repeat = std::atoi(next().c_str());
    else if (a == "--readdir-bytes") o->readdir_bytes = std::strtoul(next().c_str(), nullptr, 10);
    else if (a == "--cpu-pid") {
      std::string v = next();
      auto eq = v.find('=');
      if (eq == std::string::npos || eq == 0) return false;
      o->cpu_pids.push_back({v.substr(0, eq), pid_t(std::atoi(v.c_str() + eq + 1))});
    } else if (a == "--json-extra") o->json_extra = next();
    else if (a == "--timeout-ms") o->timeout_ms = std::atoi(next().c_str());
    else if (a == "-h" || a == "--help") {
      Usage();
      std::exit(0);
    } else {
      std::fprintf(stderr, "mdsbench: unknown option %s\n", a.c_str());
      return false;
    }
  }
  if (o->server.empty() || o->n == 0 || o->qds.empty() || o->dirs == 0 || o->dirs > 100000)
    return false;
  for (int q : o->qds)
    if (q < 1) return false;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseOptions(argc, argv, &o)) {
    Usage();
    return 2;
  }
  Client c(o);
  std::string err = c.Setup();
  if (!err.empty()) {
    std::fprintf(stderr, "mdsbench: %s: session setup failed: %s\n", o.target.c_str(), err.c_str());
    return 4;
  }
  std::fprintf(stderr, "mdsbench: %s: session up, %u slots\n", o.target.c_str(), c.nslots());
  for (int q : o.qds)
    if (uint32_t(q) > c.nslots())
      std::fprintf(stderr, "mdsbench: %s: qd %d capped to the %u slots the server granted\n",
                   o.target.c_str(), q, c.nslots());
  Bench b(o, c);
  int rc = 0;
  for (size_t k = 0; k < o.qds.size() && rc == 0; k++) rc = b.RunRound(o.qds[k], k == 0);
  c.Teardown();
  return rc;
}
