// Test harness: loom-mds in one process without its RPC server. COMPOUNDs are encoded as a
// client would send them, handed to nfs4::RunCompound directly and their replies decoded, so
// that a test or a fuzzer sees the exact bytes a client would (no sockets on the NFSv4 side).
// The metadata store is a MemKvStore that outlives the Mds: Restart() builds a new Mds over
// the same store and state directory. With Options::crash (the default) the restart is a
// crash: MemKvStore::Restart() first drops every commit no sync covered, so whatever loom-mds
// acknowledged without making it durable is lost, as RocksDB's unsynced WAL would be after
// a power cut. Optionally loom-ds data
// servers run in the same process over loopback TCP (LocalFs in a temp dir), so that WRITE,
// READ and layouts work end to end; with none the Mds has no pool and answers as a
// non-pNFS server.
//
// Used by tests/fuzz/compound_fuzz.cc and src/nfs4/namespace_model_test.cc. Header-only;
// needs loom_nfs4, loom_nfs4_client and (for data servers) loom_nfs3.
#pragma once

#include <stdlib.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mds/data_servers.h"
#include "meta/mem_kv.h"
#include "nfs3/local_fs.h"
#include "nfs3/nfs3_service.h"
#include "nfs4/compound.h"
#include "nfs4/mds.h"
#include "nfs4/simple_client.h"
#include "rpc/auth.h"
#include "rpc/server.h"
#include "xdr/nfs4.h"

namespace loom::nfs4::testing {

// One COMPOUND's reply as the client gets it.
struct Reply {
  rpc::accept_stat accept = rpc::SUCCESS;
  std::string bytes;      // the COMPOUND4res body
  bool decoded = false;   // bytes decode as COMPOUND4res with nothing left over
  COMPOUND4res res;
};

class DirectMds {
 public:
  struct Options {
    int data_servers = 0;  // in-process loom-ds instances (0: no pool, no pNFS)
    uint32_t lease_seconds = 90;
    uint32_t grace_seconds = 0;
    uint32_t recall_timeout_ms = 0;
    bool pnfs = true;
    bool crash = true;  // Restart() loses what was not synced (MemKvStore::Restart)
    std::string tmp_prefix = "/tmp/loom-direct-mds-";
    // Each COMPOUND is tried on the "event loop" first (RunCompound's on_loop) and goes on in
    // its worker form where that stops, as loom-mds's RPC server runs it.
    bool run_to_completion = true;
  };

  explicit DirectMds(Options o)
      : opts_(std::move(o)),
        store_(meta::MemKvStore::Options{std::chrono::milliseconds(1000), opts_.crash}) {
    std::string tmpl = opts_.tmp_prefix + "XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) std::abort();
    dir_ = buf.data();
    std::vector<mds::DataServerConfig> cfg;
    for (int i = 0; i < opts_.data_servers; i++) {
      std::string root = dir_ + "/ds" + std::to_string(i);
      std::filesystem::create_directories(root);
      Ds ds;
      auto fs = nfs3::LocalFs::Open(nfs3::LocalFs::Options{root, "", 64});
      if (!fs.ok()) std::abort();
      ds.fs = std::move(fs.value());
      ds.svc = std::make_unique<nfs3::Nfs3Service>(ds.fs.get(), nfs3::Nfs3Service::Options{});
      rpc::ServerOptions so;
      so.listen = "127.0.0.1:0";
      so.workers = 1;
      so.loops = 1;
      ds.server = std::make_unique<rpc::RpcServer>(so);
      ds.server->Register(ds.svc->NfsProgram());
      ds.server->Register(ds.svc->MountProgram());
      if (!ds.server->Start().ok()) std::abort();
      mds::DataServerConfig c;
      c.id = static_cast<uint32_t>(i + 1);
      c.address = "127.0.0.1:" + std::to_string(ds.server->port());
      cfg.push_back(c);
      ds_.push_back(std::move(ds));
    }
    if (!cfg.empty()) {
      auto pool = mds::DataServerPool::Create(cfg, mds::DataServerPool::Options{});
      if (!pool.ok()) std::abort();
      pool_ = std::move(pool.value());
    }
    Start();
  }
  ~DirectMds() {
    mds_.reset();
    pool_.reset();
    ds_.clear();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  DirectMds(const DirectMds&) = delete;
  DirectMds& operator=(const DirectMds&) = delete;

  // A restart of loom-mds over the same store: every session, open and lock is gone, the
  // namespace and the durable client records stay.
  void Restart() {
    mds_.reset();
    if (opts_.crash) store_.Restart();
    Start();
  }

  // Sends raw COMPOUND4args bytes (what follows the RPC call header).
  Reply CallBytes(const std::string& args, const rpc::Cred& cred) {
    rpc::CallContext ctx;
    ctx.xid = ++xid_;
    ctx.prog = NFS4_PROGRAM;
    ctx.vers = NFS_V4;
    ctx.proc = 1;
    ctx.cred = cred;
    ctx.peer = "127.0.0.1:999";
    xdr::Decoder d(reinterpret_cast<const uint8_t*>(args.data()), args.size());
    std::optional<xdr::Encoder> e(std::in_place);
    Reply r;
    r.accept = RunCompound(*mds_, ctx, d, *e, opts_.run_to_completion);
    if (r.accept == rpc::kReplyLater) {
      // The store here owes nothing (its commits are durable when they return): the gate
      // opens at once.
      bool opened = false;
      auto gate = std::move(ctx.gate);
      gate([&] { opened = true; });
      if (!opened) std::abort();
    }
    if (r.accept == rpc::kDeferToWorker || r.accept == rpc::kReplyLater) {
      // As rpc::RpcServer: what the loop encoded is dropped; the worker form goes on from
      // ctx.resume.
      xdr::Decoder again(reinterpret_cast<const uint8_t*>(args.data()), args.size());
      e.emplace();
      r.accept = RunCompound(*mds_, ctx, again, *e);
    }
    r.bytes = e->Flatten();
    // The decoded results own a copy of the bytes (opaques are views into it), so that
    // filehandles and other Bytes taken from them outlive the Reply.
    auto buf = std::make_shared<const std::string>(r.bytes);
    xdr::Decoder rd(reinterpret_cast<const uint8_t*>(buf->data()), buf->size(), buf);
    r.decoded = xdr_decode(rd, r.res) && rd.remaining() == 0;
    return r;
  }
  Reply Call(const COMPOUND4args& a, const rpc::Cred& cred) {
    xdr::Encoder e;
    xdr_encode(e, a);
    return CallBytes(e.Flatten(), cred);
  }
  Reply Call(std::vector<nfs_argop4> ops, const rpc::Cred& cred, uint32_t minor = 1) {
    COMPOUND4args a;
    a.minorversion = minor;
    a.argarray = std::move(ops);
    return Call(a, cred);
  }

  Mds& mds() { return *mds_; }
  meta::MemKvStore& store() { return store_; }
  const std::string& dir() const { return dir_; }
  bool has_data_servers() const { return pool_ != nullptr; }

 private:
  struct Ds {
    std::unique_ptr<nfs3::LocalFs> fs;
    std::unique_ptr<nfs3::Nfs3Service> svc;
    std::unique_ptr<rpc::RpcServer> server;
  };
  void Start() {
    Mds::Options mo;
    mo.state_dir = dir_ + "/state";
    mo.lease_seconds = opts_.lease_seconds;
    mo.grace_seconds = opts_.grace_seconds;
    mo.recall_timeout_ms = opts_.recall_timeout_ms;
    mo.pnfs = opts_.pnfs;
    mds_ = std::make_unique<Mds>(mo, &store_, pool_.get());
    Status s = mds_->Init();
    if (!s.ok()) {
      fprintf(stderr, "DirectMds: Init: %s\n", s.ToString().c_str());
      std::abort();
    }
  }

  Options opts_;
  meta::MemKvStore store_;
  std::string dir_;
  uint32_t xid_ = 0;
  std::vector<Ds> ds_;
  std::unique_ptr<mds::DataServerPool> pool_;
  std::unique_ptr<Mds> mds_;
};

// A client's session over a DirectMds: EXCHANGE_ID + CREATE_SESSION (+ RECLAIM_COMPLETE), then
// COMPOUNDs with SEQUENCE on slot 0 and the right sequence id.
class DirectClient {
 public:
  DirectClient(DirectMds& m, std::string owner, rpc::Cred cred = rpc::Cred::Sys(0, 0, {}, "direct"))
      : m_(m), owner_(std::move(owner)), cred_(std::move(cred)) {}

  nfsstat4 Setup(bool reclaim_complete = true) {
    std::vector<nfs_argop4> v;
    v.push_back(simple::ExchangeId(owner_, verifier));
    Reply x = m_.Call(std::move(v), cred_);
    if (!x.decoded) return NFS4ERR_SERVERFAULT;
    if (x.res.status != NFS4_OK) return x.res.status;
    const auto& eir = x.res.resarray[0].opexchange_id->eir_resok4;
    clientid = eir.eir_clientid;
    const channel_attrs4 fore{0, 1u << 20, 1u << 20, 64u << 10, 16, 8, {}};
    const channel_attrs4 back{0, 4096, 4096, 0, 2, 1, {}};
    std::vector<nfs_argop4> v2;
    v2.push_back(simple::CreateSession(clientid, eir.eir_sequenceid, 0, fore, back));
    Reply c = m_.Call(std::move(v2), cred_);
    if (!c.decoded) return NFS4ERR_SERVERFAULT;
    if (c.res.status != NFS4_OK) return c.res.status;
    session = c.res.resarray[0].opcreate_session->csr_resok4.csr_sessionid;
    seq = 0;
    if (!reclaim_complete) return NFS4_OK;
    std::vector<nfs_argop4> v3;
    v3.push_back(simple::ReclaimComplete());
    return Call(std::move(v3)).res.status;
  }
  // SEQUENCE (next sequence id, reply cached) + ops.
  Reply Call(std::vector<nfs_argop4> ops) {
    seq++;
    ops.insert(ops.begin(), simple::Sequence(session, seq, true));
    Reply r = m_.Call(std::move(ops), cred_);
    // A SEQUENCE that failed did not use the sequence id (RFC 8881 §2.10.6.1).
    if (r.decoded && !r.res.resarray.empty() && r.res.resarray[0].resop == OP_SEQUENCE &&
        r.res.resarray[0].opsequence && r.res.resarray[0].opsequence->sr_status != NFS4_OK)
      seq--;
    return r;
  }

  clientid4 clientid = 0;
  sessionid4 session{};
  uint32_t seq = 0;
  verifier4 verifier{1, 2, 3, 4, 5, 6, 7, 8};

 private:
  DirectMds& m_;
  std::string owner_;
  rpc::Cred cred_;
};

}  // namespace loom::nfs4::testing
