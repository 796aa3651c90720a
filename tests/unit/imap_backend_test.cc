#include "fakes.h"
#include "harness.h"
#include "testutil.h"

#include <cmail/backends/imap_session.h>
#include <cmail/mail/fields.h>
#include <cmail/proto/message.h>
#include <cmail/store/directory.h>
#include <cmail/store/mailbox.h>
#include <cmail/store/password.h>

using namespace cmail;
using namespace cmail::test;

namespace {

// A master database with alice (IMAP enabled), bob (POP3 only) and "al", an alias of alice.
struct Mailstore {
  TempDir dir;
  std::unique_ptr<store::Store> store = open_store(dir.file("master.db3"));
  FakeLoop loop;

  Mailstore() {
    store::Directory& d = store->directory();
    REQUIRE(d.add_user("alice", std::string_view("wonderland")).ok());
    REQUIRE(d.add_user("bob", std::string_view("builder")).ok());
    REQUIRE(d.add_user("al", std::string_view("alias-pw")).ok());
    REQUIRE(d.set_alias("al", std::string_view("alice")).ok());
    REQUIRE(d.enable_imapd("alice").ok());
    REQUIRE(d.enable_popd("bob").ok());
  }
  void deliver(const std::string& user, const std::string& data) {
    store::Delivery d;
    d.ident = mail::new_queue_id();
    d.envelope_from = "sender@remote.test";
    d.data = data;
    d.local.push_back({user, user + "@local.test"});
    REQUIRE(store->deliver_sync(d).ok());
  }
  std::unique_ptr<store::detail::Connection> db() { return raw(dir.file("master.db3")); }
};

// One IMAP connection on the store.
struct Client {
  Mailstore& m;
  std::unique_ptr<backends::StoreImapSession> session;
  std::unique_ptr<imap::Server> server;
  std::vector<std::string> logged;

  explicit Client(Mailstore& ms, std::shared_ptr<backends::AuthGuard> guard = nullptr) : m(ms) {
    session = std::make_unique<backends::StoreImapSession>(*m.store, proto::PeerInfo{"192.0.2.9", 40000, "client.test"},
                                                           m.loop.executor(), std::move(guard));
    session->set_logger(LogSink([this](int, std::string_view l) { logged.emplace_back(l); }));
    imap::ServerOptions o;
    o.hostname = "imap.local.test";
    server = std::make_unique<imap::Server>(o, *session);
    session->set_completion([this](imap::Verdict v) { REQUIRE(server->complete(std::move(v)).ok()); });
    take_output(*server);
  }
  // Sends one command; returns the output up to and including its tagged response.
  std::string say(const std::string& tag, std::string_view rest) {
    feed(*server, tag + " " + std::string(rest) + "\r\n");
    std::string out;
    m.loop.pump([&] {
      while (!server->pending_output().empty()) out += take_output(*server);
      return out.find("\r\n" + tag + " ") != std::string::npos || out.starts_with(tag + " ");
    });
    return out;
  }
};

bool has(const std::string& out, std::string_view part) { return out.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("imap backend: who may log in: credentials, the imapd row, aliases, proxy authorization") {
  SPLIT_SUBCASES();
  Mailstore m;
  {
    Client c(m);
    CHECK(c.say("a1", "LOGIN alice wrong") == "a1 NO [AUTHENTICATIONFAILED] Invalid user name or password\r\n");
    CHECK(c.say("a2", "LOGIN nobody x") == "a2 NO [AUTHENTICATIONFAILED] Invalid user name or password\r\n");
    CHECK(c.server->state() == imap::Server::State::NotAuthenticated);
  }
  {
    Client c(m);  // the right password, but no imapd row: a POP3 user is not an IMAP user
    CHECK(c.say("b1", "LOGIN bob builder") == "b1 NO [AUTHORIZATIONFAILED] IMAP access is not enabled for this account\r\n");
    CHECK(c.server->state() == imap::Server::State::NotAuthenticated);
    CHECK(c.session->user().empty());
    bool denied = false;
    for (const auto& l : c.logged) denied |= has(l, "login denied") && has(l, "imap-not-enabled");
    CHECK(denied);
  }
  {
    Client c(m);
    CHECK(has(c.say("c1", "LOGIN alice wonderland"), "c1 OK [CAPABILITY "));
    CHECK(c.server->state() == imap::Server::State::Authenticated);
    CHECK(c.server->user() == "alice");
  }
  {
    Client c(m);  // an alias logs in as its target, whose row counts
    CHECK(has(c.say("d1", "LOGIN al alias-pw"), "d1 OK "));
    CHECK(c.server->user() == "alice");
    CHECK(c.session->user() == "alice");
    bool ok_line = false;
    for (const auto& l : c.logged) ok_line |= has(l, "auth ok proto=imap") && has(l, "user=al ") && has(l, "identity=alice");
    CHECK(ok_line);
  }
  {
    Client c(m);  // AUTHENTICATE PLAIN with an authzid that is someone else: refused
    const std::string other = sasl::base64_encode(std::string("bob\0alice\0wonderland", 20));
    CHECK(c.say("e1", "AUTHENTICATE PLAIN " + other) == "e1 NO [AUTHENTICATIONFAILED] Invalid user name or password\r\n");
    const std::string same = sasl::base64_encode(std::string("alice\0alice\0wonderland", 22));
    CHECK(has(c.say("e2", "AUTHENTICATE PLAIN " + same), "e2 OK "));
  }
  // Disabling IMAP takes effect at the next log-in.
  REQUIRE(m.store->directory().disable_imapd("alice").ok());
  Client c(m);
  CHECK(has(c.say("f1", "LOGIN alice wonderland"), "f1 NO [AUTHORIZATIONFAILED]"));
}

TEST_CASE("imap backend: a legacy password hash logs in and is replaced by argon2id") {
  Mailstore m;
  m.db()->prepare("UPDATE users SET user_authdata = ?1 WHERE user_name = 'alice'")
      .bind(1, store::legacy_password_hash("s4lt", "old-secret"))
      .run();
  Client c(m);
  CHECK(has(c.say("a1", "LOGIN alice old-secret"), "a1 OK "));
  CHECK(m.db()->query_text("SELECT user_authdata FROM users WHERE user_name = 'alice'")->starts_with("$argon2id$"));
}

TEST_CASE("imap backend: the guard refuses a guesser without checking, and counts failures") {
  Mailstore m;
  backends::AuthGuardOptions o;
  o.delay = std::chrono::milliseconds(0);
  o.max_delay = std::chrono::milliseconds(0);
  o.address_failures = 2;
  auto guard = std::make_shared<backends::AuthGuard>(o);
  for (int i = 0; i < 2; ++i) {
    Client c(m, guard);
    CHECK(has(c.say("a", "LOGIN alice wrong"), "a NO [AUTHENTICATIONFAILED]"));
  }
  Client c(m, guard);  // the right password, but this address is refused for now
  CHECK(c.say("b", "LOGIN alice wonderland") == "b NO [UNAVAILABLE] Too many failed logins, try again later\r\n");
  CHECK(c.server->state() == imap::Server::State::NotAuthenticated);
}

TEST_CASE("imap backend: LIST shows INBOX always and the user's folders, never another user's") {
  Mailstore m;
  {
    Client c(m);  // no mail yet, no folder row: INBOX still there
    REQUIRE(has(c.say("a1", "LOGIN alice wonderland"), "a1 OK"));
    // The first log-in made the special-use folders (RFC 6154).
    CHECK(c.say("a2", "LIST \"\" \"*\"") ==
          "* LIST (\\HasNoChildren) \"/\" INBOX\r\n* LIST (\\HasNoChildren \\Archive) \"/\" Archive\r\n"
          "* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts\r\n* LIST (\\HasNoChildren \\Junk) \"/\" Junk\r\n"
          "* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n* LIST (\\HasNoChildren \\Trash) \"/\" Trash\r\n"
          "a2 OK LIST completed\r\n");
  }
  REQUIRE(m.store->mailboxes().ensure_folder("alice", "Archive").has_value());
  REQUIRE(m.store->mailboxes().ensure_folder("alice", "Archive/2026").has_value());
  REQUIRE(m.store->mailboxes().ensure_folder("bob", "Secret").has_value());
  m.deliver("alice", "Subject: one\r\n\r\nx\r\n");
  Client c(m);
  REQUIRE(has(c.say("b1", "LOGIN alice wonderland"), "b1 OK"));
  const std::string list = c.say("b2", "LIST \"\" \"*\"");
  CHECK(has(list, "* LIST (\\HasNoChildren) \"/\" INBOX\r\n"));
  CHECK(has(list, "* LIST (\\HasChildren \\Archive) \"/\" Archive\r\n"));
  CHECK(has(list, "* LIST (\\HasNoChildren) \"/\" Archive/2026\r\n"));
  CHECK_FALSE(has(list, "Secret"));
  CHECK(has(list, "b2 OK LIST completed"));
  const std::string lsub = c.say("b3", "LSUB \"\" \"*\"");  // folders are subscribed when made
  CHECK(has(lsub, "* LSUB () \"/\" INBOX\r\n"));
  CHECK(has(lsub, "Archive/2026"));
  // CREATE makes the parents a name implies (RFC 9051 6.3.4); an existing name is refused.
  CHECK(has(c.say("b4", "CREATE Drafts"), "b4 NO [ALREADYEXISTS]"));
  CHECK(c.say("b5", "CREATE Work/2026/Q4") == "b5 OK CREATE completed\r\n");
  CHECK(m.store->mailboxes().find_folder("alice", "Work/2026")->has_value());
  CHECK(c.say("b6", "RENAME Work Play") == "b6 OK RENAME completed\r\n");
  CHECK(m.store->mailboxes().find_folder("alice", "Play/2026/Q4")->has_value());
  CHECK(c.say("b7", "DELETE Play/2026/Q4") == "b7 OK DELETE completed\r\n");
  CHECK_FALSE(m.store->mailboxes().find_folder("alice", "Play/2026/Q4")->has_value());
  CHECK(has(c.say("b8", "DELETE Nowhere"), "b8 NO [NONEXISTENT]"));
}

TEST_CASE("imap backend: STATUS counts messages, unseen, deleted and size from the store") {
  Mailstore m;
  m.deliver("alice", "Subject: one\r\n\r\nfirst\r\n");
  m.deliver("alice", "Subject: two\n\nbare LF\n");
  m.deliver("alice", "Subject: three\r\n\r\nthird\r\n");
  m.deliver("bob", "Subject: bob's\r\n\r\nx\r\n");
  auto msgs = m.store->mailboxes().list_messages("alice", "INBOX");
  REQUIRE(msgs.has_value());
  REQUIRE(msgs->size() == 3);
  REQUIRE(m.store->mailboxes().set_flags((*msgs)[0].ref, store::kFlagSeen, "").has_value());
  REQUIRE(m.store->mailboxes().set_flags((*msgs)[2].ref, store::kFlagSeen | store::kFlagDeleted, "").has_value());
  auto folder = m.store->mailboxes().find_folder("alice", "INBOX");
  REQUIRE(folder.has_value());
  REQUIRE(folder->has_value());
  // RFC 8438: the sum of RFC822.SIZE, the stored octets FETCH sends.
  std::uint64_t size = 0;
  for (const store::MessageInfo& i : *msgs) size += static_cast<std::uint64_t>(i.size);
  Client c(m);
  REQUIRE(has(c.say("a1", "LOGIN al alias-pw"), "a1 OK"));  // the alias sees its target's mail
  const std::string st = c.say("a2", "STATUS inbox (MESSAGES UNSEEN DELETED SIZE UIDNEXT UIDVALIDITY HIGHESTMODSEQ RECENT)");
  CHECK(st == "* STATUS INBOX (MESSAGES 3 UNSEEN 1 DELETED 1 SIZE " + std::to_string(size) + " UIDNEXT 4 UIDVALIDITY " +
                  std::to_string((*folder)->uidvalidity) + " HIGHESTMODSEQ " + std::to_string((*folder)->highest_modseq) +
                  " RECENT 0)\r\na2 OK STATUS completed\r\n");
  CHECK(has(c.say("a3", "STATUS Nowhere (MESSAGES)"), "a3 NO [NONEXISTENT]"));
  REQUIRE(m.store->mailboxes().ensure_folder("alice", "Empty").has_value());
  CHECK(has(c.say("a4", "STATUS Empty (MESSAGES UNSEEN UIDNEXT)"), "* STATUS Empty (MESSAGES 0 UNSEEN 0 UIDNEXT 1)\r\n"));
}

TEST_CASE("imap backend: CREATE-SPECIAL-USE keeps the attribute in the store; LIST-STATUS counts from it") {
  Mailstore m;
  m.deliver("alice", "Subject: one\r\n\r\nfirst\r\n");
  Client c(m);
  REQUIRE(has(c.say("a1", "LOGIN alice wonderland"), "a1 OK"));
  // RFC 6154 3: the attribute goes on the mailbox itself, not on the parents made with it.
  CHECK(c.say("a2", "CREATE Old/Mail (USE (\\Archive))") == "a2 OK CREATE completed\r\n");
  auto made = m.store->mailboxes().find_folder("alice", "Old/Mail");
  REQUIRE(made.has_value());
  REQUIRE(made->has_value());
  CHECK((*made)->special_use == "\\Archive");
  auto parent = m.store->mailboxes().find_folder("alice", "Old");
  REQUIRE(parent.has_value());
  REQUIRE(parent->has_value());
  CHECK((*parent)->special_use.empty());
  CHECK(c.say("a3", "LIST \"\" Old/*") == "* LIST (\\HasNoChildren \\Archive) \"/\" Old/Mail\r\na3 OK LIST completed\r\n");
  CHECK(has(c.say("a4", "CREATE Sent (USE (\\Sent))"), "a4 NO [ALREADYEXISTS]"));
  CHECK(has(c.say("a5", "CREATE Starred (USE (\\Flagged))"), "a5 NO [USEATTR]"));
  CHECK_FALSE(m.store->mailboxes().find_folder("alice", "Starred")->has_value());
  // RFC 5819: STATUS after each selectable mailbox's LIST line, from the store.
  const std::string out = c.say("a6", "LIST \"\" \"%\" RETURN (STATUS (MESSAGES UNSEEN))");
  CHECK(has(out, "* LIST (\\HasNoChildren) \"/\" INBOX\r\n* STATUS INBOX (MESSAGES 1 UNSEEN 1)\r\n"));
  CHECK(has(out, "* LIST (\\HasChildren) \"/\" Old\r\n* STATUS Old (MESSAGES 0 UNSEEN 0)\r\n"));
  CHECK(has(out, "a6 OK LIST completed"));
}

TEST_CASE("imap backend: STATUS INBOX before any delivery makes the folder, with a UIDVALIDITY") {
  Mailstore m;
  Client c(m);
  REQUIRE(has(c.say("a1", "LOGIN alice wonderland"), "a1 OK"));
  const std::string st = c.say("a2", "STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY)");
  auto folder = m.store->mailboxes().find_folder("alice", "INBOX");
  REQUIRE(folder.has_value());
  REQUIRE(folder->has_value());
  CHECK((*folder)->uidvalidity > 0);
  CHECK(st == "* STATUS INBOX (MESSAGES 0 UIDNEXT 1 UIDVALIDITY " + std::to_string((*folder)->uidvalidity) +
                  ")\r\na2 OK STATUS completed\r\n");
}

TEST_CASE("imap backend: FETCH reads sections of large messages, and answers a batch in parts under its octet bound") {
  Mailstore m;
  const std::string attachment(3 << 20, 'A');
  const std::string big = "Subject: big one\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
                          "Content-Type: text/plain\r\n\r\nhello there\r\n--b\r\nContent-Type: application/octet-stream\r\n"
                          "Content-Transfer-Encoding: base64\r\n\r\n" + attachment + "\r\n--b--\r\n";
  for (int i = 0; i < 3; ++i) m.deliver("alice", big);
  Client c(m);
  REQUIRE(has(c.say("a1", "LOGIN alice wonderland"), "a1 OK "));
  REQUIRE(has(c.say("a2", "SELECT INBOX"), "a2 OK [READ-WRITE]"));
  CHECK(c.say("a3", "FETCH 1 (BODY.PEEK[1]<0.5> BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[2]<100.4>)") ==
        "* 1 FETCH (BODY[1]<0> {5}\r\nhello BODY[HEADER.FIELDS (SUBJECT)] {20}\r\nSubject: big one\r\n\r\n"
        " BODY[2]<100> {4}\r\nAAAA)\r\na3 OK FETCH completed\r\n");
  // BODY[1] sets \Seen, and its FLAGS come with it (RFC 9051 6.4.5).
  CHECK(c.say("a4", "FETCH 2 BODY[1]") == "* 2 FETCH (BODY[1] {11}\r\nhello there FLAGS (\\Seen))\r\na4 OK FETCH completed\r\n");
  // Three messages of 3 MiB: each answer under 4 MiB, so the batch comes in three parts, whole and in order.
  const std::string all = c.say("a5", "FETCH 1:3 (RFC822.SIZE BODY.PEEK[])");
  for (int seq = 1; seq <= 3; ++seq)
    CHECK(has(all, "* " + std::to_string(seq) + " FETCH (RFC822.SIZE " + std::to_string(big.size()) + " BODY[] {" +
                       std::to_string(big.size()) + "}\r\n" + big + ")\r\n"));
  CHECK(all.ends_with("a5 OK FETCH completed\r\n"));
  CHECK(all.size() < 3 * big.size() + 300);
}

TEST_CASE("imap backend: a session gone before its answer drops the answer") {
  Mailstore m;
  auto c = std::make_unique<Client>(m);
  feed(*c->server, "a1 LOGIN alice wonderland\r\n");
  c->server.reset();
  c->session.reset();
  m.loop.run_posted();  // the posted answer finds no session and does nothing
  CHECK(m.db()->query_text("SELECT imap_user FROM imapd") == "alice");
}

TEST_CASE("imap backend: the pure helpers") {
  std::vector<store::Folder> folders(2);
  folders[0].name = "inbox";
  folders[0].subscribed = false;
  folders[1].name = "Sent";
  auto list = backends::imap_mailboxes(folders);
  REQUIRE(list.size() == 2);
  CHECK(list[0].name == "INBOX");
  CHECK_FALSE(list[0].subscribed);
  CHECK(list[1].name == "Sent");
  CHECK(backends::imap_mailboxes({}).size() == 1);

  store::Folder f;
  f.uidvalidity = 77;
  f.uidnext = 9;
  f.highest_modseq = 40;
  std::vector<store::MessageInfo> msgs(3);
  msgs[0].flags = store::kFlagSeen;
  msgs[0].size = 10;
  msgs[0].wire_size = 12;
  msgs[1].flags = store::kFlagDeleted;
  msgs[1].size = 5;  // wire_size unknown: the stored size
  msgs[2].flags = store::kFlagSeen | store::kFlagFlagged;
  msgs[2].size = 1;
  msgs[2].wire_size = 3;
  auto st = backends::imap_status(f, msgs);
  CHECK(st.messages == 3);
  CHECK(st.unseen == 1);
  CHECK(st.deleted == 1);
  CHECK(st.size == 16);  // the stored sizes, as FETCH RFC822.SIZE
  CHECK(st.uidnext == 9);
  CHECK(st.uidvalidity == 77);
  CHECK(st.highest_modseq == 40);
  CHECK(st.recent == 0);
}
