#include "nfs3/local_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "common/file_util.h"
#include "common/log.h"
#include "nfs3/file_handle.h"

namespace loom::nfs3 {

int SyncOps::Sync(int fd, Kind kind) {
  int rc = kind == kData ? ::fdatasync(fd) : kind == kFilesystem ? ::syncfs(fd) : ::fsync(fd);
  return rc == 0 ? 0 : errno;
}

ssize_t SyncOps::Write(int fd, const iovec* iov, int iovcnt, off_t offset, int flags) {
  return ::pwritev2(fd, iov, iovcnt, offset, flags);
}

namespace {

SyncOps g_real_sync;

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Whether the export holds anything besides the state directory (and an ext* lost+found).
Result<bool> HoldsData(int root_fd) {
  int fd = ::openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open export root");
  DIR* d = ::fdopendir(fd);
  if (!d) {
    ::close(fd);
    return Status::FromErrno(errno, "read export root");
  }
  bool data = false;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != ".." && n != LocalFs::kHiddenName && n != "lost+found") {
      data = true;
      break;
    }
  }
  ::closedir(d);
  return data;
}

}  // namespace

std::string LocalFs::DefaultStateDir(const std::string& root) {
  char real[PATH_MAX];
  std::string path = ::realpath(root.c_str(), real) ? std::string(real) : root;
  static const SipKey kPathKey = {'l', 'o', 'o', 'm', '-', 'd', 's', '-', 's', 't', 'a', 't', 'e'};
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(SipHash24(kPathKey, path.data(), path.size())));
  return std::string("/var/lib/loom-ds/") + hex;
}

// The handle secret: from the state directory; else from the old location inside the export
// (ROOT/.loom-ds), used as is; else a new one, but only over an empty export or when asked:
// a new secret makes every handle issued before STALE although the files are still there.
Status LocalFs::LoadSecret() {
  std::string legacy = opts_.root + "/" + kHiddenName;
  if (opts_.state_dir.empty() || opts_.state_dir == legacy) opts_.state_dir = legacy;
  struct stat st;
  if (::fstatat(root_fd_, kHiddenName, &st, AT_SYMLINK_NOFOLLOW) == 0 || opts_.state_dir == legacy)
    state_inside_ = true;  // hidden from clients wherever the secret is kept
  if (!Exists(opts_.state_dir + "/secret") && opts_.state_dir != legacy &&
      Exists(legacy + "/secret")) {
    LOG_INFO("loom-ds: using the handle secret in %s (inside the export; move it to %s to "
             "keep it apart from the data)", legacy.c_str(), opts_.state_dir.c_str());
    opts_.state_dir = legacy;
  }
  if (!Exists(opts_.state_dir + "/secret")) {
    Result<bool> data = HoldsData(root_fd_);
    if (!data.ok()) return data.status();
    if (*data && !opts_.new_secret) {
      return Status(Code::kNotFound,
                    "no handle secret in " + opts_.state_dir + ", but the export " + opts_.root +
                        " already holds files: a new secret would make every file handle "
                        "issued for them STALE. Give --state-dir where the secret is, restore " +
                        opts_.state_dir + "/secret, or start with --new-secret to accept that");
    }
    if (*data) LOG_WARN("loom-ds: new handle secret over an export with files: old handles STALE");
    // Parents of the state directory (e.g. /var/lib/loom-ds); LoadOrCreateSecret makes the last.
    for (size_t p = opts_.state_dir.find('/', 1); p != std::string::npos;
         p = opts_.state_dir.find('/', p + 1)) {
      std::string parent = opts_.state_dir.substr(0, p);
      if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST)
        return Status::FromErrno(errno, "mkdir " + parent);
    }
  }
  return LoadOrCreateSecret(opts_.state_dir, "secret", key_.data(), key_.size());
}

Result<std::unique_ptr<LocalFs>> LocalFs::Open(Options opts) {
  std::unique_ptr<LocalFs> fs(new LocalFs());
  fs->root_fd_ = ::open(opts.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fs->root_fd_ < 0) return Status::FromErrno(errno, "open export root " + opts.root);
  if (::fstat(fs->root_fd_, &fs->root_st_) != 0) return Status::FromErrno(errno, "stat root");
  fs->sync_ = opts.sync ? opts.sync : &g_real_sync;
  fs->write_ops_ = opts.sync;
  fs->opts_ = opts;
  LOOM_RETURN_IF_ERROR(fs->LoadSecret());
  opts.state_dir = fs->opts_.state_dir;
  // Raise the descriptor limit so the cache and many client connections fit.
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && opts.fd_cache > rl.rlim_cur / 2)
    opts.fd_cache = rl.rlim_cur / 2;
  fs->opts_ = opts;
  int err = fs->HandleOf(fs->root_fd_, ".", &fs->root_fh_);
  if (err != 0) {
    return Status::FromErrno(err, "name_to_handle_at on export root (needs a filesystem with "
                                  "exportable handles and CAP_DAC_READ_SEARCH)");
  }
  // Test that we can open by handle (fails without CAP_DAC_READ_SEARCH).
  std::shared_ptr<const FileRef> ref;
  err = fs->OpenKernelHandle(fs->root_fh_, &ref);
  if (err != 0) return Status::FromErrno(err, "open_by_handle_at on export root");
  // The write verifier: boot time in nanoseconds mixed with random bits, so that it differs
  // on every start even when the clock is the same.
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t v = static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
  uint64_t r = 0;
  if (getrandom(&r, sizeof r, 0) != sizeof r) r = 0;
  v ^= r & 0xffff;
  std::memcpy(fs->verf_.data(), &v, 8);
  return fs;
}

LocalFs::~LocalFs() {
  if (root_fd_ >= 0) ::close(root_fd_);
}

int LocalFs::HandleOf(int dirfd, const char* name, std::string* fh) {
  union {
    file_handle h;
    char buf[sizeof(file_handle) + MAX_HANDLE_SZ];
  } u;
  u.h.handle_bytes = MAX_HANDLE_SZ;
  int mount_id;
  int flags = name[0] == '\0' ? AT_EMPTY_PATH : 0;  // never follows a symlink
  if (name_to_handle_at(dirfd, name, &u.h, &mount_id, flags) != 0) return errno;
  KernelHandle kh;
  kh.type = u.h.handle_type;
  kh.bytes.assign(reinterpret_cast<const char*>(u.h.f_handle), u.h.handle_bytes);
  Result<std::string> w = SealHandle(key_, kh);
  if (!w.ok()) return EOVERFLOW;
  *fh = std::move(w.value());
  return 0;
}

int LocalFs::OpenCreated(const Node& dir, const std::string& name, mode_t type, Node* out) {
  int flags = type == S_IFDIR ? (O_RDONLY | O_DIRECTORY) : O_PATH;
  int fd = ::openat(dir.fd(), name.c_str(), flags | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno == ELOOP || errno == ENOTDIR ? EEXIST : errno;
  int err = AdoptFd(fd, out);
  if (err != 0) return err;
  // What we made has no other link (a directory: no subdirectory) and is still owned by us
  // (objects are given to the caller only after this check); anything else was swapped in.
  const struct stat& st = out->st;
  nlink_t links = type == S_IFDIR ? 2 : 1;
  if ((st.st_mode & S_IFMT) != type || st.st_uid != ::geteuid() || st.st_nlink != links) {
    *out = Node();
    return EEXIST;
  }
  return 0;
}

int LocalFs::AdoptFd(int fd, Node* out) {
  auto ref = std::make_shared<FileRef>(fd);
  if (::fstat(fd, &out->st) != 0) return errno;
  int err = HandleOf(fd, "", &out->fh);
  if (err != 0) return err;
  out->ref = std::move(ref);
  out->is_root = is_root_ino(out->st);
  return 0;
}

int LocalFs::SyncObject(const Node& n, bool data_only) {
  if (S_ISREG(n.st.st_mode) || S_ISDIR(n.st.st_mode))
    return sync_->Sync(n.fd(), data_only ? SyncOps::kData : SyncOps::kFile);
  return sync_->Sync(root_fd_, SyncOps::kFilesystem);
}

int LocalFs::OpenKernelHandle(std::string_view fh, std::shared_ptr<const FileRef>* ref) {
  Result<KernelHandle> kh = OpenHandle(key_, fh);
  if (!kh.ok()) return kh.status().code() == Code::kPermission ? ESTALE : EBADF;
  union {
    file_handle h;
    char buf[sizeof(file_handle) + MAX_HANDLE_SZ];
  } u;
  u.h.handle_bytes = static_cast<unsigned>(kh->bytes.size());
  u.h.handle_type = kh->type;
  std::memcpy(u.h.f_handle, kh->bytes.data(), kh->bytes.size());
  // O_PATH first: opening a device or FIFO for I/O would have side effects.
  int pfd = open_by_handle_at(root_fd_, &u.h, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  // A handle the kernel cannot turn back into a file names no file: whatever the error (ENOENT,
  // ESTALE, EIO from an inode being freed, ...), the answer is STALE, as Linux nfsd gives. The
  // exceptions: running out of memory or descriptors says "try later" (EAGAIN, JUKEBOX) rather
  // than tell the client a live file is gone; and ext4 also answers ENOMEM for a moment while
  // the inode number is being freed and reused by another file (iget finds it half-built), so
  // ENOMEM is tried again a few times first.
  for (int tries = 0; pfd < 0 && errno == ENOMEM && tries < 8; ++tries) {
    ::sched_yield();
    pfd = open_by_handle_at(root_fd_, &u.h, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  }
  if (pfd < 0) {
    switch (errno) {
      case ENOMEM:
      case EMFILE:
      case ENFILE: return EAGAIN;  // out of memory or descriptors: later, not gone
      case EPERM: return EPERM;    // loom-ds lacks CAP_DAC_READ_SEARCH: a setup error, said so
      default: return ESTALE;
    }
  }
  struct stat st;
  if (::fstat(pfd, &st) != 0) {
    int e = errno;
    ::close(pfd);
    return e;
  }
  int fd = pfd;
  if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/fd/%d", pfd);
    int flags = S_ISDIR(st.st_mode) ? (O_RDONLY | O_DIRECTORY) : O_RDWR;
    fd = ::open(path, flags | O_CLOEXEC | O_NOATIME);
    if (fd < 0 && (errno == EPERM)) fd = ::open(path, flags | O_CLOEXEC);
    if (fd < 0 && (errno == EROFS || errno == EACCES || errno == ETXTBSY))
      fd = ::open(path, O_RDONLY | O_CLOEXEC);
    int e = errno;
    ::close(pfd);
    if (fd < 0) return e;
  }
  *ref = std::make_shared<FileRef>(fd);
  return 0;
}

int LocalFs::Resolve(std::string_view fh, Node* out, bool cached_only) {
  std::string key(fh);
  std::shared_ptr<const FileRef> ref;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.it);
      ref = it->second.ref;
    }
  }
  bool cached = ref != nullptr;
  if (!cached && cached_only) return EWOULDBLOCK;
  if (!cached) {
    int err = OpenKernelHandle(fh, &ref);
    if (err != 0) return err;
  }
  if (::fstat(ref->fd(), &out->st) != 0) return errno;
  if (out->st.st_nlink == 0 && !S_ISDIR(out->st.st_mode)) {
    // Removed while we held it open: the object is gone for NFS purposes.
    Forget(key);
    return ESTALE;
  }
  if (S_ISDIR(out->st.st_mode) && out->st.st_nlink == 0) {
    Forget(key);
    return ESTALE;
  }
  if (!cached) {
    std::lock_guard<std::mutex> l(mu_);
    if (cache_.find(key) == cache_.end()) {
      lru_.push_front(key);
      cache_[key] = CacheEntry{ref, lru_.begin()};
      while (cache_.size() > opts_.fd_cache) {
        cache_.erase(lru_.back());
        lru_.pop_back();
      }
    }
  }
  out->ref = std::move(ref);
  out->fh = std::move(key);
  out->is_root = is_root_ino(out->st);
  return 0;
}

int LocalFs::LookupAt(const Node& dir, const std::string& name, Node* out) {
  if (dir.is_root && (name == ".." || name == ".")) return Resolve(root_fh_, out);
  std::string fh;
  int err = HandleOf(dir.fd(), name.c_str(), &fh);
  if (err != 0) return err;
  return Resolve(fh, out);
}

void LocalFs::Forget(const std::string& fh) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = cache_.find(fh);
  if (it == cache_.end()) return;
  lru_.erase(it->second.it);
  cache_.erase(it);
}

int LocalFs::Chmod(const Node& n, mode_t mode) {
  mode_t t = n.st.st_mode & S_IFMT;
  if (t == S_IFLNK) return 0;
  if (t == S_IFREG || t == S_IFDIR) return ::fchmod(n.fd(), mode) == 0 ? 0 : errno;
  // An O_PATH descriptor: chmod(2) through its /proc link, which names the inode itself.
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/fd/%d", n.fd());
  return ::chmod(path, mode) == 0 ? 0 : errno;
}

int LocalFs::Chown(const Node& n, uid_t uid, gid_t gid) {
  return ::fchownat(n.fd(), "", uid, gid, AT_EMPTY_PATH) == 0 ? 0 : errno;
}

int LocalFs::SetTimes(const Node& n, const timespec ts[2]) {
  // With an empty path and AT_EMPTY_PATH the descriptor itself is the object, O_PATH included.
  return ::utimensat(n.fd(), "", ts, AT_EMPTY_PATH) == 0 ? 0 : errno;
}

mode_t LocalFs::PrivsToDrop(mode_t mode) {
  if (S_ISDIR(mode)) return 0;
  mode_t kill = mode & S_ISUID;
  if ((mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)) kill |= S_ISGID;
  return kill;
}

int LocalFs::DropPrivs(const rpc::Cred& c, Node& n) {
  mode_t kill = PrivsToDrop(n.st.st_mode);
  if (c.uid == 0 || kill == 0) return 0;  // root has CAP_FSETID
  mode_t mode = n.st.st_mode & 07777 & ~kill;
  int err = Chmod(n, mode);
  if (err == 0) n.st.st_mode = (n.st.st_mode & S_IFMT) | mode;
  return err;
}

bool LocalFs::CheckAccess(const rpc::Cred& c, const struct stat& st, int want) {
  return c.MayAccess(st.st_mode & 07777, st.st_uid, st.st_gid, S_ISDIR(st.st_mode), want);
}

}  // namespace loom::nfs3
