// bindings/c/common.h: what the C ABI's sources share: status codes from cmail::Status, the
// errmsg out-parameter, and the guard that keeps C++ exceptions from crossing into C.
//
// Thread-safety: the handle table is guarded by a mutex; the rest are pure functions.
#pragma once

#include <cmail/cmail.h>
#include <cmail/proto/transport.h>
#include <cmail/status.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <typeinfo>
#include <variant>

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

// Live handles: every handle the library made and has not freed, with its type, so that a NULL,
// freed (double free included) or wrong handle is an error code and never dereferenced. A
// freed handle's address may be reused by a new handle of the same type; calls through the old
// pointer then reach the new one, as with a reused file descriptor.
namespace detail {
void adopt(const void* h, const std::type_info& type);
bool release(const void* h, const std::type_info& type);
bool live(const void* h, const std::type_info& type);
}  // namespace detail
// Registers a new handle; returns it.
template <typename T>
T* adopt(T* h) {
  detail::adopt(h, typeid(T));
  return h;
}
// Unregisters a handle about to be freed: false when it was not live (do not free it then).
template <typename T>
bool release(const T* h) {
  return h && detail::release(h, typeid(T));
}
template <typename T>
bool live(const T* h) {
  return h && detail::live(h, typeid(T));
}
inline int bad_handle(char** errmsg) {
  return fail(errmsg, CMAIL_INVALID_ARGUMENT, "not a live handle of this type (NULL, freed or another kind)");
}

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

// The transport calls the three engine handles make alike; `engine` names the handle's engine
// member (smtp::Server, smtp::Client, pop3::Server, imap::Server), whose contract is
// cmail/proto/transport.h.
template <typename H, typename E>
int receive(H* h, E H::*engine, const char* data, std::size_t len, char** errmsg) {
  if (!live(h)) return bad_handle(errmsg);
  if (!data && len) return fail(errmsg, CMAIL_INVALID_ARGUMENT, "data is NULL");
  return guard(errmsg, [&] {
    (h->*engine).receive(std::string_view(data ? data : "", len));
    return ok(errmsg);
  });
}
template <typename H, typename E>
int receive_eof(H* h, E H::*engine, char** errmsg) {
  if (!live(h)) return bad_handle(errmsg);
  return guard(errmsg, [&] {
    (h->*engine).receive_eof();
    return ok(errmsg);
  });
}
template <typename H, typename E>
int pending_output(const H* h, E H::*engine, const char** data, std::size_t* len, char** errmsg) {
  if (!live(h)) return bad_handle(errmsg);
  if (!data || !len) return fail(errmsg, CMAIL_INVALID_ARGUMENT, "data or len is NULL");
  std::string_view out = (h->*engine).pending_output();
  *data = out.data();
  *len = out.size();
  return ok(errmsg);
}
template <typename H, typename E>
int consume_output(H* h, E H::*engine, std::size_t n, char** errmsg) {
  if (!live(h)) return bad_handle(errmsg);
  if (n > (h->*engine).pending_output().size()) return fail(errmsg, CMAIL_INVALID_ARGUMENT, "more consumed than pending");
  return guard(errmsg, [&] {
    (h->*engine).consume_output(n);
    return ok(errmsg);
  });
}

template <typename H, typename E>
int tls_established(H* h, E H::*engine, const char* version, const char* cipher, int bits, char** errmsg) {
  if (!live(h)) return bad_handle(errmsg);
  return guard(errmsg, [&] {
    (h->*engine).tls_established(proto::TlsInfo{str(version), str(cipher), bits});
    return ok(errmsg);
  });
}
template <typename H, typename E>
int on_timeout(H* h, E H::*engine, char** errmsg) {
  if (!live(h)) return bad_handle(errmsg);
  return guard(errmsg, [&] {
    (h->*engine).timed_out();
    return ok(errmsg);
  });
}
// The server engines' deadline (cmail/proto/transport.h, Deadline).
template <typename H, typename E>
int deadline(const H* h, E H::*engine, std::uint64_t* phase, std::int64_t* budget_ms, char** errmsg) {
  if (!live(h)) return bad_handle(errmsg);
  if (!phase || !budget_ms) return fail(errmsg, CMAIL_INVALID_ARGUMENT, "phase or budget_ms is NULL");
  const proto::Deadline d = (h->*engine).deadline();
  *phase = d.phase;
  *budget_ms = d.budget.count();
  return ok(errmsg);
}

// The next event of a server engine handle: the oldest queued decision, else the transport's
// event (StartTls with the bytes that belong to the handshake, or Close), else a record of
// type CMAIL_EVENT_NONE. Record has `type` and `data` (a std::string).
template <typename Record, typename Engine>
Record next_record(std::deque<Record>& queue, Engine& engine) {
  Record r;
  if (!queue.empty()) {
    r = std::move(queue.front());
    queue.pop_front();
  } else if (auto ev = engine.next_event()) {
    if (auto* tls = std::get_if<proto::StartTls>(&*ev)) {
      r.type = CMAIL_EVENT_STARTTLS;
      r.data = std::move(tls->trailing);
    } else {
      r.type = CMAIL_EVENT_CLOSE;
    }
  }
  return r;
}

}  // namespace cmail::c
