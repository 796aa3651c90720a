// daemon/listeners.h: what the `bind` lines of cmail-smtpd, cmail-popd and cmail-imapd share on the way to a
// runtime listener: the certificate (loaded once per file pair), implicit TLS, the address,
// the per-address limit, and error messages that name the config line.
//
// Thread-safety: used while setting listeners up, on the loop thread.
#pragma once

#include <cmail/net/runtime.h>
#include <cmail/net/tls.h>
#include <cmail/status.h>

#include <memory>
#include <string>

namespace cmail::daemon {

// `Line` is a config::SmtpdListener or config::PopdListener. `where` prefixes errors
// ("FILE:LINE: "); `name` is the listener's kind for the daemons' output ("smtp", "pop3s").
template <typename Line>
Result<net::ListenerOptions> listener_options(const Line& l, net::TlsServerContexts& contexts,
                                              const std::string& where, std::string name) {
  net::ListenerOptions lo;
  if (!l.cert.empty()) {
    auto loaded = contexts.get(l.cert, l.key);
    if (!loaded) return Status::invalid_argument(where + loaded.error().message());
    lo.tls = *loaded;
  }
  lo.host = l.host;
  lo.port = l.port;
  lo.implicit_tls = l.tlsonly;
  lo.max_per_address = l.max_per_address;
  lo.name = std::move(name);
  return lo;
}

}  // namespace cmail::daemon
