// libFuzzer target: the DMARC record parser, Punycode and the Public Suffix List
// (cmail/mail/dmarc.h). The input is a record, a label and a suffix list at once. Invariants:
// a parsed record has pct 0-100; an A-label is ASCII and an ASCII label its own A-label; the
// organizational domain of a name is a suffix of it (at a label boundary) that ends with its
// public suffix, and is its own organizational domain; alignment is symmetric.
#include <cmail/mail/dmarc.h>

#include <cstdint>
#include <cstdlib>
#include <string>

using namespace cmail::mail::dmarc;

namespace {

bool label_suffix(const std::string& whole, const std::string& part) {
  return whole == part || (whole.size() > part.size() && whole.ends_with("." + part));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto r = parse_record(in)) {
    if (r->percent < 0 || r->percent > 100) std::abort();
  }
  if (auto a = a_label(in.substr(0, 64))) {
    for (char c : *a)
      if (static_cast<unsigned char>(c) >= 0x80) std::abort();
    bool ascii = true;
    for (char c : in.substr(0, 64)) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
    if (ascii && *a != in.substr(0, 64)) std::abort();
  }
  const PublicSuffixList psl = PublicSuffixList::parse(in);
  for (const char* name : {"a.b.example.com", "x.y.co.uk", "www.ck", "a.www.ck", "deep.sub.example.jp", "com", "host"}) {
    const std::string org = psl.organizational_domain(name);
    const std::string suffix = psl.public_suffix(name);
    if (!label_suffix(name, org) || !label_suffix(org, suffix)) std::abort();
    if (psl.organizational_domain(org) != org) std::abort();
    if (aligned(name, org, false, psl) != aligned(org, name, false, psl)) std::abort();
  }
  return 0;
}
