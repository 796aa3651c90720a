// cmail-smtpd's listeners: config lines -> TLS contexts, server options, store sessions.
#include <cmail/backends/smtp_session.h>

#include "daemon/smtp_service.h"

#include <cmail/smtp/server.h>


namespace cmail::daemon {

Result<std::vector<net::BoundListener>> add_smtp_listeners(net::Runtime& rt, store::Store& store,
                                                      const std::vector<config::SmtpdListener>& listeners,
                                                      const std::string& config_name,
                                                      std::function<void(std::string_view)> log) {
  std::vector<net::BoundListener> bound;
  net::TlsServerContexts contexts;
  for (const config::SmtpdListener& l : listeners) {
    const std::string where = config_name + ":" + std::to_string(l.line) + ": ";
    std::shared_ptr<net::TlsServerContext> tls;
    if (!l.cert.empty()) {
      auto loaded = contexts.get(l.cert, l.key);
      if (!loaded) return Status::invalid_argument(where + loaded.error().message());
      tls = *loaded;
    }
    smtp::ServerOptions so;
    so.hostname = l.announce;
    if (l.size) so.max_message_size = *l.size;  // else the engine's default limit
    so.starttls_available = tls && !l.tlsonly;
    so.tls_active = l.tlsonly;
    so.auth_enabled = l.auth;
    so.auth_requires_tls = l.auth_tlsonly;
    so.require_auth = l.auth_strict;
    so.authenticated_user = l.fixed_user;
    if (l.timeout) so.command_timeout = so.data_timeout = std::chrono::seconds(l.timeout);
    backends::SmtpBackendOptions bo;
    bo.hostname = l.announce;
    bo.private_received = l.auth_private;
    net::ListenerOptions lo;
    lo.host = l.host;
    lo.port = l.port;
    lo.implicit_tls = l.tlsonly;
    lo.tls = tls;
    lo.max_per_address = l.max_per_address;
    lo.name = l.tlsonly ? "smtps" : l.auth_strict ? "submission" : "smtp";
    store::Store* st = &store;
    net::Runtime* runtime = &rt;
    auto logger = log;
    auto id = rt.listen(lo, [st, runtime, so, bo, logger](const proto::PeerInfo& peer, net::Kick kick) {
      auto session = std::make_shared<backends::StoreSmtpSession>(*st, bo, peer, runtime->executor());
      if (logger) session->set_logger(logger);
      auto server = std::make_shared<smtp::Server>(so, *session);
      std::weak_ptr<smtp::Server> weak = server;
      session->set_completion([weak, kick](smtp::Verdict v) {
        if (auto s = weak.lock()) {
          (void)s->complete(std::move(v));
          kick();
        }
      });
      return std::make_unique<net::EngineHandler<smtp::Server>>(server, session);
    });
    if (!id) return Status::io_error(where + id.error().message());
    bound.push_back({lo.name, l.host, rt.port(*id)});
  }
  return bound;
}

}  // namespace cmail::daemon
