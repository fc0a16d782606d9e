#include "nfs3/local_fs.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/file_util.h"
#include "common/log.h"
#include "nfs3/file_handle.h"

namespace loom::nfs3 {

Result<std::unique_ptr<LocalFs>> LocalFs::Open(Options opts) {
  std::unique_ptr<LocalFs> fs(new LocalFs());
  fs->root_fd_ = ::open(opts.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fs->root_fd_ < 0) return Status::FromErrno(errno, "open export root " + opts.root);
  if (::fstat(fs->root_fd_, &fs->root_st_) != 0) return Status::FromErrno(errno, "stat root");
  if (opts.state_dir.empty()) {
    opts.state_dir = opts.root + "/" + kHiddenName;
    fs->state_inside_ = true;
  }
  LOOM_RETURN_IF_ERROR(LoadOrCreateSecret(opts.state_dir, "secret", fs->key_.data(), fs->key_.size()));
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
  if (name_to_handle_at(dirfd, name, &u.h, &mount_id, 0) != 0) return errno;
  KernelHandle kh;
  kh.type = u.h.handle_type;
  kh.bytes.assign(reinterpret_cast<const char*>(u.h.f_handle), u.h.handle_bytes);
  Result<std::string> w = SealHandle(key_, kh);
  if (!w.ok()) return EOVERFLOW;
  *fh = std::move(w.value());
  return 0;
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
  if (pfd < 0) return errno == ENOENT ? ESTALE : errno;
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

int LocalFs::Resolve(std::string_view fh, Node* out) {
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

bool LocalFs::CheckAccess(const rpc::Cred& c, const struct stat& st, int want) {
  return c.MayAccess(st.st_mode & 07777, st.st_uid, st.st_gid, S_ISDIR(st.st_mode), want);
}

}  // namespace loom::nfs3
