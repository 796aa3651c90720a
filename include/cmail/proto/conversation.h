// cmail/proto/conversation.h: the engine kernel every protocol engine is built on.
//
// A Conversation is the part of an engine that is the same for SMTP (server and client), POP3
// and IMAP: the input buffer (a LineReader), the output buffer, the queue of transport events
// (StartTls, Close) and the rules that tie them together. A protocol engine derives from it,
// adds its command table and state, and so has the engine verbs of cmail/proto/transport.h:
// pending_output(), consume_output(), next_event() come from here; receive(), receive_eof(),
// tls_established(), timed_out(), wants_read() and timeout() are the engine's, written with
// the helpers below.
//
// The STARTTLS contract (RFC 3207 4.2, RFC 2595 4, RFC 9051 6.2.1), kept here for every
// engine: start_tls() queues StartTls holding every byte received after the command; bytes
// received later, until the transport takes the event with next_event(), are appended to that
// event's `trailing`; bytes received after it was taken are dropped (the transport must give
// them to TLS). None of them ever reaches the parser. finish_tls() (from tls_established())
// resumes parsing, now of decrypted bytes, with an empty input buffer; the engine then forgets
// what it learned before TLS (its own state, RFC 3207 4.2).
//
// Close: close() queues Close once and drops unparsed input; output queued before it is still
// sent. After it nothing more is parsed.
//
// Thread-safety: none; one engine per connection, used by one thread.
#pragma once

#include <cmail/export.h>
#include <cmail/proto/line_reader.h>
#include <cmail/proto/transport.h>
#include <cmail/status.h>

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

namespace cmail::proto {

class CMAIL_EXPORT Conversation {
 public:
  Conversation(const Conversation&) = delete;
  Conversation& operator=(const Conversation&) = delete;

  // Bytes to send; valid until the next non-const call.
  std::string_view pending_output() const { return std::string_view(out_).substr(out_pos_); }
  // `n` octets of pending_output() were sent.
  void consume_output(std::size_t n);
  // The transport's next event, in order, after the output queued before it.
  std::optional<Event> next_event();

  // Close was queued: nothing more will be parsed.
  bool closed() const { return closed_; }
  // A STARTTLS hand-off is in progress (queued or taken, handshake not finished).
  bool tls_pending() const { return tls_ != Tls::None; }

 protected:
  explicit Conversation(LineEnd line_end, std::size_t max_buffered_input);
  ~Conversation() = default;

  // Routes received bytes: true when they were added to the input for the parser; false when
  // the conversation is closed or a STARTTLS hand-off owns them (see the header comment).
  bool accept_input(std::string_view bytes);
  // Input may be read: not closed, no TLS hand-off, the input buffer not full.
  bool reading() const { return !closed_ && tls_ == Tls::None && !in_.full(); }

  // The next command line, or the next SASL response while `in_sasl`. Those, and lines that
  // start with "AUTH ", may be as long as `auth_limit` (RFC 4954 4, RFC 5034 4: they carry
  // base64 credentials); other lines `limit`. Both count the CRLF.
  LineReader::Result next_command_line(std::size_t limit, std::size_t auth_limit, bool in_sasl,
                                       std::string_view& line);

  void write(std::string_view bytes) { out_.append(bytes); }
  std::string& output() { return out_; }  // for engines that encode in place
  std::size_t output_size() const { return out_.size() - out_pos_; }

  // Queues StartTls with every unparsed byte as `trailing`.
  void start_tls();
  // The handshake asked for by start_tls() finished: true when one was in progress (the input
  // is then cleared and the engine must forget its session state), false for implicit TLS.
  bool finish_tls();
  // Queues Close (once) and drops unparsed input.
  void close();

  LineReader in_;

 private:
  enum class Tls { None, Queued, Taken };
  std::string out_;
  std::size_t out_pos_ = 0;
  std::deque<Event> events_;
  Tls tls_ = Tls::None;
  bool closed_ = false;
};

}  // namespace cmail::proto
