// Helpers for process tests against the real loom-mds and loom-ds binaries: starting and
// killing them, and a small NFSv4.1 file client (whole-file put/get) over simple::V4Client.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "nfs4/simple_client.h"
#include "rpc/event_loop.h"

#ifndef LOOM_MDS_BINARY
#error LOOM_MDS_BINARY must name the loom-mds executable
#endif
#ifndef LOOM_DS_BINARY
#error LOOM_DS_BINARY must name the loom-ds executable
#endif

namespace loom::crash {

namespace fsys = std::filesystem;

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void WriteAll(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

inline std::string TempDir(const char* what) {
  std::string t = std::string("/tmp/loom-") + what + "-XXXXXX";
  return ::mkdtemp(t.data());
}

// One server process; stdout and stderr go to `log` (appended over restarts).
class Proc {
 public:
  Proc(std::string bin, std::string log) : bin_(std::move(bin)), log_(std::move(log)) {}
  ~Proc() { Kill(SIGKILL); }
  Proc(const Proc&) = delete;
  Proc& operator=(const Proc&) = delete;

  // Starts with `args`; true once its ready line is in the log (port() then has its port),
  // false if it exited first (exit_code()) or did not get ready within timeout_ms.
  bool Start(const std::vector<std::string>& args, int timeout_ms = 30000) {
    std::error_code ec;
    size_t from = fsys::exists(log_) ? fsys::file_size(log_, ec) : 0;
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> argv{const_cast<char*>(bin_.c_str())};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(bin_.c_str(), argv.data());
      _exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      std::string out = ReadAll(log_);
      out = out.substr(std::min(from, out.size()));
      size_t r = out.find(" ready");
      size_t p = r == std::string::npos ? r : out.find(" port ", r);
      if (p != std::string::npos && out.find('\n', p) != std::string::npos) {
        port_ = static_cast<uint16_t>(std::stoi(out.substr(p + 6)));
        return true;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  // Runs to completion (e.g. --scrub); returns the exit code.
  int Run(const std::vector<std::string>& args, int timeout_ms = 60000) {
    if (Start(args, timeout_ms)) {  // a ready line means it did not just run and exit
      Kill(SIGKILL);
      return -1;
    }
    return exit_code_;
  }
  void Kill(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    pid_ = -1;
  }
  bool running() const { return pid_ > 0; }
  uint16_t port() const { return port_; }
  std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }
  int exit_code() const { return exit_code_; }
  std::string log() const { return ReadAll(log_); }

 private:
  std::string bin_, log_;
  pid_t pid_ = -1;
  // Written by a restart on the killer thread while the client thread reads addr().
  std::atomic<uint16_t> port_{0};
  int exit_code_ = -1;
};

// A loom-ds over `root` (its handle secret under `state`), trusting 127.0.0.1 as its MDS.
class Ds {
 public:
  explicit Ds(const std::string& dir)
      : root_(dir + "/export"), state_(dir + "/state"), proc_(LOOM_DS_BINARY, dir + "/ds.log") {
    fsys::create_directories(root_);
  }
  bool Start() {
    return proc_.Start({"--root", root_, "--state-dir", state_, "--listen",
                        "127.0.0.1:" + std::to_string(proc_.port()), "--mds", "127.0.0.1",
                        "--workers", "2", "--loops", "1"});
  }
  void Kill(int sig = SIGKILL) { proc_.Kill(sig); }
  bool running() const { return proc_.running(); }
  std::string addr() const { return proc_.addr(); }
  const std::string& root() const { return root_; }
  // Every regular file under root/loom/<tree>/ named like a data file, with its contents.
  std::vector<std::pair<std::string, std::string>> DataFiles() const {
    std::vector<std::pair<std::string, std::string>> out;
    if (!fsys::exists(root_ + "/loom")) return out;
    for (const auto& e : fsys::recursive_directory_iterator(root_ + "/loom")) {
      if (e.is_regular_file() && e.path().filename().string().size() == 16)
        out.emplace_back(e.path().string(), ReadAll(e.path().string()));
    }
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  std::string root_, state_;
  Proc proc_;
};

// A loom-mds with its state under `dir` (root not squashed for 127.0.0.1).
class Mds {
 public:
  explicit Mds(const std::string& dir, std::string state = "")
      : dir_(dir), state_(state.empty() ? dir + "/state" : std::move(state)),
        proc_(LOOM_MDS_BINARY, dir + "/mds.log") {
    WriteAll(dir_ + "/exports", "127.0.0.1(rw,no_root_squash)\n");
  }
  std::vector<std::string> Args(const std::vector<std::string>& ds,
                                const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> a = {"--state-dir", state_, "--exports", dir_ + "/exports",
                                  "--grace", "0", "--loops", "1", "--workers", "4"};
    for (const auto& d : ds) {
      a.push_back("--ds");
      a.push_back(d);
    }
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  bool Start(const std::vector<std::string>& ds, const std::vector<std::string>& extra = {}) {
    auto a = Args(ds, extra);
    a.push_back("--listen");
    a.push_back("127.0.0.1:" + std::to_string(proc_.port()));
    return proc_.Start(a);
  }
  // A run that must end by itself (a refusal, --scrub): its exit code.
  int Run(const std::vector<std::string>& ds, const std::vector<std::string>& extra = {}) {
    auto a = Args(ds, extra);
    a.push_back("--listen");
    a.push_back("127.0.0.1:0");
    return proc_.Run(a);
  }
  void Kill(int sig = SIGKILL) { proc_.Kill(sig); }
  bool running() const { return proc_.running(); }
  std::string addr() const { return proc_.addr(); }
  std::string log() const { return proc_.log(); }
  int exit_code() const { return proc_.exit_code(); }
  const std::string& state() const { return state_; }

 private:
  std::string dir_, state_;
  Proc proc_;
};

// Whole-file operations over one NFSv4.1 session. Every call reports NFS4_OK only when every
// reply it needed arrived and said OK; kNoReply stands for a lost connection or a timeout.
class FileClient {
 public:
  static constexpr nfs4::nfsstat4 kNoReply = static_cast<nfs4::nfsstat4>(-1);

  FileClient() : loops_(1) { loops_.Start(); }

  bool connected() const { return c_ != nullptr; }
  bool Connect(const std::string& addr) {
    rpc::RpcClient::Options o;
    o.timeout_ms = 10000;
    o.connect_timeout_ms = 2000;
    auto rpc = rpc::RpcClient::Connect(loops_.At(0), addr, o);
    if (!rpc.ok()) {
      error_ = rpc.status().ToString();
      return false;
    }
    static std::atomic<int> clients{0};  // every session its own client owner
    c_ = std::make_unique<nfs4::simple::V4Client>(
        rpc.value(), "crash-test/" + std::to_string(++clients) + "/" + std::to_string(::getpid()));
    nfs4::nfsstat4 st = c_->Setup();
    if (st == nfs4::NFS4_OK) return true;
    error_ = std::string("session setup: ") + nfs4::nfsstat4_name(st);
    c_.reset();
    return false;
  }
  // Why the last Connect failed.
  const std::string& error() const { return error_; }

  // Creates or replaces /name with `data` (UNSTABLE writes, then COMMIT; the verifiers must
  // match, else the data may be lost and this is not OK).
  nfs4::nfsstat4 Put(const std::string& name, const std::string& data) {
    using namespace nfs4::simple;
    std::vector<nfs4::nfs_argop4> ops;
    ops.push_back(PutRootFh());
    ops.push_back(Open("crash", name, nfs4::OPEN4_SHARE_ACCESS_BOTH, true, false));
    ops.push_back(GetFh());
    auto r = Call(std::move(ops));
    if (r.status != nfs4::NFS4_OK) return r.status;
    nfs4::stateid4 sid = r.res->resarray[r.res->resarray.size() - 2].opopen->resok4.stateid;
    Bytes fh = r.res->resarray.back().opgetfh->resok4.object;
    nfs4::nfsstat4 st = OneOp(fh, SetSize(sid, 0));
    std::optional<nfs4::verifier4> verf;
    for (size_t off = 0; st == nfs4::NFS4_OK && off < data.size();) {
      size_t n = std::min<size_t>(data.size() - off, 256 * 1024);
      std::vector<nfs4::nfs_argop4> w;
      w.push_back(PutFh(fh));
      w.push_back(Write(sid, off, data.substr(off, n), nfs4::UNSTABLE4));
      auto wr = Call(std::move(w), false);
      st = wr.status;
      if (st != nfs4::NFS4_OK) break;
      const auto& ok = wr.res->resarray.back().opwrite->resok4;
      if (verf && *verf != ok.writeverf) st = nfs4::NFS4ERR_IO;  // a restart between writes
      verf = ok.writeverf;
      off += ok.count;
      if (ok.count == 0) st = nfs4::NFS4ERR_IO;
    }
    if (st == nfs4::NFS4_OK) {
      std::vector<nfs4::nfs_argop4> cm;
      cm.push_back(PutFh(fh));
      cm.push_back(Commit());
      auto cr = Call(std::move(cm));
      st = cr.status;
      // RFC 8881 §18.3.3: a different verifier means the server lost uncommitted writes.
      if (st == nfs4::NFS4_OK && verf && cr.res->resarray.back().opcommit->resok4.writeverf != *verf)
        st = nfs4::NFS4ERR_IO;
    }
    (void)OneOp(fh, Close(sid));
    return st;
  }

  // The contents of /path (NFS4ERR_NOENT if there is none); path may have directories.
  nfs4::nfsstat4 Get(const std::string& path, std::string* out) {
    using namespace nfs4::simple;
    std::vector<nfs4::nfs_argop4> ops;
    ops.push_back(PutRootFh());
    std::string name = path;
    for (size_t slash; (slash = name.find('/')) != std::string::npos; name = name.substr(slash + 1))
      ops.push_back(Lookup(name.substr(0, slash)));
    ops.push_back(Open("crash", name, nfs4::OPEN4_SHARE_ACCESS_READ, false));
    ops.push_back(GetFh());
    auto r = Call(std::move(ops));
    if (r.status != nfs4::NFS4_OK) return r.status;
    nfs4::stateid4 sid = r.res->resarray[r.res->resarray.size() - 2].opopen->resok4.stateid;
    Bytes fh = r.res->resarray.back().opgetfh->resok4.object;
    out->clear();
    nfs4::nfsstat4 st = nfs4::NFS4_OK;
    for (;;) {
      std::vector<nfs4::nfs_argop4> rd;
      rd.push_back(PutFh(fh));
      rd.push_back(Read(sid, out->size(), 1u << 20));
      auto rr = Call(std::move(rd), false);
      st = rr.status;
      if (st != nfs4::NFS4_OK) break;
      const auto& ok = rr.res->resarray.back().opread->resok4;
      out->append(reinterpret_cast<const char*>(ok.data.data), ok.data.size);
      if (ok.eof || ok.data.size == 0) break;
    }
    (void)OneOp(fh, Close(sid));
    return st;
  }

  nfs4::nfsstat4 Remove(const std::string& name) {
    std::vector<nfs4::nfs_argop4> ops;
    ops.push_back(nfs4::simple::PutRootFh());
    ops.push_back(nfs4::simple::Remove(name));
    return Call(std::move(ops)).status;
  }

  nfs4::nfsstat4 Rename(const std::string& from, const std::string& to) {
    using namespace nfs4::simple;
    std::vector<nfs4::nfs_argop4> ops;
    ops.push_back(PutRootFh());
    ops.push_back(SaveFh());
    ops.push_back(nfs4::simple::Rename(from, to));
    return Call(std::move(ops)).status;
  }

  nfs4::nfsstat4 Truncate(const std::string& name, uint64_t size) {
    using namespace nfs4::simple;
    std::vector<nfs4::nfs_argop4> ops;
    ops.push_back(PutRootFh());
    ops.push_back(Open("crash", name, nfs4::OPEN4_SHARE_ACCESS_WRITE, false));
    ops.push_back(GetFh());
    auto r = Call(std::move(ops));
    if (r.status != nfs4::NFS4_OK) return r.status;
    nfs4::stateid4 sid = r.res->resarray[r.res->resarray.size() - 2].opopen->resok4.stateid;
    Bytes fh = r.res->resarray.back().opgetfh->resok4.object;
    nfs4::nfsstat4 st = OneOp(fh, SetSize(sid, size));
    (void)OneOp(fh, Close(sid));
    return st;
  }

 private:
  struct Reply {
    nfs4::nfsstat4 status = kNoReply;
    std::optional<nfs4::COMPOUND4res> res;
  };
  Reply Call(std::vector<nfs4::nfs_argop4> ops, bool cachethis = true) {
    Reply out;
    if (!c_) return out;
    auto r = c_->Call(std::move(ops), cachethis);
    if (!r.ok()) {
      c_.reset();  // the connection is gone: the caller reconnects
      return out;
    }
    out.status = r->status;
    out.res = std::move(*r);
    return out;
  }
  nfs4::nfsstat4 OneOp(const Bytes& fh, nfs4::nfs_argop4 op) {
    std::vector<nfs4::nfs_argop4> ops;
    ops.push_back(nfs4::simple::PutFh(fh));
    ops.push_back(std::move(op));
    return Call(std::move(ops)).status;
  }

  rpc::LoopGroup loops_;
  std::unique_ptr<nfs4::simple::V4Client> c_;
  std::string error_;
};

}  // namespace loom::crash
