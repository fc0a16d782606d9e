// READDIR and READDIRPLUS (RFC 1813 §3.3.16-17).
//
// Cookies are the filesystem's own directory offsets (d_off from getdents64): on ext4 and xfs
// they are hashes or stable positions, so a cookie stays valid while other entries come and
// go. The cookie verifier is therefore always zero, which §3.3.16 allows.
#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "nfs3/nfs3_service.h"

namespace loom::nfs3 {

using rpc::CallContext;

namespace {

struct linux_dirent64 {
  ino64_t d_ino;
  off64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

size_t Pad4(size_t n) { return (n + 3) & ~size_t{3}; }

// Sizes of encoded pieces, to stay within the client's count (§3.3.16: count bounds the
// whole READDIR3resok; for READDIRPLUS dircount bounds the entry3 part, maxcount the reply).
constexpr size_t kPostOpAttr = 4 + 84;
constexpr size_t kReplyOverhead = 4 + kPostOpAttr + 8 + 4 + 4;
size_t EntrySize(const std::string& name) { return 4 + 8 + 4 + Pad4(name.size()) + 8; }

// Walks a directory from `cookie`, calling fn(name, ino, next_cookie) until it returns false.
// Returns 0, or an errno. Sets *eof when the end was reached.
template <typename Fn>
int WalkDir(int dirfd, uint64_t cookie, bool* eof, Fn fn) {
  int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  if (cookie != 0 && ::lseek(fd, static_cast<off_t>(cookie), SEEK_SET) < 0) {
    int e = errno;
    ::close(fd);
    return e == EINVAL ? EINVAL : e;
  }
  alignas(8) char buf[32 * 1024];
  *eof = false;
  for (;;) {
    long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return e;
    }
    if (n == 0) {
      *eof = true;
      break;
    }
    bool stop = false;
    for (long off = 0; off < n;) {
      auto* d = reinterpret_cast<linux_dirent64*>(buf + off);
      off += d->d_reclen;
      if (!fn(std::string(d->d_name), static_cast<uint64_t>(d->d_ino),
              static_cast<uint64_t>(d->d_off))) {
        stop = true;
        break;
      }
    }
    if (stop) break;
  }
  ::close(fd);
  return 0;
}

}  // namespace

nfsstat3 Nfs3Service::ResolveReadableDir(const CallContext& c, const nfs_fh3& fh, Node* dir) {
  nfsstat3 st = FromErrno(fs_->Resolve(fh.data.view(), dir));
  if (st != NFS3_OK) return st;
  if (!S_ISDIR(dir->st.st_mode)) return NFS3ERR_NOTDIR;
  if (!LocalFs::CheckAccess(c.cred, dir->st, kMayRead)) return NFS3ERR_ACCES;
  return NFS3_OK;
}

void Nfs3Service::Readdir(const CallContext& c, const READDIR3args& a, READDIR3res& r) {
  Node dir;
  r.status = ResolveReadableDir(c, a.dir, &dir);
  if (dir.ref) r.resfail.dir_attributes = PostOp(dir);
  if (r.status != NFS3_OK) return;
  size_t limit = std::min<size_t>(a.count, opts_.max_io);
  size_t used = kReplyOverhead;
  auto& entries = r.resok.reply.entries;
  bool eof = false;
  bool full = false;
  int err = WalkDir(dir.fd(), a.cookie, &eof, [&](const std::string& name, uint64_t ino, uint64_t next) {
    if (fs_->Hidden(dir, name)) return true;
    size_t sz = EntrySize(name);
    if (used + sz > limit) {
      full = true;
      return false;
    }
    used += sz;
    if (name == ".." && dir.is_root) ino = dir.st.st_ino;
    entries.push_back(entry3{ino, name, next});
    return true;
  });
  if (err != 0) {
    r.status = err == EINVAL ? NFS3ERR_BAD_COOKIE : FromErrno(err);
    return;
  }
  if (entries.empty() && full) {
    r.status = NFS3ERR_TOOSMALL;
    return;
  }
  r.resok.dir_attributes = PostOp(dir);
  r.resok.reply.eof = eof && !full;
}

void Nfs3Service::Readdirplus(const CallContext& c, const READDIRPLUS3args& a, READDIRPLUS3res& r) {
  Node dir;
  r.status = ResolveReadableDir(c, a.dir, &dir);
  if (dir.ref) r.resfail.dir_attributes = PostOp(dir);
  if (r.status != NFS3_OK) return;
  size_t maxcount = std::min<size_t>(a.maxcount, opts_.max_io);
  size_t dircount = a.dircount;
  size_t used = kReplyOverhead, dirused = 0;
  auto& entries = r.resok.reply.entries;
  bool eof = false, full = false;
  int err = WalkDir(dir.fd(), a.cookie, &eof, [&](const std::string& name, uint64_t ino, uint64_t next) {
    if (fs_->Hidden(dir, name)) return true;
    entryplus3 e;
    e.fileid = ino;
    e.name = name;
    e.cookie = next;
    struct stat st;
    std::string fh;
    bool have = false;
    if (name == "." || (name == ".." && dir.is_root)) {
      st = dir.st;
      fh = dir.fh;
      have = true;
      e.fileid = dir.st.st_ino;
    } else if (::fstatat(dir.fd(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
               fs_->HandleOf(dir.fd(), name.c_str(), &fh) == 0) {
      have = true;
    }
    if (have) {
      e.name_attributes.attributes_follow = true;
      Fattr(st, &e.name_attributes.attributes);
      e.name_handle.handle_follows = true;
      e.name_handle.handle.data = Bytes::Copy(fh);
    }
    size_t sz = EntrySize(name) + kPostOpAttr + 4 + (have ? 4 + Pad4(fh.size()) : 0);
    size_t dsz = EntrySize(name);
    if (used + sz > maxcount || (dircount > 0 && dirused + dsz > dircount && !entries.empty())) {
      full = true;
      return false;
    }
    used += sz;
    dirused += dsz;
    entries.push_back(std::move(e));
    return true;
  });
  if (err != 0) {
    r.status = err == EINVAL ? NFS3ERR_BAD_COOKIE : FromErrno(err);
    return;
  }
  if (entries.empty() && full) {
    r.status = NFS3ERR_TOOSMALL;
    return;
  }
  r.resok.dir_attributes = PostOp(dir);
  r.resok.reply.eof = eof && !full;
}

}  // namespace loom::nfs3
