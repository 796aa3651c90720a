// http: the RFC 9112 message syntax (start lines, field lines, heads, response framing) and the
// one-GET client engine, fed whole, byte by byte and in random splits.
#include "harness.h"

#include <cmail/http/client.h>
#include <cmail/http/message.h>

#include <doctest/doctest.h>

using namespace cmail;
using namespace cmail::http;

namespace {

// Feeds a parser the way SPLIT_SUBCASES says.
struct ParserFeed {
  ResponseParser& p;
  void receive(std::string_view b) { p.feed(b); }
};

ResponseParser parse(std::string_view bytes, bool eof = false, HttpLimits limits = {}) {
  ResponseParser p(limits);
  ParserFeed f{p};
  test::feed(f, bytes);
  if (eof) p.eof();
  return p;
}

}  // namespace

TEST_CASE("http: status lines (RFC 9112 4)") {
  auto s = parse_status_line("HTTP/1.1 200 OK");
  REQUIRE(s);
  CHECK(s->code == 200);
  CHECK(s->reason == "OK");
  CHECK(s->minor == 1);
  CHECK(parse_status_line("HTTP/1.0 404 Not Found")->reason == "Not Found");
  CHECK(parse_status_line("HTTP/1.1 204")->reason.empty());
  CHECK(parse_status_line("HTTP/1.1 200 ")->reason.empty());
  CHECK_FALSE(parse_status_line("HTTP/1.1 99 Low"));
  CHECK_FALSE(parse_status_line("HTTP/1.1 600 High"));
  CHECK_FALSE(parse_status_line("http/1.1 200 OK"));  // HTTP-name is case-sensitive
  CHECK_FALSE(parse_status_line("HTTP/1.1  200 OK"));
  CHECK_FALSE(parse_status_line("HTTP/11 200 OK"));
  CHECK_FALSE(parse_status_line("HTTP/1.1 2x0 OK"));
  CHECK_FALSE(parse_status_line("HTTP/1.1 200OK"));
  CHECK_FALSE(parse_status_line(std::string_view("HTTP/1.1 200 O\0K", 16)));
}

TEST_CASE("http: request lines (RFC 9112 3)") {
  auto r = parse_request_line("GET /.well-known/mta-sts.txt HTTP/1.1");
  REQUIRE(r);
  CHECK(r->method == "GET");
  CHECK(r->target == "/.well-known/mta-sts.txt");
  CHECK_FALSE(parse_request_line("GET  / HTTP/1.1"));
  CHECK_FALSE(parse_request_line("GET / HTTP/1.1 extra"));
  CHECK_FALSE(parse_request_line("G(T / HTTP/1.1"));
  CHECK_FALSE(parse_request_line("GET /"));
}

TEST_CASE("http: field lines (RFC 9112 5)") {
  auto f = parse_field_line("Content-Type:   text/plain; charset=utf-8  ");
  REQUIRE(f);
  CHECK(f->name == "Content-Type");
  CHECK(f->value == "text/plain; charset=utf-8");
  CHECK(parse_field_line("X-Empty:")->value.empty());
  CHECK_FALSE(parse_field_line("Content-Type : text/plain"));  // RFC 9112 5.1
  CHECK_FALSE(parse_field_line("Bad Name: x"));
  CHECK_FALSE(parse_field_line(": x"));
  CHECK_FALSE(parse_field_line("no colon"));
  CHECK_FALSE(parse_field_line(std::string_view("X: a\0b", 6)));
  CHECK(media_type(" Text/Plain ; charset=utf-8") == "text/plain");
  CHECK(iequals("content-LENGTH", "Content-Length"));
}

TEST_CASE("http: a response with Content-Length, in any split") {
  SPLIT_SUBCASES();
  auto p = parse("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello");
  REQUIRE(p.done());
  CHECK(p.status().code == 200);
  CHECK(p.body() == "hello");
  REQUIRE(find_field(p.fields(), "content-type"));
  CHECK(find_field(p.fields(), "content-type")->value == "text/plain");
}

TEST_CASE("http: bare LF line ends, obs-fold, empty lines before the status line") {
  SPLIT_SUBCASES();
  auto p = parse("\r\nHTTP/1.1 200 OK\nX-Long: one\n  two\nContent-Length: 2\n\nok");
  REQUIRE(p.done());
  CHECK(find_field(p.fields(), "X-Long")->value == "one two");
  CHECK(p.body() == "ok");
}

TEST_CASE("http: chunked bodies (RFC 9112 7.1), in any split") {
  SPLIT_SUBCASES();
  auto p = parse(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n"
      "5;name=value\r\nhello\r\n1\r\n \r\n5 \r\nworld\r\n0\r\nTrailer: x\r\n\r\n");
  REQUIRE_MESSAGE(p.done(), p.error());
  CHECK(p.body() == "hello world");
}

TEST_CASE("http: a body read until the connection ends") {
  SPLIT_SUBCASES();
  auto p = parse("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nversion: STSv1\n", true);
  REQUIRE(p.done());
  CHECK(p.body() == "version: STSv1\n");
}

TEST_CASE("http: interim responses are skipped; no body for 204 and 304") {
  SPLIT_SUBCASES();
  auto p = parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
  REQUIRE(p.done());
  CHECK(p.status().code == 204);
  CHECK(p.body().empty());
  CHECK(p.fields().empty());
}

TEST_CASE("http: broken framing and limits are errors") {
  SPLIT_SUBCASES();
  CHECK(parse("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello").state() == ResponseParser::State::Error);
  CHECK(parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello").done());
  CHECK(parse("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").state() == ResponseParser::State::Error);
  CHECK(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").state() == ResponseParser::State::Error);
  CHECK(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").state() == ResponseParser::State::Error);
  CHECK(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n").state() == ResponseParser::State::Error);
  CHECK(parse("HTTP/1.1 101 Switching Protocols\r\n\r\n").state() == ResponseParser::State::Error);
  CHECK(parse("HTTP/2 200 OK\r\n\r\n").state() == ResponseParser::State::Error);
  CHECK(parse("HTTP/1.1 200 OK\r\n Folded: first\r\n\r\n").state() == ResponseParser::State::Error);
  CHECK(parse("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n").state() == ResponseParser::State::Error);
  HttpLimits small;
  small.max_body = 4;
  CHECK(parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, small).error().find("larger") !=
        std::string::npos);
  CHECK(parse("HTTP/1.1 200 OK\r\n\r\nhello", true, small).state() == ResponseParser::State::Error);
  CHECK(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false, small).state() ==
        ResponseParser::State::Error);
  small = {};
  small.max_line = 40;
  CHECK(parse("HTTP/1.1 200 OK\r\nX-Long: " + std::string(50, 'a') + "\r\n\r\n", false, small).state() ==
        ResponseParser::State::Error);
  small = {};
  small.max_fields = 2;
  CHECK(parse("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", false, small).state() == ResponseParser::State::Error);
  // Cut short.
  CHECK(parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", true).error() == "the connection closed inside the body");
  CHECK(parse("", true).error() == "the connection closed without a response");
  CHECK(parse("HTTP/1.1 200", true).error() == "the connection closed inside the response head");
}

TEST_CASE("http: the client engine sends one GET and reads the response") {
  SPLIT_SUBCASES();
  ClientOptions o;
  o.host = "mta-sts.example.com";
  o.target = "/.well-known/mta-sts.txt";
  Client c(o);
  CHECK(std::string(c.pending_output()) ==
        "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.com\r\nConnection: close\r\n"
        "User-Agent: cmail\r\n\r\n");
  c.consume_output(c.pending_output().size());
  CHECK(c.wants_read());
  CHECK_FALSE(c.next_event());
  test::feed(c, "HTTP/1.1 301 Moved\r\nLocation: https://elsewhere/\r\nContent-Length: 0\r\n\r\n");
  REQUIRE(c.finished());
  CHECK(c.response().ok);
  CHECK(c.response().status.code == 301);  // reported, not followed
  auto e = c.next_event();
  REQUIRE(e);
  CHECK(std::holds_alternative<proto::Close>(*e));
  CHECK_FALSE(c.wants_read());
}

TEST_CASE("http: the client engine reports a cut response and a timeout") {
  ClientOptions o;
  o.host = "h";
  Client c(o);
  c.receive("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  CHECK_FALSE(c.finished());
  c.receive_eof();
  REQUIRE(c.finished());
  CHECK_FALSE(c.response().ok);
  CHECK(c.response().error == "the connection closed inside the body");
  Client t(o);
  t.timed_out();
  CHECK(t.finished());
  CHECK(t.response().error == "timed out waiting for the response");
  REQUIRE(t.next_event());
}
