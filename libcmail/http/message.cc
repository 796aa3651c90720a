// The HTTP/1.1 message syntax: see cmail/http/message.h.
#include <cmail/http/message.h>

#include <algorithm>

namespace cmail::http {

namespace {

bool tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool digit(char c) { return c >= '0' && c <= '9'; }

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view trim_ows(std::string_view s) {  // RFC 9110 5.6.3: OWS = *( SP / HTAB )
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// RFC 9110 5.5: CR, LF and NUL are never part of a field value.
bool value_ok(std::string_view v) { return v.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos; }

// "HTTP/1.1" (RFC 9112 2.3: HTTP-name is case-sensitive, one digit each side of the dot).
bool parse_version(std::string_view v, int& major, int& minor) {
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || !digit(v[5]) || v[6] != '.' || !digit(v[7])) return false;
  major = v[5] - '0';
  minor = v[7] - '0';
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

bool is_token(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), tchar); }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

std::optional<StatusLine> parse_status_line(std::string_view line) {
  StatusLine s;
  if (line.size() < 12 || !parse_version(line.substr(0, 8), s.major, s.minor) || line[8] != ' ') return std::nullopt;
  if (!digit(line[9]) || !digit(line[10]) || !digit(line[11])) return std::nullopt;
  s.code = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  if (s.code < 100 || s.code > 599) return std::nullopt;  // RFC 9110 15: outside 100..599 is invalid
  std::string_view rest = line.substr(12);
  if (!rest.empty()) {
    if (rest.front() != ' ') return std::nullopt;  // RFC 9112 4: SP before the reason
    rest.remove_prefix(1);
    for (char c : rest)  // reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )
      if (static_cast<unsigned char>(c) < 0x20 && c != '\t') return std::nullopt;
    if (rest.find('\x7f') != std::string_view::npos) return std::nullopt;
  }
  s.reason = std::string(rest);
  return s;
}

std::optional<RequestLine> parse_request_line(std::string_view line) {
  RequestLine r;
  const auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return std::nullopt;
  const auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return std::nullopt;
  const std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (!is_token(method) || target.empty()) return std::nullopt;
  for (char c : target)  // RFC 9112 3.2: no whitespace or controls in the target
    if (static_cast<unsigned char>(c) <= 0x20 || c == '\x7f') return std::nullopt;
  if (!parse_version(line.substr(sp2 + 1), r.major, r.minor)) return std::nullopt;
  r.method = std::string(method);
  r.target = std::string(target);
  return r;
}

std::optional<Field> parse_field_line(std::string_view line) {
  const auto colon = line.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const std::string_view name = line.substr(0, colon);
  if (!is_token(name)) return std::nullopt;  // RFC 9112 5.1: also no whitespace before the colon
  const std::string_view value = trim_ows(line.substr(colon + 1));
  if (!value_ok(value)) return std::nullopt;
  return Field{std::string(name), std::string(value)};
}

const Field* find_field(const std::vector<Field>& fields, std::string_view name) {
  for (const auto& f : fields)
    if (iequals(f.name, name)) return &f;
  return nullptr;
}

std::string media_type(std::string_view content_type) {
  const auto semi = content_type.find(';');
  std::string out(trim_ows(content_type.substr(0, semi)));
  for (char& c : out) c = lower(c);
  return out;
}

// --- HeadParser ---

void HeadParser::reset() {
  state_ = State::Reading;
  partial_.clear();
  start_.clear();
  fields_.clear();
  head_bytes_ = 0;
  have_start_ = false;
  error_.clear();
}

void HeadParser::fail(std::string why) {
  state_ = State::Error;
  error_ = std::move(why);
  partial_.clear();
}

std::size_t HeadParser::feed(std::string_view bytes) {
  std::size_t i = 0;
  while (i < bytes.size() && state_ == State::Reading) {
    const auto lf = bytes.find('\n', i);
    const std::size_t end = lf == std::string_view::npos ? bytes.size() : lf + 1;
    const std::size_t n = end - i;
    if (partial_.size() + n > limits_.max_line) {
      fail("a header line is longer than " + std::to_string(limits_.max_line) + " octets");
      return end;
    }
    head_bytes_ += n;
    if (head_bytes_ > limits_.max_head) {
      fail("the header section is larger than " + std::to_string(limits_.max_head) + " octets");
      return end;
    }
    partial_.append(bytes.substr(i, n));
    i = end;
    if (lf == std::string_view::npos) break;
    std::string_view l(partial_);
    l.remove_suffix(1);                          // the LF
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);  // RFC 9112 2.2: CRLF, or a bare LF
    const bool more = line(l);
    if (state_ == State::Reading) partial_.clear();
    if (!more) break;
  }
  return i;
}

bool HeadParser::line(std::string_view l) {
  if (l.find('\r') != std::string_view::npos) {  // RFC 9112 2.2: a bare CR is invalid
    fail("a bare CR in the header section");
    return false;
  }
  if (!have_start_) {
    if (l.empty()) return true;  // RFC 9112 2.2: empty lines before the start line are ignored
    start_ = std::string(l);
    have_start_ = true;
    return true;
  }
  if (l.empty()) {
    state_ = State::Done;
    return false;
  }
  if (l.front() == ' ' || l.front() == '\t') {
    // RFC 9112 5.2: obs-fold, replaced by SP; never before the first field (RFC 9112 2.2).
    if (fields_.empty()) {
      fail("whitespace before the first header field");
      return false;
    }
    const std::string_view more = trim_ows(l);
    if (!value_ok(more)) {
      fail("an invalid header field value");
      return false;
    }
    std::string& v = fields_.back().value;
    if (!more.empty()) v += (v.empty() ? "" : " ") + std::string(more);
    return true;
  }
  auto f = parse_field_line(l);
  if (!f) {
    fail("an invalid header field line");
    return false;
  }
  if (fields_.size() >= limits_.max_fields) {
    fail("more than " + std::to_string(limits_.max_fields) + " header fields");
    return false;
  }
  fields_.push_back(std::move(*f));
  return true;
}

// --- ResponseParser ---

void ResponseParser::fail(std::string why) {
  state_ = State::Error;
  error_ = std::move(why);
  body_.clear();
}

bool ResponseParser::append(std::string_view b) {
  if (body_.size() + b.size() > limits_.max_body) {
    fail("the body is larger than " + std::to_string(limits_.max_body) + " octets");
    return false;
  }
  body_.append(b);
  return true;
}

void ResponseParser::feed(std::string_view in) {
  while (!in.empty() && (state_ == State::Head || state_ == State::Body)) {
    if (state_ == State::Head) {
      in.remove_prefix(head_.feed(in));
      if (head_.state() == HeadParser::State::Error) return fail(head_.error());
      if (head_.state() != HeadParser::State::Done) return;
      auto s = parse_status_line(head_.start_line());
      if (!s) return fail("an invalid status line");
      if (s->major != 1) return fail("not an HTTP/1 response");
      status_ = std::move(*s);
      if (status_.code < 200) {
        // RFC 9110 15.2: interim responses come before the final one; 101 was not asked for.
        if (status_.code == 101) return fail("an unexpected 101 Switching Protocols");
        if (++interim_ > limits_.max_interim) return fail("too many interim responses");
        head_.reset();
        continue;
      }
      fields_ = head_.fields();
      start_body();
      continue;
    }
    body_bytes(in);
  }
}

void ResponseParser::start_body() {
  state_ = State::Body;
  // RFC 9112 6.3 (1): no body after HEAD, nor in 1xx, 204 and 304 responses.
  if (head_request_ || status_.code == 204 || status_.code == 304) {
    state_ = State::Done;
    return;
  }
  std::string codings;
  for (const auto& f : fields_)
    if (iequals(f.name, "Transfer-Encoding")) codings += (codings.empty() ? "" : ",") + f.value;
  if (!codings.empty()) {
    // RFC 9112 6.3 (3): Transfer-Encoding overrides Content-Length; chunked must come last
    // (else the body runs to the end of the connection). Codings we cannot decode are errors.
    std::vector<std::string> list;
    std::string_view rest(codings);
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      std::string_view item = trim_ows(rest.substr(0, comma));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (!item.empty()) list.push_back(media_type(item));  // lower-cased, parameters dropped
    }
    if (list.empty()) return fail("an empty Transfer-Encoding");
    for (std::size_t i = 0; i + 1 < list.size(); ++i)
      if (list[i] != "chunked") return fail("an unsupported transfer coding: " + list[i]);
    if (list.back() != "chunked") return fail("an unsupported transfer coding: " + list.back());
    if (std::count(list.begin(), list.end(), "chunked") > 1) return fail("chunked applied twice");
    framing_ = Framing::Chunked;
    chunk_ = Chunk::Size;
    return;
  }
  std::optional<std::uint64_t> length;
  for (const auto& f : fields_) {
    if (!iequals(f.name, "Content-Length")) continue;
    // RFC 9112 6.3 (5): a list of one repeated value is that value; anything else is an error.
    std::string_view rest(f.value);
    while (true) {
      const auto comma = rest.find(',');
      std::string_view item = trim_ows(rest.substr(0, comma));
      if (item.empty() || item.size() > 15 || !std::all_of(item.begin(), item.end(), digit))
        return fail("an invalid Content-Length");
      std::uint64_t v = 0;
      for (char c : item) v = v * 10 + static_cast<std::uint64_t>(c - '0');
      if (length && *length != v) return fail("conflicting Content-Length values");
      length = v;
      if (comma == std::string_view::npos) break;
      rest = rest.substr(comma + 1);
    }
  }
  if (length) {
    if (*length > limits_.max_body)
      return fail("the body is larger than " + std::to_string(limits_.max_body) + " octets");
    framing_ = Framing::Length;
    remaining_ = *length;
    if (remaining_ == 0) state_ = State::Done;
    return;
  }
  framing_ = Framing::UntilClose;  // RFC 9112 6.3 (8)
}

void ResponseParser::body_bytes(std::string_view& in) {
  switch (framing_) {
    case Framing::Length: {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, in.size()));
      if (!append(in.substr(0, n))) return;
      in.remove_prefix(n);
      remaining_ -= n;
      if (remaining_ == 0) state_ = State::Done;
      return;
    }
    case Framing::UntilClose:
      if (append(in)) in = {};
      return;
    case Framing::Chunked:
      return chunked(in);
    case Framing::None:
      state_ = State::Done;
      return;
  }
}

// RFC 9112 7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF; last-chunk = 1*("0")
// [ chunk-ext ] CRLF, then the trailer section and CRLF.
void ResponseParser::chunked(std::string_view& in) {
  while (!in.empty() && state_ == State::Body) {
    switch (chunk_) {
      case Chunk::Size:
      case Chunk::DataEnd: {
        const auto lf = in.find('\n');
        const std::size_t n = lf == std::string_view::npos ? in.size() : lf + 1;
        if (line_.size() + n > (chunk_ == Chunk::Size ? limits_.max_line : 2))
          return fail(chunk_ == Chunk::Size ? "a chunk-size line is too long" : "no CRLF after chunk data");
        line_.append(in.substr(0, n));
        in.remove_prefix(n);
        if (lf == std::string_view::npos) return;
        std::string_view l(line_);
        l.remove_suffix(1);
        if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
        if (chunk_ == Chunk::DataEnd) {
          if (!l.empty()) return fail("no CRLF after chunk data");
          line_.clear();
          chunk_ = Chunk::Size;
          break;
        }
        std::uint64_t size = 0;
        std::size_t digits = 0;
        while (digits < l.size() && hex_value(l[digits]) >= 0) {
          if (digits >= 15) return fail("a chunk size is too large");
          size = size * 16 + static_cast<std::uint64_t>(hex_value(l[digits]));
          ++digits;
        }
        if (digits == 0) return fail("an invalid chunk size");
        const std::string_view ext = trim_ows(l.substr(digits));  // BWS before chunk-ext
        if (!ext.empty() && ext.front() != ';') return fail("an invalid chunk size");
        if (!value_ok(ext)) return fail("an invalid chunk extension");
        line_.clear();
        if (size == 0) {
          chunk_ = Chunk::Trailers;
          head_.reset();
          head_.expect_no_start_line();
          break;
        }
        if (size > limits_.max_body - body_.size())
          return fail("the body is larger than " + std::to_string(limits_.max_body) + " octets");
        remaining_ = size;
        chunk_ = Chunk::Data;
        break;
      }
      case Chunk::Data: {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, in.size()));
        if (!append(in.substr(0, n))) return;
        in.remove_prefix(n);
        remaining_ -= n;
        if (remaining_ == 0) chunk_ = Chunk::DataEnd;
        break;
      }
      case Chunk::Trailers:
        // RFC 9112 7.1.2: the trailer fields are read and dropped.
        in.remove_prefix(head_.feed(in));
        if (head_.state() == HeadParser::State::Error) return fail(head_.error());
        if (head_.state() == HeadParser::State::Done) state_ = State::Done;
        break;
    }
  }
}

void ResponseParser::eof() {
  switch (state_) {
    case State::Head:
      return fail(interim_ == 0 && !head_.started() ? "the connection closed without a response"
                                                              : "the connection closed inside the response head");
    case State::Body:
      if (framing_ == Framing::UntilClose) {
        state_ = State::Done;
        return;
      }
      return fail("the connection closed inside the body");
    case State::Done:
    case State::Error:
      return;
  }
}

std::string format_request(std::string_view method, std::string_view target, const std::vector<Field>& fields) {
  std::string out;
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  for (const auto& f : fields) out.append(f.name).append(": ").append(f.value).append("\r\n");
  out.append("\r\n");
  return out;
}

}  // namespace cmail::http
