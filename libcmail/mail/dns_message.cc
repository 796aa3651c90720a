// The DNS message wire format. See cmail/mail/dns_message.h.
#include <cmail/mail/dns_message.h>

#include <cmail/mail/spf.h>
#include <cmail/proto/ascii.h>

namespace cmail::mail::dns {

namespace {

constexpr std::size_t kHeaderSize = 12;  // RFC 1035 4.1.1
constexpr std::size_t kMaxName = 255;    // octets in wire form, RFC 1035 2.3.4
constexpr std::size_t kMaxLabel = 63;
constexpr int kMaxCnameLinks = 16;

std::uint16_t u16(std::string_view w, std::size_t at) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(w[at]) << 8 | static_cast<unsigned char>(w[at + 1]));
}

std::uint32_t u32(std::string_view w, std::size_t at) {
  return static_cast<std::uint32_t>(u16(w, at)) << 16 | u16(w, at + 2);
}

void put16(std::string& out, std::uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}

Status bad(const std::string& what) { return Status::invalid_argument("DNS message: " + what); }

// One label's octets in presentation form (RFC 1035 5.1).
void append_label(std::string& out, std::string_view label) {
  for (char ch : label) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '.' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x21 || c > 0x7e) {
      out += '\\';
      out += static_cast<char>('0' + c / 100);
      out += static_cast<char>('0' + c / 10 % 10);
      out += static_cast<char>('0' + c % 10);
    } else {
      out += ch;
    }
  }
}

std::string_view without_dot(std::string_view n) {
  if (!n.empty() && n.back() == '.' && (n.size() < 2 || n[n.size() - 2] != '\\')) n.remove_suffix(1);
  return n;
}

// `count` records of a section, starting at `offset`.
Status read_records(std::string_view w, std::size_t& offset, std::uint16_t count, std::vector<Record>& out) {
  for (std::uint16_t i = 0; i < count; ++i) {
    Record r;
    auto name = read_name(w, offset);
    if (!name) return name.error();
    r.name = std::move(*name);
    if (w.size() - offset < 10) return bad("record header truncated");  // RFC 1035 4.1.3
    r.type = u16(w, offset);
    r.klass = u16(w, offset + 2);
    r.ttl = u32(w, offset + 4);
    r.rdata_size = u16(w, offset + 8);
    offset += 10;
    if (w.size() - offset < r.rdata_size) return bad("RDATA truncated");
    r.rdata_offset = offset;
    offset += r.rdata_size;
    out.push_back(std::move(r));
  }
  return Status();
}

}  // namespace

Result<std::string> encode_query(std::string_view name, std::uint16_t type, std::uint16_t id, bool ad) {
  name = without_dot(name);
  if (name.empty()) return Status::invalid_argument("empty DNS name");
  if (name.find('\\') != std::string_view::npos) return Status::invalid_argument("escapes in DNS name " + std::string(name));
  std::string qname;
  for (std::size_t start = 0;;) {
    std::size_t dot = name.find('.', start);
    std::string_view label = name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > kMaxLabel)  // RFC 1035 2.3.4
      return Status::invalid_argument("bad label in DNS name " + std::string(name));
    qname += static_cast<char>(label.size());
    qname += label;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  qname += '\0';
  if (qname.size() > kMaxName) return Status::invalid_argument("DNS name too long: " + std::string(name));
  std::string out;
  put16(out, id);
  // RFC 1035 4.1.1: QR=0, OPCODE=0 (QUERY), RD=1; RFC 6840 5.7: AD=1 asks for the AD bit.
  out += static_cast<char>(0x01);
  out += static_cast<char>(ad ? 0x20 : 0x00);
  put16(out, 1);  // QDCOUNT
  put16(out, 0);
  put16(out, 0);
  put16(out, 0);
  out += qname;
  put16(out, type);
  put16(out, kClassIn);
  return out;
}

Result<std::string> read_name(std::string_view w, std::size_t& offset) {
  std::string out;
  std::size_t at = offset;
  std::size_t wire = 0;        // octets of the name in wire form
  bool jumped = false;
  std::size_t lowest = at;     // a pointer must point before every part read so far
  for (;;) {
    if (at >= w.size()) return bad("name truncated");
    auto len = static_cast<unsigned char>(w[at]);
    if ((len & 0xc0) == 0xc0) {  // RFC 1035 4.1.4: a pointer
      if (w.size() - at < 2) return bad("name pointer truncated");
      std::size_t target = u16(w, at) & 0x3fff;
      if (target >= lowest) return bad("name pointer does not point back");
      if (!jumped) offset = at + 2;
      jumped = true;
      at = lowest = target;
      continue;
    }
    if (len & 0xc0) return bad("unknown label type");  // 0x40, 0x80: RFC 6891 5
    wire += 1u + len;
    if (wire > kMaxName) return bad("name longer than 255 octets");
    if (len == 0) {
      if (!jumped) offset = at + 1;
      return out;
    }
    if (w.size() - at - 1 < len) return bad("label truncated");
    if (!out.empty()) out += '.';
    append_label(out, w.substr(at + 1, len));
    at += 1u + len;
  }
}

bool same_name(std::string_view a, std::string_view b) {
  a = without_dot(a);
  b = without_dot(b);
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (proto::ascii_lower(a[i]) != proto::ascii_lower(b[i])) return false;  // RFC 4343
  return true;
}

Result<Message> parse_message(std::string_view w) {
  if (w.size() < kHeaderSize) return bad("shorter than its header");
  if (w.size() > kMaxMessage) w = w.substr(0, kMaxMessage);
  Message m;
  Header& h = m.header;
  h.id = u16(w, 0);
  const auto f1 = static_cast<unsigned char>(w[2]), f2 = static_cast<unsigned char>(w[3]);
  h.qr = f1 & 0x80;
  h.opcode = (f1 >> 3) & 0x0f;
  h.aa = f1 & 0x04;
  h.tc = f1 & 0x02;
  h.rd = f1 & 0x01;
  h.ra = f2 & 0x80;
  h.ad = f2 & 0x20;  // RFC 4035 3.2.3
  h.cd = f2 & 0x10;
  h.rcode = f2 & 0x0f;
  h.qdcount = u16(w, 4);
  h.ancount = u16(w, 6);
  h.nscount = u16(w, 8);
  h.arcount = u16(w, 10);
  // A question takes 5 octets at least, a record 11: counts the message cannot hold are
  // refused before anything is reserved for them.
  const std::size_t room = w.size() - kHeaderSize;
  if (std::size_t{h.qdcount} * 5 + (std::size_t{h.ancount} + h.nscount + h.arcount) * 11 > room)
    return bad("section counts larger than the message");
  std::size_t offset = kHeaderSize;
  for (std::uint16_t i = 0; i < h.qdcount; ++i) {
    Question q;
    auto name = read_name(w, offset);
    if (!name) return name.error();
    q.name = std::move(*name);
    if (w.size() - offset < 4) return bad("question truncated");
    q.type = u16(w, offset);
    q.klass = u16(w, offset + 2);
    offset += 4;
    m.questions.push_back(std::move(q));
  }
  m.answers.reserve(h.ancount);
  if (Status st = read_records(w, offset, h.ancount, m.answers); !st.ok()) return st;
  if (Status st = read_records(w, offset, h.nscount, m.authority); !st.ok()) return st;
  if (Status st = read_records(w, offset, h.arcount, m.additional); !st.ok()) return st;
  return m;
}

Answer answer_of(std::string_view w, const Message& m, std::string_view name, std::uint16_t type) {
  Answer a;
  a.authenticated = m.header.ad;
  const std::string asked(without_dot(name));
  if (!m.header.qr || m.header.opcode != 0) {
    a.error = "not an answer to a query";
    return a;
  }
  if (m.questions.size() != 1 || !same_name(m.questions[0].name, asked) || m.questions[0].type != type) {
    a.error = "the answer is for another question";
    return a;
  }
  switch (m.header.rcode) {
    case kNoError: break;
    case kNxDomain:  // RFC 1035 4.1.1: Name Error
      a.status = DnsStatus::NxDomain;
      a.error = "no such name " + asked;
      return a;
    case kServFail: a.error = "server failure (SERVFAIL) for " + asked; return a;
    default: a.error = "RCODE " + std::to_string(m.header.rcode) + " for " + asked; return a;
  }
  // RFC 1034 3.6.2: the records at the name, else at the end of the CNAME chain the answer
  // section holds.
  std::string at = asked;
  for (int links = 0; links <= kMaxCnameLinks; ++links) {
    for (const Record& r : m.answers)
      if (r.type == type && r.klass == kClassIn && same_name(r.name, at)) a.records.push_back(&r);
    if (!a.records.empty() || type == kTypeCname) break;
    std::optional<std::string> next;
    for (const Record& r : m.answers)
      if (r.type == kTypeCname && r.klass == kClassIn && same_name(r.name, at) && (next = cname_of(w, r))) break;
    if (!next || same_name(*next, asked)) break;
    at = std::move(*next);
  }
  a.status = a.records.empty() ? DnsStatus::NoData : DnsStatus::Ok;
  if (a.records.empty()) a.error = "no records of that type for " + asked;
  return a;
}

std::optional<MxRecord> mx_of(std::string_view w, const Record& r) {
  if (r.type != kTypeMx || r.rdata_size < 3 || r.rdata_offset + r.rdata_size > w.size()) return std::nullopt;
  std::string_view rdata = w.substr(0, r.rdata_offset + r.rdata_size);  // the name stays inside
  std::size_t at = r.rdata_offset + 2;
  auto host = read_name(rdata, at);
  if (!host || at != r.rdata_offset + r.rdata_size) return std::nullopt;
  return MxRecord{u16(w, r.rdata_offset), std::move(*host)};  // RFC 7505: "." is ""
}

std::optional<std::string> cname_of(std::string_view w, const Record& r) {
  if (r.type != kTypeCname || r.rdata_offset + r.rdata_size > w.size()) return std::nullopt;
  std::string_view rdata = w.substr(0, r.rdata_offset + r.rdata_size);
  std::size_t at = r.rdata_offset;
  auto target = read_name(rdata, at);
  if (!target || at != r.rdata_offset + r.rdata_size) return std::nullopt;
  return std::move(*target);
}

std::optional<std::string> address_of(std::string_view w, const Record& r) {
  if (r.rdata_offset + r.rdata_size > w.size()) return std::nullopt;
  spf::Ip ip;
  if (r.type == kTypeA && r.rdata_size == 4) {  // RFC 1035 3.4.1
    ip.v6 = false;
  } else if (r.type == kTypeAaaa && r.rdata_size == 16) {  // RFC 3596 2.2
    ip.v6 = true;
  } else {
    return std::nullopt;
  }
  for (std::size_t i = 0; i < r.rdata_size; ++i) ip.octets[i] = static_cast<std::uint8_t>(w[r.rdata_offset + i]);
  return spf::readable_ip(ip);
}

std::optional<TlsaRecord> tlsa_of(std::string_view w, const Record& r) {
  // RFC 6698 2.1: usage, selector and matching type, one octet each, then the data.
  if (r.type != kTypeTlsa || r.rdata_size < 3 || r.rdata_offset + r.rdata_size > w.size()) return std::nullopt;
  TlsaRecord t;
  t.usage = static_cast<std::uint8_t>(w[r.rdata_offset]);
  t.selector = static_cast<std::uint8_t>(w[r.rdata_offset + 1]);
  t.matching = static_cast<std::uint8_t>(w[r.rdata_offset + 2]);
  t.data = std::string(w.substr(r.rdata_offset + 3, r.rdata_size - 3));
  return t;
}

}  // namespace cmail::mail::dns
