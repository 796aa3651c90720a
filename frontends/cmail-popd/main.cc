// cmail-popd CONFIG [nodrop] [nodetach]: POP3 access to stored mail (spec 2.1, 10).
#include <cmail/config.h>
#include <cmail/daemon.h>
#include <cmail/net.h>
#include <cmail/pop3_service.h>
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
    std::printf("cmail-popd - Provide POP3 access to mailboxes\nUsage: %s <conffile> [nodrop] [nodetach]\n", argv[0]);
    return 1;
  }
  auto cfg = config::load_popd(path);
  if (!cfg) {
    std::fprintf(stderr, "cmail-popd: %s\n", cfg.error().message().c_str());
    return 1;
  }
  Logger logger(cfg->common.verbosity, cfg->common.logfile);
  if (Status st = logger.open(); !st.ok()) {
    std::fprintf(stderr, "cmail-popd: %s\n", st.message().c_str());
    return 1;
  }
  const bool background = !cfg->common.logfile.empty() && !nodetach;
  if (background) {
    if (Status st = detach(cfg->common.pidfile); !st.ok()) return 1;
    logger.set_foreground(false);
  } else if (Status st = write_pidfile(cfg->common.pidfile); !st.ok()) {
    std::fprintf(stderr, "cmail-popd: %s\n", st.message().c_str());
    return 1;
  }
  StoreOptions so;
  so.logger = [&](const std::string& l) { logger.log(0, l); };
  auto store = Store::open(cfg->common.database, so);
  if (!store) {
    logger.log(0, "cannot use the database: " + store.error().message());
    return 1;
  }
  net::Runtime runtime;
  auto bound = add_pop3_listeners(runtime, **store, cfg->listeners, path,
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
