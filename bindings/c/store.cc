// The C ABI's store administration: users, protocol access and addresses, over
// store::Directory (what cmail-admin does, without its tables).
#include "store.h"

#include "common.h"

#include <cmail/store/directory.h>

#include <vector>

using namespace cmail;

struct cmail_user_list {
  std::vector<store::UserSummary> rows;
};
struct cmail_address_list {
  std::vector<store::Address> rows;
};

namespace {

std::optional<std::string_view> opt(const char* s) {
  return s ? std::optional<std::string_view>(s) : std::nullopt;
}
// A disabled login for NULL and "" alike (Directory's rule).
std::optional<std::string_view> password(const char* s) { return s && *s ? opt(s) : std::nullopt; }

// Runs a Directory call on a valid handle with its required string arguments present.
template <typename F>
int with_directory(cmail_store* st, std::initializer_list<const char*> required, char** errmsg, F&& f) {
  if (!c::live(st)) return c::bad_handle(errmsg);
  for (const char* s : required)
    if (!s) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "a required string is NULL");
  return c::guard(errmsg, [&] { return f(st->store->directory()); });
}

template <typename List>
const auto* row(const List* l, size_t i) {
  return c::live(l) && i < l->rows.size() ? &l->rows[i] : nullptr;
}

}  // namespace

extern "C" {

int cmail_store_open(const char* path, unsigned flags, cmail_store** out, char** errmsg) {
  if (!out) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "out is NULL");
  *out = nullptr;
  if (!path || !*path) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "path is empty");
  if (flags & ~unsigned(CMAIL_STORE_CREATE | CMAIL_STORE_READ_ONLY | CMAIL_STORE_NO_UPGRADE))
    return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "unknown flags");
  return c::guard(errmsg, [&] {
    store::StoreOptions o;
    o.create_if_missing = flags & CMAIL_STORE_CREATE;
    o.read_only = flags & CMAIL_STORE_READ_ONLY;
    o.migrate = !(flags & CMAIL_STORE_NO_UPGRADE);
    auto opened = store::Store::open(path, o);
    if (!opened) return c::from_status(opened.error(), errmsg);
    auto* h = new cmail_store;
    h->owned = std::move(*opened);
    h->store = h->owned.get();
    *out = c::adopt(h);
    return c::ok(errmsg);
  });
}

void cmail_store_close(cmail_store* st) {
  if (!c::live(st) || !st->owned) return;  // a server's store is the server's to close
  c::release(st);
  delete st;
}

int cmail_store_add_user(cmail_store* st, const char* name, const char* pw, char** errmsg) {
  return with_directory(st, {name}, errmsg, [&](store::Directory& d) {
    if (Status v = store::validate_user_name(name); !v.ok()) return c::from_status(v, errmsg);
    auto existing = d.find_user(name);
    if (!existing) return c::from_status(existing.error(), errmsg);
    if (*existing) return c::fail(errmsg, CMAIL_ALREADY_EXISTS, std::string("user '") + name + "' already exists");
    return c::from_status(d.add_user(name, password(pw)), errmsg);
  });
}

int cmail_store_set_password(cmail_store* st, const char* name, const char* pw, char** errmsg) {
  return with_directory(st, {name}, errmsg,
                        [&](store::Directory& d) { return c::from_status(d.set_password(name, password(pw)), errmsg); });
}

int cmail_store_delete_user(cmail_store* st, const char* name, char** errmsg) {
  return with_directory(st, {name}, errmsg,
                        [&](store::Directory& d) { return c::from_status(d.delete_user(name), errmsg); });
}

int cmail_store_authenticate(cmail_store* st, const char* name, const char* pw, char** identity, char** errmsg) {
  if (identity) *identity = nullptr;
  if (!identity) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "identity is NULL");
  return with_directory(st, {name, pw}, errmsg, [&](store::Directory& d) {
    auto id = d.authenticate(name, pw);
    if (!id) return c::from_status(id.error(), errmsg);
    *identity = c::copy_out(id->authorized);
    return *identity ? c::ok(errmsg) : c::fail(errmsg, CMAIL_INTERNAL, "out of memory");
  });
}

int cmail_store_list_users(cmail_store* st, const char* like, cmail_user_list** out, char** errmsg) {
  if (!out) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "out is NULL");
  *out = nullptr;
  return with_directory(st, {}, errmsg, [&](store::Directory& d) {
    auto users = d.list_users(like ? like : "%");
    if (!users) return c::from_status(users.error(), errmsg);
    *out = c::adopt(new cmail_user_list{std::move(*users)});
    return c::ok(errmsg);
  });
}

size_t cmail_user_list_count(const cmail_user_list* l) { return c::live(l) ? l->rows.size() : 0; }
const char* cmail_user_list_name(const cmail_user_list* l, size_t i) {
  auto* r = row(l, i);
  return r ? r->user.name.c_str() : nullptr;
}
int cmail_user_list_login_enabled(const cmail_user_list* l, size_t i) {
  auto* r = row(l, i);
  return r ? r->user.authdata.has_value() : -1;
}
const char* cmail_user_list_alias(const cmail_user_list* l, size_t i) {
  auto* r = row(l, i);
  return r ? c::cstr(r->user.alias) : nullptr;
}
int64_t cmail_user_list_addresses(const cmail_user_list* l, size_t i) {
  auto* r = row(l, i);
  return r ? r->linked_addresses : -1;
}
int64_t cmail_user_list_mails(const cmail_user_list* l, size_t i) {
  auto* r = row(l, i);
  return r ? r->mails : -1;
}
void cmail_user_list_free(cmail_user_list* l) {
  if (c::release(l)) delete l;
}

int cmail_store_enable_smtp(cmail_store* st, const char* user, const char* router, const char* route, char** errmsg) {
  return with_directory(st, {user, router}, errmsg, [&](store::Directory& d) {
    return c::from_status(d.enable_smtpd(user, opt(router), opt(route)), errmsg);
  });
}

int cmail_store_enable_pop3(cmail_store* st, const char* user, char** errmsg) {
  return with_directory(st, {user}, errmsg, [&](store::Directory& d) { return c::from_status(d.enable_popd(user), errmsg); });
}

int cmail_store_enable_imap(cmail_store* st, const char* user, char** errmsg) {
  return with_directory(st, {user}, errmsg, [&](store::Directory& d) { return c::from_status(d.enable_imapd(user), errmsg); });
}

int cmail_store_add_address(cmail_store* st, const char* expression, const char* router, const char* route,
                            const int64_t* order, int64_t* order_out, char** errmsg) {
  return with_directory(st, {expression, router}, errmsg, [&](store::Directory& d) {
    auto added = d.add_address(expression, router, opt(route), order ? std::optional<std::int64_t>(*order) : std::nullopt);
    if (!added) return c::from_status(added.error(), errmsg);
    if (order_out) *order_out = *added;
    return c::ok(errmsg);
  });
}

int cmail_store_delete_address(cmail_store* st, int64_t order, char** errmsg) {
  return with_directory(st, {}, errmsg, [&](store::Directory& d) { return c::from_status(d.delete_address(order), errmsg); });
}

int cmail_store_list_addresses(cmail_store* st, const char* like, cmail_address_list** out, char** errmsg) {
  if (!out) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "out is NULL");
  *out = nullptr;
  return with_directory(st, {}, errmsg, [&](store::Directory& d) {
    auto rows = d.list_addresses(like ? like : "%");
    if (!rows) return c::from_status(rows.error(), errmsg);
    *out = c::adopt(new cmail_address_list{std::move(*rows)});
    return c::ok(errmsg);
  });
}

int cmail_store_route_address(cmail_store* st, const char* path, cmail_address_list** out, char** errmsg) {
  if (!out) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "out is NULL");
  *out = nullptr;
  return with_directory(st, {path}, errmsg, [&](store::Directory& d) {
    auto rows = d.match_addresses(path);
    if (!rows) return c::from_status(rows.error(), errmsg);
    *out = c::adopt(new cmail_address_list{std::move(*rows)});
    return c::ok(errmsg);
  });
}

size_t cmail_address_list_count(const cmail_address_list* l) { return c::live(l) ? l->rows.size() : 0; }
int64_t cmail_address_list_order(const cmail_address_list* l, size_t i) {
  auto* r = row(l, i);
  return r ? r->order : -1;
}
const char* cmail_address_list_expression(const cmail_address_list* l, size_t i) {
  auto* r = row(l, i);
  return r ? r->expression.c_str() : nullptr;
}
const char* cmail_address_list_router(const cmail_address_list* l, size_t i) {
  auto* r = row(l, i);
  return r ? r->router.c_str() : nullptr;
}
const char* cmail_address_list_route(const cmail_address_list* l, size_t i) {
  auto* r = row(l, i);
  return r ? c::cstr(r->route) : nullptr;
}
void cmail_address_list_free(cmail_address_list* l) {
  if (c::release(l)) delete l;
}

}  // extern "C"
