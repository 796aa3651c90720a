// mail::dns: queries (RFC 1035 4.1, RFC 6840 5.7), answers with compressed names (RFC 1035
// 4.1.4), the AD bit (RFC 4035 3.2.3), CNAME chains (RFC 1034 3.6.2), typed RDATA (MX, A,
// AAAA, TLSA of RFC 6698 2.1 with the examples of RFC 6698 2.3). A DNS message is a datagram,
// not a stream: instead of splits, every truncation of every message is fed and must fail
// cleanly (or, past the end of what the header counts, parse to the same message).
#include <cmail/mail/dane.h>
#include <cmail/mail/dns_message.h>

#include <doctest/doctest.h>

#include <string>

using namespace cmail;
using namespace cmail::mail;
using namespace cmail::mail::dns;

namespace {

std::string hex(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::string unhex(std::string_view h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) out += static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16));
  return out;
}

void u16(std::string& out, unsigned v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}

std::string name_wire(std::string_view name) {
  std::string out;
  std::size_t start = 0;
  while (start < name.size()) {
    std::size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    out += static_cast<char>(dot - start);
    out += name.substr(start, dot - start);
    start = dot + 1;
  }
  return out + '\0';
}

// A response: the header with `flags2` (RA, AD, CD, RCODE) and one question, then the answer
// records as given (each already in wire form).
std::string response(std::string_view qname, unsigned qtype, unsigned flags2, const std::vector<std::string>& answers,
                     unsigned id = 0x1234) {
  std::string m;
  u16(m, id);
  m += static_cast<char>(0x81);  // QR, RD
  m += static_cast<char>(flags2);
  u16(m, 1);
  u16(m, static_cast<unsigned>(answers.size()));
  u16(m, 0);
  u16(m, 0);
  m += name_wire(qname);
  u16(m, qtype);
  u16(m, 1);
  for (const auto& a : answers) m += a;
  return m;
}

// A record whose owner is `owner` (wire form: a name or a pointer), with `rdata`.
std::string rr(std::string_view owner, unsigned type, std::string_view rdata, unsigned ttl = 300) {
  std::string r(owner);
  u16(r, type);
  u16(r, 1);
  u16(r, ttl >> 16);
  u16(r, ttl & 0xffff);
  u16(r, static_cast<unsigned>(rdata.size()));
  r += rdata;
  return r;
}

const std::string kPtrQname = std::string("\xc0\x0c", 2);  // the question's name, at offset 12

}  // namespace

TEST_CASE("dns: a query asks for the AD bit and encodes its name") {
  auto q = encode_query("_25._tcp.mx.example.test.", kTypeTlsa, 0x1234);
  REQUIRE(q.has_value());
  // RFC 1035 4.1.1: ID, flags RD (0x01) and AD (0x20, RFC 6840 5.7), one question.
  CHECK(hex(q->substr(0, 12)) == "123401200001000000000000");
  CHECK(q->substr(12) == name_wire("_25._tcp.mx.example.test") + std::string("\x00\x34\x00\x01", 4));
  auto plain = encode_query("example.test", kTypeMx, 7, false);
  REQUIRE(plain.has_value());
  CHECK(hex(plain->substr(2, 2)) == "0100");
  auto parsed = parse_message(*q);
  REQUIRE(parsed.has_value());
  CHECK_FALSE(parsed->header.qr);
  CHECK(parsed->header.ad);
  CHECK(parsed->header.rd);
  REQUIRE(parsed->questions.size() == 1);
  CHECK(parsed->questions[0].name == "_25._tcp.mx.example.test");
  CHECK(parsed->questions[0].type == kTypeTlsa);

  for (std::string_view bad : {"", ".", "a..b", ".a", "a\\.b"}) CHECK_MESSAGE(!encode_query(bad, kTypeA, 1), bad);
  CHECK_FALSE(encode_query(std::string(64, 'a') + ".test", kTypeA, 1));   // RFC 1035 2.3.4: 63 octets a label
  CHECK(encode_query(std::string(63, 'a') + ".test", kTypeA, 1));
  std::string long_name;
  while (long_name.size() < 250) long_name += "abcdefghi.";
  CHECK_FALSE(encode_query(long_name + "test", kTypeA, 1));  // 255 octets a name
}

TEST_CASE("dns: a TLSA answer with a compressed owner and the AD bit") {
  // RFC 6698 2.3's examples, as RDATA.
  const TlsaRecord a{0, 0, 1, unhex("d2abde240d7cd3ee6b4b28c54df034b97983a1d16e8a410e4561cb106618e971")};
  const TlsaRecord b{1, 1, 2,
                     unhex("92003ba34942dc74152e2f2c408d29eca5a520e7f2e06bb944f4dca346baf63c"
                           "1b177615d466f6c4b71c216a50292bd58c9ebdd2f74e38fe51ffd48c43326cbc")};
  auto rdata = [](const TlsaRecord& t) {
    return std::string{static_cast<char>(t.usage), static_cast<char>(t.selector), static_cast<char>(t.matching)} + t.data;
  };
  const std::string wire = response("_443._tcp.www.example.com", kTypeTlsa, 0xa0,  // RA, AD
                                    {rr(kPtrQname, kTypeTlsa, rdata(a), 3600), rr(kPtrQname, kTypeTlsa, rdata(b))});
  auto m = parse_message(wire);
  REQUIRE_MESSAGE(m.has_value(), m.error().to_string());
  CHECK(m->header.id == 0x1234);
  CHECK(m->header.qr);
  CHECK(m->header.ra);
  CHECK(m->header.ad);
  CHECK_FALSE(m->header.cd);
  CHECK(m->header.rcode == kNoError);
  REQUIRE(m->answers.size() == 2);
  CHECK(m->answers[0].name == "_443._tcp.www.example.com");
  CHECK(m->answers[0].ttl == 3600);
  CHECK(m->answers[0].rdata_size == 35);
  CHECK(tlsa_of(wire, m->answers[0]) == a);
  CHECK(tlsa_of(wire, m->answers[1]) == b);
  CHECK(dane::to_string(a) == "0 0 1 d2abde240d7cd3ee6b4b28c54df034b97983a1d16e8a410e4561cb106618e971");
  CHECK(dane::parse_tlsa("0 0 1 d2abde240d7cd3ee6b4b28c54df034b9\n      7983a1d16e8a410e4561cb106618e971") == a);
  CHECK_FALSE(mx_of(wire, m->answers[0]));
  CHECK_FALSE(address_of(wire, m->answers[0]));

  Answer ans = answer_of(wire, *m, "_443._TCP.www.example.com.", kTypeTlsa);  // RFC 4343: any case
  CHECK(ans.status == DnsStatus::Ok);
  CHECK(ans.authenticated);
  CHECK(ans.records.size() == 2);
  // Asked for something else, or not a response: never taken as an answer.
  CHECK(answer_of(wire, *m, "_25._tcp.www.example.com", kTypeTlsa).status == DnsStatus::TempFail);
  CHECK(answer_of(wire, *m, "_443._tcp.www.example.com", kTypeA).status == DnsStatus::TempFail);
  std::string query = wire;
  query[2] = 0x01;  // QR cleared
  CHECK(answer_of(query, *parse_message(query), "_443._tcp.www.example.com", kTypeTlsa).status == DnsStatus::TempFail);
  std::string insecure = wire;
  insecure[3] = static_cast<char>(0x80);
  CHECK_FALSE(answer_of(insecure, *parse_message(insecure), "_443._tcp.www.example.com", kTypeTlsa).authenticated);

  // Every truncation fails cleanly, never reads past the end.
  for (std::size_t n = 0; n < wire.size(); ++n) CHECK_MESSAGE(!parse_message(wire.substr(0, n)), n);
  // Octets after the last record are ignored.
  CHECK(parse_message(wire + "junk")->answers.size() == 2);
}

TEST_CASE("dns: RCODEs, NODATA, the CNAME chain, MX with the null MX, A and AAAA") {
  auto status = [](const std::string& w, std::string_view name, unsigned type) {
    auto m = parse_message(w);
    REQUIRE(m.has_value());
    return answer_of(w, *m, name, static_cast<std::uint16_t>(type)).status;
  };
  CHECK(status(response("nope.test", kTypeMx, 0x83, {}), "nope.test", kTypeMx) == DnsStatus::NxDomain);  // RCODE 3
  CHECK(status(response("broken.test", kTypeMx, 0x82, {}), "broken.test", kTypeMx) == DnsStatus::TempFail);
  CHECK(status(response("refused.test", kTypeMx, 0x85, {}), "refused.test", kTypeMx) == DnsStatus::TempFail);
  CHECK(status(response("host.test", kTypeMx, 0x80, {}), "host.test", kTypeMx) == DnsStatus::NoData);
  // A secure denial keeps its AD bit.
  const std::string denial = response("host.test", kTypeTlsa, 0xa3, {});
  CHECK(answer_of(denial, *parse_message(denial), "host.test", kTypeTlsa).authenticated);

  // www.example.test CNAME host.example.test, whose A records answer (RFC 1034 3.6.2).
  const std::string target = name_wire("host.example.test");
  std::string w = response("www.example.test", kTypeA, 0x80,
                           {rr(kPtrQname, kTypeCname, target), rr(name_wire("host.example.test"), kTypeA, unhex("c0000201")),
                            rr(name_wire("host.example.test"), kTypeA, unhex("c0000202")),
                            rr(name_wire("other.test"), kTypeA, unhex("0a000001"))});
  auto m = parse_message(w);
  REQUIRE(m.has_value());
  CHECK(cname_of(w, m->answers[0]) == std::optional<std::string>("host.example.test"));
  Answer a = answer_of(w, *m, "www.example.test", kTypeA);
  REQUIRE(a.status == DnsStatus::Ok);
  REQUIRE(a.records.size() == 2);
  CHECK(address_of(w, *a.records[0]) == std::optional<std::string>("192.0.2.1"));
  CHECK(address_of(w, *a.records[1]) == std::optional<std::string>("192.0.2.2"));
  // A CNAME loop ends with no data, not a hang.
  std::string loop = response("a.test", kTypeA, 0x80, {rr(kPtrQname, kTypeCname, name_wire("b.test")),
                                                        rr(name_wire("b.test"), kTypeCname, name_wire("a.test"))});
  CHECK(status(loop, "a.test", kTypeA) == DnsStatus::NoData);

  // MX: the host name compressed against the question; the null MX of RFC 7505 as "".
  std::string mx = response("example.test", kTypeMx, 0x80,
                            {rr(kPtrQname, kTypeMx, std::string("\x00\x0a\x03mx1\xc0\x0c", 8)),
                             rr(kPtrQname, kTypeMx, std::string("\x00\x00\x00", 3))});
  m = parse_message(mx);
  REQUIRE(m.has_value());
  CHECK(mx_of(mx, m->answers[0]) == std::optional<MxRecord>(MxRecord{10, "mx1.example.test"}));
  CHECK(mx_of(mx, m->answers[1]) == std::optional<MxRecord>(MxRecord{0, ""}));

  std::string aaaa = response("v6.test", kTypeAaaa, 0x80,
                              {rr(kPtrQname, kTypeAaaa, unhex("20010db8000000000000000000000001")),
                               rr(kPtrQname, kTypeAaaa, unhex("00000000000000000000000000000001")),
                               rr(kPtrQname, kTypeAaaa, unhex("0102"))});
  m = parse_message(aaaa);
  REQUIRE(m.has_value());
  CHECK(address_of(aaaa, m->answers[0]) == std::optional<std::string>("2001:db8::1"));  // RFC 5952
  CHECK(address_of(aaaa, m->answers[1]) == std::optional<std::string>("::1"));
  CHECK_FALSE(address_of(aaaa, m->answers[2]));  // 2 octets are no AAAA
}

TEST_CASE("dns: malformed names and counts are errors") {
  // A pointer to itself, a pointer forward, an unknown label type, a name of 256 octets.
  std::string self = response("x.test", kTypeA, 0x80, {});
  std::string looped = self + std::string("\xc0", 1) + static_cast<char>(self.size()) + std::string(10, '\0');
  looped[7] = 1;  // ANCOUNT 1
  CHECK_FALSE(parse_message(looped));
  std::string forward = self + std::string("\xc0\xff", 2) + std::string(10, '\0');
  forward[7] = 1;
  CHECK_FALSE(parse_message(forward));
  std::string label_type = self + std::string("\x41", 1) + std::string(10, '\0');
  label_type[7] = 1;
  CHECK_FALSE(parse_message(label_type));
  std::string big;
  for (int i = 0; i < 4; ++i) big += static_cast<char>(63) + std::string(63, 'a');
  big += '\0';  // 4 x 64 + 1 = 257 octets
  std::size_t at = 0;
  CHECK_FALSE(read_name(big, at));
  // Counts no message of this size can hold are refused before any allocation.
  std::string counts = self;
  counts[6] = counts[7] = static_cast<char>(0xff);
  CHECK_FALSE(parse_message(counts));
  CHECK_FALSE(parse_message(std::string(11, '\0')));
  // Escapes of the presentation form (RFC 1035 5.1).
  std::string odd = std::string("\x03" "a.b" "\x02" "\\ " "\x00", 8);
  at = 0;
  auto name = read_name(odd, at);
  REQUIRE(name.has_value());
  CHECK(*name == "a\\.b.\\\\\\032");
  CHECK(at == odd.size());
  CHECK(same_name("Mx.Example.TEST.", "mx.example.test"));
  CHECK_FALSE(same_name("mx.example.test", "mx.example.tes"));
}

TEST_CASE("dns: TLSA RDATA shorter than three octets is malformed; a whole certificate is kept") {
  std::string w = response("_25._tcp.mx.test", kTypeTlsa, 0xa0, {rr(kPtrQname, kTypeTlsa, std::string("\x03\x01", 2)),
                                                                  rr(kPtrQname, kTypeTlsa, std::string("\x03\x00\x00", 3) + std::string(600, 'x'))});
  auto m = parse_message(w);
  REQUIRE(m.has_value());
  CHECK_FALSE(tlsa_of(w, m->answers[0]));
  auto full = tlsa_of(w, m->answers[1]);
  REQUIRE(full.has_value());
  CHECK(full->data.size() == 600);  // 3 0 0: a certificate, longer than a UDP answer of 512
}
