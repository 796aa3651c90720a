// cmail/pop3_service.h: cmail-popd's listeners on a Runtime, from cmail's config lines.
//
// Each listener serves pop3::Server engines with StorePop3Session backends (POP3 with STLS
// when the line has a certificate, or POP3S with tlsonly; tlsrequire keeps logins inside TLS).
// Used by cmail-popd and by `cmail serve`.
//
// Thread-safety: call on the Runtime's loop thread before run(). REQUIRES: the Store outlives
// the Runtime's connections.
#pragma once

#include <cmail/config.h>
#include <cmail/export.h>
#include <cmail/net.h>
#include <cmail/store.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace cmail {

// Adds every listener ("pop3" or "pop3s" in BoundListener::kind); fails (naming the config
// line) if a certificate cannot be loaded or an address cannot be bound.
CMAIL_EXPORT Result<std::vector<BoundListener>> add_pop3_listeners(
    net::Runtime& runtime, Store& store, const std::vector<config::PopdListener>& listeners,
    const std::string& config_name, std::function<void(std::string_view)> log);

}  // namespace cmail
