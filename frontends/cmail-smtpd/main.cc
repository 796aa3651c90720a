// cmail-smtpd CONFIG [nodrop] [nodetach]: SMTP intake and submission
// (docs/compatibility.md#daemons-command-line).
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/smtp_service.h"

#include <cmail/net/resolver.h>

using namespace cmail;

int main(int argc, char** argv) {
  daemon::config::Smtpd cfg;
  std::string path;
  std::unique_ptr<mail::Resolver> resolver;  // the intake checks' (docs/smtp.md#spf-on-intake)
  daemon::ListeningDaemon d;
  d.name = "cmail-smtpd";
  d.description = "Accept incoming mail";
  d.load = [&](const std::string& p) -> Result<daemon::config::Common> {
    auto c = daemon::config::load_smtpd(p);
    if (!c) return c.error();
    cfg = std::move(*c);
    path = p;
    return cfg.common;
  };
  d.listen = [&](net::Runtime& rt, store::Store& store, LogSink log) -> Result<std::vector<net::BoundListener>> {
    if (cfg.auth_checks) {  // the `resolver` lines' name servers, else the system's
      net::ResolverOptions ro;
      ro.servers = cfg.resolvers;
      auto r = net::make_resolver(rt, ro);
      if (!r) return Status::internal(path + ": resolver: " + r.error().message());
      resolver = std::move(*r);
    }
    // This daemon's own guard (docs/logging.md#authentication-penalties).
    auto guard = std::make_shared<backends::AuthGuard>(cfg.auth_guard.value_or(backends::AuthGuardOptions{}));
    return daemon::add_smtp_listeners(rt, store, cfg.listeners, path, guard, std::move(log), cfg.max_in_flight,
                                      resolver.get());
  };
  d.stopped = [&] { resolver.reset(); };  // before the Runtime it lives on
  return daemon::run_listening_daemon(d, argc, argv);
}
