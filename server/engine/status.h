#pragma once

// Errors as values across the engine's API (no exceptions leave it). The codes mirror
// the gRPC status codes that the transport layer maps them to.

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace gemserve {

enum class StatusCode {
  kOk,
  kInvalidArgument,    // the request is malformed; the message names the field
  kNotFound,           // unknown model or variant
  kAlreadyExists,      // e.g. feedback for a request that already had it
  kFailedPrecondition,  // the server's state forbids it now (e.g. a reload an experiment needs)
  kResourceExhausted,  // a queue or limit is full
  kDeadlineExceeded,
  kCancelled,
  kUnavailable,        // not loaded, or shutting down
  kInternal,
};

class Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
  static Status FailedPrecondition(std::string m) {
    return {StatusCode::kFailedPrecondition, std::move(m)};
  }
  static Status ResourceExhausted(std::string m) {
    return {StatusCode::kResourceExhausted, std::move(m)};
  }
  static Status DeadlineExceeded(std::string m) {
    return {StatusCode::kDeadlineExceeded, std::move(m)};
  }
  static Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// `text` as it may appear inside an error message: quoted, at most 40 bytes, bytes
// outside printable ASCII replaced by '?', "..." when cut.
inline std::string QuoteForMessage(const std::string& text) {
  std::string out = "\"";
  for (const unsigned char c : text.substr(0, 40)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out + (text.size() > 40 ? "...\"" : "\"");
}

// A value or the Status that explains its absence.
template <typename T>
class StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}                       // NOLINT: implicit
  StatusOr(Status status) : status_(std::move(status)) {}               // NOLINT: implicit

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace gemserve
