// Outbound delivery policy: see cmail/mail/delivery.h.
#include <cmail/mail/delivery.h>

#include <cmail/mail/fields.h>
#include <cmail/proto/ascii.h>

#include <algorithm>
#include <charconv>

namespace cmail::mail {

namespace {

using proto::ascii_lower;

bool iequals(std::string_view a, std::string_view b) { return ascii_lower(a) == ascii_lower(b); }

std::optional<std::uint16_t> decimal_port(std::string_view s) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v == 0 || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// "d.ddd.ddd" at the start of s (RFC 3463 2); sets `used` to its length.
std::optional<smtp::EnhancedCode> leading_enhanced(std::string_view s, std::size_t& used) {
  int parts[3] = {0, 0, 0};
  std::size_t i = 0;
  for (int k = 0; k < 3; ++k) {
    std::size_t start = i;
    while (i < s.size() && is_digit(s[i]) && i - start < 3) parts[k] = parts[k] * 10 + (s[i++] - '0');
    if (i == start) return std::nullopt;
    if (k < 2) {
      if (i >= s.size() || s[i] != '.') return std::nullopt;
      ++i;
    }
  }
  if (parts[0] < 2 || parts[0] > 5 || (i < s.size() && s[i] != ' ')) return std::nullopt;
  used = i;
  return smtp::EnhancedCode{parts[0], parts[1], parts[2]};
}

bool has_8bit(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

}  // namespace

std::optional<TlsVerify> parse_tls_verify(std::string_view text) {
  std::string t = ascii_lower(text);
  if (t == "never" || t == "none") return TlsVerify::Never;
  if (t == "credentials") return TlsVerify::Credentials;
  if (t == "handoff") return TlsVerify::Handoff;
  if (t == "always") return TlsVerify::Always;
  return std::nullopt;
}

Result<std::vector<PortChoice>> parse_portprio(std::string_view text) {
  std::vector<PortChoice> out;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    std::size_t end = i;
    while (end < text.size() && text[end] != ' ' && text[end] != '\t') ++end;
    if (end == i) break;
    std::string_view entry = text.substr(i, end - i);
    i = end;
    std::string_view port = entry.substr(0, entry.find('@'));
    PortChoice c;
    auto p = decimal_port(port);
    if (!p) return Status::invalid_argument("portprio entry '" + std::string(entry) + "': not a port number");
    c.port = *p;
    if (port.size() < entry.size()) {
      std::string suffix = ascii_lower(entry.substr(port.size() + 1));
      if (suffix == "tls") c.tls = TlsMode::Implicit;
      else if (suffix == "starttls") c.tls = TlsMode::StartTls;
      else if (suffix == "plain") c.tls = TlsMode::None;
      else
        return Status::invalid_argument("portprio entry '" + std::string(entry) +
                                        "': the suffix must be @tls, @starttls or @plain");
    }
    out.push_back(c);
  }
  if (out.empty()) return Status::invalid_argument("portprio needs at least one port");
  return out;
}

std::string redact_remote(std::string_view spec) {
  std::size_t at = spec.rfind('@');
  if (at == std::string_view::npos) return std::string(spec);
  std::string_view cred = spec.substr(0, at);
  std::size_t colon = cred.find(':');
  return std::string(cred.substr(0, colon)) + (colon == std::string_view::npos ? "" : ":***") +
         std::string(spec.substr(at));
}

Result<RemoteSpec> parse_remote(std::string_view raw) {
  // Messages name the spec without its password: they end up in logs, faillog and bounces.
  const std::string shown = redact_remote(raw);
  const std::string_view spec = raw;
  RemoteSpec r;
  std::string_view hostpart = spec;
  // The host part never holds an '@', so credentials end at the last one.
  if (std::size_t at = spec.rfind('@'); at != std::string_view::npos) {
    std::string_view cred = spec.substr(0, at);
    hostpart = spec.substr(at + 1);
    std::size_t colon = cred.find(':');
    sasl::Credentials c;
    c.authcid = std::string(cred.substr(0, colon));
    if (colon != std::string_view::npos) c.password = std::string(cred.substr(colon + 1));
    if (c.authcid.empty()) return Status::invalid_argument("remote '" + shown + "': empty user name");
    r.credentials = std::move(c);
  }
  std::string_view rest;
  if (!hostpart.empty() && hostpart[0] == '[') {  // an address literal, e.g. an IPv6 address
    std::size_t close = hostpart.find(']');
    if (close == std::string_view::npos) return Status::invalid_argument("remote '" + shown + "': unclosed '['");
    std::string_view lit = hostpart.substr(1, close - 1);
    if (lit.size() > 5 && iequals(lit.substr(0, 5), "ipv6:")) lit.remove_prefix(5);  // RFC 5321 4.1.3
    r.host = std::string(lit);
    rest = hostpart.substr(close + 1);
  } else {
    std::size_t colon = hostpart.find(':');
    r.host = std::string(hostpart.substr(0, colon));
    if (colon != std::string_view::npos) rest = hostpart.substr(colon);
  }
  if (r.host.empty()) return Status::invalid_argument("remote '" + shown + "': no host");
  if (!rest.empty()) {
    if (rest[0] != ':') return Status::invalid_argument("remote '" + shown + "': junk after the host");
    rest.remove_prefix(1);
    std::string_view port = rest.substr(0, rest.find('/'));
    auto p = decimal_port(port);
    if (!p) return Status::invalid_argument("remote '" + shown + "': not a port number");
    PortChoice c{*p, TlsMode::Opportunistic};
    if (port.size() < rest.size()) {
      std::string mode = ascii_lower(rest.substr(port.size() + 1));
      if (mode == "tls") c.tls = TlsMode::Implicit;
      else if (mode == "starttls") c.tls = TlsMode::StartTls;
      else if (mode == "plain") c.tls = TlsMode::None;
      else return Status::invalid_argument("remote '" + shown + "': the mode must be /tls, /starttls or /plain");
    }
    r.port = c;
  }
  return r;
}

std::int64_t next_attempt(const RetryPolicy& p, std::int64_t failures, std::int64_t now) {
  const std::int64_t cap = std::max(p.interval, p.max_interval);
  std::int64_t wait = std::max<std::int64_t>(p.interval, 1);
  for (std::int64_t i = 1; i < failures && wait < cap; ++i) wait *= 2;  // doubling back-off
  return now + std::min(wait, cap);
}

bool given_up(const RetryPolicy& p, std::int64_t failures, std::int64_t submission, std::int64_t now) {
  return failures >= p.retries || (p.max_age > 0 && now - submission >= p.max_age);
}

std::string failure_from_reply(const smtp::Reply& reply, std::string_view host) {
  std::string s = reply.summary();
  if (!host.empty()) s += " (from " + std::string(host) + ")";
  return s;
}

std::string failure_local(smtp::EnhancedCode status, std::string_view reason) {
  return status.to_string() + " " + std::string(reason);
}

ParsedFailure parse_failure(std::string_view m, bool fatal) {
  ParsedFailure f;
  f.status = fatal ? smtp::EnhancedCode{5, 0, 0} : smtp::EnhancedCode{4, 0, 0};
  f.text = std::string(m);
  std::size_t used = 0;
  if (m.size() >= 3 && is_digit(m[0]) && is_digit(m[1]) && is_digit(m[2]) && (m.size() == 3 || m[3] == ' ')) {
    // A remote reply line, perhaps naming its server at the end.
    std::string_view line = m;
    if (m.ends_with(")")) {
      if (std::size_t from = m.rfind(" (from "); from != std::string_view::npos) {
        f.remote = std::string(m.substr(from + 7, m.size() - from - 8));
        line = m.substr(0, from);
      }
    }
    f.diagnostic = std::string(line);
    int klass = m[0] - '0';
    f.status = {klass >= 2 && klass <= 5 ? klass : (fatal ? 5 : 4), 0, 0};
    std::string_view after = line.size() > 4 ? line.substr(4) : std::string_view();
    if (auto e = leading_enhanced(after, used)) {
      f.status = *e;
      after.remove_prefix(std::min(after.size(), used + 1));
    }
    f.text = std::string(after);
  } else if (auto e = leading_enhanced(m, used)) {
    f.status = *e;
    f.text = std::string(m.substr(std::min(m.size(), used + 1)));
  }
  return f;
}

bool wants_failure_report(const std::optional<std::string>& notify) {
  if (!notify) return true;
  return ascii_lower(*notify).find("failure") != std::string::npos;  // RFC 3461 4.1
}

bool wants_success_report(const std::optional<std::string>& notify) {
  return notify && ascii_lower(*notify).find("success") != std::string::npos;  // RFC 3461 4.1
}

std::string recipient_domain(std::string_view address) {
  std::size_t at = address.rfind('@');
  return at == std::string_view::npos ? std::string() : ascii_lower(address.substr(at + 1));
}

std::string compose_bounce(const Bounce& b, std::string_view original, std::size_t max_return) {
  const std::string boundary = "=_dsn_" + b.message_id.substr(0, 40);  // RFC 2046 5.1.1: at most 70
  const std::string from = b.from.empty() ? "MAILER-DAEMON@" + b.reporting_mta : b.from;
  bool utf8_addresses = has_8bit(b.to);
  for (const auto& r : b.recipients) utf8_addresses = utf8_addresses || has_8bit(r.address);

  std::size_t header_end = original.find("\r\n\r\n");
  std::string_view headers = header_end == std::string_view::npos ? original : original.substr(0, header_end + 2);
  const bool success = !b.recipients.empty() && b.recipients.front().action != "failed";
  const bool full = b.return_full && !success && original.size() <= max_return;
  std::string_view returned = full ? original : headers;

  std::string m;
  m.reserve(2048 + returned.size());
  m += "From: Mail Delivery System <" + from + ">\r\n";
  m += "To: <" + b.to + ">\r\n";
  m += success ? "Subject: Successful Mail Delivery Report\r\n"
               : "Subject: Mail delivery failed, returning message to sender\r\n";
  m += "Date: " + rfc5322_date(b.now) + "\r\n";
  m += "Message-ID: <" + b.message_id + "@" + b.reporting_mta + ">\r\n";
  m += "Auto-Submitted: auto-replied\r\n";  // RFC 3834 5: no automatic replies to this
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"" + boundary + "\"\r\n";
  m += "\r\nThis is a MIME-encapsulated message (RFC 3464 delivery status notification).\r\n\r\n";

  // 1. For people (RFC 6522 3).
  m += "--" + boundary + "\r\n";
  m += "Content-Type: text/plain; charset=utf-8\r\n";
  m += "Content-Transfer-Encoding: 8bit\r\n\r\n";
  m += "This message was created automatically by the mail system at " + b.reporting_mta + ".\r\n\r\n";
  const char* plural = b.recipients.size() == 1 ? "" : "s";
  if (success && b.recipients.front().action == "delivered")
    m += "A message you sent (received at " + rfc5322_date(b.arrival) + ") was delivered to the mailbox of the following recipient" +
         plural + ".\r\n\r\n";
  else if (success)
    m += "A message you sent (queued at " + rfc5322_date(b.arrival) + ") was handed on for the following recipient" +
         plural + " to a server that does not report delivery itself; this is the last report you get.\r\n\r\n";
  else
    m += "A message you sent (queued at " + rfc5322_date(b.arrival) + ") could not be delivered to the following recipient" +
         plural + ". It is returned below" + std::string(full ? "" : " (headers only)") + ".\r\n\r\n";
  for (const auto& r : b.recipients) {
    m += "  <" + r.address + ">: " + (r.last.diagnostic ? *r.last.diagnostic : r.last.text) + "\r\n";
    if (r.last.remote) m += "    (reply from " + *r.last.remote + ")\r\n";
    if (r.expired)
      m += "    Temporary failures persisted; gave up after " + std::to_string(r.attempts) + " attempt" +
           (r.attempts == 1 ? "" : "s") + ".\r\n";
  }
  m += "\r\n";

  // 2. For programs (RFC 3464 2.2, 2.3; RFC 6533 for UTF-8 addresses).
  const char* addr_type = utf8_addresses ? "utf-8" : "rfc822";
  m += "--" + boundary + "\r\n";
  m += std::string("Content-Type: message/") + (utf8_addresses ? "global-delivery-status" : "delivery-status") +
       "\r\n\r\n";
  m += "Reporting-MTA: dns; " + b.reporting_mta + "\r\n";
  m += "X-Cmail-Queue-ID: " + b.queue_id + "\r\n";
  if (b.envid) m += "Original-Envelope-Id: " + *b.envid + "\r\n";
  m += "Arrival-Date: " + rfc5322_date(b.arrival) + "\r\n";
  for (const auto& r : b.recipients) {
    m += "\r\n";
    if (r.orcpt) m += "Original-Recipient: " + *r.orcpt + "\r\n";
    m += std::string("Final-Recipient: ") + addr_type + "; " + r.address + "\r\n";
    m += "Action: " + r.action + "\r\n";
    m += "Status: " + r.last.status.to_string() + "\r\n";
    if (r.last.remote) m += "Remote-MTA: dns; " + *r.last.remote + "\r\n";
    if (r.last.diagnostic) m += "Diagnostic-Code: smtp; " + *r.last.diagnostic + "\r\n";
    if (r.last_attempt) m += "Last-Attempt-Date: " + rfc5322_date(r.last_attempt) + "\r\n";
  }
  m += "\r\n";

  // 3. The original: headers (RFC 6522 3: text/rfc822-headers) or the whole message.
  const bool eight = has_8bit(returned);
  m += "--" + boundary + "\r\n";
  if (full) m += std::string("Content-Type: message/") + (eight ? "global" : "rfc822") + "\r\n";
  else m += std::string("Content-Type: ") + (eight ? "message/global-headers" : "text/rfc822-headers") + "\r\n";
  if (eight) m += "Content-Transfer-Encoding: 8bit\r\n";
  m += "\r\n";
  m += returned;
  if (!returned.ends_with("\r\n")) m += "\r\n";
  m += "\r\n--" + boundary + "--\r\n";
  return m;
}

}  // namespace cmail::mail
