// Status and Result<T>: the error values used everywhere in Loom.
// OK costs one pointer-sized word; errors carry a code and a message.
#pragma once

#include <cassert>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace loom {

enum class Code : uint8_t {
  kOk = 0,
  kInvalidArgument,  // caller passed something malformed (bad XDR, bad config)
  kNotFound,
  kExists,
  kPermission,
  kIo,
  kNoSpace,
  kUnavailable,  // peer went away, connection closed
  kTimeout,
  kTooLarge,     // a bound was exceeded
  kInternal,
  kConflict,     // a transaction must be retried
  kWouldBlock,   // a call made in a no-blocking scope needs to wait (disk, lock, sync)
};

const char* CodeName(Code c);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string_view msg);

  static Status Ok() { return Status(); }
  static Status Invalid(std::string_view m) { return {Code::kInvalidArgument, m}; }
  static Status NotFound(std::string_view m) { return {Code::kNotFound, m}; }
  static Status Io(std::string_view m) { return {Code::kIo, m}; }
  static Status Unavailable(std::string_view m) { return {Code::kUnavailable, m}; }
  static Status TooLarge(std::string_view m) { return {Code::kTooLarge, m}; }
  static Status Internal(std::string_view m) { return {Code::kInternal, m}; }
  static Status Timeout(std::string_view m) { return {Code::kTimeout, m}; }
  // An OS error: message gets strerror(err) appended.
  static Status FromErrno(int err, std::string_view what);

  bool ok() const { return rep_ == nullptr; }
  Code code() const { return rep_ ? rep_->code : Code::kOk; }
  int os_errno() const { return rep_ ? rep_->err : 0; }
  const std::string& message() const;
  std::string ToString() const;

 private:
  struct Rep {
    Code code;
    int err = 0;
    std::string msg;
  };
  std::shared_ptr<const Rep> rep_;
};

// Result<T>: a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T v) : v_(std::move(v)) {}  // NOLINT: implicit by design
  Result(Status s) : v_(std::move(s)) { assert(!std::get<Status>(v_).ok()); }  // NOLINT

  bool ok() const { return v_.index() == 0; }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }

 private:
  std::variant<T, Status> v_;
};

#define LOOM_RETURN_IF_ERROR(expr)            \
  do {                                        \
    ::loom::Status _st = (expr);              \
    if (!_st.ok()) return _st;                \
  } while (0)

}  // namespace loom
