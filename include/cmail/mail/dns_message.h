// cmail/mail/dns_message.h: the DNS message wire format (RFC 1035 4.1), both ways, sans-I/O.
//
// The one parser of DNS messages in cmail: the c-ares resolver (cmail/net/resolver.h) sends the
// queries encode_query() builds and reads the answers with parse_message() and answer_of(),
// because c-ares 1.18 neither sets the AD bit in a query nor says whether an answer had it
// (RFC 6840 5.7, RFC 4035 3.2.3), and has no TLSA parser (RFC 6698 2.1).
//
//   encode_query()  a query for one name and type: RD, and AD to ask for the AD bit
//   parse_message() header, questions and the three record sections; names decompressed
//                   (RFC 1035 4.1.4, pointers only backwards, so no loop), every RDATA located
//                   inside the message; anything short or out of bounds is an error, never a
//                   read past the end
//   answer_of()     what a query's answer says about its name and type: the status of
//                   cmail/mail/resolver.h from the RCODE, the records of that type at the name
//                   or at the end of its CNAME chain (RFC 1034 3.6.2), and the AD bit
//   mx_of(), address_of(), tlsa_of(), cname_of()  typed RDATA
//
// Names are in presentation form without the trailing dot ("mx.example.org"; "" is the root),
// with '.', '\' and octets outside 0x21-0x7E escaped as RFC 1035 5.1 writes them ("\.", "\\",
// "\032"), and compared case-insensitively in ASCII (RFC 4343).
//
// Thread-safety: pure functions over values.
#pragma once

#include <cmail/export.h>
#include <cmail/mail/resolver.h>
#include <cmail/status.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::mail::dns {

// RR TYPE values (RFC 1035 3.2.2, RFC 3596 2.1, RFC 6891 6.1.1, RFC 6698 7.1).
inline constexpr std::uint16_t kTypeA = 1;
inline constexpr std::uint16_t kTypeCname = 5;
inline constexpr std::uint16_t kTypeMx = 15;
inline constexpr std::uint16_t kTypeTxt = 16;
inline constexpr std::uint16_t kTypeAaaa = 28;
inline constexpr std::uint16_t kTypeOpt = 41;
inline constexpr std::uint16_t kTypeTlsa = 52;
inline constexpr std::uint16_t kClassIn = 1;

// RCODE values (RFC 1035 4.1.1).
inline constexpr std::uint8_t kNoError = 0;
inline constexpr std::uint8_t kFormErr = 1;
inline constexpr std::uint8_t kServFail = 2;
inline constexpr std::uint8_t kNxDomain = 3;

struct Header {
  std::uint16_t id = 0;
  bool qr = false;  // a response
  std::uint8_t opcode = 0;
  bool aa = false, tc = false, rd = false, ra = false;
  bool ad = false;  // authentic data (RFC 4035 3.2.3)
  bool cd = false;  // checking disabled (RFC 4035 3.2.2)
  std::uint8_t rcode = 0;
  std::uint16_t qdcount = 0, ancount = 0, nscount = 0, arcount = 0;
};

struct Question {
  std::string name;
  std::uint16_t type = 0;
  std::uint16_t klass = 0;
};

struct Record {
  std::string name;
  std::uint16_t type = 0;
  std::uint16_t klass = 0;
  std::uint32_t ttl = 0;
  std::size_t rdata_offset = 0;  // where the RDATA lies in the message
  std::size_t rdata_size = 0;
};

struct Message {
  Header header;
  std::vector<Question> questions;
  std::vector<Record> answers, authority, additional;
};

// Octets a message may hold records for at most: 65535 (a TCP message, RFC 1035 4.2.2). The
// section counts are checked against what the message can hold before anything is stored.
inline constexpr std::size_t kMaxMessage = 65535;

// The query for `name` (no trailing dot needed) and `type` in class IN: one question, RD set,
// AD set when `ad` (RFC 6840 5.7: a stub resolver asks for the AD bit that way). InvalidArgument
// for a name that is empty, has an empty label, a label over 63 octets or more than 255 octets
// in wire form (RFC 1035 2.3.4).
CMAIL_EXPORT Result<std::string> encode_query(std::string_view name, std::uint16_t type, std::uint16_t id,
                                              bool ad = true);

// The message in `wire`; InvalidArgument saying what is wrong (truncated, a bad pointer, a
// name too long, trailing octets are allowed and ignored).
CMAIL_EXPORT Result<Message> parse_message(std::string_view wire);

// A name at `offset` of `wire`, decompressed; `offset` moves past it (past the first pointer).
CMAIL_EXPORT Result<std::string> read_name(std::string_view wire, std::size_t& offset);

// ASCII case-insensitive equality of two names in the form above, trailing dots ignored.
CMAIL_EXPORT bool same_name(std::string_view a, std::string_view b);

// The records of `type` that answer `name` in the message `wire` parsed to `m`: those at
// `name`, or at the name its CNAME chain in the answer section leads to (RFC 1034 3.6.2; at
// most 16 links, a loop ends it).
struct Answer {
  DnsStatus status = DnsStatus::TempFail;
  std::vector<const Record*> records;  // point into the Message
  bool authenticated = false;          // the header's AD bit
  std::string error;                   // when status is not Ok
};
// The status, from the header: RCODE 3 NxDomain (RFC 1035 4.1.1), RCODE 0 with records of the
// type Ok, without them NoData; any other RCODE, a message that is not a response, or one
// whose question is not (name, type) TempFail.
CMAIL_EXPORT Answer answer_of(std::string_view wire, const Message& m, std::string_view name, std::uint16_t type);

// Typed RDATA of a record of `wire`; nullopt when the record is of another type or its RDATA
// is malformed (wrong length, a bad name).
CMAIL_EXPORT std::optional<MxRecord> mx_of(std::string_view wire, const Record& r);  // RFC 1035 3.3.9
CMAIL_EXPORT std::optional<std::string> cname_of(std::string_view wire, const Record& r);  // RFC 1035 3.3.1
// A or AAAA: the address as text ("192.0.2.1", "2001:db8::1"; RFC 5952 for IPv6).
CMAIL_EXPORT std::optional<std::string> address_of(std::string_view wire, const Record& r);
// TLSA (RFC 6698 2.1): three octets, then the association data (any length here; whether a
// record is usable is cmail/mail/dane.h's question).
CMAIL_EXPORT std::optional<TlsaRecord> tlsa_of(std::string_view wire, const Record& r);

}  // namespace cmail::mail::dns
