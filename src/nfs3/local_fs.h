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

class LocalFs {
 public:
  struct Options {
    std::string root;       // the exported directory
    std::string state_dir;  // holds the handle secret; default <root>/.loom-ds (hidden)
    size_t fd_cache = 4096;
  };
  static Result<std::unique_ptr<LocalFs>> Open(Options opts);
  ~LocalFs();

  // The name of the state directory when it lives inside the export; hidden from clients.
  static constexpr const char* kHiddenName = ".loom-ds";

  const std::string& root_handle() const { return root_fh_; }
  // 8 bytes that change every time the server starts (RFC 1813 §3.3.7 write verifier).
  const std::array<uint8_t, 8>& write_verifier() const { return verf_; }

  // Wire handle -> open node with fresh attributes. ESTALE / EBADF(=bad handle) / errno.
  int Resolve(std::string_view fh, Node* out);
  // Handle and attributes of `name` in directory `dir` (symlinks are not followed).
  int LookupAt(const Node& dir, const std::string& name, Node* out);
  // Drop any cached descriptor for this handle (after REMOVE, RENAME over it ...).
  void Forget(const std::string& fh);
  // Handle for the object `name` in dir without opening it for I/O.
  int HandleOf(int dirfd, const char* name, std::string* fh);

  // true when `name` in `dir` is the hidden state directory.
  bool Hidden(const Node& dir, std::string_view name) const {
    return dir.is_root && state_inside_ && name == kHiddenName;
  }
  bool is_root_ino(const struct stat& st) const {
    return st.st_ino == root_st_.st_ino && st.st_dev == root_st_.st_dev;
  }

  // Caller's permission for `want` (kMay* bits) on an object with attributes `st`.
  static bool CheckAccess(const rpc::Cred& c, const struct stat& st, int want);

  uint64_t fsid() const { return static_cast<uint64_t>(root_st_.st_dev); }
  int root_fd() const { return root_fd_; }

 private:
  LocalFs() = default;
  int OpenKernelHandle(std::string_view fh, std::shared_ptr<const FileRef>* ref);

  Options opts_;
  int root_fd_ = -1;
  struct stat root_st_ {};
  SipKey key_{};
  std::string root_fh_;
  std::array<uint8_t, 8> verf_{};
  bool state_inside_ = false;

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
