// cmail/smtp/syntax.h: the SMTP vocabulary shared by the server engine, the client engine and the
// queue: replies with enhanced status codes, paths, MAIL and RCPT parameters, and their one
// codec (parse and format pairs), RFC 5321 with RFC 1870 (SIZE), 6152 (8BITMIME), 3030
// (CHUNKING, BINARYMIME), 6531 (SMTPUTF8), 3461 (DSN), 2034/3463 (enhanced codes), 4954 (AUTH=).
//
// Thread-safety: value types and pure functions.
#pragma once

#include <cmail/export.h>
#include <cmail/proto/transport.h>
#include <cmail/status.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cmail::smtp {

// The transport's events and TLS facts (cmail/proto/transport.h), by the SMTP engines' names.
using proto::Close;
using proto::StartTls;
using proto::TlsInfo;
using Event = proto::Event;

// RFC 3463: class.subject.detail, e.g. 5.1.1.
struct EnhancedCode {
  int klass = 0, subject = 0, detail = 0;
  bool operator==(const EnhancedCode&) const = default;
  std::string to_string() const;
};

// One SMTP reply (RFC 5321 4.2), possibly multi-line.
struct Reply {
  int code = 0;
  std::optional<EnhancedCode> enhanced;
  std::vector<std::string> lines;  // text of each line, without code and enhanced code

  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500; }
  // "250-first\r\n250 last\r\n"; with the enhanced code after the code on every line.
  std::string format() const;
  // The last line as cmail logged it: "550 5.1.1 text".
  std::string summary() const;
};

CMAIL_EXPORT Reply reply(int code, EnhancedCode enhanced, std::string text);

// Accumulates reply lines (client side). Returns a Reply once its last line was given.
class CMAIL_EXPORT ReplyParser {
 public:
  // `line` without CRLF. Returns an error for a line that is not "DDD[ -]text".
  Result<std::optional<Reply>> feed(std::string_view line);
  // Forgets a partial multi-line reply (after STARTTLS).
  void reset() { partial_.reset(); }

 private:
  std::optional<Reply> partial_;
};

// A forward-path or reverse-path (RFC 5321 4.1.2). The null path "<>" has both parts empty.
struct Path {
  std::string local;   // the local part, unquoted (escapes resolved), UTF-8 kept intact
  std::string domain;  // a domain (A-labels or U-labels) or an address literal "[...]"

  bool null() const { return local.empty() && domain.empty(); }
  // "local@domain" as cmail stored and routed it (no quoting); "" for the null path.
  std::string address() const;
  // The inverse of address() and of to_wire(): split at the last '@' (a quoted local part may
  // hold one); a local part in quotes is unquoted.
  static Path from_address(std::string_view address);
  // The wire form between the angle brackets: quotes the local part when it is not a
  // Dot-string (RFC 5321 4.1.2).
  std::string to_wire() const;
  bool utf8() const;  // any octet >= 0x80 (needs SMTPUTF8, RFC 6531 3.2)
  bool operator==(const Path&) const = default;
};

enum class BodyType { SevenBit, EightBitMime, BinaryMime };

struct MailParams {
  std::optional<std::uint64_t> size;  // RFC 1870
  BodyType body = BodyType::SevenBit;  // RFC 6152, RFC 3030
  bool smtputf8 = false;               // RFC 6531
  std::optional<std::string> ret;      // RFC 3461 4.3: "FULL" or "HDRS"
  std::optional<std::string> envid;    // RFC 3461 4.4, xtext decoded
  std::optional<std::string> auth;     // RFC 4954 5, xtext decoded ("<>" allowed)
  bool requiretls = false;             // RFC 8689 3: REQUIRETLS, no value
  bool operator==(const MailParams&) const = default;
};

struct RcptParams {
  std::optional<std::string> notify;  // RFC 3461 4.1: "NEVER" or a list of SUCCESS,FAILURE,DELAY
  std::optional<std::string> orcpt;   // RFC 3461 4.2: "rfc822;addr", xtext decoded
  bool operator==(const RcptParams&) const = default;
};

// What may appear in paths and parameters (the listener's extensions).
struct SyntaxOptions {
  bool utf8 = true;  // accept UTF-8 in paths (SMTPUTF8 advertised)
  // RFC 5321 4.1.2 paths only: angle brackets, a domain (but <Postmaster>), no comments. Off, a
  // MAIL or RCPT argument may also be what the original cmail and Postfix's default
  // (smtpd_strict_rfc821_envelopes = no) take: an address without brackets, a display name
  // before `<...>`, RFC 5322 3.2.2 comments, a local part without a domain, dots anywhere in an
  // unquoted local part and backslash escapes outside quotes (docs/compatibility.md#routing-paths).
  // Either way the parameters are split off, never part of the path, and a domain must be a
  // valid domain or address literal. The server engine takes the liberal form unless the
  // listener says `strict`; parse_path and the client's side are always strict.
  bool strict = true;
};

// A parse failure carries the reply the server should give.
struct SyntaxError {
  Reply reply;
};

// Parses "<path> [params]" after "MAIL FROM:" (reverse path: "<>" allowed) or "RCPT TO:", as
// SyntaxOptions::strict says. Source routes are accepted and ignored (RFC 5321 4.1.2, 3.3).
struct MailCommand {
  Path path;
  MailParams params;
};
struct RcptCommand {
  Path path;
  RcptParams params;
};
CMAIL_EXPORT std::variant<MailCommand, SyntaxError> parse_mail_from(std::string_view arg,
                                                                    const SyntaxOptions& o = {});
CMAIL_EXPORT std::variant<RcptCommand, SyntaxError> parse_rcpt_to(std::string_view arg,
                                                                  const SyntaxOptions& o = {});
// Just the path, e.g. for tests and the queue ("<a@b>"), always strict; nullopt if invalid.
CMAIL_EXPORT std::optional<Path> parse_path(std::string_view text, bool allow_null,
                                            const SyntaxOptions& o = {});
// A domain or address literal as in EHLO (RFC 5321 4.1.1.1).
CMAIL_EXPORT bool valid_domain(std::string_view domain, bool utf8 = true);

// The client's side: " SIZE=123 BODY=8BITMIME ..." for the parameters the server supports.
CMAIL_EXPORT std::string format_mail_params(const MailParams& p);
CMAIL_EXPORT std::string format_rcpt_params(const RcptParams& p);

// RFC 3461 4: xtext.
CMAIL_EXPORT std::optional<std::string> xtext_decode(std::string_view s);
CMAIL_EXPORT std::string xtext_encode(std::string_view s);

}  // namespace cmail::smtp
