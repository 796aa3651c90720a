// cmail-admin init | migrate | check | backup FILE: the database as a whole.
#include "commands.h"

#include <cstdio>
#include <filesystem>

namespace cmail::admin {

void usage_main() {
  std::printf(
      "cmail-admin - administer a cmail master database\n"
      "Usage: cmail-admin [-d DBPATH] [-v N] [--no-upgrade] MODULE COMMAND [ARGS]\n"
      "Modules (also runnable as cmail-admin-MODULE): user, address, smtpd, popd, imapd,\n"
      "  permissions\n"
      "  queue: list | show ID | retry [ID] | flush | delete ID   the delivery queue\n"
      "  dkim: generate DOMAIN | list | record DOMAIN SEL | delete DOMAIN SEL | check DOMAIN\n"
      "  dmarc: list | set DOMAIN report|enforce | delete DOMAIN   DMARC policy of intake\n"
      "Database commands:\n"
      "  init            create a new master database at DBPATH\n"
      "  migrate         upgrade a cmail (schema 9) database in place, after a backup\n"
      "  check           integrity and schema checks\n"
      "  backup FILE     consistent online copy to FILE\n"
      "Every other command upgrades an older schema first, after a backup, and says so in\n"
      "one line on stderr; with --no-upgrade it refuses such a database instead (exit 11).\n"
      "DBPATH defaults to $CMAIL_MASTER_DB, else /etc/cmail/databases/master.db3.\n");
}

int run_database(Context& ctx) {
  const auto& a = ctx.args;
  const std::string& cmd = a[0];
  if (cmd == "backup" ? a.size() != 2 : a.size() != 1)
    return ctx.fail(kExitArgs, cmd == "backup" ? "usage: backup FILE" : "usage: " + cmd);
  if (cmd == "init") {
    Status st = store::Store::create(ctx.dbpath);
    if (st.code() == Status::Code::AlreadyExists) return ctx.fail(kExitConstraint, ctx.dbpath + " already exists; not touching it");
    if (!st.ok()) return ctx.fail(st);
    std::printf("created %s (schema version %d)\n", ctx.dbpath.c_str(), store::Store::current_schema_version());
    return kExitOk;
  }
  if (cmd == "migrate") {
    // The explicit upgrade: the result goes to stdout, whatever --no-upgrade says.
    store::StoreOptions o;
    o.migrate = true;
    auto s = store::Store::open(ctx.dbpath, o);
    if (!s) {
      if (s.error().is_not_found()) return ctx.fail(kExitUsage, "cannot open the database: " + s.error().message());
      return ctx.fail(s.error());
    }
    if (const auto& u = (*s)->upgrade()) {
      std::printf("upgraded %s from schema version %d to %d (backup: %s)\n", ctx.dbpath.c_str(), u->from, u->to,
                  u->backup.c_str());
    } else {
      std::printf("%s is at schema version %d, nothing to do\n", ctx.dbpath.c_str(), (*s)->schema_version());
    }
    return kExitOk;
  }
  int code = 0;
  auto store = ctx.open(true, code);
  if (!store) return code;
  if (cmd == "check") {
    auto problems = store->check();
    if (!problems) return ctx.fail(problems.error());
    if (problems->empty()) {
      std::printf("ok: %s, schema version %d\n", ctx.dbpath.c_str(), store->schema_version());
      return kExitOk;
    }
    for (const std::string& p : *problems) std::printf("%s\n", p.c_str());
    return ctx.fail(kExitUnhealthy, std::to_string(problems->size()) + " problem(s) found");
  }
  if (cmd == "backup") {
    Status st = store->backup(a[1]);
    if (!st.ok()) return ctx.fail(st);
    std::printf("backed up %s to %s\n", ctx.dbpath.c_str(), a[1].c_str());
    return kExitOk;
  }
  return ctx.fail(kExitUsage, "unknown command " + cmd);
}

}  // namespace cmail::admin
