// cmail/proto/message.h: a stored message on the wire: line ends and dot-stuffing, the one codec
// shared by SMTP DATA (RFC 5321 4.5.2) and POP3 multi-line responses (RFC 1939 3).
//
// The wire form of a stored message is its text with every line end made CRLF (a bare CR or
// a bare LF becomes CRLF; cmail's legacy rows may hold them) and a final CRLF when the text
// does not end with a line end (cmail stored messages without one, spec 3.3). wire_size() is
// the octet count of that form; it is what POP3 LIST, STAT and RETR report (RFC 1939 5) and
// what the store records as mailbox.mail_wiresize. DotStuffer produces the same form, with
// every line that starts with "." given a second one, followed by the "." terminator line.
//
// Thread-safety: pure functions; a DotStuffer is used by one thread.
#pragma once

#include <cmail/export.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace cmail::proto {

// Octets of the wire form (CRLF line ends, final CRLF), before dot-stuffing.
CMAIL_EXPORT std::uint64_t wire_size(std::string_view message);

// Encodes one message a piece at a time, so that a large message needs no second copy.
// REQUIRES: `message` stays valid and unchanged while the DotStuffer is used.
class CMAIL_EXPORT DotStuffer {
 public:
  explicit DotStuffer(std::string_view message) : in_(message) {}
  // Appends the encoding of about `budget` more input octets (at least one line end's worth
  // when budget > 0) to `out`; appends the terminator ".\r\n" after the last. Returns true
  // while there is more to encode.
  bool encode(std::string& out, std::size_t budget);
  bool done() const { return done_; }

 private:
  std::string_view in_;
  std::size_t pos_ = 0;
  bool done_ = false;
};

// The whole encoding at once (small messages): dot_stuffed("a\r\n.b") == "a\r\n..b\r\n.\r\n".
CMAIL_EXPORT std::string dot_stuffed(std::string_view message);

}  // namespace cmail::proto
