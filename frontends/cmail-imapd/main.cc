// cmail-imapd CONFIG [nodrop] [nodetach]: IMAP access to stored mail (docs/imapd.md), with
// cmail-popd's config syntax and command line (docs/compatibility.md#daemons-command-line).
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/imap_service.h"

using namespace cmail;

int main(int argc, char** argv) {
  daemon::config::Imapd cfg;
  std::string path;
  daemon::ListeningDaemon d;
  d.name = "cmail-imapd";
  d.description = "Provide IMAP access to mailboxes";
  d.load = [&](const std::string& p) -> Result<daemon::config::Common> {
    auto c = daemon::config::load_imapd(p);
    if (!c) return c.error();
    cfg = std::move(*c);
    path = p;
    return cfg.common;
  };
  d.listen = [&](net::Runtime& rt, store::Store& store, LogSink log) {
    // This daemon's own guard (docs/logging.md#authentication-penalties).
    auto guard = std::make_shared<backends::AuthGuard>(cfg.auth_guard.value_or(backends::AuthGuardOptions{}));
    return daemon::add_imap_listeners(rt, store, cfg.listeners, path, guard, std::move(log), cfg.max_per_user);
  };
  return daemon::run_listening_daemon(d, argc, argv);
}
