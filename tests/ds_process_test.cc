// Tests against the real loom-ds binary, as a separate process:
//  - restart: after a SIGKILL, loom-ds comes back with the old file handles valid, the data
//    readable and a new write verifier, so clients know to resend uncommitted writes. This is
//    no durability test: the page cache survives a SIGKILL, so it would pass without COMMIT's
//    fdatasync. Power loss is tested through LocalFs's SyncOps seam in
//    src/nfs3/local_fs_crash_test.cc, where removing that fdatasync fails the tests;
//  - hostile input: truncated, oversized and garbage records get GARBAGE_ARGS or a closed
//    connection, and the server keeps serving other clients;
//  - the handle secret: never silently replaced over an export that holds data.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "nfs3/local_fs.h"
#include "nfs3/nfs3_client.h"

#ifndef LOOM_DS_BINARY
#error LOOM_DS_BINARY must name the loom-ds executable
#endif

namespace loom {
namespace {

using namespace nfs3;

class DsProcess {
 public:
  // `state_dir` is passed as --state-dir (empty: loom-ds picks its default).
  DsProcess(std::string root, std::string state_dir)
      : root_(std::move(root)), state_dir_(std::move(state_dir)) {}
  ~DsProcess() { Kill(SIGKILL); }

  // Starts loom-ds on a free port (the first start picks it; restarts reuse it). Fails the
  // test when it does not start.
  void Start(std::vector<std::string> extra = {}) {
    int code = TryStart(std::move(extra));
    ASSERT_EQ(code, -1) << "loom-ds did not start: " << stderr_;
  }
  // -1 when loom-ds started, else its exit status (its stderr is then in last_stderr()).
  int TryStart(std::vector<std::string> extra = {}) {
    int out[2], err[2];
    EXPECT_EQ(::pipe(out), 0);
    EXPECT_EQ(::pipe(err), 0);
    std::string listen = "127.0.0.1:" + std::to_string(port_);
    // The tests act as the metadata server (uid 0 stays root only for --mds peers).
    std::vector<std::string> args = {"loom-ds", "--root", root_, "--listen", listen,
                                     "--workers", "2", "--mds", "127.0.0.1"};
    if (!state_dir_.empty()) args.insert(args.end(), {"--state-dir", state_dir_});
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      ::close(out[0]);
      ::close(err[0]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(LOOM_DS_BINARY, argv.data());
      _exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    // The ready line carries the port.
    FILE* f = ::fdopen(out[0], "r");
    char line[512] = {0};
    bool ready = std::fgets(line, sizeof line, f) != nullptr;
    std::fclose(f);
    stderr_.clear();
    if (!ready) {
      char buf[4096];
      ssize_t n;
      while ((n = ::read(err[0], buf, sizeof buf)) > 0) stderr_.append(buf, static_cast<size_t>(n));
      ::close(err[0]);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    ::close(err[0]);
    std::string s(line);
    auto p = s.find(" port ");
    EXPECT_NE(p, std::string::npos) << s;
    if (p != std::string::npos) port_ = static_cast<uint16_t>(std::stoi(s.substr(p + 6)));
    return -1;
  }
  void Kill(int sig) {
    if (pid_ > 0) {
      ::kill(pid_, sig);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  bool Alive() { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }
  std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }
  uint16_t port() const { return port_; }
  const std::string& last_stderr() const { return stderr_; }

 private:
  std::string root_, state_dir_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string stderr_;
};

class DsProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/loom-ds-proc-XXXXXX";
    root_ = ::mkdtemp(tmpl);
    state_ = root_ + "-state";  // outside the export, removed with it
    ds_ = std::make_unique<DsProcess>(root_, state_);
    ds_->Start();
    loops_ = std::make_unique<rpc::LoopGroup>(1);
    loops_->Start();
  }
  void TearDown() override {
    ds_.reset();
    loops_.reset();
    std::filesystem::remove_all(root_);
    std::filesystem::remove_all(state_);
  }
  std::unique_ptr<Nfs3Client> Connect() {
    auto c = Nfs3Client::Connect(loops_->At(0), ds_->addr());
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c.value()) : nullptr;
  }
  int RawConnect() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(ds_->port());
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
  }

  std::string root_, state_;
  std::unique_ptr<DsProcess> ds_;
  std::unique_ptr<rpc::LoopGroup> loops_;
};

// The process restart half of crash recovery (see the top of this file for the other half).
TEST_F(DsProcessTest, RestartAfterSigkillKeepsHandlesAndDataAndChangesVerifier) {
  auto c = Connect();
  auto root = c->Mount("/");
  ASSERT_TRUE(root.ok());
  CREATE3args ca;
  ca.where = {*root, "durable.bin"};
  ca.how.mode = GUARDED;
  CREATE3res cr;
  ASSERT_TRUE(c->Call(NFSPROC3_CREATE, ca, &cr).ok());
  ASSERT_EQ(cr.status, NFS3_OK);
  nfs_fh3 fh = cr.resok.obj.handle;
  std::mt19937 rng(42);
  std::string data(4 << 20, '\0');
  for (auto& ch : data) ch = static_cast<char>(rng());
  writeverf3 wverf{};
  for (size_t off = 0; off < data.size(); off += 1 << 20) {
    WRITE3args w;
    w.file = fh;
    w.offset = off;
    w.count = 1 << 20;
    w.stable = UNSTABLE;
    w.data = Bytes::View(data.data() + off, 1 << 20, nullptr);
    WRITE3res wr;
    ASSERT_TRUE(c->Call(NFSPROC3_WRITE, w, &wr).ok());
    ASSERT_EQ(wr.status, NFS3_OK);
    wverf = wr.resok.verf;
  }
  COMMIT3res cm;
  ASSERT_TRUE(c->Call(NFSPROC3_COMMIT, COMMIT3args{fh, 0, 0}, &cm).ok());
  ASSERT_EQ(cm.status, NFS3_OK);
  EXPECT_EQ(cm.resok.verf, wverf);
  // Killed right after the COMMIT reply.
  c.reset();
  ds_->Kill(SIGKILL);
  ds_->Start();
  auto c2 = Connect();
  std::string back;
  for (uint64_t off = 0; off < data.size();) {
    READ3res rr;
    ASSERT_TRUE(c2->Call(NFSPROC3_READ, READ3args{fh, off, 1 << 20}, &rr).ok());
    ASSERT_EQ(rr.status, NFS3_OK);  // the old handle is still valid after restart
    back.append(rr.resok.data.view());
    off += rr.resok.count;
    if (rr.resok.eof) break;
  }
  EXPECT_TRUE(back == data) << "bytes lost across a process restart";
  // A new boot verifier: a client holding uncommitted writes must resend them.
  COMMIT3res cm2;
  ASSERT_TRUE(c2->Call(NFSPROC3_COMMIT, COMMIT3args{fh, 0, 0}, &cm2).ok());
  EXPECT_NE(cm2.resok.verf, wverf);
}

std::string Mark(uint32_t v) {
  xdr::Encoder e;
  e.u32(v);
  return e.Flatten();
}

TEST_F(DsProcessTest, HostileRecordsAreBoundedAndOthersKeepBeingServed) {
  auto good = Connect();
  ASSERT_TRUE(good->Null().ok());
  // 1. Oversized: a record mark claiming 1 GiB.
  {
    int fd = RawConnect();
    std::string s = Mark(0x80000000u | (1u << 30)) + std::string(4096, 'A');
    ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    char b[16];
    EXPECT_LE(::recv(fd, b, sizeof b, 0), 0);  // closed, nothing allocated for it
    ::close(fd);
  }
  // 2. Truncated WRITE arguments: GARBAGE_ARGS.
  {
    auto r = good->rpc().CallSync(NFS_PROGRAM, NFS_V3, NFSPROC3_WRITE, rpc::Cred::Sys(0, 0),
                                  [](xdr::Encoder& e) {
                                    e.u32(12);
                                    e.u32(0);
                                    e.u32(0);
                                    e.u32(0);
                                    e.u64(0);
                                    e.u32(100);  // count, then no stable/data
                                  });
    EXPECT_EQ(r.status().message(), "GARBAGE_ARGS");
  }
  // 3. Absurd opaque length inside READ args: GARBAGE_ARGS, not an allocation.
  {
    auto r = good->rpc().CallSync(NFS_PROGRAM, NFS_V3, NFSPROC3_READ, rpc::Cred::Sys(0, 0),
                                  [](xdr::Encoder& e) { e.u32(0xfffffff0u); });
    EXPECT_EQ(r.status().message(), "GARBAGE_ARGS");
  }
  // 4. Random garbage records on several connections.
  std::mt19937 rng(7);
  for (int i = 0; i < 50; i++) {
    int fd = RawConnect();
    std::string junk(1 + rng() % 2000, '\0');
    for (auto& ch : junk) ch = static_cast<char>(rng());
    std::string s = (i % 2 ? Mark(0x80000000u | junk.size()) : std::string()) + junk;
    ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
    char b[512];
    while (::recv(fd, b, sizeof b, 0) > 0) {
    }
    ::close(fd);
  }
  // 5. A connection that sends half a record and stalls does not block anyone.
  int stall = RawConnect();
  std::string half = Mark(0x80000000u | 1000) + std::string(10, 'x');
  ::send(stall, half.data(), half.size(), MSG_NOSIGNAL);
  EXPECT_TRUE(ds_->Alive());
  auto fresh = Connect();
  EXPECT_TRUE(fresh->Null().ok());
  EXPECT_TRUE(good->Null().ok());
  auto root = fresh->Mount("/");
  EXPECT_TRUE(root.ok());
  ::close(stall);
}

nfs_fh3 CreateFile(Nfs3Client& c, const nfs_fh3& dir, const std::string& name,
                   const std::string& data) {
  CREATE3args ca;
  ca.where = {dir, name};
  ca.how.mode = GUARDED;
  CREATE3res cr;
  EXPECT_TRUE(c.Call(NFSPROC3_CREATE, ca, &cr).ok());
  EXPECT_EQ(cr.status, NFS3_OK);
  WRITE3args w;
  w.file = cr.resok.obj.handle;
  w.count = static_cast<uint32_t>(data.size());
  w.stable = FILE_SYNC;
  w.data = Bytes::Copy(data);
  WRITE3res wr;
  EXPECT_TRUE(c.Call(NFSPROC3_WRITE, w, &wr).ok());
  EXPECT_EQ(wr.status, NFS3_OK);
  return cr.resok.obj.handle;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Issue 10 item 6: a lost handle secret is not silently replaced over an export with data
// (every handle the clients and loom-mds hold would go STALE); --new-secret accepts that.
TEST_F(DsProcessTest, LostSecretOverDataIsRefusedUnlessNewSecret) {
  auto c = Connect();
  auto root = c->Mount("/");
  ASSERT_TRUE(root.ok());
  nfs_fh3 fh = CreateFile(*c, *root, "precious", "bytes that must stay");
  c.reset();
  ds_->Kill(SIGTERM);
  // The secret is kept outside the export.
  EXPECT_TRUE(std::filesystem::exists(state_ + "/secret"));
  EXPECT_FALSE(std::filesystem::exists(root_ + "/.loom-ds"));
  ASSERT_TRUE(std::filesystem::remove(state_ + "/secret"));
  int code = ds_->TryStart();
  EXPECT_NE(code, -1) << "loom-ds started with a new secret over existing files";
  EXPECT_NE(code, 0);
  EXPECT_NE(ds_->last_stderr().find("--new-secret"), std::string::npos) << ds_->last_stderr();
  EXPECT_EQ(Slurp(root_ + "/precious"), "bytes that must stay");
  EXPECT_FALSE(std::filesystem::exists(state_ + "/secret"));
  // Asked for: it starts, the old handle is STALE, the file is still there by name.
  ds_->Start({"--new-secret"});
  auto c2 = Connect();
  GETATTR3res gr;
  ASSERT_TRUE(c2->Call(NFSPROC3_GETATTR, GETATTR3args{fh}, &gr).ok());
  EXPECT_EQ(gr.status, NFS3ERR_STALE);
  auto root2 = c2->Mount("/");
  ASSERT_TRUE(root2.ok());
  LOOKUP3args la;
  la.what = {*root2, "precious"};
  LOOKUP3res lr;
  ASSERT_TRUE(c2->Call(NFSPROC3_LOOKUP, la, &lr).ok());
  EXPECT_EQ(lr.status, NFS3_OK);
  EXPECT_EQ(Slurp(root_ + "/precious"), "bytes that must stay");
}

// A secret in the old location inside the export (ROOT/.loom-ds) keeps being used, so
// existing handles stay valid after an upgrade; it stays hidden from clients.
TEST_F(DsProcessTest, SecretInTheOldLocationKeepsHandlesValid) {
  ds_->Kill(SIGTERM);
  DsProcess old(root_, root_ + "/.loom-ds");
  old.Start();
  nfs_fh3 fh;
  {
    auto c = Nfs3Client::Connect(loops_->At(0), old.addr());
    ASSERT_TRUE(c.ok());
    auto root = (*c)->Mount("/");
    ASSERT_TRUE(root.ok());
    fh = CreateFile(**c, *root, "kept", "old handle");
  }
  old.Kill(SIGTERM);
  std::filesystem::remove_all(state_);
  ds_->Start();  // --state-dir state_: empty, the old secret is found in the export
  auto c = Connect();
  READ3res rr;
  ASSERT_TRUE(c->Call(NFSPROC3_READ, READ3args{fh, 0, 100}, &rr).ok());
  ASSERT_EQ(rr.status, NFS3_OK);
  EXPECT_EQ(rr.resok.data.view(), "old handle");
  EXPECT_FALSE(std::filesystem::exists(state_ + "/secret"));
}

// Without --state-dir the secret goes to LocalFs::DefaultStateDir(root), outside the export.
TEST_F(DsProcessTest, DefaultStateDirIsOutsideTheExport) {
  ds_->Kill(SIGTERM);
  std::filesystem::remove_all(state_);
  std::string def = LocalFs::DefaultStateDir(root_);
  EXPECT_EQ(def.rfind("/var/lib/loom-ds/", 0), 0u) << def;
  DsProcess ds(root_, "");
  ds.Start();
  ds.Kill(SIGTERM);
  EXPECT_TRUE(std::filesystem::exists(def + "/secret"));
  EXPECT_FALSE(std::filesystem::exists(root_ + "/.loom-ds"));
  std::filesystem::remove_all(def);
}

}  // namespace
}  // namespace loom
