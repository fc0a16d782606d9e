// Program tables, attribute helpers and the attribute procedures (GETATTR, SETATTR, ACCESS,
// FSSTAT, FSINFO, PATHCONF) of the NFSv3 service, plus the MOUNT program.
#include "nfs3/nfs3_service.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

namespace loom::nfs3 {

using rpc::CallContext;

nfsstat3 Nfs3Service::FromErrno(int err) {
  switch (err) {
    case 0: return NFS3_OK;
    case EPERM: return NFS3ERR_PERM;
    case ENOENT: return NFS3ERR_NOENT;
    case ENXIO:
    case ENODEV: return NFS3ERR_NXIO;
    case EACCES: return NFS3ERR_ACCES;
    case EEXIST: return NFS3ERR_EXIST;
    case EXDEV: return NFS3ERR_XDEV;
    case ENOTDIR: return NFS3ERR_NOTDIR;
    case EISDIR: return NFS3ERR_ISDIR;
    case EINVAL: return NFS3ERR_INVAL;
    case EFBIG: return NFS3ERR_FBIG;
    case ENOSPC: return NFS3ERR_NOSPC;
    case EROFS: return NFS3ERR_ROFS;
    case EMLINK: return NFS3ERR_MLINK;
    case ENAMETOOLONG: return NFS3ERR_NAMETOOLONG;
    case ENOTEMPTY: return NFS3ERR_NOTEMPTY;
    case EDQUOT: return NFS3ERR_DQUOT;
    case ESTALE: return NFS3ERR_STALE;
    case EBADF: return NFS3ERR_BADHANDLE;  // LocalFs uses EBADF for a malformed handle
    case EOPNOTSUPP: return NFS3ERR_NOTSUPP;
    case EOVERFLOW: return NFS3ERR_SERVERFAULT;
    case EAGAIN: return NFS3ERR_JUKEBOX;
    default: return NFS3ERR_IO;
  }
}

nfsstat3 CheckName(const std::string& name) {
  if (name.empty()) return NFS3ERR_ACCES;  // as Linux nfsd: an empty name names nothing
  if (name.size() > NAME_MAX) return NFS3ERR_NAMETOOLONG;
  if (name.find('/') != std::string::npos || name.find('\0') != std::string::npos)
    return NFS3ERR_ACCES;
  return NFS3_OK;
}

namespace {

nfstime3 Time3(const timespec& ts) {
  return nfstime3{static_cast<uint32_t>(ts.tv_sec), static_cast<uint32_t>(ts.tv_nsec)};
}

ftype3 Type3(mode_t m) {
  if (S_ISREG(m)) return NF3REG;
  if (S_ISDIR(m)) return NF3DIR;
  if (S_ISLNK(m)) return NF3LNK;
  if (S_ISBLK(m)) return NF3BLK;
  if (S_ISCHR(m)) return NF3CHR;
  if (S_ISSOCK(m)) return NF3SOCK;
  return NF3FIFO;
}

}  // namespace

void Nfs3Service::Fattr(const struct stat& st, fattr3* a) const {
  a->type = Type3(st.st_mode);
  a->mode = st.st_mode & 07777;
  a->nlink = static_cast<uint32_t>(st.st_nlink);
  a->uid = st.st_uid;
  a->gid = st.st_gid;
  a->size = static_cast<uint64_t>(st.st_size);
  a->used = static_cast<uint64_t>(st.st_blocks) * 512;
  a->rdev = specdata3{major(st.st_rdev), minor(st.st_rdev)};
  a->fsid = fs_->fsid();
  a->fileid = st.st_ino;
  a->atime = Time3(st.st_atim);
  a->mtime = Time3(st.st_mtim);
  a->ctime = Time3(st.st_ctim);
}

post_op_attr Nfs3Service::PostOp(const Node& n) const {
  post_op_attr p;
  p.attributes_follow = true;
  Fattr(n.st, &p.attributes);
  return p;
}

post_op_attr Nfs3Service::PostOpFd(int fd) const {
  post_op_attr p;
  struct stat st;
  if (::fstat(fd, &st) == 0) {
    p.attributes_follow = true;
    Fattr(st, &p.attributes);
  }
  return p;
}

pre_op_attr Nfs3Service::PreOp(const struct stat& st) {
  pre_op_attr p;
  p.attributes_follow = true;
  p.attributes.size = static_cast<uint64_t>(st.st_size);
  p.attributes.mtime = Time3(st.st_mtim);
  p.attributes.ctime = Time3(st.st_ctim);
  return p;
}

// ---------------------------------------------------------------------------- GETATTR

void Nfs3Service::Getattr(const CallContext&, const GETATTR3args& a, GETATTR3res& r) {
  Node n;
  r.status = FromErrno(fs_->Resolve(a.object.data.view(), &n));
  if (r.status == NFS3_OK) Fattr(n.st, &r.resok.obj_attributes);
}

bool Nfs3Service::GetattrInline(const CallContext&, const GETATTR3args& a, GETATTR3res& r) {
  Node n;
  int err = fs_->Resolve(a.object.data.view(), &n, /*cached_only=*/true);
  if (err == EWOULDBLOCK) return false;  // opening the handle may wait for the disk
  r.status = FromErrno(err);
  if (r.status == NFS3_OK) Fattr(n.st, &r.resok.obj_attributes);
  return true;
}

// ---------------------------------------------------------------------------- SETATTR

nfsstat3 Nfs3Service::ApplySattr(const CallContext& c, Node& n, const sattr3& sa, bool is_new) {
  const rpc::Cred& cr = c.cred;
  bool root = cr.uid == 0;
  bool owner = root || cr.uid == n.st.st_uid;
  mode_t type = n.st.st_mode & S_IFMT;
  // Linux nfsd ignores the owner and group a non-root caller asks for when it creates an
  // object: the object is already the caller's.
  bool chown = (sa.uid.set_it || sa.gid.set_it) && (root || !is_new);
  if (chown) {
    uid_t uid = sa.uid.set_it ? sa.uid.uid : static_cast<uid_t>(-1);
    gid_t gid = sa.gid.set_it ? sa.gid.gid : static_cast<gid_t>(-1);
    // As chown(2) on Linux: only the owner may chown at all, even to the values it has; only
    // root gives an object away; the owner may change the group to one of its own.
    if (!root) {
      if (!owner) return NFS3ERR_PERM;
      if (sa.uid.set_it && sa.uid.uid != n.st.st_uid) return NFS3ERR_PERM;
      if (sa.gid.set_it && sa.gid.gid != n.st.st_gid && !cr.in_group(sa.gid.gid))
        return NFS3ERR_PERM;
    }
    if (int err = LocalFs::Chown(n, uid, gid)) return FromErrno(err);
    // A chown by an unprivileged caller clears the set-ID bits (loom-ds runs as root, which
    // keeps them: the kernel does not do it for us). With a mode in the same call, the bits
    // are taken out of that mode instead, as Linux nfsd does.
    if (!root && !sa.mode.set_it) {
      if (int err = LocalFs::DropPrivs(cr, n)) return FromErrno(err);
    }
  }
  if (sa.mode.set_it && type != S_IFLNK) {  // Linux nfsd ignores mode updates on symlinks
    if (!owner) return NFS3ERR_PERM;
    mode_t mode = sa.mode.mode & 07777;
    if (chown && !root) mode &= ~LocalFs::PrivsToDrop(type | mode);
    // chmod by a caller outside the file's group (its new group, if this call changes it)
    // cannot set set-group-ID.
    gid_t group = chown && sa.gid.set_it ? sa.gid.gid : n.st.st_gid;
    if (!root && !cr.in_group(group)) mode &= ~S_ISGID;
    if (int err = LocalFs::Chmod(n, mode)) return FromErrno(err);
  }
  if (sa.size.set_it) {
    if (type == S_IFDIR) return NFS3ERR_ISDIR;
    if (type != S_IFREG) return NFS3ERR_INVAL;
    if (!owner && !LocalFs::CheckAccess(cr, n.st, kMayWrite)) return NFS3ERR_ACCES;
    if (::fstat(n.fd(), &n.st) != 0) return FromErrno(errno);
    if (int err = LocalFs::DropPrivs(cr, n)) return FromErrno(err);  // a truncate is a write
    if (::ftruncate(n.fd(), static_cast<off_t>(sa.size.size)) != 0) return FromErrno(errno);
    // The new size is durable before the reply (a later COMMIT of other bytes would not say
    // whether the size it covers is the old or the new one).
    if (fs_->SyncObject(n, true) != 0) return NFS3ERR_IO;
  }
  if (sa.atime.set_it != DONT_CHANGE || sa.mtime.set_it != DONT_CHANGE) {
    bool client_time = sa.atime.set_it == SET_TO_CLIENT_TIME || sa.mtime.set_it == SET_TO_CLIENT_TIME;
    // Setting explicit times needs ownership; "now" needs write permission (as utimes(2)).
    if (!owner && (client_time || !LocalFs::CheckAccess(cr, n.st, kMayWrite)))
      return client_time ? NFS3ERR_PERM : NFS3ERR_ACCES;
    timespec ts[2];
    auto pick = [](time_how how, const nfstime3& t, timespec* out) {
      if (how == SET_TO_SERVER_TIME) {
        out->tv_nsec = UTIME_NOW;
      } else if (how == SET_TO_CLIENT_TIME) {
        out->tv_sec = t.seconds;
        out->tv_nsec = t.nseconds;
      } else {
        out->tv_nsec = UTIME_OMIT;
      }
    };
    pick(sa.atime.set_it, sa.atime.atime, &ts[0]);
    pick(sa.mtime.set_it, sa.mtime.mtime, &ts[1]);
    if (int err = LocalFs::SetTimes(n, ts)) return FromErrno(err);
  }
  return NFS3_OK;
}

void Nfs3Service::Setattr(const CallContext& c, const SETATTR3args& a, SETATTR3res& r) {
  Node n;
  r.status = FromErrno(fs_->Resolve(a.object.data.view(), &n));
  if (r.status != NFS3_OK) return;
  r.resok.obj_wcc.before = PreOp(n.st);
  r.resfail.obj_wcc.before = r.resok.obj_wcc.before;
  if (c.read_only) {
    r.status = NFS3ERR_ROFS;
    r.resfail.obj_wcc.after = PostOp(n);
    return;
  }
  // §3.3.2: with guard.check the ctime must match, or NFS3ERR_NOT_SYNC.
  if (a.guard.check && (a.guard.obj_ctime.seconds != static_cast<uint32_t>(n.st.st_ctim.tv_sec) ||
                        a.guard.obj_ctime.nseconds != static_cast<uint32_t>(n.st.st_ctim.tv_nsec))) {
    r.status = NFS3ERR_NOT_SYNC;
    r.resfail.obj_wcc.after = PostOp(n);
    return;
  }
  r.status = ApplySattr(c, n, a.new_attributes, false);
  post_op_attr after = PostOpFd(n.fd());
  r.resok.obj_wcc.after = after;
  r.resfail.obj_wcc.after = after;
}

// ---------------------------------------------------------------------------- ACCESS

void Nfs3Service::Access(const CallContext& c, const ACCESS3args& a, ACCESS3res& r) {
  Node n;
  r.status = FromErrno(fs_->Resolve(a.object.data.view(), &n));
  if (r.status != NFS3_OK) return;
  const struct stat& st = n.st;
  uint32_t granted = 0;
  bool dir = S_ISDIR(st.st_mode);
  if (LocalFs::CheckAccess(c.cred, st, kMayRead)) granted |= ACCESS3_READ;
  if (!c.read_only && LocalFs::CheckAccess(c.cred, st, kMayWrite)) {
    granted |= ACCESS3_MODIFY | ACCESS3_EXTEND;
    if (dir) granted |= ACCESS3_DELETE;
  }
  if (LocalFs::CheckAccess(c.cred, st, kMayExec)) granted |= dir ? ACCESS3_LOOKUP : ACCESS3_EXECUTE;
  r.resok.obj_attributes = PostOp(n);
  r.resok.access = a.access & granted;
}

// ---------------------------------------------------------------------------- FSSTAT/FSINFO/PATHCONF

void Nfs3Service::Fsstat(const CallContext&, const FSSTAT3args& a, FSSTAT3res& r) {
  Node n;
  r.status = FromErrno(fs_->Resolve(a.fsroot.data.view(), &n));
  if (r.status != NFS3_OK) return;
  struct statvfs sv;
  if (::fstatvfs(n.fd(), &sv) != 0) {
    r.status = FromErrno(errno);
    r.resfail.obj_attributes = PostOp(n);
    return;
  }
  r.resok.obj_attributes = PostOp(n);
  r.resok.tbytes = uint64_t{sv.f_blocks} * sv.f_frsize;
  r.resok.fbytes = uint64_t{sv.f_bfree} * sv.f_frsize;
  r.resok.abytes = uint64_t{sv.f_bavail} * sv.f_frsize;
  r.resok.tfiles = sv.f_files;
  r.resok.ffiles = sv.f_ffree;
  r.resok.afiles = sv.f_favail;
  r.resok.invarsec = 0;
}

void Nfs3Service::Fsinfo(const CallContext&, const FSINFO3args& a, FSINFO3res& r) {
  Node n;
  r.status = FromErrno(fs_->Resolve(a.fsroot.data.view(), &n));
  if (r.status != NFS3_OK) return;
  FSINFO3resok& ok = r.resok;
  ok.obj_attributes = PostOp(n);
  ok.rtmax = ok.rtpref = opts_.max_io;
  ok.wtmax = ok.wtpref = opts_.max_io;
  ok.rtmult = ok.wtmult = 4096;
  ok.dtpref = 64 * 1024;
  ok.maxfilesize = static_cast<uint64_t>(INT64_MAX);
  ok.time_delta = nfstime3{0, 1};
  ok.properties = FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME;
}

void Nfs3Service::Pathconf(const CallContext&, const PATHCONF3args& a, PATHCONF3res& r) {
  Node n;
  r.status = FromErrno(fs_->Resolve(a.object.data.view(), &n));
  if (r.status != NFS3_OK) return;
  long link_max = ::fpathconf(n.fd(), _PC_LINK_MAX);
  long name_max = ::fpathconf(n.fd(), _PC_NAME_MAX);
  r.resok.obj_attributes = PostOp(n);
  r.resok.linkmax = link_max > 0 ? static_cast<uint32_t>(link_max) : 32000;
  r.resok.name_max = name_max > 0 ? static_cast<uint32_t>(name_max) : NAME_MAX;
  r.resok.no_trunc = true;
  r.resok.chown_restricted = true;
  r.resok.case_insensitive = false;
  r.resok.case_preserving = true;
}

// ---------------------------------------------------------------------------- MOUNT v3

namespace {
// A dirpath as the mount list keeps it: "", "/" and "//" all name the export root, and a
// trailing '/' names the same directory; clients differ in how they spell it.
std::string MountPath(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  if (p.empty()) p = "/";
  return p;
}
}  // namespace

void Nfs3Service::Mnt(const CallContext& c, const std::string& path, mountres3& r) {
  const std::string p = MountPath(path);
  // Subdirectories of the export may be mounted too (as with Linux nfsd): walk the path from
  // the root one component at a time, never following symlinks and never leaving the export.
  std::string base = opts_.export_path == "/" ? "" : opts_.export_path;
  if (p != opts_.export_path && p.compare(0, base.size() + 1, base + "/") != 0) {
    r.fhs_status = MNT3ERR_NOENT;
    return;
  }
  Node n;
  if (fs_->Resolve(fs_->root_handle(), &n) != 0) {
    r.fhs_status = MNT3ERR_SERVERFAULT;
    return;
  }
  size_t pos = base.size();
  while (pos < p.size()) {
    size_t next = p.find('/', pos + 1);
    if (next == std::string::npos) next = p.size();
    std::string comp = p.substr(pos + 1, next - pos - 1);
    pos = next;
    if (comp.empty() || comp == ".") continue;
    if (comp == ".." || fs_->Hidden(n, comp) || CheckName(comp) != NFS3_OK) {
      r.fhs_status = MNT3ERR_NOENT;
      return;
    }
    if (!LocalFs::CheckAccess(c.cred, n.st, kMayExec)) {
      r.fhs_status = MNT3ERR_ACCES;
      return;
    }
    Node child;
    int err = fs_->LookupAt(n, comp, &child);
    if (err != 0) {
      r.fhs_status = err == ENOENT ? MNT3ERR_NOENT : MNT3ERR_IO;
      return;
    }
    if (!S_ISDIR(child.st.st_mode)) {
      r.fhs_status = MNT3ERR_NOTDIR;
      return;
    }
    n = std::move(child);
  }
  r.fhs_status = MNT3_OK;
  r.mountinfo.fhandle = Bytes::Copy(n.fh);
  r.mountinfo.auth_flavors = {rpc::AUTH_SYS, rpc::AUTH_NONE};
  std::lock_guard<std::mutex> l(mounts_mu_);
  mounts_.insert({c.peer.substr(0, c.peer.rfind(':')), p});
}

void Nfs3Service::Umnt(const CallContext& c, const std::string& path) {
  std::lock_guard<std::mutex> l(mounts_mu_);
  // §5.2.3: the entry MNT made, however this dirpath is spelled.
  mounts_.erase({c.peer.substr(0, c.peer.rfind(':')), MountPath(path)});
}

void Nfs3Service::Dump(mountlist3& r) {
  std::lock_guard<std::mutex> l(mounts_mu_);
  for (const auto& [host, path] : mounts_) r.entries.push_back(mountbody{host, path});
}

void Nfs3Service::Export(exports3& r) {
  exportnode e;
  e.ex_dir = opts_.export_path;  // no groups: every host may mount it
  r.entries.push_back(e);
}

// ---------------------------------------------------------------------------- tables

rpc::ProgramDesc Nfs3Service::NfsProgram() {
  using rpc::Typed;
  rpc::ProgramDesc p;
  p.prog = NFS_PROGRAM;
  p.vers = NFS_V3;
  p.stats_prefix = "nfs3";
  p.procs.resize(NFS_V3_NPROCS);
  // For the procedures (void) and their try_inline forms (bool: false defers).
  auto bind = [this](auto method) {
    return [this, method](const CallContext& c, const auto& a, auto& r) { return (this->*method)(c, a, r); };
  };
  p.procs[NFSPROC3_NULL] = {"NULL", [](const CallContext&, xdr::Decoder&, xdr::Encoder&) {
                              return rpc::SUCCESS;
                            }, true, true};
  p.procs[NFSPROC3_GETATTR] = {"GETATTR", Typed<GETATTR3args, GETATTR3res>(bind(&Nfs3Service::Getattr))};
  if (opts_.run_to_completion) {
    p.procs[NFSPROC3_GETATTR].try_inline =
        rpc::TypedInline<GETATTR3args, GETATTR3res>(bind(&Nfs3Service::GetattrInline));
  }
  p.procs[NFSPROC3_SETATTR] = {"SETATTR", Typed<SETATTR3args, SETATTR3res>(bind(&Nfs3Service::Setattr)), false};
  p.procs[NFSPROC3_LOOKUP] = {"LOOKUP", Typed<LOOKUP3args, LOOKUP3res>(bind(&Nfs3Service::Lookup))};
  p.procs[NFSPROC3_ACCESS] = {"ACCESS", Typed<ACCESS3args, ACCESS3res>(bind(&Nfs3Service::Access))};
  p.procs[NFSPROC3_READLINK] = {"READLINK", Typed<READLINK3args, READLINK3res>(bind(&Nfs3Service::Readlink))};
  p.procs[NFSPROC3_READ] = {"READ", Typed<READ3args, READ3res>(bind(&Nfs3Service::Read))};
  if (opts_.run_to_completion) {
    p.procs[NFSPROC3_READ].try_inline =
        rpc::TypedInline<READ3args, READ3res>(bind(&Nfs3Service::ReadInline));
  }
  p.procs[NFSPROC3_WRITE] = {"WRITE", Typed<WRITE3args, WRITE3res>(bind(&Nfs3Service::Write))};
  p.procs[NFSPROC3_CREATE] = {"CREATE", Typed<CREATE3args, CREATE3res>(bind(&Nfs3Service::Create)), false};
  p.procs[NFSPROC3_MKDIR] = {"MKDIR", Typed<MKDIR3args, MKDIR3res>(bind(&Nfs3Service::Mkdir)), false};
  p.procs[NFSPROC3_SYMLINK] = {"SYMLINK", Typed<SYMLINK3args, SYMLINK3res>(bind(&Nfs3Service::Symlink)), false};
  p.procs[NFSPROC3_MKNOD] = {"MKNOD", Typed<MKNOD3args, MKNOD3res>(bind(&Nfs3Service::Mknod)), false};
  p.procs[NFSPROC3_REMOVE] = {"REMOVE", Typed<REMOVE3args, REMOVE3res>(bind(&Nfs3Service::Remove)), false};
  p.procs[NFSPROC3_RMDIR] = {"RMDIR", Typed<RMDIR3args, RMDIR3res>(bind(&Nfs3Service::Rmdir)), false};
  p.procs[NFSPROC3_RENAME] = {"RENAME", Typed<RENAME3args, RENAME3res>(bind(&Nfs3Service::Rename)), false};
  p.procs[NFSPROC3_LINK] = {"LINK", Typed<LINK3args, LINK3res>(bind(&Nfs3Service::Link)), false};
  p.procs[NFSPROC3_READDIR] = {"READDIR", Typed<READDIR3args, READDIR3res>(bind(&Nfs3Service::Readdir))};
  p.procs[NFSPROC3_READDIRPLUS] = {"READDIRPLUS", Typed<READDIRPLUS3args, READDIRPLUS3res>(bind(&Nfs3Service::Readdirplus))};
  p.procs[NFSPROC3_FSSTAT] = {"FSSTAT", Typed<FSSTAT3args, FSSTAT3res>(bind(&Nfs3Service::Fsstat))};
  p.procs[NFSPROC3_FSINFO] = {"FSINFO", Typed<FSINFO3args, FSINFO3res>(bind(&Nfs3Service::Fsinfo))};
  p.procs[NFSPROC3_PATHCONF] = {"PATHCONF", Typed<PATHCONF3args, PATHCONF3res>(bind(&Nfs3Service::Pathconf))};
  p.procs[NFSPROC3_COMMIT] = {"COMMIT", Typed<COMMIT3args, COMMIT3res>(bind(&Nfs3Service::Commit))};
  return p;
}

rpc::ProgramDesc Nfs3Service::MountProgram() {
  rpc::ProgramDesc p;
  p.prog = MOUNT_PROGRAM;
  p.vers = MOUNT_V3;
  p.stats_prefix = "mount3";
  p.procs.resize(MOUNT_V3_NPROCS);
  auto null = [](const CallContext&, xdr::Decoder&, xdr::Encoder&) { return rpc::SUCCESS; };
  p.procs[MOUNTPROC3_NULL] = {"NULL", null, true, true};
  p.procs[MOUNTPROC3_MNT] = {"MNT", [this](const CallContext& c, xdr::Decoder& d, xdr::Encoder& e) {
                               std::string path;
                               if (!d.string(path, MNTPATHLEN)) return rpc::GARBAGE_ARGS;
                               mountres3 r;
                               Mnt(c, path, r);
                               xdr_encode(e, r);
                               return rpc::SUCCESS;
                             }};
  p.procs[MOUNTPROC3_DUMP] = {"DUMP", [this](const CallContext&, xdr::Decoder&, xdr::Encoder& e) {
                                mountlist3 r;
                                Dump(r);
                                xdr_encode(e, r);
                                return rpc::SUCCESS;
                              }};
  p.procs[MOUNTPROC3_UMNT] = {"UMNT", [this](const CallContext& c, xdr::Decoder& d, xdr::Encoder&) {
                                std::string path;
                                if (!d.string(path, MNTPATHLEN)) return rpc::GARBAGE_ARGS;
                                Umnt(c, path);
                                return rpc::SUCCESS;
                              }};
  p.procs[MOUNTPROC3_UMNTALL] = {"UMNTALL", [this](const CallContext& c, xdr::Decoder&, xdr::Encoder&) {
                                   std::string host = c.peer.substr(0, c.peer.rfind(':'));
                                   std::lock_guard<std::mutex> l(mounts_mu_);
                                   for (auto it = mounts_.begin(); it != mounts_.end();)
                                     it = it->first == host ? mounts_.erase(it) : std::next(it);
                                   return rpc::SUCCESS;
                                 }};
  p.procs[MOUNTPROC3_EXPORT] = {"EXPORT", [this](const CallContext&, xdr::Decoder&, xdr::Encoder& e) {
                                  exports3 r;
                                  Export(r);
                                  xdr_encode(e, r);
                                  return rpc::SUCCESS;
                                }};
  return p;
}

}  // namespace loom::nfs3
