// A stored message on the wire: CRLF line ends and dot-stuffing. See cmail/proto/message.h.
#include <cmail/proto/message.h>

#include <algorithm>
#include <cstring>

namespace cmail::proto {

namespace {

bool is_line_end(char c) { return c == '\r' || c == '\n'; }

// The first CR or LF in [from, to), or `to`.
std::size_t find_line_end(const char* p, std::size_t from, std::size_t to) {
  const void* cr = std::memchr(p + from, '\r', to - from);
  std::size_t end = cr ? static_cast<std::size_t>(static_cast<const char*>(cr) - p) : to;
  const void* lf = std::memchr(p + from, '\n', end - from);
  return lf ? static_cast<std::size_t>(static_cast<const char*>(lf) - p) : end;
}

// Appends `line` with each bare CR or LF in it made a CRLF.
void append_normalized(std::string& out, std::string_view line) {
  // The common case, no bare CR or LF: two memchr scans. (string_view::find_first_of looks
  // each octet up in the set, a call per octet: a third of cmail-smtpd's instructions.)
  if (line.empty() || find_line_end(line.data(), 0, line.size()) == line.size()) {
    out.append(line);
    return;
  }
  for (char c : line) {
    if (is_line_end(c)) out += "\r\n";
    else out += c;
  }
}

// The first CRLF in `s` at or after `from`, or npos. By memchr for the LF: the generic
// string_view::find of a two-octet needle compares octet by octet.
std::size_t find_crlf(std::string_view s, std::size_t from) {
  while (from < s.size()) {
    const void* lf = std::memchr(s.data() + from, '\n', s.size() - from);
    if (!lf) break;
    std::size_t at = static_cast<std::size_t>(static_cast<const char*>(lf) - s.data());
    if (at > 0 && s[at - 1] == '\r') return at - 1;
    from = at + 1;
  }
  return std::string_view::npos;
}

// The end of the run of plain lines in `s` from `from` (a line start), taking at most about
// `budget` octets: lines that do not start with ".", hold no CR or LF but their final CRLF,
// and are at most `max_line` octets with it. `from` if the first line is not one.
std::size_t plain_lines(std::string_view s, std::size_t from, std::size_t max_line, std::size_t budget) {
  const char* const base = s.data();
  std::size_t at = from;
  while (at < s.size() && base[at] != '.' && at - from < budget) {
    const void* found = std::memchr(base + at, '\n', s.size() - at);
    if (!found) break;
    const std::size_t lf = static_cast<std::size_t>(static_cast<const char*>(found) - base);
    if (lf == at || base[lf - 1] != '\r' || lf + 1 - at > max_line) break;
    if (std::memchr(base + at, '\r', lf - 1 - at)) break;  // a bare CR
    at = lf + 1;
  }
  return at;
}

}  // namespace

std::uint64_t wire_size(std::string_view m) {
  WireSize w;
  w.add(m);
  return w.total();
}

void WireSize::add(std::string_view m) {
  if (m.empty()) return;
  const char* const p = m.data();
  const char* const end = p + m.size();
  if (last_ == '\r' && *p == '\n') ++pairs_;  // a CRLF split between two pieces
  for (const char* q = p; (q = static_cast<const char*>(std::memchr(q, '\r', static_cast<std::size_t>(end - q)))); ++q) ++cr_;
  for (const char* q = p; (q = static_cast<const char*>(std::memchr(q, '\n', static_cast<std::size_t>(end - q)))); ++q) {
    ++lf_;
    if (q > p && q[-1] == '\r') ++pairs_;
  }
  size_ += m.size();
  last_ = m.back();
}

std::uint64_t WireSize::total() const {
  // Each CRLF stays, each bare CR or bare LF gains one octet; RFC 1939 3 / RFC 5322 2.1:
  // the last line ends with CRLF too.
  std::uint64_t size = size_ + (cr_ - pairs_) + (lf_ - pairs_);
  if (size_ > 0 && !is_line_end(last_)) size += 2;
  return size;
}

void DotEncoder::add(std::string_view piece, std::string& out) {
  const char* p = piece.data();
  const std::size_t n = piece.size();
  if (n == 0) return;
  std::size_t pos = 0;
  if (after_cr_ && p[0] == '\n') pos = 1;  // the LF of a CRLF split between two pieces
  after_cr_ = false;
  out.reserve(out.size() + n + n / 32 + 8);
  while (pos < n) {
    // RFC 5321 4.5.2, RFC 1939 3: a line that starts with "." gets another one.
    if (line_start_ && p[pos] == '.') out += '.';
    std::size_t end = find_line_end(p, pos, n);
    out.append(p + pos, end - pos);
    if (end == n) {
      line_start_ = false;
      return;
    }
    // CRLF stays one line end; a bare CR or bare LF becomes one (no smuggled line ends).
    out += "\r\n";
    line_start_ = true;
    if (p[end] == '\r' && end + 1 == n) after_cr_ = true;
    pos = p[end] == '\r' && end + 1 < n && p[end + 1] == '\n' ? end + 2 : end + 1;
  }
}

void DotEncoder::finish(std::string& out) {
  if (!line_start_) out += "\r\n";
  out += ".\r\n";
}

bool DotStuffer::encode(std::string& out, std::size_t budget) {
  if (done_) return false;
  std::string_view piece = in_.substr(pos_, std::min(budget, in_.size() - pos_));
  encoder_.add(piece, out);
  pos_ += piece.size();
  if (pos_ < in_.size()) return true;
  encoder_.finish(out);
  done_ = true;
  return false;
}

DotDecoder::Progress DotDecoder::decode(LineReader& in, std::string& out, std::size_t max_out) {
  std::string_view buf = in.pending();
  std::size_t off = 0;  // consumed from buf; given back to `in` once, at the end
  Progress result = Progress::NeedMore;
  for (;;) {
    if (out.size() >= max_out) {
      result = Progress::Full;
      break;
    }
    if (at_line_start_) {
      // A run of plain lines (no leading dot, CRLF only, within the length limit) is copied
      // as it is, in one piece; any other line takes the way below.
      std::size_t run = plain_lines(buf, off, max_line_, max_out - out.size());
      if (run > off) {
        out.append(buf.data() + off, run - off);
        off = run;
        continue;
      }
    }
    std::size_t crlf = find_crlf(buf, off);
    if (crlf == std::string_view::npos) {
      // No complete line. An over-long one goes on in pieces; a final CR may start the CRLF.
      std::size_t keep = buf.size() > off && buf.back() == '\r' ? 1 : 0;
      if (buf.size() - off - keep >= max_line_) {
        long_line_ = true;
        std::string_view part = buf.substr(off, buf.size() - off - keep);
        if (at_line_start_ && part.front() == '.') part.remove_prefix(1);
        append_normalized(out, part);
        off = buf.size() - keep;
        at_line_start_ = false;
      }
      break;
    }
    std::string_view line = buf.substr(off, crlf - off);
    off = crlf + 2;
    if (at_line_start_ && line == ".") {  // RFC 5321 4.1.1.4: the end of the mail data
      result = Progress::End;
      break;
    }
    // RFC 5321 4.5.2: the client doubled a leading "."; remove one.
    if (at_line_start_ && !line.empty() && line.front() == '.') line.remove_prefix(1);
    if (at_line_start_ && line.size() + 2 > max_line_) long_line_ = true;
    append_normalized(out, line);
    out += "\r\n";
    at_line_start_ = true;
  }
  in.consume(off);
  return result;
}

std::string dot_stuffed(std::string_view message) {
  std::string out;
  DotStuffer d(message);
  while (d.encode(out, message.size() + 1)) {
  }
  return out;
}

}  // namespace cmail::proto
