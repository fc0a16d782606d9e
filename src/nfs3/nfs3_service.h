// The NFSv3 (RFC 1813) and MOUNT v3 programs of loom-ds over a LocalFs.
// Each procedure is one method; they run on the RPC worker pool and may block.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "nfs3/local_fs.h"
#include "rpc/server.h"
#include "xdr/mount3.h"
#include "xdr/nfs3.h"

namespace loom::nfs3 {

class Nfs3Service {
 public:
  struct Options {
    std::string export_path = "/";  // the MOUNT path clients ask for
    uint32_t max_io = 1u << 20;     // rtmax/wtmax advertised in FSINFO
    // Large READ replies via sendfile(2) instead of a copy (see nfs3_io.cc): never, always, or
    // when the READ is the only call in flight on its connection (the default).
    enum class Sendfile { kOff, kOn, kWhenAlone };
    Sendfile read_sendfile = Sendfile::kWhenAlone;
    // Large READ replies that do not go with sendfile are sent from a read-only mapping of
    // the file (FileRef::Map) instead of a copy into a buffer. loom-ds --read-map off.
    bool read_map = true;
    // READ and GETATTR answered on the loop thread when they need no disk (open handle, data
    // in the page cache), else on a worker. loom-ds --no-run-to-completion turns it off.
    bool run_to_completion = true;
  };
  Nfs3Service(LocalFs* fs, Options opts) : fs_(fs), opts_(std::move(opts)) {}

  // Program tables to register with an RpcServer.
  rpc::ProgramDesc NfsProgram();
  rpc::ProgramDesc MountProgram();

  // Procedures (public for tests).
  void Getattr(const rpc::CallContext&, const GETATTR3args&, GETATTR3res&);
  void Setattr(const rpc::CallContext&, const SETATTR3args&, SETATTR3res&);
  void Lookup(const rpc::CallContext&, const LOOKUP3args&, LOOKUP3res&);
  void Access(const rpc::CallContext&, const ACCESS3args&, ACCESS3res&);
  void Readlink(const rpc::CallContext&, const READLINK3args&, READLINK3res&);
  void Read(const rpc::CallContext&, const READ3args&, READ3res&);
  // READ and GETATTR on the loop thread: false when they would block (see ProcDesc::try_inline).
  bool ReadInline(const rpc::CallContext&, const READ3args&, READ3res&);
  bool GetattrInline(const rpc::CallContext&, const GETATTR3args&, GETATTR3res&);
  void Write(const rpc::CallContext&, const WRITE3args&, WRITE3res&);
  void Create(const rpc::CallContext&, const CREATE3args&, CREATE3res&);
  void Mkdir(const rpc::CallContext&, const MKDIR3args&, MKDIR3res&);
  void Symlink(const rpc::CallContext&, const SYMLINK3args&, SYMLINK3res&);
  void Mknod(const rpc::CallContext&, const MKNOD3args&, MKNOD3res&);
  void Remove(const rpc::CallContext&, const REMOVE3args&, REMOVE3res&);
  void Rmdir(const rpc::CallContext&, const RMDIR3args&, RMDIR3res&);
  void Rename(const rpc::CallContext&, const RENAME3args&, RENAME3res&);
  void Link(const rpc::CallContext&, const LINK3args&, LINK3res&);
  void Readdir(const rpc::CallContext&, const READDIR3args&, READDIR3res&);
  void Readdirplus(const rpc::CallContext&, const READDIRPLUS3args&, READDIRPLUS3res&);
  void Fsstat(const rpc::CallContext&, const FSSTAT3args&, FSSTAT3res&);
  void Fsinfo(const rpc::CallContext&, const FSINFO3args&, FSINFO3res&);
  void Pathconf(const rpc::CallContext&, const PATHCONF3args&, PATHCONF3res&);
  void Commit(const rpc::CallContext&, const COMMIT3args&, COMMIT3res&);

  void Mnt(const rpc::CallContext&, const std::string& path, mountres3&);
  void Umnt(const rpc::CallContext&, const std::string& path);
  void Dump(mountlist3&);
  void Export(exports3&);

  // errno -> nfsstat3, the one place where that mapping lives.
  static nfsstat3 FromErrno(int err);

 private:
  // Shared pieces of the directory-modifying procedures.
  nfsstat3 ResolveDirForChange(const rpc::CallContext& c, const nfs_fh3& fh, Node* dir);
  void FinishCreate(const rpc::CallContext& c, Node& dir, const struct stat& before,
                    const std::string& name, nfsstat3 st, CREATE3res& res,
                    const Node* obj = nullptr);
  nfsstat3 TakeCreated(const rpc::CallContext& c, const Node& dir, const std::string& name,
                       mode_t type, mode_t mode, Node* obj);
  // Makes a change durable (RFC 1813 §1.6): the object (files and directories) and then the
  // directory holding it. NFS3ERR_IO when a sync fails.
  nfsstat3 Durable(const Node& dir, const Node* obj);
  // Applies `sa` to `n` with the caller's permissions. is_new: attributes given at creation
  // (an unprivileged caller's uid and gid are then ignored, as by Linux nfsd).
  nfsstat3 ApplySattr(const rpc::CallContext& c, Node& n, const sattr3& sa, bool is_new);
  bool ReadNode(const rpc::CallContext& c, const READ3args& a, int resolve_err, Node& n,
                bool nowait, READ3res& r);
  // Whether a large READ on c's connection goes out with sendfile (Options::read_sendfile).
  bool Sendfile(const rpc::CallContext& c) const;
  // READDIR/READDIRPLUS: the directory behind `fh`, readable by the caller.
  nfsstat3 ResolveReadableDir(const rpc::CallContext& c, const nfs_fh3& fh, Node* dir);
  void Fattr(const struct stat& st, fattr3* a) const;
  post_op_attr PostOp(const Node& n) const;
  post_op_attr PostOpFd(int fd) const;
  static pre_op_attr PreOp(const struct stat& st);

  LocalFs* fs_;
  Options opts_;
  std::mutex mounts_mu_;
  std::set<std::pair<std::string, std::string>> mounts_;  // (client host, path)
};

// Name checks shared by the procedures that take a filename3 (RFC 1813 §3.3).
nfsstat3 CheckName(const std::string& name);

}  // namespace loom::nfs3
