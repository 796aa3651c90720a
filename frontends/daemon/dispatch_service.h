// daemon/dispatch_service.h: cmail-dispatchd's config file mapped onto the library's
// DispatcherOptions. Used by cmail-dispatchd and by `cmail serve`; not installed.
//
// Thread-safety: pure function.
#pragma once

#include "daemon/config.h"

#include <cmail/net/dispatcher.h>

namespace cmail::daemon {

// The options a cmail-dispatchd config file asks for; `announce` defaults to this host's name.
net::DispatcherOptions dispatcher_options(const config::Dispatchd& cfg);

}  // namespace cmail::daemon
