// libloom: Loom's client library (C++ API). A process links it to use a Loom cluster without
// a kernel mount: NFSv4.1/4.2 to the metadata server (loom-mds) for the namespace, opens and
// layouts; NFSv3 straight to the data servers (loom-ds, or any NFSv3 filer) for the bytes, as
// the pNFS Flexible File layout (RFC 8435) directs. The metadata server is never in the data
// path unless it grants no layout.
//
// Threading: every object here is thread-safe. Asynchronous calls complete on a library
// thread; a completion must not block (hand heavy work to your own threads). The synchronous
// calls are wrappers that wait for the asynchronous ones.
//
// The C ABI for other languages is in loom/loom.h; the Python package wraps this API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace loom::client {

// ---------------------------------------------------------------- errors

// Error classes. The CLI maps each to its own exit status (see `loom --help`).
enum class Errc : int {
  kOk = 0,
  kNotFound,      // no such file or directory
  kExists,        // already exists
  kPermission,    // permission denied (or not allowed by the export rules)
  kNotDir,        // a path component is not a directory
  kIsDir,         // is a directory
  kNotEmpty,      // directory not empty
  kNoSpace,       // no space left (or quota exceeded)
  kReadOnly,      // read-only export
  kInvalid,       // invalid argument / name
  kNameTooLong,
  kStale,         // the file was removed or replaced under us
  kIo,            // I/O error on a server
  kUnavailable,   // a server cannot be reached
  kTimeout,
  kInternal,      // a protocol error: a bug on one side
};

// An English word or two for `c` ("no such file or directory").
const char* ErrcText(Errc c);
// The POSIX errno that matches `c` (ENOENT, ...); 0 for kOk.
int ErrcToErrno(Errc c);

class Status {
 public:
  Status() = default;
  Status(Errc code, std::string message, int nfs_status = 0)
      : code_(code), nfs_status_(nfs_status), message_(std::move(message)) {}
  static Status Ok() { return Status(); }
  bool ok() const { return code_ == Errc::kOk; }
  Errc code() const { return code_; }
  // The NFS status code behind it (an nfsstat4 or nfsstat3 value), 0 if none.
  int nfs_status() const { return nfs_status_; }
  int posix_errno() const { return ErrcToErrno(code_); }
  const std::string& message() const { return message_; }
  // "no such file or directory: /a/b (NFS4ERR_NOENT)"
  std::string ToString() const;

 private:
  Errc code_ = Errc::kOk;
  int nfs_status_ = 0;
  std::string message_;
};

template <typename T>
class Result {
 public:
  Result(T v) : value_(std::move(v)) {}  // NOLINT: implicit on purpose
  Result(Status s) : status_(std::move(s)) {}  // NOLINT
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() { return *value_; }
  const T& value() const { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

// ---------------------------------------------------------------- options

struct Options {
  // The metadata server: "host", "host:port", "[v6]:port"; host names are resolved.
  // Default: $LOOM_MDS, else "127.0.0.1:20490" (what scripts/loom-up.sh starts).
  std::string mds;
  // Credentials (AUTH_SYS) sent on every call; default: this process's uid, gid and groups.
  std::optional<uint32_t> uid, gid;
  std::optional<std::vector<uint32_t>> gids;
  // Session slots asked of the metadata server (the server may grant fewer): how many
  // metadata calls this client keeps in flight.
  uint32_t slots = 64;
  // TCP connections per data server for the direct data path.
  uint32_t connections_per_ds = 2;
  // Largest single READ/WRITE sent to a data server (bounded by what the server allows).
  uint32_t io_size = 1u << 20;
  // Use layouts (pNFS). Off: every byte goes through the metadata server.
  bool pnfs = true;
  // Per-call timeout, and how long a call is retried (DELAY, GRACE, a server restarting, a
  // lost connection) before it fails with kTimeout / kUnavailable.
  int call_timeout_ms = 30000;
  int retry_for_ms = 120000;
  // Bytes written but not yet committed that one open file may hold for resending after a
  // data-server restart; a write past it commits first.
  size_t max_uncommitted_bytes = 64u << 20;
  // A label for this client in the server's records; the owner string sent is
  // "<label>/<host>/<pid>/<random>", unique per Client (default label "libloom").
  std::string client_name;
};

// ---------------------------------------------------------------- objects

enum class FileType : uint8_t { kRegular = 1, kDirectory = 2, kSymlink = 5, kOther = 0 };

struct Attr {
  FileType type = FileType::kOther;
  uint32_t mode = 0;  // permission bits (07777)
  uint32_t nlink = 0;
  std::string owner, group;  // as the server names them ("1000" or "name@domain")
  uint64_t size = 0;
  uint64_t space_used = 0;
  uint64_t fileid = 0;
  int64_t atime_ns = 0, mtime_ns = 0, ctime_ns = 0;  // since the epoch
};

struct DirEntry {
  std::string name;
  Attr attr;
};

struct FsStat {
  uint64_t total_bytes = 0, free_bytes = 0, avail_bytes = 0;
  uint64_t total_files = 0, free_files = 0;
};

// Where a file's bytes live (what LAYOUTGET granted).
struct LayoutInfo {
  bool granted = false;          // false: I/O goes through the metadata server
  uint64_t stripe_unit = 0;      // 0: not striped
  struct DataFile {
    std::string address;         // "host:port" of the data server
    std::string deviceid_hex;
    std::string user, group;     // the synthetic ids the layout grants
  };
  // mirrors[m][s]: stripe s of mirror m.
  std::vector<std::vector<DataFile>> mirrors;
};

// I/O counters of one client (cumulative). For tests, benchmarks and `loom` progress.
struct ClientStats {
  uint64_t mds_calls = 0;          // COMPOUNDs sent to the metadata server
  uint64_t mds_read_bytes = 0;     // bytes read through the metadata server (no layout)
  uint64_t mds_write_bytes = 0;
  uint64_t ds_read_bytes = 0;      // bytes read straight from data servers
  uint64_t ds_write_bytes = 0;
  uint64_t ds_errors = 0;          // failed data-server calls (retried elsewhere or reported)
  uint64_t read_failovers = 0;     // reads served by another mirror after an error
  uint64_t layouts_fetched = 0;
  uint64_t recoveries = 0;         // sessions re-established after a server restart
  uint64_t retries = 0;            // calls retried after DELAY / GRACE / a lost connection
};

struct OpenFlags {
  bool read = true;
  bool write = false;
  bool create = false;     // create if missing (mode below)
  bool exclusive = false;  // with create: fail with kExists if it exists
  bool truncate = false;   // with write: size 0 after open
  uint32_t mode = 0644;
};

using IoCallback = std::function<void(Status, size_t)>;  // status, bytes done

class File;

class Client {
 public:
  static Result<std::shared_ptr<Client>> Connect(const Options& opts = Options());
  // Ends the session and the client's record on the server (so a server restart does not
  // wait a grace period for it). Open files must be closed first; Close is idempotent.
  virtual ~Client() = default;
  virtual void Close() = 0;

  // Paths are absolute from the export root ("/a/b"); "" and "/" are the root.
  virtual Result<Attr> Stat(const std::string& path) = 0;
  virtual Result<std::vector<DirEntry>> List(const std::string& path) = 0;
  virtual Status Mkdir(const std::string& path, uint32_t mode = 0755) = 0;
  // mkdir -p: each missing component; an existing directory is fine.
  virtual Status MkdirAll(const std::string& path, uint32_t mode = 0755) = 0;
  virtual Status Remove(const std::string& path) = 0;  // a file, symlink or empty directory
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual Status Symlink(const std::string& target, const std::string& path) = 0;
  virtual Result<std::string> Readlink(const std::string& path) = 0;
  virtual Status Chmod(const std::string& path, uint32_t mode) = 0;
  virtual Status Truncate(const std::string& path, uint64_t size) = 0;
  virtual Result<FsStat> StatFs(const std::string& path = "/") = 0;
  virtual Result<LayoutInfo> Layout(const std::string& path) = 0;

  virtual Result<std::shared_ptr<File>> Open(const std::string& path, const OpenFlags& flags) = 0;
  // Open without waiting: `cb` gets what Open would return, once. A path of up to 24
  // components opened without truncation is one COMPOUND (OPEN and the layout) sent here,
  // and `cb` runs on the library's thread when the reply comes: it must not block (it may
  // start reads, or CloseAsync). A call there that waits for the MDS (Open, Close, Stat ...)
  // would wait for a reply only that thread reads: it fails at once with kInternal.
  // Other opens run Open on the calling thread and call `cb` there. Loaders that open many
  // small files keep many opens in flight this way without a thread each.
  using OpenCallback = std::function<void(Result<std::shared_ptr<File>>)>;
  virtual void OpenAsync(const std::string& path, const OpenFlags& flags, OpenCallback cb) = 0;

  virtual ClientStats stats() const = 0;
  virtual const Options& options() const = 0;
  // "host:port" of the metadata server actually used.
  virtual std::string mds_address() const = 0;
};

// An open file. Reads and writes at explicit offsets (pread/pwrite semantics); many may be in
// flight at once. Writes are visible to other clients after Sync() or Close().
class File {
 public:
  virtual ~File() = default;
  // Size as this client knows it (the server's at open, grown by this client's writes).
  virtual uint64_t size() const = 0;
  virtual const std::string& path() const = 0;

  // Reads up to `len` bytes at `off` into `buf` (which must stay valid until the callback).
  // Fewer bytes only at end of file. The bytes land in `buf` directly from the socket.
  virtual void ReadAsync(uint64_t off, void* buf, size_t len, IoCallback cb) = 0;
  // Writes `len` bytes at `off`; `buf` must stay valid until the callback.
  virtual void WriteAsync(uint64_t off, const void* buf, size_t len, IoCallback cb) = 0;

  Result<size_t> Read(uint64_t off, void* buf, size_t len);
  Result<size_t> Write(uint64_t off, const void* buf, size_t len);
  // Everything written is on stable storage on every mirror and the size is on the metadata
  // server (COMMIT to the data servers, then LAYOUTCOMMIT).
  virtual Status Sync() = 0;
  // Sync, give back the layout, CLOSE. Idempotent. A File dropped without Close closes
  // itself (errors are then lost).
  virtual Status Close() = 0;
  // Close without waiting for the server: `cb` gets what Close would return, once, on the
  // library's thread (it must not block). A file written to is synced, and a layout with
  // errors to report given back, on the calling thread first, as Close does (on the library's
  // workers when called in an OpenAsync callback); a file only read sends its CLOSE and
  // returns. A File dropped unclosed inside such a callback closes this way.
  virtual void CloseAsync(std::function<void(Status)> cb) = 0;
  virtual Result<LayoutInfo> Layout() = 0;
};

// Library version ("0.1.0").
const char* Version();

}  // namespace loom::client
