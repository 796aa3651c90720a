// cmail/mail/requiretls.h: REQUIRETLS and the TLS-Required header field (RFC 8689) as plain code.
//
// Intake records what the sender asked: MAIL FROM ... REQUIRETLS (the engine parses it,
// cmail/smtp/syntax.h) or, without it, "TLS-Required: No" in the message header, which
// HeaderScan finds in the message as it streams in. Delivery asks check_path() before it sends
// a REQUIRETLS message over a connection.
//
// Thread-safety: value types and pure functions; one HeaderScan per message.
#pragma once

#include <cmail/export.h>
#include <cmail/mail/delivery.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace cmail::mail::requiretls {

// Finds "TLS-Required: No" (RFC 8689 5) in the header section of a message fed in any split.
// Lines longer than `max_line` are skipped; the body is never looked at.
class CMAIL_EXPORT HeaderScan {
 public:
  explicit HeaderScan(std::size_t max_line = 4096) : max_line_(max_line) {}
  void feed(std::string_view bytes);
  bool header_done() const { return done_; }
  // The header asked that recipient TLS policies be ignored (RFC 8689 5).
  bool tls_optional() const { return optional_; }

 private:
  void field_done();
  std::size_t max_line_;
  std::string line_;   // the line being received
  std::string field_;  // the field being unfolded
  bool long_line_ = false, done_ = false, optional_ = false;
};

// What a connection gives a message, for RFC 8689 4.2.1.
struct Path {
  bool tls = false;         // TLS is active
  bool verified = false;    // the certificate was checked for the server's name (PKIX; DANE later)
  bool mx_secured = false;  // the host came from an MX lookup protected by MTA-STS enforce (or DNSSEC),
                            // or from no MX lookup at all (a handoff remote, an address literal)
};

// nullopt when a REQUIRETLS message may go over this path; else the permanent failure to
// record (RFC 8689 4.2.1: 5.7.10 without a verified TLS session to a secured host; the
// server's missing REQUIRETLS, 5.7.30, is the SMTP client's check).
CMAIL_EXPORT std::optional<Failure> check_path(const Path& path, std::string_view host);

}  // namespace cmail::mail::requiretls
