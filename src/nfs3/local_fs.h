// LocalFs: the storage backend of loom-ds — one exported directory of a local filesystem.
//
// Files are reached by kernel file handles (name_to_handle_at / open_by_handle_at), so NFS
// handles stay valid across restarts and renames without any table of paths. Open descriptors
// are cached (LRU). Every call returns 0 or an errno value; the protocol layer maps errnos to
// NFS status codes in one place. Thread-safe.
//
// REQUIRES: CAP_DAC_READ_SEARCH (open_by_handle_at), normally root. Permission checks against
// the caller's AUTH_SYS identity are done here, not by the kernel.
#pragma once

#include <sys/stat.h>
#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/buffer.h"
#include "common/siphash.h"
#include "common/status.h"
#include "rpc/auth.h"

namespace loom::nfs3 {

// An open file system object.
struct Node {
  std::shared_ptr<const FileRef> ref;  // O_RDWR/O_RDONLY for files, O_DIRECTORY for dirs,
                                       // O_PATH for symlinks and special files
  struct stat st {};
  std::string fh;                      // the wire handle
  bool is_root = false;
  int fd() const { return ref->fd(); }
};

// Access bits for CheckAccess.
enum : int { kMayRead = 4, kMayWrite = 2, kMayExec = 1 };

// How LocalFs makes changes durable: the fsync family, and WRITE's pwritev2 (whose RWF_SYNC /
// RWF_DSYNC flags make a FILE_SYNC / DATA_SYNC write durable before it returns). A seam for
// tests (like leveldb's Env): a test substitutes one that counts the syncs, makes calls fail,
// or models a power cut by dropping whatever no sync covered (local_fs_crash_test.cc).
class SyncOps {
 public:
  enum Kind {
    kDir,         // fsync(2) of a directory: its entries
    kFile,        // fsync(2) of a file or directory: data and all of its metadata
    kData,        // fdatasync(2): data and the metadata needed to read it back (size)
    kFilesystem,  // syncfs(2): objects that cannot be opened for I/O (symlinks, devices)
  };
  virtual ~SyncOps() = default;
  // 0 or an errno.
  virtual int Sync(int fd, Kind kind);
  // pwritev2(2): bytes written, or -1 with errno set.
  virtual ssize_t Write(int fd, const iovec* iov, int iovcnt, off_t offset, int flags);
};

class LocalFs {
 public:
  struct Options {
    std::string root;       // the exported directory
    std::string state_dir;  // holds the handle secret; empty: <root>/.loom-ds (hidden)
    size_t fd_cache = 4096;
    // Create a new handle secret even when the export already holds data (every handle
    // issued before becomes STALE). Without it, Open refuses such an export.
    bool new_secret = false;
    SyncOps* sync = nullptr;  // nullptr: the real fsync family and pwritev2
  };
  static Result<std::unique_ptr<LocalFs>> Open(Options opts);
  ~LocalFs();

  // The state directory loom-ds uses when none is given: /var/lib/loom-ds/<hash of the
  // export's real path>, outside the export so that the secret is not lost with its data.
  static std::string DefaultStateDir(const std::string& root);
  // Where the handle secret was found or created.
  const std::string& state_dir() const { return opts_.state_dir; }

  // The name of the state directory when it lives inside the export; hidden from clients.
  static constexpr const char* kHiddenName = ".loom-ds";

  const std::string& root_handle() const { return root_fh_; }
  // 8 bytes that change every time the server starts (RFC 1813 §3.3.7 write verifier).
  const std::array<uint8_t, 8>& write_verifier() const { return verf_; }

  // Wire handle -> open node with fresh attributes. ESTALE / EBADF(=bad handle) / errno.
  // cached_only: EWOULDBLOCK instead of opening a handle that is not open already (opening
  // may read the disk; the loop thread must not).
  int Resolve(std::string_view fh, Node* out, bool cached_only = false);
  // Handle and attributes of `name` in directory `dir` (symlinks are not followed).
  int LookupAt(const Node& dir, const std::string& name, Node* out);
  // Drop any cached descriptor for this handle (after REMOVE, RENAME over it ...).
  void Forget(const std::string& fh);
  // Handle for the object `name` in dir without opening it for I/O.
  int HandleOf(int dirfd, const char* name, std::string* fh);
  // The object this server just created as `name` in `dir` (of type `type`, S_IF*), opened
  // without following links (O_PATH for symlinks and special files). EEXIST when what the
  // name now holds is not a fresh object of ours: a client swapped something in between.
  int OpenCreated(const Node& dir, const std::string& name, mode_t type, Node* out);
  // A node for `fd`, an object this server created and holds open (CREATE's new file).
  int AdoptFd(int fd, Node* out);

  // Durability (RFC 1813 §1.6). Each returns 0 or an errno.
  int SyncDir(const Node& dir) { return sync_->Sync(dir.fd(), SyncOps::kDir); }
  // The object itself: fsync (or fdatasync when data_only) where it can be opened for I/O,
  // syncfs for symlinks and special files.
  int SyncObject(const Node& n, bool data_only);
  // WRITE's system call: pwritev2(2) on the node's descriptor (RWF_SYNC / RWF_DSYNC in
  // `flags` for FILE_SYNC / DATA_SYNC). Bytes written, or -1 with errno set. Production pays
  // one pointer test for the seam.
  ssize_t Pwritev2(const Node& n, const iovec* iov, int iovcnt, off_t offset, int flags) {
    if (write_ops_ != nullptr) return write_ops_->Write(n.fd(), iov, iovcnt, offset, flags);
    return ::pwritev2(n.fd(), iov, iovcnt, offset, flags);
  }

  // true when `name` in `dir` is the hidden state directory.
  bool Hidden(const Node& dir, std::string_view name) const {
    return dir.is_root && state_inside_ && name == kHiddenName;
  }
  bool is_root_ino(const struct stat& st) const {
    return st.st_ino == root_st_.st_ino && st.st_dev == root_st_.st_dev;
  }

  // Caller's permission for `want` (kMay* bits) on an object with attributes `st`.
  static bool CheckAccess(const rpc::Cred& c, const struct stat& st, int want);

  // Attribute changes on the object behind a node's descriptor, never by name (a name can be
  // swapped for a symlink between two calls). 0 or an errno. They work on O_PATH descriptors
  // too (FIFOs, sockets, devices, symlinks); Chmod does nothing for a symlink, which has no
  // mode of its own on Linux.
  static int Chmod(const Node& n, mode_t mode);
  static int Chown(const Node& n, uid_t uid, gid_t gid);
  static int SetTimes(const Node& n, const timespec ts[2]);
  // The set-ID bits a write, truncate or chown by an unprivileged caller clears from a
  // non-directory with mode `mode`, as Linux does: set-user-ID always, set-group-ID when
  // group-execute is set (without it, S_ISGID marks mandatory locking and stays).
  static mode_t PrivsToDrop(mode_t mode);
  // Clears those bits on `n` (a regular file) for a caller other than root. 0 or an errno.
  static int DropPrivs(const rpc::Cred& c, Node& n);

  uint64_t fsid() const { return static_cast<uint64_t>(root_st_.st_dev); }
  int root_fd() const { return root_fd_; }

 private:
  LocalFs() = default;
  int OpenKernelHandle(std::string_view fh, std::shared_ptr<const FileRef>* ref);
  Status LoadSecret();

  Options opts_;
  int root_fd_ = -1;
  struct stat root_st_ {};
  SipKey key_{};
  std::string root_fh_;
  std::array<uint8_t, 8> verf_{};
  bool state_inside_ = false;
  SyncOps* sync_ = nullptr;
  SyncOps* write_ops_ = nullptr;  // Options::sync when a test gave one, else nullptr

  // LRU cache of open descriptors, keyed by wire handle.
  std::mutex mu_;
  std::list<std::string> lru_;
  struct CacheEntry {
    std::shared_ptr<const FileRef> ref;
    std::list<std::string>::iterator it;
  };
  std::unordered_map<std::string, CacheEntry> cache_;
};

}  // namespace loom::nfs3
