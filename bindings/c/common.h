// bindings/c/common.h: what the C ABI's sources share: status codes from cmail::Status, the
// errmsg out-parameter, and the guard that keeps C++ exceptions from crossing into C.
//
// Thread-safety: pure functions.
#pragma once

#include <cmail/cmail.h>
#include <cmail/status.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <string_view>

namespace cmail::c {

// Sets *errmsg (when errmsg is not NULL) to a malloc'd copy of msg and returns code.
int fail(char** errmsg, int code, std::string_view msg);
// Sets *errmsg to NULL and returns CMAIL_OK.
int ok(char** errmsg);
// CMAIL_OK, or the Status's code and message.
int from_status(const Status& st, char** errmsg);
// A malloc'd NUL-terminated copy (for strings the caller frees with cmail_free); NULL when
// memory runs out.
char* copy_out(std::string_view s);

inline int null_handle(char** errmsg) { return fail(errmsg, CMAIL_INVALID_ARGUMENT, "NULL handle"); }

// Runs f() (which returns a status) and turns an escaping exception into CMAIL_INTERNAL.
template <typename F>
int guard(char** errmsg, F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return fail(errmsg, CMAIL_INTERNAL, "out of memory");
  } catch (const std::exception& e) {
    return fail(errmsg, CMAIL_INTERNAL, e.what());
  } catch (...) {
    return fail(errmsg, CMAIL_INTERNAL, "unknown exception");
  }
}

// A C string argument that may be NULL, as std::string (NULL: `fallback`).
inline std::string str(const char* s, std::string_view fallback = {}) {
  return s ? std::string(s) : std::string(fallback);
}
// A reply text for the wire: no CR or LF (NULL is fine).
inline bool one_line(const char* s) { return !s || std::string_view(s).find_first_of("\r\n") == std::string_view::npos; }
// NULL for nullopt.
inline const char* cstr(const std::optional<std::string>& s) { return s ? s->c_str() : nullptr; }
inline std::chrono::milliseconds ms(std::int64_t v) { return std::chrono::milliseconds(v < 0 ? 0 : v); }

}  // namespace cmail::c
