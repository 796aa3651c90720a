// cmail-admin permissions (cmail-admin-permissions), as the original tool
// (docs/compatibility.md#admin-tools-permissions).
#include "commands.h"

#include <cstdio>

namespace cmail::admin {

void usage_permissions() {
  std::printf(
      "cmail-admin-permissions - Manage API permissions and delegations\n"
      "Usage: cmail-admin-permissions [-d DBPATH] [-v N] [--no-upgrade] COMMAND [ARGS]\n"
      "  grant USER PERMISSION                 permissions: admin, delegate\n"
      "  revoke USER [PERMISSION...]           without permissions: all of them\n"
      "  list [USER-PATTERN]\n"
      "  rlist PERMISSION-PATTERN\n"
      "  delegate [user|address] [USER-PATTERN]        list delegations\n"
      "  delegate user USER DELEGATED-USER\n"
      "  delegate address USER EXPRESSION\n"
      "  delete user USER DELEGATED-USER\n"
      "  delete expression USER EXPRESSION\n");
}

namespace {

void print_permissions(const std::vector<store::Permission>& rows) {
  std::printf("%20s | %10s\n", "User", "Permission");
  std::printf("---------------------+-----------\n");
  for (const store::Permission& p : rows) std::printf("%20s | %10s\n", p.user.c_str(), p.permission.c_str());
}

void print_delegations(const std::vector<store::Delegation>& rows, const char* what) {
  std::printf("%20s | %20s\n", "User", what);
  std::printf("---------------------+---------------------\n");
  for (const store::Delegation& d : rows) std::printf("%20s | %20s\n", d.user.c_str(), d.target.c_str());
}

}  // namespace

int run_permissions(Context& ctx) {
  const auto& a = ctx.args;
  const std::string& cmd = a[0];
  const bool known = cmd == "grant" || cmd == "revoke" || cmd == "list" || cmd == "rlist" || cmd == "delegate" || cmd == "delete";
  if (!known) {
    // The original exited 0 here (docs/compatibility.md#admin-tools-permissions).
    ctx.fail(20, "Unknown command " + cmd);
    usage_permissions();
    return 20;
  }
  if (cmd == "grant" && a.size() != 3) return ctx.fail(20, "usage: grant USER PERMISSION");
  if (cmd == "revoke" && a.size() < 2) return ctx.fail(20, "usage: revoke USER [PERMISSION...]");
  if (cmd == "rlist" && a.size() != 2) return ctx.fail(20, "usage: rlist PERMISSION-PATTERN");
  if (cmd == "delete" && a.size() < 4) return ctx.fail(20, "usage: delete user|expression USER VALUE");
  if (cmd == "delete" && a[1] != "user" && a[1] != "expression") return ctx.fail(120, "unknown delegation type '" + a[1] + "' (user or expression)");
  const bool delegate_write = cmd == "delegate" && a.size() == 4 && (a[1] == "user" || a[1] == "address");
  if (cmd == "delegate" && a.size() > 4) return ctx.fail(20, "Too many arguments");
  const bool reading = cmd == "list" || cmd == "rlist" || (cmd == "delegate" && !delegate_write);
  int code = 0;
  auto store = ctx.open(reading, code);
  if (!store) return code;
  store::Directory& d = store->directory();
  Status st;
  if (cmd == "grant") {
    st = d.grant(a[1], a[2]);
  } else if (cmd == "revoke") {
    st = d.revoke(a[1], std::vector<std::string>(a.begin() + 2, a.end()));
  } else if (cmd == "list" || cmd == "rlist") {
    auto rows = cmd == "list" ? d.list_permissions(a.size() > 1 ? a[1] : "%") : d.list_permission_holders(a[1]);
    if (!rows) return ctx.fail(rows.error());
    print_permissions(*rows);
    return kExitOk;
  } else if (cmd == "delete") {
    st = a[1] == "user" ? d.undelegate_user(a[2], a[3]) : d.undelegate_address(a[2], a[3]);
  } else if (delegate_write) {
    st = a[1] == "user" ? d.delegate_user(a[2], a[3]) : d.delegate_address(a[2], a[3]);
  } else {
    // Listing: "delegate", "delegate user|address [PATTERN]", or "delegate PATTERN".
    std::string mode = a.size() > 1 && (a[1] == "user" || a[1] == "address") ? a[1] : "";
    std::string pattern = "%";
    if (!mode.empty() && a.size() > 2) pattern = a[2];
    if (mode.empty() && a.size() > 1) pattern = a[1];
    if (mode.empty() || mode == "user") {
      auto users = d.list_user_delegates(pattern);
      if (!users) return ctx.fail(users.error());
      if (mode.empty()) std::printf("Delegated users:\n");
      print_delegations(*users, "Delegate");
    }
    if (mode.empty()) std::printf("\n");
    if (mode.empty() || mode == "address") {
      auto addrs = d.list_address_delegates(pattern);
      if (!addrs) return ctx.fail(addrs.error());
      if (mode.empty()) std::printf("Delegated address space:\n");
      print_delegations(*addrs, "Expression");
    }
    return kExitOk;
  }
  return st.ok() ? kExitOk : ctx.fail(st);
}

}  // namespace cmail::admin
