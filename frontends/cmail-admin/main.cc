// cmail-admin: the administration tool for the master database. Also runs as cmail's original
// tool names (cmail-admin-user, -address, -smtpd, -popd, -permissions, and
// cmail-admin-imapd, which the original did not have) by looking at argv[0].
#include "commands.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

using namespace cmail::admin;

namespace {

struct Module {
  const char* name;
  int (*run)(Context&);
  void (*usage)();
  int no_command_exit;  // 1, but 10 for the smtpd tool (docs/compatibility.md#admin-tools-smtpd)
  int open_failure_exit;
};

const Module kModules[] = {
    {"user", run_user, usage_user, kExitUsage, kExitUsage},
    {"address", run_address, usage_address, kExitUsage, kExitUsage},
    {"smtpd", run_smtpd, usage_smtpd, 10, 10},
    {"popd", run_popd, usage_popd, kExitUsage, kExitUsage},
    {"imapd", run_imapd, usage_imapd, kExitUsage, kExitUsage},  // new: no original tool
    {"permissions", run_permissions, usage_permissions, kExitUsage, 10},
    {"queue", run_queue, usage_queue, kExitUsage, kExitUsage},  // new: no original tool
    {"dkim", run_dkim, usage_dkim, kExitUsage, kExitUsage},     // new: no original tool
    {"dmarc", run_dmarc, usage_dmarc, kExitUsage, kExitUsage},  // new: no original tool
};

}  // namespace

int main(int argc, char** argv) {
  std::string self = std::filesystem::path(argv[0]).filename().string();
  std::string dbpath;
  if (const char* env = std::getenv("CMAIL_MASTER_DB")) dbpath = env;
  if (dbpath.empty()) dbpath = "/etc/cmail/databases/master.db3";
  int verbosity = 0;
  bool no_upgrade = false;
  bool help = false;

  CLI::App app{"cmail-admin: administer a cmail master database"};
  app.set_help_flag();  // -h is ours: usage on stdout, exit 1 as the original tools
  app.allow_extras();
  app.add_option("-d,--dbpath", dbpath);
  app.add_option("-v,--verbosity", verbosity);
  app.add_flag("--no-upgrade", no_upgrade);  // refuse an older schema instead of upgrading it
  app.add_flag("-h,--help", help);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    if (what.find("dbpath") != std::string::npos) what = "(-d,--dbpath) needs an argument.";
    else if (what.find("verbosity") != std::string::npos) what = "(-v,--verbosity) needs an argument or a number.";
    std::fprintf(stderr, "%s\n", what.c_str());
    return kExitUsage;
  }
  std::vector<std::string> words = app.remaining();

  // Which module: from the program name (cmail-admin-user) or the first word (cmail-admin user).
  const Module* module = nullptr;
  for (const Module& m : kModules)
    if (self == std::string("cmail-admin-") + m.name) module = &m;
  Context ctx;
  ctx.dbpath = dbpath;
  ctx.verbosity = verbosity;
  ctx.upgrade = !no_upgrade;
  if (!module) {
    if (words.empty() || words[0] == "help" || help) {
      usage_main();
      return words.empty() && !help ? kExitUsage : kExitOk;
    }
    for (const Module& m : kModules)
      if (words[0] == m.name) module = &m;
    if (!module) {
      const std::string& w = words[0];
      if (w == "init" || w == "migrate" || w == "check" || w == "backup") {
        ctx.tool = "database";
        ctx.args = words;
        return run_database(ctx);
      }
      std::fprintf(stderr, "cmail-admin: unknown module or command '%s'\n", w.c_str());
      usage_main();
      return kExitUsage;
    }
    words.erase(words.begin());
  }
  ctx.tool = module->name;
  ctx.open_failure_exit = module->open_failure_exit;
  ctx.args = words;
  if (help) {
    module->usage();
    return kExitUsage;
  }
  if (words.empty()) {
    std::fprintf(stderr, "No command specified\n");
    module->usage();
    return module->no_command_exit;
  }
  return module->run(ctx);
}
