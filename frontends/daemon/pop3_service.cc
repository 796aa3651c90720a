// cmail-popd's listeners: config lines -> TLS contexts, engine options, store sessions.
#include "daemon/pop3_service.h"

#include "daemon/listeners.h"

#include <cmail/backends/pop3_session.h>
#include <cmail/net/serve.h>
#include <cmail/pop3/server.h>

namespace cmail::daemon {

Result<std::vector<net::BoundListener>> add_pop3_listeners(net::Runtime& rt, store::Store& store,
                                                      const std::vector<config::PopdListener>& listeners,
                                                      const std::string& config_name,
                                                      std::shared_ptr<backends::AuthGuard> guard,
                                                      LogSink log) {
  std::vector<net::BoundListener> bound;
  net::TlsServerContexts contexts;
  for (const config::PopdListener& l : listeners) {
    const std::string where = config_name + ":" + std::to_string(l.line) + ": ";
    auto lo = listener_options(l, contexts, where, l.tlsonly ? "pop3s" : "pop3");
    if (!lo) return lo.error();
    lo->log = log;
    pop3::ServerOptions po;
    po.hostname = l.announce;
    po.starttls_available = lo->tls && !l.tlsonly;
    po.tls_active = l.tlsonly;
    po.tls_required = l.tlsrequire;
    po.scram.enabled = true;  // SCRAM-SHA-256[-PLUS] beside PLAIN and LOGIN (docs/scram.md)
    if (l.timeout) po.idle_timeout = std::chrono::seconds(l.timeout);
    store::Store* st = &store;
    proto::Executor executor = rt.executor();
    auto logger = log;
    auto id = net::serve_pop3(rt, *lo, po, [st, executor, logger, guard](const proto::PeerInfo& peer,
                                                                         net::Completion<pop3::Verdict> done) {
      auto session = std::make_shared<backends::StorePop3Session>(*st, peer, executor, guard);
      if (logger) session->set_logger(logger);
      session->set_completion(std::move(done));
      return session;
    });
    if (!id) return Status::io_error(where + id.error().message());
    bound.push_back({lo->name, l.host, rt.port(*id)});
  }
  return bound;
}

}  // namespace cmail::daemon
