// libFuzzer target: the DNS message parser (cmail/mail/dns_message.h) and the TLSA
// presentation form (cmail/mail/dane.h). Invariants: what parses has as many questions and
// records as its header counts, each record's RDATA inside the message, and parses again to
// the same; answer_of() for the message's own question gives records of that type and an
// error exactly when not Ok; typed RDATA is of its type (an address parses back as one, an MX
// host is a name that encodes in a query unless it is the root); a query for a name that
// encodes parses back to a query with that type and the AD bit, and to that name when it is
// printable; a TLSA record that parses prints and parses back to
// itself.
#include <cmail/mail/dane.h>
#include <cmail/mail/dns_message.h>
#include <cmail/mail/spf.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

using namespace cmail::mail;

void check_message(std::string_view in) {
  auto m = dns::parse_message(in);
  if (!m) return;
  const dns::Header& h = m->header;
  if (m->questions.size() != h.qdcount || m->answers.size() != h.ancount || m->authority.size() != h.nscount ||
      m->additional.size() != h.arcount)
    std::abort();
  for (const auto* section : {&m->answers, &m->authority, &m->additional})
    for (const dns::Record& r : *section) {
      if (r.rdata_offset > in.size() || r.rdata_size > in.size() - r.rdata_offset) std::abort();
      if (auto t = dns::tlsa_of(in, r)) {
        if (r.type != dns::kTypeTlsa || t->data.size() + 3 != r.rdata_size) std::abort();
      }
      if (auto a = dns::address_of(in, r)) {
        if (!spf::parse_ip(*a)) std::abort();
      }
      if (auto mx = dns::mx_of(in, r)) {
        if (r.type != dns::kTypeMx) std::abort();
        if (!mx->host.empty() && mx->host.find('\\') == std::string::npos && !dns::encode_query(mx->host, dns::kTypeA, 1))
          std::abort();
      }
      if (dns::cname_of(in, r) && r.type != dns::kTypeCname) std::abort();
    }
  auto again = dns::parse_message(in);
  if (!again || again->answers.size() != m->answers.size() || again->header.ad != h.ad) std::abort();
  if (!m->questions.empty()) {
    const dns::Question& q = m->questions[0];
    dns::Answer a = dns::answer_of(in, *m, q.name, q.type);
    if ((a.status == DnsStatus::Ok) != !a.records.empty()) std::abort();
    if (a.status != DnsStatus::Ok && a.error.empty()) std::abort();
    for (const dns::Record* r : a.records)
      if (r->type != q.type) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  check_message(in);
  // The input as a name to ask for: what encodes parses back to that question.
  const std::string_view name = in.substr(0, in.find('\n'));
  if (auto q = dns::encode_query(name, dns::kTypeTlsa, 0x4242)) {
    auto m = dns::parse_message(*q);
    if (!m || m->questions.size() != 1 || m->questions[0].type != dns::kTypeTlsa || !m->header.ad || m->header.qr)
      std::abort();
    // Printable names come back as they went (others in RFC 1035 5.1 escapes).
    bool printable = true;
    for (char c : name) printable = printable && c > 0x20 && c < 0x7f;
    if (printable && !dns::same_name(m->questions[0].name, name)) std::abort();
  }
  if (auto t = dane::parse_tlsa(in)) {
    if (dane::parse_tlsa(dane::to_string(*t)) != t) std::abort();
  }
  return 0;
}
