// cmail-popd's listeners: config lines -> TLS contexts, engine options, store sessions.
#include <cmail/backends/pop3_session.h>

#include "daemon/pop3_service.h"

#include <cmail/pop3/server.h>


namespace cmail::daemon {

Result<std::vector<net::BoundListener>> add_pop3_listeners(net::Runtime& rt, store::Store& store,
                                                      const std::vector<config::PopdListener>& listeners,
                                                      const std::string& config_name,
                                                      std::function<void(std::string_view)> log) {
  std::vector<net::BoundListener> bound;
  net::TlsServerContexts contexts;
  for (const config::PopdListener& l : listeners) {
    const std::string where = config_name + ":" + std::to_string(l.line) + ": ";
    std::shared_ptr<net::TlsServerContext> tls;
    if (!l.cert.empty()) {
      auto loaded = contexts.get(l.cert, l.key);
      if (!loaded) return Status::invalid_argument(where + loaded.error().message());
      tls = *loaded;
    }
    pop3::ServerOptions po;
    po.hostname = l.announce;
    po.starttls_available = tls && !l.tlsonly;
    po.tls_active = l.tlsonly;
    po.tls_required = l.tlsrequire;
    if (l.timeout) po.idle_timeout = std::chrono::seconds(l.timeout);
    net::ListenerOptions lo;
    lo.host = l.host;
    lo.port = l.port;
    lo.implicit_tls = l.tlsonly;
    lo.tls = tls;
    lo.max_per_address = l.max_per_address;
    lo.name = l.tlsonly ? "pop3s" : "pop3";
    store::Store* st = &store;
    net::Runtime* runtime = &rt;
    auto logger = log;
    auto id = rt.listen(lo, [st, runtime, po, logger](const proto::PeerInfo& peer, net::Kick kick) {
      auto session = std::make_shared<backends::StorePop3Session>(*st, peer, runtime->executor());
      if (logger) session->set_logger(logger);
      auto server = std::make_shared<pop3::Server>(po, *session);
      std::weak_ptr<pop3::Server> weak = server;
      session->set_completion([weak, kick](pop3::Verdict v) {
        if (auto s = weak.lock()) {
          (void)s->complete(std::move(v));
          kick();
        }
      });
      return std::make_unique<net::EngineHandler<pop3::Server>>(server, session);
    });
    if (!id) return Status::io_error(where + id.error().message());
    bound.push_back({lo.name, l.host, rt.port(*id)});
  }
  return bound;
}

}  // namespace cmail::daemon
