// cmail-smtpd's listeners: config lines -> TLS contexts, server options, store sessions.
#include "daemon/smtp_service.h"

#include "daemon/listeners.h"

#include <cmail/backends/smtp_session.h>
#include <cmail/net/serve.h>
#include <cmail/smtp/server.h>

namespace cmail::daemon {

Result<std::vector<net::BoundListener>> add_smtp_listeners(net::Runtime& rt, store::Store& store,
                                                      const std::vector<config::SmtpdListener>& listeners,
                                                      const std::string& config_name,
                                                      std::shared_ptr<backends::AuthGuard> guard,
                                                      LogSink log,
                                                      std::uint64_t max_in_flight,
                                                      mail::Resolver* resolver) {
  std::vector<net::BoundListener> bound;
  auto budget = max_in_flight ? std::make_shared<backends::DataBudget>(max_in_flight) : nullptr;
  net::TlsServerContexts contexts;
  for (const config::SmtpdListener& l : listeners) {
    const std::string where = config_name + ":" + std::to_string(l.line) + ": ";
    auto lo = listener_options(l, contexts, where, l.tlsonly ? "smtps" : l.auth_strict ? "submission" : "smtp");
    if (!lo) return lo.error();
    lo->log = log;
    smtp::ServerOptions so;
    so.hostname = l.announce;
    if (l.size) so.max_message_size = *l.size;  // else the engine's default limit
    so.starttls_available = lo->tls && !l.tlsonly;
    so.tls_active = l.tlsonly;
    so.auth_enabled = l.auth;
    so.auth_requires_tls = l.auth_tlsonly;
    so.require_auth = l.auth_strict;
    so.authenticated_user = l.fixed_user;
    so.strict_envelopes = l.strict;
    so.scram.enabled = true;  // SCRAM-SHA-256[-PLUS] beside PLAIN and LOGIN (docs/scram.md)
    if (l.timeout) so.command_timeout = so.data_timeout = std::chrono::seconds(l.timeout);
    if (l.min_data_rate) so.min_data_rate = *l.min_data_rate;
    backends::SmtpBackendOptions bo;
    bo.hostname = l.announce;
    bo.private_received = l.auth_private;
    bo.budget = budget;
    bo.auth_guard = guard;
    bo.resolver = resolver;
    bo.dmarc_enforce = l.dmarc_enforce;
    store::Store* st = &store;
    proto::Executor executor = rt.executor();
    auto logger = log;
    auto id = net::serve_smtp(rt, *lo, so, [st, executor, bo, logger](const proto::PeerInfo& peer,
                                                                      net::Completion<smtp::Verdict> done) {
      auto session = std::make_shared<backends::StoreSmtpSession>(*st, bo, peer, executor);
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
