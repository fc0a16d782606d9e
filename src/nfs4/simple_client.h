// A small synchronous NFSv4.1 client: operation builders, COMPOUNDs over RpcClient, and one
// session. Used by the tests, the metadata benchmark and the loom command-line tool.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "rpc/client.h"
#include "xdr/nfs4.h"

namespace loom::nfs4::simple {

// Operation builders.
inline nfs_argop4 Op(nfs_opnum4 op) {
  nfs_argop4 a;
  a.argop = op;
  return a;
}
nfs_argop4 PutRootFh();
nfs_argop4 PutFh(const Bytes& fh);
nfs_argop4 GetFh();
nfs_argop4 SaveFh();
nfs_argop4 RestoreFh();
nfs_argop4 Lookup(const std::string& name);
nfs_argop4 Lookupp();
nfs_argop4 Getattr(std::vector<uint32_t> bits);
nfs_argop4 Mkdir(const std::string& name, uint32_t mode = 0755);
nfs_argop4 Symlink(const std::string& name, const std::string& target);
nfs_argop4 Remove(const std::string& name);
nfs_argop4 Rename(const std::string& from, const std::string& to);
nfs_argop4 Link(const std::string& name);
nfs_argop4 Readdir(uint64_t cookie, uint32_t maxcount, std::vector<uint32_t> bits = {});
// OPEN of `name` in the current directory; create=true makes it (GUARDED4 unless unchecked).
nfs_argop4 Open(const std::string& owner, const std::string& name, uint32_t access, bool create,
                bool guarded = true, uint32_t deny = 0);
nfs_argop4 OpenFh(const std::string& owner, uint32_t access);
nfs_argop4 Close(const stateid4& s);
nfs_argop4 Read(const stateid4& s, uint64_t off, uint32_t count);
nfs_argop4 Write(const stateid4& s, uint64_t off, const std::string& data, stable_how4 how = FILE_SYNC4);
// WRITE whose data is referenced, not copied: `data` must outlive the call (libloom's MDS I/O).
nfs_argop4 WriteView(const stateid4& s, uint64_t off, const void* data, uint32_t len, stable_how4 how);
nfs_argop4 Commit();
nfs_argop4 SetSize(const stateid4& s, uint64_t size);
nfs_argop4 Seek(const stateid4& s, uint64_t off);  // NFS4_CONTENT_DATA
nfs_argop4 Allocate(const stateid4& s, uint64_t off, uint64_t len);
nfs_argop4 ReadPlus(const stateid4& s, uint64_t off, uint32_t count);
nfs_argop4 AccessOp(uint32_t bits);
// pNFS (RFC 8881 §18.42-18.44): a whole-file LAYOUTGET of LAYOUT4_FLEX_FILES, a LAYOUTCOMMIT
// reporting `last_offset` as the last byte written, a LAYOUTRETURN of the file.
nfs_argop4 LayoutGet(const stateid4& sid, layoutiomode4 mode, uint32_t maxcount = 4096);
nfs_argop4 LayoutCommit(const stateid4& sid, uint64_t last_offset);
nfs_argop4 LayoutReturn(const stateid4& sid, layoutiomode4 mode = LAYOUTIOMODE4_ANY);  // OP_ACCESS (Access is the share-access type)
nfs_argop4 Secinfo(const std::string& name);
nfs_argop4 SecinfoParent();  // SECINFO_NO_NAME(SECINFO_STYLE4_PARENT)
nfs_argop4 Lock(const stateid4& open, const std::string& lock_owner, bool write, uint64_t off,
                uint64_t len);
nfs_argop4 Lockt(const std::string& lock_owner, bool write, uint64_t off, uint64_t len);
nfs_argop4 Locku(const stateid4& lock, uint64_t off, uint64_t len);
// Session operations (RFC 8881 §18.35-18.37, §18.46, §18.51), as V4Client::Setup sends them.
nfs_argop4 ExchangeId(const std::string& owner, const verifier4& verifier);
nfs_argop4 CreateSession(clientid4 id, sequenceid4 seq, uint32_t flags,
                         const channel_attrs4& fore, const channel_attrs4& back);
nfs_argop4 DestroySession(const sessionid4& s);
// SEQUENCE on slot 0.
nfs_argop4 Sequence(const sessionid4& s, sequenceid4 seq, bool cachethis = false);
nfs_argop4 ReclaimComplete(bool one_fs = false);

class V4Client {
 public:
  V4Client(std::shared_ptr<rpc::RpcClient> rpc, std::string owner)
      : rpc_(std::move(rpc)), owner_(std::move(owner)) {}
  // EXCHANGE_ID + CREATE_SESSION (+ RECLAIM_COMPLETE).
  nfsstat4 Setup(bool reclaim_complete = true);
  // A COMPOUND without SEQUENCE (session-less ops), or any raw compound.
  Result<COMPOUND4res> Raw(std::vector<nfs_argop4> ops, uint32_t minor = 1);
  // SEQUENCE on slot 0 (next seqid) + ops. cachethis asks the server to keep the reply for a
  // retransmission (it must then fit ca_maxresponsesize_cached): leave it off for big READs.
  Result<COMPOUND4res> Call(std::vector<nfs_argop4> ops, bool cachethis = true);
  // Sends the previous Call's SEQUENCE again (same seqid) with `ops`.
  Result<COMPOUND4res> Replay(std::vector<nfs_argop4> ops);
  // Raw bytes as COMPOUND arguments (for malformed-input tests).
  Result<COMPOUND4res> RawBytes(const std::string& args);

  clientid4 clientid = 0;
  sessionid4 session{};
  uint32_t seq = 0;
  rpc::Cred cred = rpc::Cred::Sys(0, 0, {}, "test");
  verifier4 verifier{1, 2, 3, 4, 5, 6, 7, 8};  // co_verifier: a new one means a reboot

 private:
  std::shared_ptr<rpc::RpcClient> rpc_;
  std::string owner_;
  bool cachethis_ = true;
};

}  // namespace loom::nfs4::simple
