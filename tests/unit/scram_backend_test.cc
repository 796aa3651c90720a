// SCRAM in the store (credentials made with the password, made-up ones for the rest) and in the
// store-backed sessions of SMTP, POP3 and IMAP, driven through their engines.
#include "fakes.h"
#include "harness.h"
#include "testutil.h"

#include <cmail/backends/imap_session.h>
#include <cmail/backends/pop3_session.h>
#include <cmail/backends/smtp_session.h>
#include <cmail/store/directory.h>
#include <cmail/store/password.h>

using namespace cmail;
using namespace cmail::test;

namespace {

// The credentials must be those of `password` with their own salt and count.
bool made_from(const sasl::ScramCredentials& c, const std::string& password) {
  auto d = sasl::scram_derive(password, c.salt, c.iterations);
  return c.known && d && d->stored_key == c.stored_key && d->server_key == c.server_key;
}

// Runs one SCRAM exchange on an engine: `send(line)` feeds a line and returns the output up to
// the next challenge or final reply; `prefix` is the challenge prefix ("334 ", "+ ").
template <typename Send>
std::string exchange(Send send, const std::string& start, sasl::ScramClient& client, const std::string& prefix) {
  std::string out = send(start + " " + base64_encode(client.initial_response()) + "\r\n");
  for (int i = 0; i < 3 && out.starts_with(prefix); ++i) {
    auto challenge = base64_decode(out.substr(prefix.size(), out.size() - prefix.size() - 2));
    REQUIRE(challenge);
    const std::string response = client.respond(*challenge);
    out = send((response == "*" ? response : base64_encode(response)) + "\r\n");
  }
  return out;
}

struct Store {
  TempDir dir;
  std::unique_ptr<store::Store> store = open_store(dir.file("master.db3"));
  FakeLoop loop;
  store::Directory& d = store->directory();
  Store() {
    REQUIRE(d.add_user("alice", std::string_view("wonderland")).ok());
    REQUIRE(d.add_user("al", std::string_view("alias-pw")).ok());
    REQUIRE(d.set_alias("al", std::string_view("alice")).ok());
    REQUIRE(d.add_user("bob", std::string_view("builder")).ok());
    REQUIRE(d.enable_smtpd("alice", std::string_view("any"), std::nullopt).ok());
    REQUIRE(d.enable_popd("alice").ok());
    REQUIRE(d.enable_imapd("alice").ok());
  }
  std::int64_t rows(const std::string& user) {
    auto c = raw(dir.file("master.db3"));
    return count(*c, "SELECT COUNT(*) FROM scram WHERE scram_user = '" + user + "'");
  }
};

}  // namespace

TEST_CASE("scram store: credentials made with the password, replaced with it, gone with it") {
  Store s;
  auto alice = s.d.scram_credentials("alice");
  REQUIRE(alice.has_value());
  CHECK(alice->iterations == sasl::kScramIterations);
  CHECK(alice->salt.size() == 16);
  CHECK(made_from(*alice, "wonderland"));
  CHECK(s.d.scram_credentials("bob")->salt != alice->salt);  // a salt per user

  REQUIRE(s.d.set_password("alice", std::string_view("looking-glass")).ok());
  auto changed = s.d.scram_credentials("alice");
  CHECK(made_from(*changed, "looking-glass"));
  CHECK(changed->salt != alice->salt);

  // Unknown, disabled, no credentials: made up, the same every time and from another Store of
  // the same file (the secret is the database's), a salt per name.
  auto nobody = s.d.scram_credentials("nobody");
  REQUIRE(nobody.has_value());
  CHECK_FALSE(nobody->known);
  CHECK(nobody->iterations == sasl::kScramIterations);
  CHECK(nobody->salt.size() == 16);
  CHECK(s.d.scram_credentials("nobody")->salt == nobody->salt);
  CHECK(s.d.scram_credentials("somebody")->salt != nobody->salt);
  {
    auto c = raw(s.dir.file("master.db3"));
    CHECK(count(*c, "SELECT COUNT(*) FROM meta WHERE key = 'scram_secret'") == 1);
  }
  auto other = open_store(s.dir.file("master.db3"));
  CHECK(other->directory().scram_credentials("nobody")->salt == nobody->salt);
  REQUIRE(s.d.set_password("bob", std::nullopt).ok());  // login disabled
  CHECK(s.rows("bob") == 0);
  CHECK_FALSE(s.d.scram_credentials("bob")->known);
  REQUIRE(s.d.set_password("bob", std::string_view("builder")).ok());
  CHECK(made_from(*s.d.scram_credentials("bob"), "builder"));
  REQUIRE(s.d.set_authdata("bob", std::nullopt).ok());  // revoke
  CHECK(s.rows("bob") == 0);

  // A password SASLprep cannot prepare gets none; PLAIN still works.
  REQUIRE(s.d.add_user("carol", std::string_view("\xE2\x85\xA8-roman")).ok());
  CHECK(s.rows("carol") == 0);
  CHECK(s.d.authenticate("carol", "\xE2\x85\xA8-roman").has_value());
  CHECK(s.rows("carol") == 0);

  CHECK(s.d.scram_identity("al")->authorized == "alice");
  CHECK(s.d.scram_identity("alice")->authenticated == "alice");
  CHECK(s.d.scram_identity("nobody").error().is_not_found());
  CHECK(s.d.scram_identity("bob").error().is_not_found());
}

TEST_CASE("scram store: a log-in with the password makes what is missing: legacy hashes, older users") {
  Store s;
  // A legacy hash set as is (an import): no credentials until the password is seen.
  REQUIRE(s.d.set_authdata("alice", store::legacy_password_hash("salt", "wonderland")).ok());
  CHECK(s.rows("alice") == 0);
  CHECK_FALSE(s.d.authenticate("alice", "wrong").has_value());
  CHECK(s.rows("alice") == 0);
  REQUIRE(s.d.authenticate("alice", "wonderland").has_value());  // rehashed, and credentials made
  CHECK(s.d.find_user("alice")->value().authdata->starts_with("$argon2id$"));
  CHECK(made_from(*s.d.scram_credentials("alice"), "wonderland"));
  // A user from before SCRAM (an argon2 hash, no row): made at the next log-in.
  auto c = raw(s.dir.file("master.db3"));
  c->exec("DELETE FROM scram WHERE scram_user = 'bob'");
  CHECK(s.rows("bob") == 0);
  REQUIRE(s.d.authenticate("bob", "builder").has_value());
  CHECK(made_from(*s.d.scram_credentials("bob"), "builder"));
  // A stored row that cannot be read is none (and logged), never a crash.
  c->exec("UPDATE scram SET scram_salt = '!!' WHERE scram_user = 'bob'");
  CHECK_FALSE(s.d.scram_credentials("bob")->known);
}

namespace {

struct Smtp {
  Store& s;
  std::unique_ptr<backends::StoreSmtpSession> session;
  std::unique_ptr<smtp::Server> server;
  std::vector<std::string> logged;
  explicit Smtp(Store& st, std::shared_ptr<backends::AuthGuard> guard = nullptr) : s(st) {
    backends::SmtpBackendOptions bo;
    bo.auth_guard = std::move(guard);
    session = std::make_unique<backends::StoreSmtpSession>(*s.store, bo, proto::PeerInfo{"192.0.2.9", 40000, "c.test"},
                                                           s.loop.executor());
    session->set_logger([this](int, std::string_view l) { logged.emplace_back(l); });
    smtp::ServerOptions o;
    o.auth_enabled = true;
    o.tls_active = true;
    o.max_auth_failures = 10;
    o.scram.enabled = true;
    server = std::make_unique<smtp::Server>(o, *session);
    session->set_completion([this](smtp::Verdict v) { REQUIRE(server->complete(std::move(v)).ok()); });
    take_output(*server);
    feed(*server, "EHLO c.test\r\n");
    CHECK(take_output(*server).ends_with("250 AUTH PLAIN LOGIN SCRAM-SHA-256\r\n"));
  }
  std::string line(const std::string& bytes) {
    feed(*server, bytes);
    std::string out;
    s.loop.pump([&] {
      out += take_output(*server);
      return out.ends_with("\r\n");
    });
    return out;
  }
  std::string scram(const std::string& user, const std::string& password, const std::string& authzid = "") {
    sasl::ScramClient client(authzid, user, password);
    std::string out = exchange([this](const std::string& b) { return line(b); }, "AUTH SCRAM-SHA-256", client, "334 ");
    if (out.starts_with("235 ")) CHECK(client.server_verified());
    return out;
  }
};

}  // namespace

TEST_CASE("scram smtp backend: log in, wrong password and unknown user alike, the guard counts") {
  SPLIT_SUBCASES();
  Store s;
  auto guard = std::make_shared<backends::AuthGuard>();
  {
    Smtp c(s, guard);
    CHECK(c.scram("alice", "wrong") == "535 5.7.8 Authentication credentials invalid\r\n");
    CHECK(c.scram("nobody", "wonderland") == "535 5.7.8 Authentication credentials invalid\r\n");
    CHECK(c.scram("alice", "wonderland", "bob") == "535 5.7.8 Authentication credentials invalid\r\n");
    CHECK(c.scram("alice", "wonderland") == "235 2.7.0 Authentication successful\r\n");
    CHECK(c.server->info().user == std::optional<std::string>("alice"));
    REQUIRE(c.logged.size() == 4);
    CHECK(c.logged[0] == "auth failed proto=smtp addr=192.0.2.9 user=alice reason=bad-credentials");
    CHECK(c.logged[1] == "auth failed proto=smtp addr=192.0.2.9 user=nobody reason=bad-credentials");
    CHECK(c.logged[2] == "auth failed proto=smtp addr=192.0.2.9 user=alice reason=authzid-mismatch");
    CHECK(c.logged[3] == "auth ok proto=smtp addr=192.0.2.9 user=alice identity=alice");
  }
  // The failures were counted: the next attempt from the address waits first.
  CHECK(guard->admit("192.0.2.9", "nobody").wait.count() > 0);
  {
    Smtp c(s);
    CHECK(c.scram("al", "alias-pw") == "235 2.7.0 Authentication successful\r\n");  // an alias: its target
    CHECK(c.server->info().user == std::optional<std::string>("alice"));
  }
  // The password changes (by any program): the old credentials are gone at once.
  REQUIRE(s.d.set_authdata("alice", store::legacy_password_hash("x", "new")).ok());
  Smtp c(s);
  CHECK(c.scram("alice", "wonderland") == "535 5.7.8 Authentication credentials invalid\r\n");
  CHECK(c.scram("alice", "new") == "535 5.7.8 Authentication credentials invalid\r\n");
  feed(*c.server, "AUTH PLAIN " + base64_encode(std::string("\0alice\0new", 10)) + "\r\n");
  std::string out;
  s.loop.pump([&] { return (out += take_output(*c.server)).ends_with("\r\n"); });
  CHECK(out == "235 2.7.0 Authentication successful\r\n");
  Smtp again(s);
  CHECK(again.scram("alice", "new") == "235 2.7.0 Authentication successful\r\n");
}

TEST_CASE("scram pop3 and imap backends: the maildrop, the imapd row, aliases") {
  SPLIT_SUBCASES();
  Store s;
  auto pop3 = [&](const std::string& user, const std::string& password) {
    backends::StorePop3Session session(*s.store, proto::PeerInfo{"192.0.2.9", 40000, "c.test"}, s.loop.executor());
    pop3::ServerOptions o;
    o.scram.enabled = true;
    pop3::Server server(o, session);
    session.set_completion([&](pop3::Verdict v) { REQUIRE(server.complete(std::move(v)).ok()); });
    take_output(server);
    auto send = [&](const std::string& b) {
      feed(server, b);
      std::string out;
      s.loop.pump([&] { return (out += take_output(server)).ends_with("\r\n"); });
      return out;
    };
    sasl::ScramClient client("", user, password);
    std::string out = exchange(send, "AUTH SCRAM-SHA-256", client, "+ ");
    if (out.starts_with("+OK")) {
      CHECK(client.server_verified());
      CHECK(send("QUIT\r\n").starts_with("+OK"));
    }
    return out;
  };
  CHECK(pop3("alice", "wonderland") == "+OK Logged in, maildrop has 0 messages (0 octets)\r\n");
  CHECK(pop3("al", "alias-pw") == "+OK Logged in, maildrop has 0 messages (0 octets)\r\n");
  CHECK(pop3("alice", "wrong") == "-ERR [AUTH] Invalid user name or password\r\n");
  CHECK(pop3("bob", "builder") == "-ERR [AUTH] POP3 access is not enabled for this account\r\n");

  auto imap = [&](const std::string& user, const std::string& password) {
    backends::StoreImapSession session(*s.store, proto::PeerInfo{"192.0.2.9", 40000, "c.test"}, s.loop.executor());
    imap::ServerOptions o;
    o.scram.enabled = true;
    imap::Server server(o, session);
    session.set_completion([&](imap::Verdict v) { REQUIRE(server.complete(std::move(v)).ok()); });
    CHECK(take_output(server).find(" AUTH=SCRAM-SHA-256]") != std::string::npos);
    auto send = [&](const std::string& b) {
      feed(server, b);
      std::string out;
      s.loop.pump([&] { return (out += take_output(server)).ends_with("\r\n"); });
      return out;
    };
    sasl::ScramClient client("", user, password);
    std::string out = exchange(send, "a1 AUTHENTICATE SCRAM-SHA-256", client, "+ ");
    if (out.starts_with("a1 OK")) CHECK(client.server_verified());
    return out.substr(0, out.find(" [CAPABILITY") == std::string::npos ? out.size() : out.find(" [CAPABILITY"));
  };
  CHECK(imap("alice", "wonderland") == "a1 OK");
  CHECK(imap("al", "alias-pw") == "a1 OK");
  CHECK(imap("alice", "wrong") == "a1 NO [AUTHENTICATIONFAILED] Invalid user name or password\r\n");
  CHECK(imap("nobody", "x") == "a1 NO [AUTHENTICATIONFAILED] Invalid user name or password\r\n");
  CHECK(imap("bob", "builder") == "a1 NO [AUTHORIZATIONFAILED] IMAP access is not enabled for this account\r\n");
}
