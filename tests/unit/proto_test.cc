// The engine kernel (cmail/proto/): line reader, dot-stuffing decoder, conversation (STARTTLS
// contract, close), SASL framing, command tables. Every input is fed whole, byte by byte and
// in random splits.
#include "harness.h"

#include <cmail/proto/command.h>
#include <cmail/proto/conversation.h>
#include <cmail/proto/line_reader.h>
#include <cmail/proto/message.h>
#include <cmail/proto/sasl.h>

#include <random>
#include <set>
#include <string>
#include <vector>

using namespace cmail;
using namespace cmail::proto;
using namespace cmail::test;

namespace {

// Feeds a LineReader in the current split and collects every line ("!" for TooLong).
struct Lines {
  LineReader reader;
  std::size_t limit;
  std::vector<std::string> got;

  Lines(LineEnd end, std::size_t lim) : reader(end), limit(lim) {}
  void receive(std::string_view bytes) {
    reader.append(bytes);
    for (;;) {
      std::string_view line;
      auto r = reader.next_line(limit, line);
      if (r == LineReader::Result::NeedMore) return;
      got.push_back(r == LineReader::Result::TooLong ? "!" : std::string(line));
    }
  }
};

// Feeds dot-stuffed data and collects what the decoder yields, in chunks of `max_out`.
struct Decoded {
  LineReader reader{LineEnd::CrLf};
  DotDecoder decoder;
  std::size_t max_out;
  std::string text;
  bool ended = false;
  int fulls = 0;

  Decoded(std::size_t max_line, std::size_t out) : decoder(max_line), max_out(out) {}
  void receive(std::string_view bytes) {
    reader.append(bytes);
    while (!ended) {
      std::string chunk;
      auto p = decoder.decode(reader, chunk, max_out);
      CHECK(chunk.size() <= max_out + 2 * 1000);  // one line past the chunk at most
      text += chunk;
      if (p == DotDecoder::Progress::End) ended = true;
      else if (p == DotDecoder::Progress::Full) ++fulls;
      else return;
    }
  }
};

// A minimal engine on the kernel: "TLS" starts TLS, "QUIT" closes, other lines are echoed.
struct Echo : Conversation {
  std::vector<std::string> parsed;
  Echo() : Conversation(LineEnd::CrLfOrLf, 64) {}
  void receive(std::string_view bytes) {
    if (!accept_input(bytes)) return;
    std::string_view line;
    while (!closed() && !tls_pending() && in_.next_line(100, line) == LineReader::Result::Line) {
      parsed.emplace_back(line);
      if (line == "TLS") start_tls();
      else if (line == "QUIT") close();
      else write(std::string(line) + "\r\n");
    }
  }
  bool tls_done() { return finish_tls(); }
  bool wants_read() const { return reading(); }
};

}  // namespace

TEST_CASE("proto::LineReader: line ends, limits and over-long lines") {
  SPLIT_SUBCASES();
  struct Case {
    LineEnd end;
    std::size_t limit;
    std::string input;
    std::vector<std::string> lines;
  };
  const Case cases[] = {
      {LineEnd::CrLfOrLf, 100, "a\r\nb\nc\r\n", {"a", "b", "c"}},
      {LineEnd::CrLf, 100, "a\nb\r\nc\r\n", {"a\nb", "c"}},  // a bare LF is part of the line
      {LineEnd::CrLfOrLf, 7, "12345\r\n123456\r\nok\r\n", {"12345", "!", "ok"}},  // the limit counts CRLF
      {LineEnd::CrLfOrLf, 10, "short\r\n" + std::string(40, 'x') + "\r\nnext\r\n", {"short", "!", "next"}},
      {LineEnd::CrLf, 10, std::string(25, 'y') + "\n" + std::string(25, 'y') + "\r\nz\r\n", {"!", "z"}},
      {LineEnd::CrLfOrLf, 100, "\r\n\n", {"", ""}},
      {LineEnd::CrLfOrLf, 100, "no end yet", {}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.input);
    Lines l(c.end, c.limit);
    feed(l, c.input);
    std::string got, want;
    for (const auto& x : l.got) got += "[" + x + "]";
    for (const auto& x : c.lines) want += "[" + x + "]";
    CHECK(got == want);
  }
}

TEST_CASE("proto::LineReader: exact mode, the input bound and take_all") {
  LineReader r(LineEnd::CrLfOrLf, 16);
  r.append("BDAT 5\r\nhel");
  std::string_view line;
  REQUIRE(r.next_line(512, line) == LineReader::Result::Line);
  CHECK(line == "BDAT 5");
  CHECK(r.peek(5) == "hel");
  r.consume(3);
  r.append("loNOOP\r\n");
  CHECK(r.peek(2) == "lo");
  r.consume(2);
  REQUIRE(r.next_line(512, line) == LineReader::Result::Line);
  CHECK(line == "NOOP");
  CHECK(r.empty());
  r.append("0123456789abcdef");
  CHECK(r.full());  // the engine stops reading
  CHECK(r.take_all() == "0123456789abcdef");
  CHECK(r.empty());
  CHECK_FALSE(r.full());
}

TEST_CASE("proto::DotDecoder: unstuffing, the end line, smuggled line ends, long lines") {
  SPLIT_SUBCASES();
  struct Case {
    std::size_t max_line;
    std::string wire;
    std::string text;
    bool long_line;
  };
  const Case cases[] = {
      {1000, "a\r\n..b\r\n.\r\n", "a\r\n.b\r\n", false},
      {1000, ".\r\n", "", false},
      {1000, "..\r\n.\r\n", ".\r\n", false},
      // Only CRLF "." CRLF ends the data; bare LF and CR become real line ends (RFC 5321 4.1.1.4).
      {1000, "one\n.\nMAIL FROM:<e@x>\r\ntwo\r.\rthree\r\n.\r\n",
       "one\r\n.\r\nMAIL FROM:<e@x>\r\ntwo\r\n.\r\nthree\r\n", false},
      {10, std::string(30, 'x') + "\r\n.\r\n", std::string(30, 'x') + "\r\n", true},
      {10, "." + std::string(30, 'x') + "\r\n.\r\n", std::string(30, 'x') + "\r\n", true},
      {10, "exactly 10\r\n.\r\n", "exactly 10\r\n", true},  // 12 octets with CRLF > 10
      {10, "12345678\r\n.\r\n", "12345678\r\n", false},      // 10 octets: the limit
  };
  for (const Case& c : cases) {
    CAPTURE(c.wire);
    Decoded d(c.max_line, 1 << 20);
    feed(d, c.wire + "NEXT\r\n");
    CHECK(d.ended);
    CHECK(d.text == c.text);
    CHECK(d.decoder.long_line() == c.long_line);
    CHECK(d.reader.pending() == "NEXT\r\n");  // what follows the data stays for the parser
  }
}

TEST_CASE("proto::DotDecoder: reads back what DotStuffer wrote, in bounded chunks") {
  SPLIT_SUBCASES();
  std::mt19937 rng(20261201);
  const char alphabet[] = {'a', '.', '\r', '\n', ' ', 'z'};
  for (int round = 0; round < 40; ++round) {
    std::string m;
    const int n = std::uniform_int_distribution<int>(0, 400)(rng);
    for (int i = 0; i < n; ++i) m += alphabet[std::uniform_int_distribution<int>(0, 5)(rng)];
    CAPTURE(m);
    Decoded d(1000, 64);
    feed(d, dot_stuffed(m));
    REQUIRE(d.ended);
    // The decoded text is the wire form: what wire_size() counts and POP3 sends.
    CHECK(d.text.size() == wire_size(m));
    CHECK(dot_stuffed(d.text) == dot_stuffed(m));
    if (current_split() == Split::Whole && d.text.size() > 64 + 1000) CHECK(d.fulls > 0);
  }
}

TEST_CASE("proto::WireSize and DotEncoder: a message in random pieces counts and encodes as a whole") {
  std::mt19937 rng(20261202);
  const char alphabet[] = {'a', '.', '\r', '\n', ' ', 'z'};
  for (int round = 0; round < 200; ++round) {
    std::string m;
    const int n = std::uniform_int_distribution<int>(0, 300)(rng);
    for (int i = 0; i < n; ++i) m += alphabet[std::uniform_int_distribution<int>(0, 5)(rng)];
    CAPTURE(m);
    WireSize w;
    DotEncoder e;
    std::string out;
    for (std::size_t pos = 0; pos < m.size();) {
      std::size_t take = std::uniform_int_distribution<std::size_t>(0, 7)(rng);
      take = std::min(take, m.size() - pos);
      w.add(std::string_view(m).substr(pos, take));
      e.add(std::string_view(m).substr(pos, take), out);
      pos += take;
    }
    e.finish(out);
    CHECK(w.total() == wire_size(m));
    CHECK(out == dot_stuffed(m));
  }
  // The split that matters most: a CRLF cut between two pieces is one line end.
  WireSize w;
  w.add("a\r");
  w.add("\n.b");
  CHECK(w.total() == wire_size("a\r\n.b"));
  DotEncoder e;
  std::string out;
  e.add("a\r", out);
  e.add("\n.b", out);
  e.finish(out);
  CHECK(out == "a\r\n..b\r\n.\r\n");
}

TEST_CASE("proto::DotDecoder and wire_size: long runs of plain lines agree with the octet-by-octet rules") {
  // The decoder copies runs of plain lines in one piece and wire_size() counts line by line:
  // both against references written from the rules alone, on messages that mix long plain
  // runs with every exception (leading dots, bare CR and LF, lines at and past the limit).
  SPLIT_SUBCASES();
  std::mt19937 rng(20261202);
  auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
  for (int round = 0; round < 30; ++round) {
    std::string wire;
    const int lines = 1 + pick(80);
    for (int i = 0; i < lines; ++i) {
      const int kind = pick(20);
      std::string line(static_cast<std::size_t>(kind == 0 ? 990 + pick(20) : pick(120)), 'x');
      for (char& c : line) c = static_cast<char>('a' + pick(26));
      if (kind == 1) line = ".." + line;                   // stuffed by the client
      if (kind == 2 && !line.empty()) line[line.size() / 2] = '\r';  // a bare CR
      if (kind == 3 && !line.empty()) line[line.size() / 2] = '\n';  // a bare LF
      wire += line + "\r\n";
    }
    // The reference decoder: CRLF-separated lines up to "."; one leading dot removed; a line
    // longer than 1000 octets with its CRLF marks the message; bare CR and LF become CRLF.
    std::string text;
    bool long_line = false;
    for (std::size_t at = 0;;) {
      const std::size_t crlf = wire.find("\r\n", at);
      if (crlf == std::string::npos) break;
      std::string line = wire.substr(at, crlf - at);
      at = crlf + 2;
      if (!line.empty() && line[0] == '.') line.erase(0, 1);
      if (line.size() + 2 > 1000) long_line = true;
      for (char c : line) text += c == '\r' || c == '\n' ? std::string("\r\n") : std::string(1, c);
      text += "\r\n";
    }
    CAPTURE(round);
    Decoded d(1000, 4096);
    feed(d, wire + ".\r\nNEXT\r\n");
    REQUIRE(d.ended);
    CHECK(d.text == text);
    CHECK(d.decoder.long_line() == long_line);
    CHECK(d.reader.pending() == "NEXT\r\n");
    // wire_size: each CRLF stays, each bare CR or LF becomes a CRLF, the last line ends in one.
    auto reference = [](std::string_view m) {
      std::size_t n = 0;
      for (std::size_t k = 0; k < m.size(); ++k) {
        if (m[k] == '\r' && k + 1 < m.size() && m[k + 1] == '\n') n += 2, ++k;
        else n += m[k] == '\r' || m[k] == '\n' ? 2 : 1;
      }
      return n + (!m.empty() && m.back() != '\r' && m.back() != '\n' ? 2 : 0);
    };
    CHECK(wire_size(wire) == reference(wire));
    CHECK(wire_size(wire.substr(0, wire.size() - 2)) == reference(wire.substr(0, wire.size() - 2)));
    CHECK(wire_size("a\r\r\nb\n\rc") == 13);
  }
}

TEST_CASE("proto::Conversation: every byte after start_tls() goes to TLS, in every split") {
  SPLIT_SUBCASES();
  Echo e;
  feed(e, "hello\r\nTLS\r\nQUIT\r\nsecret\r\n");
  CHECK(e.pending_output() == "hello\r\n");
  CHECK(e.parsed == std::vector<std::string>{"hello", "TLS"});
  CHECK(e.tls_pending());
  CHECK_FALSE(e.wants_read());
  auto st = expect_event<StartTls>(e);
  CHECK(st.trailing == "QUIT\r\nsecret\r\n");  // also what arrived after the event was queued
  feed(e, "more\r\n");                         // after the event was taken: dropped
  CHECK(e.parsed.size() == 2);
  CHECK(e.tls_done());
  CHECK_FALSE(e.tls_done());  // once
  CHECK(e.wants_read());
  feed(e, "after\r\nQUIT\r\nignored\r\n");
  CHECK(e.parsed == std::vector<std::string>{"hello", "TLS", "after", "QUIT"});
  expect_event<Close>(e);
  CHECK_FALSE(e.next_event().has_value());  // Close is queued once
  CHECK(e.closed());
  feed(e, "x\r\n");
  CHECK(e.parsed.size() == 4);
}

TEST_CASE("proto::Conversation: output is taken in any amounts") {
  Echo e;
  feed(e, "abc\r\ndef\r\n");
  CHECK(e.pending_output() == "abc\r\ndef\r\n");
  e.consume_output(4);
  CHECK(e.pending_output() == "\ndef\r\n");
  e.consume_output(100);
  CHECK(e.pending_output().empty());
}

TEST_CASE("sasl::ServerAuth: the framing every protocol shares") {
  using A = sasl::ServerAuth;
  auto kind = [](const A::Step& s) -> std::string {
    if (auto* c = std::get_if<A::Challenge>(&s)) return "challenge:" + c->line;
    if (auto* d = std::get_if<A::Done>(&s))
      return "done:" + d->credentials.authzid + "/" + d->credentials.authcid + "/" + d->credentials.password;
    if (std::holds_alternative<A::Cancelled>(s)) return "cancelled";
    if (std::holds_alternative<A::UnknownMechanism>(s)) return "unknown";
    if (std::holds_alternative<A::BadSyntax>(s)) return "syntax";
    if (std::holds_alternative<A::BadBase64>(s)) return "base64";
    return "failed";
  };
  const std::string plain = sasl::base64_encode(std::string("\0alice\0pw", 9));
  struct Case {
    std::string argument;
    std::string first;
  };
  const Case cases[] = {
      {"PLAIN " + plain, "done:/alice/pw"},
      {"plain " + plain, "done:/alice/pw"},  // RFC 4422 3.1: names are case-insensitive
      {"PLAIN", "challenge:334 \r\n"},       // RFC 4422 5: an empty challenge first
      {"PLAIN =", "failed"},                 // "=" is an empty response: no PLAIN message
      {"PLAIN " + plain + " x", "syntax"},
      {"PLAIN  " + plain, "syntax"},         // one SP between them (RFC 4954 4)
      // Trailing white space is no initial response (RFC 4954 4: "=" sends an empty one),
      // as cmail and Postfix read it (docs/compatibility.md#users-sasl-trailing-white-space).
      {"PLAIN ", "challenge:334 \r\n"},
      {"PLAIN   ", "challenge:334 \r\n"},
      {"PLAIN \t", "challenge:334 \r\n"},
      {"PLAIN\t", "challenge:334 \r\n"},
      {"LOGIN ", "challenge:334 VXNlcm5hbWU6\r\n"},
      {"PLAIN = ", "failed"},
      {"PLAIN " + plain + " ", "done:/alice/pw"},
      {"PLAIN !!!!", "base64"},
      {"CRAM-MD5", "unknown"},
      {"PLAINX " + plain, "unknown"},
      {"LOGIN", "challenge:334 VXNlcm5hbWU6\r\n"},
      {"LOGIN " + sasl::base64_encode("bob"), "challenge:334 UGFzc3dvcmQ6\r\n"},  // user as IR
  };
  for (const Case& c : cases) {
    CAPTURE(c.argument);
    A auth("334 ");
    CHECK(kind(auth.start(c.argument)) == c.first);
  }
  A pop("+ ");  // RFC 5034 4: POP3 and IMAP continue with "+ "
  CHECK(kind(pop.start("PLAIN ")) == "challenge:+ \r\n");
  CHECK(kind(pop.respond(plain)) == "done:/alice/pw");
  CHECK(kind(pop.start("LOGIN")) == "challenge:+ VXNlcm5hbWU6\r\n");
  CHECK(pop.active());
  CHECK(kind(pop.respond(sasl::base64_encode("bob"))) == "challenge:+ UGFzc3dvcmQ6\r\n");
  CHECK(kind(pop.respond(sasl::base64_encode("pw"))) == "done:/bob/pw");
  CHECK_FALSE(pop.active());
  CHECK(kind(pop.start("LOGIN")).starts_with("challenge:"));
  CHECK(kind(pop.respond("*")) == "cancelled");
  CHECK(kind(pop.start("PLAIN")).starts_with("challenge:"));
  CHECK(kind(pop.respond("not base64")) == "base64");
  CHECK_FALSE(pop.active());
}

TEST_CASE("sasl::ClientExchange and choose_mechanism") {
  sasl::Credentials creds{"", "relay", "pw"};
  CHECK(sasl::choose_mechanism(std::set<std::string>{"LOGIN", "PLAIN"}) == sasl::Mechanism::Plain);
  CHECK(sasl::choose_mechanism(std::set<std::string>{"CRAM-MD5", "LOGIN"}) == sasl::Mechanism::Login);
  CHECK_FALSE(sasl::choose_mechanism(std::set<std::string>{"CRAM-MD5"}).has_value());
  sasl::ClientExchange plain(sasl::Mechanism::Plain, creds);
  CHECK(plain.initial_response() == std::optional<std::string>(std::string("\0relay\0pw", 9)));  // RFC 4616 2
  sasl::ClientExchange login(sasl::Mechanism::Login, creds);
  CHECK_FALSE(login.initial_response().has_value());
  CHECK(login.respond("Username:") == "relay");
  CHECK(login.respond("Password:") == "pw");
  CHECK(sasl::mechanism_names() == "PLAIN LOGIN");
}

TEST_CASE("proto::Command tables: case-insensitive verbs, states") {
  enum class St { A, B, C };
  struct Engine {
    void run(std::string_view) {}
  };
  using Cmd = proto::Command<Engine, St>;
  static const std::array<Cmd, 2> table = {{
      {"MAIL", {St::B}, "Send EHLO first", &Engine::run},
      {"STARTTLS", StateSet<St>::all(), "", &Engine::run},
  }};
  CHECK(find_command(table, "mail") == &table[0]);
  CHECK(find_command(table, "StartTLS") == &table[1]);
  CHECK(find_command(table, "MAILX") == nullptr);
  CHECK(find_command(table, "") == nullptr);
  CHECK(table[0].states.contains(St::B));
  CHECK_FALSE(table[0].states.contains(St::A));
  CHECK(table[1].states.contains(St::C));
  auto [verb, arg] = split_command("MAIL FROM:<a@b> SIZE=1");
  CHECK(verb == "MAIL");
  CHECK(arg == "FROM:<a@b> SIZE=1");
  CHECK(split_command("QUIT").argument.empty());
  CHECK(starts_with_upper("auth plain", "AUTH "));
  CHECK_FALSE(starts_with_upper("AUT", "AUTH "));
}
