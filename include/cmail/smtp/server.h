// cmail/smtp/server.h: one SMTP server conversation as a sans-I/O state machine.
//
// RFC 5321 with PIPELINING (RFC 2920), SIZE (1870), 8BITMIME (6152), SMTPUTF8 (6531),
// ENHANCEDSTATUSCODES (2034, 3463) on every reply, CHUNKING/BINARYMIME (3030), DSN (3461),
// STARTTLS (3207) and AUTH (4954) with the SASL mechanisms of cmail/proto/sasl.h.
//
// Server does no I/O, reads no clock and knows no database: bytes go in through receive(),
// replies come out of pending_output(), and every decision (HELO, AUTH, MAIL, RCPT, end of
// data) is a call into the Session the embedder provides. A Session may answer at once or
// return Verdict::pending() and later call Server::complete(); while a verdict is pending the
// engine parses nothing further (pipelined input waits in the buffer) and replies leave in
// order. The engine enforces every protocol limit itself (ServerOptions).
//
// Thread-safety: none; one Server per connection, used by one thread.
// Ownership: REQUIRES the Session to outlive the Server. The Session must not call the Server
// from inside its own callbacks; it calls complete() later, from the owner's thread.
#pragma once

#include <cmail/export.h>
#include <cmail/proto/sasl.h>
#include <cmail/proto/transport.h>
#include <cmail/smtp/syntax.h>
#include <cmail/status.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::smtp {

// The transport's events and TLS facts (cmail/proto/transport.h), by this engine's names.
using proto::Close;
using proto::StartTls;
using proto::TlsInfo;
using Event = proto::Event;

struct ServerOptions {
  std::string hostname = "localhost";  // greeting, EHLO reply
  std::uint64_t max_message_size = 0;  // SIZE; 0 = no limit (advertised as "SIZE")
  std::size_t max_recipients = 100;    // RFC 5321 4.5.3.1.8: at least 100
  std::size_t max_command_line = 512;  // RFC 5321 4.5.3.1.4, CRLF included
  std::size_t max_auth_line = 12288;   // RFC 4954 4: AUTH lines may be longer
  std::size_t max_text_line = 1000;    // RFC 5321 4.5.3.1.6, CRLF included
  int max_hops = 100;                  // Received headers; RFC 5321 6.3 suggests >= 100
  int max_errors = 10;                 // then 421 and close
  int max_auth_failures = 3;           // then 421 and close
  bool starttls_available = false;     // a TLS context exists and TLS is not yet active
  bool tls_active = false;             // implicit TLS (tls_established() also sets it)
  bool auth_enabled = false;           // offer AUTH
  bool auth_requires_tls = true;       // offer AUTH only inside TLS (RFC 4954 4: PLAIN needs it)
  bool require_auth = false;           // MAIL before AUTH gets 530 (submission)
  // Pre-authenticated as this user from the start (cmail's auth=fixed@user listeners).
  std::optional<std::string> authenticated_user;
  bool chunking = true;
  bool dsn = true;
  std::chrono::milliseconds command_timeout{std::chrono::minutes(5)};  // RFC 5321 4.5.3.2.7
  std::chrono::milliseconds data_timeout{std::chrono::minutes(3)};     // 4.5.3.2.6 (per block)
};

// A Session's answer to one decision.
class CMAIL_EXPORT Verdict {
 public:
  static Verdict accept(std::string text = "OK") { return Verdict(Kind::Accept, {}, std::move(text)); }
  static Verdict reject(Reply r) { return Verdict(Kind::Reply, std::move(r), {}); }
  static Verdict pending() { return Verdict(Kind::Pending, {}, {}); }
  // A backend failure: becomes "451 4.3.0" and the Status goes to the logger, not the peer.
  static Verdict failed(Status st) {
    Verdict v(Kind::Failed, {}, {});
    v.status_ = std::move(st);
    return v;
  }
  enum class Kind { Accept, Reply, Pending, Failed };
  Kind kind() const { return kind_; }
  const Reply& reply() const { return reply_; }
  const std::string& text() const { return text_; }
  const Status& status() const { return status_; }

 private:
  Verdict(Kind k, Reply r, std::string t) : kind_(k), reply_(std::move(r)), text_(std::move(t)) {}
  Kind kind_;
  Reply reply_;
  std::string text_;
  Status status_;
};

// What the engine knows about the conversation, for Received headers and policy.
struct SessionInfo {
  std::string helo;           // the EHLO/HELO argument
  bool esmtp = false;
  bool tls = false;
  std::optional<TlsInfo> tls_info;
  std::optional<std::string> user;  // authenticated identity
  // RFC 3848 protocol keyword: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA.
  std::string protocol() const;
};

class CMAIL_EXPORT Session {
 public:
  virtual ~Session() = default;
  virtual Verdict helo(const SessionInfo&) { return Verdict::accept(); }
  // Verifies credentials; accept() = authenticated as creds.authcid (or as the text given).
  virtual Verdict auth(const SessionInfo&, const sasl::Credentials&) {
    return Verdict::reject(reply(535, {5, 7, 8}, "Authentication credentials invalid"));
  }
  virtual Verdict mail(const SessionInfo&, const Path& from, const MailParams& params) = 0;
  virtual Verdict rcpt(const SessionInfo&, const Path& to, const RcptParams& params) = 0;
  // The message, dot-unstuffed (DATA) or as sent (BDAT), in chunks, with CRLF line ends.
  virtual void data_chunk(std::string_view bytes) = 0;
  // The whole message arrived and passed the engine's checks; store it now.
  virtual Verdict data_end(const SessionInfo&) = 0;
  // The transaction ended without data_end (RSET, new EHLO, STARTTLS, rejected message, close).
  virtual void reset() {}
  // Diagnostics the embedder may log (never sent to the peer).
  virtual void log(std::string_view) {}
};

class CMAIL_EXPORT Server {
 public:
  enum class State {
    Initial,    // no EHLO/HELO yet
    Ready,      // greeted, no transaction
    Mail,       // MAIL accepted, no recipient yet
    Rcpt,       // at least one recipient accepted
    Data,       // reading DATA lines
    Bdat,       // reading a BDAT chunk
    Auth,       // SASL exchange in progress
    Closed,
  };

  Server(const ServerOptions& options, Session& session);  // queues the 220 greeting
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void receive(std::string_view bytes);
  void receive_eof();
  std::string_view pending_output() const { return std::string_view(out_).substr(out_pos_); }
  void consume_output(std::size_t n);
  std::optional<Event> next_event();
  void tls_established(const TlsInfo& info);
  void timed_out();  // queues 421 4.4.2 and Close
  bool wants_read() const;
  std::chrono::milliseconds timeout() const;

  // Answers the pending verdict. InvalidArgument if none is pending.
  Status complete(Verdict v);

  State state() const { return state_; }
  const SessionInfo& info() const { return info_; }

 private:
  void process();
  void observe(std::string_view bytes);  // header checks over the message stream
  bool process_line(std::string_view line);
  bool process_data();
  bool process_bdat();
  void finish_chunk(std::size_t chunk_size);
  void command(std::string_view line);
  void apply(const Verdict& v);
  void send(const Reply& r);
  void send(int code, EnhancedCode e, std::string text);
  void error(int code, EnhancedCode e, std::string text);
  void close_with(int code, EnhancedCode e, std::string text);
  void reset_transaction();
  void finish_data();
  void ehlo_reply(bool extended);
  void auth_result(const sasl::ServerExchange::Step& step);

  ServerOptions options_;
  Session& session_;
  SessionInfo info_;
  State state_ = State::Initial;
  std::string in_;       // received, not yet parsed
  std::size_t scan_ = 0;  // bytes of in_ already searched for a line end
  std::string out_;
  std::size_t out_pos_ = 0;
  std::deque<Event> events_;
  int errors_ = 0;
  int auth_failures_ = 0;

  // What the pending verdict is for, so complete() knows what to do with it.
  enum class Pending { None, Helo, Auth, Mail, Rcpt, DataEnd, Tls };
  Pending pending_ = Pending::None;
  bool pending_helo_extended_ = false;
  std::string pending_user_;  // authcid while the AUTH verdict is pending
  bool discarding_ = false;  // dropping the rest of an over-long command line

  // The transaction, reset as a unit.
  struct Transaction {
    bool has_mail = false;
    MailParams params;
    std::size_t recipients = 0;
    std::uint64_t size = 0;           // message octets so far
    bool too_big = false;
    bool line_too_long = false;
    bool in_header = true;
    int hops = 0;
    std::string line_start;           // the first bytes of the current line (header checks)
    bool data_at_line_start = true;   // DATA: the next byte starts a line
    std::optional<Reply> bdat_error;  // BDAT: the reply owed after the chunk is read
    bool bdat_used = false;
    std::uint64_t bdat_left = 0;
    std::uint64_t bdat_chunk = 0;     // size of the current chunk
    bool bdat_last = false;
  } txn_;
  std::unique_ptr<sasl::ServerExchange> sasl_;
  sasl::Mechanism sasl_mech_ = sasl::Mechanism::Plain;
  bool eof_ = false;
};

CMAIL_EXPORT const char* to_string(Server::State s);

}  // namespace cmail::smtp
