// imap::Server extensions: LITERAL+ / LITERAL- (RFC 7888), CREATE-SPECIAL-USE (RFC 6154 3),
// LIST-STATUS (RFC 5819) and UTF8=ACCEPT (RFC 6855). Every conversation is fed whole, byte by
// byte and in random splits (harness.h).
#include "harness.h"
#include "imap_fake_session.h"

#include <cmail/imap/server.h>

#include <map>
#include <set>

using namespace cmail;
using namespace cmail::imap;
using namespace cmail::test;

namespace {

struct ExtSession : MemoryMailboxSession {
  std::set<std::string> status_fails;  // STATUS of these is refused
  bool pend_status = false;
  std::string appended;
  bool aborted = false;

  ExtSession() { subscribed = {"Gone"}; }
  Verdict status(const std::string& name) override {
    calls.push_back("STATUS " + name);
    if (pend_status) return Verdict::pending();
    if (!boxes.count(name) || status_fails.count(name)) return Verdict::reject(RespCode::NonExistent, "No such mailbox");
    MailboxStatus st;
    st.messages = static_cast<std::uint32_t>(name.size()), st.unseen = 1, st.uidnext = 7, st.uidvalidity = 42;
    return Verdict::counts(st);
  }
  Verdict create(const std::string& name, const std::string& use) override {
    if (use == "\\Junk") {
      calls.push_back("CREATE " + name + " " + use);
      return Verdict::reject(RespCode::UseAttr, "Only one junk mailbox");
    }
    return MemoryMailboxSession::create(name, use);
  }
  Verdict select(const std::string& name, bool read_only) override {
    if (!boxes.count(name)) return Verdict::reject(RespCode::NonExistent, "No such mailbox");
    SelectResult r;
    r.uidvalidity = 42, r.uidnext = 3, r.read_only = read_only;
    r.messages = {{1, {}, 0}, {2, {}, 0}};
    return Verdict::selected(r);
  }
  Verdict search(const SearchKey&, const std::vector<std::uint32_t>&, const std::vector<std::uint32_t>&) override {
    return Verdict::found({});
  }
  Verdict append_begin(const std::string& name, const Flags&, std::optional<std::int64_t>, std::uint64_t) override {
    calls.push_back("APPEND " + name);
    if (!boxes.count(name)) return Verdict::reject(RespCode::TryCreate, "No such mailbox");
    appended.clear();
    return Verdict::accept();
  }
  void append_chunk(std::string_view b) override { appended += b; }
  Verdict append_end() override { return Verdict::appended({42, 9}); }
  void append_abort() override { aborted = true; }
};

struct Fixture {
  ExtSession session;
  ServerOptions options;
  std::unique_ptr<Server> server;
  explicit Fixture(ServerOptions o = {}, bool login = true) : options(std::move(o)) {
    server = std::make_unique<Server>(options, session);
    take_output(*server);
    if (login) CHECK(say("l1 LOGIN alice secret\r\n").rfind("l1 OK ", 0) == 0);
    session.calls.clear();
  }
  std::string say(std::string_view bytes) {
    feed(*server, bytes);
    return take_output(*server);
  }
  std::string capabilities() {
    std::string out = say("c0 CAPABILITY\r\n");
    return out.substr(0, out.find("\r\n")) + " ";
  }
};

bool has(const std::string& out, std::string_view part) { return out.find(part) != std::string::npos; }

}  // namespace

// --- LITERAL+ and LITERAL- (RFC 7888) ---------------------------------------------------------

TEST_CASE("imap ext: LITERAL+ is advertised, never with LITERAL-; large non-synchronizing literals") {
  SPLIT_SUBCASES();
  ServerOptions o;
  o.limits.max_literal = 8192;
  o.max_append = 10000;
  Fixture f(o, false);
  const std::string caps = f.capabilities();
  CHECK(has(caps, " LITERAL+ "));
  CHECK_FALSE(has(caps, "LITERAL-"));  // RFC 7888 5: one of them
  // LITERAL+ has no 4096-octet rule: a 5000-octet "{N+}" is read like any literal.
  const std::string pw(5000, 'p');
  CHECK(f.say("a1 LOGIN alice {5000+}\r\n" + pw + "\r\n") ==
        "a1 NO [AUTHENTICATIONFAILED] Invalid user name or password\r\n");
  // Over the server's literal limit: BAD [TOOBIG] (RFC 7888 4, RFC 9051 7.1), the octets read
  // and dropped, the next command understood.
  const std::string big(9000, 'x');
  CHECK(f.say("a2 LOGIN alice {9000+}\r\n" + big + "\r\na3 NOOP\r\n") ==
        "a2 BAD [TOOBIG] Literal too large\r\na3 OK NOOP completed\r\n");
  CHECK(f.say("l1 LOGIN alice secret\r\n").rfind("l1 OK ", 0) == 0);
  // APPEND over APPENDLIMIT: NO [TOOBIG] (RFC 7889 4), its octets dropped too.
  const std::string msg(10001, 'm');
  CHECK(f.say("a4 APPEND INBOX {10001+}\r\n" + msg + "\r\na5 NOOP\r\n") ==
        "a4 NO [TOOBIG] The message is larger than the server takes\r\na5 OK NOOP completed\r\n");
  CHECK(f.session.calls.empty());
  // Synchronizing over the limit: refused before the octets, no "+".
  CHECK(f.say("a6 APPEND INBOX {10001}\r\n") == "a6 NO [TOOBIG] The message is larger than the server takes\r\n");
}

TEST_CASE("imap ext: with literal_minus, LITERAL- is advertised and \"{N+}\" over 4096 is BAD [TOOBIG]") {
  SPLIT_SUBCASES();
  ServerOptions o;
  o.literal_minus = true;
  Fixture f(o, false);
  const std::string caps = f.capabilities();
  CHECK(has(caps, " LITERAL- "));
  CHECK_FALSE(has(caps, "LITERAL+"));
  // 4096 octets may be non-synchronizing (RFC 7888 4).
  CHECK(f.say("a1 LOGIN alice {4096+}\r\n" + std::string(4096, 'p') + "\r\n") ==
        "a1 NO [AUTHENTICATIONFAILED] Invalid user name or password\r\n");
  // 4097 are refused with a tagged BAD [TOOBIG]; the octets are read and discarded, and the
  // rest of the command with them (a second literal in it too).
  CHECK(f.say("a2 LOGIN alice {4097+}\r\n" + std::string(4097, 'p') + " {3+}\r\nabc\r\na3 NOOP\r\n") ==
        "a2 BAD [TOOBIG] non-synchronizing literal over 4096 octets\r\na3 OK NOOP completed\r\n");
  // A synchronizing literal of any size up to the limit is asked for.
  CHECK(f.say("a4 LOGIN alice {5000}\r\n") == "+ Ready for literal data\r\n");
  CHECK(f.say(std::string(5000, 'p') + "\r\n") == "a4 NO [AUTHENTICATIONFAILED] Invalid user name or password\r\n");
  // APPEND too: its message over 4096 must be synchronizing.
  CHECK(f.say("l1 LOGIN alice secret\r\n").rfind("l1 OK ", 0) == 0);
  CHECK(f.say("a5 APPEND INBOX {5000+}\r\n" + std::string(5000, 'm') + "\r\na6 NOOP\r\n") ==
        "a5 BAD [TOOBIG] non-synchronizing literal over 4096 octets\r\na6 OK NOOP completed\r\n");
  CHECK(f.session.calls.empty());
  CHECK(f.say("a7 APPEND INBOX {5000}\r\n") == "+ Ready for literal data\r\n");
  CHECK(f.say(std::string(5000, 'm') + "\r\n") == "a7 OK [APPENDUID 42 9] APPEND completed\r\n");
  CHECK(f.session.appended.size() == 5000);
}

TEST_CASE("imap ext: an over-long piece after a literal ends its command with a tagged BAD") {
  SPLIT_SUBCASES();
  ServerOptions o;
  o.max_command_line = 64;
  Fixture f(o, false);
  CHECK(f.say("a1 LOGIN {5+}\r\nalice " + std::string(100, 'x') + "\r\na2 NOOP\r\n") ==
        "a1 BAD Command line too long\r\na2 OK NOOP completed\r\n");
  // The rest of a refused command, too long: the command still gets its one tagged answer.
  o.limits.max_literal = 16;
  Fixture g(o, false);
  CHECK(g.say("b1 LOGIN {17+}\r\n" + std::string(17, 'x') + " " + std::string(100, 'y') + "\r\nb2 NOOP\r\n") ==
        "b1 BAD Command line too long\r\nb2 OK NOOP completed\r\n");
}

// --- CREATE-SPECIAL-USE (RFC 6154 3) ---------------------------------------------------------

TEST_CASE("imap ext: CREATE with USE gives the mailbox its special use, LIST shows it") {
  SPLIT_SUBCASES();
  Fixture f;
  CHECK(has(f.capabilities(), " CREATE-SPECIAL-USE "));
  CHECK(f.say("a1 CREATE Outbox (USE (\\sent))\r\n") == "a1 OK CREATE completed\r\n");
  CHECK(f.session.calls.back() == "CREATE Outbox \\Sent");
  CHECK(f.say("a2 LIST \"\" Outbox\r\n") == "* LIST (\\HasNoChildren \\Sent) \"/\" Outbox\r\na2 OK LIST completed\r\n");
  CHECK(f.say("a3 LIST (SPECIAL-USE) \"\" *\r\n") ==
        "* LIST (\\HasNoChildren \\Sent) \"/\" Outbox\r\n* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n"
        "a3 OK LIST completed\r\n");
  // An empty USE list: no special use.
  CHECK(f.say("a4 CREATE Plain (USE ())\r\n") == "a4 OK CREATE completed\r\n");
  CHECK(f.session.calls.back() == "CREATE Plain");
  f.session.calls.clear();
  // What cannot be given is NO [USEATTR], and nothing is created (RFC 6154 3).
  CHECK(f.say("a5 CREATE Flagged (USE (\\Flagged))\r\n") == "a5 NO [USEATTR] \\Flagged is not supported\r\n");
  CHECK(f.say("a6 CREATE All (USE (\\All))\r\n") == "a6 NO [USEATTR] \\All is not supported\r\n");
  CHECK(f.say("a7 CREATE X (USE (\\X-Unknown))\r\n") == "a7 NO [USEATTR] \\X-Unknown is not supported\r\n");
  CHECK(f.say("a8 CREATE Two (USE (\\Sent \\Trash))\r\n") ==
        "a8 NO [USEATTR] A mailbox has at most one special use here\r\n");
  CHECK(f.session.calls.empty());
  // The Session may refuse one too.
  CHECK(f.say("a9 CREATE Spam (USE (\\Junk))\r\n") == "a9 NO [USEATTR] Only one junk mailbox\r\n");
  CHECK(f.session.boxes.count("Spam") == 0);
  // Syntax (RFC 4466 2.2, RFC 6154 6): BAD.
  CHECK(f.say("b1 CREATE X (FOO)\r\n") == "b1 BAD Unknown CREATE parameter\r\n");
  CHECK(f.say("b2 CREATE X (USE)\r\n") == "b2 BAD CREATE USE needs one list of special-use attributes\r\n");
  CHECK(f.say("b3 CREATE X (USE (Sent))\r\n").rfind("b3 BAD ", 0) == 0);
  CHECK(f.say("b4 CREATE X ()\r\n").rfind("b4 BAD ", 0) == 0);
  CHECK(f.say("b5 CREATE X (USE (\\Sent) USE (\\Sent))\r\n").rfind("b5 BAD ", 0) == 0);
  CHECK(f.say("b6 CREATE INBOX (USE (\\Sent))\r\n") == "b6 NO [ALREADYEXISTS] INBOX always exists\r\n");
}

// --- LIST-STATUS (RFC 5819) ------------------------------------------------------------------

TEST_CASE("imap ext: LIST RETURN (STATUS ...) sends STATUS after each selectable mailbox's LIST line") {
  SPLIT_SUBCASES();
  Fixture f;
  CHECK(has(f.capabilities(), " LIST-STATUS "));
  // Work exists only as the parent of Work/2026: listed, \NonExistent, no STATUS; Gone, only
  // subscribed, is not listed.
  CHECK(f.say("a1 LIST \"\" \"%\" RETURN (STATUS (MESSAGES UNSEEN))\r\n") ==
        "* LIST (\\HasNoChildren) \"/\" INBOX\r\n* STATUS INBOX (MESSAGES 5 UNSEEN 1)\r\n"
        "* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n* STATUS Sent (MESSAGES 4 UNSEEN 1)\r\n"
        "* LIST (\\NonExistent \\HasChildren) \"/\" Work\r\n"
        "a1 OK LIST completed\r\n");
  CHECK(f.session.calls == std::vector<std::string>{"LIST", "STATUS INBOX", "STATUS Sent"});
  // With other return options, in the order asked; a mailbox whose status fails gets none.
  f.session.status_fails = {"Sent"};
  CHECK(f.say("a2 LIST \"\" \"*\" RETURN (SUBSCRIBED STATUS (UIDNEXT) CHILDREN)\r\n") ==
        "* LIST (\\HasNoChildren) \"/\" INBOX\r\n* STATUS INBOX (UIDNEXT 7)\r\n"
        "* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n"
        "* LIST (\\HasNoChildren) \"/\" Work/2026\r\n* STATUS Work/2026 (UIDNEXT 7)\r\n"
        "a2 OK LIST completed\r\n");
  CHECK(f.say("b1 LIST \"\" * RETURN (STATUS)\r\n") == "b1 BAD LIST RETURN STATUS needs one list of STATUS items\r\n");
  CHECK(f.say("b2 LIST \"\" * RETURN (STATUS ())\r\n") == "b2 BAD LIST RETURN STATUS needs one list of STATUS items\r\n");
  CHECK(f.say("b3 LIST \"\" * RETURN (STATUS (BOGUS))\r\n") == "b3 BAD Unknown STATUS item BOGUS\r\n");
  CHECK(f.say("b4 LIST \"\" * RETURN (STATUS (MESSAGES) STATUS (UNSEEN))\r\n").rfind("b4 BAD ", 0) == 0);
  // Plain STATUS is unchanged by a LIST-STATUS before it.
  CHECK(f.say("b5 STATUS INBOX (UIDVALIDITY)\r\n") == "* STATUS INBOX (UIDVALIDITY 42)\r\nb5 OK STATUS completed\r\n");
}

TEST_CASE("imap ext: LIST-STATUS with pending STATUS verdicts keeps the order and holds pipelined commands") {
  Fixture f;
  f.session.pend_status = true;
  CHECK(f.say("a1 LIST \"\" \"*\" RETURN (STATUS (MESSAGES))\r\na2 NOOP\r\n") == "* LIST (\\HasNoChildren) \"/\" INBOX\r\n");
  MailboxStatus st;
  st.messages = 11;
  REQUIRE(f.server->complete(Verdict::counts(st)).ok());
  CHECK(take_output(*f.server) == "* STATUS INBOX (MESSAGES 11)\r\n* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n");
  REQUIRE(f.server->complete(Verdict::failed(Status::io_error("disk"))).ok());
  CHECK(take_output(*f.server) == "* LIST (\\HasNoChildren) \"/\" Work/2026\r\n");
  st.messages = 2;
  REQUIRE(f.server->complete(Verdict::counts(st)).ok());
  CHECK(take_output(*f.server) == "* STATUS Work/2026 (MESSAGES 2)\r\na1 OK LIST completed\r\na2 OK NOOP completed\r\n");
  CHECK_FALSE(f.server->complete(Verdict::counts(st)).ok());  // nothing pending
}

// --- UTF8=ACCEPT (RFC 6855) ------------------------------------------------------------------

TEST_CASE("imap ext: ENABLE UTF8=ACCEPT: UTF-8 mailbox names, APPEND UTF8, SEARCH without CHARSET") {
  SPLIT_SUBCASES();
  Fixture f;
  const std::string name = "Entw\xC3\xBCrfe";
  CHECK(has(f.capabilities(), " UTF8=ACCEPT "));
  // Before ENABLE: names are modified UTF-7, UTF-8 is refused, APPEND UTF8 is BAD.
  CHECK(f.say("a1 CREATE \"" + name + "\"\r\n") == "a1 BAD Invalid mailbox name\r\n");
  CHECK(f.say("a2 CREATE Entw&APw-rfe\r\n") == "a2 OK CREATE completed\r\n");
  CHECK(f.say("a3 LIST \"\" Entw*\r\n") == "* LIST (\\HasNoChildren) \"/\" Entw&APw-rfe\r\na3 OK LIST completed\r\n");
  CHECK(f.say("a4 APPEND INBOX UTF8 (~{5}\r\n") == "a4 BAD APPEND UTF8 needs ENABLE UTF8=ACCEPT\r\n");
  CHECK(f.say("a5 APPEND INBOX UTF8 (~{5+}\r\nhello)\r\na6 NOOP\r\n") ==
        "a5 BAD APPEND UTF8 needs ENABLE UTF8=ACCEPT\r\na6 OK NOOP completed\r\n");
  CHECK(f.session.calls == std::vector<std::string>{"CREATE " + name, "LIST"});
  CHECK(f.say("e1 ENABLE UTF8=ACCEPT\r\n") == "* ENABLED UTF8=ACCEPT\r\ne1 OK ENABLE completed\r\n");
  CHECK(f.server->utf8());
  CHECK(f.say("e2 ENABLE utf8=accept\r\n") == "* ENABLED\r\ne2 OK ENABLE completed\r\n");
  // After: UTF-8 names both ways (RFC 6855 3), no modified UTF-7 in responses.
  CHECK(f.say("b1 LIST \"\" Entw*\r\n") == "* LIST (\\HasNoChildren) \"/\" \"" + name + "\"\r\nb1 OK LIST completed\r\n");
  CHECK(f.say("b2 STATUS \"" + name + "\" (MESSAGES)\r\n") == "* STATUS \"" + name + "\" (MESSAGES 9)\r\nb2 OK STATUS completed\r\n");
  CHECK(f.say("b3 CREATE \"\xE6\x97\xA5\xE6\x9C\xAC\"\r\n") == "b3 OK CREATE completed\r\n");
  CHECK(f.session.boxes.count("\xE6\x97\xA5\xE6\x9C\xAC") == 1);
  CHECK(f.say("b4 LIST \"\" * RETURN (STATUS (UNSEEN))\r\n").find("* STATUS \"\xE6\x97\xA5\xE6\x9C\xAC\" (UNSEEN 1)\r\n") !=
        std::string::npos);
  // Net-Unicode (RFC 6855 3): no C1 controls, no U+2028 / U+2029 in names.
  CHECK(f.say("b5 CREATE \"a\xC2\x85z\"\r\n") == "b5 BAD Invalid mailbox name\r\n");
  CHECK(f.say("b6 CREATE \"a\xE2\x80\xA8z\"\r\n") == "b6 BAD Invalid mailbox name\r\n");
  // APPEND with the UTF8 data extension and a literal8 (RFC 6855 4), synchronizing or not.
  const std::string msg = "Subject: gr\xC3\xBC\xC3\x9F" "e\r\n\r\nhi\r\n";
  const std::string n = std::to_string(msg.size());
  CHECK(f.say("c1 APPEND INBOX (\\Seen) UTF8 (~{" + n + "}\r\n") == "+ Ready for literal data\r\n");
  CHECK(f.say(msg + ")\r\n") == "c1 OK [APPENDUID 42 9] APPEND completed\r\n");
  CHECK(f.session.appended == msg);
  CHECK(f.say("c2 APPEND INBOX UTF8 (~{" + n + "+}\r\n" + msg + ")\r\n") == "c2 OK [APPENDUID 42 9] APPEND completed\r\n");
  CHECK(f.session.appended == msg);
  // Without ")" the message is not stored; a plain literal in UTF8 ( ) is BAD.
  f.session.aborted = false;
  CHECK(f.say("c3 APPEND INBOX UTF8 (~{2+}\r\nhi\r\n") == "c3 BAD APPEND UTF8 data ends with \")\"\r\n");
  CHECK(f.session.aborted);
  CHECK(f.say("c4 APPEND INBOX UTF8 ({2+}\r\nhi)\r\nc5 NOOP\r\n") ==
        "c4 BAD APPEND UTF8 takes a literal8 (~{N})\r\nc5 OK NOOP completed\r\n");
  // A refused mailbox: the octets and ")" are dropped.
  CHECK(f.say("c6 APPEND Nowhere UTF8 (~{2+}\r\nhi)\r\nc7 NOOP\r\n") ==
        "c6 NO [TRYCREATE] No such mailbox\r\nc7 OK NOOP completed\r\n");
  // A plain APPEND still works.
  CHECK(f.say("c8 APPEND INBOX {2+}\r\nhi\r\n") == "c8 OK [APPENDUID 42 9] APPEND completed\r\n");
  // SEARCH with CHARSET is BAD after ENABLE UTF8=ACCEPT (RFC 6855 3), without it fine.
  CHECK(f.say("d1 SELECT INBOX\r\n").find("d1 OK ") != std::string::npos);
  CHECK(f.say("d2 SEARCH CHARSET UTF-8 ALL\r\n") == "d2 BAD SEARCH takes no CHARSET after ENABLE UTF8=ACCEPT\r\n");
  CHECK(f.say("d3 SEARCH CHARSET KOI8-R ALL\r\n") == "d3 BAD SEARCH takes no CHARSET after ENABLE UTF8=ACCEPT\r\n");
  CHECK(f.say("d4 SEARCH SUBJECT \"gr\xC3\xBC\xC3\x9F" "e\"\r\n") == "* SEARCH\r\nd4 OK SEARCH completed\r\n");
}

TEST_CASE("imap ext: SEARCH CHARSET stays allowed without UTF8=ACCEPT") {
  Fixture f;
  CHECK(f.say("d1 SELECT INBOX\r\n").find("d1 OK ") != std::string::npos);
  CHECK(f.say("d2 SEARCH CHARSET UTF-8 ALL\r\n") == "* SEARCH\r\nd2 OK SEARCH completed\r\n");
}
