// cmail/smtp/client.h: one SMTP client conversation as a sans-I/O state machine.
//
// The same verbs as smtp::Server (cmail/proto/transport.h) plus job calls: send_mail(), quit().
// Built on the engine kernel, like the server, with the SASL client of cmail/proto/sasl.h.
// It greets with EHLO (HELO when EHLO is refused), takes STARTTLS when offered (forgetting the
// extensions and greeting again after the handshake, RFC 3207 4.2), authenticates with PLAIN
// (or LOGIN when PLAIN is not offered) when given credentials, pipelines MAIL, RCPT and DATA
// when the server offers PIPELINING (RFC 2920), sends the body with BDAT when it offers
// CHUNKING (RFC 3030) and otherwise dot-stuffs it (RFC 5321 4.5.2) with the shared codec,
// checks SIZE, 8BITMIME and SMTPUTF8 before sending, passes DSN parameters on, reports a
// result per recipient
// and per message, runs several transactions on one connection, and ends with QUIT.
// Results come out as ClientEvents (after OpenSMTPD's smtp_ready/smtp_status/smtp_done/
// smtp_failed callbacks).
//
// Thread-safety: none; one Client per connection, used by one thread.
#pragma once

#include <cmail/export.h>
#include <cmail/proto/conversation.h>
#include <cmail/proto/sasl.h>
#include <cmail/proto/transport.h>
#include <cmail/smtp/syntax.h>
#include <cmail/status.h>

#include <chrono>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

namespace cmail::smtp {

enum class TlsPolicy {
  None,           // never STARTTLS
  Opportunistic,  // STARTTLS when offered (the default for MX delivery)
  Required,       // fail unless TLS is (or becomes) active
};

struct ClientOptions {
  std::string helo_name = "localhost";
  TlsPolicy tls = TlsPolicy::Opportunistic;
  bool tls_active = false;  // implicit TLS: already inside TLS when the greeting comes
  std::optional<sasl::Credentials> auth;  // AUTH PLAIN or LOGIN (smart hosts); needs TLS unless allowed
  bool auth_without_tls = false;
  bool chunking = true;  // send the body with one BDAT ... LAST when CHUNKING is offered
  std::size_t max_reply_line = 4096;
  // RFC 5321 4.5.3.2 client timeouts.
  std::chrono::milliseconds greeting_timeout{std::chrono::minutes(5)};
  std::chrono::milliseconds command_timeout{std::chrono::minutes(5)};
  std::chrono::milliseconds data_block_timeout{std::chrono::minutes(3)};
  std::chrono::milliseconds data_end_timeout{std::chrono::minutes(10)};
};

// The extensions the server announced in its last EHLO reply.
struct Extensions {
  bool esmtp = false;
  bool pipelining = false, eightbitmime = false, smtputf8 = false, dsn = false, chunking = false,
       starttls = false, enhanced = false, binarymime = false, requiretls = false;
  std::optional<std::uint64_t> size;  // SIZE n (0 = no fixed limit)
  std::set<std::string> auth;         // mechanism names
};

struct Envelope {
  Path from;
  MailParams params;
  struct Recipient {
    Path to;
    RcptParams params;
  };
  std::vector<Recipient> recipients;
};

enum class FailKind {
  Connection,      // closed, timed out, TLS handshake failed
  Protocol,        // the server broke the protocol (bad reply syntax, unexpected reply)
  Implementation,  // a needed feature is missing: STARTTLS required, SMTPUTF8, 8BITMIME, SIZE
  Response,        // the server refused a step (greeting, EHLO/HELO, STARTTLS, AUTH)
};

namespace client_event {
struct Ready {};  // greeted (and TLS and AUTH done): send_mail() may be called
struct RcptResult {
  std::size_t index;  // into Envelope::recipients
  Reply reply;        // 2xx: accepted
};
struct MailResult {
  Reply reply;  // the final reply for the message (2xx: every accepted recipient delivered)
  std::vector<std::size_t> accepted;
};
struct Failed {
  FailKind kind;
  std::optional<Reply> reply;
  std::string reason;
  bool permanent() const { return reply ? reply->permanent() : kind == FailKind::Implementation; }
};
}  // namespace client_event

// Protocol results. The transport's events (StartTls, Close) come from next_event() alone.
using ClientEvent = std::variant<client_event::Ready, client_event::RcptResult,
                                 client_event::MailResult, client_event::Failed>;

// The engine verbs pending_output(), consume_output() and next_event() (the transport's events:
// StartTls and Close) come from the engine kernel (cmail/proto/conversation.h), which also keeps
// the STARTTLS contract for the server's 220 and what follows it.
class CMAIL_EXPORT Client : public proto::Conversation {
 public:
  explicit Client(const ClientOptions& options);

  void receive(std::string_view bytes);
  void receive_eof();
  // Protocol results, in order (poll after every call that feeds the engine).
  std::optional<ClientEvent> next_client_event();
  void tls_established(const TlsInfo& info);
  void timed_out();
  bool wants_read() const { return state_ != State::Closed && reading(); }
  std::chrono::milliseconds timeout() const;

  // Sends one message. `message` is the stored form (CRLF line ends, no dot-stuffing).
  // REQUIRES: Ready was reported since the last send_mail (else InvalidArgument). A message the
  // server cannot take (larger than its SIZE, needing SMTPUTF8 or 8BITMIME it lacks) is refused
  // at once with Unsupported and a reason, nothing is sent and the connection stays usable:
  // that is a permanent failure for those recipients. Results: one RcptResult per recipient,
  // then one MailResult, then Ready again.
  Status send_mail(Envelope envelope, std::string message);
  // Ends the session politely (QUIT, then Close).
  void quit();

  const Extensions& extensions() const { return ext_; }
  bool tls() const { return tls_; }

 private:
  enum class State { Greeting, Handshake, Ready, Transaction, Quitting, Closed };
  enum class Expect { Greeting, Ehlo, Helo, StartTls, Auth, Mail, Rcpt, Data, DataEnd, Bdat, Rset, Quit };

  void on_reply(const Reply& r);
  void on_ehlo(const Reply& r);
  void on_auth(const Reply& r);
  void send_line(std::string_view line);
  void greet();
  void after_ehlo();
  void fail(FailKind kind, std::optional<Reply> r, std::string reason);
  void finish_transaction(const Reply& r);
  void send_body();
  void send_rcpt(std::size_t i);
  void send_data();  // DATA, or the body in one BDAT chunk (RFC 3030 2)
  void start_auth();

  ClientOptions options_;
  State state_ = State::Greeting;
  Extensions ext_;
  bool tls_ = false;
  bool authenticated_ = false;
  std::optional<sasl::ClientExchange> sasl_;
  ReplyParser parser_;
  std::deque<Expect> expect_;
  std::deque<ClientEvent> events_;

  // The running transaction.
  Envelope env_;
  std::string message_;
  std::size_t rcpt_next_ = 0;  // index of the next RCPT reply
  std::vector<std::size_t> accepted_;
  bool mail_ok_ = false;
  bool data_sent_ = false;
  Reply mail_failure_;  // MAIL's refusal, when pipelined replies are still to come
  Reply last_refusal_;  // the last RCPT refusal (the result when nobody was accepted)
};

}  // namespace cmail::smtp
