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
  // The protocol-level status of the result (e.g. nfsstat3), set by Typed(); non-zero counts
  // as an error in the procedure's counters even though the RPC itself succeeded.
  mutable int32_t op_status = 0;
};

// Decodes arguments from `args`, writes results to `res`. Returns SUCCESS, or GARBAGE_ARGS when
// the arguments do not decode (then `res` is discarded), or SYSTEM_ERR.
using ProcHandler =
    std::function<accept_stat(const CallContext& ctx, xdr::Decoder& args, xdr::Encoder& res)>;

struct ProcDesc {
  const char* name = nullptr;  // nullptr: procedure not implemented (PROC_UNAVAIL)
  ProcHandler fn;
  bool idempotent = true;      // false: replies go through the duplicate request cache
  bool inline_ok = false;      // true: cheap and non-blocking, run on the loop thread
};

struct ProgramDesc {
  uint32_t prog = 0;
  uint32_t vers = 0;
  std::string stats_prefix;  // e.g. "nfs3": counters are named "nfs3.READ"
  std::vector<ProcDesc> procs;  // indexed by procedure number
};

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
  Connection::Options conn;
  size_t reply_cache_entries = 8192;
};

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

 private:
  class Acceptor;
  struct Registered {
    ProgramDesc desc;
    std::vector<OpStats*> stats;
  };
  void OnAccept(int fd, std::string peer);
  void OnRecord(const std::shared_ptr<Connection>& c, Record r);
  void Execute(std::shared_ptr<Connection> c, Record r, const Registered* prog,
               const ProcDesc* pd, CallContext ctx, size_t args_off, std::string drc_key);

  ServerOptions opts_;
  std::map<std::pair<uint32_t, uint32_t>, Registered> programs_;
  std::map<uint32_t, std::pair<uint32_t, uint32_t>> version_range_;
  StatsRegistry stats_;
  ReplyCache drc_;
  std::unique_ptr<LoopGroup> loops_;
  std::unique_ptr<WorkerPool> workers_;
  std::unique_ptr<Acceptor> acceptor_;
  std::mutex conns_mu_;
  std::unordered_map<Connection*, std::shared_ptr<Connection>> conns_;
  std::atomic<uint64_t> accepted_{0};
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
