#include "fakes.h"
#include "harness.h"
#include "store/schema.h"
#include "testutil.h"

#include <cmail/backends/pop3_session.h>
#include <cmail/mail/fields.h>
#include <cmail/proto/message.h>
#include <cmail/store/directory.h>
#include <cmail/store/mailbox.h>

#include <sys/wait.h>
#include <unistd.h>

using namespace cmail;
using namespace cmail::test;

namespace {

// A master database with alice (POP3 enabled), bob (no POP3) and "al", an alias of alice.
struct Maildrop {
  TempDir dir;
  std::unique_ptr<store::Store> store = open_store(dir.file("master.db3"));
  FakeLoop loop;

  Maildrop() {
    store::Directory& d = store->directory();
    REQUIRE(d.add_user("alice", std::string_view("wonderland")).ok());
    REQUIRE(d.add_user("bob", std::string_view("builder")).ok());
    REQUIRE(d.add_user("al", std::string_view("alias-pw")).ok());
    REQUIRE(d.set_alias("al", std::string_view("alice")).ok());
    REQUIRE(d.enable_popd("alice").ok());
  }
  void deliver(const std::string& user, const std::string& data, const std::string& ident = "") {
    store::Delivery d;
    d.ident = ident.empty() ? mail::new_queue_id() : ident;
    d.envelope_from = "sender@remote.test";
    d.data = data;
    d.local.push_back({user, user + "@local.test"});
    REQUIRE(store->deliver_sync(d).ok());
  }
  std::unique_ptr<store::detail::Connection> db() { return raw(dir.file("master.db3")); }
};

// One POP3 connection on the maildrop's store.
struct Client {
  Maildrop& m;
  std::unique_ptr<backends::StorePop3Session> session;
  std::unique_ptr<pop3::Server> server;
  std::string out;

  explicit Client(Maildrop& md) : m(md) {
    session = std::make_unique<backends::StorePop3Session>(*m.store, proto::PeerInfo{"192.0.2.9", 40000, "client.test"},
                                                 m.loop.executor());
    pop3::ServerOptions o;
    o.hostname = "pop.local.test";
    server = std::make_unique<pop3::Server>(o, *session);
    session->set_completion([this](pop3::Verdict v) { REQUIRE(server->complete(std::move(v)).ok()); });
    take_output(*server);
  }
  // Sends bytes; returns the output once it holds a reply that starts with one of `until`.
  std::string say(std::string_view bytes, std::initializer_list<std::string> until) {
    feed(*server, bytes);
    out.clear();
    m.loop.pump([&] {
      while (!server->pending_output().empty()) out += take_output(*server);
      for (const std::string& u : until)
        if (out.find("\r\n" + u) != std::string::npos || out.starts_with(u)) return true;
      return false;
    });
    return out;
  }
  std::string say(std::string_view bytes, const std::string& until) { return say(bytes, {until}); }
  std::string login(const std::string& user, const std::string& pw) {
    return say("USER " + user + "\r\nPASS " + pw + "\r\n", {"+OK Logged in", "-ERR"});
  }
  // Ends the connection without QUIT and lets the release run.
  void drop() {
    server->receive_eof();
    server.reset();
    session.reset();
    m.loop.run_posted();
  }
};

std::int64_t lock_of(Maildrop& m, const std::string& user) {
  return count(*m.db(), "SELECT pop_lock FROM popd WHERE pop_user = '" + user + "'");
}

}  // namespace

TEST_CASE("pop3 backend: log in, list, retrieve; sizes and unique-ids from the store") {
  SPLIT_SUBCASES();
  Maildrop m;
  m.deliver("alice", "Subject: one\r\n\r\nfirst\r\n");
  m.deliver("alice", "Subject: two\r\n\r\n.dot\r\n");
  m.deliver("bob", "Subject: not alice's\r\n\r\nx\r\n");
  Client c(m);
  const std::string total = std::to_string(23 + 22);
  std::string r = c.say("USER alice\r\nPASS wonderland\r\n", "+OK Logged in");
  CHECK(r.find("+OK Logged in, maildrop has 2 messages (" + total + " octets)\r\n") != std::string::npos);
  CHECK(lock_of(m, "alice") == 1);
  auto folder = m.store->mailboxes().find_folder("alice", "INBOX");
  REQUIRE(folder.has_value());
  const std::string v = std::to_string((*folder)->uidvalidity);
  CHECK(c.say("UIDL\r\n", "+OK") == "+OK 2 messages (" + total + " octets)\r\n1 " + v + ".1\r\n2 " + v + ".2\r\n.\r\n");
  CHECK(c.say("RETR 2\r\n", "+OK") == "+OK 22 octets\r\nSubject: two\r\n\r\n..dot\r\n.\r\n");
  CHECK(c.say("TOP 1 0\r\n", "+OK") == "+OK Top of message follows\r\nSubject: one\r\n\r\n.\r\n");
  CHECK(c.say("QUIT\r\n", "+OK") == "+OK pop.local.test POP3 server signing off (0 messages deleted)\r\n");
  CHECK(lock_of(m, "alice") == 0);
  CHECK(count(*m.db(), "SELECT COUNT(*) FROM mailbox") == 3);
}

TEST_CASE("pop3 backend: who may log in: credentials, popd row, aliases, proxy authorization") {
  Maildrop m;
  m.deliver("alice", "Subject: a\r\n\r\nx\r\n");
  {
    Client c(m);
    CHECK(c.say("USER alice\r\nPASS wrong\r\n", "-ERR") == "+OK Send PASS\r\n-ERR [AUTH] Invalid user name or password\r\n");
    CHECK(c.say("USER nobody\r\nPASS x\r\n", "-ERR") == "+OK Send PASS\r\n-ERR [AUTH] Invalid user name or password\r\n");
  }
  {
    Client c(m);  // correct password, but no popd row (docs/compatibility.md#pop3-the-popd-table)
    CHECK(c.say("USER bob\r\nPASS builder\r\n", "-ERR") ==
          "+OK Send PASS\r\n-ERR [AUTH] POP3 access is not enabled for this account\r\n");
    CHECK(lock_of(m, "alice") == 0);
  }
  {
    Client c(m);  // an alias reads its target's maildrop
    CHECK(c.say("USER al\r\nPASS alias-pw\r\n", "+OK Logged in").ends_with("+OK Logged in, maildrop has 1 messages (17 octets)\r\n"));
    CHECK(c.session->user() == "alice");
    CHECK(lock_of(m, "alice") == 1);
    c.drop();
    CHECK(lock_of(m, "alice") == 0);
  }
  {
    Client c(m);
    CHECK(c.say("AUTH PLAIN " + sasl::base64_encode(std::string("bob\0alice\0wonderland", 20)) + "\r\n", "-ERR") ==
          "-ERR [AUTH] Invalid user name or password\r\n");
    CHECK(c.say("AUTH PLAIN " + sasl::base64_encode(std::string("alice\0alice\0wonderland", 22)) + "\r\n", "+OK")
              .starts_with("+OK Logged in"));
  }
}

TEST_CASE("pop3 backend: one session per maildrop; the second gets [IN-USE]") {
  Maildrop m;
  m.deliver("alice", "Subject: a\r\n\r\nx\r\n");
  Client first(m);
  first.login("alice", "wonderland");
  Client second(m);
  CHECK(second.say("USER alice\r\nPASS wonderland\r\n", "-ERR").ends_with("-ERR [IN-USE] Maildrop is locked by another session\r\n"));
  CHECK(first.say("QUIT\r\n", "+OK").starts_with("+OK"));
  CHECK(second.say("USER alice\r\nPASS wonderland\r\n", "+OK Logged in").find("+OK Logged in") != std::string::npos);
}

TEST_CASE("pop3 backend: DELE then QUIT deletes durably before +OK; a dropped session deletes nothing") {
  Maildrop m;
  m.deliver("alice", "Subject: 1\r\n\r\nx\r\n");
  m.deliver("alice", "Subject: 2\r\n\r\nx\r\n");
  m.deliver("alice", "Subject: 3\r\n\r\nx\r\n");
  {
    Client c(m);
    c.login("alice", "wonderland");
    c.say("DELE 1\r\nDELE 3\r\n", "+OK Message 3");
    c.drop();
    CHECK(count(*m.db(), "SELECT COUNT(*) FROM mailbox WHERE mail_user = 'alice'") == 3);
    CHECK(lock_of(m, "alice") == 0);
  }
  {
    Client c(m);
    c.login("alice", "wonderland");
    c.say("DELE 1\r\nDELE 3\r\n", "+OK Message 3");
    feed(*c.server, "QUIT\r\n");
    CHECK(take_output(*c.server).empty());  // run_blocking ran inline; the +OK waits for the post
    // The deletion and the release are committed before the +OK is queued.
    CHECK(count(*m.db(), "SELECT COUNT(*) FROM mailbox WHERE mail_user = 'alice'") == 1);
    CHECK(lock_of(m, "alice") == 0);
    CHECK(c.say("", "+OK") == "+OK pop.local.test POP3 server signing off (2 messages deleted)\r\n");
    CHECK(count(*m.db(), "SELECT COUNT(*) FROM mailbox WHERE mail_data LIKE '%Subject: 2%'") == 1);
    CHECK(count(*m.db(), "SELECT COUNT(*) FROM expunged") == 2);  // IMAP sees them go (QRESYNC)
  }
}

TEST_CASE("pop3 backend: a lock whose holder is gone is taken over; a live holder's is not") {
  Maildrop m;
  m.deliver("alice", "Subject: a\r\n\r\nx\r\n");
  backends::Pop3LockHolder me = backends::Pop3LockHolder::current("s1");
  pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);  // a process that held the lock and was killed
  backends::Pop3LockHolder dead = me;
  dead.pid = child;
  backends::Pop3LockHolder reused = me;  // the pid of a live process, with another start time
  reused.pid = getppid();
  reused.start_time = 1;
  backends::Pop3LockHolder reboot = me;
  reboot.boot_id = "00000000-0000-0000-0000-000000000000";
  backends::Pop3LockHolder remote = me;
  remote.host = "elsewhere.test";
  backends::Pop3LockHolder gone_session = me;  // this process, a session that ended without releasing
  gone_session.session = "no-such-session";

  struct Case {
    const char* what;
    std::optional<std::string> holder;
    bool taken;
  };
  const Case cases[] = {
      {"killed process", dead.to_string(), true},
      {"pid reused", reused.to_string(), true},
      {"previous boot", reboot.to_string(), true},
      {"cmail's lock without a holder", std::nullopt, true},
      {"ended session of this process", gone_session.to_string(), true},
      {"another host", remote.to_string(), false},
      {"unknown holder format", std::string("popd on some box"), false},
  };
  for (const Case& k : cases) {
    CAPTURE(k.what);
    CHECK(backends::pop3_lock_holder_gone(k.holder) == k.taken);
    m.db()->prepare("UPDATE popd SET pop_lock = 1, pop_lock_owner = ?1 WHERE pop_user = 'alice'").bind(1, k.holder).run();
    Client c(m);
    std::string r = c.login("alice", "wonderland");
    if (k.taken) {
      CHECK(r.find("+OK Logged in") != std::string::npos);
      CHECK(m.db()->query_text("SELECT pop_lock_owner FROM popd")->find("session=") != std::string::npos);
      CHECK(c.say("QUIT\r\n", "+OK").starts_with("+OK"));
      CHECK(lock_of(m, "alice") == 0);
      CHECK_FALSE(m.db()->query_text("SELECT pop_lock_owner FROM popd").has_value());
    } else {
      CHECK(r.find("-ERR [IN-USE]") != std::string::npos);
      CHECK(m.db()->query_text("SELECT pop_lock_owner FROM popd") == k.holder);
    }
  }
  // cmail-admin popd unlock frees any lock, the holder record included.
  REQUIRE(m.store->directory().unlock_popd("alice").ok());
  CHECK(lock_of(m, "alice") == 0);
  CHECK_FALSE(m.db()->query_text("SELECT pop_lock_owner FROM popd").has_value());
  // A live session of this process keeps its lock.
  Client a(m);
  a.login("alice", "wonderland");
  CHECK_FALSE(backends::pop3_lock_holder_gone(m.db()->query_text("SELECT pop_lock_owner FROM popd")));
}

TEST_CASE("pop3 backend: a user database that cannot be opened: -ERR [SYS/TEMP], lock released") {
  Maildrop m;
  m.deliver("alice", "Subject: a\r\n\r\nx\r\n");
  REQUIRE(m.store->directory().set_user_database("alice", m.dir.file("gone.db3")).ok());
  Client c(m);
  CHECK(c.login("alice", "wonderland") == "+OK Send PASS\r\n-ERR [SYS/TEMP] Maildrop unavailable, try again later\r\n");
  CHECK(lock_of(m, "alice") == 0);  // cmail kept it locked (docs/compatibility.md#pop3-maildrop-lock)
  REQUIRE(m.store->directory().set_user_database("alice", std::nullopt).ok());
  CHECK(c.login("alice", "wonderland").find("+OK Logged in, maildrop has 1 messages") != std::string::npos);
}

TEST_CASE("pop3 backend: the maildrop spans the master and the user database, as IMAP's INBOX") {
  Maildrop m;
  m.deliver("alice", "Subject: in the master\r\n\r\nx\r\n");
  {
    auto c = store::detail::Connection::open(m.dir.file("alice.db3"), store::detail::Connection::Mode::Create, 1000);
    REQUIRE(c.has_value());
    (*c)->exec(store::detail::v9_install_sql(store::detail::DbKind::User));
    // A row as cmail stored it: no final CRLF, a bare LF, UTF-8, its ident the old UIDL.
    (*c)->exec("INSERT INTO mailbox (mail_user, mail_ident, mail_envelopeto, mail_envelopefrom, mail_submission, "
               "mail_data) VALUES ('alice', 'A1B2.C3-host', 'alice@x', 'a@b', '1000', 'Subject: old' || char(10) || "
               "char(10) || 'grüße')");
  }
  REQUIRE(m.store->directory().set_user_database("alice", m.dir.file("alice.db3")).ok());
  m.deliver("alice", "Subject: in the user database\r\n\r\ny\r\n");
  Client c(m);
  std::string r = c.login("alice", "wonderland");
  CHECK(r.find("maildrop has 3 messages") != std::string::npos);
  // The legacy row got its UID when the user database was first used: it is message 2.
  std::string list = c.say("LIST\r\nUIDL\r\n", "+OK 3 messages");
  const std::string old = "Subject: old\n\ngrüße";
  CHECK(list.find("\r\n2 " + std::to_string(proto::wire_size(old)) + "\r\n") != std::string::npos);
  CHECK(proto::wire_size(old) == old.size() + 4);
  CHECK(list.find("\r\n2 A1B2.C3-host\r\n") != std::string::npos);  // the UIDL cmail-popd gave it
  std::string retr = c.say("RETR 2\r\n", "+OK");
  CHECK(retr == "+OK " + std::to_string(proto::wire_size(old)) + " octets\r\nSubject: old\r\n\r\ngrüße\r\n.\r\n");
  CHECK(c.say("DELE 2\r\nDELE 1\r\nQUIT\r\n", "+OK pop").ends_with("(2 messages deleted)\r\n"));
  auto left = m.store->mailboxes().list_messages("alice");
  REQUIRE(left.has_value());
  REQUIRE(left->size() == 1);
  CHECK((*left)[0].ref.database == m.dir.file("alice.db3"));
}

TEST_CASE("pop3_listing: unique-ids are unique, stable and never the same for two messages") {
  auto msg = [](std::uint32_t uid, std::optional<std::string> legacy) {
    store::MessageInfo m;
    m.uid = uid;
    m.size = 10;
    m.wire_size = 12;
    m.legacy_uidl = std::move(legacy);
    return m;
  };
  auto l = backends::pop3_listing(1700000000, {msg(1, "X-1"), msg(2, "X-1"), msg(3, std::nullopt), msg(4, ""),
                                     msg(5, "has space"), msg(6, std::string(71, 'a')), msg(7, "1700000000.8"),
                                     msg(8, std::nullopt), msg(9, "ok")});
  std::vector<std::string> uids;
  for (auto& e : l) uids.push_back(e.uid);
  CHECK(uids == std::vector<std::string>{"X-1", "1700000000.2", "1700000000.3", "1700000000.4", "1700000000.5",
                                         "1700000000.6", "1700000000.7", "1700000000.8", "ok"});
  CHECK(l[0].size == 12);
}
