// cmail-smtpd CONFIG [nodrop] [nodetach]: SMTP intake and submission (spec 2.1, 8).
#include <cmail/config.h>
#include <cmail/daemon.h>
#include <cmail/smtp_service.h>

using namespace cmail;

int main(int argc, char** argv) {
  config::Smtpd cfg;
  std::string path;
  ListeningDaemon d;
  d.name = "cmail-smtpd";
  d.description = "Accept incoming mail";
  d.load = [&](const std::string& p) -> Result<config::Common> {
    auto c = config::load_smtpd(p);
    if (!c) return c.error();
    cfg = std::move(*c);
    path = p;
    return cfg.common;
  };
  d.listen = [&](net::Runtime& rt, Store& store, std::function<void(std::string_view)> log) {
    return add_smtp_listeners(rt, store, cfg.listeners, path, std::move(log));
  };
  return run_listening_daemon(d, argc, argv);
}
