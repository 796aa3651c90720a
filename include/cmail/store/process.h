// cmail/store/process.h: who this process is, in a form that stays unique across restarts and
// reboots, so that a lock or lease left behind by a process that died can be recognised and
// taken over (POP3 maildrop locks, the dispatcher's queue leases).
//
// A process is named by the host name, the kernel's boot id (/proc/sys/kernel/random/boot_id),
// its pid and its start time in clock ticks since boot (/proc/PID/stat field 22, so that a
// reused pid is told apart). The dispatcher's lease owners are tokens of that:
// "PREFIX:HOST:BOOT:PID:START".
//
// Thread-safety: pure functions over /proc; this_process() is computed once.
#pragma once

#include <cmail/export.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cmail::store {

struct ProcessIdentity {
  std::string host;
  std::string boot_id;
  std::int64_t pid = 0;
  std::uint64_t start_time = 0;  // /proc/PID/stat field 22, clock ticks since boot
};

CMAIL_EXPORT const ProcessIdentity& this_process();
// The start time of a running process; nullopt when there is none with that pid.
CMAIL_EXPORT std::optional<std::uint64_t> process_start_time(std::int64_t pid);
// True when `p` ran on this host and is certainly gone: an earlier boot, no process with its
// pid, or one that started at another time (the pid was reused). False for other hosts, whose
// processes cannot be seen from here.
CMAIL_EXPORT bool process_gone(const ProcessIdentity& p);

CMAIL_EXPORT std::string process_token(std::string_view prefix);
// process_gone() for a token; false for text that is not a token (a holder we cannot judge is
// assumed alive).
CMAIL_EXPORT bool process_token_dead(std::string_view token);

}  // namespace cmail::store
