// Filesystem errors of the namespace layer. They travel in an ordinary Status: the POSIX
// errno goes in Status::os_errno() (so Status::code() is also sensible: kNotFound, kExists,
// kInvalidArgument, else kIo), and ErrOf() reads it back. The NFS layer maps MetaErr to
// nfsstat4 in one place:
//
//   MetaErr        nfsstat4                     raised by
//   kNoEnt         NFS4ERR_NOENT                missing name
//   kExist         NFS4ERR_EXIST                create/link onto an existing name
//   kNotDir        NFS4ERR_NOTDIR               a directory operation on a non-directory
//   kIsDir         NFS4ERR_ISDIR                unlink/link/size change of a directory
//   kNotEmpty      NFS4ERR_NOTEMPTY             rmdir, or rename onto a non-empty directory
//   kInval         NFS4ERR_INVAL                dir into its own subtree, bad name/argument
//   kXDev          NFS4ERR_XDEV                 rename/link across filesystems (fsids)
//   kNameTooLong   NFS4ERR_NAMETOOLONG          name > 255 bytes or symlink > 4096 bytes
//   kMLink         NFS4ERR_MLINK                link count would overflow
//   kStale         NFS4ERR_STALE                inode number that does not exist (a handle)
//   kBadCookie     NFS4ERR_BAD_COOKIE           READDIR cookie never handed out
//   kDelay         NFS4ERR_DELAY                Code::kConflict/kTimeout/kUnavailable left
//                                               after RunTxn's retries: the client retries
//   kServerFault   NFS4ERR_SERVERFAULT          anything else (corrupt record, I/O error)
//
// Names the NFS layer checks before calling (so they never reach here): UTF-8 validity and
// "."/".." (NFS4ERR_BADNAME); here they are kInval.
#pragma once

#include <cerrno>
#include <string_view>

#include "common/status.h"

namespace loom::meta {

enum class MetaErr : int {
  kOk = 0,
  kNoEnt = ENOENT,
  kExist = EEXIST,
  kNotDir = ENOTDIR,
  kIsDir = EISDIR,
  kNotEmpty = ENOTEMPTY,
  kInval = EINVAL,
  kXDev = EXDEV,
  kNameTooLong = ENAMETOOLONG,
  kMLink = EMLINK,
  kStale = ESTALE,
  kBadCookie = 523,   // Linux's kernel-internal EBADCOOKIE; no userspace errno exists
  kDelay = -1,        // not errnos: derived from Status::code()
  kServerFault = -2,
  kWouldBlock = -3,   // Code::kWouldBlock: inside a NoBlockScope, the store would wait (kv.h)
};

// A Status carrying `e`. REQUIRES: e is an errno-valued MetaErr (not kOk/kDelay/kServerFault).
Status MetaError(MetaErr e, std::string_view what);

// The MetaErr a Status carries (kOk for OK).
MetaErr ErrOf(const Status& s);

const char* MetaErrName(MetaErr e);

}  // namespace loom::meta
