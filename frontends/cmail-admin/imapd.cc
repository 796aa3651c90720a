// cmail-admin imapd (cmail-admin-imapd): who may read mail with IMAP, the imapd table of schema
// version 13 (docs/imapd.md#access). The original cmail had no IMAP server and no such tool;
// this one follows cmail-admin-popd: the same commands but unlock, the same kind of table, the
// same exit codes.
#include "commands.h"

#include <cstdio>

namespace cmail::admin {

void usage_imapd() {
  std::printf(
      "cmail-admin-imapd - Manage who may read mail with IMAP\n"
      "Usage: cmail-admin-imapd [-d DBPATH] [-v N] [--no-upgrade] COMMAND [ARGS]\n"
      "  list [USER-PATTERN]\n"
      "  enable USER\n"
      "  disable USER\n");
}

int run_imapd(Context& ctx) {
  const auto& a = ctx.args;
  const std::string& cmd = a[0];
  const bool one_user = cmd == "enable" || cmd == "disable";
  if ((cmd != "list" && !one_user) || (one_user && a.size() != 2) || (cmd == "list" && a.size() > 2)) {
    // As cmail-admin-popd: on stdout, exit 20.
    std::printf("Invalid or no arguments.\n");
    ctx.fail(20, "invalid command or arguments: " + cmd);
    usage_imapd();
    return 20;
  }
  int code = 0;
  auto store = ctx.open(cmd == "list", code);
  if (!store) return code;
  store::Directory& d = store->directory();
  if (cmd == "list") {
    auto rows = d.list_imapd(a.size() > 1 ? a[1] : "%");
    if (!rows) return ctx.fail(rows.error());
    std::printf("%20s\n", "User");
    std::printf("---------------------\n");
    for (const store::ImapdEntry& e : *rows) std::printf("%20s\n", e.user.c_str());
    return kExitOk;
  }
  Status st = cmd == "enable" ? d.enable_imapd(a[1]) : d.disable_imapd(a[1]);
  if (st.is_not_found() && cmd == "disable") return ctx.fail(kExitNotFound, "IMAPD entry not found.");
  return st.ok() ? kExitOk : ctx.fail(st);
}

}  // namespace cmail::admin
