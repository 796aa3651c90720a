// SCRAM-SHA-256[-PLUS] in the three server engines: SMTP AUTH (RFC 4954), POP3 AUTH (RFC 5034)
// and IMAP AUTHENTICATE (RFC 9051 6.2.2), with RFC 7677 3's example exchange (the server's nonce
// injected), each conversation fed whole, byte by byte and in random splits (harness.h).
#include "harness.h"
#include "imap_fake_session.h"
#include "scram_vectors.h"

#include <cmail/imap/server.h>
#include <cmail/pop3/server.h>
#include <cmail/smtp/server.h>

using namespace cmail;
using namespace cmail::test;
namespace v = cmail::test::rfc7677;

namespace {

const std::string kExporter(32, '\x42');
const std::string kOtherExporter(32, '\x43');
const std::string kNonce = v::kClientNonce + v::kServerNonce;
const std::string kServerFirst = v::kServerFirst;

std::string line(const std::string& raw) { return v::b64(raw) + "\r\n"; }

// The client-final of the example client with `password` and, for -PLUS, its binding.
std::string final_for(const std::string& password, const std::string& exporter = {}) {
  return v::client_final("user", password, kServerFirst, exporter);
}

// The client-first of the example client, bound to `exporter` (-PLUS) or not.
std::string first_for(const std::string& exporter = {}) {
  return sasl::ScramClient("", "user", "pencil", exporter, v::kClientNonce).initial_response();
}

// The server-final a server bound to `exporter` sends for the right password.
std::string server_final(const std::string& exporter) {
  sasl::ScramClient c("", "user", "pencil", exporter, v::kClientNonce);
  const std::string f = c.respond(kServerFirst);
  sasl::ScramServer s(!exporter.empty(), exporter, v::options());
  const auto creds = v::credentials();
  s.start(c.initial_response());
  s.credentials(&creds);
  return std::get<sasl::ScramServer::Challenge>(s.step(f)).data;
}

// The salt in a base64 server-first challenge line ("334 ..." or "+ ...").
std::string salt_of(const std::string& reply, std::size_t prefix) {
  auto raw = base64_decode(reply.substr(prefix, reply.size() - prefix - 2));
  REQUIRE(raw);
  auto s = raw->find(",s=");
  return raw->substr(s, raw->find(",i=") - s);
}

struct SmtpSession : smtp::Session {
  std::vector<std::string> calls;
  bool pend = false;
  smtp::Verdict scram_credentials(const smtp::SessionInfo&, const std::string& user) override {
    calls.push_back("CREDENTIALS " + user);
    if (pend) return smtp::Verdict::pending();
    if (user == "user") return smtp::Verdict::scram(v::credentials());
    if (user == "locked") return smtp::Verdict::reject(smtp::reply(454, {4, 7, 0}, "Too many failed authentications"));
    return smtp::Verdict::scram(std::nullopt);
  }
  smtp::Verdict scram_auth(const smtp::SessionInfo&, const sasl::ScramResult& r) override {
    calls.push_back((r.proved ? "PROVED " : "NOT PROVED ") + r.authzid + "/" + r.authcid);
    if (r.proved && (r.authzid.empty() || r.authzid == r.authcid)) return smtp::Verdict::authenticated(r.authcid);
    return smtp::Verdict::reject(smtp::reply(535, {5, 7, 8}, "Authentication credentials invalid"));
  }
  smtp::Verdict mail(const smtp::SessionInfo&, const smtp::Path&, const smtp::MailParams&) override {
    return smtp::Verdict::accept();
  }
  smtp::Verdict rcpt(const smtp::SessionInfo&, const smtp::Path&, const smtp::RcptParams&) override {
    return smtp::Verdict::accept();
  }
  void data_chunk(std::string_view) override {}
  smtp::Verdict data_end(const smtp::SessionInfo&) override { return smtp::Verdict::accept(); }
};

smtp::ServerOptions smtp_options() {
  smtp::ServerOptions o;
  o.hostname = "mx.test";
  o.auth_enabled = true;
  o.tls_active = true;
  o.scram = v::options();
  return o;
}

struct Smtp {
  SmtpSession session;
  smtp::Server server;
  explicit Smtp(const smtp::ServerOptions& o = smtp_options(), const std::string& exporter = {})
      : server(o, session) {
    if (!exporter.empty()) server.tls_established({"TLSv1.2", "X", 128, exporter});  // implicit TLS
    take_output(server);
  }
  std::string say(const std::string& bytes) {
    feed(server, bytes);
    return take_output(server);
  }
};

}  // namespace

TEST_CASE("scram in smtp::Server: RFC 7677's exchange, offered only when enabled") {
  SPLIT_SUBCASES();
  Smtp s;
  CHECK(s.say("EHLO client.test\r\n").ends_with("250 AUTH PLAIN LOGIN SCRAM-SHA-256\r\n"));
  CHECK(s.say("AUTH SCRAM-SHA-256-PLUS " + v::b64(first_for(kExporter)) + "\r\n") ==
        "504 5.5.4 Unrecognized authentication type\r\n");  // no channel binding here
  CHECK(s.say("AUTH SCRAM-SHA-256 " + line(v::kClientFirst)) == "334 " + line(kServerFirst));
  CHECK(s.server.state() == smtp::Server::State::Auth);
  CHECK(s.say(line(v::kClientFinal)) == "334 " + line(v::kServerFinal));
  // RFC 4954 4: the server's additional data is a challenge, answered with an empty line.
  CHECK(s.say("\r\n") == "235 2.7.0 Authentication successful\r\n");
  CHECK(s.server.info().user == std::optional<std::string>("user"));
  CHECK(s.session.calls == std::vector<std::string>{"CREDENTIALS user", "PROVED /user"});

  smtp::ServerOptions off = smtp_options();
  off.scram = {};
  Smtp p(off);
  CHECK(p.say("EHLO client.test\r\n").ends_with("250 AUTH PLAIN LOGIN\r\n"));
  CHECK(p.say("AUTH SCRAM-SHA-256 " + line(v::kClientFirst)) == "504 5.5.4 Unrecognized authentication type\r\n");
  CHECK(p.session.calls.empty());
}

TEST_CASE("scram in smtp::Server: the lookup may pend; pipelined lines wait behind it") {
  SPLIT_SUBCASES();
  Smtp s;
  s.say("EHLO client.test\r\n");
  s.session.pend = true;
  // Without an initial response first: an empty challenge asks for the client-first-message.
  CHECK(s.say("AUTH SCRAM-SHA-256\r\n") == "334 \r\n");
  CHECK(s.say(line(v::kClientFirst)).empty());
  // Answered without credentials: made-up ones, and the proof fails as for a wrong password.
  REQUIRE(s.server.complete(smtp::Verdict::scram(std::nullopt)).ok());
  const std::string made_up = take_output(s.server);
  CHECK(made_up.starts_with("334 "));
  CHECK(made_up != "334 " + line(kServerFirst));
  CHECK(s.say(line(v::kClientFinal)) == "535 5.7.8 Authentication credentials invalid\r\n");
  CHECK(s.session.calls == std::vector<std::string>{"CREDENTIALS user", "NOT PROVED /user"});
  Smtp t;
  t.say("EHLO client.test\r\n");
  t.session.pend = true;
  CHECK(t.say("AUTH SCRAM-SHA-256 " + line(v::kClientFirst) + line(v::kClientFinal) + "\r\nNOOP\r\n").empty());
  REQUIRE(t.server.complete(smtp::Verdict::scram(v::credentials())).ok());
  CHECK(take_output(t.server) == "334 " + line(kServerFirst) + "334 " + line(v::kServerFinal) +
                                     "235 2.7.0 Authentication successful\r\n250 2.0.0 OK\r\n");
}

TEST_CASE("scram in smtp::Server: wrong password, unknown user, malformed, refused lookup") {
  SPLIT_SUBCASES();
  smtp::ServerOptions o = smtp_options();
  o.max_auth_failures = 10;
  o.max_errors = 50;
  o.scram.secret = "test secret";
  Smtp s(o);
  s.say("EHLO client.test\r\n");
  s.say("AUTH SCRAM-SHA-256 " + line(v::kClientFirst));
  CHECK(s.say(line(final_for("pencil2"))) == "535 5.7.8 Authentication credentials invalid\r\n");
  CHECK(s.session.calls.back() == "NOT PROVED /user");
  // An unknown user gets a salt and count all the same, the same on every try; the proof fails.
  const std::string nobody = "n,,n=nobody,r=" + v::kClientNonce;
  const std::string a = s.say("AUTH SCRAM-SHA-256 " + line(nobody));
  REQUIRE(a.starts_with("334 "));
  CHECK(s.say("*\r\n") == "501 5.0.0 Authentication cancelled\r\n");
  const std::string b = s.say("AUTH SCRAM-SHA-256 " + line(nobody));
  CHECK(a == b);
  CHECK(salt_of(a, 4) != ",s=W22ZaJ0SNY7soEsUEjb6gQ==");
  auto server_first = base64_decode(a.substr(4, a.size() - 6));
  REQUIRE(server_first);
  CHECK(s.say(line(v::client_final("nobody", "pencil", *server_first))) ==
        "535 5.7.8 Authentication credentials invalid\r\n");
  CHECK(s.session.calls.back() == "NOT PROVED /nobody");
  // Malformed: a failure without asking the Session anything more.
  const auto calls = s.session.calls.size();
  CHECK(s.say("AUTH SCRAM-SHA-256 " + line("n,,n=user")) == "535 5.7.8 Authentication credentials invalid\r\n");
  CHECK(s.say("AUTH SCRAM-SHA-256 " + line("n,,m=x,n=user,r=abc")) == "535 5.7.8 Authentication credentials invalid\r\n");
  CHECK(s.session.calls.size() == calls);
  s.say("AUTH SCRAM-SHA-256 " + line(v::kClientFirst));
  CHECK(s.say(line("c=biws,r=" + kNonce + "XX,p=" + v::b64(std::string(32, 'x')))) ==
        "535 5.7.8 Authentication credentials invalid\r\n");
  s.say("AUTH SCRAM-SHA-256 " + line(v::kClientFirst));
  CHECK(s.say("not base64!\r\n") == "501 5.5.2 Invalid base64 data\r\n");
  // The Session refuses the lookup (its guard, say): that reply, counted as a failure.
  CHECK(s.say("AUTH SCRAM-SHA-256 " + line("n,,n=locked,r=abc")) == "454 4.7.0 Too many failed authentications\r\n");
  CHECK(s.server.state() == smtp::Server::State::Ready);
  // An authzid the Session does not allow.
  s.say("AUTH SCRAM-SHA-256 " + line("n,a=admin,n=user,r=" + v::kClientNonce));
  sasl::ScramClient admin("admin", "user", "pencil", "", v::kClientNonce);
  const std::string admin_final = admin.respond(kServerFirst);
  const std::string reply = s.say(line(admin_final));
  REQUIRE(reply.starts_with("334 "));
  CHECK(s.say("\r\n") == "535 5.7.8 Authentication credentials invalid\r\n");
  CHECK(s.session.calls.back() == "PROVED admin/user");
  CHECK_FALSE(s.server.info().user);
  // Still possible afterwards.
  s.say("AUTH SCRAM-SHA-256 " + line(v::kClientFirst));
  s.say(line(v::kClientFinal));
  CHECK(s.say("\r\n") == "235 2.7.0 Authentication successful\r\n");
}

TEST_CASE("scram in smtp::Server: three failed proofs close the connection") {
  SPLIT_SUBCASES();
  Smtp s;
  s.say("EHLO client.test\r\n");
  const std::string attempt = "AUTH SCRAM-SHA-256 " + line(v::kClientFirst) + line(final_for("x"));
  CHECK(s.say(attempt + attempt + attempt).ends_with("421 4.7.0 mx.test Too many authentication failures\r\n"));
  expect_event<proto::Close>(s.server);
}

TEST_CASE("scram in smtp::Server: SCRAM-SHA-256-PLUS after STARTTLS; binding mismatch and downgrade refused") {
  SPLIT_SUBCASES();
  smtp::ServerOptions o = smtp_options();
  o.tls_active = false;
  o.starttls_available = true;
  o.auth_requires_tls = false;
  Smtp s(o);
  CHECK(s.say("EHLO client.test\r\n").ends_with("250 AUTH PLAIN LOGIN SCRAM-SHA-256\r\n"));
  s.say("STARTTLS\r\n");
  expect_event<proto::StartTls>(s.server);
  s.server.tls_established({"TLSv1.2", "X", 128, kExporter});
  CHECK(s.say("EHLO client.test\r\n").ends_with("250 AUTH PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS\r\n"));
  // Bound to another channel (someone in between, RFC 5802 6): refused.
  s.say("AUTH SCRAM-SHA-256-PLUS " + line(first_for(kOtherExporter)));
  CHECK(s.say(line(final_for("pencil", kOtherExporter))) == "535 5.7.8 Authentication credentials invalid\r\n");
  // "y": the client could bind but saw no -PLUS, which we offered: a downgrade.
  CHECK(s.say("AUTH SCRAM-SHA-256 " + line("y,,n=user,r=" + v::kClientNonce)) ==
        "535 5.7.8 Authentication credentials invalid\r\n");
  CHECK(s.session.calls == std::vector<std::string>{"CREDENTIALS user"});
  // The right binding.
  CHECK(s.say("AUTH SCRAM-SHA-256-PLUS " + line(first_for(kExporter))) == "334 " + line(kServerFirst));
  CHECK(s.say(line(final_for("pencil", kExporter))) == "334 " + line(server_final(kExporter)));
  CHECK(s.say("\r\n") == "235 2.7.0 Authentication successful\r\n");

  // A TLS connection without an exporter (no extended master secret): no -PLUS, "y" is fine.
  Smtp t(smtp_options());
  CHECK(t.say("EHLO client.test\r\n").ends_with("250 AUTH PLAIN LOGIN SCRAM-SHA-256\r\n"));
  CHECK(t.say("AUTH SCRAM-SHA-256 " + line("y,,n=user,r=" + v::kClientNonce)) == "334 " + line(kServerFirst));
  CHECK(t.say("*\r\n") == "501 5.0.0 Authentication cancelled\r\n");
}

namespace {

struct Pop3Session : pop3::Session {
  std::vector<std::string> calls;
  bool pend = false;
  pop3::Verdict login(const sasl::Credentials&) override {
    return pop3::Verdict::reject(pop3::RespCode::Auth, "Invalid user name or password");
  }
  pop3::Verdict scram_credentials(const std::string& user) override {
    calls.push_back("CREDENTIALS " + user);
    if (pend) return pop3::Verdict::pending();
    return user == "user" ? pop3::Verdict::scram(v::credentials()) : pop3::Verdict::scram(std::nullopt);
  }
  pop3::Verdict scram_login(const sasl::ScramResult& r) override {
    calls.push_back((r.proved ? "PROVED " : "NOT PROVED ") + r.authcid);
    if (!r.proved) return pop3::Verdict::reject(pop3::RespCode::Auth, "Invalid user name or password");
    return pop3::Verdict::maildrop(r.authcid, {{5, "u1"}});
  }
  pop3::Verdict retrieve(std::size_t) override { return pop3::Verdict::message("x\r\n"); }
  pop3::Verdict update(const std::vector<std::size_t>&) override { return pop3::Verdict::accept(); }
};

}  // namespace

TEST_CASE("scram in pop3::Server: RFC 7677's exchange, -PLUS, failures") {
  SPLIT_SUBCASES();
  pop3::ServerOptions o;
  o.hostname = "pop.test";
  o.scram = v::options();
  Pop3Session session;
  pop3::Server s(o, session);
  take_output(s);
  feed(s, "CAPA\r\n");
  CHECK(take_output(s).find("SASL PLAIN LOGIN SCRAM-SHA-256\r\n") != std::string::npos);
  feed(s, "AUTH\r\n");
  CHECK(take_output(s) == "+OK SASL mechanisms follow\r\nPLAIN\r\nLOGIN\r\nSCRAM-SHA-256\r\n.\r\n");
  // Wrong password, then the example; the lookup pends once.
  feed(s, "AUTH SCRAM-SHA-256 " + line(v::kClientFirst) + line(final_for("nope")));
  CHECK(take_output(s) == "+ " + line(kServerFirst) + "-ERR [AUTH] Invalid user name or password\r\n");
  session.pend = true;
  feed(s, "AUTH SCRAM-SHA-256\r\n" + line(v::kClientFirst) + line(v::kClientFinal) + "\r\nSTAT\r\n");
  CHECK(take_output(s) == "+ \r\n");
  REQUIRE(s.complete(pop3::Verdict::scram(v::credentials())).ok());
  CHECK(take_output(s) == "+ " + line(kServerFirst) + "+ " + line(v::kServerFinal) +
                              "+OK Logged in, maildrop has 1 messages (5 octets)\r\n+OK 1 5\r\n");
  CHECK(session.calls ==
        std::vector<std::string>{"CREDENTIALS user", "NOT PROVED user", "CREDENTIALS user", "PROVED user"});

  // -PLUS on POP3S with a binding; a mismatch refused.
  Pop3Session other;
  o.tls_active = true;
  pop3::Server t(o, other);
  t.tls_established({"TLSv1.2", "X", 128, kExporter});
  take_output(t);
  feed(t, "AUTH\r\n");
  CHECK(take_output(t) == "+OK SASL mechanisms follow\r\nPLAIN\r\nLOGIN\r\nSCRAM-SHA-256\r\nSCRAM-SHA-256-PLUS\r\n.\r\n");
  feed(t, "AUTH SCRAM-SHA-256-PLUS " + line(first_for(kOtherExporter)) + line(final_for("pencil", kOtherExporter)));
  CHECK(take_output(t) == "+ " + line(kServerFirst) + "-ERR [AUTH] Authentication failed\r\n");
  feed(t, "AUTH SCRAM-SHA-256 " + line("y,,n=user,r=abc"));
  CHECK(take_output(t) == "-ERR [AUTH] Authentication failed\r\n");
  feed(t, "AUTH SCRAM-SHA-256-PLUS " + line(first_for(kExporter)) + line(final_for("pencil", kExporter)) + "\r\n");
  CHECK(take_output(t) == "+ " + line(kServerFirst) + "+ " + line(server_final(kExporter)) +
                              "+OK Logged in, maildrop has 1 messages (5 octets)\r\n");
}

namespace {

struct ImapSession : MemoryMailboxSession {
  bool pend = false;
  imap::Verdict scram_credentials(const std::string& user) override {
    calls.push_back("CREDENTIALS " + user);
    if (pend) return imap::Verdict::pending();
    return user == "user" ? imap::Verdict::scram(v::credentials()) : imap::Verdict::scram(std::nullopt);
  }
  imap::Verdict scram_login(const sasl::ScramResult& r) override {
    calls.push_back((r.proved ? "PROVED " : "NOT PROVED ") + r.authcid);
    if (!r.proved) return imap::Verdict::reject(imap::RespCode::AuthenticationFailed, "Invalid user name or password");
    return imap::Verdict::user(r.authcid);
  }
};

}  // namespace

TEST_CASE("scram in imap::Server: RFC 7677's exchange with and without SASL-IR, -PLUS, failures") {
  SPLIT_SUBCASES();
  imap::ServerOptions o;
  o.scram = v::options();
  ImapSession session;
  imap::Server s(o, session);
  CHECK(take_output(s).find(" AUTH=PLAIN AUTH=LOGIN AUTH=SCRAM-SHA-256]") != std::string::npos);
  feed(s, "a1 AUTHENTICATE SCRAM-SHA-256\r\n");
  CHECK(take_output(s) == "+ \r\n");
  feed(s, line(v::kClientFirst));
  CHECK(take_output(s) == "+ " + line(kServerFirst));
  feed(s, line(final_for("wrong")));
  CHECK(take_output(s) == "a1 NO [AUTHENTICATIONFAILED] Invalid user name or password\r\n");
  feed(s, "a2 AUTHENTICATE SCRAM-SHA-256 " + line(v::kClientFirst));
  CHECK(take_output(s) == "+ " + line(kServerFirst));
  feed(s, line(v::kClientFinal));
  CHECK(take_output(s) == "+ " + line(v::kServerFinal));
  feed(s, "\r\n");
  CHECK(take_output(s).starts_with("a2 OK [CAPABILITY IMAP4rev2 "));
  CHECK(s.user() == "user");
  CHECK(session.calls == std::vector<std::string>{"CREDENTIALS user", "NOT PROVED user", "CREDENTIALS user", "PROVED user"});

  ImapSession other;
  other.pend = true;
  imap::Server t(o, other);
  t.tls_established({"TLSv1.2", "X", 128, kExporter});
  take_output(t);
  feed(t, "c1 CAPABILITY\r\n");
  CHECK(take_output(t).find(" AUTH=SCRAM-SHA-256 AUTH=SCRAM-SHA-256-PLUS\r\n") != std::string::npos);
  feed(t, "c2 AUTHENTICATE SCRAM-SHA-256-PLUS " + line(first_for(kOtherExporter)) +
              line(final_for("pencil", kOtherExporter)) + "c3 NOOP\r\n");
  CHECK(take_output(t).empty());
  REQUIRE(t.complete(imap::Verdict::scram(v::credentials())).ok());
  CHECK(take_output(t) == "+ " + line(kServerFirst) + "c2 NO [AUTHENTICATIONFAILED] Authentication failed\r\n" +
                              "c3 OK NOOP completed\r\n");
  other.pend = false;
  feed(t, "c4 AUTHENTICATE SCRAM-SHA-256 " + line("y,,n=user,r=abc"));
  CHECK(take_output(t) == "c4 NO [AUTHENTICATIONFAILED] Authentication failed\r\n");
  CHECK(take_output(t).empty());
}
