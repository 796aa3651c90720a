// cmail/proto/message.h: a stored message on the wire: line ends and dot-stuffing, the one codec
// shared by SMTP DATA (RFC 5321 4.5.2) and POP3 multi-line responses (RFC 1939 3).
//
// The wire form of a stored message is its text with every line end made CRLF (a bare CR or
// a bare LF becomes CRLF; cmail's legacy rows may hold them) and a final CRLF when the text
// does not end with a line end (cmail stored messages without one, docs/compatibility.md#database-stored-messages). wire_size() is
// the octet count of that form; it is what POP3 LIST, STAT and RETR report (RFC 1939 5) and
// what the store records as mailbox.mail_wiresize. DotStuffer produces the same form, with
// every line that starts with "." given a second one, followed by the "." terminator line;
// DotDecoder reads that form back (SMTP DATA on the server side).
//
// Thread-safety: pure functions; a WireSize, DotEncoder, DotStuffer or DotDecoder is used by one
// thread.
#pragma once

#include <cmail/export.h>
#include <cmail/proto/line_reader.h>
#include <cmail/status.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cmail::proto {

// Octets of the wire form (CRLF line ends, final CRLF), before dot-stuffing.
CMAIL_EXPORT std::uint64_t wire_size(std::string_view message);

// wire_size() of a message that arrives in pieces of any size (a CRLF may be split between
// two): add() each piece in order; total() == wire_size(concatenation of the pieces).
class CMAIL_EXPORT WireSize {
 public:
  void add(std::string_view piece);
  std::uint64_t total() const;

 private:
  std::uint64_t size_ = 0, cr_ = 0, lf_ = 0, pairs_ = 0;
  char last_ = 0;
};

// Dot-stuffs a message that arrives in pieces of any size (a stored message streamed out of
// the store): add() appends the wire form of each piece to `out`, finish() the final CRLF
// when the message lacks one and the "." terminator line.
class CMAIL_EXPORT DotEncoder {
 public:
  void add(std::string_view piece, std::string& out);
  void finish(std::string& out);

 private:
  bool line_start_ = true;  // the next octet starts a line
  bool after_cr_ = false;   // the last octet was a CR (a LF next completes that line end)
};

// Encodes one message held in memory a piece at a time, so that a large message needs no
// second copy. REQUIRES: `message` stays valid and unchanged while the DotStuffer is used.
class CMAIL_EXPORT DotStuffer {
 public:
  explicit DotStuffer(std::string_view message) : in_(message) {}
  // Appends the encoding of `budget` more input octets to `out` (nothing when budget is 0);
  // appends the terminator ".\r\n" after the last. Returns true while there is more to encode.
  bool encode(std::string& out, std::size_t budget);
  bool done() const { return done_; }

 private:
  std::string_view in_;
  std::size_t pos_ = 0;
  bool done_ = false;
  DotEncoder encoder_;
};

// A stored message read in pieces (from the store, or from memory), so that sending a large
// message never needs it whole: an engine asks for the next piece as its output drains.
// Thread-safety: used by one thread at a time; read() may block briefly (a local file or a
// database page read).
class CMAIL_EXPORT Source {
 public:
  virtual ~Source() = default;
  // Appends up to `max` (> 0) more octets to `out`; appends nothing once at the end. An error
  // means the rest cannot be read.
  virtual Status read(std::size_t max, std::string& out) = 0;
  // The octets it gives in all, when known beforehand.
  virtual std::optional<std::uint64_t> size() const { return std::nullopt; }
};

// Reads dot-stuffed data from an engine's input (RFC 5321 4.5.2, RFC 1939 3): removes the
// added dots, stops after the "." line, and yields the text in wire form: every line end CRLF,
// a bare CR or bare LF inside a line made CRLF too (only CRLF "." CRLF ends the data, so no
// other line end can be smuggled past it). A line longer than `max_line` octets (CRLF
// included; RFC 5321 4.5.3.1.6) is passed on in pieces as it arrives, so nothing is buffered
// without bound, and remembered in long_line().
class CMAIL_EXPORT DotDecoder {
 public:
  explicit DotDecoder(std::size_t max_line = 1000) : max_line_(max_line) {}

  enum class Progress {
    NeedMore,  // every complete line was taken; more input is needed
    Full,      // `out` reached `max_out`: hand it on and call again
    End,       // the "." line was read; the input after it is left in place
  };
  // Takes from `in` and appends decoded text to `out`.
  Progress decode(LineReader& in, std::string& out, std::size_t max_out);
  bool long_line() const { return long_line_; }

 private:
  std::size_t max_line_;
  bool at_line_start_ = true;
  bool long_line_ = false;
};

// The whole encoding at once (small messages): dot_stuffed("a\r\n.b") == "a\r\n..b\r\n.\r\n".
CMAIL_EXPORT std::string dot_stuffed(std::string_view message);

}  // namespace cmail::proto
