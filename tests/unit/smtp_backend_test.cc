#include "fakes.h"
#include "harness.h"
#include "testutil.h"

#include <cmail/backends/smtp_session.h>
#include <cmail/store/directory.h>
#include <cmail/store/mailbox.h>
#include <cmail/store/queue.h>
#include <cmail/base64.h>
#include <cmail/crypto/keys.h>
#include <cmail/mail/dkim.h>

#include <map>

using namespace cmail;
using namespace cmail::test;

namespace {

struct Conversation {
  TempDir dir;
  std::unique_ptr<store::Store> store = open_store(dir.file("master.db3"));
  FakeLoop loop;
  std::unique_ptr<backends::StoreSmtpSession> session;
  std::unique_ptr<smtp::Server> server;
  std::string out;
  std::vector<std::pair<int, std::string>> logged;

  explicit Conversation(smtp::ServerOptions o = {}, backends::SmtpBackendOptions bo = {},
                        std::string address = "192.0.2.9") {
    store::Directory& d = store->directory();
    REQUIRE(d.add_user("alice", std::string_view("wonderland")).ok());
    REQUIRE(d.add_user("bob", std::nullopt).ok());
    REQUIRE(d.add_address("alice@local.test", "store", std::string_view("alice"), std::nullopt).has_value());
    REQUIRE(d.add_address("bob@local.test", "store", std::string_view("bob"), std::nullopt).has_value());
    REQUIRE(d.enable_smtpd("alice", std::string_view("any"), std::nullopt).ok());
    o.hostname = "mx.local.test";
    bo.hostname = "mx.local.test";
    session = std::make_unique<backends::StoreSmtpSession>(*store, bo,
                                                 proto::PeerInfo{address, 40000, "client.remote.test"},
                                                 loop.executor());
    session->set_logger([this](int level, std::string_view l) { logged.emplace_back(level, std::string(l)); });
    server = std::make_unique<smtp::Server>(o, *session);
    session->set_completion([this](smtp::Verdict v) { REQUIRE(server->complete(std::move(v)).ok()); });
    take_output(*server);
  }
  // Sends bytes and returns every reply up to the one that starts with `until`.
  std::string say(std::string_view bytes, const std::string& until) {
    feed(*server, bytes);
    return wait_for(until);
  }
  // Every reply from now up to the one that starts with `until` (nothing sent).
  std::string wait_for(const std::string& until) {
    out.clear();
    loop.pump([&] {
      out += take_output(*server);
      return out.find("\r\n" + until) != std::string::npos || out.starts_with(until);
    });
    return out;
  }
  std::unique_ptr<store::detail::Connection> db() { return raw(dir.file("master.db3")); }
};

}  // namespace

TEST_CASE("smtp backend: inbound mail is stored durably with a Received header") {
  SPLIT_SUBCASES();
  Conversation c;
  c.say("EHLO client.remote.test\r\n", "250 ");
  std::string r = c.say(
      "MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@local.test>\r\nRCPT TO:<nobody@remote.test>\r\n"
      "RCPT TO:<Bob@Local.Test>\r\nDATA\r\nSubject: hello\r\n\r\nbody\r\n.\r\n",
      "250 2.0.0 OK queued as ");
  CHECK(r.find("550 5.7.1 Relaying denied\r\n") != std::string::npos);
  auto pos = r.find("250 2.0.0 OK queued as ");
  REQUIRE(pos != std::string::npos);
  std::string id = r.substr(pos + 23, 16);
  auto db = c.db();
  CHECK(count(*db, "SELECT COUNT(*) FROM mailbox WHERE mail_ident = '" + id + "'") == 2);
  CHECK(count(*db, "SELECT COUNT(*) FROM mailbox WHERE mail_user = 'bob' AND mail_envelopeto = 'Bob@Local.Test'") == 1);
  auto data = db->query_text("SELECT mail_data FROM mailbox WHERE mail_user = 'alice'");
  REQUIRE(data.has_value());
  CHECK(data->starts_with("Received: from client.remote.test (client.remote.test [192.0.2.9])\r\n\tby mx.local.test (cmail) with ESMTP id " + id + ";\r\n\t"));
  CHECK(data->ends_with("\r\nSubject: hello\r\n\r\nbody\r\n"));
  CHECK(db->query_text("SELECT mail_proto FROM mailbox LIMIT 1") == "esmtp");
  CHECK(db->query_text("SELECT mail_submitter FROM mailbox LIMIT 1") == "client.remote.test");
  CHECK(db->query_text("SELECT mail_envelopefrom FROM mailbox LIMIT 1") == "sender@remote.test");
  CHECK(count(*db, "SELECT COUNT(*) FROM outbox") == 0);
}

TEST_CASE("smtp backend: a recipient given again is stored once, each gets its 250") {
  SPLIT_SUBCASES();
  Conversation c;
  REQUIRE(c.store->directory().add_address("postmaster@local.test", "store", std::string_view("alice"), std::nullopt).has_value());
  c.say("EHLO client.remote.test\r\n", "250 ");
  std::string cmds = "MAIL FROM:<sender@remote.test>\r\n";
  for (int i = 0; i < 50; ++i) cmds += "RCPT TO:<alice@local.test>\r\n";
  cmds += "RCPT TO:<ALICE@LOCAL.TEST>\r\nRCPT TO:<postmaster@local.test>\r\nRCPT TO:<bob@local.test>\r\n"
          "RCPT TO:<bob@local.test>\r\nDATA\r\nSubject: once\r\n\r\nbody\r\n.\r\n";
  std::string r = c.say(cmds, "250 2.0.0 OK queued as ");
  std::size_t ok = 0;
  for (std::size_t p = 0; (p = r.find("250 2.1.5 Recipient OK\r\n", p)) != std::string::npos; ++p) ++ok;
  CHECK(ok == 54);
  auto db = c.db();
  // One copy per mailbox: alice's under the first address she was given by.
  CHECK(count(*db, "SELECT COUNT(*) FROM mailbox WHERE mail_user = 'alice'") == 1);
  CHECK(db->query_text("SELECT mail_envelopeto FROM mailbox WHERE mail_user = 'alice'") == "alice@local.test");
  CHECK(count(*db, "SELECT COUNT(*) FROM mailbox WHERE mail_user = 'bob'") == 1);
  // Queued recipients: one entry per address, the domain compared in any case.
  smtp::ServerOptions o;
  o.auth_enabled = true;
  o.tls_active = true;
  Conversation a(o);
  a.say("EHLO laptop.test\r\n", "250 ");
  a.say("AUTH PLAIN " + sasl::base64_encode(std::string("\0alice\0wonderland", 17)) + "\r\n", "235 ");
  r = a.say("MAIL FROM:<alice@local.test>\r\nRCPT TO:<far@remote.test>\r\nRCPT TO:<far@REMOTE.test>\r\n"
            "RCPT TO:<Far@remote.test>\r\nRCPT TO:<far@remote.test>\r\nDATA\r\nSubject: q\r\n\r\nx\r\n.\r\n",
            "250 2.0.0 OK queued as ");
  db = a.db();
  CHECK(count(*db, "SELECT COUNT(*) FROM outbox WHERE mail_envelopeto = 'far@remote.test'") == 1);
  CHECK(count(*db, "SELECT COUNT(*) FROM outbox WHERE mail_envelopeto = 'Far@remote.test'") == 1);  // local parts are case-sensitive
  CHECK(count(*db, "SELECT COUNT(*) FROM outbox") == 2);
}

TEST_CASE("smtp backend: authenticated submission queues remote mail with DSN parameters") {
  SPLIT_SUBCASES();
  smtp::ServerOptions o;
  o.auth_enabled = true;
  o.tls_active = true;
  o.require_auth = true;
  Conversation c(o);
  c.say("EHLO laptop.test\r\n", "250 ");
  CHECK(c.say("AUTH PLAIN " + sasl::base64_encode(std::string("\0alice\0nope", 11)) + "\r\n", "535").starts_with("535 5.7.8"));
  CHECK(c.say("AUTH PLAIN " + sasl::base64_encode(std::string("\0alice\0wonderland", 17)) + "\r\n", "235") ==
        "235 2.7.0 Authentication successful\r\n");
  std::string r = c.say(
      "MAIL FROM:<alice@local.test> RET=HDRS ENVID=E1\r\nRCPT TO:<far@remote.test> NOTIFY=FAILURE\r\n"
      "RCPT TO:<bob@local.test>\r\nDATA\r\nSubject: out\r\n\r\nx\r\n.\r\n",
      "250 2.0.0 OK queued as ");
  CHECK(r.find("250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n") != std::string::npos);
  auto db = c.db();
  CHECK(count(*db, "SELECT COUNT(*) FROM outbox WHERE mail_envelopeto = 'far@remote.test' AND mail_remote IS NULL "
                   "AND mail_dsn_ret = 'HDRS' AND mail_dsn_envid = 'E1' AND mail_dsn_notify = 'FAILURE' "
                   "AND mail_envelopefrom = 'alice@local.test'") == 1);
  CHECK(count(*db, "SELECT COUNT(*) FROM mailbox WHERE mail_user = 'bob' AND mail_proto = 'esmtpsa'") == 1);
}

TEST_CASE("smtp backend: a store failure at end of data stores nothing and says so") {
  Conversation c;
  c.say("EHLO client.remote.test\r\n", "250 ");
  c.say("MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@local.test>\r\nRCPT TO:<bob@local.test>\r\nDATA\r\n", "354");
  // bob disappears between RCPT and the end of data: the whole message is refused, alice's
  // copy included (cmail kept partial deliveries,
  // docs/compatibility.md#smtp-partial-deliveries).
  REQUIRE(c.store->directory().delete_user("bob").ok());
  std::string r = c.say("Subject: x\r\n\r\ny\r\n.\r\n", "554");
  CHECK(r == "554 5.3.0 Message refused by the mail store\r\n");
  auto db = c.db();
  CHECK(count(*db, "SELECT COUNT(*) FROM mailbox") == 0);
  CHECK(c.say("NOOP\r\n", "250") == "250 2.0.0 OK\r\n");  // the session goes on
}

TEST_CASE("smtp backend: a large message goes through a spool file and is stored byte-exact") {
  SPLIT_SUBCASES();
  backends::SmtpBackendOptions bo;
  bo.spool_threshold = 1000;  // small, so that a few KiB take the spool path
  smtp::ServerOptions o;
  o.auth_enabled = true;
  o.tls_active = true;
  Conversation c(o, bo);
  c.say("EHLO laptop.test\r\n", "250 ");
  c.say("AUTH PLAIN " + sasl::base64_encode(std::string("\0alice\0wonderland", 17)) + "\r\n", "235 ");
  std::string body = "Subject: big\r\nMessage-ID: <big@test>\r\n\r\n";
  for (int i = 0; i < 400; ++i) body += "line " + std::to_string(i) + (i % 7 ? "" : " .dot") + "\r\n";
  std::string wire;  // dot-stuffed: lines starting with "." gain one (none here but the test line)
  body += ".leading dot\r\n";
  wire = body;
  wire.insert(wire.rfind(".leading"), ".");
  std::string r = c.say("MAIL FROM:<alice@local.test>\r\nRCPT TO:<bob@local.test> NOTIFY=SUCCESS\r\nRCPT TO:<alice@local.test>\r\n"
                        "RCPT TO:<far@remote.test>\r\nDATA\r\n" + wire + ".\r\n",
                        "250 2.0.0 OK queued as ");
  REQUIRE(r.find("250 2.0.0 OK queued as ") != std::string::npos);
  const std::string id = r.substr(r.find("250 2.0.0 OK queued as ") + 23, 16);
  auto db = c.db();
  for (const std::string& q : {std::string("SELECT mail_data FROM mailbox WHERE mail_user = 'bob'"), "SELECT mail_data FROM mailbox WHERE mail_user = 'alice' AND mail_ident = '" + id + "'",
                        std::string("SELECT mail_data FROM outbox WHERE mail_envelopeto = 'far@remote.test'")}) {
    auto data = db->query_text(q);
    CAPTURE(q);
    REQUIRE(data.has_value());
    CHECK(data->starts_with("Received: from laptop.test"));
    CHECK(data->substr(data->find("Subject: big")) == body);
  }
  CHECK(count(*db, "SELECT COUNT(*) FROM mailbox WHERE mail_ident = '" + id + "' AND mail_size = length(mail_data) AND mail_wiresize = mail_size") == 2);
  // bob's NOTIFY=SUCCESS: the "delivered" report returns the header, read from the spool's start.
  // It was queued before the 250 came; the writer commits in order, so this waits for it.
  REQUIRE(c.store->deliver_sync(store::Delivery{}).ok());
  auto report = db->query_text("SELECT mail_data FROM mailbox WHERE mail_user = 'alice' AND mail_ident != '" + id + "'");
  REQUIRE(report.has_value());
  CHECK(report->find("Message-ID: <big@test>") != std::string::npos);
  CHECK(report->find("line 10\r\n") == std::string::npos);  // the header only
}

TEST_CASE("smtp backend: the data budget refuses new transactions and over-large messages with 452") {
  SPLIT_SUBCASES();
  backends::SmtpBackendOptions bo;
  bo.budget = std::make_shared<backends::DataBudget>(2000);
  bo.spool_threshold = 500;
  Conversation c({}, bo);
  c.say("EHLO client.remote.test\r\n", "250 ");
  // SIZE= larger than the budget: refused at MAIL (RFC 1870 6.2).
  CHECK(c.say("MAIL FROM:<s@remote.test> SIZE=5000\r\n", "452").starts_with("452 4.3.1 "));
  // A message that grows past it: read to its end, then 452, and nothing is stored.
  std::string big;
  for (int i = 0; i < 30; ++i) big += std::string(98, 'x') + "\r\n";
  std::string r = c.say("MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\n" + big + "\r\n.\r\n", "452");
  CHECK(r.find("452 4.3.1 ") != std::string::npos);
  CHECK(bo.budget->in_use() == 0);
  auto db = c.db();
  CHECK(count(*db, "SELECT COUNT(*) FROM mailbox") == 0);
  // Something else holds the budget: new transactions wait.
  REQUIRE(bo.budget->take(2000));
  CHECK(c.say("MAIL FROM:<s@remote.test>\r\n", "452").starts_with("452 4.3.1 "));
  bo.budget->give(2000);
  // Within the budget: stored, and the budget is whole again after the commit.
  r = c.say("MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\n" + std::string(big, 0, 1500) + ".\r\n",
            "250 2.0.0 OK queued as ");
  CHECK(r.find("250 2.0.0 OK queued as ") != std::string::npos);
  CHECK(bo.budget->in_use() == 0);
  CHECK(count(*db, "SELECT COUNT(*) FROM mailbox WHERE length(mail_data) > 1500") == 1);
}

TEST_CASE("smtp backend: the auth guard delays, then refuses without a check; every failure logged, no password") {
  backends::AuthGuardOptions go;
  go.delay = std::chrono::milliseconds(100);
  go.user_failures = 2;
  auto guard = std::make_shared<backends::AuthGuard>(go);
  backends::SmtpBackendOptions bo;
  bo.auth_guard = guard;
  smtp::ServerOptions o;
  o.auth_enabled = true;
  o.tls_active = true;
  const std::string wrong = "AUTH PLAIN " + sasl::base64_encode(std::string("\0alice\0guess1", 13)) + "\r\n";
  const std::string right = "AUTH PLAIN " + sasl::base64_encode(std::string("\0alice\0wonderland", 17)) + "\r\n";
  // Two connections (the guard is shared, as between a daemon's connections): the second's
  // check waits for the first's failure, through post_after.
  Conversation a(o, bo);
  a.say("EHLO laptop.test\r\n", "250 ");
  CHECK(a.say(wrong, "535 ").find("535 5.7.8 Authentication credentials invalid") != std::string::npos);
  CHECK(a.loop.waits().empty());  // the first failure is free
  Conversation b(o, bo);
  b.say("EHLO laptop.test\r\n", "250 ");
  b.say(wrong, "535 ");
  CHECK(b.loop.waits() == std::vector<std::chrono::milliseconds>{std::chrono::milliseconds(100)});
  // alice from this address is refused now, even with her password, which is not checked.
  Conversation c(o, bo);
  c.say("EHLO laptop.test\r\n", "250 ");
  CHECK(c.say(right, "454 ").find("454 4.7.0 Too many failed authentications, try again later") != std::string::npos);
  // From another address she logs in at once.
  Conversation d(o, bo, "198.51.100.4");
  d.say("EHLO laptop.test\r\n", "250 ");
  d.say(right, "235 ");
  CHECK(d.loop.waits().empty());
  REQUIRE(a.logged.size() == 1);
  CHECK(a.logged[0] == std::pair<int, std::string>(0, "auth failed proto=smtp addr=192.0.2.9 user=alice reason=bad-credentials"));
  REQUIRE(c.logged.size() == 1);
  CHECK(c.logged[0].second == "auth blocked proto=smtp addr=192.0.2.9 user=alice reason=too-many-failures scope=user");
  REQUIRE_FALSE(d.logged.empty());
  CHECK(d.logged[0] == std::pair<int, std::string>(1, "auth ok proto=smtp addr=198.51.100.4 user=alice identity=alice"));
  for (const auto* conv : {&a, &b, &c, &d})
    for (const auto& [level, line] : conv->logged) {
      CHECK(line.find("wonderland") == std::string::npos);
      CHECK(line.find("guess1") == std::string::npos);
    }
}

TEST_CASE("smtp backend: one transaction line per accepted message") {
  Conversation c;
  c.say("EHLO client.remote.test\r\n", "250 ");
  c.say("MAIL FROM:<someone@remote.test>\r\nRCPT TO:<alice@local.test>\r\nRCPT TO:<bob@local.test>\r\nDATA\r\n", "354 ");
  c.say("Subject: hi\r\n\r\nhello\r\n.\r\n", "250 2.0.0 OK queued as ");
  REQUIRE(c.logged.size() == 1);
  CHECK(c.logged[0].first == 1);
  const std::string& l = c.logged[0].second;
  CHECK(l.starts_with("message id="));
  CHECK(l.find(" proto=smtp addr=192.0.2.9 from=<someone@remote.test> rcpts=2 size=") != std::string::npos);
  CHECK(l.ends_with(" result=accepted"));
}

TEST_CASE("smtp backend: a quoted local part is stored and queued with its quotes") {
  SPLIT_SUBCASES();
  smtp::ServerOptions o;
  o.auth_enabled = true;
  o.tls_active = true;
  Conversation c(o);
  // cmail routes the unquoted address (docs/compatibility.md#routing-paths).
  REQUIRE(c.store->directory().add_address("%@local.test", "store", std::string_view("bob"), std::nullopt).has_value());
  c.say("EHLO laptop.test\r\n", "250 ");
  c.say("AUTH PLAIN " + sasl::base64_encode(std::string("\0alice\0wonderland", 17)) + "\r\n", "235 ");
  std::string r = c.say("MAIL FROM:<alice@local.test>\r\nRCPT TO:<\"user@remote.example\"@local.test>\r\n"
                        "RCPT TO:<\"john doe\"@remote.test>\r\nDATA\r\nSubject: q\r\n\r\nx\r\n.\r\n",
                        "250 2.0.0 OK queued as ");
  REQUIRE(r.find("250 2.0.0 OK queued as ") != std::string::npos);
  auto db = c.db();
  CHECK(db->query_text("SELECT mail_envelopeto FROM mailbox WHERE mail_user = 'bob'") == "\"user@remote.example\"@local.test");
  CHECK(db->query_text("SELECT mail_envelopeto FROM outbox") == "\"john doe\"@remote.test");
  // What the dispatcher makes of it again: the same path, quoted on the wire.
  auto to = db->query_text("SELECT mail_envelopeto FROM outbox");
  REQUIRE(to.has_value());
  CHECK(smtp::Path::from_address(*to) == smtp::Path{"john doe", "remote.test"});
}

namespace {

// A resolver whose TXT answers wait until release(): the test decides when SPF is done.
struct HeldResolver : mail::Resolver {
  std::string record;
  std::vector<std::function<void()>> held;
  std::vector<std::string> asked;
  void mx(std::string_view, std::function<void(mail::MxResult)> done) override {
    held.push_back([done] { done({mail::DnsStatus::NxDomain, {}, "none"}); });
  }
  void addresses(std::string_view, std::function<void(mail::AddressResult)> done) override {
    held.push_back([done] { done({mail::DnsStatus::NxDomain, {}, "none"}); });
  }
  std::map<std::string, std::string> records;  // by name; others get `record`
  void txt(std::string_view name, std::function<void(mail::TxtResult)> done) override {
    asked.emplace_back(name);
    auto it = records.find(std::string(name));
    mail::TxtResult r{mail::DnsStatus::Ok, {it != records.end() ? it->second : record}, ""};
    if (it != records.end() && it->second.empty()) r = {mail::DnsStatus::NxDomain, {}, "no such name"};
    held.push_back([done, r] { done(r); });
  }
  void release() {
    auto now = std::move(held);
    held.clear();
    for (auto& fn : now) fn();
  }
  // Answers everything, also what the answers ask next.
  void release_all() {
    while (!held.empty()) release();
  }
  // Backend options that check SPF through this resolver.
  backends::SmtpBackendOptions options() {
    backends::SmtpBackendOptions bo;
    bo.resolver = this;
    return bo;
  }
};

}  // namespace

TEST_CASE("smtp backend: SPF of an unauthenticated sender; the message waits for the check (RFC 7208, RFC 8601)") {
  SPLIT_SUBCASES();
  HeldResolver dns;
  dns.record = "v=spf1 ip4:192.0.2.0/24 -all";
  backends::SmtpBackendOptions bo = dns.options();
  Conversation c({}, bo);
  c.say("EHLO client.remote.test\r\n", "250 ");
  feed(*c.server, "MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\nSubject: spf\r\n\r\nx\r\n.\r\n");
  // (Not run_posted() yet: the fake loop would fire the time-out at once, not in 20 s.)
  std::string out = take_output(*c.server);
  CHECK(out.find("354 ") != std::string::npos);
  CHECK(out.find("250 2.0.0") == std::string::npos);  // the end of data waits for SPF
  CHECK(dns.asked == std::vector<std::string>{"remote.test"});
  dns.release();
  c.wait_for("250 2.0.0 OK queued as ");
  auto data = c.db()->query_text("SELECT mail_data FROM mailbox WHERE mail_user = 'alice'");
  REQUIRE(data.has_value());
  CHECK(data->starts_with("Authentication-Results: mx.local.test;\r\n\tspf=pass smtp.mailfrom=sender@remote.test;\r\n\tdkim=none\r\n"
                          "Received: from client.remote.test"));
}

TEST_CASE("smtp backend: SPF of the HELO name for a null sender; a stale answer after RSET is dropped") {
  HeldResolver dns;
  dns.record = "v=spf1 -all";
  backends::SmtpBackendOptions bo = dns.options();
  Conversation c({}, bo);
  c.say("EHLO client.remote.test\r\n", "250 ");
  c.say("MAIL FROM:<>\r\n", "250 ");
  CHECK(dns.asked == std::vector<std::string>{"client.remote.test"});  // RFC 7208 2.4: the HELO identity
  c.say("RSET\r\n", "250 ");
  dns.release();  // the answer for the transaction RSET ended
  c.say("MAIL FROM:<>\r\nRCPT TO:<bob@local.test>\r\n", "250 2.1.5");
  feed(*c.server, "DATA\r\nSubject: bounce\r\n\r\nx\r\n.\r\n");
  dns.release();  // before the fake loop's time-out, which would fire at once
  c.wait_for("250 2.0.0 OK queued as ");
  auto data = c.db()->query_text("SELECT mail_data FROM mailbox WHERE mail_user = 'bob'");
  REQUIRE(data.has_value());
  CHECK(data->starts_with("Authentication-Results: mx.local.test;\r\n\tspf=fail smtp.helo=client.remote.test;\r\n\tdkim=none\r\n"));
}

TEST_CASE("smtp backend: authenticated submissions are not SPF-checked") {
  HeldResolver dns;
  dns.record = "v=spf1 -all";
  backends::SmtpBackendOptions bo = dns.options();
  smtp::ServerOptions so;
  so.auth_enabled = true;
  so.auth_requires_tls = false;
  Conversation c(so, bo);
  c.say("EHLO client.remote.test\r\n", "250 ");
  c.say("AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n", "235 ");
  c.say("MAIL FROM:<alice@local.test>\r\nRCPT TO:<bob@local.test>\r\nDATA\r\n", "354 ");
  c.say("Subject: mine\r\n\r\nx\r\n.\r\n", "250 2.0.0");
  CHECK(dns.asked.empty());
  auto data = c.db()->query_text("SELECT mail_data FROM mailbox WHERE mail_user = 'bob'");
  REQUIRE(data.has_value());
  CHECK(data->starts_with("Received: "));
}

TEST_CASE("smtp backend: an SPF check without an answer in time is temperror; the message is stored") {
  HeldResolver dns;  // never released
  dns.record = "v=spf1 -all";
  backends::SmtpBackendOptions bo = dns.options();
  bo.spf_timeout = std::chrono::milliseconds(1500);
  Conversation c({}, bo);
  c.say("EHLO client.remote.test\r\n", "250 ");
  std::string r = c.say("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\nSubject: slow dns\r\n\r\nx\r\n.\r\n",
                        "250 2.0.0 OK queued as ");
  const auto waits = c.loop.waits();
  REQUIRE_FALSE(waits.empty());
  CHECK(waits.back() > std::chrono::milliseconds(1000));  // what was left of the 1.5 s
  CHECK(waits.back() <= std::chrono::milliseconds(1500));
  auto data = c.db()->query_text("SELECT mail_data FROM mailbox WHERE mail_user = 'alice'");
  REQUIRE(data.has_value());
  CHECK(data->starts_with("Authentication-Results: mx.local.test;\r\n\tspf=temperror smtp.mailfrom=sender@remote.test;\r\n\tdkim=none\r\n"));
  bool logged = false;  // the message line says it too (docs/logging.md)
  for (const auto& [level, line] : c.logged) logged = logged || (line.starts_with("message ") && line.find(" spf=temperror ") != std::string::npos);
  CHECK(logged);
  dns.release();  // the late answer changes nothing
  c.loop.run_posted();
  CHECK(count(*c.db(), "SELECT COUNT(*) FROM mailbox") == 1);
}

TEST_CASE("smtp backend: Authentication-Results that came under our hostname are dropped (RFC 8601 5)") {
  SPLIT_SUBCASES();
  HeldResolver dns;
  dns.record = "v=spf1 -all";
  backends::SmtpBackendOptions bo = dns.options();
  Conversation c({}, bo);
  c.say("EHLO client.remote.test\r\n", "250 ");
  feed(*c.server,
       "MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\n"
       "Authentication-Results: mx.local.test; spf=pass smtp.mailfrom=sender@remote.test\r\n"
       "Authentication-Results: elsewhere.test; spf=pass\r\n"
       "Subject: forged\r\n\r\nbody\r\n.\r\n");
  dns.release();
  c.wait_for("250 2.0.0 OK queued as ");
  auto data = c.db()->query_text("SELECT mail_data FROM mailbox WHERE mail_user = 'alice'");
  REQUIRE(data.has_value());
  CHECK(data->starts_with("Authentication-Results: mx.local.test;\r\n\tspf=fail smtp.mailfrom=sender@remote.test;\r\n\tdkim=none\r\n"));
  CHECK(data->find("spf=pass smtp.mailfrom") == std::string::npos);  // the forged one is gone
  CHECK(data->ends_with("Authentication-Results: elsewhere.test; spf=pass\r\nSubject: forged\r\n\r\nbody\r\n"));
}

namespace {

// A message from remote.test signed with `key` under selector "sel".
std::string signed_from_remote(const crypto::PrivateKey& key, std::string_view from = "Sender <sender@remote.test>") {
  const std::string m = "From: " + std::string(from) + "\r\nTo: alice@local.test\r\nSubject: dmarc\r\n\r\nbody\r\n";
  mail::dkim::Signer s;
  s.feed(m);
  s.finish();
  auto f = s.sign(key, {"remote.test", "sel", 1700000000, 0});
  REQUIRE(f);
  return *f + m;
}

std::string key_record(const crypto::PrivateKey& key) {
  return std::string("v=DKIM1; k=") + crypto::to_string(key.type()) + "; p=" + base64_encode(key.public_key().bytes());
}

// Sends `message` from sender@remote.test to alice, answers the DNS, returns the last reply.
std::string send_checked(Conversation& c, HeldResolver& dns, const std::string& message) {
  c.say("EHLO client.remote.test\r\n", "250 ");
  feed(*c.server, "MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\n" + message + ".\r\n");
  std::string out = take_output(*c.server);
  CHECK(out.find("354 ") != std::string::npos);
  dns.release_all();
  c.out.clear();
  c.loop.pump([&] {
    c.out += take_output(*c.server);
    return c.out.find("250 2.0.0") != std::string::npos || c.out.find("550 ") != std::string::npos;
  });
  return c.out;
}

}  // namespace

TEST_CASE("smtp backend: DKIM and DMARC on intake: an aligned signature passes where SPF fails") {
  SPLIT_SUBCASES();
  auto key = crypto::PrivateKey::generate(crypto::KeyType::Ed25519);
  REQUIRE(key);
  HeldResolver dns;
  dns.record = "v=spf1 -all";
  dns.records["sel._domainkey.remote.test"] = key_record(*key);
  dns.records["_dmarc.remote.test"] = "v=DMARC1; p=reject";
  Conversation c({}, dns.options());
  std::string r = send_checked(c, dns, signed_from_remote(*key));
  CHECK(r.find("250 2.0.0 OK queued as ") != std::string::npos);
  auto data = c.db()->query_text("SELECT mail_data FROM mailbox WHERE mail_user = 'alice'");
  REQUIRE(data.has_value());
  CHECK(data->starts_with("Authentication-Results: mx.local.test;\r\n\tspf=fail smtp.mailfrom=sender@remote.test;\r\n"
                          "\tdkim=pass\r\n\t header.d=remote.test header.s=sel header.a=ed25519-sha256 header.b="));
  CHECK(data->find(";\r\n\tdmarc=pass header.from=remote.test\r\nReceived: ") != std::string::npos);
  CHECK(std::count(dns.asked.begin(), dns.asked.end(), std::string("_dmarc.remote.test")) == 1);
}

TEST_CASE("smtp backend: DMARC failures: reported by default, refused or filed into Junk where the domain enforces") {
  SPLIT_SUBCASES();
  auto key = crypto::PrivateKey::generate(crypto::KeyType::Ed25519);
  auto other = crypto::PrivateKey::generate(crypto::KeyType::Ed25519);
  REQUIRE(key);
  REQUIRE(other);
  HeldResolver dns;
  dns.record = "v=spf1 -all";
  dns.records["sel._domainkey.remote.test"] = key_record(*other);  // the signature does not verify
  SUBCASE("p=reject, report only (no auth_policy row): stored, with the result") {
    dns.records["_dmarc.remote.test"] = "v=DMARC1; p=reject";
    Conversation c({}, dns.options());
    std::string r = send_checked(c, dns, signed_from_remote(*key));
    CHECK(r.find("250 2.0.0 OK queued as ") != std::string::npos);
    auto data = c.db()->query_text("SELECT mail_data FROM mailbox WHERE mail_user = 'alice'");
    REQUIRE(data.has_value());
    CHECK(data->find("\tdkim=fail reason=\"signature did not verify\"") != std::string::npos);
    CHECK(data->find("\tdmarc=fail (p=reject) header.from=remote.test\r\n") != std::string::npos);
    CHECK(c.db()->query_text("SELECT folder_name FROM folders JOIN mailbox ON mail_folder = folder_id") == "INBOX");
  }
  SUBCASE("p=reject where the recipient's domain enforces: 550 5.7.1, nothing stored") {
    dns.records["_dmarc.remote.test"] = "v=DMARC1; p=reject";
    Conversation c({}, dns.options());
    REQUIRE(c.store->directory().set_auth_policy("local.test", store::AuthPolicy::Enforce).ok());
    std::string r = send_checked(c, dns, signed_from_remote(*key));
    CHECK(r.find("550 5.7.1 Message rejected by the DMARC policy of remote.test\r\n") != std::string::npos);
    CHECK(count(*c.db(), "SELECT COUNT(*) FROM mailbox") == 0);
    bool logged = false;
    for (const auto& [level, line] : c.logged) logged = logged || line.find("dmarc=fail policy=reject result=rejected") != std::string::npos;
    CHECK(logged);
  }
  SUBCASE("p=quarantine where the domain enforces (the \"*\" row): into Junk") {
    dns.records["_dmarc.remote.test"] = "v=DMARC1; p=quarantine";
    Conversation c({}, dns.options());
    REQUIRE(c.store->directory().set_auth_policy("*", store::AuthPolicy::Enforce).ok());
    std::string r = send_checked(c, dns, signed_from_remote(*key));
    CHECK(r.find("250 2.0.0 OK queued as ") != std::string::npos);
    CHECK(c.db()->query_text("SELECT folder_name FROM folders JOIN mailbox ON mail_folder = folder_id") == "Junk");
    CHECK(c.db()->query_text("SELECT folder_special FROM folders WHERE folder_name = 'Junk'") == "\\Junk");
  }
  SUBCASE("p=quarantine: the user's own \\Junk folder, whatever its name (RFC 6154)") {
    dns.records["_dmarc.remote.test"] = "v=DMARC1; p=quarantine";
    Conversation c({}, dns.options());
    REQUIRE(c.store->directory().set_auth_policy("local.test", store::AuthPolicy::Enforce).ok());
    REQUIRE(c.store->mailboxes().create_folder("alice", "Spam", "\\Junk").has_value());
    std::string r = send_checked(c, dns, signed_from_remote(*key));
    CHECK(r.find("250 2.0.0 OK queued as ") != std::string::npos);
    CHECK(c.db()->query_text("SELECT folder_name FROM folders JOIN mailbox ON mail_folder = folder_id") == "Spam");
    CHECK(count(*c.db(), "SELECT COUNT(*) FROM folders WHERE folder_name = 'Junk'") == 0);
  }
  SUBCASE("the listener's dmarc= wins over the table either way") {
    dns.records["_dmarc.remote.test"] = "v=DMARC1; p=reject";
    backends::SmtpBackendOptions bo = dns.options();
    bo.dmarc_enforce = true;  // no auth_policy row: the listener enforces
    Conversation c({}, bo);
    std::string r = send_checked(c, dns, signed_from_remote(*key));
    CHECK(r.find("550 5.7.1 ") != std::string::npos);
    bo.dmarc_enforce = false;  // the table enforces, the listener only reports
    Conversation d({}, bo);
    REQUIRE(d.store->directory().set_auth_policy("*", store::AuthPolicy::Enforce).ok());
    r = send_checked(d, dns, signed_from_remote(*key));
    CHECK(r.find("250 2.0.0 OK queued as ") != std::string::npos);
  }
  SUBCASE("pct=0: the policy is not applied") {
    dns.records["_dmarc.remote.test"] = "v=DMARC1; p=reject; pct=0";
    Conversation c({}, dns.options());
    REQUIRE(c.store->directory().set_auth_policy("local.test", store::AuthPolicy::Enforce).ok());
    std::string r = send_checked(c, dns, signed_from_remote(*key));
    CHECK(r.find("250 2.0.0 OK queued as ") != std::string::npos);
  }
  SUBCASE("the organizational domain's record for a subdomain (sp=)") {
    dns.records["_dmarc.mail.remote.test"] = "";  // no such name
    dns.records["_dmarc.remote.test"] = "v=DMARC1; p=none; sp=reject";
    Conversation c({}, dns.options());
    REQUIRE(c.store->directory().set_auth_policy("local.test", store::AuthPolicy::Enforce).ok());
    std::string r = send_checked(c, dns, signed_from_remote(*key, "x@mail.remote.test"));
    CHECK(r.find("550 5.7.1 Message rejected by the DMARC policy of mail.remote.test") != std::string::npos);
  }
}

TEST_CASE("smtp backend: submissions are DKIM-signed with the From domain's keys") {
  SPLIT_SUBCASES();
  auto ed = crypto::PrivateKey::generate(crypto::KeyType::Ed25519);
  auto rsa = crypto::PrivateKey::generate(crypto::KeyType::Rsa, 1024);
  REQUIRE(ed);
  REQUIRE(rsa);
  smtp::ServerOptions o;
  o.auth_enabled = true;
  o.tls_active = true;
  Conversation a(o);
  store::Directory& d = a.store->directory();
  REQUIRE(d.add_dkim_key({"local.test", "ed", "ed25519-sha256", ed->pem(), 1}).ok());
  REQUIRE(d.add_dkim_key({"local.test", "rsa", "rsa-sha256", rsa->pem(), 1}).ok());
  a.say("EHLO laptop.test\r\n", "250 ");
  a.say("AUTH PLAIN " + sasl::base64_encode(std::string("\0alice\0wonderland", 17)) + "\r\n", "235 ");
  std::string r = a.say("MAIL FROM:<alice@local.test>\r\nRCPT TO:<far@remote.test>\r\nDATA\r\n"
                        "From: Alice <alice@Local.Test>\r\nTo: far@remote.test\r\nSubject: signed\r\n\r\nhello\r\n.\r\n",
                        "250 2.0.0 OK queued as ");
  auto data = a.db()->query_text("SELECT mail_data FROM outbox");
  REQUIRE(data.has_value());
  CHECK(data->starts_with("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=local.test; s=ed;"));
  // Both signatures verify (the Received field added after signing is not signed).
  mail::dkim::Verifier v;
  v.feed(*data);
  v.finish();
  for (const auto& [i, name] : v.key_queries()) {
    const crypto::PrivateKey& k = name.starts_with("ed.") ? *ed : *rsa;
    v.set_key(i, {mail::DnsStatus::Ok, {key_record(k)}, ""});
  }
  auto results = v.results();
  REQUIRE(results.size() == 2);
  CHECK(results[0].result == mail::dkim::Answer::Pass);
  CHECK(results[1].result == mail::dkim::Answer::Pass);
  bool logged = false;
  for (const auto& [level, line] : a.logged) logged = logged || line.find("signed=dkim") != std::string::npos;
  CHECK(logged);
  // From a domain without keys (or a subdomain of none): not signed.
  REQUIRE(d.add_address("alice@other.test", "store", std::string_view("alice"), std::nullopt).has_value());
  a.say("MAIL FROM:<alice@other.test>\r\nRCPT TO:<far@remote.test>\r\nDATA\r\n"
        "From: alice@other.test\r\n\r\nhello\r\n.\r\n",
        "250 2.0.0 OK queued as ");
  CHECK(count(*a.db(), "SELECT COUNT(*) FROM outbox WHERE mail_data LIKE 'DKIM-Signature:%'") == 1);
  // A subdomain uses the parent's keys (relaxed alignment, RFC 7489 3.1.1).
  a.say("MAIL FROM:<alice@local.test>\r\nRCPT TO:<far@remote.test>\r\nDATA\r\n"
        "From: alice@news.local.test\r\n\r\nhello\r\n.\r\n",
        "250 2.0.0 OK queued as ");
  CHECK(count(*a.db(), "SELECT COUNT(*) FROM outbox WHERE mail_data LIKE 'DKIM-Signature:%d=local.test%'") == 2);
}
