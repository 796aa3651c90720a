// REQUIRETLS policy code: see cmail/mail/requiretls.h.
#include <cmail/mail/requiretls.h>

#include <cmail/proto/ascii.h>

namespace cmail::mail::requiretls {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

}  // namespace

void HeaderScan::field_done() {
  const auto colon = field_.find(':');
  if (colon != std::string::npos && proto::ascii_lower(trim(std::string_view(field_).substr(0, colon))) == "tls-required") {
    // RFC 8689 5: TLS-Required: No (the only value, case-insensitive).
    if (proto::ascii_lower(trim(std::string_view(field_).substr(colon + 1))) == "no") optional_ = true;
  }
  field_.clear();
}

void HeaderScan::feed(std::string_view bytes) {
  while (!bytes.empty() && !done_) {
    const auto lf = bytes.find('\n');
    const std::string_view part = bytes.substr(0, lf == std::string_view::npos ? bytes.size() : lf + 1);
    bytes.remove_prefix(part.size());
    if (!long_line_) {
      if (line_.size() + part.size() > max_line_) {
        long_line_ = true;
        line_.clear();
      } else {
        line_.append(part);
      }
    }
    if (lf == std::string_view::npos) return;
    if (long_line_) {  // skipped, and so is the field it belongs to
      long_line_ = false;
      field_.clear();
      continue;
    }
    const std::string_view l = line_;
    if (l == "\n" || l == "\r\n") {  // RFC 5322 2.1: the empty line ends the header
      field_done();
      done_ = true;
    } else if (l.front() == ' ' || l.front() == '\t') {
      if (!field_.empty()) field_.append(l);  // RFC 5322 2.2.3: folded
    } else {
      field_done();
      field_ = std::string(l);
    }
    line_.clear();
  }
}

std::optional<Failure> check_path(const Path& p, std::string_view host) {
  // RFC 8689 4.2.1 steps 2 and 4: a secured host name and a verified TLS session.
  if (!p.tls) return Failure{failure_local({5, 7, 10}, "REQUIRETLS: no TLS session with " + std::string(host)), true};
  if (!p.verified)
    return Failure{failure_local({5, 7, 10}, "REQUIRETLS: the certificate of " + std::string(host) + " was not verified"), true};
  if (!p.mx_secured)
    return Failure{failure_local({5, 7, 10}, "REQUIRETLS: the MX host " + std::string(host) +
                                                 " is not secured by an MTA-STS policy in enforce mode"),
                   true};
  return std::nullopt;
}

}  // namespace cmail::mail::requiretls
