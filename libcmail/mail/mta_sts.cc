// MTA-STS policy code: see cmail/mail/mta_sts.h.
#include <cmail/mail/mta_sts.h>

#include <cmail/proto/ascii.h>

#include <algorithm>

namespace cmail::mail::mta_sts {

namespace {

bool alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool wsp(char c) { return c == ' ' || c == '\t'; }

std::string_view trim_wsp(std::string_view s) {
  while (!s.empty() && wsp(s.front())) s.remove_prefix(1);
  while (!s.empty() && wsp(s.back())) s.remove_suffix(1);
  return s;
}

// RFC 8461 3.1/3.2: ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".").
bool ext_name(std::string_view s) {
  if (s.empty() || s.size() > 32 || !alnum(s.front())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return alnum(c) || c == '_' || c == '-' || c == '.'; });
}

// RFC 5321 4.1.2 Domain: dot-separated labels of letters, digits and inner hyphens.
bool domain_name(std::string_view d) {
  if (d.empty() || d.size() > 253) return false;
  while (true) {
    const auto dot = d.find('.');
    const std::string_view label = d.substr(0, dot);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    if (!std::all_of(label.begin(), label.end(), [](char c) { return alnum(c) || c == '-'; })) return false;
    if (dot == std::string_view::npos) return true;
    d.remove_prefix(dot + 1);
  }
}

std::string_view without_dot(std::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  return s;
}

}  // namespace

const char* to_string(Mode m) {
  switch (m) {
    case Mode::Enforce: return "enforce";
    case Mode::Testing: return "testing";
    case Mode::None: return "none";
  }
  return "none";
}

std::string txt_name(std::string_view domain) { return "_mta-sts." + std::string(without_dot(domain)); }
std::string policy_host(std::string_view domain) { return "mta-sts." + std::string(without_dot(domain)); }

std::optional<std::string> parse_txt_record(std::string_view r) {
  // RFC 8461 3.1: sts-version 1*(sts-sep sts-field) [sts-sep], sts-sep = *WSP ";" *WSP.
  if (r.substr(0, 7) != "v=STSv1") return std::nullopt;
  r.remove_prefix(7);
  std::optional<std::string> id;
  bool any_field = false;
  while (!r.empty()) {
    r = r.substr(std::min(r.size(), r.find_first_not_of(" \t")));
    if (r.empty() || r.front() != ';') return std::nullopt;
    r.remove_prefix(1);
    r = r.substr(std::min(r.size(), r.find_first_not_of(" \t")));
    if (r.empty()) break;  // the optional final separator
    const auto end = std::min(r.size(), r.find_first_of(" \t;"));
    const std::string_view field = r.substr(0, end);
    r.remove_prefix(end);
    const auto eq = field.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    const std::string_view name = field.substr(0, eq), value = field.substr(eq + 1);
    if (name == "id") {
      // sts-id = %s"id=" 1*32(ALPHA / DIGIT)
      if (value.empty() || value.size() > 32 || !std::all_of(value.begin(), value.end(), alnum)) return std::nullopt;
      if (!id) id = std::string(value);
    } else {
      // sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)
      if (!ext_name(name) || value.empty()) return std::nullopt;
      for (char c : value)
        if (c < 0x21 || c > 0x7e || c == '=' || c == ';') return std::nullopt;
    }
    any_field = true;
  }
  if (!any_field || !id) return std::nullopt;  // the id is required
  return id;
}

std::optional<std::string> select_txt(const std::vector<std::string>& records) {
  // RFC 8461 3.1: keep the records beginning with "v=STSv1;"; exactly one must remain.
  const std::string* only = nullptr;
  for (const auto& r : records) {
    if (r.substr(0, 8) != "v=STSv1;") continue;
    if (only) return std::nullopt;
    only = &r;
  }
  if (!only) return std::nullopt;
  return parse_txt_record(*only);
}

Result<Policy> parse_policy(std::string_view text) {
  Policy p;
  std::optional<std::string> version;
  std::optional<Mode> mode;
  std::optional<std::int64_t> max_age;
  std::size_t n = 0;
  while (!text.empty()) {
    ++n;
    const auto lf = text.find('\n');
    std::string_view line = text.substr(0, lf);  // RFC 8461 3.2: sts-policy-term = LF / CRLF
    text = lf == std::string_view::npos ? std::string_view() : text.substr(lf + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (trim_wsp(line).empty()) continue;
    const auto colon = line.find(':');
    const std::string where = "line " + std::to_string(n);
    if (colon == std::string_view::npos) return Status::invalid_argument(where + ": no ':'");
    const std::string_view key = line.substr(0, colon);
    const std::string_view value = trim_wsp(line.substr(colon + 1));
    if (!ext_name(key)) return Status::invalid_argument(where + ": invalid key");
    for (char c : value)
      if (static_cast<unsigned char>(c) < 0x20 && c != '\t') return Status::invalid_argument(where + ": control character");
    // RFC 8461 3.2: keys are case-sensitive; the first of a repeated key counts, mx excepted.
    if (key == "version") {
      if (!version) version = std::string(value);
    } else if (key == "mode") {
      if (mode) continue;
      if (value == "enforce") mode = Mode::Enforce;
      else if (value == "testing") mode = Mode::Testing;
      else if (value == "none") mode = Mode::None;
      else return Status::invalid_argument(where + ": unknown mode '" + std::string(value) + "'");
    } else if (key == "max_age") {
      if (max_age) continue;
      // sts-policy-max-age-value = 1*10(DIGIT)
      if (value.empty() || value.size() > 10 || !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return Status::invalid_argument(where + ": invalid max_age");
      std::int64_t v = 0;
      for (char c : value) v = v * 10 + (c - '0');
      max_age = std::min(v, kMaxAge);  // RFC 8461 3.2: a maximum of 31557600
    } else if (key == "mx") {
      // sts-policy-mx-value = ["*."] Domain
      std::string_view d = without_dot(value);
      if (!domain_name(d.substr(0, 2) == "*." ? d.substr(2) : d))
        return Status::invalid_argument(where + ": invalid mx pattern '" + std::string(value) + "'");
      p.mx.push_back(proto::ascii_lower(d));
    }  // other keys: RFC 8461 3.2, ignored
  }
  if (!version) return Status::invalid_argument("no version");
  if (*version != "STSv1") return Status::invalid_argument("unknown version '" + *version + "'");
  if (!mode) return Status::invalid_argument("no mode");
  if (!max_age) return Status::invalid_argument("no max_age");
  if (*mode != Mode::None && p.mx.empty()) return Status::invalid_argument("no mx");
  p.mode = *mode;
  p.max_age = *max_age;
  return p;
}

Result<Policy> check_response(const http::Response& r) {
  if (!r.ok) return Status::io_error(r.error);
  // RFC 8461 3.3: HTTP 3xx redirects MUST NOT be followed; only a 200 carries a policy.
  if (r.status.code != 200) return Status::io_error("HTTP status " + std::to_string(r.status.code));
  const http::Field* ct = http::find_field(r.fields, "Content-Type");
  if (!ct || http::media_type(ct->value) != "text/plain")  // RFC 8461 3.3
    return Status::invalid_argument("Content-Type is not text/plain");
  if (r.body.size() > kMaxPolicySize) return Status::invalid_argument("the policy is larger than 64 KiB");
  auto p = parse_policy(r.body);
  if (!p) return Status::invalid_argument("invalid policy: " + p.error().message());
  return p;
}

bool mx_matches(std::string_view pattern, std::string_view host) {
  const std::string p = proto::ascii_lower(without_dot(pattern)), h = proto::ascii_lower(without_dot(host));
  if (p.empty() || h.empty()) return false;
  if (p.substr(0, 2) != "*.") return p == h;
  // RFC 8461 4.1: the wildcard stands for exactly one label, the leftmost.
  const std::string_view base = std::string_view(p).substr(1);  // ".example.com"
  if (h.size() <= base.size() || !h.ends_with(base)) return false;
  const std::string_view label = std::string_view(h).substr(0, h.size() - base.size());
  return label.find('.') == std::string_view::npos;
}

bool host_allowed(const Policy& policy, std::string_view host) {
  return std::any_of(policy.mx.begin(), policy.mx.end(), [&](const std::string& p) { return mx_matches(p, host); });
}

Step next_step(const std::optional<Cached>& cached, const TxtResult& txt, std::int64_t now) {
  const bool usable = cached && cached->valid(now);
  const std::optional<std::string> id = txt.status == DnsStatus::Ok ? select_txt(txt.records) : std::nullopt;
  if (id) {
    // RFC 8461 3.1, 5.1: a changed id means a new policy; the same id, the cached one.
    if (usable && cached->id == *id) return Step::UseCached;
    return Step::Fetch;
  }
  // No (valid) record, or no answer: a cached policy stays in force until it expires
  // (RFC 8461 5.1, 10.3: a policy is withdrawn by publishing mode none, not by removing the TXT).
  return usable ? Step::UseCached : Step::NoPolicy;
}

Applied apply(const Policy& policy, std::string_view domain, HostPlan plan) {
  Applied a;
  if (policy.mode == Mode::None) {  // RFC 8461 5: as if there were no policy
    a.plan = std::move(plan);
    return a;
  }
  std::vector<std::string> kept;
  for (const auto& h : plan.hosts) {
    if (host_allowed(policy, h)) {
      kept.push_back(h);
    } else if (policy.mode == Mode::Testing) {
      a.notes.push_back("MTA-STS testing: MX host " + h + " does not match the policy of " + std::string(domain));
    }
  }
  if (policy.mode == Mode::Testing) {  // RFC 8461 5: report only
    a.plan = std::move(plan);
    return a;
  }
  a.verify = true;  // RFC 8461 4.2, 5: enforce
  if (kept.empty()) {
    // RFC 8461 5: temporary, so that the policy is looked up again before the mail is returned.
    a.plan = Failure{failure_local({4, 7, 5}, "MTA-STS: no MX host of " + std::string(domain) + " matches the policy"), false};
    return a;
  }
  plan.hosts = std::move(kept);
  a.plan = std::move(plan);
  return a;
}

std::optional<std::string> enforced_failure(std::string_view host, std::string_view reason) {
  if (reason.find("STARTTLS") != std::string_view::npos)
    return "MTA-STS: " + std::string(host) + " does not offer STARTTLS (" + std::string(reason) + ")";
  if (reason.substr(0, 4) == "TLS:")
    return "MTA-STS: certificate not valid for " + std::string(host) + " (" + std::string(reason) + ")";
  return std::nullopt;
}

}  // namespace cmail::mail::mta_sts
