#include "daemon/config.h"

#include <doctest/doctest.h>

using namespace cmail;

// cmail-imapd reads cmail-popd's syntax (docs/imapd.md#configuration).
TEST_CASE("config: an imapd.conf in cmail-popd's syntax parses, with imapd's own default name") {
  const char* text = R"(verbosity 1
logfile /var/log/cmail/imapd.log
pidfile /var/run/cmail-imapd.pid
bind * 143 tlsrequire announce=imap.example.test cert=/c key=/k timeout=3600 maxperip=8
bind :: imaps cert=/c key=/k tlsonly
bind 127.0.0.1 1143
authguard delay=100 maxdelay=2000
user cmail
group cmail
database /etc/cmail/databases/master.db3   # shared with the other daemons
)";
  auto c = daemon::config::parse_imapd(text, "imapd.conf");
  REQUIRE_MESSAGE(c.has_value(), c.error().to_string());
  CHECK(c->common.database == "/etc/cmail/databases/master.db3");
  CHECK(c->common.pidfile == "/var/run/cmail-imapd.pid");
  CHECK(c->common.user == "cmail");
  REQUIRE(c->listeners.size() == 3);
  CHECK(c->listeners[0].port == 143);
  CHECK(c->listeners[0].tlsrequire);
  CHECK(c->listeners[0].announce == "imap.example.test");
  CHECK(c->listeners[0].timeout == 3600);
  CHECK(c->listeners[0].max_per_address == 8);
  CHECK(c->listeners[1].tlsonly);
  CHECK(c->listeners[1].port == 993);  // the service name, from the system's services file
  CHECK(c->listeners[1].announce == "cmail-imapd");
  CHECK(c->listeners[2].cert.empty());
  REQUIRE(c->auth_guard.has_value());
  CHECK(c->auth_guard->delay == std::chrono::milliseconds(100));
  // The POP3 daemon keeps its own default name.
  auto p = daemon::config::parse_popd("database /x\nbind * 110\n", "p.conf");
  REQUIRE(p.has_value());
  CHECK(p->listeners[0].announce == "cmail-popd");
}

TEST_CASE("config: imapd.conf mistakes name the file and line, as for popd") {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {"database /x\nbind * 143 tlsrequire\n", "imapd.conf:2: tlsrequire needs cert= and key="},
      {"database /x\nbind * 993 tlsonly cert=/c\n", "imapd.conf:2: TLS needs both cert= and key="},
      {"database /x\nbind * 143 idle=5\n", "imapd.conf:2: unknown bind option 'idle=5'"},
      {"database /x\nbind * 143 timeout=0\n", "imapd.conf:2: timeout must be a positive number"},
      {"database /x\nlisten * 143\n", "imapd.conf:2: unknown directive 'listen'"},
      {"bind * 143\n", "no 'database' directive"},
      {"database /x\n", "no 'bind' directive"},
      {"database /x\nmaxperuser many\nbind * 143\n", "imapd.conf:2: maxperuser must be a number (0: no limit)"},
      {"database /x\nmaxperuser\nbind * 143\n", "imapd.conf:2: maxperuser must be a number"},
      {"database /x\nmaxperuser 4\nmaxperuser 5\nbind * 143\n", "imapd.conf:3: a second 'maxperuser' directive"},
  };
  for (const Case& k : cases) {
    INFO(k.text);
    auto c = daemon::config::parse_imapd(k.text, "imapd.conf");
    REQUIRE_FALSE(c.has_value());
    CHECK(c.error().message().find(k.message) != std::string::npos);
  }
}

TEST_CASE("config: maxperuser is cmail-imapd's (default 32, 0 for no limit); cmail-popd has no such line") {
  auto d = daemon::config::parse_imapd("database /x\nbind * 143\n", "imapd.conf");
  REQUIRE(d.has_value());
  CHECK(d->max_per_user == daemon::config::kImapMaxPerUser);
  CHECK(daemon::config::kImapMaxPerUser == 32);
  auto c = daemon::config::parse_imapd("database /x\nmaxperuser 3\nbind * 143\n", "imapd.conf");
  REQUIRE(c.has_value());
  CHECK(c->max_per_user == 3);
  CHECK(daemon::config::parse_imapd("database /x\nmaxperuser 0\nbind * 143\n", "i")->max_per_user == 0);
  auto p = daemon::config::parse_popd("database /x\nmaxperuser 3\nbind * 110\n", "popd.conf");
  REQUIRE_FALSE(p.has_value());
  CHECK(p.error().message().find("popd.conf:2: unknown directive 'maxperuser'") != std::string::npos);
}
