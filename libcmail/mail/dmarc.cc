// DMARC records, the Public Suffix List, alignment. See cmail/mail/dmarc.h.
#include <cmail/mail/dmarc.h>

#include <cmail/mail/dkim.h>
#include <cmail/proto/ascii.h>

#include <fstream>
#include <sstream>

namespace cmail::mail::dmarc {

namespace {

std::optional<Policy> policy_of(std::string_view v) {
  const std::string p = proto::ascii_lower(v);
  if (p == "none") return Policy::None;
  if (p == "quarantine") return Policy::Quarantine;
  if (p == "reject") return Policy::Reject;
  return std::nullopt;
}

std::vector<std::string> split(std::string_view v, char sep) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at <= v.size()) {
    const std::size_t end = std::min(v.find(sep, at), v.size());
    std::string_view item = v.substr(at, end - at);
    while (!item.empty() && proto::is_wsp(item.front())) item.remove_prefix(1);
    while (!item.empty() && proto::is_wsp(item.back())) item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    at = end + 1;
  }
  return out;
}

std::string normalized(std::string_view domain) {
  std::string d = proto::ascii_lower(domain);
  if (!d.empty() && d.back() == '.') d.pop_back();
  return d;
}

std::vector<std::string_view> labels_of(std::string_view d) {
  std::vector<std::string_view> out;
  std::size_t at = 0;
  while (at <= d.size()) {
    const std::size_t dot = std::min(d.find('.', at), d.size());
    out.push_back(d.substr(at, dot - at));
    at = dot + 1;
  }
  return out;
}

// labels[i..] joined with dots.
std::string join_from(const std::vector<std::string_view>& labels, std::size_t i) {
  std::string out;
  for (std::size_t j = i; j < labels.size(); ++j) {
    if (j > i) out += '.';
    out += labels[j];
  }
  return out;
}

// RFC 3492 6.1.
std::uint32_t adapt(std::uint32_t delta, std::uint32_t points, bool first) {
  constexpr std::uint32_t base = 36, tmin = 1, tmax = 26, skew = 38, damp = 700;
  delta = first ? delta / damp : delta / 2;
  delta += delta / points;
  std::uint32_t k = 0;
  while (delta > ((base - tmin) * tmax) / 2) {
    delta /= base - tmin;
    k += base;
  }
  return k + (base - tmin + 1) * delta / (delta + skew);
}

std::optional<std::vector<std::uint32_t>> code_points(std::string_view s) {
  std::vector<std::uint32_t> out;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return std::nullopt;
    std::uint32_t cp = n == 1 ? c : c & (0x7f >> n);
    for (std::size_t k = 1; k < n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return std::nullopt;
      cp = cp << 6 | (cc & 0x3f);
    }
    // RFC 3629 3: no overlong forms, no surrogates, nothing above U+10FFFF.
    static constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return std::nullopt;
    out.push_back(cp);
    i += n;
  }
  return out;
}

}  // namespace

const char* to_string(Policy p) {
  return p == Policy::Reject ? "reject" : p == Policy::Quarantine ? "quarantine" : "none";
}

bool is_dmarc_record(std::string_view txt) {
  if (txt.size() < 8 || !proto::equals_upper(txt.substr(0, 8), "V=DMARC1")) return false;
  return txt.size() == 8 || txt[8] == ';' || txt[8] == ' ' || txt[8] == '\t';
}

Result<Record> parse_record(std::string_view text) {
  auto tags = dkim::parse_tag_list(text);
  if (!tags) return tags.error();
  // RFC 7489 6.3: v=DMARC1 is the first tag.
  if (tags->empty() || tags->front().first != "v" || tags->front().second != "DMARC1")
    return Status::invalid_argument("not a DMARC record (v=DMARC1 first)");
  Record r;
  bool have_policy = false, have_rua = false;
  for (const auto& [name, value] : *tags) {
    if (name == "p") {
      if (auto p = policy_of(value)) {
        r.policy = *p;
        have_policy = true;
      }
    } else if (name == "sp") {
      r.subdomain_policy = policy_of(value);
    } else if (name == "adkim" || name == "aspf") {
      const std::string v = proto::ascii_lower(value);
      if (v == "s" || v == "r") (name == "adkim" ? r.strict_dkim : r.strict_spf) = v == "s";
    } else if (name == "pct") {
      if (!value.empty() && value.size() <= 3 && value.find_first_not_of("0123456789") == std::string::npos) {
        const int n = std::stoi(value);
        if (n <= 100) r.percent = n;
      }
    } else if (name == "rua" || name == "ruf") {
      std::vector<std::string> uris = split(value, ',');
      (name == "rua" ? r.aggregate_uris : r.failure_uris) = uris;
      if (name == "rua" && !uris.empty()) have_rua = true;
    } else if (name == "fo") {
      r.failure_options = value;
    } else if (name == "ri") {
      if (!value.empty() && value.size() <= 10 && value.find_first_not_of("0123456789") == std::string::npos) {
        const unsigned long long n = std::stoull(value);
        if (n <= UINT32_MAX) r.interval = static_cast<std::uint32_t>(n);
      }
    }
  }
  // RFC 7489 6.6.3: without a valid p=, a record with a valid rua= is p=none; others are no
  // record at all.
  if (!have_policy && !have_rua) return Status::invalid_argument("the DMARC record has no valid p=");
  return r;
}

std::optional<std::string> a_label(std::string_view label) {
  auto cps = code_points(label);
  if (!cps) return std::nullopt;
  std::string out;
  for (std::uint32_t c : *cps)
    if (c < 0x80) out += static_cast<char>(c);
  if (out.size() == cps->size()) return std::string(label);
  // RFC 3492 6.3, the encoding procedure.
  constexpr std::uint32_t base = 36, tmin = 1, tmax = 26;
  auto digit = [](std::uint32_t d) { return static_cast<char>(d < 26 ? 'a' + d : '0' + d - 26); };
  const std::uint32_t b = static_cast<std::uint32_t>(out.size());
  std::uint32_t h = b, n = 128, delta = 0, bias = 72;
  if (b > 0) out += '-';
  const auto total = static_cast<std::uint32_t>(cps->size());
  while (h < total) {
    std::uint32_t m = UINT32_MAX;
    for (std::uint32_t c : *cps)
      if (c >= n && c < m) m = c;
    if ((m - n) > (UINT32_MAX - delta) / (h + 1)) return std::nullopt;  // overflow (RFC 3492 6.4)
    delta += (m - n) * (h + 1);
    n = m;
    for (std::uint32_t c : *cps) {
      if (c < n) ++delta;
      if (c != n) continue;
      std::uint32_t q = delta;
      for (std::uint32_t k = base;; k += base) {
        const std::uint32_t t = k <= bias ? tmin : k >= bias + tmax ? tmax : k - bias;
        if (q < t) break;
        out += digit(t + (q - t) % (base - t));
        q = (q - t) / (base - t);
      }
      out += digit(q);
      bias = adapt(delta, h + 1, h == b);
      delta = 0;
      ++h;
    }
    ++delta;
    ++n;
  }
  return "xn--" + out;
}

PublicSuffixList PublicSuffixList::parse(std::string_view text) {
  PublicSuffixList psl;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t eol = std::min(text.find('\n', at), text.size());
    std::string_view line = text.substr(at, eol - at);
    at = eol + 1;
    const std::size_t end = line.find_first_of(" \t\r");
    line = line.substr(0, end);  // the rule is the line's first word
    if (line.empty() || line.starts_with("//")) continue;
    std::unordered_set<std::string>* set = &psl.normal_;
    if (line.starts_with("!")) {
      set = &psl.exception_;
      line.remove_prefix(1);
    } else if (line.starts_with("*.")) {
      set = &psl.wildcard_;
      line.remove_prefix(2);
    }
    std::string rule;
    bool ok = !line.empty();
    for (std::string_view label : labels_of(line)) {
      auto a = a_label(label);
      if (!a || a->empty()) {
        ok = false;
        break;
      }
      if (!rule.empty()) rule += '.';
      rule += proto::ascii_lower(*a);
    }
    if (ok) set->insert(std::move(rule));
  }
  return psl;
}

Result<PublicSuffixList> PublicSuffixList::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::io_error("cannot read the public suffix list " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str());
}

std::string PublicSuffixList::public_suffix(std::string_view domain) const {
  const std::string d = normalized(domain);
  const std::vector<std::string_view> labels = labels_of(d);
  // An exception rule prevails: the suffix is the rule without its leftmost label.
  // (An exception of one label would leave no suffix at all: such a rule counts for nothing.)
  for (std::size_t i = 0; i + 1 < labels.size(); ++i)
    if (exception_.count(join_from(labels, i))) return join_from(labels, i + 1);
  // Else the rule with the most labels.
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const std::string candidate = join_from(labels, i);
    if (normal_.count(candidate)) return candidate;
    if (i + 1 < labels.size() && wildcard_.count(join_from(labels, i + 1))) return candidate;
  }
  return std::string(labels.back());  // the implicit "*" rule: the last label
}

std::string PublicSuffixList::organizational_domain(std::string_view domain) const {
  const std::string d = normalized(domain);
  const std::string suffix = public_suffix(d);
  if (d.size() <= suffix.size()) return d;
  const std::string_view rest = std::string_view(d).substr(0, d.size() - suffix.size() - 1);
  const std::size_t dot = rest.rfind('.');
  return std::string(dot == std::string_view::npos ? rest : rest.substr(dot + 1)) + "." + suffix;
}

bool aligned(std::string_view a, std::string_view from, bool strict, const PublicSuffixList& psl) {
  const std::string x = normalized(a), f = normalized(from);
  if (x.empty() || f.empty()) return false;
  if (strict) return x == f;
  return psl.organizational_domain(x) == psl.organizational_domain(f);
}

Outcome evaluate(const Record& record, std::string_view record_domain, const Evidence& e,
                 const PublicSuffixList& psl, int roll) {
  Outcome o;
  // RFC 7489 4.2: pass when SPF or DKIM passes with an identifier aligned with From.
  o.spf_aligned = e.spf_pass && aligned(e.spf_domain, e.from_domain, record.strict_spf, psl);
  for (const std::string& d : e.dkim_pass) o.dkim_aligned = o.dkim_aligned || aligned(d, e.from_domain, record.strict_dkim, psl);
  o.pass = o.spf_aligned || o.dkim_aligned;
  // RFC 7489 6.3: sp= for subdomains of the organizational domain whose record was used.
  const bool subdomain = normalized(record_domain) != normalized(e.from_domain);
  o.policy = subdomain && record.subdomain_policy ? *record.subdomain_policy : record.policy;
  o.applies = roll < record.percent;  // RFC 7489 6.6.4
  return o;
}


namespace {

// The DMARC records among a name's TXT records (RFC 7489 6.6.3 step 4).
std::vector<std::string> dmarc_records(const TxtResult& r) {
  std::vector<std::string> out;
  for (const std::string& t : r.records)
    if (is_dmarc_record(t)) out.push_back(t);
  return out;
}

}  // namespace

void discover(Resolver& resolver, const PublicSuffixList& psl, std::string from_domain,
              std::function<void(Discovery)> done) {
  const std::string domain = normalized(from_domain);
  const std::string org = psl.organizational_domain(domain);
  Resolver* res = &resolver;
  resolver.txt("_dmarc." + domain, [res, domain, org, done = std::move(done)](TxtResult r) mutable {
    // One name's answer: Found, None (go on to the organizational domain) or a final answer.
    auto settle = [](const TxtResult& answer, const std::string& at, bool& final) {
      Discovery d;
      final = true;
      if (answer.status == DnsStatus::TempFail) {
        d.kind = Discovery::Kind::TempError;
        d.error = answer.error;
        return d;
      }
      const auto records = dmarc_records(answer);
      if (records.size() > 1) return d;  // several: no policy (step 4)
      if (records.size() == 1) {
        auto rec = parse_record(records[0]);
        if (rec) {
          d.kind = Discovery::Kind::Found;
          d.record = *rec;
          d.domain = at;
        }
        return d;
      }
      final = false;  // none here
      return d;
    };
    bool final = false;
    Discovery first = settle(r, domain, final);
    if (final || org == domain || org.empty()) return done(std::move(first));
    // RFC 7489 6.6.3 step 3: the organizational domain's record.
    res->txt("_dmarc." + org, [org, done = std::move(done), settle](TxtResult r2) {
      bool f = false;
      done(settle(r2, org, f));
    });
  });
}

}  // namespace cmail::mail::dmarc
