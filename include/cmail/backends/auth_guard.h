// cmail/backends/auth_guard.h: failed log-ins counted across connections and protocols, so that
// password guessing is slowed and then refused (docs/logging.md#authentication-penalties).
//
// One AuthGuard serves every listener of a process that should share what it learns (`cmail
// serve` gives its SMTP and POP3 listeners one; cmail-smtpd and cmail-popd each have their own).
// The Sessions ask it around each password check (StoreSmtpSession::auth, StorePop3Session::login):
//
//   admit(addr, user)     before the check: refused (answer at once, check nothing: no argon2
//                         work for a guesser), or how long to wait before checking
//   failed(addr, user)    after bad credentials: counts them; returns how much longer to wait
//                         before the failure reply
//   succeeded(addr, user) after good credentials: forgets what that pair failed
//
// What is counted: failures per client address, per (address, user name) and per user name.
// An address is an IPv4 address, or an IPv6 address's /64 prefix (one host, or one site's LAN,
// usually holds a whole /64). User names are compared in ASCII lower case.
//   - The wait before a check grows with the address's failures: none while it has none, then
//     `delay` and doubling with each further failure up to `max_delay` (as Dovecot's auth
//     penalty). It comes before the check so that a guesser cannot hang up early to skip it,
//     and it applies to good passwords from that address too.
//   - Refused, until `forget` after the last failure: an address with `address_failures`
//     failures, and a user name from one address with `user_failures` (0: never).
//   - The user name's failures from every address only lengthen the wait before a failure
//     reply (after the check, by the same doubling), never refuse and never delay a success: a
//     guesser cannot lock a user out, or slow the user's own log-ins from another address.
//   - A success removes the failures of that (address, user name) pair from all three counts;
//     the address keeps what it failed for other user names.
// Memory is bounded: at most `max_entries` counters (a few hundred octets each); a counter is
// dropped `forget` after its last failure, and when the table is full the least recently
// failed one goes, so that a guesser cycling addresses or user names cannot grow it.
//
// Thread-safety: every member function may be called from any thread (one mutex); the guard
// does no I/O and never waits: the caller waits, with a timer (proto::Executor::post_after).
// Time comes in as an argument (steady_clock by default) so that tests need not sleep.
#pragma once

#include <cmail/backends/log_line.h>
#include <cmail/export.h>
#include <cmail/proto/transport.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace cmail::backends {

struct AuthGuardOptions {
  bool enabled = true;                            // false: admit everyone at once, count nothing
  std::chrono::milliseconds delay{250};           // the wait after an address's first failure
  std::chrono::milliseconds max_delay{15000};     // the longest wait
  std::uint32_t address_failures = 20;            // then the address is refused (0: never)
  std::uint32_t user_failures = 10;               // then the user name from that address (0: never)
  std::chrono::seconds forget{600};               // after the last failure: counts and refusals end
  std::size_t max_entries = 10000;                // counters kept at most
};

class CMAIL_EXPORT AuthGuard {
 public:
  using Clock = std::chrono::steady_clock;

  enum class Refusal { None, Address, User };
  struct Admission {
    Refusal refused = Refusal::None;           // not None: answer with a temporary failure now
    std::chrono::milliseconds wait{0};         // else: wait this long, then check
  };

  explicit AuthGuard(AuthGuardOptions options = {});

  Admission admit(std::string_view address, std::string_view user, Clock::time_point now = Clock::now());
  std::chrono::milliseconds failed(std::string_view address, std::string_view user,
                                   Clock::time_point now = Clock::now());
  void succeeded(std::string_view address, std::string_view user, Clock::time_point now = Clock::now());

  const AuthGuardOptions& options() const { return options_; }
  // Counters held now (for tests and the bound above).
  std::size_t entries() const;

  // The counted form of an address: IPv4 as written (an IPv4-mapped IPv6 address too), IPv6 as
  // its /64 prefix ("2001:db8:1:2::/64"), anything else as given.
  static std::string address_key(std::string_view address);

 private:
  struct Entry {
    std::uint32_t failures = 0;
    Clock::time_point last;
    std::list<const std::string*>::iterator order;  // in order_
  };
  std::uint32_t count(const std::string& key, Clock::time_point now);  // 0 when absent or forgotten
  std::uint32_t bump(const std::string& key, Clock::time_point now);   // returns the count before
  void subtract(const std::string& key, std::uint32_t n);
  void erase(std::unordered_map<std::string, Entry>::iterator it);
  std::chrono::milliseconds wait_for(std::uint32_t failures) const;

  AuthGuardOptions options_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> table_;
  std::list<const std::string*> order_;  // keys of table_, most recently failed first
};

// "address" or "user": what a refusal counted (the scope= of the "auth blocked" line).
CMAIL_EXPORT std::string_view to_string(AuthGuard::Refusal r);

// The start of every authentication log line (docs/logging.md):
// "auth failed proto=smtp addr=192.0.2.7 user=alice". Never add the password.
CMAIL_EXPORT LogLine auth_log(std::string_view event, std::string_view proto, std::string_view address,
                              std::string_view user);

// One log-in attempt put to the guard (null: admitted at once). A refusal is logged here, at
// level 0, as one "auth blocked" line with reason= and scope=; the caller then answers with its
// protocol's temporary refusal and checks nothing.
CMAIL_EXPORT AuthGuard::Admission admit_attempt(AuthGuard* guard, std::string_view proto, std::string_view address,
                                                std::string_view user,
                                                const std::function<void(int, std::string_view)>& logger);

// Runs fn on the loop thread after `wait` with ex.post_after, or at once (on the calling thread,
// which must then be the loop's) when the wait is zero or the Executor has no post_after.
CMAIL_EXPORT void run_after(const proto::Executor& ex, std::chrono::milliseconds wait, std::function<void()> fn);

}  // namespace cmail::backends
