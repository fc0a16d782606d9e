// The cluster side of `loom`: status, layout, and the admin program of loom-mds (`loom admin`
// and its shorthands ds / policy / mv-data / fence), which answers root callers only.
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "admin/admin_rpc.h"
#include "commands.h"

namespace loom::cli {

const char kStatusHelp[] =
    "usage: loom status\n"
    "The metadata server (address, reachable, answer time), the file system's capacity, the\n"
    "data servers (from the admin program: needs root on the metadata server; each also probed\n"
    "with a TCP connection from here) and the health.\n"
    "Exit status: 0 healthy, 10 degraded (a data server down, unknown or unreachable from\n"
    "here), 7 metadata server unreachable.\n";
const char kLayoutHelp[] =
    "usage: loom layout PATH\n"
    "Where a file's bytes live: what the metadata server's admin program records (data servers,\n"
    "mirrors, stripes, holders; needs root there) and the layout this client is granted\n"
    "(LAYOUTGET: data server addresses per mirror and stripe). Either is shown when the other\n"
    "cannot be had.\n";
const char kAdminHelp[] =
    "usage: loom admin [--server HOST[:PORT]] [--timeout SECONDS] ARGS...\n"
    "Sends ARGS to the metadata server's admin program (default: the --mds server; timeout\n"
    "600 s) and prints its answer; exits with its status (13: permission denied, 2: usage),\n"
    "1 when it cannot be reached. Only root (after the export rules) may run admin commands;\n"
    "a read-only export allows the read-only ones. `loom admin help` lists the commands.\n";
const char kDsHelp[] =
    "usage: loom ds list | ds add HOST:PORT[@ADVHOST:ADVPORT] [--label k=v]... |\n"
    "       ds drain ID | ds undrain ID | ds remove ID\n"
    "The data servers of the metadata server (`loom admin ds ...`).\n";
const char kPolicyHelp[] =
    "usage: loom policy get DIR | policy set DIR [--mirrors N] [--stripes N] [--stripe-unit BYTES]\n"
    "       [--label k=v]... | policy set DIR --clear\n"
    "Placement of new files under DIR (`loom admin policy ...`).\n";
const char kMvDataHelp[] =
    "usage: loom mv-data PATH --to ID[,ID...]\n"
    "Moves a file's bytes to other data servers (`loom admin mv-data ...`).\n";
const char kFenceHelp[] =
    "usage: loom fence PATH [--no-recall]\n"
    "Recalls a file's layouts and fences the holders off the data servers (`loom admin fence`).\n";

AdminResult CallAdminOn(const std::string& server, const std::vector<std::string>& argv, int timeout_ms) {
  char host[256] = "loom-cli";
  gethostname(host, sizeof host - 1);
  std::vector<gid_t> groups(static_cast<size_t>(std::max(0, getgroups(0, nullptr))));
  int ng = groups.empty() ? 0 : getgroups(static_cast<int>(groups.size()), groups.data());
  // AUTH_SYS carries at most 16 groups (RFC 5531 appendix A).
  std::vector<uint32_t> gids(groups.begin(), groups.begin() + std::max(0, std::min(ng, 16)));
  auto cred = loom::rpc::Cred::Sys(getuid(), getgid(), gids, host);
  auto r = loom::admin::CallAdmin(server, argv, cred, timeout_ms);
  AdminResult out;
  if (!r.ok()) {
    out.error = r.status().ToString();
    return out;
  }
  out.status = r->status;
  out.output = r->output;
  return out;
}

namespace {

void PrintAdminReply(const AdminResult& r) {
  std::FILE* out = r.status == 0 ? stdout : stderr;
  std::fwrite(r.output.data(), 1, r.output.size(), out);
  if (!r.output.empty() && r.output.back() != '\n') std::fputc('\n', out);
  std::fflush(out);
}

int AdminExit(const AdminResult& r) { return r.status < 0 || r.status > 255 ? 1 : r.status; }

// Whether a TCP connection to HOST:PORT ("[v6]:port" too) opens within timeout_ms: the data
// path goes straight from this client to the data servers, so the metadata server's view of
// them is not the whole story.
bool Reachable(const std::string& host_port, int timeout_ms) {
  size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = host_port.substr(0, colon), port = host_port.substr(colon + 1);
  if (host.size() > 1 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return false;
  bool ok = false;
  for (addrinfo* a = res; a && !ok; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      ok = true;
    } else if (errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof err;
      ok = ::poll(&p, 1, timeout_ms) == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    }
    ::close(fd);
  }
  freeaddrinfo(res);
  return ok;
}

}  // namespace

int CmdAdmin(Ctx& ctx, const std::vector<std::string>& in) {
  std::vector<std::string> args = in;
  std::string server = ctx.globals().mds;
  int timeout_s = 600;  // mv-data copies a whole file before it answers
  while (!args.empty() && (args[0] == "--server" || args[0] == "--timeout")) {
    if (args.size() < 2) return ctx.Usage(args[0] + " needs a value");
    if (args[0] == "--server") {
      server = args[1];
    } else {
      uint64_t t;
      if (!ParseUint(args[1], INT_MAX / 1000, &t) || t < 1) {
        std::fprintf(stderr, "loom: --timeout wants seconds, got '%s'\n", args[1].c_str());
        return kExitUsage;
      }
      timeout_s = static_cast<int>(t);
    }
    args.erase(args.begin(), args.begin() + 2);
  }
  if (!args.empty() && args[0] == "--") args.erase(args.begin());
  server = WithPort(server, kDefaultMdsPort);
  AdminResult r = CallAdminOn(server, args, timeout_s * 1000);
  if (r.status < 0) {
    std::fprintf(stderr, "loom: admin %s: %s\n", server.c_str(), r.error.c_str());
    return 1;
  }
  PrintAdminReply(r);
  return AdminExit(r);
}

int CmdLayout(Ctx& ctx, const std::vector<std::string>& args) {
  if (args.size() != 1 || args[0].empty()) return ctx.Usage("wants one PATH");
  const std::string path = RemotePath(args[0]);
  // The server's record first, exactly as `loom admin layout` prints it.
  AdminResult ar = CallAdminOn(ctx.globals().mds, {"layout", args[0]}, 30000);
  // Then this client's view; quietly absent when no NFSv4.1 session can be had (a server
  // without NFS, or none at all: the admin answer, or its error, says enough).
  std::string mine;
  lc::Status ls;
  if (auto c = ctx.client_quick(5000, /*quiet=*/true)) {
    auto l = c->Layout(path);
    if (l.ok()) {
      std::ostringstream o;
      if (!l->granted) {
        o << "client layout: none granted (I/O goes through the metadata server)\n";
      } else {
        o << "client layout: " << l->mirrors.size() << " mirror(s), ";
        if (l->stripe_unit == 0) o << "not striped\n";
        else o << "stripe unit " << l->stripe_unit << "\n";
        for (size_t m = 0; m < l->mirrors.size(); m++)
          for (size_t s = 0; s < l->mirrors[m].size(); s++) {
            const auto& d = l->mirrors[m][s];
            o << "  mirror " << m << " stripe " << s << "  " << d.address << "  device " << d.deviceid_hex
              << "  ids " << d.user << ":" << d.group << "\n";
          }
      }
      mine = o.str();
    } else {
      ls = l.status();
    }
  } else {
    ls = ctx.status();
  }
  if (ar.status == 0) {
    PrintAdminReply(ar);
    std::fputs(mine.c_str(), stdout);
    return kExitOk;
  }
  if (!mine.empty()) {
    // Only this client's view: say why the server's is missing, but succeed.
    std::fprintf(stderr, "loom: layout: server view unavailable: %s\n",
                 ar.status < 0 ? ar.error.c_str() : ar.output.c_str());
    std::fputs(mine.c_str(), stdout);
    return kExitOk;
  }
  if (ar.status < 0) {
    std::fprintf(stderr, "loom: admin %s: %s\n", ctx.globals().mds.c_str(), ar.error.c_str());
    return 1;
  }
  PrintAdminReply(ar);
  return AdminExit(ar);
}

int CmdStatus(Ctx& ctx, const std::vector<std::string>& args) {
  if (!args.empty()) return ctx.Usage("takes no arguments");
  const std::string mds = ctx.globals().mds;
  std::printf("metadata server: %s\n", mds.c_str());
  auto t0 = std::chrono::steady_clock::now();
  auto c = ctx.client_quick(5000, /*quiet=*/true);
  if (!c) {
    std::printf("  unreachable: %s\nhealth: unavailable\n", ErrorWords(ctx.status()).c_str());
    return kExitUnavailable;
  }
  auto root = c->Stat("/");
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (!root.ok()) {
    std::printf("  session made, but / does not answer: %s\nhealth: unavailable\n", ErrorWords(root.status()).c_str());
    return ExitFor(root.status().code());
  }
  std::printf("  reachable (%s; session and GETATTR / in %.1f ms)\n", c->mds_address().c_str(), ms);
  auto fs = c->StatFs("/");
  if (fs.ok()) {
    uint64_t used = fs->total_bytes > fs->free_bytes ? fs->total_bytes - fs->free_bytes : 0;
    std::printf("capacity: %s total, %s used, %s available; files: %llu used, %llu free\n",
                HumanLong(fs->total_bytes).c_str(), HumanLong(used).c_str(), HumanLong(fs->avail_bytes).c_str(),
                static_cast<unsigned long long>(fs->total_files > fs->free_files ? fs->total_files - fs->free_files : 0),
                static_cast<unsigned long long>(fs->free_files));
  } else {
    std::printf("capacity: unknown (%s)\n", ErrorWords(fs.status()).c_str());
  }
  AdminResult ds = CallAdminOn(mds, {"ds", "list"}, 10000);
  if (ds.status != 0) {
    std::string why = ds.status < 0 ? ds.error : ds.output;
    while (!why.empty() && why.back() == '\n') why.pop_back();
    std::printf("data servers: not known (admin ds list: %s)\nhealth: ok as far as this client sees "
                "(the data servers need root on the metadata server to list)\n", why.c_str());
    return kExitOk;
  }
  // "ID STATE ADDRESS ADVERTISED ..." then one line per server ("    last error: ..." lines
  // under down ones). The advertised address is the one clients are told (GETDEVICEINFO).
  struct Ds {
    std::string line, state, addr;
    bool reachable = false;
  };
  std::vector<Ds> servers;
  std::string header;
  std::istringstream in(ds.output);
  std::string line;
  while (std::getline(in, line)) {
    if (header.empty()) {
      header = line;
      continue;
    }
    if (line.empty() || line[0] == ' ') {
      if (!servers.empty()) servers.back().line += "\n  " + line;
      continue;
    }
    std::istringstream w(line);
    std::string id, state, addr, adv;
    w >> id >> state >> addr >> adv;
    servers.push_back({line, state, adv.empty() || adv == "-" ? addr : adv});
  }
  unsigned up = 0, draining = 0, unreachable = 0;
  for (auto& d : servers) {
    d.reachable = Reachable(d.addr, 2000);
    if (d.state == "up" || d.state == "draining") up++;
    if (d.state == "draining") draining++;
    if (!d.reachable) unreachable++;
  }
  const unsigned n = static_cast<unsigned>(servers.size());
  std::printf("data servers: %u (%u up, %u draining, %u down or unknown; %u unreachable from here)\n", n, up,
              draining, n - up, unreachable);
  std::printf("  %s  FROM-HERE\n", header.c_str());
  for (const auto& d : servers) {
    size_t nl = d.line.find('\n');
    std::string first = d.line.substr(0, nl), rest = nl == std::string::npos ? "" : d.line.substr(nl);
    std::printf("  %s  %s%s\n", first.c_str(), d.reachable ? "reachable" : "UNREACHABLE", rest.c_str());
  }
  if (n == 0) {
    std::printf("health: degraded (no data servers)\n");
    return kExitDegraded;
  }
  if (up < n || unreachable > 0) {
    std::printf("health: degraded (%u data server%s down or unknown, %u unreachable from this client)\n", n - up,
                n - up == 1 ? "" : "s", unreachable);
    return kExitDegraded;
  }
  std::printf("health: ok\n");
  return kExitOk;
}

}  // namespace loom::cli
