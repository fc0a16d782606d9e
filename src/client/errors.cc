// libloom's errors: NFS status codes mapped to error classes in one place, words for each.
#include <cerrno>
#include <future>

#include "client/session.h"
#include "loom/client.h"

namespace loom::client {

const char* ErrcText(Errc c) {
  switch (c) {
    case Errc::kOk: return "ok";
    case Errc::kNotFound: return "no such file or directory";
    case Errc::kExists: return "already exists";
    case Errc::kPermission: return "permission denied";
    case Errc::kNotDir: return "not a directory";
    case Errc::kIsDir: return "is a directory";
    case Errc::kNotEmpty: return "directory not empty";
    case Errc::kNoSpace: return "no space left (or over quota)";
    case Errc::kReadOnly: return "read-only file system";
    case Errc::kInvalid: return "invalid argument";
    case Errc::kNameTooLong: return "name too long";
    case Errc::kStale: return "stale file handle (removed or replaced)";
    case Errc::kIo: return "I/O error";
    case Errc::kUnavailable: return "server unavailable";
    case Errc::kTimeout: return "timed out";
    case Errc::kInternal: return "protocol error";
  }
  return "unknown error";
}

int ErrcToErrno(Errc c) {
  switch (c) {
    case Errc::kOk: return 0;
    case Errc::kNotFound: return ENOENT;
    case Errc::kExists: return EEXIST;
    case Errc::kPermission: return EACCES;
    case Errc::kNotDir: return ENOTDIR;
    case Errc::kIsDir: return EISDIR;
    case Errc::kNotEmpty: return ENOTEMPTY;
    case Errc::kNoSpace: return ENOSPC;
    case Errc::kReadOnly: return EROFS;
    case Errc::kInvalid: return EINVAL;
    case Errc::kNameTooLong: return ENAMETOOLONG;
    case Errc::kStale: return ESTALE;
    case Errc::kIo: return EIO;
    case Errc::kUnavailable: return EHOSTUNREACH;
    case Errc::kTimeout: return ETIMEDOUT;
    case Errc::kInternal: return EPROTO;
  }
  return EIO;
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string s = ErrcText(code_);
  if (!message_.empty()) s += ": " + message_;
  if (nfs_status_ != 0) s += std::string(" (") + nfs4::nfsstat4_name(static_cast<nfs4::nfsstat4>(nfs_status_)) + ")";
  return s;
}

const char* Version() { return "0.1.0"; }

Result<size_t> File::Read(uint64_t off, void* buf, size_t len) {
  std::promise<std::pair<Status, size_t>> done;
  auto fut = done.get_future();
  ReadAsync(off, buf, len, [&done](Status s, size_t n) { done.set_value({std::move(s), n}); });
  auto [s, n] = fut.get();
  if (!s.ok()) return s;
  return n;
}

Result<size_t> File::Write(uint64_t off, const void* buf, size_t len) {
  std::promise<std::pair<Status, size_t>> done;
  auto fut = done.get_future();
  WriteAsync(off, buf, len, [&done](Status s, size_t n) { done.set_value({std::move(s), n}); });
  auto [s, n] = fut.get();
  if (!s.ok()) return s;
  return n;
}

namespace internal {

Status FromNfs4(int v, const std::string& what) {
  const auto st = static_cast<nfs4::nfsstat4>(v);
  Errc c;
  switch (st) {
    case nfs4::NFS4_OK: return Status::Ok();
    case nfs4::NFS4ERR_NOENT: c = Errc::kNotFound; break;
    case nfs4::NFS4ERR_EXIST: c = Errc::kExists; break;
    case nfs4::NFS4ERR_PERM:
    case nfs4::NFS4ERR_ACCESS:
    case nfs4::NFS4ERR_WRONGSEC:
    case nfs4::NFS4ERR_OPENMODE: c = Errc::kPermission; break;
    case nfs4::NFS4ERR_NOTDIR: c = Errc::kNotDir; break;
    case nfs4::NFS4ERR_ISDIR: c = Errc::kIsDir; break;
    case nfs4::NFS4ERR_NOTEMPTY: c = Errc::kNotEmpty; break;
    case nfs4::NFS4ERR_NOSPC:
    case nfs4::NFS4ERR_DQUOT: c = Errc::kNoSpace; break;
    case nfs4::NFS4ERR_ROFS: c = Errc::kReadOnly; break;
    case nfs4::NFS4ERR_NAMETOOLONG: c = Errc::kNameTooLong; break;
    case nfs4::NFS4ERR_INVAL:
    case nfs4::NFS4ERR_BADNAME:
    case nfs4::NFS4ERR_BADCHAR:
    case nfs4::NFS4ERR_SYMLINK:
    case nfs4::NFS4ERR_WRONG_TYPE:
    case nfs4::NFS4ERR_XDEV:
    case nfs4::NFS4ERR_FBIG: c = Errc::kInvalid; break;
    case nfs4::NFS4ERR_STALE:
    case nfs4::NFS4ERR_FHEXPIRED: c = Errc::kStale; break;
    case nfs4::NFS4ERR_DELAY:
    case nfs4::NFS4ERR_GRACE: c = Errc::kTimeout; break;
    case nfs4::NFS4ERR_IO:
    case nfs4::NFS4ERR_NXIO: c = Errc::kIo; break;
    case nfs4::NFS4ERR_BADSESSION:
    case nfs4::NFS4ERR_DEADSESSION:
    case nfs4::NFS4ERR_STALE_CLIENTID:
    case nfs4::NFS4ERR_EXPIRED: c = Errc::kUnavailable; break;
    default: c = Errc::kInternal; break;
  }
  return Status(c, what, v);
}

Status FromLoomStatus(const loom::Status& s, const std::string& what) {
  Errc c;
  switch (s.code()) {
    case loom::Code::kOk: return Status::Ok();
    case loom::Code::kNotFound: c = Errc::kNotFound; break;
    case loom::Code::kExists: c = Errc::kExists; break;
    case loom::Code::kPermission: c = Errc::kPermission; break;
    case loom::Code::kNoSpace: c = Errc::kNoSpace; break;
    case loom::Code::kUnavailable: c = Errc::kUnavailable; break;
    case loom::Code::kTimeout: c = Errc::kTimeout; break;
    case loom::Code::kInvalidArgument: c = Errc::kInvalid; break;
    case loom::Code::kIo: c = Errc::kIo; break;
    default: c = Errc::kInternal; break;
  }
  return Status(c, what.empty() ? s.message() : what + ": " + s.message());
}

}  // namespace internal
}  // namespace loom::client
