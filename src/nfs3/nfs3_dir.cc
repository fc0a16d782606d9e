// Namespace procedures: LOOKUP, READLINK, CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR,
// RENAME, LINK. Objects are created as root and then given to the caller (uid, and gid or
// the directory's gid when it is set-group-ID), as a local create by that user would be.
//
// Names are resolved once: a created object is opened without following links and checked to
// be the one just made, and every later change goes through that descriptor, so a client that
// swaps the name for a symlink cannot redirect a chown or chmod outside the export.
// RFC 1813 §1.6: CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, RENAME and LINK are synchronous
// modifications: the changed directories (and a new file) are synced before the reply, and a
// failed sync is NFS3ERR_IO.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "nfs3/nfs3_service.h"

namespace loom::nfs3 {

using rpc::CallContext;

namespace {

bool IsDotOrDotDot(const std::string& n) { return n == "." || n == ".."; }

gid_t NewGid(const rpc::Cred& c, const struct stat& dir) {
  return (dir.st_mode & S_ISGID) ? dir.st_gid : c.gid;
}

// Sticky directories (RFC-silent, POSIX behaviour): only the owner of the entry or of the
// directory, or root, may remove or rename it.
bool StickyDenies(const rpc::Cred& c, const Node& dir, const char* name) {
  if (!(dir.st.st_mode & S_ISVTX) || c.uid == 0 || c.uid == dir.st.st_uid) return false;
  struct stat st;
  if (::fstatat(dir.fd(), name, &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
  return c.uid != st.st_uid;
}

// The name of an object about to be created: valid, not "." or "..", not the hidden state
// directory (those exist already: EXIST).
nfsstat3 CheckNewName(const LocalFs& fs, const Node& dir, const std::string& name) {
  nfsstat3 st = CheckName(name);
  if (st == NFS3_OK && (IsDotOrDotDot(name) || fs.Hidden(dir, name))) st = NFS3ERR_EXIST;
  return st;
}

// The mode a new object of the caller gets: as Linux, a non-root caller outside the object's
// group cannot create a set-group-ID file.
mode_t NewMode(const rpc::Cred& c, mode_t type, mode_t mode, gid_t gid) {
  if (c.uid != 0 && type != S_IFDIR && !c.in_group(gid)) mode &= ~S_ISGID;
  return mode;
}

// Gives a just-created object (held by `obj`) to the caller and sets its mode regardless of
// the umask; then refreshes obj.st.
nfsstat3 GiveToCaller(const rpc::Cred& c, const struct stat& dir, Node& obj, mode_t mode) {
  gid_t gid = NewGid(c, dir);
  mode_t type = obj.st.st_mode & S_IFMT;
  int err = LocalFs::Chown(obj, c.uid, gid);
  if (err == 0) err = LocalFs::Chmod(obj, NewMode(c, type, mode, gid));
  if (err == 0 && ::fstat(obj.fd(), &obj.st) != 0) err = errno;
  return Nfs3Service::FromErrno(err);
}

// LINK of a file the caller does not own, as Linux with fs.protected_hardlinks=1 (the usual
// default; Linux nfsd checks it as the caller): only a regular file, not set-ID, that the caller
// may read and write.
bool MayLink(const rpc::Cred& c, const struct stat& st) {
  if (c.uid == 0 || c.uid == st.st_uid) return true;
  return S_ISREG(st.st_mode) && LocalFs::PrivsToDrop(st.st_mode) == 0 &&
         LocalFs::CheckAccess(c, st, kMayRead | kMayWrite);
}

sattr3 WithoutMode(const sattr3& s) {
  sattr3 o = s;
  o.mode.set_it = false;
  return o;
}

}  // namespace

nfsstat3 Nfs3Service::Durable(const Node& dir, const Node* obj) {
  // A failed sync reports its errno like any other failure (a full journal is NOSPC, a quota
  // DQUOT, RFC 1813 §3.3.8-3.3.16), as Linux nfsd's commit_metadata does through nfserrno.
  if (obj && (S_ISREG(obj->st.st_mode) || S_ISDIR(obj->st.st_mode))) {
    if (int err = fs_->SyncObject(*obj, false)) return FromErrno(err);
  }
  return FromErrno(fs_->SyncDir(dir));
}

nfsstat3 Nfs3Service::ResolveDirForChange(const CallContext& c, const nfs_fh3& fh, Node* dir) {
  int err = fs_->Resolve(fh.data.view(), dir);
  if (err != 0) return FromErrno(err);
  if (!S_ISDIR(dir->st.st_mode)) return NFS3ERR_NOTDIR;
  if (c.read_only) return NFS3ERR_ROFS;
  if (!LocalFs::CheckAccess(c.cred, dir->st, kMayWrite | kMayExec)) return NFS3ERR_ACCES;
  return NFS3_OK;
}

void Nfs3Service::Lookup(const CallContext& c, const LOOKUP3args& a, LOOKUP3res& r) {
  Node dir;
  r.status = FromErrno(fs_->Resolve(a.what.dir.data.view(), &dir));
  if (r.status != NFS3_OK) return;
  r.resfail.dir_attributes = PostOp(dir);
  if (!S_ISDIR(dir.st.st_mode)) {
    r.status = NFS3ERR_NOTDIR;
    return;
  }
  const std::string& name = a.what.name;
  if (name.size() > NAME_MAX) {
    r.status = NFS3ERR_NAMETOOLONG;
    return;
  }
  if ((r.status = CheckName(name)) != NFS3_OK) return;
  if (!LocalFs::CheckAccess(c.cred, dir.st, kMayExec)) {
    r.status = NFS3ERR_ACCES;
    return;
  }
  if (fs_->Hidden(dir, name)) {
    r.status = NFS3ERR_NOENT;
    return;
  }
  Node obj;
  r.status = FromErrno(fs_->LookupAt(dir, name, &obj));
  if (r.status != NFS3_OK) return;
  r.resok.object.data = Bytes::Copy(obj.fh);
  r.resok.obj_attributes = PostOp(obj);
  r.resok.dir_attributes = PostOp(dir);
}

void Nfs3Service::Readlink(const CallContext&, const READLINK3args& a, READLINK3res& r) {
  Node n;
  r.status = FromErrno(fs_->Resolve(a.symlink.data.view(), &n));
  if (r.status != NFS3_OK) return;
  r.resfail.symlink_attributes = PostOp(n);
  if (!S_ISLNK(n.st.st_mode)) {
    r.status = NFS3ERR_INVAL;
    return;
  }
  char buf[PATH_MAX];
  ssize_t len = ::readlinkat(n.fd(), "", buf, sizeof buf);
  if (len < 0) {
    r.status = FromErrno(errno);
    return;
  }
  r.resok.symlink_attributes = PostOp(n);
  r.resok.data.assign(buf, static_cast<size_t>(len));
}

// Fills the CREATE-style result for `name`, just created (`obj`) or found in `dir`.
void Nfs3Service::FinishCreate(const CallContext&, Node& dir, const struct stat& before,
                               const std::string& name, nfsstat3 st, CREATE3res& r,
                               const Node* obj) {
  r.status = st;
  wcc_data wcc;
  wcc.before = PreOp(before);
  wcc.after = PostOpFd(dir.fd());
  if (st != NFS3_OK) {
    r.resfail.dir_wcc = wcc;
    return;
  }
  Node found;
  if (!obj && fs_->LookupAt(dir, name, &found) == 0) obj = &found;
  r.resok.dir_wcc = wcc;
  if (obj) {
    r.resok.obj.handle_follows = true;
    r.resok.obj.handle.data = Bytes::Copy(obj->fh);
    r.resok.obj_attributes = PostOpFd(obj->fd());
  }
}

void Nfs3Service::Create(const CallContext& c, const CREATE3args& a, CREATE3res& r) {
  Node dir;
  r.status = ResolveDirForChange(c, a.where.dir, &dir);
  if (r.status != NFS3_OK) return;
  struct stat before = dir.st;
  const std::string& name = a.where.name;
  nfsstat3 st = CheckNewName(*fs_, dir, name);
  if (st != NFS3_OK) return FinishCreate(c, dir, before, name, st, r);

  const sattr3* sa = a.how.mode == EXCLUSIVE ? nullptr : &a.how.obj_attributes;
  mode_t mode = (sa && sa->mode.set_it) ? (sa->mode.mode & 07777) : 0644;
  int fd = ::openat(dir.fd(), name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC,
                    0600);
  if (fd < 0 && errno != EEXIST) return FinishCreate(c, dir, before, name, FromErrno(errno), r);
  if (fd < 0) {
    Node cur;
    int err = fs_->LookupAt(dir, name, &cur);
    if (err != 0) return FinishCreate(c, dir, before, name, FromErrno(err), r);
    if (a.how.mode == GUARDED) return FinishCreate(c, dir, before, name, NFS3ERR_EXIST, r);
    if (a.how.mode == EXCLUSIVE) {
      // §3.3.8: a retransmitted EXCLUSIVE create finds the verifier it stored and succeeds.
      uint32_t v0, v1;
      std::memcpy(&v0, a.how.verf.data(), 4);
      std::memcpy(&v1, a.how.verf.data() + 4, 4);
      bool same = S_ISREG(cur.st.st_mode) && static_cast<uint32_t>(cur.st.st_atim.tv_sec) == v0 &&
                  static_cast<uint32_t>(cur.st.st_mtim.tv_sec) == v1;
      return FinishCreate(c, dir, before, name, same ? NFS3_OK : NFS3ERR_EXIST, r, &cur);
    }
    // UNCHECKED on an existing object: like open(O_CREAT) — apply the attributes (e.g. size 0)
    // with the caller's permissions, to the object the name held when it was looked up.
    if (!S_ISREG(cur.st.st_mode)) return FinishCreate(c, dir, before, name, NFS3ERR_EXIST, r);
    st = ApplySattr(c, cur, WithoutMode(*sa), false);
    return FinishCreate(c, dir, before, name, st, r, &cur);
  }
  // A new file, ours by O_EXCL: give it to the caller, fix the mode against the umask, then
  // the rest — all through the descriptor that created it.
  Node obj;
  int err = fs_->AdoptFd(fd, &obj);
  st = err != 0 ? FromErrno(err) : GiveToCaller(c.cred, dir.st, obj, mode);
  if (st == NFS3_OK && a.how.mode == EXCLUSIVE) {
    uint32_t v0, v1;
    std::memcpy(&v0, a.how.verf.data(), 4);
    std::memcpy(&v1, a.how.verf.data() + 4, 4);
    timespec ts[2] = {{static_cast<time_t>(v0), 0}, {static_cast<time_t>(v1), 0}};
    st = FromErrno(LocalFs::SetTimes(obj, ts));
  }
  if (st == NFS3_OK && sa) st = ApplySattr(c, obj, WithoutMode(*sa), true);
  if (st == NFS3_OK) st = Durable(dir, &obj);
  FinishCreate(c, dir, before, name, st, r, &obj);
}

// Opens what mkdirat/mknodat/symlinkat just made as `name` and gives it to the caller.
nfsstat3 Nfs3Service::TakeCreated(const CallContext& c, const Node& dir, const std::string& name,
                                  mode_t type, mode_t mode, Node* obj) {
  int err = fs_->OpenCreated(dir, name, type, obj);
  if (err != 0) return FromErrno(err);
  return GiveToCaller(c.cred, dir.st, *obj, mode);
}

void Nfs3Service::Mkdir(const CallContext& c, const MKDIR3args& a, MKDIR3res& r) {
  Node dir;
  r.status = ResolveDirForChange(c, a.where.dir, &dir);
  if (r.status != NFS3_OK) return;
  struct stat before = dir.st;
  const std::string& name = a.where.name;
  nfsstat3 st = CheckNewName(*fs_, dir, name);
  if (st != NFS3_OK) return FinishCreate(c, dir, before, name, st, r);
  mode_t mode = a.attributes.mode.set_it ? (a.attributes.mode.mode & 07777) : 0755;
  if (dir.st.st_mode & S_ISGID) mode |= S_ISGID;
  // Private until it is the caller's, with its final mode.
  if (::mkdirat(dir.fd(), name.c_str(), 0700) != 0)
    return FinishCreate(c, dir, before, name, FromErrno(errno), r);
  Node obj;
  st = TakeCreated(c, dir, name, S_IFDIR, mode, &obj);
  if (st == NFS3_OK) st = ApplySattr(c, obj, WithoutMode(a.attributes), true);
  if (st == NFS3_OK) st = Durable(dir, &obj);
  FinishCreate(c, dir, before, name, st, r, st == NFS3_OK ? &obj : nullptr);
}

void Nfs3Service::Symlink(const CallContext& c, const SYMLINK3args& a, SYMLINK3res& r) {
  Node dir;
  r.status = ResolveDirForChange(c, a.where.dir, &dir);
  if (r.status != NFS3_OK) return;
  struct stat before = dir.st;
  const std::string& name = a.where.name;
  nfsstat3 st = CheckNewName(*fs_, dir, name);
  if (st == NFS3_OK && (a.symlink.symlink_data.empty() ||
                        a.symlink.symlink_data.size() >= PATH_MAX ||
                        a.symlink.symlink_data.find('\0') != std::string::npos))
    st = NFS3ERR_INVAL;
  if (st != NFS3_OK) return FinishCreate(c, dir, before, name, st, r);
  if (::symlinkat(a.symlink.symlink_data.c_str(), dir.fd(), name.c_str()) != 0)
    return FinishCreate(c, dir, before, name, FromErrno(errno), r);
  Node obj;
  st = TakeCreated(c, dir, name, S_IFLNK, 0777, &obj);
  if (st == NFS3_OK) st = Durable(dir, &obj);
  FinishCreate(c, dir, before, name, st, r, st == NFS3_OK ? &obj : nullptr);
}

void Nfs3Service::Mknod(const CallContext& c, const MKNOD3args& a, MKNOD3res& r) {
  Node dir;
  r.status = ResolveDirForChange(c, a.where.dir, &dir);
  if (r.status != NFS3_OK) return;
  struct stat before = dir.st;
  const std::string& name = a.where.name;
  nfsstat3 st = CheckNewName(*fs_, dir, name);
  mode_t type = 0;
  dev_t dev = 0;
  const sattr3* sa = nullptr;
  switch (a.what.type) {
    case NF3CHR:
    case NF3BLK:
      type = a.what.type == NF3CHR ? S_IFCHR : S_IFBLK;
      dev = makedev(a.what.device.spec.specdata1, a.what.device.spec.specdata2);
      sa = &a.what.device.dev_attributes;
      if (c.cred.uid != 0 && st == NFS3_OK) st = NFS3ERR_PERM;
      break;
    case NF3SOCK:
    case NF3FIFO:
      type = a.what.type == NF3SOCK ? S_IFSOCK : S_IFIFO;
      sa = &a.what.pipe_attributes;
      break;
    default:
      if (st == NFS3_OK) st = NFS3ERR_BADTYPE;
  }
  if (st != NFS3_OK) return FinishCreate(c, dir, before, name, st, r);
  mode_t mode = sa->mode.set_it ? (sa->mode.mode & 07777) : 0644;
  if (::mknodat(dir.fd(), name.c_str(), type | 0600, dev) != 0)
    return FinishCreate(c, dir, before, name, FromErrno(errno), r);
  Node obj;
  st = TakeCreated(c, dir, name, type, mode, &obj);
  if (st == NFS3_OK) st = ApplySattr(c, obj, WithoutMode(*sa), true);
  if (st == NFS3_OK) st = Durable(dir, &obj);
  FinishCreate(c, dir, before, name, st, r, st == NFS3_OK ? &obj : nullptr);
}

void Nfs3Service::Remove(const CallContext& c, const REMOVE3args& a, REMOVE3res& r) {
  Node dir;
  r.status = ResolveDirForChange(c, a.object.dir, &dir);
  if (r.status != NFS3_OK) return;
  r.resfail.dir_wcc.before = PreOp(dir.st);
  const std::string& name = a.object.name;
  nfsstat3 st = CheckName(name);
  if (st == NFS3_OK && IsDotOrDotDot(name)) st = NFS3ERR_INVAL;
  if (st == NFS3_OK && fs_->Hidden(dir, name)) st = NFS3ERR_ACCES;
  if (st == NFS3_OK && StickyDenies(c.cred, dir, name.c_str())) st = NFS3ERR_ACCES;
  std::string fh;
  if (st == NFS3_OK) {
    fs_->HandleOf(dir.fd(), name.c_str(), &fh);  // to drop it from the descriptor cache
    if (::unlinkat(dir.fd(), name.c_str(), 0) != 0) st = FromErrno(errno);
    if (st == NFS3_OK) st = Durable(dir, nullptr);
  }
  if (st == NFS3_OK && !fh.empty()) fs_->Forget(fh);
  r.status = st;
  r.resfail.dir_wcc.after = PostOpFd(dir.fd());
  r.resok.dir_wcc = r.resfail.dir_wcc;
}

void Nfs3Service::Rmdir(const CallContext& c, const RMDIR3args& a, RMDIR3res& r) {
  Node dir;
  r.status = ResolveDirForChange(c, a.object.dir, &dir);
  if (r.status != NFS3_OK) return;
  r.resfail.dir_wcc.before = PreOp(dir.st);
  const std::string& name = a.object.name;
  nfsstat3 st = CheckName(name);
  // §3.3.13: "." is INVAL; ".." is EXIST or NOTEMPTY.
  if (st == NFS3_OK && name == ".") st = NFS3ERR_INVAL;
  if (st == NFS3_OK && name == "..") st = NFS3ERR_NOTEMPTY;
  if (st == NFS3_OK && fs_->Hidden(dir, name)) st = NFS3ERR_ACCES;
  if (st == NFS3_OK && StickyDenies(c.cred, dir, name.c_str())) st = NFS3ERR_ACCES;
  std::string fh;
  if (st == NFS3_OK) {
    fs_->HandleOf(dir.fd(), name.c_str(), &fh);
    if (::unlinkat(dir.fd(), name.c_str(), AT_REMOVEDIR) != 0) st = FromErrno(errno);
    if (st == NFS3_OK) st = Durable(dir, nullptr);
  }
  if (st == NFS3_OK && !fh.empty()) fs_->Forget(fh);
  r.status = st;
  r.resfail.dir_wcc.after = PostOpFd(dir.fd());
  r.resok.dir_wcc = r.resfail.dir_wcc;
}

void Nfs3Service::Rename(const CallContext& c, const RENAME3args& a, RENAME3res& r) {
  Node from, to;
  r.status = ResolveDirForChange(c, a.from.dir, &from);
  if (r.status == NFS3_OK) r.status = ResolveDirForChange(c, a.to.dir, &to);
  if (r.status != NFS3_OK) return;
  r.resfail.fromdir_wcc.before = PreOp(from.st);
  r.resfail.todir_wcc.before = PreOp(to.st);
  nfsstat3 st = CheckName(a.from.name);
  if (st == NFS3_OK) st = CheckName(a.to.name);
  if (st == NFS3_OK && (IsDotOrDotDot(a.from.name) || IsDotOrDotDot(a.to.name))) st = NFS3ERR_INVAL;
  if (st == NFS3_OK && (fs_->Hidden(from, a.from.name) || fs_->Hidden(to, a.to.name)))
    st = NFS3ERR_ACCES;
  if (st == NFS3_OK && (StickyDenies(c.cred, from, a.from.name.c_str()) ||
                        StickyDenies(c.cred, to, a.to.name.c_str())))
    st = NFS3ERR_ACCES;
  // A directory moved to another parent has its ".." rewritten: that needs write permission
  // on the directory itself (POSIX rename(2); Linux vfs_rename).
  bool same_dir = from.st.st_ino == to.st.st_ino && from.st.st_dev == to.st.st_dev;
  struct stat src;
  if (st == NFS3_OK && !same_dir &&
      ::fstatat(from.fd(), a.from.name.c_str(), &src, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISDIR(src.st_mode) && !LocalFs::CheckAccess(c.cred, src, kMayWrite))
    st = NFS3ERR_ACCES;
  if (st == NFS3_OK) {
    std::string target_fh;
    fs_->HandleOf(to.fd(), a.to.name.c_str(), &target_fh);
    if (::renameat(from.fd(), a.from.name.c_str(), to.fd(), a.to.name.c_str()) != 0) {
      st = FromErrno(errno);
    } else {
      if (!target_fh.empty()) fs_->Forget(target_fh);  // a replaced target is gone
      st = Durable(from, nullptr);
      if (st == NFS3_OK && !same_dir) st = Durable(to, nullptr);
    }
  }
  r.status = st;
  r.resfail.fromdir_wcc.after = PostOpFd(from.fd());
  r.resfail.todir_wcc.after = PostOpFd(to.fd());
  r.resok.fromdir_wcc = r.resfail.fromdir_wcc;
  r.resok.todir_wcc = r.resfail.todir_wcc;
}

void Nfs3Service::Link(const CallContext& c, const LINK3args& a, LINK3res& r) {
  Node file, dir;
  r.status = FromErrno(fs_->Resolve(a.file.data.view(), &file));
  if (r.status != NFS3_OK) return;
  r.resfail.file_attributes = PostOp(file);
  r.status = ResolveDirForChange(c, a.link.dir, &dir);
  if (r.status != NFS3_OK) return;
  r.resfail.linkdir_wcc.before = PreOp(dir.st);
  nfsstat3 st = CheckName(a.link.name);
  if (st == NFS3_OK && (IsDotOrDotDot(a.link.name) || fs_->Hidden(dir, a.link.name))) st = NFS3ERR_EXIST;
  if (st == NFS3_OK && S_ISDIR(file.st.st_mode)) st = NFS3ERR_ISDIR;
  if (st == NFS3_OK && file.st.st_dev != dir.st.st_dev) st = NFS3ERR_XDEV;
  if (st == NFS3_OK && !MayLink(c.cred, file.st)) st = NFS3ERR_PERM;
  if (st == NFS3_OK &&
      ::linkat(file.fd(), "", dir.fd(), a.link.name.c_str(), AT_EMPTY_PATH) != 0)
    st = FromErrno(errno);
  // The new entry; the file's link count goes with it in the journal of the filesystems
  // loom-ds runs on (ext4, xfs), as it does for Linux nfsd's commit_metadata of the parent.
  if (st == NFS3_OK) st = Durable(dir, nullptr);
  r.status = st;
  r.resfail.linkdir_wcc.after = PostOpFd(dir.fd());
  r.resfail.file_attributes = PostOpFd(file.fd());
  r.resok.file_attributes = r.resfail.file_attributes;
  r.resok.linkdir_wcc = r.resfail.linkdir_wcc;
}

}  // namespace loom::nfs3
