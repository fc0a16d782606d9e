// Test support for the loom_mds tests (fs_identity_test, ds_files_test, scrub_test): a real
// loom-ds (RpcServer + Nfs3Service + LocalFs on a temporary directory) reached over loopback
// TCP, and small helpers. Tests only.
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <functional>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "mds/data_servers.h"
#include "nfs3/local_fs.h"
#include "nfs3/nfs3_service.h"
#include "rpc/server.h"

namespace loom::mds::testing {

#define LOOM_ASSERT_OK(e)                                     \
  do {                                                        \
    const auto& _r = (e);                                     \
    ASSERT_TRUE(_r.ok()) << _r.status().ToString();           \
  } while (0)

// Answers a test forces on a TestDs, to reach the error paths a healthy loom-ds never takes.
// Set while the server runs; read on each call.
struct Faults {
  // By NFSv3 procedure number: a non-zero nfsstat3 is answered instead of doing the call,
  // after `pass` calls went through, `times` times (0: every time).
  std::array<std::atomic<int>, 22> status{}, pass{}, times{};
  std::atomic<bool> create_without_handle{false};  // CREATE/MKDIR send no handle (RFC 1813 allows it)
  std::atomic<uint32_t> write_short_by{0};         // WRITE reports this many bytes fewer
  std::atomic<bool> commit_new_verifier{false};    // COMMIT answers another verifier (a reboot)
  // By procedure number: the call gets no answer until Release() (a stuck server). Stop()
  // releases them.
  std::array<std::atomic<bool>, 22> hang{};
  void Release() {
    std::lock_guard<std::mutex> l(hang_mu);
    for (auto& h : hang) h = false;
    hang_cv.notify_all();
  }
  void WaitIfHung(uint32_t proc) {
    std::unique_lock<std::mutex> l(hang_mu);
    hang_cv.wait(l, [&] { return !hang[proc].load(); });
  }
  std::mutex hang_mu;
  std::condition_variable hang_cv;
  void Fail(uint32_t proc, nfs3::nfsstat3 st, int after = 0, int n = 0) {
    pass[proc] = after;
    times[proc] = n;
    status[proc] = static_cast<int>(st);
  }
  void Clear() {
    for (auto& s : status) s = 0;
    create_without_handle = false;
    write_short_by = 0;
    commit_new_verifier = false;
  }
  // Whether this call of `proc` fails, and with what (0: it does not).
  int Take(uint32_t proc) {
    const int st = status[proc].load();
    if (!st) return 0;
    for (int left = pass[proc].load(); left > 0;)
      if (pass[proc].compare_exchange_weak(left, left - 1)) return 0;
    for (int left = times[proc].load(); left > 0;) {
      if (times[proc].compare_exchange_weak(left, left - 1)) {
        if (left == 1) status[proc] = 0;  // the last failure asked for
        return st;
      }
    }
    return st;
  }
};

namespace internal {
// A procedure the server may also answer on its loop thread (ProcDesc::try_inline, where the
// server has it) would bypass the wrapper: always take the wrapped path.
template <typename D>
void NoInline(D& d) {
  if constexpr (requires { d.try_inline; }) d.try_inline = nullptr;
}

// Replaces procedure `proc` by one that answers `f->status[proc]` when set, else calls the
// service and lets `after` change the result.
template <typename A, typename R, typename Method>
void Wrap(rpc::ProgramDesc& p, uint32_t proc, nfs3::Nfs3Service* svc, Faults* f, Method m,
          void (*after)(Faults*, R&) = nullptr) {
  NoInline(p.procs[proc]);
  p.procs[proc].fn = rpc::Typed<A, R>([=](const rpc::CallContext& ctx, const A& a, R& r) {
    f->WaitIfHung(proc);
    if (int st = f->Take(proc)) {
      r.status = static_cast<nfs3::nfsstat3>(st);
      return;
    }
    (svc->*m)(ctx, a, r);
    if (after) after(f, r);
  });
}
}  // namespace internal

// One loom-ds: a directory served on a loopback port that survives Stop/Start. With Faults,
// the calls the MDS makes can be made to fail (see Faults).
class TestDs {
 public:
  TestDs() {
    char tmpl[] = "/tmp/loom-mds-test-XXXXXX";
    root_ = ::mkdtemp(tmpl);
  }
  ~TestDs() {
    Stop();
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  // port 0: any free port (the first start); later starts reuse the port.
  void Start(Faults* faults = nullptr) {
    auto fs = nfs3::LocalFs::Open(nfs3::LocalFs::Options{root_, "", 64});
    ASSERT_TRUE(fs.ok()) << fs.status().ToString();
    fs_ = std::move(fs.value());
    svc_ = std::make_unique<nfs3::Nfs3Service>(fs_.get(), nfs3::Nfs3Service::Options{});
    rpc::ServerOptions o;
    o.listen = "127.0.0.1:" + std::to_string(port_);
    o.loops = 1;
    o.workers = 2;
    server_ = std::make_unique<rpc::RpcServer>(o);
    rpc::ProgramDesc nfs = svc_->NfsProgram();
    faults_ = faults;
    if (faults) InstallFaults(nfs, faults);
    server_->Register(nfs);
    server_->Register(svc_->MountProgram());
    Status st = server_->Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
    port_ = server_->port();
  }
  void InstallFaults(rpc::ProgramDesc& p, Faults* f) {
    using namespace loom::nfs3;
    using internal::Wrap;
    Nfs3Service* svc = svc_.get();
    Wrap<GETATTR3args, GETATTR3res>(p, NFSPROC3_GETATTR, svc, f, &Nfs3Service::Getattr);
    Wrap<SETATTR3args, SETATTR3res>(p, NFSPROC3_SETATTR, svc, f, &Nfs3Service::Setattr);
    Wrap<LOOKUP3args, LOOKUP3res>(p, NFSPROC3_LOOKUP, svc, f, &Nfs3Service::Lookup);
    Wrap<READ3args, READ3res>(p, NFSPROC3_READ, svc, f, &Nfs3Service::Read);
    Wrap<WRITE3args, WRITE3res>(p, NFSPROC3_WRITE, svc, f, &Nfs3Service::Write,
                                +[](Faults* f, WRITE3res& r) {
                                  if (r.status == NFS3_OK) r.resok.count -= std::min(r.resok.count, f->write_short_by.load());
                                });
    Wrap<CREATE3args, CREATE3res>(p, NFSPROC3_CREATE, svc, f, &Nfs3Service::Create,
                                  +[](Faults* f, CREATE3res& r) {
                                    if (r.status == NFS3_OK && f->create_without_handle) r.resok.obj.handle_follows = false;
                                  });
    Wrap<MKDIR3args, MKDIR3res>(p, NFSPROC3_MKDIR, svc, f, &Nfs3Service::Mkdir,
                                +[](Faults* f, MKDIR3res& r) {
                                  if (r.status == NFS3_OK && f->create_without_handle) r.resok.obj.handle_follows = false;
                                });
    Wrap<REMOVE3args, REMOVE3res>(p, NFSPROC3_REMOVE, svc, f, &Nfs3Service::Remove);
    Wrap<RENAME3args, RENAME3res>(p, NFSPROC3_RENAME, svc, f, &Nfs3Service::Rename);
    Wrap<READDIRPLUS3args, READDIRPLUS3res>(p, NFSPROC3_READDIRPLUS, svc, f, &Nfs3Service::Readdirplus);
    Wrap<FSSTAT3args, FSSTAT3res>(p, NFSPROC3_FSSTAT, svc, f, &Nfs3Service::Fsstat);
    Wrap<COMMIT3args, COMMIT3res>(p, NFSPROC3_COMMIT, svc, f, &Nfs3Service::Commit,
                                  +[](Faults* f, COMMIT3res& r) {
                                    if (r.status == NFS3_OK && f->commit_new_verifier) r.resok.verf[0] ^= 0xff;
                                  });
  }
  void Stop() {
    if (faults_) faults_->Release();  // a hung call would keep the server from stopping
    server_.reset();
    svc_.reset();
    fs_.reset();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& root() const { return root_; }
  std::string Loom(const std::string& rel) const { return root_ + "/loom/" + rel; }

 private:
  std::string root_;
  uint16_t port_ = 0;
  Faults* faults_ = nullptr;
  std::unique_ptr<nfs3::LocalFs> fs_;
  std::unique_ptr<nfs3::Nfs3Service> svc_;
  std::unique_ptr<rpc::RpcServer> server_;
};

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void WriteFile(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

inline DataServerConfig Config(uint32_t id, std::string address) {
  DataServerConfig c;
  c.id = id;
  c.address = std::move(address);
  return c;
}

// Options that make an unreachable server fail at once.
inline DataServerPool::Options FastOptions() {
  DataServerPool::Options o;
  o.connect_timeout_ms = 2000;
  o.rpc_timeout_ms = 5000;
  o.jukebox_retries = 1;
  o.jukebox_delay_ms = 1;
  return o;
}

// A loopback address nothing listens on (a port bound and closed again).
inline std::string DeadAddress() {
  TestDs d;
  d.Start();
  std::string a = d.address();
  d.Stop();
  return a;
}

// What a function printed to a FILE*.
inline std::string Capture(const std::function<void(std::FILE*)>& fn) {
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* out = ::open_memstream(&buf, &len);
  fn(out);
  std::fclose(out);
  std::string s(buf, len);
  std::free(buf);
  return s;
}

// The filesystem id the tests use.
inline constexpr meta::FsId kFs = 7;

// Whether `text` (an error message, a report) mentions `part`.
inline bool Has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A placement of `mirrors` x `stripes` (stripe unit 0: the pool's default).
inline Placement Place(uint32_t mirrors, uint32_t stripes, uint64_t stripe_unit = 0) {
  Placement p;
  p.mirrors = mirrors;
  p.stripes = stripes;
  if (stripe_unit) p.stripe_unit = stripe_unit;
  return p;
}

}  // namespace loom::mds::testing
