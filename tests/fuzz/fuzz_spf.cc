// libFuzzer target: the SPF record parser, the macro expander and the address parser
// (cmail/mail/spf.h). Invariants: what parses is an SPF record; its CIDR lengths are in range
// and its ip4/ip6 networks of their family; every domain-spec it holds (redirect= and exp=
// too) expands with a fixed context to at most 253 octets, or fails only for being longer; an address that parses prints
// (RFC 5952) and parses back to itself; same_network of an address with itself holds at any
// length.
#include <cmail/mail/spf.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

using namespace cmail::mail::spf;

MacroContext context() {
  MacroContext c;
  c.sender = "user@example.test";
  c.domain = "example.test";
  c.ip = *parse_ip("2001:db8::1");
  c.helo = "mx.example.test";
  return c;
}

// A parsed domain-spec is well formed: it expands, unless what it expands to cannot be cut to
// 253 octets at a dot (one label that long), and never to more.
void check_domain(const std::string& spec, const MacroContext& c) {
  auto e = expand(spec, c);
  if (e ? e->size() > 253 : e.error().message().find("253") == std::string::npos) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  static const MacroContext c = context();
  if (auto r = parse_record(in)) {
    if (!is_spf_record(in)) std::abort();
    for (const Mechanism& m : r->mechanisms) {
      if (m.cidr4 < 0 || m.cidr4 > 32 || m.cidr6 < 0 || m.cidr6 > 128) std::abort();
      if (m.kind == Mechanism::Kind::Ip4 && m.network.v6) std::abort();
      if (m.kind == Mechanism::Kind::Ip6 && !m.network.v6) std::abort();
      if (!m.domain_spec.empty()) check_domain(m.domain_spec, c);
      if ((m.kind == Mechanism::Kind::Include || m.kind == Mechanism::Kind::Exists) && m.domain_spec.empty())
        std::abort();
    }
    if (r->redirect) check_domain(*r->redirect, c);
    if (r->explanation) check_domain(*r->explanation, c);
  }
  (void)expand(in, c, true);
  (void)expand(in, c, false);
  if (auto ip = parse_ip(in)) {
    auto again = parse_ip(readable_ip(*ip));
    if (!again || !(*again == *ip)) std::abort();
    if (!ip->v6 && !(parse_ip(macro_ip(*ip)) == ip)) std::abort();
    for (int bits = 0; bits <= 128; bits += 7)
      if (!same_network(*ip, *ip, bits)) std::abort();
  }
  return 0;
}
