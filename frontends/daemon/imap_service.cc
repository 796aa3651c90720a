// cmail-imapd's listeners: config lines -> TLS contexts, engine options, store sessions.
#include "daemon/imap_service.h"

#include "daemon/listeners.h"

#include <cmail/backends/imap_session.h>
#include <cmail/imap/server.h>
#include <cmail/net/serve.h>

namespace cmail::daemon {

Result<std::vector<net::BoundListener>> add_imap_listeners(net::Runtime& rt, store::Store& store,
                                                           const std::vector<config::ImapdListener>& listeners,
                                                           const std::string& config_name,
                                                           std::shared_ptr<backends::AuthGuard> guard, LogSink log,
                                                           std::uint32_t max_per_user) {
  std::vector<net::BoundListener> bound;
  auto limit = backends::SessionLimit::create(max_per_user);  // shared by every listener
  net::TlsServerContexts contexts;
  for (const config::ImapdListener& l : listeners) {
    const std::string where = config_name + ":" + std::to_string(l.line) + ": ";
    auto lo = listener_options(l, contexts, where, l.tlsonly ? "imaps" : "imap");
    if (!lo) return lo.error();
    lo->log = log;
    imap::ServerOptions io;
    io.hostname = l.announce;
    io.starttls_available = lo->tls && !l.tlsonly;
    io.tls_active = l.tlsonly;
    io.tls_required = l.tlsrequire;
    io.scram.enabled = true;  // SCRAM-SHA-256[-PLUS] beside PLAIN and LOGIN (docs/scram.md)
    if (l.timeout) io.idle_timeout = std::chrono::seconds(l.timeout);  // else the engine's 30 minutes
    store::Store* st = &store;
    proto::Executor executor = rt.executor();
    auto id = net::serve_imap(rt, *lo, io, [st, executor, log, guard, limit](const proto::PeerInfo& peer,
                                                                             net::Completion<imap::Verdict> done) {
      auto session = std::make_shared<backends::StoreImapSession>(*st, peer, executor, guard);
      if (log) session->set_logger(log);
      if (limit->max() != 0) session->set_session_limit(limit);
      session->set_completion(std::move(done));
      return session;
    }, store::notify_path(store.path()));  // changes from every process reach IDLE at once
    if (!id) return Status::io_error(where + id.error().message());
    bound.push_back({lo->name, l.host, rt.port(*id)});
  }
  return bound;
}

}  // namespace cmail::daemon
