// cmail/smtp/server.h: one SMTP server conversation as a sans-I/O state machine.
//
// RFC 5321 with PIPELINING (RFC 2920), SIZE (1870), 8BITMIME (6152), SMTPUTF8 (6531),
// ENHANCEDSTATUSCODES (2034, 3463) on every reply, CHUNKING/BINARYMIME (3030), DSN (3461),
// STARTTLS (3207), REQUIRETLS (8689) and AUTH (4954) with the SASL mechanisms of cmail/proto/sasl.h.
//
// Server does no I/O, reads no clock and knows no database: bytes go in through receive(),
// replies come out of pending_output(), and every decision (HELO, AUTH, MAIL, RCPT, end of
// data) is a call into the Session the embedder provides. A Session may answer at once or
// return Verdict::pending() and later call Server::complete(); while a verdict is pending the
// engine parses nothing further (pipelined input waits in the buffer, up to
// max_buffered_input, then wants_read() is false) and replies leave in order. The engine
// enforces every protocol limit itself (ServerOptions); the message is streamed to the
// Session, never held by the engine. It is built on the engine kernel (cmail/proto/
// conversation.h), which also keeps the STARTTLS contract.
//
// Thread-safety: none; one Server per connection, used by one thread.
// Ownership: REQUIRES the Session to outlive the Server. The Session must not call the Server
// from inside its own callbacks; it calls complete() later, from the owner's thread.
#pragma once

#include <cmail/export.h>
#include <cmail/proto/command.h>
#include <cmail/proto/conversation.h>
#include <cmail/proto/message.h>
#include <cmail/proto/sasl.h>
#include <cmail/proto/transport.h>
#include <cmail/proto/verdict.h>
#include <cmail/smtp/syntax.h>
#include <cmail/status.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cmail::smtp {

struct ServerOptions {
  std::string hostname = "localhost";  // greeting, EHLO reply
  // SIZE (RFC 1870): the largest message taken, advertised. 0 = no fixed limit, which leaves
  // the Session to bound what it stores; the default is a limit.
  std::uint64_t max_message_size = 50 * 1024 * 1024;
  std::size_t max_recipients = 100;    // RFC 5321 4.5.3.1.8: at least 100
  std::size_t max_command_line = 512;  // RFC 5321 4.5.3.1.4, CRLF included
  std::size_t max_auth_line = 12288;   // RFC 4954 4: AUTH lines may be longer
  std::size_t max_text_line = 1000;    // RFC 5321 4.5.3.1.6, CRLF included
  // Unparsed input held while a verdict is pending (pipelined commands); then reading stops.
  std::size_t max_buffered_input = proto::LineReader::kDefaultMaxBuffered;
  int max_hops = 100;                  // Received headers; RFC 5321 6.3 suggests >= 100
  int max_errors = 10;                 // then 421 and close
  int max_auth_failures = 3;           // then 421 and close
  bool starttls_available = false;     // a TLS context exists and TLS is not yet active
  bool tls_active = false;             // implicit TLS (tls_established() also sets it)
  bool auth_enabled = false;           // offer AUTH
  bool auth_requires_tls = true;       // offer AUTH only inside TLS (RFC 4954 4: PLAIN needs it)
  bool require_auth = false;           // MAIL before AUTH gets 530 (submission)
  // SCRAM-SHA-256[-PLUS] beside PLAIN and LOGIN (cmail/proto/scram.h); off by default: the
  // Session must implement scram_credentials() and scram_auth().
  sasl::ScramOptions scram;
  // Pre-authenticated as this user from the start (cmail's auth=fixed@user listeners).
  std::optional<std::string> authenticated_user;
  bool chunking = true;
  bool dsn = true;
  // RFC 8689: REQUIRETLS offered on TLS connections; MAIL FROM ... REQUIRETLS without TLS is
  // refused with 530 5.7.10. The Session records it (MailParams::requiretls).
  bool requiretls = true;
  // MAIL and RCPT take RFC 5321 paths only (SyntaxOptions::strict); off, also the liberal
  // forms cmail and Postfix accept by default: `RCPT TO:a@b`, `<test>`, comments, names.
  bool strict_envelopes = false;
  std::chrono::milliseconds command_timeout{std::chrono::minutes(5)};  // RFC 5321 4.5.3.2.7
  std::chrono::milliseconds data_timeout{std::chrono::minutes(3)};     // 4.5.3.2.6 (per block)
  // Deadlines (deadline()): a command line must arrive whole within command_timeout of its
  // first byte; DATA, and each BDAT chunk, within data_timeout plus one second for every
  // min_data_rate octets received (Postfix's smtpd_min_data_rate). 0 = data_timeout alone.
  std::uint32_t min_data_rate = 500;
};

// A Session's answer to one decision.
class CMAIL_EXPORT Verdict : public proto::VerdictBase<Verdict> {
 public:
  // Accepted; `text` ends the positive reply ("250 2.1.0 text").
  static Verdict accept(std::string text = "OK") {
    Verdict v(Kind::Accept);
    v.text_ = std::move(text);
    return v;
  }
  // AUTH: the credentials are good and the client is now `identity` (the authorization
  // identity, which may differ from the name it logged in with: an alias). The only accepting
  // answer to Session::auth().
  static Verdict authenticated(std::string identity) {
    Verdict v(Kind::Accept);
    v.identity_ = std::move(identity);
    return v;
  }
  // Refused with this reply, sent as given. A 421 closes the connection after it (RFC 5321
  // 3.8: the server is closing the transmission channel).
  static Verdict reject(Reply r) {
    Verdict v(Kind::Reject);
    v.reply_ = std::move(r);
    return v;
  }
  // Refused by closing the connection at once, with no reply: what a client meets when a
  // server crashes or a network drops it (fault injection in test harnesses). Any open
  // transaction is reset; nothing queued behind the command is read.
  static Verdict disconnect() {
    Verdict v(Kind::Reject);
    v.disconnect_ = true;
    return v;
  }
  const Reply& reply() const { return reply_; }
  bool disconnects() const { return disconnect_; }
  const std::string& text() const { return text_; }
  const std::optional<std::string>& identity() const { return identity_; }

 private:
  friend class proto::VerdictBase<Verdict>;
  explicit Verdict(Kind k) : VerdictBase(k) {}
  Reply reply_;
  std::string text_ = "OK";
  std::optional<std::string> identity_;
  bool disconnect_ = false;
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
  // Verifies credentials: Verdict::authenticated(identity) when they are good.
  virtual Verdict auth(const SessionInfo&, const sasl::Credentials&) {
    return Verdict::reject(reply(535, {5, 7, 8}, "Authentication credentials invalid"));
  }
  // SCRAM (ServerOptions::scram): the stored credentials of the user the client named, as
  // Verdict::scram(credentials), or Verdict::scram(nullopt) when it has none (the exchange then
  // fails at the proof, as for a wrong password). A rejection is the AUTH command's reply.
  virtual Verdict scram_credentials(const SessionInfo&, const std::string& /*authcid*/) {
    return Verdict::scram(std::nullopt);
  }
  // SCRAM: the client's proof was checked. Decide as auth() does: Verdict::authenticated() only
  // when result.proved and the user may log in as result.authzid (or itself); a rejection counts
  // as a failed authentication.
  virtual Verdict scram_auth(const SessionInfo&, const sasl::ScramResult&) {
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

class CMAIL_EXPORT Server : public proto::Conversation {
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

  void receive(std::string_view bytes);
  void receive_eof();
  void tls_established(const TlsInfo& info);
  void timed_out();  // queues 421 4.4.2 and Close
  bool wants_read() const;
  std::chrono::milliseconds timeout() const;
  // The bound on the current command line or DATA/BDAT phase as a whole (proto::Deadline).
  proto::Deadline deadline() const;

  // Answers the pending verdict. InvalidArgument if none is pending.
  Status complete(Verdict v);

  State state() const { return state_; }
  const SessionInfo& info() const { return info_; }
  // Messages accepted so far on this connection (a 250 after DATA or the last BDAT).
  std::uint64_t messages() const { return messages_; }

 private:
  using Command = proto::Command<Server, State>;
  static const std::array<Command, 14> kCommands;
  enum class Decision { Helo, Auth, ScramLookup, Mail, Rcpt, DataEnd };

  void process();
  bool next_command();
  void command(std::string_view line);
  void read_data();
  void read_bdat();
  void observe(std::string_view bytes);  // header checks over the message stream
  void stream(std::string_view bytes);   // size accounting, then to the Session
  void finish_chunk();
  void finish_data();
  void apply(const Verdict& v);
  void send(const Reply& r);
  void send(int code, EnhancedCode e, std::string_view text);
  void error(int code, EnhancedCode e, std::string_view text);
  void close_with(int code, EnhancedCode e, std::string_view text);
  void end_transaction();
  void auth_step(const sasl::ServerAuth::Step& step);
  void auth_failed();
  State greeted_state() const;
  SyntaxOptions syntax() const { return {.utf8 = true, .strict = options_.strict_envelopes}; }

  // The command table's handlers.
  void cmd_ehlo(std::string_view arg);
  void cmd_helo(std::string_view arg);
  void cmd_mail(std::string_view arg);
  void cmd_rcpt(std::string_view arg);
  void cmd_data(std::string_view arg);
  void cmd_bdat(std::string_view arg);
  void cmd_rset(std::string_view arg);
  void cmd_noop(std::string_view arg);
  void cmd_quit(std::string_view arg);
  void cmd_vrfy(std::string_view arg);
  void cmd_expn(std::string_view arg);
  void cmd_help(std::string_view arg);
  void cmd_starttls(std::string_view arg);
  void cmd_auth(std::string_view arg);
  void greet(std::string_view arg, bool extended);
  void ehlo_reply(bool extended);

  ServerOptions options_;
  Session& session_;
  SessionInfo info_;
  State state_ = State::Initial;
  int errors_ = 0;
  int auth_failures_ = 0;
  proto::Awaiting<Decision> awaiting_;
  bool helo_extended_ = false;  // while the HELO/EHLO verdict is pending
  sasl::ServerAuth sasl_;  // RFC 4954 4: "334" SP base64 challenge

  // The transaction, reset as a unit.
  struct Transaction {
    bool has_mail = false;
    MailParams params;
    std::size_t recipients = 0;
    std::uint64_t size = 0;           // message octets so far
    bool too_big = false;
    bool nul = false;                 // a NUL octet outside BODY=BINARYMIME
    bool in_header = true;
    int hops = 0;
    std::string line_start;           // the first bytes of the current line (header checks)
    proto::DotDecoder data{1000};     // DATA: the dot-stuffing decoder (set up by DATA)
    std::optional<Reply> bdat_error;  // BDAT: the reply owed after the chunk is read
    bool bdat_used = false;
    std::uint64_t bdat_left = 0;
    std::uint64_t bdat_chunk = 0;     // size of the current chunk
    bool bdat_last = false;
  } txn_;
  std::string chunk_;  // decoded DATA on its way to the Session
  std::uint64_t phase_ = 0;  // counts command lines taken (deadline())
  std::uint64_t messages_ = 0;
};

CMAIL_EXPORT const char* to_string(Server::State s);

}  // namespace cmail::smtp
