// Test fixture for loom-mds end to end in one process: two loom-ds data servers, the metadata
// server over a RocksDB store, and a small NFSv4.1 client, all over loopback TCP.
#pragma once

#include <filesystem>
#include <set>

#include <gtest/gtest.h>

#include "mds/data_servers.h"
#include "meta/rocks_kv.h"
#include "nfs3/local_fs.h"
#include "nfs3/nfs3_service.h"
#include "nfs4/mds.h"
#include "nfs4/simple_client.h"

namespace loom::nfs4 {

using namespace simple;
namespace fsys = std::filesystem;

struct DataServer {
  std::unique_ptr<nfs3::LocalFs> fs;
  std::unique_ptr<nfs3::Nfs3Service> svc;
  std::unique_ptr<rpc::RpcServer> server;
};

class MdsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/loom-mds-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    std::vector<mds::DataServerConfig> cfg;
    for (int i = 0; i < ds_count_; i++) {
      std::string root = dir_ + "/ds" + std::to_string(i);
      fsys::create_directories(root);
      DataServer ds;
      auto fs = nfs3::LocalFs::Open(nfs3::LocalFs::Options{root, "", 64});
      ASSERT_TRUE(fs.ok());
      ds.fs = std::move(fs.value());
      ds.svc = std::make_unique<nfs3::Nfs3Service>(ds.fs.get(), nfs3::Nfs3Service::Options{});
      rpc::ServerOptions o;
      o.listen = "127.0.0.1:0";
      o.workers = 2;
      o.loops = 1;
      ds.server = std::make_unique<rpc::RpcServer>(o);
      ds.server->Register(ds.svc->NfsProgram());
      ds.server->Register(ds.svc->MountProgram());
      ASSERT_TRUE(ds.server->Start().ok());
      mds::DataServerConfig c;
      c.id = i + 1;
      c.address = "127.0.0.1:" + std::to_string(ds.server->port());
      cfg.push_back(c);
      ds_.push_back(std::move(ds));
    }
    auto pool = mds::DataServerPool::Create(cfg, mds::DataServerPool::Options{});
    ASSERT_TRUE(pool.ok()) << pool.status().ToString();
    pool_ = std::move(pool.value());
    StartMds();
  }
  void StartMds(uint32_t grace = 0, bool reclaim_complete = true) {
    meta::RocksKvStore::Options ko;
    ko.path = dir_ + "/meta";
    TuneStore(ko);
    auto store = meta::RocksKvStore::Open(ko);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store.value());
    Mds::Options mo;
    mo.state_dir = dir_ + "/state";
    mo.lease_seconds = lease_seconds_;
    mo.grace_seconds = grace;
    mo.mirrors = mirrors_;
    mo.stripes = stripes_;
    mo.recall_timeout_ms = recall_timeout_ms_;
    mo.run_to_completion = run_to_completion_;
    mds_ = std::make_unique<Mds>(mo, WrapStore(store_.get()), pool_.get());
    ASSERT_TRUE(mds_->Init().ok());
    ServeMds();
    loops_ = std::make_unique<rpc::LoopGroup>(1);
    loops_->Start();
    client_ = NewClient("client-a", true, reclaim_complete);
  }
  // The store the metadata server is given: store_ itself, or a wrapper a test puts in front.
  virtual meta::KvStore* WrapStore(meta::KvStore* s) { return s; }
  // A test's changes to the store's options (hooks) before it opens.
  virtual void TuneStore(meta::RocksKvStore::Options&) {}
  // (Re)starts the RPC server of mds_ on port_ (any port the first time).
  void ServeMds() {
    rpc::ServerOptions o;
    o.listen = "127.0.0.1:" + std::to_string(port_);
    o.workers = 2;
    o.loops = 1;
    server_ = std::make_unique<rpc::RpcServer>(o);
    server_->Register(mds_->Program());
    ASSERT_TRUE(server_->Start().ok());
    port_ = server_->port();
  }
  void StopMds() {
    client_.reset();
    loops_.reset();
    server_.reset();
    mds_.reset();
    store_.reset();
  }
  std::unique_ptr<V4Client> NewClient(const std::string& owner, bool setup = true,
                                      bool reclaim_complete = true) {
    auto rpc = rpc::RpcClient::Connect(loops_->At(0), "127.0.0.1:" + std::to_string(port_));
    EXPECT_TRUE(rpc.ok());
    auto c = std::make_unique<V4Client>(rpc.value(), owner);
    if (setup) {
      EXPECT_EQ(c->Setup(reclaim_complete), NFS4_OK);
    }
    return c;
  }
  void TearDown() override {
    StopMds();
    pool_.reset();
    ds_.clear();
    fsys::remove_all(dir_);
  }
  // Runs ops after SEQUENCE; returns the compound status.
  nfsstat4 Run(std::vector<nfs_argop4> ops, COMPOUND4res* out = nullptr, V4Client* c = nullptr) {
    auto r = (c ? c : client_.get())->Call(std::move(ops));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return NFS4ERR_SERVERFAULT;
    nfsstat4 st = r->status;
    if (out) *out = std::move(r.value());
    return st;
  }
  // One 32- or 64-bit attribute of `fh` (GETATTR of `bit` alone); all ones if GETATTR fails.
  template <typename T>
  T AttrOf(const Bytes& fh, uint32_t bit, V4Client* c = nullptr) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8);
    COMPOUND4res r;
    EXPECT_EQ(Run(Ops(PutFh(fh), Getattr({bit})), &r, c), NFS4_OK);
    if (r.resarray.size() < 3) return ~T{0};
    const Bytes& b = r.resarray[2].opgetattr->resok4.obj_attributes.attr_vals;
    xdr::Decoder d(b.data, b.size);
    uint32_t v32 = 0;
    uint64_t v64 = 0;
    if constexpr (sizeof(T) == 4) EXPECT_TRUE(d.u32(v32));
    else EXPECT_TRUE(d.u64(v64));
    return sizeof(T) == 4 ? static_cast<T>(v32) : static_cast<T>(v64);
  }
  template <typename... T>
  static std::vector<nfs_argop4> Ops(T&&... ops) {
    std::vector<nfs_argop4> v;
    (v.push_back(std::forward<T>(ops)), ...);
    return v;
  }
  // Creates and writes a file at the root; returns its handle and open stateid.
  void CreateFile(const std::string& name, const std::string& data, Bytes* fh, stateid4* sid) {
    COMPOUND4res r;
    ASSERT_EQ(Run(Ops(PutRootFh(), Open("owner1", name, OPEN4_SHARE_ACCESS_BOTH, true), GetFh()), &r),
              NFS4_OK);
    *sid = r.resarray[2].opopen->resok4.stateid;
    *fh = r.resarray[3].opgetfh->resok4.object;
    if (!data.empty()) {
      ASSERT_EQ(Run(Ops(PutFh(*fh), Write(*sid, 0, data)), &r), NFS4_OK);
      EXPECT_EQ(r.resarray[2].opwrite->resok4.count, data.size());
    }
  }

  std::string dir_;
  std::vector<DataServer> ds_;
  std::unique_ptr<mds::DataServerPool> pool_;
  std::unique_ptr<meta::RocksKvStore> store_;
  std::unique_ptr<Mds> mds_;
  std::unique_ptr<rpc::RpcServer> server_;
  std::unique_ptr<rpc::LoopGroup> loops_;
  std::unique_ptr<V4Client> client_;
  uint16_t port_ = 0;
  uint32_t lease_seconds_ = 30;
  int ds_count_ = 2;                // data servers SetUp starts (set it in the constructor)
  uint32_t mirrors_ = 1;            // default placement of new files
  uint32_t stripes_ = 1;
  uint32_t recall_timeout_ms_ = 0;  // 0: the lease
  bool run_to_completion_ = true;   // Mds::Options::run_to_completion
};

}  // namespace loom::nfs4
