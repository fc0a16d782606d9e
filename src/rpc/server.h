// ONC RPC server (RFC 5531): accepts TCP connections, decodes call headers and credentials,
// dispatches to registered programs, and sends replies, possibly out of order.
//
// Programs register a table of procedures. Each procedure runs on the worker pool (or inline
// on the loop when it cannot block) and writes its results into an xdr::Encoder; the server
// frames the reply. Error replies follow RFC 5531 §9: PROG_UNAVAIL, PROG_MISMATCH (with the
// supported range), PROC_UNAVAIL, GARBAGE_ARGS, RPC_MISMATCH and AUTH_ERROR.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/stats.h"
#include "common/status.h"
#include "rpc/auth.h"
#include "rpc/client.h"
#include "rpc/connection.h"
#include "rpc/event_loop.h"
#include "rpc/export_rules.h"
#include "rpc/reply_cache.h"
#include "xdr/rpc.h"

namespace loom::rpc {

// What a procedure sees of its call.
struct CallContext {
  uint32_t xid = 0;
  uint32_t prog = 0, vers = 0, proc = 0;
  Cred cred;
  std::string peer;  // "ip:port" of the client
  std::weak_ptr<Connection> conn;  // the connection the call came on (for back channels)
  // Set by the export rule that admitted the call ("ro"): procedures that modify anything
  // answer NFS3ERR_ROFS / NFS4ERR_ROFS.
  bool read_only = false;
  // The export rule that admitted the call (owned by the server; for logs: rule->name).
  // `cred` is already mapped by it (root_squash, all_squash).
  const ExportRule* export_rule = nullptr;
  // The protocol-level status of the result (e.g. nfsstat3), set by Typed(); non-zero counts
  // as an error in the procedure's counters even though the RPC itself succeeded.
  mutable int32_t op_status = 0;
  // What a try_inline handler that returned kDeferToWorker left for its worker run, which
  // goes on from there instead of starting over (a COMPOUND stopped after its SEQUENCE).
  mutable std::shared_ptr<void> resume;
  // Set by a try_inline handler that returns kReplyLater: it calls its argument, once, from
  // any thread, when the reply may go (e.g. once what it changed is durable); the server then
  // runs `fn` with `resume` as the handler left it, and sends what that encodes.
  mutable std::function<void(std::function<void()> go)> gate;
  // Whether the handler may return kReplyLater: a try_inline handler always may; on a worker
  // the server sets it when it can hold the reply (a call the RPC reply cache does not track).
  bool reply_later_ok = false;
};

// Decodes arguments from `args`, writes results to `res`. Returns SUCCESS, or GARBAGE_ARGS when
// the arguments do not decode (then `res` is discarded), or SYSTEM_ERR.
using ProcHandler =
    std::function<accept_stat(const CallContext& ctx, xdr::Decoder& args, xdr::Encoder& res)>;

// What a try_inline handler returns when it would have to block: nothing it encoded is sent
// and the call runs `fn` on a worker instead (with CallContext::resume as the handler left
// it). Not an RFC 5531 accept_stat; never on the wire.
inline constexpr accept_stat kDeferToWorker = static_cast<accept_stat>(0x7fffffff);
// What a try_inline handler (or a worker's handler, where CallContext::reply_later_ok) returns
// when its work is done but its reply must wait (CallContext::gate). Not an RFC 5531
// accept_stat; never on the wire.
inline constexpr accept_stat kReplyLater = static_cast<accept_stat>(0x7ffffffe);

struct ProcDesc {
  ProcDesc() = default;
  ProcDesc(const char* n, ProcHandler f, bool idem = true, bool on_loop = false)
      : name(n), fn(std::move(f)), idempotent(idem), inline_ok(on_loop) {}

  const char* name = nullptr;  // nullptr: procedure not implemented (PROC_UNAVAIL)
  ProcHandler fn;
  bool idempotent = true;      // false: replies go through the duplicate request cache
  bool inline_ok = false;      // true: cheap and non-blocking, run on the loop thread
  // Run to completion: tried first on the loop thread (idempotent procedures only). It must
  // not block: it answers what it can from memory and the page cache (RWF_NOWAIT) and returns
  // kDeferToWorker otherwise. Saves the two thread hand-offs of a worker call. Counted as
  // PREFIX.inline.NAME (answered on the loop) and PREFIX.deferred.NAME (went to a worker).
  ProcHandler try_inline;
};

struct ProgramDesc {
  uint32_t prog = 0;
  uint32_t vers = 0;
  std::string stats_prefix;  // e.g. "nfs3": counters are named "nfs3.READ"
  std::vector<ProcDesc> procs;  // indexed by procedure number
};

// Wraps a typed try_inline handler: f(ctx, args, res) returns false when it would block.
template <typename Args, typename Res, typename F>
ProcHandler TypedInline(F f) {
  return [f](const CallContext& ctx, xdr::Decoder& d, xdr::Encoder& e) -> accept_stat {
    Args a;
    if (!xdr_decode(d, a)) return GARBAGE_ARGS;
    Res r;
    if (!f(ctx, a, r)) return kDeferToWorker;
    if constexpr (requires { r.status; }) ctx.op_status = static_cast<int32_t>(r.status);
    xdr_encode(e, r);
    return SUCCESS;
  };
}

// Wraps a typed handler: decode Args (GARBAGE_ARGS if malformed), call f, encode Res.
template <typename Args, typename Res, typename F>
ProcHandler Typed(F f) {
  return [f](const CallContext& ctx, xdr::Decoder& d, xdr::Encoder& e) -> accept_stat {
    Args a;
    if (!xdr_decode(d, a)) return GARBAGE_ARGS;
    Res r;
    f(ctx, a, r);
    if constexpr (requires { r.status; }) ctx.op_status = static_cast<int32_t>(r.status);
    xdr_encode(e, r);
    return SUCCESS;
  };
}

struct ServerOptions {
  std::string listen = "127.0.0.1:2049";  // host:port; port 0 picks a free one
  int loops = 2;
  int workers = 8;
  // Most µs a loop thread polls for its next event before it blocks (EventLoop's PollWindow,
  // which adapts it and stops polling when connections go quiet); 0 turns polling off.
  int poll_us = 50;
  Connection::Options conn;  // conn.budget is set by the server (max_buffered_bytes)
  size_t reply_cache_entries = 8192;

  // Access control (docs/security.md). The first rule matching the peer's address applies;
  // calls from a peer no rule matches are denied (AUTH_ERROR / AUTH_TOOWEAK). The daemons
  // start from ExportRules::Default(); the library default admits everyone as asserted.
  ExportRules exports = ExportRules::AllowAll();
  // When set, Start() loads the rules from this file (replacing `exports`); a syntax error
  // fails Start() with the file name and line.
  std::string exports_file;
  // ADDR or ADDR/PREFIX: put ahead of the rules as rw,no_root_squash (loom-ds --mds: the
  // metadata servers, the only peers whose root is root).
  std::vector<std::string> trusted;

  // Bounds (denial of service). A connection over a cap is closed as soon as it is accepted.
  size_t max_connections = 4096;
  size_t max_connections_per_address = 512;
  // A connection with no call in progress that sent nothing for this long is closed (0: never).
  int idle_timeout_ms = 5 * 60 * 1000;
  // All connections together hold at most this many bytes of partial records.
  size_t max_buffered_bytes = 256u << 20;
  // After accept() fails for lack of descriptors (EMFILE/ENFILE), stop accepting this long.
  int accept_backoff_ms = 100;
};

// The flags loom-ds and loom-mds share: --exports FILE, --max-connections N,
// --max-connections-per-address N, --idle-timeout SECONDS. Returns false when `flag` is none
// of them; otherwise takes its value from next() into *o (a bad value prints a message and
// exits with status 2, as the daemons do for their own flags).
bool ParseServerFlag(const std::string& flag, const std::function<std::string()>& next,
                     ServerOptions* o);
// Usage lines for those flags.
extern const char kServerFlagsUsage[];

// Raises the soft RLIMIT_NOFILE to the hard limit (each connection takes a descriptor).
void RaiseFdLimit();

class RpcServer {
 public:
  explicit RpcServer(ServerOptions opts);
  ~RpcServer();

  // REQUIRES: before Start().
  void Register(ProgramDesc p);
  Status Start();
  void Stop();

  uint16_t port() const { return port_; }
  StatsRegistry& stats() { return stats_; }
  const ReplyCache& reply_cache() const { return drc_; }
  uint64_t connections_accepted() const { return accepted_.load(); }
  // Connections closed at accept because a cap was reached.
  uint64_t connections_refused() const { return refused_.load(); }
  size_t connections_open();
  // Bytes held for partial records by all connections.
  size_t buffered_bytes() const { return budget_->used(); }
  // The rules in force (after Start(): loaded from exports_file, with the trusted ones).
  const ExportRules& exports() const { return opts_.exports; }

 private:
  class Acceptor;
  struct Registered {
    ProgramDesc desc;
    std::vector<OpStats*> stats;
    std::vector<OpStats*> inline_stats, deferred_stats;  // procedures with try_inline
  };
  void OnAccept(int fd, const sockaddr_storage& ss);
  void SweepIdle();
  void OnRecord(const std::shared_ptr<Connection>& c, Record r);
  // Runs `fn` for the call and sends its reply: kSent; or nothing is sent: kDeferred (fn
  // deferred to a worker) or kLater (fn set ctx.gate). `also_count` (if set) counts the call
  // too, before the reply leaves; `start_us` (if set) is when the call began.
  enum class Ran { kSent, kDeferred, kLater };
  Ran Execute(const std::shared_ptr<Connection>& c, const Record& r, const Registered* prog,
              const ProcHandler& fn, const CallContext& ctx, size_t args_off,
              const std::string& drc_key, OpStats* also_count = nullptr, int64_t start_us = 0);
  // After kLater: runs `pd->fn` for the call once its gate opens.
  void ReplyLater(const std::shared_ptr<Connection>& c, Record r, const Registered* prog,
                  const ProcDesc* pd, CallContext ctx, size_t args_off, OpStats* also_count,
                  int64_t start_us);

  ServerOptions opts_;
  std::map<std::pair<uint32_t, uint32_t>, Registered> programs_;
  std::map<uint32_t, std::pair<uint32_t, uint32_t>> version_range_;
  StatsRegistry stats_;
  ReplyCache drc_;
  std::unique_ptr<LoopGroup> loops_;
  std::unique_ptr<WorkerPool> workers_;
  std::unique_ptr<Acceptor> acceptor_;
  std::mutex conns_mu_;
  struct ConnEntry {
    std::shared_ptr<Connection> conn;
    std::string addr;  // peer address without port (the per-address cap's key)
  };
  std::unordered_map<Connection*, ConnEntry> conns_;        // guarded by conns_mu_
  std::unordered_map<std::string, size_t> per_address_;     // guarded by conns_mu_
  // Shared with the connections, which may outlive the server (back channels held by
  // NFSv4.1 sessions).
  std::shared_ptr<ByteBudget> budget_;
  // Calls whose reply waits for a gate (kReplyLater); Stop waits for them.
  std::mutex later_mu_;
  std::condition_variable later_cv_;
  size_t later_ = 0;  // guarded by later_mu_
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> refused_{0};
  uint16_t port_ = 0;
  bool started_ = false;
};

// Makes `conn` a back channel: calls go out on it and REPLY records that arrive on it are
// routed to the returned object. Calls time out after timeout_ms.
std::shared_ptr<BackChannel> MakeBackChannel(const std::shared_ptr<Connection>& conn,
                                             int timeout_ms);

// Writes the header of an accepted reply (RFC 5531 §9) with the given status, after the
// reserved record mark: xid, REPLY, MSG_ACCEPTED, AUTH_NONE verifier, stat.
void EncodeAcceptedHeader(xdr::Encoder& e, uint32_t xid, accept_stat stat);

// Parses "host:port" (IPv4 or [IPv6]) into a sockaddr.
Status ParseHostPort(const std::string& s, sockaddr_storage* ss, socklen_t* len);
std::string SockaddrToString(const sockaddr* sa);

}  // namespace loom::rpc
