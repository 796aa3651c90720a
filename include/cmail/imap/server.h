// cmail/imap/server.h: one IMAP server conversation as a sans-I/O state machine.
//
// RFC 9051 (IMAP4rev2) and RFC 3501 (IMAP4rev1). This first part of the engine holds what
// every later command builds on: the command loop over the wire codec (cmail/imap/codec.h)
// with its literals, the states of RFC 9051 3, and the commands of the not-authenticated and
// any state: CAPABILITY, NOOP, LOGOUT (RFC 9051 6.1), STARTTLS, AUTHENTICATE, LOGIN (6.2),
// ENABLE (RFC 5161, RFC 9051 6.3.1), ID (RFC 2971) and NAMESPACE (RFC 2342, RFC 9051 6.3.10).
// The mailbox commands come with the mailbox store (docs/imap.md says what is there).
//
// Input: a command is a sequence of line pieces and literals (the codec's Parser). After a
// piece that announces a synchronizing literal "{N}" the engine sends "+ " and reads exactly N
// octets; "{N+}" (RFC 7888 LITERAL+) is read without it. A literal over max_literal is refused
// before its octets are asked for (tagged NO [TOOBIG], RFC 9051 7.1); its octets, when the
// client sends them anyway (non-synchronizing), are read and dropped, so the conversation
// stays in step. A command line piece over max_command_line is answered BAD and dropped to its
// end (RFC 9051 4: a server may set limits and answer BAD).
//
// Server does no I/O, reads no clock and knows no database: bytes go in through receive(),
// responses come out of pending_output(), and every decision is a call into the Session the
// embedder provides. A Session may answer at once or return Verdict::pending() and later call
// Server::complete(); while a verdict is pending nothing further is parsed (pipelined commands
// wait) and responses leave in order.
//
// Thread-safety: none; one Server per connection, used by one thread.
// Ownership: REQUIRES the Session to outlive the Server. The Session must not call the Server
// from inside its callbacks; it calls complete() later, from the owner's thread. Callbacks run
// inside receive() and complete().
#pragma once

#include <cmail/export.h>
#include <cmail/imap/codec.h>
#include <cmail/proto/conversation.h>
#include <cmail/proto/sasl.h>
#include <cmail/proto/transport.h>
#include <cmail/proto/verdict.h>
#include <cmail/status.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::imap {

using proto::Close;
using proto::StartTls;
using proto::TlsInfo;
using Event = proto::Event;

struct ServerOptions {
  std::string hostname = "localhost";    // in the greeting
  std::string implementation = "cmail";  // ID "name" (RFC 2971 3.3)
  bool starttls_available = false;       // a TLS context exists: offer STARTTLS (RFC 9051 6.2.1)
  bool tls_active = false;               // implicit TLS (IMAPS; tls_established() also sets it)
  bool tls_required = false;             // cmail's tlsrequire: LOGINDISABLED outside TLS
  // One line piece (the text between literals), CRLF included. RFC 9051 4 lets the server set
  // it; RFC 7162 4 asks for at least 8192 octets, UID sets make lines long.
  std::size_t max_command_line = 64 * 1024;
  std::size_t max_auth_line = 12288;  // SASL responses (RFC 9051 6.2.2 sets no limit)
  // Values, nesting and literal sizes (cmail/imap/codec.h). Literals are held by the parser,
  // so they are kept small; APPEND's message literal will stream instead.
  Limits limits{32, 10000, 8192, 1 << 20};
  // Unparsed input held while a verdict is pending (pipelined commands); then reading stops.
  std::size_t max_buffered_input = proto::LineReader::kDefaultMaxBuffered;
  int max_errors = 20;         // BAD responses, then BYE and close
  int max_login_failures = 3;  // failed log-ins per connection, then BYE and close
  // RFC 9051 5.4: the autologout timer is at least 30 minutes (IDLE included).
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(30)};
};

// Response codes of a tagged NO the Session chooses (RFC 9051 7.1, RFC 5530).
enum class RespCode {
  None, AuthenticationFailed, AuthorizationFailed, Unavailable, ContactAdmin, Limit,
  TryCreate, NonExistent, AlreadyExists, Cannot, HasChildren, InUse, NoPerm, OverQuota, ServerBug,
};

// One mailbox of the logged-in user, or a subscribed name, as the Session lists them. Names
// are UTF-8 with "/" as the hierarchy delimiter and "INBOX" in upper case; the engine converts
// them for IMAP4rev1 clients (modified UTF-7).
struct MailboxInfo {
  std::string name;
  std::string special_use;  // RFC 6154 2: "\\Sent", "\\Drafts", ...; empty for none
  bool exists = true;       // false: only subscribed (RFC 9051 6.3.7 allows that)
  bool subscribed = false;
};

// STATUS (RFC 9051 6.3.11, RFC 8438 STATUS=SIZE, RFC 7162 3.1.3 HIGHESTMODSEQ).
struct MailboxStatus {
  std::uint32_t messages = 0, recent = 0, uidnext = 1, uidvalidity = 0, unseen = 0, deleted = 0;
  std::uint64_t size = 0, highest_modseq = 0;
};
CMAIL_EXPORT std::string_view to_string(RespCode c);  // "AUTHENTICATIONFAILED", ... ("" for None)

// A Session's answer to one decision.
class CMAIL_EXPORT Verdict : public proto::VerdictBase<Verdict> {
 public:
  // Log-in: the credentials are good and the client is now `identity` (the authorization
  // identity: an alias logs in as its target).
  static Verdict user(std::string identity);
  // The command's change is done (CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE: durable).
  static Verdict accept();
  // LIST and LSUB: every mailbox of the user and every subscribed name, in any order.
  static Verdict mailboxes(std::vector<MailboxInfo> list);
  // STATUS.
  static Verdict counts(MailboxStatus counts);
  // Sent as "tag NO [code] text".
  static Verdict reject(RespCode code, std::string text);

  RespCode code() const { return code_; }
  const std::string& text() const { return text_; }
  std::vector<MailboxInfo> take_mailboxes() { return std::move(mailboxes_); }
  const MailboxStatus& counts() const { return counts_; }

 private:
  friend class proto::VerdictBase<Verdict>;
  explicit Verdict(Kind k) : VerdictBase(k) {}
  RespCode code_ = RespCode::None;
  std::string text_;  // reject: the text; user: the identity
  std::vector<MailboxInfo> mailboxes_;
  MailboxStatus counts_;
};

class CMAIL_EXPORT Session {
 public:
  virtual ~Session() = default;
  // LOGIN (authzid empty) or AUTHENTICATE. Verdict::user() on success; reject with
  // AuthenticationFailed for bad credentials, AuthorizationFailed for a user who may not use
  // IMAP, Unavailable for a temporary failure.
  virtual Verdict login(const sasl::Credentials& credentials) = 0;

  // The mailbox commands of the logged-in user. Names as in MailboxInfo. The defaults refuse
  // with [CANNOT] (an embedder that serves log-ins only).
  // LIST, LSUB: Verdict::mailboxes().
  virtual Verdict list_mailboxes();
  // STATUS: Verdict::counts(); NonExistent for an unknown mailbox.
  virtual Verdict status(const std::string& mailbox);
  // CREATE (RFC 9051 6.3.4): AlreadyExists when it does; parents are the Session's to create.
  virtual Verdict create(const std::string& mailbox);
  // DELETE (RFC 9051 6.3.5); never asked for INBOX.
  virtual Verdict remove(const std::string& mailbox);
  // RENAME (RFC 9051 6.3.6): children move with it; `from` INBOX moves its messages into a new
  // mailbox `to` and leaves INBOX empty. Never asked with `to` INBOX.
  virtual Verdict rename(const std::string& from, const std::string& to);
  // SUBSCRIBE / UNSUBSCRIBE (RFC 9051 6.3.7, 6.3.8).
  virtual Verdict subscribe(const std::string& mailbox, bool subscribed);
  // Diagnostics the embedder may log (never sent to the peer).
  virtual void log(std::string_view) {}
};

class CMAIL_EXPORT Server : public proto::Conversation {
 public:
  enum class State {
    NotAuthenticated,  // RFC 9051 3.1
    Authenticated,     // RFC 9051 3.2
    Selected,          // RFC 9051 3.3
    Logout,            // RFC 9051 3.4: BYE sent, closing
  };

  Server(const ServerOptions& options, Session& session);  // queues the greeting
  ~Server();

  void receive(std::string_view bytes);
  void receive_eof();
  void tls_established(const TlsInfo& info);
  void timed_out();  // RFC 9051 5.4: BYE Autologout, then Close
  bool wants_read() const;
  std::chrono::milliseconds timeout() const { return options_.idle_timeout; }
  // A command (its pieces and literals) must arrive whole within idle_timeout of its first
  // byte (proto::Deadline), so a client sending a byte before every timeout is still closed.
  proto::Deadline deadline() const;

  // Answers the pending verdict. InvalidArgument if none is pending.
  Status complete(Verdict v);

  State state() const { return state_; }
  bool tls() const { return tls_; }
  const std::string& user() const { return user_; }  // who logged in; empty before
  // What ENABLE turned on (RFC 5161): IMAP4rev2 replies follow RFC 9051 only; UTF8=ACCEPT
  // (RFC 6855) takes and sends UTF-8 in quoted strings; CONDSTORE (RFC 7162 3.1).
  bool rev2() const { return rev2_; }
  bool utf8() const { return utf8_; }
  bool condstore() const { return condstore_; }

 private:
  enum class Decision { Login, List, Status, Change };
  // LIST or LSUB waiting for the mailboxes (RFC 9051 6.3.9, RFC 5258, RFC 3501 6.3.9).
  struct ListRequest {
    bool lsub = false;
    bool extended = false;          // LIST-EXTENDED syntax was used (RFC 5258 3)
    bool select_subscribed = false, select_special_use = false, recursive = false;
    bool return_subscribed = false;
    std::vector<std::string> patterns;  // reference + pattern, UTF-8
    bool root_only = false;             // LIST "" "": the delimiter (RFC 9051 6.3.9)
  };
  enum class Input {
    Line,          // the next line piece
    Literal,       // the octets of an announced literal, into the parser
    DropLiteral,   // the octets of a refused literal, read and dropped
    DropLine,      // the rest of a refused command, up to its end
    Sasl,          // the client's response to an AUTHENTICATE challenge
  };
  using Values = std::vector<Value>;

  void process();
  void take_piece(std::string_view piece);
  void take_literal();
  void refuse(std::string_view piece, std::string text, bool too_big);
  void command(Values values);
  void sasl_step(const sasl::ServerAuth::Step& step);
  void start_login(const std::string& tag, const sasl::Credentials& creds);
  void apply(Verdict v);
  void reset_parser();

  void untagged(std::string_view text);
  void tagged(std::string_view tag, std::string_view status, std::string_view text);
  void bad(std::string_view tag, std::string_view text);  // counted; closes after max_errors
  void bye_and_close(std::string_view text);
  std::string capabilities() const;
  bool login_allowed() const { return tls_ || !options_.tls_required; }

  void cmd_capability(const std::string& tag, const Values& args);
  void cmd_noop(const std::string& tag, const Values& args);
  void cmd_logout(const std::string& tag, const Values& args);
  void cmd_starttls(const std::string& tag, const Values& args);
  void cmd_login(const std::string& tag, const Values& args);
  void cmd_authenticate(const std::string& tag, const Values& args);
  void cmd_enable(const std::string& tag, const Values& args);
  void cmd_id(const std::string& tag, const Values& args);
  void cmd_namespace(const std::string& tag, const Values& args);
  void cmd_list(const std::string& tag, const Values& args);
  void cmd_lsub(const std::string& tag, const Values& args);
  void cmd_status(const std::string& tag, const Values& args);
  void cmd_create(const std::string& tag, const Values& args);
  void cmd_delete(const std::string& tag, const Values& args);
  void cmd_rename(const std::string& tag, const Values& args);
  void cmd_subscribe(const std::string& tag, const Values& args);
  void cmd_unsubscribe(const std::string& tag, const Values& args);
  void list_or_lsub(const std::string& tag, const Values& args, bool lsub);
  void subscription(const std::string& tag, const Values& args, bool on);
  void send_list(std::vector<MailboxInfo> mailboxes);
  void send_status(const MailboxStatus& st);
  void ask(Decision d, const std::string& tag, std::string done_text, Verdict v);
  void change_done(Verdict v);
  void refused(const std::string& tag, const Verdict& v);

  // A mailbox name from the wire (modified UTF-7 for IMAP4rev1 clients), as UTF-8 with INBOX
  // in upper case; nullopt when it is not one.
  std::optional<std::string> mailbox_name(const Value& v) const;
  // A name (UTF-8) for the wire.
  std::string encode_mailbox(const std::string& name) const;

  struct Command {
    std::string_view name;
    bool not_authenticated, authenticated, selected;
    void (Server::*run)(const std::string& tag, const Values& args);
  };
  static const Command kCommands[];

  ServerOptions options_;
  Session& session_;
  State state_ = State::NotAuthenticated;
  bool tls_ = false;
  bool rev2_ = false, utf8_ = false, condstore_ = false;
  int errors_ = 0;
  int login_failures_ = 0;

  Parser parser_;
  Input input_ = Input::Line;
  std::uint64_t drop_remaining_ = 0;  // DropLiteral: octets still to drop
  std::string refused_tag_;           // the tag of a command being dropped
  std::string refused_text_;          // its tagged response, sent once it is dropped
  bool refused_too_big_ = false;
  bool mid_command_ = false;          // part of a command has been taken (deadline())

  proto::Awaiting<Decision> awaiting_;
  std::string pending_tag_;
  std::string pending_done_;  // the tagged OK's text once the pending change is done
  ListRequest list_;
  std::string status_name_;                 // STATUS: the mailbox, as the client named it
  std::vector<std::string> status_items_;   // STATUS: the items asked for, upper case
  sasl::ServerAuth sasl_{"+ "};  // RFC 9051 6.2.2: "+" SP base64 challenge
  std::string sasl_tag_;
  std::string user_;
  std::uint64_t phase_ = 0;  // counts commands taken (deadline())
};

CMAIL_EXPORT const char* to_string(Server::State s);

}  // namespace cmail::imap
