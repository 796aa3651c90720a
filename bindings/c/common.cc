// The C ABI's error model and the library-wide calls (cmail_status_name, cmail_free,
// cmail_version).
#include "common.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

namespace cmail::c {

char* copy_out(std::string_view s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (!p) return nullptr;
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

namespace detail {
namespace {
struct Registry {
  std::mutex mu;
  std::unordered_map<const void*, const std::type_info*> live;
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: handles may be freed during exit
  return *r;
}
}  // namespace

void adopt(const void* h, const std::type_info& type) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  r.live[h] = &type;
}

bool release(const void* h, const std::type_info& type) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  auto it = r.live.find(h);
  if (it == r.live.end() || *it->second != type) return false;
  r.live.erase(it);
  return true;
}

bool live(const void* h, const std::type_info& type) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  auto it = r.live.find(h);
  return it != r.live.end() && *it->second == type;
}
}  // namespace detail

int fail(char** errmsg, int code, std::string_view msg) {
  if (errmsg) *errmsg = copy_out(msg);
  return code;
}

int ok(char** errmsg) {
  if (errmsg) *errmsg = nullptr;
  return CMAIL_OK;
}

int from_status(const Status& st, char** errmsg) {
  if (st.ok()) return ok(errmsg);
  // cmail_status follows Status::Code one for one (the header's values are the enum's).
  static_assert(static_cast<int>(Status::Code::Internal) == CMAIL_INTERNAL);
  static_assert(static_cast<int>(Status::Code::IoError) == CMAIL_IO_ERROR);
  static_assert(static_cast<int>(Status::Code::NotFound) == CMAIL_NOT_FOUND);
  static_assert(static_cast<int>(Status::Code::NoSpace) == CMAIL_NO_SPACE);
  return fail(errmsg, static_cast<int>(st.code()), st.message());
}

}  // namespace cmail::c

extern "C" {

const char* cmail_status_name(int status) {
  if (status == CMAIL_WRONG_STATE) return "WrongState";
  if (status < CMAIL_OK || status > CMAIL_NO_SPACE) return "Unknown";
  return cmail::to_string(static_cast<cmail::Status::Code>(status));
}

void cmail_free(void* p) { std::free(p); }

const char* cmail_version(void) { return CMAIL_VERSION; }

}  // extern "C"
