// cmail/process.h: names for this process that stay unique across restarts and reboots, so that
// a lock or lease left behind by a process that died can be recognised and taken over.
//
// A token is "PREFIX:HOST:BOOT:PID:START": the host name, the kernel's boot id
// (/proc/sys/kernel/random/boot_id), the pid and the process's start time in clock ticks since
// boot (/proc/PID/stat field 22, so a reused pid is told apart).
//
// Thread-safety: pure functions over /proc.
#pragma once

#include <cmail/export.h>

#include <string>
#include <string_view>

namespace cmail {

CMAIL_EXPORT std::string process_token(std::string_view prefix);
// True when `token` was made on this host by a process that no longer runs, or during an
// earlier boot. False for tokens of other hosts, of live processes, and for text that is not a
// token (a holder we cannot judge is assumed alive).
CMAIL_EXPORT bool process_token_dead(std::string_view token);

}  // namespace cmail
