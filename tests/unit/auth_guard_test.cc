// The AuthGuard (cmail/backends/auth_guard.h) and the log line format (cmail/backends/log_line.h),
// with the clock given: no test sleeps.
#include <cmail/backends/auth_guard.h>
#include <cmail/backends/log_line.h>

#include <doctest/doctest.h>

using namespace cmail;
using backends::AuthGuard;
using namespace std::chrono_literals;

namespace {

backends::AuthGuardOptions small() {
  backends::AuthGuardOptions o;
  o.delay = 100ms;
  o.max_delay = 1000ms;
  o.address_failures = 6;
  o.user_failures = 4;
  o.forget = 60s;
  o.max_entries = 100;
  return o;
}

const AuthGuard::Clock::time_point t0{};

}  // namespace

TEST_CASE("auth guard: the wait before a check doubles with the address's failures, up to the cap") {
  AuthGuard g(small());
  std::vector<long> waits;
  for (int i = 0; i < 6; ++i) {
    auto a = g.admit("192.0.2.7", "user" + std::to_string(i), t0);  // other names: no pair limit
    REQUIRE(a.refused == AuthGuard::Refusal::None);
    waits.push_back(static_cast<long>(a.wait.count()));
    CHECK(g.failed("192.0.2.7", "user" + std::to_string(i), t0) == 0ms);  // nothing more per user
  }
  CHECK(waits == std::vector<long>{0, 100, 200, 400, 800, 1000});
}

TEST_CASE("auth guard: past the thresholds the address, or the pair, is refused; others are not") {
  AuthGuard g(small());
  for (int i = 0; i < 4; ++i) g.failed("192.0.2.7", "alice", t0);
  // The pair: alice from .7 is refused, bob from .7 only waits, alice from elsewhere is untouched.
  CHECK(g.admit("192.0.2.7", "alice", t0).refused == AuthGuard::Refusal::User);
  CHECK(g.admit("192.0.2.7", "ALICE", t0).refused == AuthGuard::Refusal::User);  // names in any case
  CHECK(g.admit("192.0.2.7", "bob", t0).refused == AuthGuard::Refusal::None);
  const auto elsewhere = g.admit("198.51.100.1", "alice", t0);
  CHECK(elsewhere.refused == AuthGuard::Refusal::None);
  CHECK(elsewhere.wait == 0ms);
  // Two more failures for other names: the whole address is refused, for every name.
  g.failed("192.0.2.7", "bob", t0);
  g.failed("192.0.2.7", "carol", t0);
  CHECK(g.admit("192.0.2.7", "dave", t0).refused == AuthGuard::Refusal::Address);
  CHECK(g.admit("198.51.100.1", "alice", t0).refused == AuthGuard::Refusal::None);
  CHECK(backends::to_string(AuthGuard::Refusal::Address) == "address");
}

TEST_CASE("auth guard: a user name's failures from many addresses delay failure replies, never refuse or delay a success") {
  AuthGuard g(small());
  for (int i = 0; i < 8; ++i) g.failed("192.0.2." + std::to_string(i), "alice", t0);
  // From a new address: no wait before the check, no refusal (a success goes through at once)...
  const auto a = g.admit("203.0.113.5", "alice", t0);
  CHECK(a.refused == AuthGuard::Refusal::None);
  CHECK(a.wait == 0ms);
  // ...but a failure's reply waits for the name's 8 failures (capped).
  CHECK(g.failed("203.0.113.5", "alice", t0) == 1000ms);
}

TEST_CASE("auth guard: counts are forgotten after `forget`, and so are refusals") {
  AuthGuard g(small());
  for (int i = 0; i < 6; ++i) g.failed("192.0.2.7", "u" + std::to_string(i), t0);
  CHECK(g.admit("192.0.2.7", "x", t0 + 59s).refused == AuthGuard::Refusal::Address);
  const auto later = g.admit("192.0.2.7", "x", t0 + 60s);
  CHECK(later.refused == AuthGuard::Refusal::None);
  CHECK(later.wait == 0ms);
}

TEST_CASE("auth guard: a success clears that pair's failures, not the address's others") {
  AuthGuard g(small());
  g.failed("192.0.2.7", "alice", t0);
  g.failed("192.0.2.7", "alice", t0);
  g.failed("192.0.2.7", "mallory", t0);
  CHECK(g.admit("192.0.2.7", "alice", t0).wait == 400ms);  // 3 failures from the address
  g.succeeded("192.0.2.7", "Alice", t0);
  CHECK(g.admit("192.0.2.7", "alice", t0).wait == 100ms);  // mallory's one is left
  g.failed("192.0.2.7", "x", t0);
  CHECK(g.admit("192.0.2.7", "alice", t0).wait == 200ms);  // two again: mallory's survived
  // The pair is clean: four more alice failures are needed to refuse it, not two.
  for (int i = 0; i < 3; ++i) g.failed("192.0.2.7", "alice", t0);
  CHECK(g.admit("192.0.2.7", "alice", t0).refused == AuthGuard::Refusal::None);
}

TEST_CASE("auth guard: the table is bounded; the least recently failed counters go first") {
  auto o = small();
  o.max_entries = 30;
  AuthGuard g(o);
  // A guesser cycling addresses and names: 3 counters each, never more than the cap.
  for (int i = 0; i < 1000; ++i) {
    g.failed("10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250), "n" + std::to_string(i), t0 + std::chrono::seconds(i / 100));
    REQUIRE(g.entries() <= 30);
  }
  // The address failing now is still counted (it was refreshed last), an early one is gone.
  for (int i = 0; i < 5; ++i) g.failed("192.0.2.7", "n" + std::to_string(i), t0 + 20s);
  CHECK(g.admit("192.0.2.7", "z", t0 + 20s).wait == 1000ms);
  CHECK(g.admit("10.0.0.0", "z", t0 + 20s).wait == 0ms);
  // Forgotten counters make room before live ones are evicted.
  CHECK(g.entries() <= 30);
}

TEST_CASE("auth guard: IPv6 counts by /64; IPv4-mapped addresses as IPv4; off counts nothing") {
  CHECK(AuthGuard::address_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64");
  CHECK(AuthGuard::address_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64");
  CHECK(AuthGuard::address_key("2001:db8:1:3::1") == "2001:db8:1:3::/64");
  CHECK(AuthGuard::address_key("::ffff:192.0.2.7") == "192.0.2.7");
  CHECK(AuthGuard::address_key("192.0.2.7") == "192.0.2.7");
  AuthGuard g(small());
  for (int i = 0; i < 6; ++i) g.failed("2001:db8:1:2::" + std::to_string(i + 1), "u" + std::to_string(i), t0);
  CHECK(g.admit("2001:db8:1:2:ffff::1", "x", t0).refused == AuthGuard::Refusal::Address);
  CHECK(g.admit("2001:db8:1:3::1", "x", t0).refused == AuthGuard::Refusal::None);

  auto o = small();
  o.enabled = false;
  AuthGuard off(o);
  for (int i = 0; i < 50; ++i) CHECK(off.failed("192.0.2.7", "alice", t0) == 0ms);
  CHECK(off.admit("192.0.2.7", "alice", t0).refused == AuthGuard::Refusal::None);
  CHECK(off.entries() == 0);
}

TEST_CASE("log lines: bare values, quoted values, no way to forge a field or a line") {
  using backends::LogLine;
  CHECK(backends::auth_log("auth failed", "smtp", "192.0.2.7", "alice").add("reason", "bad-credentials").str() ==
        "auth failed proto=smtp addr=192.0.2.7 user=alice reason=bad-credentials");
  CHECK(LogLine("x").add("user", "a b").str() == "x user=\"a b\"");
  CHECK(LogLine("x").add("user", "").str() == "x user=\"\"");
  CHECK(LogLine("x").add("user", "e\"vil\\ addr=1.2.3.4").str() == "x user=\"e\\\"vil\\\\ addr=1.2.3.4\"");
  CHECK(LogLine("x").add("user", "a=b").str() == "x user=\"a=b\"");
  CHECK(LogLine("x").add("user", "l1\r\nauth failed").str() == "x user=\"l1\\x0d\\x0aauth failed\"");
  CHECK(LogLine("x").add("user", "j\xc3\xb6rg").str() == "x user=\"j\\xc3\\xb6rg\"");
  CHECK(LogLine("x").add("n", std::uint64_t{42}).add("d", 1250ms).add("z", 7ms).str() == "x n=42 d=1.250s z=0.007s");
}
