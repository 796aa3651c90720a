// cmail/status.h: the error type of the whole public API (after leveldb's Status).
//
// A Status is either OK (holds nothing, costs nothing) or a code with a message meant for logs
// and operators, never for a network peer. Result<T> holds a T or a failed Status and uses the
// member names of std::expected so that it can become an alias later.
//
// Thread-safety: values; a const Status may be read from several threads at once.
#pragma once

#include <cmail/export.h>

#include <cassert>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace cmail {

class [[nodiscard]] CMAIL_EXPORT Status {
 public:
  enum class Code {
    Ok = 0,
    NotFound,         // the named thing does not exist
    InvalidArgument,  // the caller passed something malformed; nothing changed
    AlreadyExists,    // a unique key would be duplicated; nothing changed
    Constraint,       // another database constraint (foreign key, check) refused the change
    Busy,             // the database stayed locked by another process past the busy timeout
    ReadOnly,         // the database file or its directory is not writable
    Corruption,       // the file is damaged or is not a cmail database
    Unsupported,      // e.g. a schema newer than this build understands
    IoError,          // the operating system refused a file operation
    Internal,         // a bug or an unexpected library error
    // 11 is the C ABI's CMAIL_WRONG_STATE, which no Status carries.
    NoSpace = 12,     // the disk, or the database's size limit, is full: try again later
  };

  Status() = default;  // OK

  static Status not_found(std::string_view msg) { return {Code::NotFound, msg}; }
  static Status invalid_argument(std::string_view msg) { return {Code::InvalidArgument, msg}; }
  static Status already_exists(std::string_view msg) { return {Code::AlreadyExists, msg}; }
  static Status constraint(std::string_view msg) { return {Code::Constraint, msg}; }
  static Status busy(std::string_view msg) { return {Code::Busy, msg}; }
  static Status read_only(std::string_view msg) { return {Code::ReadOnly, msg}; }
  static Status corruption(std::string_view msg) { return {Code::Corruption, msg}; }
  static Status unsupported(std::string_view msg) { return {Code::Unsupported, msg}; }
  static Status io_error(std::string_view msg) { return {Code::IoError, msg}; }
  static Status internal(std::string_view msg) { return {Code::Internal, msg}; }
  static Status no_space(std::string_view msg) { return {Code::NoSpace, msg}; }

  bool ok() const { return state_ == nullptr; }
  Code code() const { return state_ ? state_->code : Code::Ok; }
  bool is_not_found() const { return code() == Code::NotFound; }
  bool is_busy() const { return code() == Code::Busy; }
  // The message without the code name; empty when OK.
  const std::string& message() const;
  // "NotFound: no such user" (or "OK").
  std::string to_string() const;

 private:
  struct State {
    Code code;
    std::string message;
  };
  Status(Code code, std::string_view msg)
      : state_(std::make_shared<const State>(State{code, std::string(msg)})) {}
  std::shared_ptr<const State> state_;  // nullptr means OK
};

CMAIL_EXPORT const char* to_string(Status::Code code);

// Holds a T or a failed Status. REQUIRES: a Result built from a Status holds a failed one.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status error) : v_(std::move(error)) { assert(!std::get<Status>(v_).ok()); }  // NOLINT

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  // The failure; an OK Status when a value is held.
  Status error() const { return has_value() ? Status() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace cmail
