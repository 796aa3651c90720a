// DKIM without cryptography: tag lists, signatures, key records, canonicalization. See
// cmail/mail/dkim.h.
#include <cmail/mail/dkim.h>

#include <cmail/mail/structure.h>
#include <cmail/proto/ascii.h>

#include <algorithm>

namespace cmail::mail::dkim {

namespace {

using proto::is_alpha, proto::is_digit, proto::is_wsp;

bool fws(char c) { return is_wsp(c) || c == '\r' || c == '\n'; }

Status bad(std::string_view what) { return Status::invalid_argument(std::string(what)); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && fws(s.front())) s.remove_prefix(1);
  while (!s.empty() && fws(s.back())) s.remove_suffix(1);
  return s;
}

// RFC 6376 3.5 (b=, bh=) and 3.6.1 (p=): base64 with FWS anywhere in it. nullopt when any
// other character is there or a quantum is incomplete.
std::optional<std::string> base64(std::string_view v) {
  std::string clean;
  clean.reserve(v.size());
  for (char c : v) {
    if (fws(c)) continue;
    if (!(is_alpha(c) || is_digit(c) || c == '+' || c == '/' || c == '=')) return std::nullopt;
    clean.push_back(c);
  }
  if (clean.size() % 4 != 0) return std::nullopt;
  const std::size_t pad = clean.find('=');
  if (pad != std::string::npos && (clean.size() - pad > 2 || clean.find_first_not_of('=', pad) != std::string::npos))
    return std::nullopt;
  std::string out;
  Base64Decoder d;
  d.feed(clean, out);
  d.finish(out);
  if (d.damaged()) return std::nullopt;
  return out;
}

// A colon-separated list (h=, t=, s= of a key), entries trimmed of FWS.
std::vector<std::string> colon_list(std::string_view v, bool lower) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at <= v.size()) {
    const std::size_t colon = std::min(v.find(':', at), v.size());
    std::string_view item = trim(v.substr(at, colon - at));
    out.emplace_back(lower ? proto::ascii_lower(item) : std::string(item));
    at = colon + 1;
  }
  return out;
}

std::optional<std::uint64_t> number(std::string_view v, std::size_t max_digits) {
  if (v.empty() || v.size() > max_digits) return std::nullopt;
  std::uint64_t n = 0;
  for (char c : v) {
    if (!is_digit(c)) return std::nullopt;
    const std::uint64_t d = static_cast<std::uint64_t>(c - '0');
    if (n > (UINT64_MAX - d) / 10) return std::nullopt;
    n = n * 10 + d;
  }
  return n;
}

const std::string* find(const TagList& tags, std::string_view name) {
  for (const auto& [k, v] : tags)
    if (k == name) return &v;
  return nullptr;
}

Result<Canon> canon_of(std::string_view s) {
  if (s == "simple") return Canon::Simple;
  if (s == "relaxed") return Canon::Relaxed;
  return bad("c= names an unknown canonicalization '" + std::string(s) + "'");
}

// d= or s=: labels of letters, digits, "-" and "_", separated by dots (RFC 6376 3.5,
// sub-domain; "_" as selectors use it).
bool domain_like(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '.' ? s[i - 1] == '.' : !(is_alpha(c) || is_digit(c) || c == '-' || c == '_')) return false;
  }
  return true;
}

}  // namespace

const char* to_string(Algorithm a) { return a == Algorithm::Ed25519Sha256 ? "ed25519-sha256" : "rsa-sha256"; }

Result<TagList> parse_tag_list(std::string_view text) {
  TagList out;
  std::size_t i = 0;
  const std::size_t n = text.size();
  while (true) {
    while (i < n && fws(text[i])) ++i;
    if (i == n) break;  // the end, also after a final ";" (RFC 6376 3.2)
    // tag-name = ALPHA *ALNUMPUNC
    const std::size_t name_start = i;
    if (!is_alpha(text[i])) return bad("a tag name must start with a letter");
    while (i < n && (is_alpha(text[i]) || is_digit(text[i]) || text[i] == '_')) ++i;
    std::string name(text.substr(name_start, i - name_start));
    while (i < n && fws(text[i])) ++i;
    if (i == n || text[i] != '=') return bad("tag '" + name + "' has no '='");
    ++i;
    const std::size_t value_start = i;
    while (i < n && text[i] != ';') {
      const auto c = static_cast<unsigned char>(text[i]);
      // tval = 1*VALCHAR (%x21-3A / %x3C-7E), separated by FWS.
      if (!fws(text[i]) && (c < 0x21 || c > 0x7e)) return bad("tag '" + name + "' has a character outside VALCHAR");
      ++i;
    }
    if (find(out, name)) return bad("tag '" + name + "' is given twice");  // RFC 6376 3.2
    out.emplace_back(std::move(name), std::string(trim(text.substr(value_start, i - value_start))));
    if (i < n) ++i;  // the ";"
  }
  return out;
}

Result<Signature> parse_signature(std::string_view value) {
  auto tags = parse_tag_list(value);
  if (!tags) return tags.error();
  for (const char* required : {"v", "a", "b", "bh", "d", "h", "s"})  // RFC 6376 6.1.1
    if (!find(*tags, required)) return bad(std::string("the signature has no ") + required + "= tag");
  Signature sig;
  if (*find(*tags, "v") != "1") return bad("v= is not 1");
  const std::string a = proto::ascii_lower(*find(*tags, "a"));
  if (a == "rsa-sha256") {
    sig.algorithm = Algorithm::RsaSha256;
  } else if (a == "ed25519-sha256") {  // RFC 8463 3
    sig.algorithm = Algorithm::Ed25519Sha256;
  } else if (a == "rsa-sha1") {
    return bad("rsa-sha1 signatures are not accepted (RFC 8301 3.1)");
  } else {
    return bad("a= names an unknown algorithm '" + a + "'");
  }
  auto b = base64(*find(*tags, "b"));
  if (!b || b->empty()) return bad("b= is not base64");
  sig.signature = std::move(*b);
  auto bh = base64(*find(*tags, "bh"));
  if (!bh || bh->empty()) return bad("bh= is not base64");
  sig.body_hash = std::move(*bh);
  if (const std::string* c = find(*tags, "c")) {
    const std::size_t slash = c->find('/');
    auto h = canon_of(proto::ascii_lower(c->substr(0, slash)));
    if (!h) return h.error();
    sig.header_canon = *h;
    if (slash != std::string::npos) {  // "relaxed" alone: relaxed/simple (RFC 6376 3.5)
      auto bc = canon_of(proto::ascii_lower(c->substr(slash + 1)));
      if (!bc) return bc.error();
      sig.body_canon = *bc;
    }
  }
  sig.domain = proto::ascii_lower(*find(*tags, "d"));
  if (!domain_like(sig.domain)) return bad("d= is not a domain name");
  sig.headers = colon_list(*find(*tags, "h"), true);
  for (const std::string& h : sig.headers) {
    // RFC 5322 3.6.8: field-name = 1*ftext, printable US-ASCII but ":" (no white space).
    const bool ftext = !h.empty() && std::all_of(h.begin(), h.end(), [](char c) { return c > 0x20 && c < 0x7f && c != ':'; });
    if (!ftext) return bad("h= holds a name that is not a field name");
  }
  // RFC 6376 5.4: the From field must be signed.
  if (std::find(sig.headers.begin(), sig.headers.end(), "from") == sig.headers.end())
    return bad("h= does not include From");
  sig.identity = "@" + sig.domain;
  if (const std::string* i = find(*tags, "i")) {
    // RFC 6376 3.5: the domain of i= is d= or a subdomain of it.
    const std::size_t at = i->rfind('@');
    if (at == std::string::npos) return bad("i= has no '@'");
    const std::string dom = proto::ascii_lower(i->substr(at + 1));
    if (dom != sig.domain && !(dom.size() > sig.domain.size() && dom.ends_with("." + sig.domain)))
      return bad("i= is not in the domain of d=");
    sig.identity = *i;
  }
  if (const std::string* l = find(*tags, "l")) {
    sig.body_length = number(*l, 76);  // RFC 6376 3.5: 1*76DIGIT
    if (!sig.body_length) return bad("l= is not a number");
  }
  if (const std::string* q = find(*tags, "q")) {
    const auto methods = colon_list(*q, true);
    if (std::find(methods.begin(), methods.end(), "dns/txt") == methods.end())
      return bad("q= offers no query method but dns/txt");
  }
  sig.selector = proto::ascii_lower(*find(*tags, "s"));
  if (!domain_like(sig.selector)) return bad("s= is not a selector");
  if (const std::string* t = find(*tags, "t")) {
    auto n = number(*t, 12);  // RFC 6376 3.5: 1*12DIGIT
    if (!n) return bad("t= is not a number");
    sig.timestamp = static_cast<std::int64_t>(*n);
  }
  if (const std::string* x = find(*tags, "x")) {
    auto n = number(*x, 12);
    if (!n) return bad("x= is not a number");
    sig.expiration = static_cast<std::int64_t>(*n);
    // RFC 6376 3.5: x= must be greater than t=.
    if (sig.timestamp && *sig.expiration <= *sig.timestamp) return bad("x= is not after t=");
  }
  return sig;
}

Result<KeyRecord> parse_key_record(std::string_view text) {
  auto tags = parse_tag_list(text);
  if (!tags) return tags.error();
  KeyRecord key;
  // RFC 6376 3.6.1: v=, when present, is the first tag and is "DKIM1".
  if (const std::string* v = find(*tags, "v"); v && (tags->front().first != "v" || *v != "DKIM1"))
    return bad("v= is not DKIM1 or not first");
  if (const std::string* k = find(*tags, "k")) {
    const std::string kl = proto::ascii_lower(*k);
    if (kl == "rsa") key.key_type = Algorithm::RsaSha256;
    else if (kl == "ed25519") key.key_type = Algorithm::Ed25519Sha256;  // RFC 8463 4
    else return bad("k= names an unknown key type '" + kl + "'");
  }
  const std::string* p = find(*tags, "p");
  if (!p) return bad("the key record has no p= tag");
  auto decoded = base64(*p);
  if (!decoded) return bad("p= is not base64");
  key.public_key = std::move(*decoded);  // empty: revoked (RFC 6376 3.6.1)
  if (const std::string* h = find(*tags, "h")) key.hashes = colon_list(*h, true);
  if (const std::string* t = find(*tags, "t")) {
    for (const std::string& flag : colon_list(*t, true)) {
      if (flag == "y") key.testing = true;
      if (flag == "s") key.strict = true;
    }
  }
  if (const std::string* s = find(*tags, "s")) {
    const auto services = colon_list(*s, true);
    key.email_service = std::find(services.begin(), services.end(), "*") != services.end() ||
                        std::find(services.begin(), services.end(), "email") != services.end();
  }
  return key;
}

Status key_fits(const KeyRecord& key, const Signature& sig) {
  if (key.public_key.empty()) return bad("the key is revoked (p= is empty)");
  if (key.key_type != sig.algorithm) return bad("the key's k= does not match the signature's a=");
  if (!key.hashes.empty() && std::find(key.hashes.begin(), key.hashes.end(), "sha256") == key.hashes.end())
    return bad("the key's h= does not allow sha256");
  if (!key.email_service) return bad("the key's s= does not allow email");
  if (key.strict) {  // RFC 6376 3.6.1, t=s: no subdomains in i=
    const std::size_t at = sig.identity.rfind('@');
    if (proto::ascii_lower(sig.identity.substr(at + 1)) != sig.domain) return bad("t=s: i= is a subdomain of d=");
  }
  return Status();
}

std::vector<HeaderField> split_header(std::string_view message, std::size_t* body_offset) {
  std::vector<HeaderField> out;
  std::size_t at = 0, field_start = std::string_view::npos, name_end = 0;
  auto close_field = [&](std::size_t end) {
    if (field_start != std::string_view::npos)
      out.push_back({message.substr(field_start, name_end - field_start), message.substr(field_start, end - field_start)});
    field_start = std::string_view::npos;
  };
  while (at < message.size()) {
    std::size_t eol = message.find("\r\n", at);
    const std::size_t next = eol == std::string_view::npos ? message.size() : eol + 2;
    const std::string_view line = message.substr(at, (eol == std::string_view::npos ? message.size() : eol) - at);
    if (line.empty()) {  // the empty line: the body follows
      close_field(at);
      if (body_offset) *body_offset = next;
      return out;
    }
    if (is_wsp(line.front()) && field_start != std::string_view::npos) {  // a continuation line
      at = next;
      continue;
    }
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || is_wsp(line.front())) {  // not a field: the body starts here
      close_field(at);
      if (body_offset) *body_offset = at;
      return out;
    }
    close_field(at);
    field_start = at;
    std::size_t ne = colon;
    while (ne > 0 && is_wsp(line[ne - 1])) --ne;  // obsolete WSP before the colon (RFC 5322 4.5.8)
    name_end = at + ne;
    at = next;
  }
  close_field(message.size());
  if (body_offset) *body_offset = message.size();
  return out;
}

std::string canonical_header(const HeaderField& field, Canon canon) {
  if (canon == Canon::Simple) return std::string(field.raw);  // RFC 6376 3.4.1: unchanged
  // RFC 6376 3.4.2: the name lower-cased; the value unfolded, its WSP runs one SP, no WSP at
  // its end, none around the colon.
  const std::size_t colon = field.raw.find(':');
  std::string out = proto::ascii_lower(field.name);
  out += ':';
  const std::size_t value_start = out.size();
  std::string_view v = colon == std::string_view::npos ? std::string_view() : field.raw.substr(colon + 1);
  bool space = false;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (c == '\r' && i + 1 < v.size() && v[i + 1] == '\n') {
      ++i;  // unfolding: the CRLF goes, the WSP after it counts as white space
      space = true;
      continue;
    }
    if (is_wsp(c)) {
      space = true;
      continue;
    }
    if (space && out.size() > value_start) out += ' ';  // never right after the colon
    space = false;
    out += c;
  }
  out += "\r\n";
  return out;
}

std::vector<HeaderField> select_headers(const std::vector<HeaderField>& fields, const std::vector<std::string>& names) {
  std::vector<HeaderField> out;
  std::vector<bool> used(fields.size(), false);
  std::vector<std::string> lower;
  lower.reserve(fields.size());
  for (const HeaderField& f : fields) lower.push_back(proto::ascii_lower(f.name));
  for (const std::string& wanted : names) {
    const std::string name = proto::ascii_lower(wanted);
    for (std::size_t i = fields.size(); i-- > 0;) {
      if (used[i] || lower[i] != name) continue;
      used[i] = true;
      out.push_back(fields[i]);
      break;
    }
  }
  return out;
}

std::string without_signature_value(std::string_view raw) {
  std::string out(raw);
  std::size_t i = out.find(':');
  if (i == std::string::npos) return out;
  ++i;
  std::size_t end = out.size();
  if (out.ends_with("\r\n")) end -= 2;  // the field's own line end stays
  while (i < end) {
    while (i < end && fws(out[i])) ++i;
    const std::size_t name_start = i;
    while (i < end && out[i] != '=' && out[i] != ';') ++i;
    std::string_view name = trim(std::string_view(out).substr(name_start, i - name_start));
    if (i < end && out[i] == '=') {
      const std::size_t value_start = ++i;
      std::size_t value_end = out.find(';', value_start);
      if (value_end == std::string::npos || value_end > end) value_end = end;
      if (name == "b") {
        out.erase(value_start, value_end - value_start);
        return out;
      }
      i = value_end;
    }
    if (i < end) ++i;  // the ";"
  }
  return out;
}

std::string header_hash_input(const std::vector<HeaderField>& fields, const std::vector<std::string>& names,
                              Canon canon, std::string_view signature_field) {
  std::string out;
  for (const HeaderField& f : select_headers(fields, names)) out += canonical_header(f, canon);
  const std::string sig = without_signature_value(signature_field);
  const std::size_t colon = sig.find(':');
  std::string_view name = std::string_view(sig).substr(0, colon == std::string::npos ? 0 : colon);
  while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
  std::string c = canonical_header({name, sig}, canon);
  if (c.ends_with("\r\n")) c.resize(c.size() - 2);  // RFC 6376 3.7: without its final CRLF
  out += c;
  return out;
}

void BodyCanonicalizer::emit(std::string_view s, std::string& out) {
  if (limit_) {
    const std::uint64_t room = *limit_ - length_;
    if (s.size() > room) s = s.substr(0, static_cast<std::size_t>(room));
  }
  out.append(s);
  length_ += s.size();
}

void BodyCanonicalizer::content(char c, std::string& out) {
  // Something follows the line ends held back: they were inside the body after all.
  for (; blank_lines_ > 0; --blank_lines_) emit("\r\n", out);
  if (space_) emit(" ", out);  // RFC 6376 3.4.4: a WSP run inside a line is one SP
  space_ = false;
  any_ = true;
  emit(std::string_view(&c, 1), out);
}

void BodyCanonicalizer::feed(std::string_view in, std::string& out) {
  const bool relaxed = canon_ == Canon::Relaxed;
  std::size_t i = 0;
  while (i < in.size()) {
    if (limit_ && length_ >= *limit_) return;  // l= reached: nothing more is hashed
    const char c = in[i];
    if (cr_) {
      cr_ = false;
      if (c == '\n') {  // a line end: held back (RFC 6376 3.4.3, 3.4.4: no empty lines at the end)
        ++blank_lines_;
        space_ = false;  // relaxed: WSP at the end of a line goes
        ++i;
        continue;
      }
      content('\r', out);  // a CR that ends no line is text
    }
    if (c == '\r') {
      cr_ = true;
      ++i;
      continue;
    }
    if (relaxed && is_wsp(c)) {
      space_ = true;
      ++i;
      continue;
    }
    // A run of ordinary text: what is held back first, then the run as one piece.
    std::size_t j = i + 1;
    while (j < in.size() && in[j] != '\r' && !(relaxed && is_wsp(in[j]))) ++j;
    content(c, out);
    emit(in.substr(i + 1, j - i - 1), out);
    i = j;
  }
}

void BodyCanonicalizer::finish(std::string& out) {
  if (cr_) {
    cr_ = false;
    content('\r', out);
  }
  // RFC 6376 3.4.3: the simple body ends in exactly one CRLF, also when empty; 3.4.4 (and
  // erratum 1384): the relaxed body ends in one CRLF unless it is empty.
  if (canon_ == Canon::Simple || any_) emit("\r\n", out);
  blank_lines_ = 0;
  space_ = false;
}

}  // namespace cmail::mail::dkim
