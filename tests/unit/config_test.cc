#include "daemon/config.h"

#include <doctest/doctest.h>

using namespace cmail;

// The original's example file, unchanged (docs/compatibility.md#config-example-files).
TEST_CASE("config: cmail's shipped smtpd.conf parses") {
  const char* text = R"(# cmail-smtpd configuration
verbosity 3
logfile /var/log/cmail/smtpd.log
pidfile /var/run/cmail-smtpd.pid
bind * 25 announce=mx.example.test size=5242880 cert=/etc/cmail/keys/c.pem key=/etc/cmail/keys/k.pem ciphers=NORMAL:%LATEST_RECORD_VERSION:-VERS-SSL3.0
bind :: 25 announce=mx.example.test size=5242880 #cert=/x key=/y
bind * 465 tlsonly size=5242880 announce=mx.example.test cert=/c key=/k
bind * 587 auth=tlsonly,strict size=5242880 announce=mx.example.test cert=/c key=/k
bind 127.0.0.1 2525 auth=fixed@cbdev,private
user cmail
group cmail
database /etc/cmail/databases/master.db3
)";
  auto c = daemon::config::parse_smtpd(text, "smtpd.conf");
  REQUIRE_MESSAGE(c.has_value(), c.error().to_string());
  CHECK(c->common.verbosity == 3);
  CHECK(c->common.database == "/etc/cmail/databases/master.db3");
  REQUIRE(c->listeners.size() == 5);
  CHECK(c->listeners[0].port == 25);
  CHECK(c->listeners[0].size == std::optional<std::uint64_t>(5242880));
  CHECK_FALSE(c->listeners[4].size.has_value());  // no size=: the engine's default limit applies
  CHECK(c->listeners[0].cert == "/etc/cmail/keys/c.pem");
  CHECK(c->listeners[1].host == "::");
  CHECK(c->listeners[1].cert.empty());  // commented out mid-line
  CHECK(c->listeners[2].tlsonly);
  CHECK(c->listeners[3].auth);
  CHECK(c->listeners[3].auth_tlsonly);
  CHECK(c->listeners[3].auth_strict);
  CHECK(c->listeners[4].fixed_user == std::optional<std::string>("cbdev"));
  CHECK(c->listeners[4].auth_private);
  CHECK(c->listeners[4].auth_strict);
  CHECK(c->listeners[4].line == 9);
  auto ext = daemon::config::parse_smtpd("database /x\nbind ::1 0 timeout=30 maxperip=200\n", "e");
  REQUIRE(ext.has_value());
  CHECK(ext->listeners[0].timeout == 30);
  CHECK_FALSE(ext->listeners[0].min_data_rate.has_value());
  auto rate = daemon::config::parse_smtpd("database /x\nbind ::1 0 mindatarate=2000\nbind ::1 0 mindatarate=0\n", "e");
  REQUIRE(rate.has_value());
  CHECK(rate->listeners[0].min_data_rate == std::optional<std::uint32_t>(2000));
  CHECK(rate->listeners[1].min_data_rate == std::optional<std::uint32_t>(0));
  auto dmarc = daemon::config::parse_smtpd("database /x\nbind ::1 0 dmarc=enforce\nbind ::1 0 dmarc=report\nbind ::1 0\n", "e");
  REQUIRE(dmarc.has_value());
  CHECK(dmarc->listeners[0].dmarc_enforce == std::optional<bool>(true));
  CHECK(dmarc->listeners[1].dmarc_enforce == std::optional<bool>(false));
  CHECK_FALSE(dmarc->listeners[2].dmarc_enforce.has_value());
  CHECK(ext->listeners[0].max_per_address == 200);
  CHECK(ext->listeners[0].port == 0);
  // No trailing user/group needed (docs/compatibility.md#config-the-errno-quirk).
  CHECK(daemon::config::parse_smtpd("bind 127.0.0.1 smtp\ndatabase /x\n", "a").has_value());
  CHECK(daemon::config::parse_smtpd("bind 127.0.0.1 smtp\ndatabase /x\n", "a")->listeners[0].port == 25);
}

TEST_CASE("config: smtpd's resolver lines and auth_checks (docs/smtp.md#spf-on-intake)") {
  auto c = daemon::config::parse_smtpd("database /x\nresolver 127.0.0.1:5353\nresolver [::1]:53\nresolver ::1\nbind * 25\n", "s");
  REQUIRE_MESSAGE(c.has_value(), c.error().to_string());
  CHECK(c->resolvers == std::vector<std::string>{"127.0.0.1:5353", "[::1]:53", "::1"});
  CHECK(c->auth_checks);  // on by default: the system's resolver when no line names one
  auto none = daemon::config::parse_smtpd("database /x\nbind * 25\n", "s");
  REQUIRE(none.has_value());
  CHECK(none->resolvers.empty());
  CHECK(none->auth_checks);
  auto off = daemon::config::parse_smtpd("database /x\nauth_checks off\nbind * 25\n", "s");
  REQUIRE(off.has_value());
  CHECK_FALSE(off->auth_checks);
  auto on = daemon::config::parse_smtpd("database /x\nauth_checks on\nbind * 25\n", "s");
  REQUIRE(on.has_value());
  CHECK(on->auth_checks);
}

TEST_CASE("config: every bad line is reported with file and line") {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {"database /x\nbindx * 25\n", "f.conf:2: unknown directive 'bindx'"},
      {"database /x\nbind * 25 sise=100\n", "f.conf:2: unknown bind option 'sise=100'"},
      {"database /x\nbind * 25 size=lots\n", "f.conf:2: size must be a number of octets"},
      {"database /x\nbind * 99999\n", "f.conf:2: '99999' is not a port number or service name"},
      {"database /x\nbind *\n", "f.conf:2: usage: bind HOST PORT [options]"},
      {"database /x\nbind * 465 tlsonly\n", "f.conf:2: TLS needs both cert= and key="},
      {"database /x\nbind * 25 cert=/c\n", "f.conf:2: TLS needs both cert= and key="},
      {"database /x\nbind * 25 auth=tlsonly,sloppy\n", "f.conf:2: unknown auth option 'sloppy'"},
      {"database /x\ndatabase /y\nbind * 25\n", "f.conf:2: a second 'database' directive"},
      {"verbosity 9\n", "f.conf:1: verbosity must be a number from 0 to 4"},
      {"\n\n# only comments\nbind * 25\n", "f.conf: no 'database' directive"},
      {"database /x\n", "f.conf: no 'bind' directive"},
      {"database /x\nbind * 25 timeout=0\n", "f.conf:2: timeout must be a positive number"},
      {"database /x\nbind * 25 mindatarate=fast\n", "f.conf:2: mindatarate must be a number of octets per second (0: none)"},
      {"database /x\nbind * 25 dmarc=strict\n", "f.conf:2: dmarc= must be report or enforce"},
      {"database\n", "f.conf:1: 'database' needs an argument"},
      {"database /x\nresolver 127.0.0.1:0\nbind * 25\n", "f.conf:2: resolver '127.0.0.1:0' is not a name server"},
      {"database /x\nresolver ns.example.test\nbind * 25\n", "f.conf:2: resolver 'ns.example.test' is not a name server"},
      {"database /x\nresolver 127.0.0.1 127.0.0.2\nbind * 25\n", "f.conf:2: resolver '127.0.0.1 127.0.0.2' is not"},
      {"database /x\nresolver\nbind * 25\n", "f.conf:2: 'resolver' needs an argument"},
      {"database /x\nauth_checks no\nbind * 25\n", "f.conf:2: auth_checks must be on or off"},
      {"database /x\nauth_checks\nbind * 25\n", "f.conf:2: auth_checks must be on or off"},
      {"database /x\nauth_checks on\nauth_checks off\nbind * 25\n", "f.conf:3: a second 'auth_checks' directive"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    auto r = daemon::config::parse_smtpd(c.text, "f.conf");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message().starts_with(c.message));
  }
}

// The original's example file, unchanged (docs/compatibility.md#config-example-files).
TEST_CASE("config: cmail's shipped dispatchd.conf parses, with the extensions") {
  const char* text = R"(verbosity 3
logfile /var/log/cmail/dispatchd.log
pidfile /var/run/cmail-dispatchd.pid
announce mx.example.test
bounce_from postmaster@mx.example.test
portprio 465@tls 25@starttls 25
interval 60
retries 20
retryinterval 3600
ratelimit 50
tls_padding 6
tls_trustfile /etc/ssl/certs/ca-certificates.crt
#bind mx.example.test
bounce_copy a@x.test b@x.test
bounce_copy c@x.test
resolver 127.0.0.1:5353
resolver [::1]:53
maxage 86400
user cmail
group cmail
database /etc/cmail/databases/master.db3
)";
  auto c = daemon::config::parse_dispatchd(text, "dispatchd.conf");
  REQUIRE_MESSAGE(c.has_value(), c.error().to_string());
  CHECK(c->announce == "mx.example.test");
  CHECK(c->portprio == std::vector<mail::PortChoice>{{465, mail::TlsMode::Implicit},
                                                         {25, mail::TlsMode::StartTls},
                                                         {25, mail::TlsMode::Opportunistic}});
  CHECK(c->interval == 60);
  CHECK(c->retry.retries == 20);
  CHECK(c->retry.interval == 3600);
  CHECK(c->retry.max_age == 86400);
  CHECK(c->ratelimit == 50);
  CHECK(c->bounce_copy == std::vector<std::string>{"a@x.test", "b@x.test", "c@x.test"});
  CHECK(c->resolvers == std::vector<std::string>{"127.0.0.1:5353", "[::1]:53"});
  CHECK(c->bind.empty());
  CHECK(c->tls_verify == mail::TlsVerify::Credentials);
  CHECK_FALSE(c->dnssec);  // off unless asked for: the AD bit of an untrusted resolver means nothing
  auto d = daemon::config::parse_dispatchd("database /x\n", "d");
  REQUIRE(d.has_value());
  auto on = daemon::config::parse_dispatchd("database /x\ndnssec on\n", "d");
  REQUIRE(on.has_value());
  CHECK(on->dnssec);
  auto off = daemon::config::parse_dispatchd("database /x\ndnssec on\ndnssec off\n", "d");
  REQUIRE(off.has_value());
  CHECK_FALSE(off->dnssec);  // the last line wins
  CHECK(d->portprio == std::vector<mail::PortChoice>{{25, mail::TlsMode::Opportunistic}});  // no crash, a default
  struct Bad {
    const char* text;
    const char* message;
  };
  for (const Bad& b : {Bad{"database /x\nportprio 25@bogus\n", "d:2: portprio entry '25@bogus'"},
                       Bad{"database /x\nretries 0\n", "d:2: retries must be a positive number"},
                       Bad{"database /x\ntls_priorities NORMAL\n", "d:2: unknown directive 'tls_priorities'"},
                       Bad{"database /x\ninterval\n", "d:2: 'interval' needs an argument"},
                       Bad{"database /x\ntls_verify sometimes\n", "d:2: tls_verify must be"},
                       Bad{"database /x\ndnssec yes\n", "d:2: dnssec must be on or off"},
                       Bad{"database /x\nresolver 127.0.0.1\nresolver 127.0.0.1:65536\n", "d:3: resolver '127.0.0.1:65536' is not a name server"},
                       Bad{"announce x\n", "d: no 'database' directive"}}) {
    CAPTURE(b.text);
    auto r = daemon::config::parse_dispatchd(b.text, "d");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message().find(b.message) == 0);
  }
}

TEST_CASE("config: authguard for smtpd and popd: off, options, mistakes") {
  auto c = daemon::config::parse_smtpd("database /x\nauthguard delay=50 maxdelay=400 ipfailures=6 userfailures=0 forget=30 entries=99\nbind * 25\n", "s.conf");
  REQUIRE_MESSAGE(c.has_value(), c.error().to_string());
  REQUIRE(c->auth_guard.has_value());
  CHECK(c->auth_guard->enabled);
  CHECK(c->auth_guard->delay == std::chrono::milliseconds(50));
  CHECK(c->auth_guard->max_delay == std::chrono::milliseconds(400));
  CHECK(c->auth_guard->address_failures == 6);
  CHECK(c->auth_guard->user_failures == 0);
  CHECK(c->auth_guard->forget == std::chrono::seconds(30));
  CHECK(c->auth_guard->max_entries == 99);
  auto none = daemon::config::parse_smtpd("database /x\nbind * 25\n", "s.conf");
  REQUIRE(none.has_value());
  CHECK_FALSE(none->auth_guard.has_value());  // the defaults apply
  auto off = daemon::config::parse_popd("database /x\nauthguard off\nbind * 110\n", "p.conf");
  REQUIRE_MESSAGE(off.has_value(), off.error().to_string());
  CHECK_FALSE(off->auth_guard->enabled);
  auto msg = [](const char* text) {
    auto r = daemon::config::parse_smtpd(text, "s.conf");
    return r ? std::string() : r.error().message();
  };
  CHECK(msg("database /x\nauthguard\nbind * 25\n") == "s.conf:2: 'authguard' needs 'off' or options");
  CHECK(msg("database /x\nauthguard delay=1 delay=2 speed=3\nbind * 25\n").starts_with("s.conf:2: unknown authguard option 'speed=3'"));
  CHECK(msg("database /x\nauthguard delay=x\nbind * 25\n").starts_with("s.conf:2: authguard option 'delay=x' must be KEY=NUMBER"));
  CHECK(msg("database /x\nauthguard delay=500 maxdelay=100\nbind * 25\n") == "s.conf:2: authguard maxdelay must not be below delay");
  CHECK(msg("database /x\nauthguard forget=0\nbind * 25\n") == "s.conf:2: authguard forget must be positive");
  CHECK(msg("database /x\nauthguard off\nauthguard off\nbind * 25\n") == "s.conf:3: a second 'authguard' directive");
}
