// cmail-dispatchd CONFIG [nodrop] [nodetach] [deliver DOMAIN | handoff REMOTE | genbounces]:
// outbound delivery (docs/compatibility.md#daemons-command-line).
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/dispatch_service.h"

#include <cmail/net/dispatcher.h>
#include <cmail/net/resolver.h>
#include <cmail/net/runtime.h>
#include <cmail/store/store.h>

#include <cstdio>
#include <string>

using namespace cmail;

namespace {

int usage(const char* argv0) {
  std::printf(
      "cmail-dispatchd - Deliver outbound messages to the next hop\n"
      "Usage: %s <conffile> [nodrop] [nodetach] [deliver <domain> | handoff <remote> | genbounces]\n",
      argv0);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path, mode, target;
  bool nodrop = false, nodetach = false;
  for (int i = 1; i < argc; ++i) {
    std::string w = argv[i];
    if (w == "nodrop") nodrop = true;
    else if (w == "nodetach") nodetach = true;
    else if (w == "genbounces") mode = w;
    else if (w == "deliver" || w == "handoff") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "cmail-dispatchd: Failed to read argument for delivery domain\n");
        return usage(argv[0]);
      }
      mode = w;
      target = argv[++i];
    } else {
      path = w;  // the last other word wins (docs/compatibility.md#daemons-command-line)
    }
  }
  if (path.empty()) return usage(argv[0]);
  auto cfg = daemon::config::load_dispatchd(path);
  if (!cfg) {
    std::fprintf(stderr, "cmail-dispatchd: %s\n", cfg.error().message().c_str());
    return 1;
  }
  daemon::Logger logger(cfg->common.verbosity, cfg->common.logfile);
  // One-shot runs stay in the foreground; the daemon detaches when it logs to a file.
  auto store = daemon::start_daemon("cmail-dispatchd", cfg->common, logger,
                            mode.empty() && !cfg->common.logfile.empty() && !nodetach);
  if (!store) return 1;
  if (Status st = daemon::drop_privileges(nodrop ? "" : cfg->common.user, nodrop ? "" : cfg->common.group); !st.ok()) {
    logger.log(0, "cannot drop privileges: " + st.message());
    return 1;
  }
  net::Runtime runtime;
  net::ResolverOptions ro;
  ro.servers = cfg->resolvers;
  ro.dnssec = cfg->dnssec;  // DANE: docs/tls-policy.md#dane
  auto resolver = net::make_resolver(runtime, ro);
  if (!resolver) {
    logger.log(0, path + ": resolver: " + resolver.error().message());
    return 1;
  }
  net::DispatcherOptions opts = daemon::dispatcher_options(*cfg);
  opts.log = [&](int level, std::string_view line) { logger.log(level, line); };
  auto dispatcher = net::Dispatcher::create(runtime, *store, **resolver, opts);
  if (!dispatcher) {
    logger.log(0, "cannot start delivery: " + dispatcher.error().message());
    return 1;
  }
  net::Dispatcher& d = **dispatcher;
  int rc = 0;
  auto finish = [&](Status st) {
    if (!st.ok()) {
      logger.log(0, st.to_string());
      rc = 1;
    }
    runtime.shutdown(std::chrono::seconds(10));
  };
  runtime.handle_signals(std::chrono::seconds(10), [&] {
    logger.reopen();
    d.run_now();  // SIGHUP: a queue run at once (docs/compatibility.md#daemons-sighup)
  });
  if (mode == "deliver") {
    std::printf("Updating delivery domain to %s\n", target.c_str());
    std::fflush(stdout);
    d.deliver_domain(target, finish);
  } else if (mode == "handoff") {
    d.deliver_remote(target, finish);
  } else if (mode == "genbounces") {
    d.generate_bounces(finish);
  } else {
    logger.log(1, "delivering as " + d.owner());
    d.start();
  }
  runtime.run();
  net::DispatcherStats s = d.stats();
  logger.log(1, "stopped: " + std::to_string(s.delivered) + " delivered, " + std::to_string(s.deferred) +
                    " deferred, " + std::to_string(s.failed) + " failed, " + std::to_string(s.bounces) + " bounces");
  return rc;
}
