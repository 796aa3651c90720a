#include "daemon/config.h"

#include <doctest/doctest.h>

using namespace cmail;

// The original's example file, unchanged (docs/compatibility.md#config-example-files).
TEST_CASE("config: cmail's shipped popd.conf parses") {
  const char* text = R"(verbosity 3
logfile /var/log/cmail/popd.log
pidfile /var/run/cmail-popd.pid
bind * 110 tlsrequire announce=pop.example.test cert=/etc/cmail/keys/c.pem key=/etc/cmail/keys/k.pem ciphers=NORMAL:%LATEST_RECORD_VERSION:-VERS-SSL3.0
bind :: 110 tlsrequire announce=pop.example.test cert=/c key=/k ciphers=NORMAL
bind * 995 announce=pop.example.test cert=/c key=/k ciphers=NORMAL tlsonly
bind :: pop3s announce=pop.example.test cert=/c key=/k dhparams=/etc/cmail/keys/dh.pem tlsonly
bind 127.0.0.1 1110 #cert=/c key=/k
user cmail
group cmail
database /etc/cmail/databases/master.db3
)";
  auto c = daemon::config::parse_popd(text, "popd.conf");
  REQUIRE_MESSAGE(c.has_value(), c.error().to_string());
  CHECK(c->common.verbosity == 3);
  CHECK(c->common.pidfile == "/var/run/cmail-popd.pid");
  REQUIRE(c->listeners.size() == 5);
  CHECK(c->listeners[0].port == 110);
  CHECK(c->listeners[0].tlsrequire);
  CHECK_FALSE(c->listeners[0].tlsonly);
  CHECK(c->listeners[0].announce == "pop.example.test");
  CHECK(c->listeners[2].tlsonly);
  CHECK(c->listeners[3].port == 995);  // a service name
  CHECK(c->listeners[4].announce == "cmail-popd");
  CHECK(c->listeners[4].cert.empty());
  CHECK(c->listeners[4].timeout == 0);
  CHECK(c->listeners[4].max_per_address == 50);
  auto ext = daemon::config::parse_popd("database /x\nbind ::1 0 timeout=30 maxperip=200\n", "e");
  REQUIRE(ext.has_value());
  CHECK(ext->listeners[0].timeout == 30);
  CHECK(ext->listeners[0].max_per_address == 200);
}

TEST_CASE("config: popd mistakes are reported with file and line") {
  struct Case {
    const char* text;
    const char* error;
  };
  const Case cases[] = {
      {"database /x\nbind * 110 size=5\n", "p.conf:2: unknown bind option 'size=5'"},
      {"database /x\nbind * 110 auth\n", "p.conf:2: unknown bind option 'auth'"},
      {"database /x\nbind * 995 tlsonly\n", "p.conf:2: TLS needs both cert= and key="},
      {"database /x\nbind * 110 tlsrequire\n", "p.conf:2: tlsrequire needs cert= and key="},
      {"database /x\nbind * 110 cert=/c\n", "p.conf:2: TLS needs both cert= and key="},
      {"database /x\nbind * 110 announce=\n", "p.conf:2: 'announce' needs a value"},
      {"database /x\nbind * 110 tlsonly=yes cert=/c key=/k\n", "p.conf:2: unknown bind option 'tlsonly=yes'"},
      {"database /x\nbind * 110 timeout=0\n", "p.conf:2: timeout must be a positive number"},
      {"database /x\nbindx * 110\n", "p.conf:2: unknown directive 'bindx'"},
      {"database /x\n", "p.conf: no 'bind' directive"},
      {"bind * 110\n", "p.conf: no 'database' directive"},
      {"database /x\ndatabase /y\nbind * 110\n", "p.conf:2: a second 'database' directive"},
  };
  for (const Case& k : cases) {
    CAPTURE(k.text);
    auto r = daemon::config::parse_popd(k.text, "p.conf");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message().find(k.error) == 0);
  }
  CHECK_FALSE(daemon::config::load_popd("/nonexistent/popd.conf").has_value());
}
