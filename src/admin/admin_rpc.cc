// The administration program: server table, authorization, client call.
#include "admin/admin_rpc.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "admin/mds_config.h"
#include "admin/util.h"
#include "common/log.h"
#include "rpc/client.h"
#include "rpc/event_loop.h"

namespace loom::admin {

const char kAdminDeniedMessage[] =
    "permission denied: admin commands that change the cluster need root from an address "
    "whose export rule is rw,no_root_squash";

namespace {

using internal::SplitWords;

// argv as one line for logs: words quoted when they hold spaces, each cut at 64 bytes, the
// line at 16 words.
std::string LogLine(const std::vector<std::string>& argv) {
  std::string out;
  for (size_t i = 0; i < argv.size(); i++) {
    const std::string& a = argv[i];
    if (i == 16) return out + " ... (" + std::to_string(argv.size()) + " words)";
    if (!out.empty()) out += ' ';
    std::string w = a.size() > 64 ? a.substr(0, 64) + "..." : a;
    for (char& c : w) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    }
    out += w.find(' ') == std::string::npos && !w.empty() ? w : "'" + w + "'";
  }
  return out;
}

std::string HowArrived(const rpc::CallContext& ctx) {
  std::string s = "(this call came from " + ctx.peer + " as ";
  s += ctx.cred.flavor == rpc::AUTH_SYS ? "uid " + std::to_string(ctx.cred.uid) : "AUTH_NONE";
  if (ctx.export_rule) s += ", export rule " + ctx.export_rule->Text();
  return s + ")";
}

}  // namespace

bool MatchesPrefix(const std::vector<std::string>& argv, const std::vector<std::string>& prefixes) {
  for (const auto& p : prefixes) {
    std::vector<std::string> w = SplitWords(p);
    if (w.empty() || w.size() > argv.size()) continue;
    bool same = true;
    for (size_t i = 0; i < w.size() && same; i++) same = w[i] == argv[i];
    if (same) return true;
  }
  return false;
}

std::string AdminRefusal(const rpc::CallContext& ctx, const std::vector<std::string>& argv,
                         const ReadOnlyPredicate& is_read_only) {
  // The credential is already mapped by the export rule: a squashed root arrives as anonuid.
  bool root = ctx.cred.flavor == rpc::AUTH_SYS && ctx.cred.uid == 0;
  if (!root) return std::string(kAdminDeniedMessage) + "\n" + HowArrived(ctx) + "\n";
  if (ctx.read_only && !(is_read_only && is_read_only(argv))) {
    return std::string(kAdminDeniedMessage) + "; this address may run read-only commands only\n" +
           HowArrived(ctx) + "\n";
  }
  return "";
}

rpc::ProgramDesc AdminProgram(AdminHandler handler, AdminProgramOptions opts) {
  ReadOnlyPredicate ro = opts.is_read_only;
  if (!ro) {
    ro = [prefixes = opts.read_only_prefixes](const std::vector<std::string>& argv) {
      return MatchesPrefix(argv, prefixes);
    };
  }
  const size_t max_output = opts.max_output;
  rpc::ProgramDesc p;
  p.prog = kAdminProgram;
  p.vers = kAdminVersion;
  p.stats_prefix = "admin";
  p.procs.resize(LOOM_ADMIN_V1_NPROCS);
  p.procs[LOOM_ADMINPROC_NULL] = {
      "NULL", [](const rpc::CallContext&, xdr::Decoder&, xdr::Encoder&) { return rpc::SUCCESS; },
      true, true};
  // Not idempotent ("ds add" twice adds twice): a retransmission gets the cached reply.
  p.procs[LOOM_ADMINPROC_COMMAND] = {
      "COMMAND",
      [handler, ro, max_output](const rpc::CallContext& ctx, xdr::Decoder& d,
                                xdr::Encoder& e) -> rpc::accept_stat {
        LOOM_ADMIN_COMMAND_args args;
        // The generated decoder enforces both bounds (64 words, 4 KiB each); trailing bytes
        // mean the caller and we disagree about the arguments.
        if (!xdr_decode(d, args) || d.remaining() != 0) return rpc::GARBAGE_ARGS;
        LOOM_ADMIN_COMMAND_res res;
        std::string why = AdminRefusal(ctx, args.argv, ro);
        if (!why.empty()) {
          LOG_WARN("admin: refused from %s (uid %u%s): %s", ctx.peer.c_str(), ctx.cred.uid,
                   ctx.read_only ? ", read-only export" : "", LogLine(args.argv).c_str());
          res.exit_status = kAdminDenied;
          res.output = std::move(why);
        } else {
          LOG_INFO("admin: %s runs: %s", ctx.peer.c_str(), LogLine(args.argv).c_str());
          AdminReply r = handler(ctx, args.argv);
          res.exit_status = r.status;
          res.output = std::move(r.output);
          if (res.output.size() > max_output) {
            size_t total = res.output.size();
            res.output.resize(max_output);
            res.output += "\n... output cut at " + std::to_string(max_output) + " of " +
                          std::to_string(total) + " bytes\n";
          }
        }
        ctx.op_status = res.exit_status;
        xdr_encode(e, res);
        return rpc::SUCCESS;
      },
      /*idempotent=*/false, /*inline_ok=*/false};
  return p;
}

Result<std::vector<std::string>> ResolveHostPort(const std::string& host_port) {
  std::string host;
  uint16_t port_num = 0;
  LOOM_RETURN_IF_ERROR(SplitHostPort(host_port, &host, &port_num));
  const std::string port = std::to_string(port_num);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    // AI_ADDRCONFIG hides loopback-only families on hosts without other addresses: try again
    // without it before giving up.
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  }
  if (rc != 0) return Status::Unavailable("cannot resolve " + host + ": " + gai_strerror(rc));
  std::vector<std::string> out;
  for (addrinfo* a = res; a; a = a->ai_next) {
    if (a->ai_family != AF_INET && a->ai_family != AF_INET6) continue;
    char ipbuf[NI_MAXHOST];
    if (getnameinfo(a->ai_addr, a->ai_addrlen, ipbuf, sizeof ipbuf, nullptr, 0, NI_NUMERICHOST) != 0)
      continue;
    std::string ip = ipbuf;
    std::string s = a->ai_family == AF_INET6 ? "[" + ip + "]:" + port : ip + ":" + port;
    bool dup = false;
    for (const auto& o : out) dup = dup || o == s;
    if (!dup) out.push_back(s);
  }
  freeaddrinfo(res);
  if (out.empty()) return Status::Unavailable("no IPv4/IPv6 address for " + host);
  return out;
}

Result<AdminReply> CallAdmin(const std::string& host_port, const std::vector<std::string>& argv,
                             rpc::Cred cred, int timeout_ms) {
  // The server would answer GARBAGE_ARGS; say what is wrong instead.
  if (argv.size() > kMaxArgs)
    return Status::Invalid("too many words (" + std::to_string(argv.size()) + ", at most " +
                           std::to_string(kMaxArgs) + ")");
  for (const auto& a : argv) {
    if (a.size() > kMaxArgLen)
      return Status::Invalid("a word of " + std::to_string(a.size()) + " bytes (at most " +
                             std::to_string(kMaxArgLen) + ")");
  }
  auto addrs = ResolveHostPort(host_port);
  if (!addrs.ok()) return addrs.status();
  rpc::LoopGroup loops(1);
  loops.Start();
  rpc::RpcClient::Options o;
  o.timeout_ms = timeout_ms;
  o.connect_timeout_ms = std::min(timeout_ms, 10000);  // a dead address fails fast
  o.conn.max_record = (2u << 20);  // the server cuts output at 1 MiB by default
  Status last = Status::Unavailable("no address");
  for (const auto& addr : *addrs) {
    auto c = rpc::RpcClient::Connect(loops.At(0), addr, o);
    if (!c.ok()) {
      last = c.status();
      continue;
    }
    LOOM_ADMIN_COMMAND_args args;
    args.argv = argv;
    LOOM_ADMIN_COMMAND_res res;
    Status st = (*c)->Call(kAdminProgram, kAdminVersion, LOOM_ADMINPROC_COMMAND, args, &res, cred);
    (*c)->Close();
    if (!st.ok()) {
      if (st.message() == "PROG_UNAVAIL" || st.message().rfind("PROG_MISMATCH", 0) == 0) {
        return Status(st.code(), addr + " does not serve the Loom admin program (" + st.message() +
                                     "): is it a loom-mds?");
      }
      return Status(st.code(), addr + ": " + st.message());
    }
    return AdminReply{res.exit_status, std::move(res.output)};
  }
  return last;
}

}  // namespace loom::admin
