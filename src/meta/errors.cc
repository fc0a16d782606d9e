#include "meta/errors.h"

#include <cassert>

namespace loom::meta {

Status MetaError(MetaErr e, std::string_view what) {
  assert(static_cast<int>(e) > 0);
  return Status::FromErrno(static_cast<int>(e), what);
}

MetaErr ErrOf(const Status& s) {
  if (s.ok()) return MetaErr::kOk;
  switch (s.os_errno()) {
    case ENOENT: return MetaErr::kNoEnt;
    case EEXIST: return MetaErr::kExist;
    case ENOTDIR: return MetaErr::kNotDir;
    case EISDIR: return MetaErr::kIsDir;
    case ENOTEMPTY: return MetaErr::kNotEmpty;
    case EINVAL: return MetaErr::kInval;
    case EXDEV: return MetaErr::kXDev;
    case ENAMETOOLONG: return MetaErr::kNameTooLong;
    case EMLINK: return MetaErr::kMLink;
    case ESTALE: return MetaErr::kStale;
    case static_cast<int>(MetaErr::kBadCookie): return MetaErr::kBadCookie;
    default: break;
  }
  switch (s.code()) {
    case Code::kConflict:
    case Code::kTimeout:
    case Code::kUnavailable: return MetaErr::kDelay;
    case Code::kWouldBlock: return MetaErr::kWouldBlock;
    default: return MetaErr::kServerFault;
  }
}

const char* MetaErrName(MetaErr e) {
  switch (e) {
    case MetaErr::kOk: return "OK";
    case MetaErr::kNoEnt: return "NOENT";
    case MetaErr::kExist: return "EXIST";
    case MetaErr::kNotDir: return "NOTDIR";
    case MetaErr::kIsDir: return "ISDIR";
    case MetaErr::kNotEmpty: return "NOTEMPTY";
    case MetaErr::kInval: return "INVAL";
    case MetaErr::kXDev: return "XDEV";
    case MetaErr::kNameTooLong: return "NAMETOOLONG";
    case MetaErr::kMLink: return "MLINK";
    case MetaErr::kStale: return "STALE";
    case MetaErr::kBadCookie: return "BAD_COOKIE";
    case MetaErr::kDelay: return "DELAY";
    case MetaErr::kServerFault: return "SERVERFAULT";
    case MetaErr::kWouldBlock: return "WOULDBLOCK";
  }
  return "?";
}

}  // namespace loom::meta
