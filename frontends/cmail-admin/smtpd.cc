// cmail-admin smtpd (cmail-admin-smtpd), as the original tool
// (docs/compatibility.md#admin-tools-smtpd).
#include "commands.h"

#include <cstdio>

namespace cmail::admin {

void usage_smtpd() {
  std::printf(
      "cmail-admin-smtpd - Manage who may send mail through cmail-smtpd, and how\n"
      "Usage: cmail-admin-smtpd [-d DBPATH] [-v N] [--no-upgrade] COMMAND [ARGS]\n"
      "  list [USER-PATTERN]\n"
      "  enable USER [ROUTER [ARGUMENT]]   routers: any defined handoff reject drop (default drop)\n"
      "  update USER ROUTER [ARGUMENT]\n"
      "  disable USER\n");
}

int run_smtpd(Context& ctx) {
  const auto& a = ctx.args;
  const std::string& cmd = a[0];
  auto opt_arg = [&](std::size_t i) { return a.size() > i ? std::optional<std::string_view>(a[i]) : std::nullopt; };
  if (cmd != "list" && cmd != "enable" && cmd != "update" && cmd != "disable") {
    ctx.fail(20, "Unknown command " + cmd);
    usage_smtpd();
    return 20;
  }
  if (cmd == "list" && a.size() > 2) return ctx.fail(kExitArgs, "Too many arguments");
  if (cmd == "enable" && (a.size() < 2 || a.size() > 4)) return ctx.fail(kExitArgs, "usage: enable USER [ROUTER [ARGUMENT]]");
  if (cmd == "update" && (a.size() < 3 || a.size() > 4)) return ctx.fail(kExitArgs, "usage: update USER ROUTER [ARGUMENT]");
  if (cmd == "disable" && a.size() != 2) return ctx.fail(kExitArgs, "usage: disable USER");
  int code = 0;
  auto store = ctx.open(cmd == "list", code);
  if (!store) return code;
  store::Directory& d = store->directory();
  Status st;
  if (cmd == "list") {
    auto rows = d.list_smtpd(a.size() > 1 ? a[1] : "%");
    if (!rows) return ctx.fail(rows.error());
    std::printf("%20s | %10s | %15s\n", "User", "Router", "Argument");
    std::printf("---------------------+------------+-----------------\n");
    for (const store::SmtpdEntry& e : *rows)
      std::printf("%20s | %10s | %15s\n", e.user.c_str(), e.router.c_str(), e.route.value_or("").c_str());
    return kExitOk;
  }
  if (cmd == "enable") st = d.enable_smtpd(a[1], opt_arg(2), opt_arg(3));
  if (cmd == "update") {
    st = d.update_smtpd(a[1], a[2], opt_arg(3));
    if (st.is_not_found()) return ctx.fail(kExitNotFound, "No entry found, no modifications performed");
  }
  if (cmd == "disable") {
    st = d.disable_smtpd(a[1]);
    if (st.is_not_found()) return ctx.fail(kExitNotFound, "No entry found, none modified");
  }
  return st.ok() ? kExitOk : ctx.fail(st);
}

}  // namespace cmail::admin
