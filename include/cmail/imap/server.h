// cmail/imap/server.h: one IMAP server conversation as a sans-I/O state machine.
//
// RFC 9051 (IMAP4rev2) and RFC 3501 (IMAP4rev1). The engine holds the command loop over the
// wire codec (cmail/imap/codec.h) with its literals, the states of RFC 9051 3, the commands of
// the not-authenticated and any state: CAPABILITY, NOOP, LOGOUT (RFC 9051 6.1), STARTTLS,
// AUTHENTICATE, LOGIN (6.2), ENABLE (RFC 5161, RFC 9051 6.3.1), ID (RFC 2971), the mailbox
// commands of the authenticated state (6.3), and the selected state (6.4): the view of the
// selected mailbox (its messages by sequence number), SELECT and EXAMINE, CLOSE, UNSELECT
// (RFC 3691), EXPUNGE and UID EXPUNGE (RFC 4315), STORE (with CONDSTORE's UNCHANGEDSINCE,
// RFC 7162), COPY and MOVE (RFC 6851) with COPYUID, APPEND streamed with APPENDUID, IDLE
// (RFC 2177) and the untagged EXISTS, EXPUNGE and FETCH of changes made elsewhere. Extensions
// of those commands: LIST-EXTENDED (RFC 5258) with LIST-STATUS (RFC 5819), CREATE-SPECIAL-USE
// (RFC 6154 3), UTF8=ACCEPT (RFC 6855: UTF-8 names, APPEND's UTF8 data, no SEARCH CHARSET).
// docs/imap.md says what is there and what is missing.
//
// Input: a command is a sequence of line pieces and literals (the codec's Parser). After a
// piece that announces a synchronizing literal "{N}" the engine sends "+ " and reads exactly N
// octets; "{N+}" (RFC 7888 LITERAL+, or LITERAL- up to 4096 octets with
// ServerOptions::literal_minus) is read without it. A literal over max_literal is refused
// before its octets are asked for (tagged BAD [TOOBIG], RFC 7888 4); its octets, when the
// client sends them anyway (non-synchronizing), are read and dropped, so the conversation
// stays in step. A command line piece over max_command_line is answered BAD and dropped to its
// end (RFC 9051 4: a server may set limits and answer BAD). The message literal of APPEND is
// not held: once the text before it parsed, Session::append_begin() decides, and its octets go
// to append_chunk() as they arrive (up to max_append octets, RFC 7889 APPENDLIMIT).
//
// The view (RFC 9051 2.3.1.2): the engine keeps the UIDs of the selected mailbox in sequence
// order; sequence numbers in commands resolve against it. Changes made by other sessions or
// processes come from Session::changes() at the points where the engine may report them: NOOP,
// CHECK, IDLE, and the end of every command in the selected state once the embedder called
// mailbox_changed() (or the session itself changed the mailbox). RFC 9051 7.5.1: an expunge
// is not reported while FETCH, STORE or SEARCH (not their UID forms) is answered, nor when no
// command is in progress; the message then keeps its sequence number until a command that
// may report it.
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
// inside receive(), complete() and mailbox_changed().
#pragma once

#include <cmail/export.h>
#include <cmail/imap/codec.h>
#include <cmail/imap/fetch.h>
#include <cmail/imap/flags.h>
#include <cmail/imap/search.h>
#include <cmail/mail/structure.h>
#include <cmail/proto/conversation.h>
#include <cmail/proto/message.h>
#include <cmail/proto/sasl.h>
#include <cmail/proto/transport.h>
#include <cmail/proto/verdict.h>
#include <cmail/status.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
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
  // RFC 7888 5: a server advertises LITERAL+ or LITERAL-, not both; LITERAL+ allows all that
  // LITERAL- does. false (the default): LITERAL+, a "{N+}" up to limits.max_literal (APPEND's
  // message up to max_append). true: LITERAL- (RFC 7888 4), a "{N+}" over 4096 octets is
  // refused with a tagged BAD [TOOBIG] and its octets are read and dropped.
  bool literal_minus = false;
  // The largest message APPEND takes (RFC 7889 APPENDLIMIT, advertised); it streams to the
  // Session and is never held by the engine.
  std::uint64_t max_append = 64ull << 20;
  // Unparsed input held while a verdict is pending (pipelined commands); then reading stops.
  std::size_t max_buffered_input = proto::LineReader::kDefaultMaxBuffered;
  int max_errors = 20;         // BAD responses, then BYE and close
  int max_login_failures = 3;  // failed log-ins per connection, then BYE and close
  // SCRAM-SHA-256[-PLUS] beside PLAIN and LOGIN (cmail/proto/scram.h); off by default: the
  // Session must implement scram_credentials() and scram_login().
  sasl::ScramOptions scram;
  // RFC 9051 5.4: the autologout timer is at least 30 minutes (IDLE included).
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(30)};
};

// Response codes of a tagged NO the Session chooses (RFC 9051 7.1, RFC 5530).
enum class RespCode {
  None, AuthenticationFailed, AuthorizationFailed, Unavailable, ContactAdmin, Limit,
  TryCreate, NonExistent, AlreadyExists, Cannot, HasChildren, InUse, NoPerm, OverQuota, ServerBug,
  UseAttr,  // RFC 6154 3: CREATE with a special use that cannot be given to the mailbox
};

// One message of the selected mailbox as the Session reports it.
struct MessageState {
  std::uint32_t uid = 0;
  Flags flags;
  std::uint64_t modseq = 0;  // RFC 7162; 0 when the Session does not keep them
  bool operator==(const MessageState&) const = default;
};

// SELECT and EXAMINE (RFC 9051 6.3.2, 6.3.3).
struct SelectResult {
  std::uint32_t uidvalidity = 0, uidnext = 1;
  std::uint64_t highest_modseq = 0;  // 0: the mailbox has no modseqs (NOMODSEQ, RFC 7162 3.1.2.2)
  std::vector<MessageState> messages;  // every message, in UID order
  std::vector<std::string> keywords;   // the keywords defined in the mailbox (FLAGS)
  bool read_only = false;              // the Session may make a SELECT read-only
};

// What changed in the selected mailbox since `since` (Session::changes()).
struct MailboxChanges {
  std::uint32_t uidnext = 1;
  std::uint64_t highest_modseq = 0;
  // Messages added or changed since then (new ones have UIDs the view does not hold), in UID
  // order, with their current flags.
  std::vector<MessageState> messages;
  std::vector<std::uint32_t> expunged;  // UIDs expunged since then
};

// STORE (RFC 9051 6.4.6, RFC 7162 3.1.3).
enum class StoreOp { Replace, Add, Remove };
struct StoreResult {
  // Every message of the set that still exists, with its flags after the change.
  std::vector<MessageState> messages;
  // UNCHANGEDSINCE: the messages not changed because their modseq was higher (RFC 7162 3.1.3).
  std::vector<std::uint32_t> modified;
};

// COPY and MOVE (RFC 4315 3 COPYUID, RFC 6851 3.3).
struct CopyResult {
  std::uint32_t uidvalidity = 0;  // of the target mailbox
  std::vector<std::uint32_t> source, target;  // UIDs, pairwise; source ascending
};

// FETCH (RFC 9051 6.4.5): what the engine needs of each message to answer the items asked.
struct FetchNeeds {
  bool structure = false;  // ENVELOPE, BODY, BODYSTRUCTURE, sections, BINARY: the part tree
  // Sections, BINARY, RFC822*: the stored octets these items read. Without `structure` they
  // read the whole message (BODY[], RFC822); with it, what imap::content_ranges() of the tree
  // and these items says (cmail/imap/fetch.h), which is all a Session needs to read.
  bool content = false;
  std::vector<FetchItem> content_items;
  // The one content item is the whole message (BODY[], BODY.PEEK[], RFC822, no partial): a
  // Session may give a large message as FetchedMessage::source, which the engine streams.
  bool stream = false;
  bool set_seen = false;   // set \Seen first, durably (RFC 9051 6.4.5); never when read-only
  // RFC 7162 3.1.4.1: only the messages whose modseq is higher.
  std::optional<std::uint64_t> changed_since;
};
struct FetchedMessage {
  MessageState state;  // its flags after set_seen
  std::int64_t internal_date = 0;  // Unix time
  std::uint64_t size = 0;          // RFC822.SIZE: the octets of the stored message
  std::optional<mail::Part> structure;  // when FetchNeeds::structure
  // When FetchNeeds::content: the octets at their offsets in the message, ascending; all of
  // them as one piece, or (with the structure) at least the ranges content_ranges() gives.
  std::vector<OctetPiece> content;
  // Instead of `content` when FetchNeeds::stream: the message read as its literal is sent,
  // `size` octets of it (a Source that ends sooner or fails closes the connection).
  std::shared_ptr<proto::Source> source;
  bool seen_set = false;  // set_seen changed its flags: FLAGS is sent with the answer
};
// The answer to one FETCH batch (Verdict::fetched).
struct FetchedBatch {
  std::vector<FetchedMessage> messages;
  std::size_t answered = SIZE_MAX;  // the batch's UIDs answered, from its first
};

// APPEND (RFC 4315 3 APPENDUID).
struct AppendResult {
  std::uint32_t uidvalidity = 0, uid = 0;
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
  // SELECT, EXAMINE.
  static Verdict selected(SelectResult r);
  // Session::changes().
  static Verdict changes(MailboxChanges c);
  // EXPUNGE, UID EXPUNGE, CLOSE: the UIDs expunged.
  static Verdict expunged(std::vector<std::uint32_t> uids);
  static Verdict stored(StoreResult r);
  static Verdict copied(CopyResult r);
  static Verdict appended(AppendResult r);
  // FETCH: the messages of the batch that exist (any order; missing ones are skipped). A
  // Session may answer the first `answered` UIDs of the batch only (at least one is taken as
  // answered), to bound what one answer holds (the octets of large messages); the engine asks
  // for the rest with the next batch.
  static Verdict fetched(std::vector<FetchedMessage> messages, std::size_t answered = SIZE_MAX);
  // SEARCH: the messages that match, with their sequence numbers in the view given.
  static Verdict found(std::vector<SearchMatch> matches);
  // Sent as "tag NO [code] text".
  static Verdict reject(RespCode code, std::string text);

  RespCode code() const { return code_; }
  const std::string& text() const { return text_; }
  std::vector<MailboxInfo> take_mailboxes() { return std::move(mailboxes_); }
  const MailboxStatus& counts() const { return counts_; }
  // The payload of selected(), changes(), expunged(), stored(), copied(), appended(); a
  // default value when the verdict carries another.
  template <typename T>
  T take() {
    if (T* p = std::get_if<T>(&payload_)) return std::move(*p);
    return T{};
  }

 private:
  friend class proto::VerdictBase<Verdict>;
  explicit Verdict(Kind k) : VerdictBase(k) {}
  template <typename T>
  static Verdict carrying(T payload) {  // an Accept with its payload
    Verdict v(Kind::Accept);
    v.payload_ = std::move(payload);
    return v;
  }
  RespCode code_ = RespCode::None;
  std::string text_;  // reject: the text; user: the identity
  std::vector<MailboxInfo> mailboxes_;
  MailboxStatus counts_;
  std::variant<std::monostate, SelectResult, MailboxChanges, std::vector<std::uint32_t>,
               StoreResult, CopyResult, AppendResult, FetchedBatch,
               std::vector<SearchMatch>>
      payload_;
};

class CMAIL_EXPORT Session {
 public:
  virtual ~Session() = default;
  // LOGIN (authzid empty) or AUTHENTICATE. Verdict::user() on success; reject with
  // AuthenticationFailed for bad credentials, AuthorizationFailed for a user who may not use
  // IMAP, Unavailable for a temporary failure.
  virtual Verdict login(const sasl::Credentials& credentials) = 0;
  // SCRAM (ServerOptions::scram): the stored credentials of the user the client named, as
  // Verdict::scram(credentials), or Verdict::scram(nullopt) when it has none (the exchange then
  // fails at the proof, as for a wrong password). A rejection is the command's tagged NO.
  virtual Verdict scram_credentials(const std::string& /*authcid*/) { return Verdict::scram(std::nullopt); }
  // SCRAM: the client's proof was checked. Decide as login() does: Verdict::user() only when
  // result.proved and the user may log in as result.authzid (or itself).
  virtual Verdict scram_login(const sasl::ScramResult&) {
    return Verdict::reject(RespCode::AuthenticationFailed, "Authentication failed");
  }

  // The mailbox commands of the logged-in user. Names as in MailboxInfo. The defaults refuse
  // with [CANNOT] (an embedder that serves log-ins only).
  // LIST, LSUB: Verdict::mailboxes().
  virtual Verdict list_mailboxes();
  // STATUS: Verdict::counts(); NonExistent for an unknown mailbox.
  virtual Verdict status(const std::string& mailbox);
  // CREATE (RFC 9051 6.3.4): AlreadyExists when it does; parents are the Session's to create.
  // `special_use`: CREATE-SPECIAL-USE (RFC 6154 3), one of "\\Archive", "\\Drafts", "\\Junk",
  // "\\Sent", "\\Trash" (the engine refuses others with [USEATTR]) for the mailbox itself,
  // not its parents; empty for none. UseAttr when it cannot be given (nothing is created then).
  virtual Verdict create(const std::string& mailbox, const std::string& special_use);
  // DELETE (RFC 9051 6.3.5); never asked for INBOX.
  virtual Verdict remove(const std::string& mailbox);
  // RENAME (RFC 9051 6.3.6): children move with it; `from` INBOX moves its messages into a new
  // mailbox `to` and leaves INBOX empty. Never asked with `to` INBOX.
  virtual Verdict rename(const std::string& from, const std::string& to);
  // SUBSCRIBE / UNSUBSCRIBE (RFC 9051 6.3.7, 6.3.8).
  virtual Verdict subscribe(const std::string& mailbox, bool subscribed);

  // The selected state. UIDs are those of the selected mailbox; the engine names only UIDs of
  // its view, and the Session skips any that no longer exist.
  // SELECT (read_only false) and EXAMINE (true): Verdict::selected(); NonExistent for an
  // unknown mailbox. The Session keeps which mailbox is selected until unselect().
  virtual Verdict select(const std::string& mailbox, bool read_only);
  // The mailbox is no longer selected (CLOSE, UNSELECT, another SELECT, the end of the
  // connection). No verdict.
  virtual void unselect() {}
  // Changes since modseq `since` (the highest_modseq of the last SelectResult or
  // MailboxChanges) and UIDs from `uidnext` on: Verdict::changes().
  virtual Verdict changes(std::uint64_t since, std::uint32_t uidnext);
  // EXPUNGE (every message with \Deleted; `uids` empty) or UID EXPUNGE (those of `uids`
  // with \Deleted), durable: Verdict::expunged() with the UIDs removed.
  virtual Verdict expunge(const std::vector<std::uint32_t>& uids);
  // STORE, durable: Verdict::stored().
  virtual Verdict store(const std::vector<std::uint32_t>& uids, StoreOp op, const Flags& flags,
                        std::optional<std::uint64_t> unchanged_since);
  // COPY and MOVE (move: the sources are expunged in the same transaction), durable:
  // Verdict::copied(); TryCreate when the target does not exist.
  virtual Verdict copy(const std::vector<std::uint32_t>& uids, const std::string& target, bool move);
  // APPEND (RFC 9051 6.3.12): a message of `size` octets for `mailbox`. Accept to receive it
  // through append_chunk() (in order, any split), then append_end() stores it durably:
  // Verdict::appended(). Reject (TryCreate for an unknown mailbox, Limit, OverQuota) and the
  // octets are not sent or are dropped. append_abort() ends an accepted one without storing
  // it (the connection ended, or the command turned out malformed after the literal).
  // `internal_date`: Unix time, nullopt for "now".
  virtual Verdict append_begin(const std::string& mailbox, const Flags& flags,
                               std::optional<std::int64_t> internal_date, std::uint64_t size);
  virtual void append_chunk(std::string_view) {}
  virtual Verdict append_end();
  virtual void append_abort() {}
  // FETCH and UID FETCH, in batches of at most 256 messages (16 when content is needed):
  // Verdict::fetched(), which may answer a first part of the batch only. The next batch is
  // asked for as soon as one is answered, before that one is encoded: a Session answering
  // from another thread reads it meanwhile.
  virtual Verdict fetch(const std::vector<std::uint32_t>& uids, const FetchNeeds& needs);
  // SEARCH and UID SEARCH: evaluate `key` (imap::matches, cmail/imap/search.h) on the messages
  // of `view` (the view's UIDs in sequence order, for SearchContext::of with `saved`):
  // Verdict::found().
  virtual Verdict search(const SearchKey& key, const std::vector<std::uint32_t>& view,
                         const std::vector<std::uint32_t>& saved);
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
  // Also asks for more of a long FETCH answer once its output has been taken.
  void consume_output(std::size_t n);
  void tls_established(const TlsInfo& info);
  void timed_out();  // RFC 9051 5.4: BYE Autologout, then Close
  bool wants_read() const;
  std::chrono::milliseconds timeout() const { return options_.idle_timeout; }
  // A command (its pieces and literals) must arrive whole within idle_timeout of its first
  // byte (proto::Deadline), so a client sending a byte before every timeout is still closed.
  proto::Deadline deadline() const;

  // Answers the pending verdict. InvalidArgument if none is pending.
  Status complete(Verdict v);
  // The selected mailbox may have changed (another session or process wrote to it): the
  // engine asks Session::changes() at once when it is idling (IDLE) and no verdict is
  // pending, else at the end of the next command that may report changes.
  void mailbox_changed();
  bool idling() const { return input_ == Input::Idle; }
  // The selected mailbox (UTF-8), empty outside the selected state; its size in the view.
  const std::string& selected_mailbox() const { return view_.name; }
  std::uint32_t exists() const { return static_cast<std::uint32_t>(view_.uids.size()); }

  State state() const { return state_; }
  bool tls() const { return tls_; }
  const std::string& user() const { return user_; }  // who logged in; empty before
  // What ENABLE turned on (RFC 5161): IMAP4rev2 replies follow RFC 9051 only; UTF8=ACCEPT
  // (RFC 6855) takes and sends UTF-8 in quoted strings; CONDSTORE (RFC 7162 3.1).
  bool rev2() const { return rev2_; }
  bool utf8() const { return utf8_; }
  bool condstore() const { return condstore_; }

 private:
  enum class Decision {
    Login, ScramLookup, List, ListStatus, Status, Change,
    Select, Poll, Expunge, Store, Copy, AppendBegin, AppendEnd, Fetch, Search,
  };
  // LIST or LSUB waiting for the mailboxes (RFC 9051 6.3.9, RFC 5258, RFC 3501 6.3.9).
  struct ListRequest {
    bool lsub = false;
    bool extended = false;          // LIST-EXTENDED syntax was used (RFC 5258 3)
    bool select_subscribed = false, select_special_use = false, recursive = false;
    bool return_subscribed = false;
    bool return_status = false;         // RFC 5819 LIST-STATUS: STATUS after each selectable one
    std::vector<std::string> patterns;  // reference + pattern, UTF-8
    bool root_only = false;             // LIST "" "": the delimiter (RFC 9051 6.3.9)
  };
  enum class Input {
    Line,          // the next line piece
    Literal,       // the octets of an announced literal, into the parser
    DropLiteral,   // the octets of a refused literal, read and dropped
    DropLine,      // the rest of a refused command, up to its end
    Sasl,          // the client's response to an AUTHENTICATE challenge
    Append,        // the octets of APPEND's message, to the Session
    AppendTail,    // the rest of the APPEND command after its message
    Idle,          // IDLE: waiting for "DONE" (RFC 2177 3)
  };
  // The selected mailbox (RFC 9051 2.3.1.2: sequence numbers are positions in it).
  struct View {
    std::string name;
    bool read_only = false;
    std::uint32_t uidvalidity = 0, uidnext = 1;
    std::uint64_t highest_modseq = 0;
    std::vector<std::uint32_t> uids;           // ascending; uids[seq - 1]
    std::vector<std::uint32_t> expunge_later;  // expunged, not reported yet (RFC 9051 7.5.1)
    // Flag changes this session reported itself (STORE), by UID: their modseq, so that the
    // next poll does not report them again.
    std::vector<std::pair<std::uint32_t, std::uint64_t>> reported;
    bool changed = false;  // mailbox_changed() or an own change: poll at the next chance
  };
  // The command whose verdict is pending in the selected state, and what its answer needs.
  struct Request {
    bool uid = false;          // a UID command (RFC 9051 6.4.9)
    bool silent = false;       // STORE .SILENT
    bool move = false;         // MOVE
    bool read_only = false;    // EXAMINE
    bool in_idle = false;      // a poll while idling: no tagged response
    bool expunge_ok = true;    // the poll may report expunges (RFC 9051 7.5.1)
    std::string select_name;   // SELECT/EXAMINE: the mailbox
    std::uint64_t append_size = 0;
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
  void refusal_done();    // the tagged answer to a refused command, once it is dropped
  void end_session();     // the connection ends: an APPEND aborted, the mailbox unselected
  void append_tail(std::string_view line);

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
  void cmd_select(const std::string& tag, const Values& args);
  void cmd_examine(const std::string& tag, const Values& args);
  void cmd_close(const std::string& tag, const Values& args);
  void cmd_unselect(const std::string& tag, const Values& args);
  void cmd_check(const std::string& tag, const Values& args);
  void cmd_expunge(const std::string& tag, const Values& args);
  void cmd_store(const std::string& tag, const Values& args);
  void cmd_copy(const std::string& tag, const Values& args);
  void cmd_move(const std::string& tag, const Values& args);
  void cmd_uid(const std::string& tag, const Values& args);
  void cmd_append(const std::string& tag, const Values& args);
  void cmd_idle(const std::string& tag, const Values& args);
  void cmd_fetch(const std::string& tag, const Values& args);
  void cmd_search(const std::string& tag, const Values& args);
  void fetch(const std::string& tag, const Values& args, bool uid);
  void send_fetched(std::vector<FetchedMessage> messages);
  void encode_fetched();
  void pump_stream();
  void search(const std::string& tag, const Values& args, bool uid);
  // A sequence set argument: its UIDs in the view ("$": the saved result, RFC 5182); nullopt
  // for a set that is not one (BAD) or a message number over the view's size.
  std::optional<std::vector<std::uint32_t>> message_set(const Value& v, bool uid) const;
  void select_or_examine(const std::string& tag, const Values& args, bool read_only);
  void leave_selected();
  void store(const std::string& tag, const Values& args, bool uid);
  void copy_or_move(const std::string& tag, const Values& args, bool uid, bool move);
  void uid_expunge(const std::string& tag, const Values& args);
  // The UIDs of a sequence set (message numbers, or UIDs when `uid`) in the view; nullopt for
  // a message number over the view's size (RFC 9051 9: seq-number).
  std::optional<std::vector<std::uint32_t>> resolve(const SequenceSet& set, bool uid) const;
  std::uint32_t seq_of(std::uint32_t uid) const;  // 0 when not in the view
  // The end of a selected-state command: report changes first when there are some to look
  // for (poll), then the tagged OK.
  void finish(const std::string& tag, std::string text, bool expunge_ok, bool force_poll = false);
  void apply_selected(Decision d, Verdict v);
  void report_changes(MailboxChanges c, bool expunge_ok);
  void report_expunged(const std::vector<std::uint32_t>& uids);  // sends EXPUNGE, updates the view
  std::string fetch_flags_line(std::uint32_t seq, const MessageState& m, bool with_uid) const;
  bool append_intercept(std::string_view piece);
  void idle_line(std::string_view line);
  void list_or_lsub(const std::string& tag, const Values& args, bool lsub);
  void subscription(const std::string& tag, const Values& args, bool on);
  void send_list(std::vector<MailboxInfo> mailboxes);
  // LIST-STATUS (RFC 5819): the LIST lines left to send and, for a selectable mailbox, its name
  // to ask Session::status() for after its line; then the tagged OK.
  void list_status(const Verdict& v);  // one LIST-STATUS answer sent (or logged)
  void list_continue();
  void send_status(const MailboxStatus& st);
  // The STATUS items of a list (RFC 9051 6.3.11), upper case; nullopt (and a BAD) for one
  // that is not known.
  std::optional<std::vector<std::string>> status_items(const std::string& tag, const Value& list);
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
  bool refused_no_ = false;           // the dropped command is answered NO, not BAD
  bool mid_command_ = false;          // part of a command has been taken (deadline())

  proto::Awaiting<Decision> awaiting_;
  std::string pending_tag_;
  std::string pending_done_;  // the tagged OK's text once the pending change is done
  ListRequest list_;
  std::vector<std::pair<std::string, std::string>> list_out_;  // LIST-STATUS: line, mailbox
  std::size_t list_next_ = 0;
  std::string status_name_;                 // STATUS: the mailbox, as the client named it
  std::vector<std::string> status_items_;   // STATUS: the items asked for, upper case
  sasl::ServerAuth sasl_{"+ ", options_.scram};  // RFC 9051 6.2.2: "+" SP base64 challenge
  std::string sasl_tag_;
  std::string user_;
  std::uint64_t phase_ = 0;  // counts commands taken (deadline())

  View view_;
  Request request_;
  std::uint64_t append_remaining_ = 0;  // Append: octets still to pass to the Session
  bool append_sync_ = false;             // the APPEND literal was synchronizing
  bool append_utf8_ = false;             // RFC 6855 4: "UTF8 (~{N}...)": ")" follows the message
  std::string idle_tag_;
  // FETCH in progress: the request, the UIDs still to ask for, what is needed.
  struct FetchState {
    FetchRequest request;
    std::vector<std::uint32_t> uids;
    std::size_t next = 0;   // uids[next] is the first not asked for yet
    std::size_t asked = 0;  // the UIDs of the batch last asked for
    FetchNeeds needs;
    bool uid = false;
    bool unknown_cte = false;  // RFC 3516 4.3: the command ends NO [UNKNOWN-CTE]
    bool waiting = false;      // stopped until the output drains below kFetchOutputLow
    // The answered batch being encoded: messages[next] from its item `item` on; while
    // `remaining` > 0 the octets of that message's literal come from its Source.
    struct Encoding {
      std::vector<FetchedMessage> messages;
      std::size_t next = 0, item = 0;
      std::string line;               // the message's response so far
      bool first = true, flags_sent = false, modseq_sent = false;
      bool started = false;           // "* " and the line before the literal are out
      std::uint64_t remaining = 0;
    } out;
  };
  static constexpr std::size_t kFetchOutputHigh = 1 << 20, kFetchOutputLow = 256 << 10;
  bool busy() const { return awaiting_.active() || fetch_.waiting || fetch_.out.remaining > 0; }
  void fetch_continue(std::optional<std::vector<FetchedMessage>> ready = std::nullopt);
  std::vector<FetchedMessage> fetch_answer(Verdict& v);
  FetchState fetch_;
  SearchRequest search_;
  std::vector<std::uint32_t> saved_;  // RFC 5182: the saved search result, UIDs ascending
};

CMAIL_EXPORT const char* to_string(Server::State s);

}  // namespace cmail::imap
