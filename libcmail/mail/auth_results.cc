// Forged Authentication-Results taken out of incoming mail. See cmail/mail/auth_results.h.
#include <cmail/mail/auth_results.h>

#include <cmail/proto/ascii.h>

namespace cmail::mail {

namespace {

using proto::is_wsp;


// Drops a CFWS prefix: white space, line ends and (nested) comments (RFC 5322 3.2.2).
std::string_view skip_cfws(std::string_view s) {
  for (;;) {
    while (!s.empty() && (is_wsp(s.front()) || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
    if (s.empty() || s.front() != '(') return s;
    int depth = 0;
    std::size_t i = 0;
    for (; i < s.size(); ++i) {
      if (s[i] == '\\') {
        ++i;
        continue;
      }
      if (s[i] == '(') ++depth;
      if (s[i] == ')' && --depth == 0) break;
    }
    s.remove_prefix(std::min(i + 1, s.size()));
  }
}

constexpr std::string_view kName = "AUTHENTICATION-RESULTS";

}  // namespace

std::string authserv_id(std::string_view value) {
  value = skip_cfws(value);
  std::size_t end = 0;
  while (end < value.size() && value[end] != ';' && !is_wsp(value[end]) && value[end] != '(' && value[end] != '\r' &&
         value[end] != '\n')
    ++end;
  return proto::ascii_lower(value.substr(0, end));
}

void ForgedResultsFilter::settle_field(std::string& out) {
  if (field_.empty()) return;
  const std::size_t colon = field_.find(':');
  bool forged = false;
  if (!overflow_ && colon != std::string::npos) {
    std::string_view name(field_.data(), colon);
    while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
    forged = proto::equals_upper(name, kName) &&
             authserv_id(std::string_view(field_).substr(colon + 1)) == proto::ascii_lower(id_);
  }
  if (forged) ++dropped_;
  else out += field_;
  field_.clear();
  overflow_ = false;
}

void ForgedResultsFilter::append(char c, std::string& out) {
  if (overflow_) {
    out += c;
    return;
  }
  field_ += c;
  if (field_.size() > kMaxField) {  // too long to hold: passed on unchanged
    out += field_;
    field_.clear();
    overflow_ = true;
  }
}

void ForgedResultsFilter::feed(std::string_view in, std::string& out) {
  std::size_t i = 0;
  while (i < in.size() && !in_body_) {
    const char c = in[i];
    if (cr_at_start_) {  // a line began with CR: the empty line, if LF follows
      cr_at_start_ = false;
      if (c == '\n') {
        out += "\r\n";
        ++i;
        in_body_ = true;
        break;
      }
      append('\r', out);
    }
    if (line_start_) {
      line_start_ = false;
      if (!is_wsp(c)) settle_field(out);  // a new field (or the empty line): the last one is whole
      if (c == '\r') {
        cr_at_start_ = true;
        ++i;
        continue;
      }
    }
    append(c, out);
    if (c == '\n') line_start_ = true;
    ++i;
  }
  if (in_body_ && i < in.size()) out.append(in.substr(i));
}

void ForgedResultsFilter::finish(std::string& out) {
  if (in_body_) return;
  if (cr_at_start_) {
    cr_at_start_ = false;
    append('\r', out);
  }
  settle_field(out);
}

}  // namespace cmail::mail
