// loom: a small command-line client of loom-mds over NFSv4.1 (no kernel mount needed).
//   loom [--mds HOST:PORT] ls PATH | stat PATH | mkdir PATH | put LOCAL PATH | get PATH LOCAL | rm PATH
//   loom [--mds HOST:PORT] admin [--server HOST[:PORT]] [--timeout SECONDS] ARGS...
//   loom [--mds HOST:PORT] ds ... | policy ... | layout PATH | mv-data PATH --to ID[,ID] | fence PATH
// Exit status: 0 success, 1 an NFS error (printed), 2 usage; admin commands exit with the
// status the metadata server returned (13: permission denied), 1 when it cannot be reached.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "admin/admin_rpc.h"
#include "nfs4/simple_client.h"
#include "rpc/event_loop.h"
#include "xdr/nfs4.h"

namespace {

using namespace loom;
using namespace loom::nfs4;
using namespace loom::nfs4::simple;

constexpr uint32_t kChunk = 1u << 20;

int Fail(const std::string& what, nfsstat4 st) {
  std::fprintf(stderr, "loom: %s: %s\n", what.c_str(), nfsstat4_name(st));
  return 1;
}

std::vector<std::string> Split(const std::string& path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// PUTROOTFH + LOOKUP of each component (all but the last when `parent`).
std::vector<nfs_argop4> Walk(const std::vector<std::string>& comps, bool parent) {
  std::vector<nfs_argop4> ops;
  ops.push_back(PutRootFh());
  size_t n = comps.size() - (parent && !comps.empty() ? 1 : 0);
  for (size_t i = 0; i < n; i++) ops.push_back(Lookup(comps[i]));
  return ops;
}

// A reader of fattr4 values in bit order, for the few attributes this tool asks for.
struct Attrs {
  uint32_t type = 0, mode = 0, nlink = 0;
  uint64_t size = 0, mtime = 0;
  std::string owner, group;
};
Attrs ParseAttrs(const fattr4& f) {
  Attrs a;
  xdr::Decoder d(f.attr_vals.data, f.attr_vals.size);
  auto has = [&](uint32_t bit) { return bit / 32 < f.attrmask.size() && (f.attrmask[bit / 32] >> (bit % 32)) & 1; };
  uint32_t u;
  uint64_t v;
  if (has(FATTR4_TYPE) && d.u32(u)) a.type = u;
  if (has(FATTR4_SIZE) && d.u64(v)) a.size = v;
  if (has(FATTR4_MODE) && d.u32(u)) a.mode = u;
  if (has(FATTR4_NUMLINKS) && d.u32(u)) a.nlink = u;
  if (has(FATTR4_OWNER)) (void)d.string(a.owner, 1024);
  if (has(FATTR4_OWNER_GROUP)) (void)d.string(a.group, 1024);
  if (has(FATTR4_TIME_MODIFY)) {
    int64_t s;
    uint32_t ns;
    if (d.i64(s) && d.u32(ns)) a.mtime = static_cast<uint64_t>(s);
  }
  return a;
}
const std::vector<uint32_t> kStatBits = {FATTR4_TYPE, FATTR4_SIZE, FATTR4_MODE, FATTR4_NUMLINKS,
                                         FATTR4_OWNER, FATTR4_OWNER_GROUP, FATTR4_TIME_MODIFY};

std::vector<uint32_t> Mask(const std::vector<uint32_t>& bits) {
  std::vector<uint32_t> m;
  for (uint32_t b : bits) {
    if (m.size() <= b / 32) m.resize(b / 32 + 1);
    m[b / 32] |= 1u << (b % 32);
  }
  return m;
}

const char* TypeChar(uint32_t t) { return t == NF4DIR ? "d" : t == NF4LNK ? "l" : "-"; }

int Ls(V4Client& c, const std::string& path) {
  uint64_t cookie = 0;
  for (;;) {
    auto ops = Walk(Split(path), false);
    ops.push_back(Readdir(cookie, 64 * 1024, Mask(kStatBits)));
    auto r = c.Call(std::move(ops), /*cachethis=*/false);  // idempotent; too big for the slot cache
    if (!r.ok()) return Fail(path, NFS4ERR_IO);
    if (r->status != NFS4_OK) return Fail(path, r->status);
    const auto& rd = r->resarray.back().opreaddir->resok4.reply;
    for (const auto& e : rd.entries) {
      Attrs a = ParseAttrs(e.attrs);
      std::printf("%s%04o %3u %6s %6s %12llu %s\n", TypeChar(a.type), a.mode, a.nlink, a.owner.c_str(),
                  a.group.c_str(), (unsigned long long)a.size, e.name.str().c_str());
      cookie = e.cookie;
    }
    if (rd.eof || rd.entries.empty()) return 0;
  }
}

int Stat(V4Client& c, const std::string& path) {
  auto ops = Walk(Split(path), false);
  ops.push_back(Getattr(kStatBits));
  auto r = c.Call(std::move(ops));
  if (!r.ok()) return Fail(path, NFS4ERR_IO);
  if (r->status != NFS4_OK) return Fail(path, r->status);
  Attrs a = ParseAttrs(r->resarray.back().opgetattr->resok4.obj_attributes);
  std::printf("%s: type %s mode %04o links %u owner %s group %s size %llu mtime %llu\n", path.c_str(),
              TypeChar(a.type), a.mode, a.nlink, a.owner.c_str(), a.group.c_str(),
              (unsigned long long)a.size, (unsigned long long)a.mtime);
  return 0;
}

int Mkdir(V4Client& c, const std::string& path) {
  auto comps = Split(path);
  if (comps.empty()) return Fail(path, NFS4ERR_EXIST);
  auto ops = Walk(comps, true);
  ops.push_back(simple::Mkdir(comps.back()));
  auto r = c.Call(std::move(ops));
  if (!r.ok()) return Fail(path, NFS4ERR_IO);
  return r->status == NFS4_OK ? 0 : Fail(path, r->status);
}

int Rm(V4Client& c, const std::string& path) {
  auto comps = Split(path);
  if (comps.empty()) return Fail(path, NFS4ERR_INVAL);
  auto ops = Walk(comps, true);
  ops.push_back(Remove(comps.back()));
  auto r = c.Call(std::move(ops));
  if (!r.ok()) return Fail(path, NFS4ERR_IO);
  return r->status == NFS4_OK ? 0 : Fail(path, r->status);
}

int Put(V4Client& c, const std::string& local, const std::string& path) {
  int fd = ::open(local.c_str(), O_RDONLY);
  if (fd < 0) {
    std::perror(local.c_str());
    return 1;
  }
  auto comps = Split(path);
  auto ops = Walk(comps, true);
  ops.push_back(Open("loom-cli", comps.back(), OPEN4_SHARE_ACCESS_WRITE, true, /*guarded=*/false));
  ops.push_back(GetFh());
  auto r = c.Call(std::move(ops));
  if (!r.ok() || r->status != NFS4_OK) {
    ::close(fd);
    return Fail(path, r.ok() ? r->status : NFS4ERR_IO);
  }
  stateid4 sid = r->resarray[r->resarray.size() - 2].opopen->resok4.stateid;
  Bytes fh = r->resarray.back().opgetfh->resok4.object;
  std::vector<char> buf(kChunk);
  uint64_t off = 0;
  nfsstat4 st = NFS4_OK;
  // Truncate first: UNCHECKED4 opened an existing file as it was.
  {
    std::vector<nfs_argop4> tops;
    tops.push_back(PutFh(fh));
    tops.push_back(SetSize(sid, 0));
    auto tr = c.Call(std::move(tops));
    if (!tr.ok() || tr->status != NFS4_OK) st = tr.ok() ? tr->status : NFS4ERR_IO;
  }
  for (;;) {
    if (st != NFS4_OK) break;
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n <= 0) break;
    std::vector<nfs_argop4> w;
    w.push_back(PutFh(fh));
    w.push_back(Write(sid, off, std::string(buf.data(), static_cast<size_t>(n)), UNSTABLE4));
    auto wr = c.Call(std::move(w), false);
    if (!wr.ok() || wr->status != NFS4_OK) {
      st = wr.ok() ? wr->status : NFS4ERR_IO;
      break;
    }
    off += wr->resarray.back().opwrite->resok4.count;
  }
  ::close(fd);
  std::vector<nfs_argop4> fin;
  fin.push_back(PutFh(fh));
  fin.push_back(Commit());
  fin.push_back(Close(sid));
  auto fr = c.Call(std::move(fin));
  if (st == NFS4_OK && (!fr.ok() || fr->status != NFS4_OK)) st = fr.ok() ? fr->status : NFS4ERR_IO;
  if (st != NFS4_OK) return Fail(path, st);
  std::printf("put %s -> %s: %llu bytes\n", local.c_str(), path.c_str(), (unsigned long long)off);
  return 0;
}

int Get(V4Client& c, const std::string& path, const std::string& local) {
  auto comps = Split(path);
  auto ops = Walk(comps, true);
  ops.push_back(Open("loom-cli", comps.back(), OPEN4_SHARE_ACCESS_READ, false));
  ops.push_back(GetFh());
  auto r = c.Call(std::move(ops));
  if (!r.ok() || r->status != NFS4_OK) return Fail(path, r.ok() ? r->status : NFS4ERR_IO);
  stateid4 sid = r->resarray[r->resarray.size() - 2].opopen->resok4.stateid;
  Bytes fh = r->resarray.back().opgetfh->resok4.object;
  int fd = ::open(local.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    std::perror(local.c_str());
    return 1;
  }
  uint64_t off = 0;
  nfsstat4 st = NFS4_OK;
  for (;;) {
    std::vector<nfs_argop4> rd;
    rd.push_back(PutFh(fh));
    rd.push_back(Read(sid, off, kChunk));
    auto rr = c.Call(std::move(rd), false);
    if (!rr.ok() || rr->status != NFS4_OK) {
      st = rr.ok() ? rr->status : NFS4ERR_IO;
      break;
    }
    const auto& ok = rr->resarray.back().opread->resok4;
    if (ok.data.size && ::write(fd, ok.data.data, ok.data.size) != static_cast<ssize_t>(ok.data.size)) {
      st = NFS4ERR_IO;
      break;
    }
    off += ok.data.size;
    if (ok.eof || ok.data.size == 0) break;
  }
  ::close(fd);
  std::vector<nfs_argop4> cl;
  cl.push_back(PutFh(fh));
  cl.push_back(Close(sid));
  (void)c.Call(std::move(cl));
  if (st != NFS4_OK) return Fail(path, st);
  std::printf("get %s -> %s: %llu bytes\n", path.c_str(), local.c_str(), (unsigned long long)off);
  return 0;
}

void Usage() {
  std::fprintf(stderr,
               "usage: loom [--mds HOST:PORT] COMMAND\n"
               "  ls PATH | stat PATH | mkdir PATH | rm PATH | put LOCAL PATH | get PATH LOCAL\n"
               "  admin [--server HOST[:PORT]] [--timeout SECONDS] ARGS...   (\"admin help\" lists them)\n"
               "  ds list | ds add HOST:PORT[@ADV] [--label k=v]... | ds drain|undrain|remove ID\n"
               "  policy get PATH | policy set PATH [--mirrors N] [--stripes N] [--stripe-unit B]\n"
               "  layout PATH | mv-data PATH --to ID[,ID...] | fence PATH\n"
               "  --mds defaults to $LOOM_MDS or 127.0.0.1:2049; admin commands go to the same\n"
               "  server (port 2049 when none is given) and need root there\n");
}

// Words that name an admin command: `loom ds list` is `loom admin ds list`.
bool IsAdminAlias(const std::string& cmd) {
  return cmd == "ds" || cmd == "policy" || cmd == "layout" || cmd == "mv-data" || cmd == "fence";
}

// HOST, HOST:PORT, [V6], [V6]:PORT or a bare IPv6 address, as HOST:PORT (2049 by default).
std::string WithPort(const std::string& s) {
  if (!s.empty() && s[0] == '[') return s.find("]:") == std::string::npos ? s + ":2049" : s;
  size_t colons = 0;
  for (char c : s) colons += c == ':';
  if (colons == 0) return s + ":2049";
  if (colons > 1) return "[" + s + "]:2049";
  return s;
}

// Sends argv to the metadata server's admin program and prints what it answers.
int Admin(const std::string& default_server, std::vector<std::string> args) {
  std::string server = default_server;
  int timeout_s = 600;  // mv-data copies a whole file before it answers
  while (!args.empty() && (args[0] == "--server" || args[0] == "--timeout")) {
    if (args.size() < 2) {
      Usage();
      return 2;
    }
    if (args[0] == "--server") {
      server = args[1];
    } else {
      char* end = nullptr;
      long t = std::strtol(args[1].c_str(), &end, 10);
      if (args[1].empty() || *end != '\0' || t < 1 || t > INT_MAX / 1000) {
        std::fprintf(stderr, "loom: --timeout wants seconds, got '%s'\n", args[1].c_str());
        return 2;
      }
      timeout_s = static_cast<int>(t);
    }
    args.erase(args.begin(), args.begin() + 2);
  }
  if (!args.empty() && args[0] == "--") args.erase(args.begin());
  char host[256] = "loom-cli";
  gethostname(host, sizeof host - 1);
  std::vector<gid_t> groups(static_cast<size_t>(std::max(0, getgroups(0, nullptr))));
  int ng = groups.empty() ? 0 : getgroups(static_cast<int>(groups.size()), groups.data());
  std::vector<uint32_t> gids(groups.begin(), groups.begin() + std::max(0, std::min(ng, 16)));
  auto cred = loom::rpc::Cred::Sys(getuid(), getgid(), gids, host);
  server = WithPort(server);
  auto r = loom::admin::CallAdmin(server, args, cred, timeout_s * 1000);
  if (!r.ok()) {
    std::fprintf(stderr, "loom: admin %s: %s\n", server.c_str(), r.status().ToString().c_str());
    return 1;
  }
  std::FILE* out = r->status == 0 ? stdout : stderr;
  std::fwrite(r->output.data(), 1, r->output.size(), out);
  if (!r->output.empty() && r->output.back() != '\n') std::fputc('\n', out);
  std::fflush(out);
  return r->status < 0 || r->status > 255 ? 1 : r->status;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mds = getenv("LOOM_MDS") ? getenv("LOOM_MDS") : "127.0.0.1:2049";
  int i = 1;
  if (i + 1 < argc && std::string(argv[i]) == "--mds") {
    mds = argv[i + 1];
    i += 2;
  }
  if (i >= argc) {
    Usage();
    return 2;
  }
  std::string cmd = argv[i++];
  std::vector<std::string> args(argv + i, argv + argc);
  if (cmd == "admin") return Admin(mds, std::move(args));
  if (IsAdminAlias(cmd)) {
    args.insert(args.begin(), cmd);
    return Admin(mds, std::move(args));
  }
  size_t need = (cmd == "put" || cmd == "get") ? 2 : 1;
  if (args.size() != need) {
    Usage();
    return 2;
  }
  loom::rpc::LoopGroup loops(1);
  loops.Start();
  auto rpc = loom::rpc::RpcClient::Connect(loops.At(0), mds);
  if (!rpc.ok()) {
    std::fprintf(stderr, "loom: %s: %s\n", mds.c_str(), rpc.status().ToString().c_str());
    return 1;
  }
  char host[64] = "loom-cli";
  gethostname(host, sizeof host);
  V4Client c(rpc.value(), std::string("loom-cli@") + host + "/" + std::to_string(getpid()));
  c.cred = loom::rpc::Cred::Sys(getuid(), getgid(), {}, host);
  nfsstat4 st = c.Setup();
  if (st != NFS4_OK) return Fail("session with " + mds, st);
  int rc;
  if (cmd == "ls") rc = Ls(c, args[0]);
  else if (cmd == "stat") rc = Stat(c, args[0]);
  else if (cmd == "mkdir") rc = Mkdir(c, args[0]);
  else if (cmd == "rm") rc = Rm(c, args[0]);
  else if (cmd == "put") rc = Put(c, args[0], args[1]);
  else if (cmd == "get") rc = Get(c, args[0], args[1]);
  else {
    Usage();
    rc = 2;
  }
  // Leave nothing behind on the server: the session and client record go now, not at lease end.
  auto ds = Op(OP_DESTROY_SESSION);
  ds.opdestroy_session = std::make_unique<DESTROY_SESSION4args>();
  ds.opdestroy_session->dsa_sessionid = c.session;
  std::vector<nfs_argop4> v;
  v.push_back(std::move(ds));
  (void)c.Raw(std::move(v));
  auto dc = Op(OP_DESTROY_CLIENTID);
  dc.opdestroy_clientid = std::make_unique<DESTROY_CLIENTID4args>();
  dc.opdestroy_clientid->dca_clientid = c.clientid;
  std::vector<nfs_argop4> v2;
  v2.push_back(std::move(dc));
  (void)c.Raw(std::move(v2));
  return rc;
}
