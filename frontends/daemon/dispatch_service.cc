// cmail-dispatchd's config -> DispatcherOptions. See daemon/dispatch_service.h.
#include "daemon/dispatch_service.h"

#include <algorithm>

namespace cmail::daemon {

net::DispatcherOptions dispatcher_options(const config::Dispatchd& cfg) {
  net::DispatcherOptions o;
  o.announce = cfg.announce.empty() ? net::host_name() : cfg.announce;
  o.portprio = cfg.portprio;
  o.retry = cfg.retry;
  o.interval = std::chrono::seconds(cfg.interval);
  o.bounce_from = cfg.bounce_from;
  o.bounce_copy = cfg.bounce_copy;
  o.bind = cfg.bind;
  o.ratelimit = cfg.ratelimit;
  o.max_connections = cfg.max_connections;
  o.max_per_destination = cfg.max_per_destination;
  o.verify = cfg.tls_verify;
  if (!cfg.tls_trustfile.empty()) o.ca_file = cfg.tls_trustfile;
  o.plaintext_auth = cfg.plaintext_auth;
  o.mta_sts = cfg.mta_sts;
  o.mta_sts_port = cfg.mta_sts_port;
  o.reply_timeout = std::chrono::seconds(cfg.timeout);
  if (cfg.timeout) o.connect_timeout = std::min<std::chrono::milliseconds>(o.connect_timeout, o.reply_timeout);
  return o;
}

}  // namespace cmail::daemon
