// imap::Server: the command loop, literals and the commands of the not-authenticated state,
// each conversation fed whole, byte by byte and in random splits (harness.h).
#include "harness.h"
#include "imap_fake_session.h"

#include <cmail/imap/server.h>
#include <cmail/proto/sasl.h>

#include <map>
#include <set>

using namespace cmail;
using namespace cmail::imap;
using namespace cmail::test;

namespace {

struct RecordingSession : MemoryMailboxSession {
  bool pend = false;
  RecordingSession() {
    boxes.emplace("Work/2025/Q4", "");
    subscribed = {"INBOX", "Work/2025/Q4", "Gone"};
  }
  Verdict login(const sasl::Credentials& c) override {
    calls.push_back("LOGIN " + c.authzid + "/" + c.authcid + "/" + c.password);
    if (pend) return Verdict::pending();
    if (c.authcid == "broken") return Verdict::failed(Status::io_error("disk gone"));
    return MemoryMailboxSession::login(c);
  }
  Verdict status(const std::string& name) override {
    calls.push_back("STATUS " + name);
    if (!boxes.count(name)) return Verdict::reject(RespCode::NonExistent, "No such mailbox");
    MailboxStatus st;
    st.messages = 3, st.unseen = 1, st.uidnext = 7, st.uidvalidity = 42, st.size = 9000, st.deleted = 1, st.highest_modseq = 12;
    return Verdict::counts(st);
  }
  Verdict remove(const std::string& name) override {
    calls.push_back("DELETE " + name);
    if (!boxes.erase(name)) return Verdict::reject(RespCode::NonExistent, "No such mailbox");
    return Verdict::accept();
  }
  Verdict rename(const std::string& from, const std::string& to) override {
    calls.push_back("RENAME " + from + " " + to);
    if (pend) return Verdict::pending();
    if (!boxes.count(from)) return Verdict::reject(RespCode::NonExistent, "No such mailbox");
    boxes[to] = boxes[from];
    boxes.erase(from);
    return Verdict::accept();
  }
  Verdict subscribe(const std::string& name, bool on) override {
    calls.push_back((on ? "SUBSCRIBE " : "UNSUBSCRIBE ") + name);
    if (on) subscribed.insert(name);
    else subscribed.erase(name);
    return Verdict::accept();
  }
};

// The engine after its greeting, which the test checks and drops.
struct Fixture {
  RecordingSession session;
  ServerOptions options;
  std::unique_ptr<Server> server;
  explicit Fixture(ServerOptions o = {}) : options(std::move(o)) {
    server = std::make_unique<Server>(options, session);
    std::string greeting = take_output(*server);
    CHECK(greeting.rfind("* OK [CAPABILITY IMAP4rev2 IMAP4rev1 ", 0) == 0);
    CHECK(greeting.find("localhost IMAP server ready\r\n") != std::string::npos);
  }
  std::string say(std::string_view bytes) {
    feed(*server, bytes);
    return take_output(*server);
  }
};

}  // namespace

TEST_CASE("imap::Server: CAPABILITY, NOOP, ID, unknown and out-of-state commands") {
  SPLIT_SUBCASES();
  Fixture f;
  CHECK(f.say("a1 CAPABILITY\r\n") ==
        "* CAPABILITY IMAP4rev2 IMAP4rev1 LITERAL+ SASL-IR ENABLE ID NAMESPACE AUTH=PLAIN AUTH=LOGIN\r\n"
        "a1 OK CAPABILITY completed\r\n");
  CHECK(f.say("a2 noop\r\n") == "a2 OK NOOP completed\r\n");
  CHECK(f.say("a3 ID (\"name\" \"test\" \"version\" NIL)\r\n") ==
        "* ID (\"name\" \"cmail\")\r\na3 OK ID completed\r\n");
  CHECK(f.say("a4 ID NIL\r\n") == "* ID (\"name\" \"cmail\")\r\na4 OK ID completed\r\n");
  CHECK(f.say("a5 ID (\"odd\")\r\n").rfind("a5 BAD ", 0) == 0);
  CHECK(f.say("a6 FROB\r\n") == "a6 BAD Unknown command FROB\r\n");
  CHECK(f.say("a7 NAMESPACE\r\n") == "a7 BAD NAMESPACE needs a logged-in session\r\n");
  CHECK(f.say("a8 ENABLE IMAP4rev2\r\n") == "a8 BAD ENABLE needs a logged-in session\r\n");
  CHECK(f.say("a9 CAPABILITY extra\r\n") == "a9 BAD CAPABILITY takes no arguments\r\n");
  // No tag that can be read: an untagged BAD (RFC 9051 7.1.3).
  CHECK(f.say("+bad NOOP\r\n") == "* BAD Missing or invalid tag\r\n");
  CHECK(f.say("a10\r\n") == "a10 BAD Missing command name\r\n");
  CHECK(f.say("a11 NOOP (unbalanced\r\n").rfind("a11 BAD ", 0) == 0);
  CHECK(f.server->state() == Server::State::NotAuthenticated);
}

TEST_CASE("imap::Server: LOGIN with atoms, quoted strings and literals; failures counted") {
  SPLIT_SUBCASES();
  Fixture f;
  CHECK(f.say("a1 LOGIN alice wrong\r\n") == "a1 NO [AUTHENTICATIONFAILED] Invalid user name or password\r\n");
  CHECK(f.say("a2 LOGIN \"broken\" x\r\n") == "a2 NO [UNAVAILABLE] Temporary failure, try again later\r\n");
  // A synchronizing literal: "+ " only once the text before it parsed.
  CHECK(f.say("a3 LOGIN {5}\r\n") == "+ Ready for literal data\r\n");
  std::string out = f.say("alice {6+}\r\nsecret\r\n");
  CHECK(out.rfind("a3 OK [CAPABILITY IMAP4rev2 IMAP4rev1 LITERAL+ SASL-IR ENABLE ID NAMESPACE LIST-EXTENDED LIST-STATUS SPECIAL-USE CREATE-SPECIAL-USE CHILDREN STATUS=SIZE UIDPLUS MOVE UNSELECT IDLE UTF8=ACCEPT CONDSTORE ESEARCH SEARCHRES BINARY APPENDLIMIT=67108864] Logged in\r\n", 0) == 0);
  CHECK(f.server->state() == Server::State::Authenticated);
  CHECK(f.server->user() == "alice");
  CHECK(f.session.calls == std::vector<std::string>{"LOGIN /alice/wrong", "LOGIN /broken/x", "LOGIN /alice/secret"});
  CHECK(f.say("a4 LOGIN alice secret\r\n") == "a4 BAD LOGIN is not valid in this state\r\n");
}

TEST_CASE("imap::Server: three failed log-ins end the connection") {
  SPLIT_SUBCASES();
  Fixture f;
  f.say("a1 LOGIN bob x\r\na2 LOGIN bob y\r\n");
  CHECK(f.say("a3 LOGIN bob z\r\na4 NOOP\r\n") ==
        "a3 NO [AUTHENTICATIONFAILED] Invalid user name or password\r\n* BYE Too many failed log-ins\r\n");
  CHECK(std::holds_alternative<Close>(*f.server->next_event()));
  CHECK(f.session.calls.size() == 3);
}

TEST_CASE("imap::Server: AUTHENTICATE PLAIN with and without an initial response, LOGIN, cancel") {
  SPLIT_SUBCASES();
  Fixture f;
  const std::string plain = sasl::base64_encode(sasl::plain_message("", "alice", "secret"));
  CHECK(f.say("a1 AUTHENTICATE PLAIN\r\n") == "+ \r\n");
  CHECK(f.say("*\r\n") == "a1 BAD Authentication cancelled\r\n");
  CHECK(f.say("a2 AUTHENTICATE CRAM-MD5\r\n") == "a2 NO Unsupported authentication mechanism\r\n");
  CHECK(f.say("a3 AUTHENTICATE PLAIN\r\n") == "+ \r\n");
  CHECK(f.say("not base64!\r\n") == "a3 BAD Malformed authentication data\r\n");
  SUBCASE("initial response (RFC 4959)") {
    CHECK(f.say("a4 AUTHENTICATE PLAIN " + plain + "\r\n").rfind("a4 OK [CAPABILITY ", 0) == 0);
  }
  SUBCASE("challenge and response") {
    CHECK(f.say("a4 AUTHENTICATE plain\r\n") == "+ \r\n");
    CHECK(f.say(plain + "\r\n").rfind("a4 OK [CAPABILITY ", 0) == 0);
  }
  SUBCASE("LOGIN mechanism") {
    CHECK(f.say("a4 AUTHENTICATE LOGIN\r\n") == "+ " + sasl::base64_encode("Username:") + "\r\n");
    CHECK(f.say(sasl::base64_encode("alice") + "\r\n") == "+ " + sasl::base64_encode("Password:") + "\r\n");
    CHECK(f.say(sasl::base64_encode("secret") + "\r\n").rfind("a4 OK [CAPABILITY ", 0) == 0);
  }
  if (f.session.calls.size() == 1) {  // every subcase above logs in once
    CHECK(f.server->state() == Server::State::Authenticated);
    CHECK(f.server->user() == "alice");
  }
}

TEST_CASE("imap::Server: a pending log-in holds pipelined commands until complete()") {
  SPLIT_SUBCASES();
  Fixture f;
  f.session.pend = true;
  CHECK(f.say("a1 LOGIN alice secret\r\na2 NAMESPACE\r\na3 NOOP\r\n") == "");
  CHECK(f.session.calls.size() == 1);
  CHECK(f.server->complete(Verdict::user("alice")).ok());
  CHECK(take_output(*f.server) ==
        "a1 OK [CAPABILITY IMAP4rev2 IMAP4rev1 LITERAL+ SASL-IR ENABLE ID NAMESPACE LIST-EXTENDED LIST-STATUS SPECIAL-USE CREATE-SPECIAL-USE CHILDREN STATUS=SIZE UIDPLUS MOVE UNSELECT IDLE UTF8=ACCEPT CONDSTORE ESEARCH SEARCHRES BINARY APPENDLIMIT=67108864] Logged in\r\n"
        "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\na2 OK NAMESPACE completed\r\na3 OK NOOP completed\r\n");
  CHECK_FALSE(f.server->complete(Verdict::user("alice")).ok());  // none pending
}

TEST_CASE("imap::Server: ENABLE answers ENABLED always (RFC 5161)") {
  SPLIT_SUBCASES();
  Fixture f;
  f.say("a1 LOGIN alice secret\r\n");
  CHECK(f.say("a2 ENABLE X-UNKNOWN\r\n") == "* ENABLED\r\na2 OK ENABLE completed\r\n");
  CHECK(f.say("a3 ENABLE imap4rev2 X-UNKNOWN\r\n") == "* ENABLED IMAP4rev2\r\na3 OK ENABLE completed\r\n");
  CHECK(f.server->rev2());
  CHECK(f.say("a4 ENABLE IMAP4rev2\r\n") == "* ENABLED\r\na4 OK ENABLE completed\r\n");
  CHECK(f.say("a5 ENABLE\r\n") == "a5 BAD ENABLE needs at least one capability\r\n");
}

TEST_CASE("imap::Server: LOGOUT sends BYE, then OK, then closes") {
  SPLIT_SUBCASES();
  Fixture f;
  CHECK(f.say("a1 LOGOUT\r\na2 NOOP\r\n") == "* BYE localhost logging out\r\na1 OK LOGOUT completed\r\n");
  CHECK(std::holds_alternative<Close>(*f.server->next_event()));
  CHECK(f.server->state() == Server::State::Logout);
}

TEST_CASE("imap::Server: STARTTLS hands the rest of the input to TLS; LOGINDISABLED before it") {
  SPLIT_SUBCASES();
  ServerOptions o;
  o.starttls_available = true;
  o.tls_required = true;
  Fixture f(o);
  std::string caps = f.say("a1 CAPABILITY\r\n");
  CHECK(caps.find(" STARTTLS LOGINDISABLED\r\n") != std::string::npos);
  CHECK(caps.find("AUTH=") == std::string::npos);
  CHECK(f.say("a2 LOGIN alice secret\r\n") ==
        "a2 NO [PRIVACYREQUIRED] Log-in is disabled until STARTTLS has been used\r\n");
  CHECK(f.session.calls.empty());
  // Bytes after STARTTLS are never parsed as commands (RFC 9051 6.2.1: injection).
  std::string out = f.say("a3 STARTTLS\r\na4 LOGIN alice secret\r\n");
  CHECK(out == "a3 OK Begin TLS negotiation now\r\n");
  auto tls = expect_event<StartTls>(*f.server);
  if (current_split() == Split::Whole) CHECK(tls.trailing == "a4 LOGIN alice secret\r\n");
  f.server->tls_established(TlsInfo{"TLSv1.3", "TLS-AES-256-GCM-SHA384", 256});
  CHECK(f.session.calls.empty());
  caps = f.say("a5 CAPABILITY\r\n");
  CHECK(caps.find("STARTTLS") == std::string::npos);
  CHECK(caps.find("LOGINDISABLED") == std::string::npos);
  CHECK(caps.find("AUTH=PLAIN") != std::string::npos);
  CHECK(f.say("a6 STARTTLS\r\n") == "a6 BAD TLS is already active\r\n");
  CHECK(f.say("a7 LOGIN alice secret\r\n").rfind("a7 OK ", 0) == 0);
}

TEST_CASE("imap::Server: literals over the limit are refused, and their octets dropped") {
  SPLIT_SUBCASES();
  ServerOptions o;
  o.limits.max_literal = 16;
  Fixture f(o);
  // Synchronizing: refused before the client sends it (no "+ ").
  CHECK(f.say("a1 LOGIN {17}\r\n").rfind("a1 BAD [TOOBIG] ", 0) == 0);
  // Non-synchronizing: the 17 octets and the rest of the command arrive and are dropped; a
  // second literal in the rest is dropped too.
  CHECK(f.say("a2 LOGIN {17+}\r\nLOGIN alice secre {3+}\r\nabc\r\na3 NOOP\r\n").rfind("a2 BAD [TOOBIG] ", 0) == 0);
  CHECK(f.say("a4 NOOP\r\n") == "a4 OK NOOP completed\r\n");
  CHECK(f.session.calls.empty());
  // An empty literal is a value like any other.
  CHECK(f.say("a5 LOGIN alice {0}\r\n\r\n") == "+ Ready for literal data\r\na5 NO [AUTHENTICATIONFAILED] Invalid user name or password\r\n");
}

TEST_CASE("imap::Server: an over-long line is refused and the session goes on") {
  SPLIT_SUBCASES();
  ServerOptions o;
  o.max_command_line = 64;
  Fixture f(o);
  CHECK(f.say("a1 LOGIN " + std::string(100, 'x') + " y\r\na2 NOOP\r\n") ==
        "* BAD Command line too long\r\na2 OK NOOP completed\r\n");
}

TEST_CASE("imap::Server: too many bad commands end the session; autologout; deadline") {
  SPLIT_SUBCASES();
  ServerOptions o;
  o.max_errors = 3;
  Fixture f(o);
  CHECK(f.server->timeout() == o.idle_timeout);
  CHECK(o.idle_timeout >= std::chrono::minutes(30));  // RFC 9051 5.4
  proto::Deadline idle = f.server->deadline();
  CHECK(idle.budget.count() == 0);
  f.say("a1 NOOP\r\na2 LOG");
  CHECK(f.server->deadline().budget == o.idle_timeout);  // part of a command arrived
  CHECK(f.say("IN {3}\r\n").size() > 0);                 // inside a literal: still bounded
  CHECK(f.server->deadline().budget == o.idle_timeout);
  f.say("abc x\r\n");
  CHECK(f.server->deadline().budget.count() == 0);
  CHECK(f.say("a3 X\r\na4 X\r\na5 X\r\n") ==
        "a3 BAD Unknown command X\r\na4 BAD Unknown command X\r\na5 BAD Unknown command X\r\n* BYE Too many invalid commands\r\n");
  CHECK(std::holds_alternative<Close>(*f.server->next_event()));

  Fixture g;
  g.server->timed_out();
  CHECK(take_output(*g.server) == "* BYE Autologout; idle for too long\r\n");
  CHECK(std::holds_alternative<Close>(*g.server->next_event()));
}

namespace {
struct LoggedIn : Fixture {
  LoggedIn() {
    CHECK(say("l1 LOGIN alice secret\r\n").rfind("l1 OK ", 0) == 0);
    session.calls.clear();
  }
};
}  // namespace

TEST_CASE("imap::Server: LIST with wildcards, CHILDREN and special-use attributes, parents") {
  SPLIT_SUBCASES();
  LoggedIn f;
  CHECK(f.say("a1 LIST \"\" \"\"\r\n") == "* LIST (\\Noselect) \"/\" \"\"\r\na1 OK LIST completed\r\n");
  CHECK(f.session.calls.empty());  // the root needs no mailboxes
  // "*" reaches every mailbox: parents that do not exist are not shown.
  CHECK(f.say("a2 LIST \"\" *\r\n") ==
        "* LIST (\\HasNoChildren) \"/\" INBOX\r\n"
        "* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n"
        "* LIST (\\HasNoChildren) \"/\" Work/2025/Q4\r\n"
        "* LIST (\\HasNoChildren) \"/\" Work/2026\r\n"
        "a2 OK LIST completed\r\n");
  // "%" stops at the delimiter: the parent that exists only as a name's first level shows, as
  // \Noselect for an IMAP4rev1 client (RFC 9051 6.3.9).
  CHECK(f.say("a3 LIST \"\" %\r\n") ==
        "* LIST (\\HasNoChildren) \"/\" INBOX\r\n"
        "* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n"
        "* LIST (\\Noselect \\HasChildren) \"/\" Work\r\n"
        "a3 OK LIST completed\r\n");
  CHECK(f.say("a4 LIST Work/ %\r\n") ==
        "* LIST (\\Noselect \\HasChildren) \"/\" Work/2025\r\n"
        "* LIST (\\HasNoChildren) \"/\" Work/2026\r\n"
        "a4 OK LIST completed\r\n");
  // INBOX in any case (RFC 9051 5.1).
  CHECK(f.say("a5 LIST \"\" inBox\r\n") == "* LIST (\\HasNoChildren) \"/\" INBOX\r\na5 OK LIST completed\r\n");
  CHECK(f.say("a6 LIST \"\" Nothing*\r\n") == "a6 OK LIST completed\r\n");
  CHECK(f.say("a7 LIST \"\"\r\n") == "a7 BAD LIST needs a reference and a pattern\r\n");
}

TEST_CASE("imap::Server: LIST-EXTENDED selection and return options (RFC 5258, RFC 6154)") {
  SPLIT_SUBCASES();
  LoggedIn f;
  f.say("e1 ENABLE IMAP4rev2\r\n");
  CHECK(f.say("a1 LIST (SUBSCRIBED) \"\" *\r\n") ==
        "* LIST (\\HasNoChildren \\Subscribed) \"/\" INBOX\r\n"
        "* LIST (\\NonExistent \\HasNoChildren \\Subscribed) \"/\" Gone\r\n"
        "* LIST (\\HasNoChildren \\Subscribed) \"/\" Work/2025/Q4\r\n"
        "a1 OK LIST completed\r\n");
  CHECK(f.say("a2 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" %\r\n") ==
        "* LIST (\\HasNoChildren \\Subscribed) \"/\" INBOX\r\n"
        "* LIST (\\NonExistent \\HasNoChildren \\Subscribed) \"/\" Gone\r\n"
        "* LIST (\\NonExistent \\HasChildren) \"/\" Work (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
        "a2 OK LIST completed\r\n");
  // RFC 6154 3: only the mailboxes with a special use.
  CHECK(f.say("a3 LIST (SPECIAL-USE) \"\" *\r\n") == "* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\na3 OK LIST completed\r\n");
  CHECK(f.say("a4 LIST \"\" (INBOX Sent) RETURN (SUBSCRIBED CHILDREN SPECIAL-USE)\r\n") ==
        "* LIST (\\HasNoChildren \\Subscribed) \"/\" INBOX\r\n"
        "* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n"
        "a4 OK LIST completed\r\n");
  CHECK(f.say("a5 LIST (RECURSIVEMATCH) \"\" *\r\n") == "a5 BAD RECURSIVEMATCH needs SUBSCRIBED\r\n");
  CHECK(f.say("a6 LIST (FROB) \"\" *\r\n") == "a6 BAD Unknown LIST selection option FROB\r\n");
  CHECK(f.say("a7 LIST \"\" * RETURN (FROB)\r\n") == "a7 BAD Unknown LIST return option FROB\r\n");
}

TEST_CASE("imap::Server: LSUB for IMAP4rev1 clients") {
  SPLIT_SUBCASES();
  LoggedIn f;
  CHECK(f.say("a1 LSUB \"\" *\r\n") ==
        "* LSUB () \"/\" INBOX\r\n"
        "* LSUB (\\Noselect) \"/\" Gone\r\n"
        "* LSUB () \"/\" Work/2025/Q4\r\n"
        "a1 OK LSUB completed\r\n");
  CHECK(f.say("a2 LSUB \"\" %\r\n") ==
        "* LSUB () \"/\" INBOX\r\n"
        "* LSUB (\\Noselect) \"/\" Gone\r\n"
        "* LSUB (\\Noselect) \"/\" Work\r\n"
        "a2 OK LSUB completed\r\n");
}

TEST_CASE("imap::Server: STATUS, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE") {
  SPLIT_SUBCASES();
  LoggedIn f;
  CHECK(f.say("a1 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ RECENT)\r\n") ==
        "* STATUS INBOX (MESSAGES 3 UIDNEXT 7 UIDVALIDITY 42 UNSEEN 1 DELETED 1 SIZE 9000 HIGHESTMODSEQ 12 RECENT 0)\r\n"
        "a1 OK STATUS completed\r\n");
  CHECK(f.say("a2 STATUS Nope (MESSAGES)\r\n") == "a2 NO [NONEXISTENT] No such mailbox\r\n");
  CHECK(f.say("a3 STATUS INBOX (FROB)\r\n") == "a3 BAD Unknown STATUS item FROB\r\n");
  CHECK(f.say("a4 CREATE Projects/\r\n") == "a4 OK CREATE completed\r\n");  // the delimiter dropped
  CHECK(f.say("a5 CREATE Projects\r\n") == "a5 NO [ALREADYEXISTS] It exists\r\n");
  CHECK(f.say("a6 CREATE inbox\r\n") == "a6 NO [ALREADYEXISTS] INBOX always exists\r\n");
  CHECK(f.say("a7 CREATE \"a//b\"\r\n") == "a7 BAD Invalid mailbox name\r\n");
  CHECK(f.say("a8 CREATE \"a*\"\r\n") == "a8 BAD Invalid mailbox name\r\n");
  CHECK(f.say("a9 RENAME Projects Archive/Projects\r\n") == "a9 OK RENAME completed\r\n");
  CHECK(f.say("b1 RENAME Sent INBOX\r\n") == "b1 NO [ALREADYEXISTS] INBOX always exists\r\n");
  CHECK(f.say("b2 RENAME Work Work/Sub\r\n") == "b2 NO [CANNOT] A mailbox cannot move into itself\r\n");
  CHECK(f.say("b3 DELETE INBOX\r\n") == "b3 NO [CANNOT] INBOX cannot be deleted\r\n");
  CHECK(f.say("b4 DELETE Archive/Projects\r\n") == "b4 OK DELETE completed\r\n");
  CHECK(f.say("b5 DELETE Archive/Projects\r\n") == "b5 NO [NONEXISTENT] No such mailbox\r\n");
  CHECK(f.say("b6 SUBSCRIBE Sent\r\nb7 UNSUBSCRIBE Gone\r\n") ==
        "b6 OK SUBSCRIBE completed\r\nb7 OK UNSUBSCRIBE completed\r\n");
  CHECK(f.session.calls == std::vector<std::string>{
      "STATUS INBOX", "STATUS Nope", "CREATE Projects", "CREATE Projects", "RENAME Projects Archive/Projects",
      "DELETE Archive/Projects", "DELETE Archive/Projects", "SUBSCRIBE Sent", "UNSUBSCRIBE Gone"});
  // A pending change holds the commands after it.
  f.session.pend = true;
  CHECK(f.say("c1 RENAME Sent Outbox\r\nc2 NOOP\r\n") == "");
  CHECK(f.server->complete(Verdict::reject(RespCode::InUse, "Busy")).ok());
  CHECK(take_output(*f.server) == "c1 NO [INUSE] Busy\r\nc2 OK NOOP completed\r\n");
}

TEST_CASE("imap::Server: mailbox names in modified UTF-7 for IMAP4rev1, UTF-8 for IMAP4rev2") {
  SPLIT_SUBCASES();
  LoggedIn f;
  CHECK(f.say("a1 CREATE Entw&APw-rfe\r\n") == "a1 OK CREATE completed\r\n");
  CHECK(f.session.boxes.count("Entw\xC3\xBCrfe") == 1);
  CHECK(f.say("a2 LIST \"\" Entw*\r\n") == "* LIST (\\HasNoChildren) \"/\" Entw&APw-rfe\r\na2 OK LIST completed\r\n");
  CHECK(f.say("a3 CREATE Entw&APx-\r\n") == "a3 BAD Invalid mailbox name\r\n");
  f.say("e1 ENABLE IMAP4rev2\r\n");
  CHECK(f.say("a4 LIST \"\" Entw*\r\n") == "* LIST (\\HasNoChildren) \"/\" \"Entw\xC3\xBCrfe\"\r\na4 OK LIST completed\r\n");
  CHECK(f.say("a5 STATUS \"Entw\xC3\xBCrfe\" (MESSAGES)\r\n") == "* STATUS \"Entw\xC3\xBCrfe\" (MESSAGES 3)\r\na5 OK STATUS completed\r\n");
}
