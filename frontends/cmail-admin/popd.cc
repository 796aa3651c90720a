// cmail-admin popd (cmail-admin-popd), as the original tool
// (docs/compatibility.md#admin-tools-popd).
#include "commands.h"

#include <cstdio>

namespace cmail::admin {

void usage_popd() {
  std::printf(
      "cmail-admin-popd - Manage who may read mail with POP3\n"
      "Usage: cmail-admin-popd [-d DBPATH] [-v N] [--no-upgrade] COMMAND [ARGS]\n"
      "  list [USER-PATTERN]\n"
      "  enable USER\n"
      "  disable USER\n"
      "  unlock USER               release a maildrop lock (emergencies only)\n");
}

int run_popd(Context& ctx) {
  const auto& a = ctx.args;
  const std::string& cmd = a[0];
  const bool one_user = cmd == "enable" || cmd == "disable" || cmd == "unlock";
  if ((cmd != "list" && !one_user) || (one_user && a.size() != 2) || (cmd == "list" && a.size() > 2)) {
    // On stdout, exit 20 (docs/compatibility.md#admin-tools-popd).
    std::printf("Invalid or no arguments.\n");
    ctx.fail(20, "invalid command or arguments: " + cmd);
    usage_popd();
    return 20;
  }
  int code = 0;
  auto store = ctx.open(cmd == "list", code);
  if (!store) return code;
  store::Directory& d = store->directory();
  if (cmd == "list") {
    auto rows = d.list_popd(a.size() > 1 ? a[1] : "%");
    if (!rows) return ctx.fail(rows.error());
    std::printf("%20s | %5s\n", "User", "Lock");
    std::printf("---------------------+------\n");
    for (const store::PopdEntry& e : *rows) std::printf("%20s | %5d\n", e.user.c_str(), e.locked ? 1 : 0);
    return kExitOk;
  }
  Status st = cmd == "enable" ? d.enable_popd(a[1]) : cmd == "disable" ? d.disable_popd(a[1]) : d.unlock_popd(a[1]);
  if (st.is_not_found() && cmd != "enable") return ctx.fail(kExitNotFound, "POPD entry not found.");
  return st.ok() ? kExitOk : ctx.fail(st);
}

}  // namespace cmail::admin
