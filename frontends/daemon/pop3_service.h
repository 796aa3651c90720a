// daemon/pop3_service.h: cmail-popd's listeners on a Runtime, from cmail's config lines.
//
// Each listener serves pop3::Server engines with StorePop3Session backends (POP3 with STLS
// when the line has a certificate, or POP3S with tlsonly; tlsrequire keeps logins inside TLS).
// Used by cmail-popd and by `cmail serve`. Logins are counted in `guard` (null: none) and lines
// go to `log` with their level, as for add_smtp_listeners.
//
// Thread-safety: call on the Runtime's loop thread before run(). REQUIRES: the Store outlives
// the Runtime's connections.
#pragma once

#include "daemon/config.h"

#include <cmail/backends/auth_guard.h>
#include <cmail/net/runtime.h>
#include <cmail/store/store.h>

#include <memory>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::daemon {

// Adds every listener ("pop3" or "pop3s" in BoundListener::kind); fails (naming the config
// line) if a certificate cannot be loaded or an address cannot be bound.
Result<std::vector<net::BoundListener>> add_pop3_listeners(
    net::Runtime& runtime, store::Store& store, const std::vector<config::PopdListener>& listeners,
    const std::string& config_name, std::shared_ptr<backends::AuthGuard> guard,
    LogSink log);

}  // namespace cmail::daemon
