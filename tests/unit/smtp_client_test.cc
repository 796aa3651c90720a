#include "harness.h"

#include <cmail/mail/outcome.h>
#include <cmail/smtp/client.h>
#include <cmail/smtp/server.h>

#include <algorithm>

using namespace cmail;
using namespace cmail::smtp;
using namespace cmail::test;
namespace ev = cmail::smtp::client_event;

namespace {

struct Sink : Session {
  std::vector<std::string> messages;
  std::string current;
  std::vector<std::string> rcpts;
  std::vector<MailParams> params;
  Verdict auth(const SessionInfo&, const sasl::Credentials& c) override {
    return c.authcid == "relay" && c.password == "pw" ? Verdict::authenticated(c.authcid) : Verdict::reject(reply(535, {5, 7, 8}, "no"));
  }
  Verdict mail(const SessionInfo&, const Path& from, const MailParams& p) override {
    if (from.local == "blocked") return Verdict::reject(reply(550, {5, 7, 1}, "Sender blocked"));
    params.push_back(p);
    return Verdict::accept();
  }
  Verdict rcpt(const SessionInfo&, const Path& to, const RcptParams&) override {
    if (to.local == "nobody") return Verdict::reject(reply(550, {5, 1, 1}, "No such user"));
    rcpts.push_back(to.address());
    return Verdict::accept();
  }
  void data_chunk(std::string_view b) override { current += b; }
  Verdict data_end(const SessionInfo&) override {
    messages.push_back(current);
    current.clear();
    return Verdict::accept("Queued");
  }
  void reset() override { current.clear(); }
};

// An in-memory connection: moves bytes both ways until neither side has anything to say, and
// completes a STARTTLS on both sides when both asked for it (h11's ConnectionPair).
struct LoopbackPair {
  Sink sink;
  Server server;
  Client client;
  std::vector<ClientEvent> events;
  bool closed = false;

  LoopbackPair(ServerOptions so, ClientOptions co) : server(so, sink), client(co) {}

  void pump() {
    bool server_tls = false, client_tls = false;
    for (int round = 0; round < 1000; ++round) {
      bool moved = false;
      if (auto out = server.pending_output(); !out.empty()) {
        std::string bytes(out);
        server.consume_output(bytes.size());
        feed(client, bytes);
        moved = true;
      }
      if (auto out = client.pending_output(); !out.empty()) {
        std::string bytes(out);
        client.consume_output(bytes.size());
        feed(server, bytes);
        moved = true;
      }
      while (auto e = server.next_event()) {
        if (std::holds_alternative<proto::StartTls>(*e)) server_tls = true;
        if (std::holds_alternative<proto::Close>(*e)) closed = true;
      }
      while (auto e = client.next_event()) {
        if (std::holds_alternative<proto::StartTls>(*e)) client_tls = true;
        if (std::holds_alternative<proto::Close>(*e)) closed = true;
      }
      while (auto e = client.next_client_event()) events.push_back(*e);
      if (server_tls && client_tls) {  // the "handshake"
        server.tls_established({"TLSv1.2", "TEST", 128});
        client.tls_established({"TLSv1.2", "TEST", 128});
        server_tls = client_tls = false;
        moved = true;
      }
      if (!moved) return;
    }
    FAIL("loopback did not settle");
  }
  template <typename T>
  std::vector<T> of() const {
    std::vector<T> out;
    for (const auto& e : events)
      if (auto* p = std::get_if<T>(&e)) out.push_back(*p);
    return out;
  }
};

Envelope envelope(const char* from, std::vector<const char*> to) {
  Envelope e;
  e.from = *parse_path(from, true);
  for (const char* t : to) e.recipients.push_back({*parse_path(t, false), {}});
  return e;
}

}  // namespace

TEST_CASE("smtp::Client against smtp::Server: pipelined transactions on one connection") {
  SPLIT_SUBCASES();
  ServerOptions so;
  so.hostname = "mx.test";
  ClientOptions co;
  co.helo_name = "client.test";
  co.chunking = false;  // DATA and dot-stuffing here; BDAT below
  LoopbackPair p(so, co);
  p.pump();
  REQUIRE(p.of<ev::Ready>().size() == 1);
  CHECK(p.client.extensions().pipelining);
  CHECK(p.client.extensions().dsn);

  const std::string message = "Subject: dots\r\n\r\n.leading dot\r\n..two\r\nend";
  Envelope e = envelope("<a@remote.test>", {"<b@mx.test>", "<nobody@mx.test>", "<c@mx.test>"});
  e.params.ret = "HDRS";
  e.recipients[0].params.notify = "FAILURE";
  REQUIRE(p.client.send_mail(e, message).ok());
  CHECK(p.client.send_mail(e, message).code() == Status::Code::InvalidArgument);  // one at a time
  p.pump();
  auto rcpts = p.of<ev::RcptResult>();
  REQUIRE(rcpts.size() == 3);
  CHECK(rcpts[1].reply.code == 550);
  CHECK(rcpts[1].reply.enhanced == std::optional<EnhancedCode>(EnhancedCode{5, 1, 1}));
  auto results = p.of<ev::MailResult>();
  REQUIRE(results.size() == 1);
  CHECK(results[0].reply.code == 250);
  CHECK(results[0].accepted == std::vector<std::size_t>{0, 2});
  // Dot-stuffing both ways is lossless; a missing final CRLF is added.
  REQUIRE(p.sink.messages.size() == 1);
  CHECK(p.sink.messages[0] == message + "\r\n");
  CHECK(p.sink.params[0].size == std::optional<std::uint64_t>(message.size()));
  CHECK(p.sink.params[0].ret == std::optional<std::string>("HDRS"));

  // A second transaction on the same connection; the sender is refused.
  REQUIRE(p.client.send_mail(envelope("<blocked@remote.test>", {"<b@mx.test>"}), "x\r\n").ok());
  p.pump();
  results = p.of<ev::MailResult>();
  REQUIRE(results.size() == 2);
  CHECK(results[1].reply.summary() == "550 5.7.1 Sender blocked");
  CHECK(p.of<ev::Ready>().size() == 3);  // after RSET
  p.client.quit();
  p.pump();
  CHECK(p.closed);
  CHECK(p.sink.messages.size() == 1);
}

TEST_CASE("smtp::Client: STARTTLS, fresh EHLO, then AUTH PLAIN") {
  SPLIT_SUBCASES();
  ServerOptions so;
  so.starttls_available = true;
  so.auth_enabled = true;
  ClientOptions co;
  co.tls = TlsPolicy::Required;
  co.auth = sasl::Credentials{"", "relay", "pw"};
  LoopbackPair p(so, co);
  p.pump();
  REQUIRE(p.of<ev::Ready>().size() == 1);
  CHECK(p.client.tls());
  CHECK_FALSE(p.client.extensions().starttls);  // from the EHLO after the handshake
  CHECK(p.server.info().user == std::optional<std::string>("relay"));
  CHECK(p.server.info().protocol() == "ESMTPSA");
  // A message over the authenticated TLS session (BDAT), then QUIT closes both ends.
  REQUIRE(p.client.send_mail(envelope("<a@remote.test>", {"<b@mx.test>"}), "Subject: x\r\n\r\nbody\r\n").ok());
  p.pump();
  REQUIRE(p.of<ev::MailResult>().size() == 1);
  CHECK(p.of<ev::MailResult>()[0].reply.code == 250);
  CHECK(p.sink.messages == std::vector<std::string>{"Subject: x\r\n\r\nbody\r\n"});
  p.client.quit();
  p.pump();
  CHECK(p.closed);
}

TEST_CASE("smtp::Client: what follows the server's 220 to STARTTLS goes to TLS, in every split") {
  SPLIT_SUBCASES();
  ClientOptions co;
  Client c(co);
  feed(c, "220 mx\r\n");
  CHECK(take_output(c) == "EHLO localhost\r\n");
  feed(c, "250-mx\r\n250 STARTTLS\r\n");
  CHECK(take_output(c) == "STARTTLS\r\n");
  // The server's handshake bytes (or an injected reply) right after its 220 are never parsed
  // as replies (RFC 3207 4.2): they are the start of the TLS stream.
  const std::string after = std::string("\x16\x03\x01\x00\x05", 5) + "250 injected\r\n";
  feed(c, "220 go ahead\r\n" + after);
  CHECK_FALSE(c.wants_read());
  auto st = expect_event<proto::StartTls>(c);
  CHECK(st.trailing == after);
  CHECK_FALSE(c.next_client_event().has_value());  // no Failed, no Ready
  c.tls_established({"TLSv1.2", "TEST", 128});
  CHECK(take_output(c) == "EHLO localhost\r\n");  // RFC 3207 4.2: greet again
  feed(c, "250 mx\r\n");
  CHECK(std::holds_alternative<ev::Ready>(*c.next_client_event()));
  CHECK(c.tls());
}

TEST_CASE("smtp::Client: TLS required but not offered; credentials never sent in the clear") {
  SPLIT_SUBCASES();
  SUBCASE("required TLS") {
    ClientOptions co;
    co.tls = TlsPolicy::Required;
    LoopbackPair p(ServerOptions{}, co);
    p.pump();
    auto f = p.of<ev::Failed>();
    REQUIRE(f.size() == 1);
    CHECK(f[0].kind == FailKind::Implementation);
    CHECK(p.closed);
  }
  SUBCASE("AUTH without TLS") {
    ServerOptions so;
    so.auth_enabled = true;
    so.auth_requires_tls = false;
    ClientOptions co;
    co.auth = sasl::Credentials{"", "relay", "pw"};
    LoopbackPair p(so, co);
    p.pump();
    auto f = p.of<ev::Failed>();
    REQUIRE(f.size() == 1);
    CHECK(f[0].reason.find("without TLS") != std::string::npos);
    CHECK_FALSE(p.server.info().user.has_value());
  }
}

TEST_CASE("smtp::Client: an old server (HELO, no extensions), byte script") {
  SPLIT_SUBCASES();
  Client c(ClientOptions{});
  feed(c, "220 old.test SMTP\r\n");
  CHECK(take_output(c) == "EHLO localhost\r\n");
  feed(c, "500 5.5.1 What?\r\n");
  CHECK(take_output(c) == "HELO localhost\r\n");
  feed(c, "250 old.test\r\n");
  REQUIRE(std::holds_alternative<ev::Ready>(*c.next_client_event()));
  // 8-bit data and UTF-8 paths cannot go to this server: refused before anything is sent.
  auto st = c.send_mail(envelope("<a@x.test>", {"<b@y.test>"}), "caf\xc3\xa9\r\n");
  CHECK(st.code() == Status::Code::Unsupported);
  CHECK(st.message().find("8BITMIME") != std::string::npos);
  Envelope utf8;
  utf8.from = *parse_path("<jöhn@x.test>", true);
  utf8.recipients.push_back({*parse_path("<b@y.test>", false), {}});
  CHECK(c.send_mail(utf8, "x\r\n").message().find("SMTPUTF8") != std::string::npos);
  CHECK(c.pending_output().empty());
  // Without PIPELINING: one command at a time, no ESMTP parameters.
  Envelope e = envelope("<a@x.test>", {"<b@y.test>", "<c@y.test>"});
  e.params.ret = "FULL";
  REQUIRE(c.send_mail(e, "hello\r\n").ok());
  CHECK(take_output(c) == "MAIL FROM:<a@x.test>\r\n");
  feed(c, "250 ok\r\n");
  CHECK(take_output(c) == "RCPT TO:<b@y.test>\r\n");
  feed(c, "451 try later\r\n");
  CHECK(take_output(c) == "RCPT TO:<c@y.test>\r\n");
  feed(c, "250 ok\r\n");
  CHECK(take_output(c) == "DATA\r\n");
  feed(c, "354 go\r\n");
  CHECK(take_output(c) == "hello\r\n.\r\n");
  feed(c, "250 queued\r\n");
  std::vector<ClientEvent> got;
  while (auto x = c.next_client_event()) got.push_back(*x);
  REQUIRE(got.size() == 4);
  CHECK(std::get<ev::RcptResult>(got[0]).reply.transient());
  CHECK(std::get<ev::MailResult>(got[2]).accepted == std::vector<std::size_t>{1});
  CHECK(std::holds_alternative<ev::Ready>(got[3]));
}

TEST_CASE("smtp::Client: SIZE is checked before sending; failures are classified") {
  SPLIT_SUBCASES();
  SUBCASE("too big for SIZE") {
    Client c(ClientOptions{});
    feed(c, "220 mx\r\n");
    take_output(c);
    feed(c, "250-mx\r\n250-SIZE 100\r\n250 8BITMIME\r\n");
    REQUIRE(std::holds_alternative<ev::Ready>(*c.next_client_event()));
    CHECK(c.send_mail(envelope("<a@x.test>", {"<b@y.test>"}), std::string(200, 'x')).code() == Status::Code::Unsupported);
    REQUIRE(c.send_mail(envelope("<a@x.test>", {"<b@y.test>"}), std::string(50, 'x')).ok());
    CHECK(take_output(c) == "MAIL FROM:<a@x.test> SIZE=50\r\n");
  }
  SUBCASE("garbage reply") {
    Client c(ClientOptions{});
    feed(c, "hello there\r\n");
    auto f = c.next_client_event();
    REQUIRE(std::holds_alternative<ev::Failed>(*f));
    CHECK(std::get<ev::Failed>(*f).kind == FailKind::Protocol);
  }
  SUBCASE("greeting refused, then a timeout elsewhere") {
    Client c(ClientOptions{});
    feed(c, "554 5.7.1 go away\r\n");
    auto f = std::get<ev::Failed>(*c.next_client_event());
    CHECK(f.kind == FailKind::Response);
    CHECK(f.permanent());
    Client d(ClientOptions{});
    CHECK(d.timeout() == std::chrono::minutes(5));
    d.timed_out();
    auto g = std::get<ev::Failed>(*d.next_client_event());
    CHECK(g.kind == FailKind::Connection);
    CHECK_FALSE(g.permanent());
  }
  SUBCASE("connection lost mid-transaction") {
    Client c(ClientOptions{});
    feed(c, "220 mx\r\n250 mx\r\n");
    take_output(c);
    c.next_client_event();
    REQUIRE(c.send_mail(envelope("<a@x.test>", {"<b@y.test>"}), "x\r\n").ok());
    c.receive_eof();
    auto f = std::get<ev::Failed>(*c.next_client_event());
    CHECK(f.kind == FailKind::Connection);
  }
}

TEST_CASE("smtp::Client against smtp::Server: CHUNKING sends the body in one BDAT, unstuffed") {
  SPLIT_SUBCASES();
  LoopbackPair p(ServerOptions{}, ClientOptions{});
  p.pump();
  REQUIRE(p.client.extensions().chunking);
  const std::string message = "Subject: chunk\r\n\r\n.a dot stays single\r\nno final CRLF";
  REQUIRE(p.client.send_mail(envelope("<a@remote.test>", {"<b@mx.test>", "<nobody@mx.test>"}), message).ok());
  p.pump();
  auto results = p.of<ev::MailResult>();
  REQUIRE(results.size() == 1);
  CHECK(results[0].reply.code == 250);
  CHECK(results[0].accepted == std::vector<std::size_t>{0});
  REQUIRE(p.sink.messages.size() == 1);
  CHECK(p.sink.messages[0] == message + "\r\n");
  // Nobody accepted: the pipelined BDAT chunk is consumed and refused, the connection goes on.
  REQUIRE(p.client.send_mail(envelope("<a@remote.test>", {"<nobody@mx.test>"}), "x\r\n").ok());
  p.pump();
  results = p.of<ev::MailResult>();
  REQUIRE(results.size() == 2);
  CHECK(results[1].reply.code == 550);
  CHECK(results[1].accepted.empty());
  REQUIRE(p.client.send_mail(envelope("<a@remote.test>", {"<c@mx.test>"}), "again\r\n").ok());
  p.pump();
  REQUIRE(p.sink.messages.size() == 2);
  CHECK(p.sink.messages[1] == "again\r\n");
}

TEST_CASE("smtp::Client: BDAT byte script, and AUTH LOGIN when PLAIN is not offered") {
  SPLIT_SUBCASES();
  ClientOptions co;
  co.tls_active = true;  // implicit TLS: credentials may go
  co.auth = sasl::Credentials{"", "relay", "pw"};
  Client c(co);
  feed(c, "220 mx\r\n");
  CHECK(take_output(c) == "EHLO localhost\r\n");
  feed(c, "250-mx\r\n250-AUTH LOGIN CRAM-MD5\r\n250 CHUNKING\r\n");
  CHECK(take_output(c) == "AUTH LOGIN\r\n");
  feed(c, "334 VXNlcm5hbWU6\r\n");
  CHECK(take_output(c) == sasl::base64_encode("relay") + "\r\n");
  feed(c, "334 UGFzc3dvcmQ6\r\n");
  CHECK(take_output(c) == sasl::base64_encode("pw") + "\r\n");
  feed(c, "235 2.7.0 ok\r\n");
  REQUIRE(std::holds_alternative<ev::Ready>(*c.next_client_event()));
  REQUIRE(c.send_mail(envelope("<a@x.test>", {"<b@y.test>"}), ".x\r\n").ok());
  CHECK(take_output(c) == "MAIL FROM:<a@x.test>\r\n");
  feed(c, "250 ok\r\n");
  CHECK(take_output(c) == "RCPT TO:<b@y.test>\r\n");
  feed(c, "250 ok\r\n");
  CHECK(take_output(c) == "BDAT 4 LAST\r\n.x\r\n");
  feed(c, "250 2.0.0 queued\r\n");
  c.next_client_event();  // RcptResult
  auto r = std::get<ev::MailResult>(*c.next_client_event());
  CHECK(r.reply.code == 250);
  SUBCASE("a wrong password") {
    Client d(co);
    feed(d, "220 mx\r\n250-mx\r\n250 AUTH LOGIN\r\n334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n535 5.7.8 no\r\n");
    auto f = std::get<ev::Failed>(*d.next_client_event());
    CHECK(f.kind == FailKind::Response);
    CHECK(f.reply->code == 535);
  }
  SUBCASE("no mechanism we know") {
    Client d(co);
    feed(d, "220 mx\r\n250-mx\r\n250 AUTH CRAM-MD5\r\n");
    auto f = std::get<ev::Failed>(*d.next_client_event());
    CHECK(f.kind == FailKind::Implementation);
    CHECK(take_output(d).find("AUTH") == std::string::npos);
  }
}

TEST_CASE("dot_stuff: the one dot-stuffing codec (RFC 5321 4.5.2)") {
  CHECK(proto::dot_stuffed("") == ".\r\n");
  CHECK(proto::dot_stuffed("a\r\n") == "a\r\n.\r\n");
  CHECK(proto::dot_stuffed(".a\r\n.\r\nb") == "..a\r\n..\r\nb\r\n.\r\n");
}

TEST_CASE("smtp::Client against smtp::Server: REQUIRETLS only inside TLS, to a server that offers it (RFC 8689)") {
  SPLIT_SUBCASES();
  ServerOptions so;
  so.starttls_available = true;
  ClientOptions co;
  co.tls = TlsPolicy::Required;
  LoopbackPair p(so, co);
  p.pump();
  REQUIRE(p.of<ev::Ready>().size() == 1);
  CHECK(p.client.extensions().requiretls);  // offered in the EHLO after STARTTLS
  Envelope e = envelope("<a@remote.test>", {"<b@mx.test>"});
  e.params.requiretls = true;
  REQUIRE(p.client.send_mail(e, "Subject: secret\r\n\r\nbody\r\n").ok());
  p.pump();
  REQUIRE(p.of<ev::MailResult>().size() == 1);
  CHECK(p.of<ev::MailResult>()[0].reply.code == 250);
  REQUIRE(p.sink.params.size() == 1);
  CHECK(p.sink.params[0].requiretls);

  // Without TLS, and to a server that does not offer it: refused before anything is sent.
  ServerOptions plain;
  ClientOptions opportunistic;
  LoopbackPair q(plain, opportunistic);
  q.pump();
  REQUIRE(q.of<ev::Ready>().size() == 1);
  CHECK_FALSE(q.client.extensions().requiretls);
  Status st = q.client.send_mail(e, "x\r\n");
  CHECK(st.code() == Status::Code::Unsupported);
  CHECK(st.message() == "REQUIRETLS support required: the connection does not use TLS");
  ServerOptions old = so;
  old.requiretls = false;
  LoopbackPair r(old, co);
  r.pump();
  REQUIRE(r.client.tls());
  st = r.client.send_mail(e, "x\r\n");
  CHECK(st.message() == "REQUIRETLS support required: the server does not offer REQUIRETLS");
  CHECK(mail::refused_before_sending(st.message(), "mx.test").record ==
        "5.7.30 REQUIRETLS support required: the server does not offer REQUIRETLS (mx.test)");
  REQUIRE(r.client.send_mail(envelope("<a@remote.test>", {"<b@mx.test>"}), "x\r\n").ok());  // still usable
  r.pump();
  CHECK(r.sink.messages.size() == 1);
}
