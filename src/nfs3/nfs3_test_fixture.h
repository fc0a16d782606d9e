// The fixture of the NFSv3 service tests: RpcServer + Nfs3Service over a temporary directory,
// driven through Nfs3Client over loopback TCP as uid 1000.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "nfs3/nfs3_client.h"
#include "nfs3/nfs3_service.h"

namespace loom::nfs3 {

// Real syncs, counted per kind; fail_with makes them fail instead.
class CountingSync : public SyncOps {
 public:
  int Sync(int fd, Kind kind) override {
    count[kind]++;
    if (int e = fail_with.load()) return e;
    return SyncOps::Sync(fd, kind);
  }
  std::atomic<int> count[4] = {0, 0, 0, 0};
  std::atomic<int> fail_with{0};
};

namespace fsys = std::filesystem;

// RpcServer + Nfs3Service over a LocalFs at root_, mounted by an Nfs3Client over loopback TCP
// as uid 1000: the start-up, shut-down, CREATE and WRITE calls the NFSv3 test fixtures share.
class Nfs3Loopback {
 protected:
  void StartNfs3(SyncOps* sync, const Nfs3Service::Options& svc_opts) {
    LocalFs::Options fo{root_, "", 64};
    fo.sync = sync;
    auto fs = LocalFs::Open(fo);
    ASSERT_TRUE(fs.ok()) << fs.status().ToString();
    fs_ = std::move(fs.value());
    svc_ = std::make_unique<Nfs3Service>(fs_.get(), svc_opts);
    rpc::ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.workers = 2;
    server_ = std::make_unique<rpc::RpcServer>(o);
    server_->Register(svc_->NfsProgram());
    server_->Register(svc_->MountProgram());
    ASSERT_TRUE(server_->Start().ok());
    loops_ = std::make_unique<rpc::LoopGroup>(1);
    loops_->Start();
    auto c = Nfs3Client::Connect(loops_->At(0), "127.0.0.1:" + std::to_string(server_->port()),
                                 rpc::Cred::Sys(1000, 1000));
    ASSERT_TRUE(c.ok());
    client_ = std::move(c.value());
    auto fh = client_->Mount("/");
    ASSERT_TRUE(fh.ok()) << fh.status().ToString();
    rootfh_ = *fh;
  }
  nfs_fh3 Create(const nfs_fh3& dir, const std::string& name, createmode3 mode = GUARDED,
                 nfsstat3 want = NFS3_OK) {
    CREATE3args a;
    a.where.dir = dir;
    a.where.name = name;
    a.how.mode = mode;
    a.how.obj_attributes.mode.set_it = true;
    a.how.obj_attributes.mode.mode = 0644;
    CREATE3res r;
    EXPECT_TRUE(client_->Call(NFSPROC3_CREATE, a, &r).ok());
    EXPECT_EQ(r.status, want) << name;
    return r.resok.obj.handle;
  }
  WRITE3res Write(const nfs_fh3& fh, uint64_t off, const std::string& data, stable_how how = UNSTABLE) {
    WRITE3args a;
    a.file = fh;
    a.offset = off;
    a.count = static_cast<uint32_t>(data.size());
    a.stable = how;
    a.data = Bytes::Copy(data);
    WRITE3res r;
    EXPECT_TRUE(client_->Call(NFSPROC3_WRITE, a, &r).ok());
    return r;
  }
  void StopNfs3() {
    client_.reset();
    loops_.reset();
    server_.reset();
    svc_.reset();
    fs_.reset();
  }

  std::string root_;
  std::unique_ptr<LocalFs> fs_;
  std::unique_ptr<Nfs3Service> svc_;
  std::unique_ptr<rpc::RpcServer> server_;
  std::unique_ptr<rpc::LoopGroup> loops_;
  std::unique_ptr<Nfs3Client> client_;
  nfs_fh3 rootfh_;
};

class Nfs3Test : public ::testing::Test, public Nfs3Loopback {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/loom-nfs3-test-XXXXXX";
    root_ = mkdtemp(tmpl);
    ::chmod(root_.c_str(), 0777);
    StartServer();
  }
  void TearDown() override {
    StopNfs3();
    fsys::remove_all(root_);
  }
  void StartServer() { StartNfs3(&sync_, svc_opts_); }
  void RestartServer() {
    StopNfs3();
    StartServer();
  }

  nfs_fh3 Mkdir(const nfs_fh3& dir, const std::string& name) {
    MKDIR3args a;
    a.where.dir = dir;
    a.where.name = name;
    MKDIR3res r;
    EXPECT_TRUE(client_->Call(NFSPROC3_MKDIR, a, &r).ok());
    EXPECT_EQ(r.status, NFS3_OK);
    return r.resok.obj.handle;
  }
  nfsstat3 Lookup(const nfs_fh3& dir, const std::string& name, nfs_fh3* out = nullptr) {
    LOOKUP3args a;
    a.what.dir = dir;
    a.what.name = name;
    LOOKUP3res r;
    EXPECT_TRUE(client_->Call(NFSPROC3_LOOKUP, a, &r).ok());
    if (out) *out = r.resok.object;
    return r.status;
  }
  READ3res Read(const nfs_fh3& fh, uint64_t off, uint32_t count) {
    READ3args a{fh, off, count};
    READ3res r;
    EXPECT_TRUE(client_->Call(NFSPROC3_READ, a, &r).ok());
    return r;
  }
  nfsstat3 Setattr(const SETATTR3args& a) {
    SETATTR3res r;
    EXPECT_TRUE(client_->Call(NFSPROC3_SETATTR, a, &r).ok());
    return r.status;
  }
  // As root (the credential stays root afterwards): gives `fh` to `uid` with `mode`, as a
  // metadata server fencing a client does.
  nfsstat3 GiveAsRoot(const nfs_fh3& fh, uint32_t uid, uint32_t mode) {
    client_->set_cred(rpc::Cred::Sys(0, 0));
    SETATTR3args a;
    a.object = fh;
    a.new_attributes.uid.set_it = true;
    a.new_attributes.uid.uid = uid;
    a.new_attributes.mode.set_it = true;
    a.new_attributes.mode.mode = mode;
    return Setattr(a);
  }
  GETATTR3res Getattr(const nfs_fh3& fh) {
    GETATTR3res r;
    EXPECT_TRUE(client_->Call(NFSPROC3_GETATTR, GETATTR3args{fh}, &r).ok());
    return r;
  }

  Nfs3Service::Options svc_opts_;
  CountingSync sync_;
};

}  // namespace loom::nfs3
