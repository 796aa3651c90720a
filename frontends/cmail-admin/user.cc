// cmail-admin user (cmail-admin-user), as the original tool
// (docs/compatibility.md#admin-tools-user).
#include "commands.h"

#include <cstdio>

namespace cmail::admin {

void usage_user() {
  std::printf(
      "cmail-admin-users - Add, modify or delete cmail users\n"
      "Usage: cmail-admin-user [-d DBPATH] [-v N] [--no-upgrade] COMMAND [ARGS]\n"
      "  list [FILTER]              list users (LIKE pattern)\n"
      "  add USER [PASSWORD]        add a user (asks for the password when omitted)\n"
      "  password|passwd USER [PASSWORD]  set the password (blank: disable login)\n"
      "  revoke USER                disable login\n"
      "  alias USER [TARGET]        act as TARGET after login (omit or USER: remove)\n"
      "  userdb USER [PATH]         store USER's mail in the user database at PATH\n"
      "  delete USER                delete the user and everything that refers to it\n");
}

namespace {

// The password from the command line, or asked for. nullopt = input failed (exit 11).
std::optional<std::optional<std::string>> password_arg(const Context& ctx, std::size_t index) {
  if (ctx.args.size() > index) return std::optional<std::string>(ctx.args[index]);
  auto pw = read_password("Enter new password (leave blank to disable login): ");
  if (!pw) return std::nullopt;
  return pw->empty() ? std::optional<std::string>() : std::optional<std::string>(*pw);
}

}  // namespace

int run_user(Context& ctx) {
  const auto& a = ctx.args;
  const std::string& cmd = a[0];
  const bool reading = cmd == "list";
  static const char* const kKnown[] = {"list", "add", "password", "passwd", "revoke", "alias", "userdb", "delete"};
  bool known = false;
  for (const char* k : kKnown) known |= cmd == k;
  if (!known) {
    ctx.fail(kExitArgs, "Unknown command " + cmd);
    usage_user();
    return kExitArgs;
  }
  if (cmd != "list" && a.size() < 2) return ctx.fail(kExitArgs, cmd + ": missing user name");
  int code = 0;
  auto store = ctx.open(reading, code);
  if (!store) return code;
  store::Directory& d = store->directory();

  if (cmd == "list") {
    if (a.size() > 2) return ctx.fail(kExitArgs, "Too many arguments");
    auto users = d.list_users(a.size() > 1 ? a[1] : "%");
    if (!users) return ctx.fail(users.error());
    std::printf("%20s | %5s | %15s | %16s | %6s | %14s\n", "User", "Auth", "Alias", "Linked addresses", "Mails",
                "User database");
    std::printf("---------------------+-------+-----------------+------------------+-----------------+-------\n");
    for (const store::UserSummary& u : *users)
      std::printf("%20s | %5d | %15s | %16lld | %6lld | %20s\n", u.user.name.c_str(), u.user.authdata ? 1 : 0,
                  u.user.alias.value_or("").c_str(), static_cast<long long>(u.linked_addresses),
                  static_cast<long long>(u.mails), u.user.database.value_or("").c_str());
    return kExitOk;
  }
  Status st;
  if (cmd == "add") {
    if (a.size() > 3) return ctx.fail(kExitArgs, "Too many arguments");
    if (auto v = store::validate_user_name(a[1]); !v.ok()) return ctx.fail(v);
    auto existing = d.find_user(a[1]);
    // A duplicate user exits 255, "Failed to create user" (docs/compatibility.md#admin-tools-user).
    if (existing && *existing) return ctx.fail(kExitArgs, "user '" + a[1] + "' already exists; Failed to create user");
    auto pw = password_arg(ctx, 2);
    if (!pw) return ctx.fail(kExitSchema, "could not read the password (at most 256 characters)");
    st = d.add_user(a[1], *pw ? std::optional<std::string_view>(**pw) : std::nullopt);
  } else if (cmd == "password" || cmd == "passwd") {
    if (a.size() > 3) return ctx.fail(kExitArgs, "Too many arguments");
    auto existing = d.find_user(a[1]);
    if (!existing) return ctx.fail(existing.error());
    if (!*existing) return ctx.fail(kExitNotFound, "No such user, no changes made");
    auto pw = password_arg(ctx, 2);
    if (!pw) return ctx.fail(kExitSchema, "could not read the password (at most 256 characters)");
    st = d.set_password(a[1], *pw ? std::optional<std::string_view>(**pw) : std::nullopt);
  } else if (cmd == "revoke") {
    if (a.size() != 2) return ctx.fail(kExitArgs, "revoke takes exactly one user name");
    st = d.set_authdata(a[1], std::nullopt);
  } else if (cmd == "alias") {
    if (a.size() > 3) return ctx.fail(kExitArgs, "Too many arguments");
    st = d.set_alias(a[1], a.size() > 2 ? std::optional<std::string_view>(a[2]) : std::nullopt);
  } else if (cmd == "userdb") {
    if (a.size() > 3) return ctx.fail(kExitArgs, "Too many arguments");
    st = d.set_user_database(a[1], a.size() > 2 ? std::optional<std::string_view>(a[2]) : std::nullopt);
  } else if (cmd == "delete") {
    if (a.size() != 2) return ctx.fail(kExitArgs, "delete takes exactly one user name");
    st = d.delete_user(a[1]);
  }
  // The original's message, on stderr with exit 2 instead of stdout with exit 0
  // (docs/compatibility.md#admin-tools-exit-codes).
  if (st.is_not_found()) return ctx.fail(kExitNotFound, "No such user, no changes made (" + st.message() + ")");
  return st.ok() ? kExitOk : ctx.fail(st);
}

}  // namespace cmail::admin
