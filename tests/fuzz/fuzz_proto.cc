// libFuzzer target: the engine kernel's codecs (cmail/proto/), checked against what they promise
// rather than only run: the line reader against a plain line splitter, the dot-stuffing codec
// as a round trip (encoded in any budget, decoded in any split, the result is the message's
// wire form, of wire_size() octets), base64 both ways, and the SASL framing. The first byte
// chooses the line limit and line-end mode, the second the piece size; the rest is the text.
#include <cmail/proto/line_reader.h>
#include <cmail/proto/message.h>
#include <cmail/proto/sasl.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using cmail::proto::LineReader;

struct Piece {
  LineReader::Result result;
  std::string line;
  bool operator==(const Piece& o) const { return result == o.result && line == o.line; }
};

// What a LineReader must report for `in` given whole: each line, or TooLong once per line over
// the limit (CRLF counted), and TooLong for an unfinished last line already over it.
std::vector<Piece> split_lines(std::string_view in, cmail::proto::LineEnd mode, std::size_t limit) {
  std::vector<Piece> out;
  std::size_t pos = 0;
  const bool crlf = mode == cmail::proto::LineEnd::CrLf;
  for (;;) {
    std::size_t k = crlf ? in.find("\r\n", pos) : in.find('\n', pos);
    if (k == std::string_view::npos) {
      if (in.size() - pos > limit) out.push_back({LineReader::Result::TooLong, ""});
      return out;
    }
    std::size_t end = !crlf && k > pos && in[k - 1] == '\r' ? k - 1 : k;
    std::string_view text = in.substr(pos, end - pos);
    if (text.size() + 2 > limit) out.push_back({LineReader::Result::TooLong, ""});
    else out.push_back({LineReader::Result::Line, std::string(text)});
    pos = k + (crlf ? 2 : 1);
  }
}

void check_lines(std::string_view in, cmail::proto::LineEnd mode, std::size_t limit, std::size_t step) {
  LineReader r(mode);
  std::vector<Piece> got;
  for (std::size_t at = 0; at < in.size(); at += step) {
    r.append(in.substr(at, step));
    for (;;) {
      std::string_view line;
      auto res = r.next_line(limit, line);
      if (res == LineReader::Result::NeedMore) break;
      got.push_back({res, res == LineReader::Result::Line ? std::string(line) : std::string()});
    }
    if (r.size() > limit) std::abort();  // the buffer holds at most one line within the limit
  }
  if (!(got == split_lines(in, mode, limit))) std::abort();
}

// RFC 5321 4.5.2 / RFC 1939 3 wire form: each CRLF, bare CR or bare LF is one CRLF, and the
// last line ends with one.
std::string wire_form(std::string_view m) {
  std::string out;
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\r' || m[i] == '\n') {
      if (m[i] == '\r' && i + 1 < m.size() && m[i + 1] == '\n') ++i;
      out += "\r\n";
    } else {
      out += m[i];
    }
  }
  if (!m.empty() && m.back() != '\r' && m.back() != '\n') out += "\r\n";
  return out;
}

void check_dots(std::string_view m, std::size_t step) {
  std::string stuffed;
  cmail::proto::DotStuffer s(m);
  while (s.encode(stuffed, step)) {
  }
  if (stuffed != cmail::proto::dot_stuffed(m)) std::abort();  // any budget, one encoding
  const std::string wire = wire_form(m);
  if (cmail::proto::wire_size(m) != wire.size()) std::abort();
  cmail::proto::WireSize counted;  // the same count taken in pieces (a CRLF may be split)
  for (std::size_t at = 0; at < m.size(); at += step) counted.add(m.substr(at, step));
  if (counted.total() != wire.size()) std::abort();
  // Decoded in pieces of `step`, with more input after the terminator left in place.
  const std::string input = stuffed + "NEXT";
  LineReader in(cmail::proto::LineEnd::CrLf);
  cmail::proto::DotDecoder d(1000);
  std::string out;
  bool end = false;
  for (std::size_t at = 0; at < input.size() && !end; at += step) {
    in.append(std::string_view(input).substr(at, step));
    for (;;) {
      auto p = d.decode(in, out, out.size() + 4096);  // as an engine does: room for more each call
      if (p == cmail::proto::DotDecoder::Progress::End) end = true;
      if (p != cmail::proto::DotDecoder::Progress::Full) break;
    }
  }
  if (!end || out != wire) std::abort();
  if (!std::string_view("NEXT").starts_with(in.pending())) std::abort();  // nothing after "." taken
}

void check_sasl(std::string_view in) {
  // base64 (RFC 4648 4): whatever decodes encodes back to the same text, and back again.
  if (auto d = cmail::sasl::base64_decode(in)) {
    if (cmail::sasl::base64_encode(*d) != in) std::abort();
  }
  if (cmail::sasl::base64_decode(cmail::sasl::base64_encode(in)) != std::string(in)) std::abort();
  // The framing: the first line starts the exchange, the others answer its challenges.
  cmail::sasl::ServerAuth auth("334 ");
  std::size_t pos = in.find('\n');
  auto step = auth.start(in.substr(0, pos));
  while (auto* c = std::get_if<cmail::sasl::ServerAuth::Challenge>(&step)) {
    std::string_view l = c->line;
    if (!l.starts_with("334 ") || !l.ends_with("\r\n") || !auth.active()) std::abort();
    if (!cmail::sasl::base64_decode(l.substr(4, l.size() - 6))) std::abort();
    if (pos == std::string_view::npos) return;
    std::size_t next = in.find('\n', pos + 1);
    step = auth.respond(in.substr(pos + 1, next == std::string_view::npos ? next : next - pos - 1));
    pos = next;
  }
  if (auth.active()) std::abort();  // every step but Challenge ends the exchange
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t limit = 2 + data[0] % 64;
  const auto mode = data[0] & 64 ? cmail::proto::LineEnd::CrLf : cmail::proto::LineEnd::CrLfOrLf;
  const std::size_t step = 1 + data[1] % 64;
  std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);
  check_lines(in, mode, limit, step);
  check_dots(in, step);
  check_sasl(in);
  return 0;
}
