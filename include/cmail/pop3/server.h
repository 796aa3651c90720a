// cmail/pop3/server.h: one POP3 server conversation as a sans-I/O state machine.
//
// RFC 1939 (USER, PASS, STAT, LIST, RETR, DELE, NOOP, RSET, QUIT, TOP, UIDL; APOP is not
// offered), RFC 2449 (CAPA, RESP-CODES, PIPELINING, IMPLEMENTATION), RFC 3206 (the [SYS/TEMP],
// [SYS/PERM] and [AUTH] response codes, AUTH-RESP-CODE), RFC 2595 (STLS) and RFC 5034 (AUTH,
// with the SASL mechanisms of cmail/proto/sasl.h).
//
// Server does no I/O, reads no clock and knows no database: bytes go in through receive(),
// replies come out of pending_output(), and every decision (log in, fetch a message, apply
// the deletions) is a call into the Session the embedder provides. A Session may answer at
// once or return Verdict::pending() and later call Server::complete(); while a verdict is
// pending the engine parses nothing further (pipelined commands wait) and replies leave in
// order. A message is encoded for the wire as its output is consumed (about 64 KiB ahead of
// the transport), so a large message is held once, by the engine, as the Session gave it.
//
// The maildrop is what the Session's login verdict lists: message numbers 1..n index that
// list for the whole session (RFC 1939 5), DELE only marks, and the marked messages are given
// to Session::update() at QUIT in the TRANSACTION state (the UPDATE state, RFC 1939 6); a
// session that ends any other way deletes nothing.
//
// Thread-safety: none; one Server per connection, used by one thread.
// Ownership: REQUIRES the Session to outlive the Server. The Session must not call the Server
// from inside its callbacks; it calls complete() later, from the owner's thread. Callbacks run
// inside receive(), consume_output() and complete().
#pragma once

#include <cmail/export.h>
#include <cmail/proto/command.h>
#include <cmail/proto/conversation.h>
#include <cmail/proto/message.h>
#include <cmail/proto/sasl.h>
#include <cmail/proto/transport.h>
#include <cmail/proto/verdict.h>
#include <cmail/status.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::pop3 {

// The transport's events and TLS facts (cmail/proto/transport.h), by this engine's names.
using proto::Close;
using proto::StartTls;
using proto::TlsInfo;
using Event = proto::Event;

struct ServerOptions {
  std::string hostname = "localhost";      // in the greeting
  std::string implementation = "cmail";    // CAPA IMPLEMENTATION (RFC 2449 6.9)
  bool starttls_available = false;         // a TLS context exists: offer STLS (RFC 2595 4)
  bool tls_active = false;                 // implicit TLS (POP3S; tls_established() also sets it)
  bool tls_required = false;               // cmail's tlsrequire: USER, PASS, AUTH only inside TLS
  std::size_t max_command_line = 512;      // CRLF included; RFC 2449 4 asks clients for <= 255
  std::size_t max_auth_line = 12288;       // SASL responses (RFC 5034 4 sets no limit)
  // Unparsed input held while a verdict is pending (pipelined commands); then reading stops.
  std::size_t max_buffered_input = proto::LineReader::kDefaultMaxBuffered;
  int max_errors = 10;                     // failed commands, then -ERR and close
  int max_login_failures = 3;              // failed logins per connection, then -ERR and close
  // SCRAM-SHA-256[-PLUS] beside PLAIN and LOGIN (cmail/proto/scram.h); off by default: the
  // Session must implement scram_credentials() and scram_login().
  sasl::ScramOptions scram;
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(10)};  // RFC 1939 3: >= 10 min
};

// One message of the maildrop, as the Session lists it at login.
struct Listing {
  // Octets of the message as RETR sends it before dot-stuffing: cmail::proto::wire_size() of the
  // text the Session's retrieve() will give (RFC 1939 5: CRLF line ends).
  std::uint64_t size = 0;
  // RFC 1939 7: 1 to 70 characters from 0x21 to 0x7E, unique within the maildrop and never
  // given to another message of this maildrop.
  std::string uid;
};

// RFC 2449 8 / RFC 3206 response codes of an -ERR reply.
enum class RespCode { None, InUse, LoginDelay, SysTemp, SysPerm, Auth };
CMAIL_EXPORT std::string_view to_string(RespCode c);  // "IN-USE", ... ("" for None)

// A Session's answer to one decision.
// top_part() of a message that arrives in pieces: take() says how many octets of each piece
// belong to TOP's part; once done(), none of the rest does.
class CMAIL_EXPORT TopCut {
 public:
  explicit TopCut(std::uint64_t lines) : lines_(lines) {}
  std::size_t take(std::string_view piece);
  bool done() const { return done_; }

 private:
  void line_end();
  std::uint64_t lines_;       // body lines still wanted
  bool header_ = true;        // still in the header
  bool line_start_ = true;    // nothing of the current line seen yet
  bool after_cr_ = false;     // the last octet was a CR: a LF next belongs to that line end
  bool finishing_ = false;    // the part is complete but for a possible LF after its CR
  bool done_ = false;
};

class CMAIL_EXPORT Verdict : public proto::VerdictBase<Verdict> {
 public:
  // Login: the credentials are good, the client is now `identity` (the authorization identity:
  // an alias logs in as its target) and holds this maildrop; message number i+1 is listing[i].
  static Verdict maildrop(std::string identity, std::vector<Listing> listing);
  // Retrieve: the message as stored (the engine makes its line ends CRLF and dot-stuffs it).
  static Verdict message(std::string text);
  // Retrieve a large message: the engine reads it from `source` a piece at a time as its output
  // drains, so it is never held whole. A read error after the +OK closes the connection.
  static Verdict message(std::shared_ptr<proto::Source> source);
  // Update: the deletions are durable.
  static Verdict accept();
  // Sent as "-ERR [code] text".
  static Verdict reject(RespCode code, std::string text);

  RespCode code() const { return code_; }
  const std::string& text() const { return text_; }
  const std::string& identity() const { return identity_; }
  // Moves the payload out (the engine takes it over).
  std::vector<Listing> take_listing() { return std::move(listing_); }
  std::string take_text() { return std::move(text_); }
  std::shared_ptr<proto::Source> take_source() { return std::move(source_); }

 private:
  friend class proto::VerdictBase<Verdict>;
  explicit Verdict(Kind k) : VerdictBase(k) {}
  RespCode code_ = RespCode::None;
  std::string text_;
  std::string identity_;
  std::vector<Listing> listing_;
  std::shared_ptr<proto::Source> source_;
};

class CMAIL_EXPORT Session {
 public:
  virtual ~Session() = default;
  // USER/PASS (authzid empty) or AUTH. Answer Verdict::maildrop() once the maildrop is
  // locked for this session and listed; reject with RespCode::Auth for bad credentials,
  // InUse for a maildrop locked by another session (RFC 2449 8.1.1), SysTemp otherwise.
  virtual Verdict login(const sasl::Credentials& credentials) = 0;
  // SCRAM (ServerOptions::scram): the stored credentials of the user the client named, as
  // Verdict::scram(credentials), or Verdict::scram(nullopt) when it has none (the exchange then
  // fails at the proof, as for a wrong password). A rejection is the AUTH command's reply.
  virtual Verdict scram_credentials(const std::string& /*authcid*/) { return Verdict::scram(std::nullopt); }
  // SCRAM: the client's proof was checked. Decide as login() does: Verdict::maildrop() only
  // when result.proved and the user may log in as result.authzid (or itself).
  virtual Verdict scram_login(const sasl::ScramResult&) {
    return Verdict::reject(RespCode::Auth, "Authentication failed");
  }
  // RETR and TOP: the text of message `index` (0-based into the listing). Its wire_size()
  // must equal the listed size.
  virtual Verdict retrieve(std::size_t index) = 0;
  // QUIT in the TRANSACTION state: delete the messages with these indexes (ascending, maybe
  // none) durably and release the maildrop; accept() only after the commit. A reject or
  // failure must leave every message in place (RFC 1939 6: "-ERR some deleted messages not
  // removed").
  virtual Verdict update(const std::vector<std::size_t>& deleted) = 0;
  // Diagnostics the embedder may log (never sent to the peer).
  virtual void log(std::string_view) {}
};

class CMAIL_EXPORT Server : public proto::Conversation {
 public:
  enum class State {
    Authorization,  // RFC 1939 4 (after the greeting, after STLS)
    Sasl,           // an AUTH exchange waits for the client's response (RFC 5034 4)
    Transaction,    // logged in, the maildrop is ours (RFC 1939 5)
    Update,         // QUIT given; the deletions are being applied (RFC 1939 6)
    Closed,
  };

  Server(const ServerOptions& options, Session& session);  // queues the greeting
  ~Server();

  void receive(std::string_view bytes);
  void receive_eof();
  // Also encodes more of a RETR or TOP response as its output is taken.
  void consume_output(std::size_t n);
  void tls_established(const TlsInfo& info);
  void timed_out();  // queues -ERR and Close; nothing is deleted
  bool wants_read() const;
  std::chrono::milliseconds timeout() const { return options_.idle_timeout; }
  // A command line must arrive whole within idle_timeout of its first byte (proto::Deadline),
  // so a client sending a byte before every timeout is still closed.
  proto::Deadline deadline() const;

  // Answers the pending verdict. InvalidArgument if none is pending.
  Status complete(Verdict v);

  State state() const { return state_; }
  bool tls() const { return tls_; }
  // Who logged in (the identity of the login verdict); empty before.
  const std::string& user() const { return user_; }
  // The messages marked deleted so far (indexes into the listing).
  std::vector<std::size_t> deleted() const;

 private:
  using Command = proto::Command<Server, State>;
  static const std::array<Command, 15> kCommands;
  enum class Decision { Login, ScramLookup, Retrieve, Update };
  struct Sending {  // a RETR or TOP response being encoded as output is consumed
    std::string text;
    std::string_view part;  // what is sent: all of text, or TOP's prefix of it
    std::unique_ptr<proto::DotStuffer> stuffer;
    // Or the message read from a Source, TOP's part cut as it passes.
    std::shared_ptr<proto::Source> source;
    std::optional<TopCut> top;
    proto::DotEncoder encoder;
    std::string chunk;
  };

  void process();
  void command(std::string_view line);
  void sasl_step(const sasl::ServerAuth::Step& step);
  void start_login(const sasl::Credentials& creds);
  void apply(Verdict v);
  void fill();
  void ok(std::string_view text);
  void err(RespCode code, std::string_view text);
  void error(std::string_view text, RespCode code = RespCode::None);  // a failed command, counted
  void close_with(RespCode code, std::string_view text);
  bool login_allowed() const { return tls_ || !options_.tls_required; }
  std::string capabilities() const;
  // Parses "n" into a message index; sends the error itself and returns nullopt.
  std::optional<std::size_t> message_arg(std::string_view arg, bool deleted_ok = false);
  std::uint64_t total_size() const;
  std::size_t remaining() const;

  // The command table's handlers.
  void cmd_capa(std::string_view arg);
  void cmd_quit(std::string_view arg);
  void cmd_user(std::string_view arg);
  void cmd_pass(std::string_view arg);
  void cmd_auth(std::string_view arg);
  void cmd_stls(std::string_view arg);
  void cmd_apop(std::string_view arg);
  void cmd_stat(std::string_view arg);
  void cmd_list(std::string_view arg);
  void cmd_uidl(std::string_view arg);
  void cmd_retr(std::string_view arg);
  void cmd_top(std::string_view arg);
  void cmd_dele(std::string_view arg);
  void cmd_rset(std::string_view arg);
  void cmd_noop(std::string_view arg);
  void scan_listing(std::string_view arg, bool uidl);
  void retrieve(std::string_view number, std::optional<std::uint64_t> top);

  ServerOptions options_;
  Session& session_;
  State state_ = State::Authorization;
  bool tls_ = false;
  int errors_ = 0;
  int login_failures_ = 0;

  proto::Awaiting<Decision> awaiting_;
  std::optional<std::uint64_t> pending_top_;  // TOP's line count while a retrieve is pending
  std::size_t pending_index_ = 0;
  std::optional<std::string> user_given_;  // USER given, PASS awaited
  sasl::ServerAuth sasl_{"+ ", options_.scram};  // RFC 5034 4: "+" SP base64 challenge
  std::string user_;

  std::vector<Listing> listing_;
  std::vector<bool> deleted_;
  std::unique_ptr<Sending> sending_;
  std::uint64_t phase_ = 0;  // counts command lines taken (deadline())
};

CMAIL_EXPORT const char* to_string(Server::State s);

// TOP (RFC 1939 7): the part of a stored message that holds its header, the empty line after
// it and the first `lines` lines of the body. Line ends are CRLF, bare CR or bare LF.
CMAIL_EXPORT std::string_view top_part(std::string_view message, std::uint64_t lines);

}  // namespace cmail::pop3
