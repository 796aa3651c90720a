// cmail-popd CONFIG [nodrop] [nodetach]: POP3 access to stored mail (spec 2.1, 10).
#include <cmail/config.h>
#include <cmail/daemon.h>
#include <cmail/pop3_service.h>

using namespace cmail;

int main(int argc, char** argv) {
  config::Popd cfg;
  std::string path;
  ListeningDaemon d;
  d.name = "cmail-popd";
  d.description = "Provide POP3 access to mailboxes";
  d.load = [&](const std::string& p) -> Result<config::Common> {
    auto c = config::load_popd(p);
    if (!c) return c.error();
    cfg = std::move(*c);
    path = p;
    return cfg.common;
  };
  d.listen = [&](net::Runtime& rt, Store& store, std::function<void(std::string_view)> log) {
    return add_pop3_listeners(rt, store, cfg.listeners, path, std::move(log));
  };
  return run_listening_daemon(d, argc, argv);
}
