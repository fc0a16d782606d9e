// A small synchronous NFSv3 + MOUNT v3 client over RpcClient: what the metadata server uses to
// manage data-server files, and what tests and tools use to talk to loom-ds.
#pragma once

#include <memory>
#include <string>

#include "rpc/client.h"
#include "xdr/mount3.h"
#include "xdr/nfs3.h"

namespace loom::nfs3 {

class Nfs3Client {
 public:
  explicit Nfs3Client(std::shared_ptr<rpc::RpcClient> rpc, rpc::Cred cred = rpc::Cred::Sys(0, 0))
      : rpc_(std::move(rpc)), cred_(std::move(cred)) {}

  static Result<std::unique_ptr<Nfs3Client>> Connect(rpc::EventLoop* loop, const std::string& addr,
                                                     rpc::Cred cred = rpc::Cred::Sys(0, 0)) {
    auto c = rpc::RpcClient::Connect(loop, addr);
    if (!c.ok()) return c.status();
    return std::make_unique<Nfs3Client>(std::move(c.value()), std::move(cred));
  }

  // MOUNT v3 MNT: the root handle of `path`.
  Result<nfs_fh3> Mount(const std::string& path) {
    auto r = rpc_->CallSync(MOUNT_PROGRAM, MOUNT_V3, MOUNTPROC3_MNT, cred_,
                            [&](xdr::Encoder& e) { e.string(path); });
    if (!r.ok()) return r.status();
    mountres3 res;
    xdr::Decoder d = r->results();
    if (!xdr_decode(d, res)) return Status::Invalid("bad MNT reply");
    if (res.fhs_status != MNT3_OK)
      return Status(Code::kNotFound, std::string("MNT: ") + mountstat3_name(res.fhs_status));
    nfs_fh3 fh;
    fh.data = res.mountinfo.fhandle;
    return fh;
  }

  // Any NFSv3 procedure: Call(NFSPROC3_GETATTR, args, &res).
  template <typename Args, typename Res>
  Status Call(uint32_t proc, const Args& a, Res* r) {
    return rpc_->Call(NFS_PROGRAM, NFS_V3, proc, a, r, cred_);
  }
  Status Null() {
    auto r = rpc_->CallSync(NFS_PROGRAM, NFS_V3, NFSPROC3_NULL, cred_, [](xdr::Encoder&) {});
    return r.status();
  }

  void set_cred(rpc::Cred c) { cred_ = std::move(c); }
  rpc::RpcClient& rpc() { return *rpc_; }

 private:
  std::shared_ptr<rpc::RpcClient> rpc_;
  rpc::Cred cred_;
};

}  // namespace loom::nfs3
