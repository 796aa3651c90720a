// cmail-smtpd CONFIG [nodrop] [nodetach]: SMTP intake and submission (spec 2.1, 8).
#include <cmail/config.h>
#include <cmail/daemon.h>
#include <cmail/net.h>
#include <cmail/smtp_service.h>
#include <cmail/store.h>

#include <cstdio>
#include <string>

using namespace cmail;

int main(int argc, char** argv) {
  std::string path;
  bool nodrop = false, nodetach = false;
  for (int i = 1; i < argc; ++i) {
    std::string w = argv[i];
    if (w == "nodrop") nodrop = true;
    else if (w == "nodetach") nodetach = true;
    else path = w;  // the last other word is the config file (spec 2.1)
  }
  if (path.empty()) {
    std::printf("cmail-smtpd - Accept incoming mail\nUsage: %s <conffile> [nodrop] [nodetach]\n", argv[0]);
    return 1;
  }
  auto cfg = config::load_smtpd(path);
  if (!cfg) {
    std::fprintf(stderr, "cmail-smtpd: %s\n", cfg.error().message().c_str());
    return 1;
  }
  Logger logger(cfg->common.verbosity, cfg->common.logfile);
  auto store = start_daemon("cmail-smtpd", cfg->common, logger, !cfg->common.logfile.empty() && !nodetach);
  if (!store) return 1;
  net::Runtime runtime;
  auto bound = add_smtp_listeners(runtime, *store, cfg->listeners, path,
                                  [&](std::string_view l) { logger.log(1, l); });
  if (!bound) {
    logger.log(0, bound.error().message());
    return 1;
  }
  if (Status st = drop_privileges(nodrop ? "" : cfg->common.user, nodrop ? "" : cfg->common.group); !st.ok()) {
    logger.log(0, "cannot drop privileges: " + st.message());
    return 1;
  }
  for (const BoundListener& b : *bound) std::printf("%s %s:%u\n", b.kind.c_str(), b.host.c_str(), b.port);
  std::fflush(stdout);
  runtime.handle_signals(std::chrono::seconds(10), [&] { logger.reopen(); });
  runtime.run();
  logger.log(1, "stopped");
  return 0;
}
