#include "harness.h"

#include <cmail/smtp/server.h>

#include <algorithm>
#include <set>

using namespace cmail;
using namespace cmail::smtp;
using namespace cmail::test;

namespace {

struct RecordingSession : Session {
  std::vector<std::string> calls;
  std::string data;
  std::set<std::string> reject_rcpt;
  bool pend_data_end = false;
  bool pend_auth = false;
  std::string password = "secret";

  Verdict helo(const SessionInfo& i) override {
    calls.push_back("HELO " + i.helo);
    return Verdict::accept();
  }
  Verdict auth(const SessionInfo&, const sasl::Credentials& c) override {
    calls.push_back("AUTH " + c.authcid);
    if (pend_auth) return Verdict::pending();
    if (c.password == password) return Verdict::authenticated(c.authcid);
    return Verdict::reject(reply(535, {5, 7, 8}, "Authentication credentials invalid"));
  }
  Verdict mail(const SessionInfo&, const Path& from, const MailParams&) override {
    calls.push_back("MAIL " + from.address());
    return Verdict::accept("Sender OK");
  }
  Verdict rcpt(const SessionInfo&, const Path& to, const RcptParams&) override {
    calls.push_back("RCPT " + to.address());
    if (reject_rcpt.count(to.address())) return Verdict::reject(reply(550, {5, 1, 1}, "No such user"));
    return Verdict::accept("Recipient OK");
  }
  void data_chunk(std::string_view b) override { data += b; }
  Verdict data_end(const SessionInfo& i) override {
    calls.push_back("END " + i.protocol());
    if (pend_data_end) return Verdict::pending();
    return Verdict::accept("Queued as X1");
  }
  void reset() override { calls.push_back("RESET"); }
};

ServerOptions opts() {
  ServerOptions o;
  o.hostname = "mx.test";
  return o;
}

std::string greeted(Server& s) {
  take_output(s);
  feed(s, "EHLO client.test\r\n");
  return take_output(s);
}

}  // namespace

TEST_CASE("smtp::Server: greeting and EHLO capabilities") {
  SPLIT_SUBCASES();
  RecordingSession session;
  ServerOptions o = opts();
  o.starttls_available = true;
  o.auth_enabled = true;
  o.max_message_size = 1000;
  Server s(o, session);
  CHECK(take_output(s) == "220 mx.test ESMTP cmail\r\n");
  feed(s, "EHLO client.test\r\n");
  CHECK(take_output(s) ==
        "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
        "250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250-DSN\r\n250 STARTTLS\r\n");
  // AUTH is only offered inside TLS by default (RFC 4954 4: PLAIN in the clear).
  feed(s, "AUTH PLAIN AGEAYg==\r\n");
  CHECK(take_output(s).starts_with("538 5.7.11 "));
  feed(s, "HELO other.test\r\n");
  CHECK(take_output(s) == "250 mx.test\r\n");
  CHECK(session.calls == std::vector<std::string>{"HELO client.test", "HELO other.test"});
}

TEST_CASE("smtp::Server: EHLO without a size limit, and with AUTH inside TLS") {
  RecordingSession session;
  ServerOptions o = opts();
  o.max_message_size = 0;  // RFC 1870 4: SIZE alone, no limit announced
  o.auth_enabled = true;
  o.auth_requires_tls = false;
  o.chunking = false;
  o.dsn = false;
  Server s(o, session);
  take_output(s);
  feed(s, "EHLO client.test\r\n");
  CHECK(take_output(s) == "250-mx.test\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
                          "250-ENHANCEDSTATUSCODES\r\n250 AUTH " + sasl::mechanism_names() + "\r\n");
}

TEST_CASE("smtp::Server: a pipelined transaction, replies in order, dot-unstuffed data") {
  SPLIT_SUBCASES();
  RecordingSession session;
  Server s(opts(), session);
  take_output(s);
  feed(s,
       "EHLO client.test\r\nMAIL FROM:<a@remote.test> SIZE=40 BODY=8BITMIME\r\n"
       "RCPT TO:<b@local.test>\r\nRCPT TO:<c@local.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c+40local.test\r\n"
       "DATA\r\nSubject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n");
  std::string out = take_output(s);
  CHECK(out.find("250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n"
                 "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Queued as X1\r\n221 2.0.0 ") !=
        std::string::npos);
  CHECK(session.data == "Subject: x\r\n\r\n.leading dot\r\n");
  CHECK(session.calls == std::vector<std::string>{"HELO client.test", "MAIL a@remote.test",
                                                  "RCPT b@local.test", "RCPT c@local.test", "END ESMTP"});
  expect_event<proto::Close>(s);
  CHECK(s.state() == Server::State::Closed);
}

TEST_CASE("smtp::Server: liberal envelopes by default, RFC 5321 paths with strict_envelopes") {
  SPLIT_SUBCASES();
  const std::string conversation =
      "EHLO client.test\r\nMAIL FROM:Some Sender <a@remote.test> SIZE=40\r\n"
      "RCPT TO:b@local.test NOTIFY=NEVER\r\nRCPT TO:<test>\r\n"
      "RCPT TO:<(comment)c@local.test> (another)\r\nRCPT TO:\"d e\"@local.test\r\n"
      "RCPT TO:<x@y@local.test>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n";
  {
    RecordingSession session;
    Server s(opts(), session);
    take_output(s);
    feed(s, conversation);
    std::string out = take_output(s);
    CHECK(out.find("250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n"
                   "250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n"
                   "501 5.1.3 Bad recipient address syntax\r\n354 ") != std::string::npos);
    CHECK(session.calls == std::vector<std::string>{"HELO client.test", "MAIL a@remote.test",
                                                    "RCPT b@local.test", "RCPT test", "RCPT c@local.test",
                                                    "RCPT d e@local.test", "END ESMTP"});
  }
  {
    RecordingSession session;
    ServerOptions o = opts();
    o.strict_envelopes = true;
    Server s(o, session);
    take_output(s);
    feed(s, conversation);
    std::string out = take_output(s);
    CHECK(out.find("250-mx.test\r\n") != std::string::npos);
    CHECK(out.find("501 5.1.7 Bad sender address syntax\r\n"
                   "503 5.5.1 ") != std::string::npos);  // then RCPT without MAIL
    CHECK(session.calls == std::vector<std::string>{"HELO client.test"});
  }
}

TEST_CASE("smtp::Server: bare LF and bare CR never end a message (no SMTP smuggling)") {
  SPLIT_SUBCASES();
  RecordingSession session;
  Server s(opts(), session);
  greeted(s);
  feed(s, "MAIL FROM:<a@r.test>\r\nRCPT TO:<b@l.test>\r\nDATA\r\n");
  take_output(s);
  feed(s, "one\n.\nMAIL FROM:<evil@r.test>\r\ntwo\r.\rthree\r\n.\r\n");
  CHECK(take_output(s) == "250 2.0.0 Queued as X1\r\n");
  // One message; the smuggled lines are data, with real line ends now.
  CHECK(session.data == "one\r\n.\r\nMAIL FROM:<evil@r.test>\r\ntwo\r\n.\r\nthree\r\n");
  CHECK(std::count(session.calls.begin(), session.calls.end(), "MAIL evil@r.test") == 0);
}

TEST_CASE("smtp::Server: STARTTLS hands trailing bytes to TLS, not the parser") {
  SPLIT_SUBCASES();
  RecordingSession session;
  ServerOptions o = opts();
  o.starttls_available = true;
  o.auth_enabled = true;
  Server s(o, session);
  greeted(s);
  feed(s, "STARTTLS\r\nMAIL FROM:<evil@x.test>\r\n");
  CHECK(take_output(s) == "220 2.0.0 Ready to start TLS\r\n");
  // Every byte after the command, in every split (byte-wise feeding delivers them after the
  // event was queued), is the start of the TLS handshake: in `trailing`, never parsed.
  CHECK_FALSE(s.wants_read());
  auto ev = expect_event<proto::StartTls>(s);
  CHECK(ev.trailing == "MAIL FROM:<evil@x.test>\r\n");
  feed(s, "RCPT TO:<evil@x.test>\r\n");  // after the event was taken: the transport's, dropped
  CHECK(take_output(s).empty());
  CHECK_FALSE(s.wants_read());
  CHECK(std::count(session.calls.begin(), session.calls.end(), "MAIL evil@x.test") == 0);
  s.tls_established({"TLSv1.2", "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", 128});
  CHECK(s.wants_read());
  feed(s, "MAIL FROM:<a@x.test>\r\n");
  CHECK(take_output(s) == "503 5.5.1 Send EHLO first\r\n");  // RFC 3207 4.2
  feed(s, "EHLO again.test\r\n");
  std::string ehlo = take_output(s);
  CHECK(ehlo.find("STARTTLS") == std::string::npos);
  CHECK(ehlo.find("250 AUTH PLAIN LOGIN\r\n") != std::string::npos);
  feed(s, "STARTTLS\r\n");
  CHECK(take_output(s) == "503 5.5.1 TLS already active\r\n");
}

TEST_CASE("smtp::Server: AUTH succeeds only with the identity the Session vouches for") {
  SPLIT_SUBCASES();
  struct Aliasing : RecordingSession {
    bool without_identity = false;
    Verdict auth(const SessionInfo&, const sasl::Credentials& c) override {
      calls.push_back("AUTH " + c.authcid);
      // accept("alice") is a reply text, not an identity: it must not log anybody in.
      if (without_identity) return Verdict::accept("alice");
      return Verdict::authenticated("alice@target");  // e.g. an alias's target
    }
  };
  Aliasing session;
  ServerOptions o = opts();
  o.auth_enabled = true;
  o.tls_active = true;
  Server s(o, session);
  greeted(s);
  const std::string plain = "AUTH PLAIN " + sasl::base64_encode(std::string("\0alias\0pw", 9)) + "\r\n";
  session.without_identity = true;
  feed(s, plain);
  CHECK(take_output(s) == "454 4.7.0 Temporary authentication failure\r\n");  // RFC 4954 6
  CHECK_FALSE(s.info().user.has_value());
  session.without_identity = false;
  feed(s, plain);
  CHECK(take_output(s) == "235 2.7.0 Authentication successful\r\n");
  CHECK(s.info().user == std::optional<std::string>("alice@target"));
}

TEST_CASE("smtp::Server: SIZE is enforced during DATA and for every transaction") {
  SPLIT_SUBCASES();
  RecordingSession session;
  ServerOptions o = opts();
  o.max_message_size = 100;
  Server s(o, session);
  greeted(s);
  // cmail forgot the limit after one message (docs/compatibility.md#smtp-size-limit).
  for (int round = 0; round < 2; ++round) {
    session.data.clear();
    feed(s, "MAIL FROM:<a@r.test>\r\nRCPT TO:<b@l.test>\r\nDATA\r\n");
    take_output(s);
    std::string body;
    for (int i = 0; i < 20; ++i) body += "0123456789\r\n";
    feed(s, body + ".\r\n");
    CHECK(take_output(s) == "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
    CHECK(session.data.size() <= 120);  // streaming stopped at the limit
  }
  CHECK(std::count(session.calls.begin(), session.calls.end(), "END ESMTP") == 0);
  CHECK(std::count(session.calls.begin(), session.calls.end(), "RESET") == 2);
  feed(s, "MAIL FROM:<a@r.test> SIZE=101\r\n");
  CHECK(take_output(s) == "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
}

TEST_CASE("smtp::Server: line limits") {
  SPLIT_SUBCASES();
  RecordingSession session;
  Server s(opts(), session);
  greeted(s);
  feed(s, "NOOP " + std::string(600, 'x') + "\r\nNOOP\r\n");
  CHECK(take_output(s) == "500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n");
  feed(s, "MAIL FROM:<a@r.test>\r\nRCPT TO:<b@l.test>\r\nDATA\r\n");
  take_output(s);
  feed(s, "short\r\n" + std::string(1200, 'y') + "\r\n.\r\n");
  CHECK(take_output(s).starts_with("554 5.6.0 "));
  CHECK(std::count(session.calls.begin(), session.calls.end(), "END ESMTP") == 0);
}

TEST_CASE("smtp::Server: too many Received headers is a loop") {
  SPLIT_SUBCASES();
  RecordingSession session;
  ServerOptions o = opts();
  o.max_hops = 5;
  Server s(o, session);
  greeted(s);
  auto send_with = [&](int hops) {
    feed(s, "MAIL FROM:<a@r.test>\r\nRCPT TO:<b@l.test>\r\nDATA\r\n");
    take_output(s);
    std::string m;
    for (int i = 0; i < hops; ++i) m += "Received: from hop" + std::to_string(i) + "\r\n";
    m += "\r\nReceived: in the body does not count\r\n.\r\n";
    feed(s, m);
    return take_output(s);
  };
  CHECK(send_with(5) == "250 2.0.0 Queued as X1\r\n");
  CHECK(send_with(6).starts_with("554 5.4.6 "));
}

TEST_CASE("smtp::Server: errors end an abusive session") {
  SPLIT_SUBCASES();
  RecordingSession session;
  Server s(opts(), session);
  greeted(s);
  std::string junk;
  for (int i = 0; i < 10; ++i) junk += "GARBAGE\r\n";
  feed(s, junk + "NOOP\r\n");
  std::string out = take_output(s);
  CHECK(std::count(out.begin(), out.end(), '\n') == 11);
  CHECK(out.ends_with("421 4.7.0 mx.test Too many errors, closing connection\r\n"));
  expect_event<proto::Close>(s);
  CHECK(out.find("250 2.0.0 OK") == std::string::npos);  // nothing after the close
}

TEST_CASE("smtp::Server: a pending verdict holds pipelined input until complete()") {
  SPLIT_SUBCASES();
  RecordingSession session;
  session.pend_data_end = true;
  Server s(opts(), session);
  greeted(s);
  feed(s, "MAIL FROM:<a@r.test>\r\nRCPT TO:<b@l.test>\r\nDATA\r\nhello\r\n.\r\nMAIL FROM:<next@r.test>\r\n");
  CHECK(take_output(s).ends_with("354 End data with <CR><LF>.<CR><LF>\r\n"));
  CHECK(session.calls.back() == "END ESMTP");
  REQUIRE(s.complete(Verdict::accept()).ok());
  // complete() answered the data; then the pipelined MAIL was processed, in order.
  CHECK(take_output(s) == "250 2.0.0 OK\r\n250 2.1.0 Sender OK\r\n");
  CHECK(session.calls.back() == "MAIL next@r.test");
  CHECK(s.complete(Verdict::accept()).code() == Status::Code::InvalidArgument);
}

TEST_CASE("smtp::Server: a backend failure at end of data is a 451 and reveals nothing") {
  SPLIT_SUBCASES();
  RecordingSession session;
  session.pend_data_end = true;
  Server s(opts(), session);
  greeted(s);
  feed(s, "MAIL FROM:<a@r.test>\r\nRCPT TO:<b@l.test>\r\nDATA\r\nx\r\n.\r\n");
  take_output(s);
  REQUIRE(s.complete(Verdict::failed(Status::io_error("disk I/O error at /var/db"))).ok());
  CHECK(take_output(s) == "451 4.3.0 Temporary failure, please try again later\r\n");
}

TEST_CASE("smtp::Server: AUTH PLAIN and LOGIN inside TLS") {
  SPLIT_SUBCASES();
  RecordingSession session;
  ServerOptions o = opts();
  o.auth_enabled = true;
  o.tls_active = true;
  o.require_auth = true;
  Server s(o, session);
  greeted(s);
  feed(s, "MAIL FROM:<a@r.test>\r\n");
  CHECK(take_output(s) == "530 5.7.0 Authentication required\r\n");
  // "\0alice\0wrong", then LOGIN with a cancel, then the right password.
  feed(s, "AUTH PLAIN " + sasl::base64_encode(std::string("\0alice\0wrong", 12)) + "\r\n");
  CHECK(take_output(s) == "535 5.7.8 Authentication credentials invalid\r\n");
  feed(s, "AUTH LOGIN\r\n");
  CHECK(take_output(s) == "334 VXNlcm5hbWU6\r\n");
  feed(s, "*\r\n");
  CHECK(take_output(s) == "501 5.0.0 Authentication cancelled\r\n");
  feed(s, "AUTH LOGIN\r\n" + sasl::base64_encode("alice") + "\r\n" + sasl::base64_encode("secret") + "\r\n");
  CHECK(take_output(s) == "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n");
  CHECK(s.info().user == std::optional<std::string>("alice"));
  CHECK(s.info().protocol() == "ESMTPSA");
  feed(s, "AUTH PLAIN =\r\n");
  CHECK(take_output(s) == "503 5.5.1 Already authenticated\r\n");
  feed(s, "MAIL FROM:<alice@l.test>\r\n");
  CHECK(take_output(s) == "250 2.1.0 Sender OK\r\n");
}

TEST_CASE("smtp::Server: AUTH PLAIN and AUTH LOGIN with a trailing space get 334, as without it") {
  // RFC 4954 4: the initial response is optional and "=" sends an empty one, so "AUTH PLAIN "
  // has none (docs/compatibility.md#users-sasl-trailing-white-space).
  SPLIT_SUBCASES();
  RecordingSession session;
  ServerOptions o = opts();
  o.auth_enabled = true;
  o.tls_active = true;
  Server s(o, session);
  greeted(s);
  feed(s, "AUTH PLAIN \r\n");
  CHECK(take_output(s) == "334 \r\n");
  CHECK(s.state() == Server::State::Auth);
  feed(s, "*\r\n");
  CHECK(take_output(s) == "501 5.0.0 Authentication cancelled\r\n");
  feed(s, "AUTH PLAIN \t \r\n" + sasl::base64_encode(std::string("\0alice\0wrong", 12)) + "\r\n");
  CHECK(take_output(s) == "334 \r\n535 5.7.8 Authentication credentials invalid\r\n");
  feed(s, "AUTH LOGIN \r\n" + sasl::base64_encode("alice") + "\r\n" + sasl::base64_encode("secret") + "\r\n");
  CHECK(take_output(s) == "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n");
  CHECK(s.info().user == std::optional<std::string>("alice"));

  RecordingSession other;
  Server p(o, other);
  greeted(p);
  feed(p, "AUTH PLAIN \r\n" + sasl::base64_encode(std::string("\0alice\0secret", 13)) + "\r\n");
  CHECK(take_output(p) == "334 \r\n235 2.7.0 Authentication successful\r\n");
  CHECK(other.calls == std::vector<std::string>{"HELO client.test", "AUTH alice"});
  feed(p, "QUIT\r\n");
  RecordingSession third;
  Server q(o, third);
  greeted(q);
  feed(q, "AUTH PLAIN =\r\n");  // "=" is an empty initial response: a malformed PLAIN message
  CHECK(take_output(q) == "535 5.7.8 Authentication credentials invalid\r\n");
}

TEST_CASE("smtp::Server: repeated authentication failures close the connection") {
  SPLIT_SUBCASES();
  RecordingSession session;
  ServerOptions o = opts();
  o.auth_enabled = true;
  o.auth_requires_tls = false;
  Server s(o, session);
  greeted(s);
  std::string bad = "AUTH PLAIN " + sasl::base64_encode(std::string("\0u\0x", 4)) + "\r\n";
  feed(s, bad + bad + bad);
  std::string out = take_output(s);
  CHECK(out.ends_with("421 4.7.0 mx.test Too many authentication failures\r\n"));
  expect_event<proto::Close>(s);
}

TEST_CASE("smtp::Server: BDAT chunks, binary content and LAST") {
  SPLIT_SUBCASES();
  RecordingSession session;
  Server s(opts(), session);
  greeted(s);
  std::string chunk1 = "Subject: b\r\n\r\n.\r\n";  // a "." line is data inside BDAT
  feed(s, "MAIL FROM:<a@r.test> BODY=BINARYMIME\r\nRCPT TO:<b@l.test>\r\nBDAT " +
              std::to_string(chunk1.size()) + "\r\n" + chunk1 + "BDAT 4 LAST\r\nend!");
  CHECK(take_output(s) == "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.0.0 " +
                              std::to_string(chunk1.size()) + " octets received\r\n250 2.0.0 Queued as X1\r\n");
  CHECK(session.data == chunk1 + "end!");
  feed(s, "MAIL FROM:<a@r.test> BODY=BINARYMIME\r\nRCPT TO:<b@l.test>\r\nDATA\r\n");
  CHECK(take_output(s).ends_with("503 5.5.1 Use BDAT for this transaction\r\n"));
  feed(s, "RSET\r\nBDAT 3\r\nabcNOOP\r\n");
  CHECK(take_output(s) == "250 2.0.0 OK\r\n503 5.5.1 Need MAIL command\r\n250 2.0.0 OK\r\n");
}

TEST_CASE("smtp::Server: NUL octets are refused but with BODY=BINARYMIME") {
  SPLIT_SUBCASES();
  RecordingSession session;
  Server s(opts(), session);
  greeted(s);
  using namespace std::string_literals;
  feed(s, "MAIL FROM:<a@r.test>\r\nRCPT TO:<b@l.test>\r\nDATA\r\nSubject: n\r\n\r\n\0.\r\nmore\r\n.\r\n"s);
  CHECK(take_output(s).ends_with("354 End data with <CR><LF>.<CR><LF>\r\n"
                                 "554 5.6.0 Message contains NUL octets, allowed only with BODY=BINARYMIME\r\n"));
  feed(s, "MAIL FROM:<a@r.test> BODY=8BITMIME\r\nRCPT TO:<b@l.test>\r\nBDAT 5 LAST\r\na\0b\r\n"s);
  CHECK(take_output(s).ends_with("554 5.6.0 Message contains NUL octets, allowed only with BODY=BINARYMIME\r\n"));
  CHECK(std::count(session.calls.begin(), session.calls.end(), "END ESMTP") == 0);  // never handed over
  session.data.clear();
  feed(s, "MAIL FROM:<a@r.test> BODY=BINARYMIME\r\nRCPT TO:<b@l.test>\r\nBDAT 5 LAST\r\na\0b\r\n"s);
  CHECK(take_output(s).ends_with("250 2.0.0 Queued as X1\r\n"));
  CHECK(session.data == "a\0b\r\n"s);
  // The transaction after a refusal starts clean.
  feed(s, "MAIL FROM:<a@r.test>\r\nRCPT TO:<b@l.test>\r\nDATA\r\nclean\r\n.\r\n");
  CHECK(take_output(s).ends_with("250 2.0.0 Queued as X1\r\n"));
}

TEST_CASE("smtp::Server: sequence errors and small commands") {
  SPLIT_SUBCASES();
  RecordingSession session;
  session.reject_rcpt = {"nobody@l.test"};
  ServerOptions o = opts();
  o.max_recipients = 2;
  Server s(o, session);
  take_output(s);
  feed(s, "MAIL FROM:<a@r.test>\r\n");
  CHECK(take_output(s) == "503 5.5.1 Send EHLO first\r\n");
  feed(s, "EHLO bad_host!\r\n");
  CHECK(take_output(s) == "501 5.5.4 Syntax: EHLO hostname\r\n");
  feed(s, "EHLO [192.0.2.1]\r\nRCPT TO:<b@l.test>\r\nDATA\r\nVRFY x\r\n");
  std::string out = take_output(s);
  CHECK(out.find("503 5.5.1 Need MAIL before RCPT\r\n503 5.5.1 Need MAIL command\r\n252 2.5.0 ") != std::string::npos);
  feed(s, "MAIL FROM:<>\r\nRCPT TO:<nobody@l.test>\r\nDATA\r\n");
  CHECK(take_output(s) == "250 2.1.0 Sender OK\r\n550 5.1.1 No such user\r\n554 5.5.1 No valid recipients\r\n");
  feed(s, "RCPT TO:<b@l.test>\r\nRCPT TO:<c@l.test>\r\nRCPT TO:<d@l.test>\r\nMAIL FROM:<x@r.test>\r\n");
  CHECK(take_output(s) == "250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n452 4.5.3 Too many recipients\r\n"
                          "503 5.5.1 Nested MAIL command\r\n");
  feed(s, "RSET\r\nMAIL FROM:<a@r.test> FOO=BAR\r\nMAIL FROM:<ü@r.test>\r\nMAIL FROM:<ü@r.test> SMTPUTF8\r\n");
  CHECK(take_output(s) == "250 2.0.0 OK\r\n555 5.5.4 Unsupported parameter FOO\r\n"
                          "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n250 2.1.0 Sender OK\r\n");
  CHECK(session.calls.back() == "MAIL ü@r.test");  // UTF-8 kept intact (RFC 6531)
}

TEST_CASE("smtp::Server: deadlines bound each command line and each DATA or BDAT phase") {
  SPLIT_SUBCASES();
  using namespace std::chrono_literals;
  RecordingSession session;
  ServerOptions o = opts();
  o.command_timeout = 10s;
  o.data_timeout = 20s;
  o.min_data_rate = 1000;
  Server s(o, session);
  greeted(s);
  const proto::Deadline idle = s.deadline();
  CHECK(idle.budget == 0ms);  // between commands only the idle timeout applies
  feed(s, "MAIL FROM:<a@r");  // part of a line: the line has command_timeout in all
  const proto::Deadline line = s.deadline();
  CHECK(line.phase != idle.phase);
  CHECK(line.budget == 10s);
  feed(s, ".test>");
  CHECK(s.deadline() == line);  // more bytes of the same line: the same phase, its clock runs on
  feed(s, "\r\n");
  CHECK(s.deadline().budget == 0ms);
  CHECK(s.deadline().phase != line.phase);
  feed(s, "RCPT TO:<b@l.test>\r\nDATA\r\n");
  const proto::Deadline data = s.deadline();
  CHECK(data.budget == 20s);  // data_timeout, and a second per min_data_rate octets
  for (int i = 0; i < 5; ++i) feed(s, std::string(498, 'x') + "\r\n");
  CHECK(s.deadline().phase == data.phase);
  CHECK(s.deadline().budget == 22500ms);
  feed(s, ".\r\n");
  CHECK(take_output(s).ends_with("250 2.0.0 Queued as X1\r\n"));
  CHECK(s.deadline().budget == 0ms);
  // Each BDAT chunk is a phase of its own.
  feed(s, "MAIL FROM:<a@r.test>\r\nRCPT TO:<b@l.test>\r\nBDAT 5000\r\n" + std::string(1000, 'y'));
  const proto::Deadline chunk = s.deadline();
  CHECK(chunk.budget == 21s);
  feed(s, std::string(4000, 'y') + "BDAT 10 LAST\r\n12345");
  CHECK(s.deadline().phase != chunk.phase);
  CHECK(s.deadline().budget == 20005ms);
  // An over-long line that never ends is still bound: its rest is dropped in a phase of its own.
  feed(s, "67890NOOP " + std::string(600, 'z'));
  CHECK(take_output(s).ends_with("500 5.5.2 Line too long\r\n"));
  const proto::Deadline dropping = s.deadline();
  CHECK(dropping.budget == 10s);
  feed(s, std::string(5000, 'z'));
  CHECK(s.deadline() == dropping);
  s.timed_out();
  CHECK(take_output(s) == "421 4.4.2 mx.test Timeout exceeded, closing connection\r\n");
}

TEST_CASE("smtp::Server: QUIT, timeouts and a vanished client") {
  SPLIT_SUBCASES();
  SUBCASE("QUIT before EHLO is fine (cmail refused it, docs/compatibility.md#smtp-session-state)") {
    RecordingSession session;
    Server s(opts(), session);
    take_output(s);
    feed(s, "QUIT\r\n");
    CHECK(take_output(s) == "221 2.0.0 mx.test closing connection\r\n");
    expect_event<proto::Close>(s);
  }
  SUBCASE("a timeout in DATA drops the transaction") {
    RecordingSession session;
    Server s(opts(), session);
    greeted(s);
    feed(s, "MAIL FROM:<a@r.test>\r\nRCPT TO:<b@l.test>\r\nDATA\r\npartial");
    take_output(s);
    CHECK(s.timeout() == std::chrono::minutes(3));
    s.timed_out();
    CHECK(take_output(s) == "421 4.4.2 mx.test Timeout exceeded, closing connection\r\n");
    expect_event<proto::Close>(s);
    CHECK(session.calls.back() == "RESET");
  }
  SUBCASE("EOF in the middle of DATA stores nothing") {
    RecordingSession session;
    Server s(opts(), session);
    greeted(s);
    feed(s, "MAIL FROM:<a@r.test>\r\nRCPT TO:<b@l.test>\r\nDATA\r\nhalf a message\r\n");
    s.receive_eof();
    expect_event<proto::Close>(s);
    CHECK(session.calls.back() == "RESET");
    CHECK(std::count(session.calls.begin(), session.calls.end(), "END ESMTP") == 0);
  }
}

TEST_CASE("smtp::Server: REQUIRETLS offered and taken inside TLS only (RFC 8689 3)") {
  SPLIT_SUBCASES();
  struct Params : RecordingSession {
    std::vector<MailParams> got;
    Verdict mail(const SessionInfo& i, const Path& from, const MailParams& p) override {
      got.push_back(p);
      return RecordingSession::mail(i, from, p);
    }
  };
  Params session;
  ServerOptions o = opts();
  o.starttls_available = true;
  Server plain(o, session);
  CHECK(greeted(plain).find("REQUIRETLS") == std::string::npos);
  feed(plain, "MAIL FROM:<a@b.test> REQUIRETLS\r\n");
  CHECK(take_output(plain) == "530 5.7.10 REQUIRETLS needs a TLS connection\r\n");
  o.tls_active = true;
  o.starttls_available = false;
  Server tls(o, session);
  CHECK(greeted(tls).ends_with("250 REQUIRETLS\r\n"));
  feed(tls, "MAIL FROM:<a@b.test> REQUIRETLS=yes\r\n");
  CHECK(take_output(tls) == "501 5.5.4 Invalid REQUIRETLS parameter\r\n");
  feed(tls, "MAIL FROM:<a@b.test> REQUIRETLS\r\n");
  CHECK(take_output(tls) == "250 2.1.0 Sender OK\r\n");
  REQUIRE(session.got.size() == 1);
  CHECK(session.got[0].requiretls);
  o.requiretls = false;
  Server off(o, session);
  CHECK(greeted(off).find("REQUIRETLS") == std::string::npos);
  feed(off, "MAIL FROM:<a@b.test> REQUIRETLS\r\n");
  CHECK(take_output(off) == "555 5.5.4 REQUIRETLS not supported\r\n");
}
