// Status and Result<T>: how every expected failure in hasync is returned.
//
// Contract: a Status is either OK or carries a Code and a human sentence saying what
// went wrong ("frame length 70000 > kFrameMax 65536"). Result<T> holds a T or a non-OK
// Status. Both are [[nodiscard]]; dropping one is a compile error under -Werror.
// No exceptions: the data plane (wire, lockwin, iouring, engine) reports through these.
// Modelled on absl::Status / absl::StatusOr, cut down to what hasync needs.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "base/assert.h"

namespace hasync {

enum class Code : int {
  kOk = 0,
  kInvalidArgument,  // input is malformed (bad frame, bad path, bad config)
  kOutOfRange,       // a length or offset exceeds a named limit
  kNotFound,
  kAlreadyExists,
  kPermissionDenied,   // wrong key, loose key-file permissions, stale epoch
  kUnavailable,        // peer gone, would block, try later
  kResourceExhausted,  // disk full, queue full
  kDataLoss,           // hash mismatch, torn content
  kFailedPrecondition,
  kUnimplemented,  // kernel or peer lacks a feature
  kInternal,       // programmer error surfaced as a value (e.g. from a library)
  kIo,             // an errno the callee could not classify
};

std::string_view CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {
    HASYNC_ASSERT(code != Code::kOk);
  }

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "InvalidArgument: frame length 70000 > kFrameMax 65536"
  std::string ToString() const;

  // Prefixes context: Status(kIo, "No space left").Annotate("fsync a/b") gives
  // "fsync a/b: No space left".
  Status Annotate(std::string_view context) const;

  // Explicitly drop a status where ignoring it is the right thing (say why at the call).
  void IgnoreError() const {}

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "OK";
    case Code::kInvalidArgument:
      return "InvalidArgument";
    case Code::kOutOfRange:
      return "OutOfRange";
    case Code::kNotFound:
      return "NotFound";
    case Code::kAlreadyExists:
      return "AlreadyExists";
    case Code::kPermissionDenied:
      return "PermissionDenied";
    case Code::kUnavailable:
      return "Unavailable";
    case Code::kResourceExhausted:
      return "ResourceExhausted";
    case Code::kDataLoss:
      return "DataLoss";
    case Code::kFailedPrecondition:
      return "FailedPrecondition";
    case Code::kUnimplemented:
      return "Unimplemented";
    case Code::kInternal:
      return "Internal";
    case Code::kIo:
      return "Io";
  }
  return "Unknown";
}

inline std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(CodeName(code_));
  out += ": ";
  out += message_;
  return out;
}

inline Status Status::Annotate(std::string_view context) const {
  if (ok()) return *this;
  std::string msg(context);
  msg += ": ";
  msg += message_;
  return Status(code_, std::move(msg));
}

inline Status InvalidArgument(std::string msg) { return {Code::kInvalidArgument, std::move(msg)}; }
inline Status OutOfRange(std::string msg) { return {Code::kOutOfRange, std::move(msg)}; }
inline Status PermissionDenied(std::string msg) {
  return {Code::kPermissionDenied, std::move(msg)};
}
inline Status FailedPrecondition(std::string msg) {
  return {Code::kFailedPrecondition, std::move(msg)};
}
inline Status Unavailable(std::string msg) { return {Code::kUnavailable, std::move(msg)}; }
inline Status Internal(std::string msg) { return {Code::kInternal, std::move(msg)}; }
inline Status DataLoss(std::string msg) { return {Code::kDataLoss, std::move(msg)}; }
inline Status Unimplemented(std::string msg) { return {Code::kUnimplemented, std::move(msg)}; }

// The one place an errno becomes a Status. `what` names the operation and its object
// ("openat2 jobs/123.JB"); the code is chosen so callers can react (ENOSPC → exhausted).
inline Status ErrnoStatus(int err, std::string_view what) {
  Code code = Code::kIo;
  switch (err) {
    case ENOENT:
      code = Code::kNotFound;
      break;
    case EEXIST:
      code = Code::kAlreadyExists;
      break;
    case EACCES:
    case EPERM:
      code = Code::kPermissionDenied;
      break;
    case ENOSPC:
    case EDQUOT:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
      code = Code::kResourceExhausted;
      break;
    case EAGAIN:
    case ECONNRESET:
    case ECONNREFUSED:
    case EPIPE:
    case ETIMEDOUT:
      code = Code::kUnavailable;
      break;
    case EINVAL:
    case ENAMETOOLONG:
    case ELOOP:
    case EXDEV:
      code = Code::kInvalidArgument;
      break;
    case ENOSYS:
    case EOPNOTSUPP:
      code = Code::kUnimplemented;
      break;
    default:
      break;
  }
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(err);
  return Status(code, std::move(msg));
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design, like StatusOr
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    HASYNC_ASSERT(!std::get<Status>(v_).ok());
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & {
    HASYNC_ASSERT(ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    HASYNC_ASSERT(ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    HASYNC_ASSERT(ok());
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace hasync

#define HASYNC_STATUS_CONCAT_INNER(a, b) a##b
#define HASYNC_STATUS_CONCAT(a, b) HASYNC_STATUS_CONCAT_INNER(a, b)

// RETURN_IF_ERROR(expr): evaluate a Status expression, return it if not OK.
#define RETURN_IF_ERROR(expr)                                \
  do {                                                       \
    ::hasync::Status hasync_status_tmp_ = (expr);            \
    if (!hasync_status_tmp_.ok()) return hasync_status_tmp_; \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluate a Result<T>, return its status if not OK,
// otherwise move the value into lhs (which may be a declaration: `auto x`).
#define ASSIGN_OR_RETURN(lhs, expr) \
  HASYNC_ASSIGN_OR_RETURN_IMPL(HASYNC_STATUS_CONCAT(hasync_result_, __LINE__), lhs, expr)
#define HASYNC_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
