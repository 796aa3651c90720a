#include "harness.h"

#include <cmail/pop3/server.h>
#include <cmail/proto/message.h>

#include <algorithm>

using namespace cmail;
using namespace cmail::pop3;
using namespace cmail::test;

namespace {

// A maildrop in memory. Records the calls; answers at once unless told to pend.
struct RecordingSession : Session {
  std::vector<std::string> messages;
  std::vector<std::string> calls;
  std::string password = "secret";
  bool pend = false;
  std::optional<Verdict> login_answer;  // instead of checking the password
  std::optional<Verdict> update_answer;
  bool streamed = false;      // answer RETR/TOP with a Source that gives tiny pieces
  bool stream_fails = false;  // ... which fails after its first piece

  // A message in memory handed out 1 to 7 octets at a time (pieces of any size must do).
  struct Pieces : proto::Source {
    std::string text;
    std::size_t pos = 0;
    bool fail = false;
    Status read(std::size_t max, std::string& out) override {
      if (fail && pos > 0) return Status::io_error("disk gone");
      std::size_t n = std::min({max, text.size() - pos, 1 + pos % 7});
      out.append(text, pos, n);
      pos += n;
      return Status();
    }
  };

  Verdict login(const sasl::Credentials& c) override {
    calls.push_back("LOGIN " + c.authzid + "/" + c.authcid + "/" + c.password);
    if (pend) return Verdict::pending();
    if (login_answer) return std::move(*login_answer);
    if (c.authcid != "alice" || c.password != password)
      return Verdict::reject(RespCode::Auth, "Invalid user name or password");
    return Verdict::maildrop(c.authcid, listing());
  }
  Verdict retrieve(std::size_t i) override {
    calls.push_back("RETR " + std::to_string(i));
    if (pend) return Verdict::pending();
    if (streamed) {
      auto p = std::make_shared<Pieces>();
      p->text = messages.at(i);
      p->fail = stream_fails;
      return Verdict::message(std::shared_ptr<proto::Source>(p));
    }
    return Verdict::message(messages.at(i));
  }
  Verdict update(const std::vector<std::size_t>& deleted) override {
    std::string c = "UPDATE";
    for (auto i : deleted) c += " " + std::to_string(i);
    calls.push_back(c);
    if (pend) return Verdict::pending();
    if (update_answer) return std::move(*update_answer);
    return Verdict::accept();
  }
  std::vector<Listing> listing() const {
    std::vector<Listing> l;
    for (std::size_t i = 0; i < messages.size(); ++i) l.push_back({proto::wire_size(messages[i]), "uid-" + std::to_string(i + 1)});
    return l;
  }
};

ServerOptions opts() {
  ServerOptions o;
  o.hostname = "pop.test";
  return o;
}

// All output, letting the engine encode a streamed message as its output is consumed.
std::string drain(Server& s) {
  std::string out;
  while (!s.pending_output().empty()) out += take_output(s);
  return out;
}

RecordingSession with_mail() {
  RecordingSession r;
  r.messages = {
      "Subject: one\r\n\r\nfirst\r\n",
      "Subject: two\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend",  // no final CRLF (cmail's form)
      "Subject: bare\n\nbare LF\nlines\rand a bare CR\n",
      "Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n\r\ngrüße, ünïcödé\r\n",
  };
  return r;
}

void login(Server& s) {
  take_output(s);
  feed(s, "USER alice\r\nPASS secret\r\n");
  std::string out = take_output(s);
  REQUIRE(out.starts_with("+OK Send PASS\r\n+OK Logged in"));
}

// The message of a RETR response, with the terminator removed and dot-stuffing undone.
std::string unstuff(std::string_view response) {
  auto first = response.find("\r\n");
  REQUIRE(first != std::string_view::npos);
  std::string_view body = response.substr(first + 2);
  REQUIRE(body.ends_with(".\r\n"));
  body.remove_suffix(3);
  std::string out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    auto end = body.find("\r\n", pos);
    if (end == std::string_view::npos) {
      FAIL("a line without CRLF");
      break;
    }
    std::string_view line = body.substr(pos, end - pos);
    if (line.starts_with(".")) line.remove_prefix(1);
    out += line;
    out += "\r\n";
    pos = end + 2;
  }
  return out;
}

}  // namespace

TEST_CASE("pop3::Server: greeting, CAPA before and after login") {
  SPLIT_SUBCASES();
  RecordingSession session = with_mail();
  ServerOptions o = opts();
  o.starttls_available = true;
  Server s(o, session);
  CHECK(take_output(s) == "+OK pop.test POP3 server ready\r\n");  // no APOP timestamp
  feed(s, "CAPA\r\n");
  CHECK(take_output(s) ==
        "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
        "STLS\r\nUSER\r\nSASL PLAIN LOGIN\r\nIMPLEMENTATION cmail\r\n.\r\n");
  feed(s, "user alice\r\npass secret\r\ncapa\r\n");  // keywords are case-insensitive
  CHECK(take_output(s) ==
        "+OK Send PASS\r\n+OK Logged in, maildrop has 4 messages (" +
        std::to_string(proto::wire_size(session.messages[0]) + proto::wire_size(session.messages[1]) +
                       proto::wire_size(session.messages[2]) + proto::wire_size(session.messages[3])) +
        " octets)\r\n"
        "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
        "IMPLEMENTATION cmail\r\n.\r\n");
  CHECK(session.calls == std::vector<std::string>{"LOGIN /alice/secret"});
  CHECK(s.state() == Server::State::Transaction);
}

TEST_CASE("pop3::Server: STAT, LIST and UIDL; sizes are the octets RETR sends") {
  SPLIT_SUBCASES();
  RecordingSession session = with_mail();
  Server s(opts(), session);
  login(s);
  std::uint64_t total = 0;
  for (auto& m : session.messages) total += proto::wire_size(m);
  feed(s, "STAT\r\n");
  CHECK(take_output(s) == "+OK 4 " + std::to_string(total) + "\r\n");
  feed(s, "LIST\r\nUIDL\r\nLIST 2\r\nUIDL 4\r\n");
  std::string expect = "+OK 4 messages (" + std::to_string(total) + " octets)\r\n";
  for (int i = 0; i < 4; ++i) expect += std::to_string(i + 1) + " " + std::to_string(proto::wire_size(session.messages[i])) + "\r\n";
  expect += ".\r\n+OK 4 messages (" + std::to_string(total) + " octets)\r\n1 uid-1\r\n2 uid-2\r\n3 uid-3\r\n4 uid-4\r\n.\r\n";
  expect += "+OK 2 " + std::to_string(proto::wire_size(session.messages[1])) + "\r\n+OK 4 uid-4\r\n";
  CHECK(take_output(s) == expect);
  // Every message: what RETR sends, unstuffed, is exactly as long as LIST said, with CRLF
  // line ends only (bare LF and bare CR made CRLF; the missing final CRLF added; UTF-8 counted
  // in octets, not characters as cmail did, docs/compatibility.md#pop3-sizes-and-unique-ids).
  for (std::size_t i = 0; i < session.messages.size(); ++i) {
    CAPTURE(i);
    feed(s, "RETR " + std::to_string(i + 1) + "\r\n");
    std::string r = drain(s);
    CHECK(r.starts_with("+OK " + std::to_string(proto::wire_size(session.messages[i])) + " octets\r\n"));
    std::string body = unstuff(r);
    CHECK(body.size() == proto::wire_size(session.messages[i]));
    bool crlf_only = true;
    for (std::size_t k = 0; k < body.size(); ++k) {
      if (body[k] == '\n' && (k == 0 || body[k - 1] != '\r')) crlf_only = false;
      if (body[k] == '\r' && (k + 1 == body.size() || body[k + 1] != '\n')) crlf_only = false;
    }
    CHECK(crlf_only);
  }
  CHECK(proto::wire_size(session.messages[3]) == session.messages[3].size());  // octets, UTF-8 included
  CHECK(proto::wire_size(session.messages[1]) == session.messages[1].size() + 2);
  CHECK(proto::wire_size(session.messages[2]) == session.messages[2].size() + 5);  // 4 bare LF, 1 bare CR
}

TEST_CASE("pop3::Server: RETR dot-stuffs; TOP sends the header and n body lines") {
  SPLIT_SUBCASES();
  RecordingSession session = with_mail();
  Server s(opts(), session);
  login(s);
  feed(s, "RETR 2\r\n");
  CHECK(take_output(s) == "+OK " + std::to_string(proto::wire_size(session.messages[1])) +
                              " octets\r\nSubject: two\r\n\r\n..leading dot\r\n...two dots\r\n..\r\nend\r\n.\r\n");
  feed(s, "TOP 2 1\r\nTOP 1 0\r\nTOP 3 10\r\n");
  CHECK(take_output(s) ==
        "+OK Top of message follows\r\nSubject: two\r\n\r\n..leading dot\r\n.\r\n"
        "+OK Top of message follows\r\nSubject: one\r\n\r\n.\r\n"
        "+OK Top of message follows\r\nSubject: bare\r\n\r\nbare LF\r\nlines\r\nand a bare CR\r\n.\r\n");
  feed(s, "TOP 1\r\nTOP 9 1\r\nRETR\r\nRETR x\r\nRETR 1 2\r\n");
  CHECK(take_output(s) ==
        "-ERR Syntax: TOP message lines\r\n-ERR No such message, the maildrop has 4 messages\r\n"
        "-ERR Syntax: a message number is required\r\n-ERR Syntax: a message number is required\r\n"
        "-ERR Syntax: a message number is required\r\n");
}

TEST_CASE("pop3::Server: DELE hides messages; the deletions happen at QUIT, +OK after them") {
  SPLIT_SUBCASES();
  RecordingSession session = with_mail();
  Server s(opts(), session);
  login(s);
  feed(s, "DELE 2\r\nDELE 2\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 2\r\nLIST 2\r\nTOP 2 0\r\n");
  std::uint64_t rest = proto::wire_size(session.messages[0]) + proto::wire_size(session.messages[2]) + proto::wire_size(session.messages[3]);
  CHECK(take_output(s) ==
        "+OK Message 2 deleted\r\n-ERR Message 2 is already deleted\r\n+OK 3 " + std::to_string(rest) + "\r\n"
        "+OK 3 messages (" + std::to_string(rest) + " octets)\r\n1 " + std::to_string(proto::wire_size(session.messages[0])) +
        "\r\n3 " + std::to_string(proto::wire_size(session.messages[2])) + "\r\n4 " + std::to_string(proto::wire_size(session.messages[3])) +
        "\r\n.\r\n+OK 3 messages (" + std::to_string(rest) + " octets)\r\n1 uid-1\r\n3 uid-3\r\n4 uid-4\r\n.\r\n"
        "-ERR Message 2 is deleted\r\n-ERR Message 2 is deleted\r\n-ERR Message 2 is deleted\r\n");
  feed(s, "RSET\r\nDELE 1\r\nDELE 4\r\n");
  CHECK(take_output(s).starts_with("+OK Maildrop has 4 messages"));
  CHECK(s.deleted() == std::vector<std::size_t>{0, 3});
  session.pend = true;
  feed(s, "QUIT\r\nNOOP\r\n");
  CHECK(take_output(s).empty());  // UPDATE: nothing until the deletions are durable
  CHECK(s.state() == Server::State::Update);
  CHECK_FALSE(s.wants_read());
  CHECK(session.calls.back() == "UPDATE 0 3");
  REQUIRE(s.complete(Verdict::accept()).ok());
  CHECK(take_output(s) == "+OK pop.test POP3 server signing off (2 messages deleted)\r\n");  // NOOP never answered
  expect_event<proto::Close>(s);
}

TEST_CASE("pop3::Server: a session that ends without QUIT deletes nothing") {
  SPLIT_SUBCASES();
  for (int how = 0; how < 3; ++how) {
    CAPTURE(how);
    RecordingSession session = with_mail();
    Server s(opts(), session);
    login(s);
    feed(s, "DELE 1\r\n");
    take_output(s);
    if (how == 0) s.receive_eof();
    if (how == 1) {
      s.timed_out();
      CHECK(take_output(s) == "-ERR Autologout: idle for too long, closing connection\r\n");
    }
    if (how == 2) feed(s, "QUI");  // cut off in the middle of QUIT
    if (how == 2) s.receive_eof();
    expect_event<proto::Close>(s);
    CHECK(std::none_of(session.calls.begin(), session.calls.end(), [](auto& c) { return c.starts_with("UPDATE"); }));
  }
}

TEST_CASE("pop3::Server: a failed update says so and keeps every message") {
  RecordingSession session = with_mail();
  session.update_answer = Verdict::failed(Status::io_error("disk full"));
  Server s(opts(), session);
  login(s);
  feed(s, "DELE 1\r\nQUIT\r\n");
  CHECK(take_output(s) == "+OK Message 1 deleted\r\n-ERR [SYS/TEMP] Some deleted messages not removed, try again later\r\n");
  expect_event<proto::Close>(s);
}

TEST_CASE("pop3::Server: QUIT before login, and commands in the wrong state") {
  SPLIT_SUBCASES();
  RecordingSession session = with_mail();
  Server s(opts(), session);
  take_output(s);
  feed(s, "STAT\r\nNOOP\r\nAPOP alice 0123456789abcdef0123456789abcdef\r\nSTATUS\r\nPASS secret\r\n\r\n");
  CHECK(take_output(s) ==
        "-ERR Log in first\r\n-ERR Log in first\r\n-ERR APOP is not offered; use USER/PASS or AUTH\r\n"
        "-ERR Unknown command\r\n-ERR Send USER first\r\n-ERR Unknown command\r\n");
  feed(s, "USER alice\r\nPASS secret\r\nUSER bob\r\nSTLS\r\nNOOP\r\nNOOP x\r\n");
  std::string out = take_output(s);
  CHECK(out.find("-ERR Already logged in\r\n-ERR Already logged in\r\n+OK\r\n-ERR Syntax: NOOP\r\n") != std::string::npos);
  RecordingSession other;
  Server q(opts(), other);
  take_output(q);
  feed(q, "QUIT\r\n");
  CHECK(take_output(q) == "+OK pop.test POP3 server signing off\r\n");
  expect_event<proto::Close>(q);
  CHECK(other.calls.empty());
}

TEST_CASE("pop3::Server: pipelined commands wait behind pending verdicts, replies in order") {
  SPLIT_SUBCASES();
  RecordingSession session = with_mail();
  session.pend = true;
  Server s(opts(), session);
  take_output(s);
  feed(s, "CAPA\r\nUSER alice\r\nPASS secret\r\nSTAT\r\nRETR 1\r\nNOOP\r\nQUIT\r\n");
  CHECK(take_output(s).ends_with("+OK Send PASS\r\n"));
  CHECK(session.calls == std::vector<std::string>{"LOGIN /alice/secret"});
  CHECK(s.wants_read());  // pipelined input may wait, within a bound
  REQUIRE(s.complete(Verdict::maildrop("alice", session.listing())).ok());
  CHECK(take_output(s) == "+OK Logged in, maildrop has 4 messages (" +
                              std::to_string(proto::wire_size(session.messages[0]) + proto::wire_size(session.messages[1]) +
                                             proto::wire_size(session.messages[2]) + proto::wire_size(session.messages[3])) +
                              " octets)\r\n+OK 4 " +
                              std::to_string(proto::wire_size(session.messages[0]) + proto::wire_size(session.messages[1]) +
                                             proto::wire_size(session.messages[2]) + proto::wire_size(session.messages[3])) +
                              "\r\n");
  CHECK(session.calls.back() == "RETR 0");
  REQUIRE(s.complete(Verdict::message(session.messages[0])).ok());
  CHECK(take_output(s) == "+OK 23 octets\r\nSubject: one\r\n\r\nfirst\r\n.\r\n+OK\r\n");
  CHECK(session.calls.back() == "UPDATE");
  REQUIRE(s.complete(Verdict::accept()).ok());
  CHECK(take_output(s).starts_with("+OK pop.test POP3 server signing off (0 messages deleted)"));
  CHECK_FALSE(s.complete(Verdict::accept()).ok());  // nothing pending: the embedder's mistake
}

TEST_CASE("pop3::Server: a 20 MiB message streams with bounded output, pipelined replies after it") {
  RecordingSession session;
  std::string big = "Subject: big\r\n\r\n";
  while (big.size() < 20 * 1024 * 1024) big += ".dotted line " + std::to_string(big.size()) + "\r\n";
  session.messages = {big, "Subject: small\r\n\r\nx\r\n"};
  Server s(opts(), session);
  login(s);
  feed(s, "RETR 1\r\nLIST 2\r\n");
  std::string got;
  std::size_t most = 0;
  while (!s.pending_output().empty()) {
    most = std::max(most, s.pending_output().size());
    got += take_output(s);
  }
  CHECK(most <= 256 * 1024);  // encoded as it is consumed, not all at once
  REQUIRE(got.ends_with(".\r\n+OK 2 21\r\n"));
  std::string body = unstuff(got.substr(0, got.size() - std::string("+OK 2 21\r\n").size()));
  CHECK(body.size() == proto::wire_size(big));
  CHECK(body == big);
}

TEST_CASE("pop3::Server: AUTH PLAIN and LOGIN (RFC 5034), cancel, bad data") {
  SPLIT_SUBCASES();
  RecordingSession session = with_mail();
  Server s(opts(), session);
  take_output(s);
  feed(s, "AUTH\r\n");
  CHECK(take_output(s) == "+OK SASL mechanisms follow\r\nPLAIN\r\nLOGIN\r\n.\r\n");
  feed(s, "AUTH CRAM-MD5\r\nAUTH PLAIN !!!!\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN\r\nnot base64\r\n");
  CHECK(take_output(s) ==
        "-ERR Unrecognized authentication mechanism\r\n-ERR Invalid base64 data\r\n+ \r\n-ERR Authentication canceled\r\n"
        "+ \r\n-ERR Invalid base64 data\r\n");
  feed(s, "AUTH LOGIN\r\n" + sasl::base64_encode("alice") + "\r\n" + sasl::base64_encode("secret") + "\r\n");
  CHECK(take_output(s) == "+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n+OK Logged in, maildrop has 4 messages (" +
                              std::to_string(proto::wire_size(session.messages[0]) + proto::wire_size(session.messages[1]) +
                                             proto::wire_size(session.messages[2]) + proto::wire_size(session.messages[3])) +
                              " octets)\r\n");
  CHECK(session.calls == std::vector<std::string>{"LOGIN /alice/secret"});

  RecordingSession other = with_mail();
  Server p(opts(), other);
  take_output(p);
  feed(p, "AUTH PLAIN " + sasl::base64_encode(std::string("admin\0alice\0secret", 18)) + "\r\n");
  CHECK(take_output(p).starts_with("+OK Logged in"));
  CHECK(other.calls == std::vector<std::string>{"LOGIN admin/alice/secret"});  // the backend judges authzid
}

TEST_CASE("pop3::Server: AUTH PLAIN and AUTH LOGIN with a trailing space continue with \"+ \"") {
  // RFC 5034 4: the initial response is optional and "=" sends an empty one, so "AUTH PLAIN "
  // has none (docs/compatibility.md#users-sasl-trailing-white-space).
  SPLIT_SUBCASES();
  RecordingSession session = with_mail();
  Server s(opts(), session);
  take_output(s);
  feed(s, "AUTH PLAIN \r\n*\r\nAUTH LOGIN  \t\r\n*\r\n");
  CHECK(take_output(s) == "+ \r\n-ERR Authentication canceled\r\n+ VXNlcm5hbWU6\r\n-ERR Authentication canceled\r\n");
  feed(s, "AUTH PLAIN \r\n" + sasl::base64_encode(std::string("\0alice\0secret", 13)) + "\r\n");
  CHECK(take_output(s).starts_with("+ \r\n+OK Logged in, maildrop has 4 messages"));
  CHECK(session.calls == std::vector<std::string>{"LOGIN /alice/secret"});

  RecordingSession other = with_mail();
  Server p(opts(), other);
  take_output(p);
  feed(p, "AUTH LOGIN \r\n" + sasl::base64_encode("alice") + "\r\n" + sasl::base64_encode("secret") + "\r\n");
  CHECK(take_output(p).starts_with("+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n+OK Logged in"));
  CHECK(other.calls == std::vector<std::string>{"LOGIN /alice/secret"});
}

TEST_CASE("pop3::Server: failed logins are limited per connection; response codes pass through") {
  SPLIT_SUBCASES();
  RecordingSession session = with_mail();
  Server s(opts(), session);
  take_output(s);
  feed(s, "USER alice\r\nPASS wrong\r\n");
  CHECK(take_output(s) == "+OK Send PASS\r\n-ERR [AUTH] Invalid user name or password\r\n");
  feed(s, "PASS secret\r\n");  // the user name is gone after a failed PASS
  CHECK(take_output(s) == "-ERR Send USER first\r\n");
  session.login_answer = Verdict::reject(RespCode::InUse, "Maildrop is locked by another session");
  feed(s, "USER alice\r\nPASS secret\r\n");
  CHECK(take_output(s) == "+OK Send PASS\r\n-ERR [IN-USE] Maildrop is locked by another session\r\n");
  feed(s, "AUTH PLAIN =\r\nUSER alice\r\n");  // "=": an empty response, a malformed PLAIN message
  CHECK(take_output(s) == "-ERR [AUTH] Authentication failed\r\n");  // the third failure: closed
  expect_event<proto::Close>(s);
  CHECK(s.state() == Server::State::Closed);

  RecordingSession broken = with_mail();
  broken.login_answer = Verdict::failed(Status::io_error("user database unreadable"));
  Server b(opts(), broken);
  take_output(b);
  feed(b, "USER alice\r\nPASS secret\r\n");
  CHECK(take_output(b) == "+OK Send PASS\r\n-ERR [SYS/TEMP] Temporary failure, try again later\r\n");
}

TEST_CASE("pop3::Server: tlsrequire keeps USER, PASS and AUTH inside TLS") {
  SPLIT_SUBCASES();
  RecordingSession session = with_mail();
  ServerOptions o = opts();
  o.starttls_available = true;
  o.tls_required = true;
  Server s(o, session);
  take_output(s);
  feed(s, "CAPA\r\n");
  CHECK(take_output(s) ==
        "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nSTLS\r\n"
        "IMPLEMENTATION cmail\r\n.\r\n");
  feed(s, "USER alice\r\nPASS secret\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
  CHECK(take_output(s) == "-ERR [AUTH] Log in only after STLS: this server requires TLS\r\n"
                          "-ERR [AUTH] Log in only after STLS: this server requires TLS\r\n"
                          "-ERR [AUTH] Log in only after STLS: this server requires TLS\r\n");
  CHECK(session.calls.empty());
  feed(s, "STLS\r\n");
  CHECK(take_output(s) == "+OK Begin TLS negotiation\r\n");
  expect_event<proto::StartTls>(s);
  s.tls_established({"TLSv1.2", "X", 256});
  feed(s, "CAPA\r\nUSER alice\r\nPASS secret\r\n");
  std::string out = take_output(s);
  CHECK(out.starts_with("+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
                        "USER\r\nSASL PLAIN LOGIN\r\nIMPLEMENTATION cmail\r\n.\r\n+OK Send PASS\r\n+OK Logged in"));

  ServerOptions implicit = opts();
  implicit.tls_active = true;
  implicit.tls_required = true;
  Server t(implicit, session);
  take_output(t);
  feed(t, "STLS\r\nUSER alice\r\n");
  CHECK(take_output(t) == "-ERR TLS is already active\r\n+OK Send PASS\r\n");
}

TEST_CASE("pop3::Server: STLS hands trailing bytes to TLS and forgets a USER given before") {
  SPLIT_SUBCASES();
  RecordingSession session = with_mail();
  ServerOptions o = opts();
  o.starttls_available = true;
  Server s(o, session);
  take_output(s);
  feed(s, "USER alice\r\nSTLS\r\nPASS secret\r\n");
  CHECK(take_output(s) == "+OK Send PASS\r\n+OK Begin TLS negotiation\r\n");
  // Every byte after STLS, in every split (also those that arrived after the event was
  // queued), belongs to the TLS handshake; none reaches the parser (RFC 2595 4).
  CHECK_FALSE(s.wants_read());
  auto trailing = expect_event<proto::StartTls>(s).trailing;
  CHECK(trailing == "PASS secret\r\n");
  feed(s, "PASS secret\r\n");  // after the event was taken: the transport's, dropped
  CHECK(take_output(s).empty());
  CHECK(session.calls.empty());
  CHECK_FALSE(s.wants_read());
  s.tls_established({});
  CHECK(s.wants_read());
  feed(s, "PASS secret\r\nSTLS\r\nCAPA\r\n");
  std::string out = take_output(s);
  CHECK(out.starts_with("-ERR Send USER first\r\n-ERR TLS is already active\r\n"));  // RFC 2595 4
  CHECK(out.find("STLS\r\n") == std::string::npos);
  CHECK(session.calls.empty());

  RecordingSession plain;
  Server n(opts(), plain);
  take_output(n);
  feed(n, "STLS\r\n");
  CHECK(take_output(n) == "-ERR STLS not available\r\n");
}

TEST_CASE("pop3::Server: long lines and too many errors") {
  SPLIT_SUBCASES();
  RecordingSession session = with_mail();
  Server s(opts(), session);
  take_output(s);
  feed(s, "NOOP " + std::string(600, 'x') + "\r\nCAPA\r\n");
  std::string out = take_output(s);
  CHECK(out.starts_with("-ERR Line too long\r\n+OK Capability list follows\r\n"));
  feed(s, std::string(100000, 'y'));  // no line end at all: one reply, the bytes dropped
  CHECK(take_output(s) == "-ERR Line too long\r\n");
  feed(s, "\r\n");
  for (int i = 0; i < 8; ++i) feed(s, "BOGUS\r\n");
  std::string last = take_output(s);
  CHECK(last.ends_with("-ERR Unknown command\r\n-ERR Too many errors, closing connection\r\n"));
  expect_event<proto::Close>(s);
  CHECK(s.timeout() == std::chrono::minutes(10));  // RFC 1939 3: at least 10 minutes
}

TEST_CASE("pop3::Server: a command line must arrive whole within the idle timeout") {
  SPLIT_SUBCASES();
  RecordingSession session = with_mail();
  Server s(opts(), session);
  take_output(s);
  const proto::Deadline idle = s.deadline();
  CHECK(idle.budget == std::chrono::milliseconds(0));
  feed(s, "CA");
  const proto::Deadline line = s.deadline();
  CHECK(line.phase != idle.phase);
  CHECK(line.budget == std::chrono::minutes(10));
  feed(s, "P");
  CHECK(s.deadline() == line);
  feed(s, "A\r\n");
  CHECK(take_output(s).starts_with("+OK Capability list follows"));
  CHECK(s.deadline().budget == std::chrono::milliseconds(0));
  feed(s, "NOOP " + std::string(600, 'x'));  // too long and never ending: still bound
  CHECK(take_output(s) == "-ERR Line too long\r\n");
  CHECK(s.deadline().budget == std::chrono::minutes(10));
}

TEST_CASE("pop3::top_part and the message codec") {
  struct Case {
    std::string message;
    std::uint64_t lines;
    std::string top;
  };
  const Case cases[] = {
      {"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n", 0, "A: 1\r\nB: 2\r\n\r\n"},
      {"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n", 1, "A: 1\r\nB: 2\r\n\r\nl1\r\n"},
      {"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n", 9, "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n"},
      {"A: 1\n\nl1\nl2", 1, "A: 1\n\nl1\n"},
      {"A: 1\r\nno body", 3, "A: 1\r\nno body"},
      {"", 1, ""},
  };
  for (const Case& c : cases) {
    CAPTURE(c.message);
    CHECK(top_part(c.message, c.lines) == c.top);
  }
  CHECK(proto::dot_stuffed("") == ".\r\n");
  CHECK(proto::dot_stuffed(".") == "..\r\n.\r\n");
  CHECK(proto::dot_stuffed("a\nb\r\rc\r\n.d") == "a\r\nb\r\n\r\nc\r\n..d\r\n.\r\n");
  CHECK(proto::wire_size("a\nb\r\rc\r\n.d") == std::string("a\r\nb\r\n\r\nc\r\n.d\r\n").size());
  // Encoding in small pieces gives the same bytes as at once.
  std::string m = "x\r\n.y\rz\n\n.\r\n" + std::string(300, 'q') + "\r";
  for (std::size_t budget : {1u, 2u, 3u, 7u, 64u}) {
    CAPTURE(budget);
    proto::DotStuffer d(m);
    std::string out;
    while (d.encode(out, budget)) {
    }
    CHECK(out == proto::dot_stuffed(m));
    CHECK(d.done());
  }
}

TEST_CASE("pop3::Server: a message from a Source is sent as the same bytes as from memory, RETR and TOP") {
  for (bool top : {false, true}) {
    for (std::uint64_t lines = 0; lines < (top ? 4u : 1u); ++lines) {
      RecordingSession whole = with_mail(), pieces = with_mail();
      pieces.streamed = true;
      Server a(opts(), whole), b(opts(), pieces);
      login(a);
      login(b);
      for (int i = 1; i <= 4; ++i) {
        const std::string cmd = top ? "TOP " + std::to_string(i) + " " + std::to_string(lines) + "\r\n" : "RETR " + std::to_string(i) + "\r\n";
        CAPTURE(cmd);
        feed(a, cmd);
        feed(b, cmd);
        const std::string expected = drain(a);
        CHECK(expected.ends_with("\r\n.\r\n"));
        CHECK(drain(b) == expected);
      }
    }
  }
  // The cut itself, on pieces split at every point of a CRLF.
  const std::string m = "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n";
  for (std::uint64_t lines = 0; lines < 5; ++lines) {
    for (std::size_t split = 0; split <= m.size(); ++split) {
      TopCut cut(lines);
      std::size_t n = cut.take(std::string_view(m).substr(0, split));
      if (!cut.done()) n += cut.take(std::string_view(m).substr(split));
      CHECK(n == top_part(m, lines).size());
    }
  }
  CHECK(top_part(m, 0) == "A: 1\r\nB: 2\r\n\r\n");
  CHECK(top_part(m, 2) == "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n");
}

TEST_CASE("pop3::Server: a Source that fails after the +OK closes the connection, never ends the message") {
  RecordingSession r = with_mail();
  r.streamed = true;
  r.stream_fails = true;
  Server s(opts(), r);
  login(s);
  feed(s, "RETR 1\r\nNOOP\r\n");
  const std::string out = drain(s);
  CHECK(out.starts_with("+OK"));
  CHECK(out.find("\r\n.\r\n") == std::string::npos);  // no terminator: the client sees a broken transfer
  CHECK(s.state() == Server::State::Closed);
}
