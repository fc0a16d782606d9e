#include "common/status.h"

#include <cstring>

namespace loom {

const char* CodeName(Code c) {
  switch (c) {
    case Code::kOk: return "OK";
    case Code::kInvalidArgument: return "InvalidArgument";
    case Code::kNotFound: return "NotFound";
    case Code::kExists: return "Exists";
    case Code::kPermission: return "Permission";
    case Code::kIo: return "IO";
    case Code::kNoSpace: return "NoSpace";
    case Code::kUnavailable: return "Unavailable";
    case Code::kTimeout: return "Timeout";
    case Code::kTooLarge: return "TooLarge";
    case Code::kInternal: return "Internal";
    case Code::kConflict: return "Conflict";
    case Code::kWouldBlock: return "WouldBlock";
  }
  return "Unknown";
}

Status::Status(Code code, std::string_view msg)
    : rep_(code == Code::kOk ? nullptr
                             : std::make_shared<Rep>(Rep{code, 0, std::string(msg)})) {}

Status Status::FromErrno(int err, std::string_view what) {
  Status s;
  Code c = Code::kIo;
  switch (err) {
    case ENOENT: c = Code::kNotFound; break;
    case EEXIST: c = Code::kExists; break;
    case EACCES:
    case EPERM: c = Code::kPermission; break;
    case ENOSPC: c = Code::kNoSpace; break;
    case EINVAL: c = Code::kInvalidArgument; break;
    case ETIMEDOUT: c = Code::kTimeout; break;
    case ECONNREFUSED:
    case ECONNRESET:
    case EPIPE: c = Code::kUnavailable; break;
    default: break;
  }
  std::string m(what);
  m += ": ";
  m += std::strerror(err);
  s.rep_ = std::make_shared<Rep>(Rep{c, err, std::move(m)});
  return s;
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return rep_ ? rep_->msg : kEmpty;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(CodeName(rep_->code)) + ": " + rep_->msg;
}

}  // namespace loom
