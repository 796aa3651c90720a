// libFuzzer target: the DKIM parsers and canonicalizations (cmail/mail/dkim.h). Byte 0 picks
// the body canonicalization, an l= limit and the piece size; the rest is a message whose
// header fields and body are run through split_header, canonical_header, header_hash_input
// and BodyCanonicalizer, and whose DKIM-Signature values and whole input are given to the
// tag-list, signature and key record parsers. Invariants: the body canonicalizer gives the
// same octets whole and in pieces, never more than l=, ends as RFC 6376 3.4.3/3.4.4 say and
// (relaxed) never leaves white space before a line end or two WSP in a row; every field's raw
// octets lie inside the message, start with its name and follow one another; a canonical
// relaxed field is one line; what parse_signature takes names From in h= and an i= inside
// d=; a key record without p= never parses. The forged Authentication-Results filter gives
// the same octets whole and in pieces, never more than it was given, and the body untouched.
// The Verifier gives the same results (and asks for the same keys) whole and in pieces, every
// key record answered with the input itself; the Signer's From domain is the same both ways.
#include <cmail/mail/auth_results.h>
#include <cmail/mail/dkim.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

using namespace cmail::mail::dkim;

void check_body(std::string_view body, Canon canon, std::optional<std::uint64_t> limit, std::size_t piece) {
  std::string whole, split;
  BodyCanonicalizer a(canon, limit), b(canon, limit);
  a.feed(body, whole);
  a.finish(whole);
  for (std::size_t at = 0; at < body.size(); at += piece) b.feed(body.substr(at, piece), split);
  b.finish(split);
  if (whole != split || a.length() != whole.size()) std::abort();
  if (limit && whole.size() > *limit) std::abort();
  if (limit) return;  // a cut body may end anywhere
  if (canon == Canon::Simple && !whole.ends_with("\r\n")) std::abort();
  if (canon == Canon::Relaxed) {
    if (!whole.empty() && !whole.ends_with("\r\n")) std::abort();
    if (whole.find(" \r\n") != std::string::npos || whole.find("  ") != std::string::npos ||
        whole.find('\t') != std::string::npos)
      std::abort();
  }
  if (whole.ends_with("\r\n\r\n")) std::abort();  // no empty lines at the end
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t mode = data[0];
  const std::string_view msg(reinterpret_cast<const char*>(data + 1), size - 1);
  const Canon canon = mode & 1 ? Canon::Relaxed : Canon::Simple;
  const std::optional<std::uint64_t> limit = mode & 2 ? std::optional<std::uint64_t>((mode >> 2) & 31) : std::nullopt;
  const std::size_t piece = 1 + (mode >> 5);

  std::size_t body_at = 0;
  const std::vector<HeaderField> fields = split_header(msg, &body_at);
  if (body_at > msg.size()) std::abort();
  const char* prev_end = msg.data();
  std::vector<std::string> names;
  for (const HeaderField& f : fields) {
    if (f.raw.data() < msg.data() || f.raw.data() + f.raw.size() > msg.data() + msg.size()) std::abort();
    if (f.raw.data() != prev_end || f.raw.substr(0, f.name.size()) != f.name) std::abort();
    prev_end = f.raw.data() + f.raw.size();
    const std::string relaxed = canonical_header(f, Canon::Relaxed);
    if (relaxed.find("\r\n") != relaxed.size() - 2) std::abort();  // one line
    if (canonical_header(f, Canon::Simple) != f.raw) std::abort();
    names.emplace_back(f.name);
    if (f.raw.size() > f.name.size()) {
      const std::string_view value = f.raw.substr(f.raw.find(':') + 1);
      if (auto sig = parse_signature(value)) {
        bool from = false;
        for (const std::string& h : sig->headers) from = from || h == "from";
        if (!from || sig->signature.empty() || sig->body_hash.empty()) std::abort();
        const std::size_t at = sig->identity.rfind('@');
        if (at == std::string::npos) std::abort();
        std::string dom = sig->identity.substr(at + 1);
        for (char& c : dom) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
        if (!dom.ends_with(sig->domain)) std::abort();
        (void)header_hash_input(fields, sig->headers, sig->header_canon, f.raw);
      }
      const std::string stripped = without_signature_value(f.raw);
      if (stripped.size() > f.raw.size()) std::abort();
    }
  }
  (void)select_headers(fields, names);
  {
    cmail::mail::ForgedResultsFilter whole("mx.example.test"), split("mx.example.test");
    std::string a, b;
    whole.feed(msg, a);
    whole.finish(a);
    for (std::size_t at = 0; at < msg.size(); at += piece) split.feed(msg.substr(at, piece), b);
    split.finish(b);
    if (a != b || a.size() > msg.size()) std::abort();
    if (whole.dropped() == 0 && a != msg) std::abort();
  }
  check_body(msg.substr(body_at), canon, limit, piece);
  {
    Verifier whole, split;
    whole.feed(msg);
    whole.finish();
    for (std::size_t at = 0; at < msg.size(); at += piece) split.feed(msg.substr(at, piece));
    split.finish();
    const auto qa = whole.key_queries(), qb = split.key_queries();
    if (qa != qb) std::abort();
    cmail::mail::TxtResult answer{cmail::mail::DnsStatus::Ok, {std::string(msg)}, ""};
    for (const auto& [i, name] : qa) {
      whole.set_key(i, answer);
      split.set_key(i, answer);
    }
    const auto ra = whole.results(), rb = split.results();
    if (ra.size() != rb.size()) std::abort();
    for (std::size_t i = 0; i < ra.size(); ++i)
      if (ra[i].result != rb[i].result || ra[i].reason != rb[i].reason) std::abort();
    Signer sa, sb;
    sa.feed(msg);
    sa.finish();
    for (std::size_t at = 0; at < msg.size(); at += piece) sb.feed(msg.substr(at, piece));
    sb.finish();
    if (sa.from_domain() != sb.from_domain()) std::abort();
  }
  auto tags = parse_tag_list(msg);
  if (parse_key_record(msg)) {  // a key record is a tag list with a p= tag
    bool p = false;
    if (!tags) std::abort();
    for (const auto& [name, value] : *tags) p = p || name == "p";
    if (!p) std::abort();
  }
  return 0;
}
