// The Store-backed IMAP session: log-in, the mailbox commands and the selected state. See
// cmail/backends/imap_session.h.
#include <cmail/backends/imap_session.h>

#include <cmail/backends/log_line.h>
#include <cmail/proto/ascii.h>
#include <cmail/store/directory.h>

#include <algorithm>
#include <cstdio>
#include <map>

namespace cmail::backends {

using imap::MailboxInfo;
using imap::MailboxStatus;
using imap::RespCode;
using imap::Verdict;

namespace {

// RFC 9051 5.1: INBOX is case-insensitive; the engine asks for it in upper case.
bool is_inbox(std::string_view name) { return proto::equals_upper(name, "INBOX"); }

// The stored octets one FETCH answer holds at most (a batch's first message excepted).
constexpr std::uint64_t kFetchBatchOctets = 4 << 20;
// Messages under this size are read whole for FETCH sections; larger ones only in the ranges
// the items read.
constexpr std::int64_t kWholeBelow = 128 << 10;
// BODY[] and RFC822 of messages from this size on stream from the store as they are sent.
constexpr std::int64_t kStreamFrom = 1 << 20;

}  // namespace

// The engine's flag bits are the store's mail_flags bits (cmail/imap/flags.h).
constexpr bool same_bit(std::uint32_t a, std::uint32_t b) { return a == b; }
static_assert(same_bit(imap::kSeen, store::kFlagSeen) && same_bit(imap::kAnswered, store::kFlagAnswered) &&
              same_bit(imap::kFlagged, store::kFlagFlagged) && same_bit(imap::kDeleted, store::kFlagDeleted) &&
              same_bit(imap::kDraft, store::kFlagDraft));

imap::Flags imap_flags(std::uint32_t bits, std::string_view keywords) {
  imap::Flags f;
  f.system = bits & (imap::kSeen | imap::kAnswered | imap::kFlagged | imap::kDeleted | imap::kDraft);
  std::size_t i = 0;
  while (i < keywords.size()) {
    std::size_t j = keywords.find(' ', i);
    if (j == std::string_view::npos) j = keywords.size();
    if (j > i) f.keywords.emplace_back(keywords.substr(i, j - i));
    i = j + 1;
  }
  return f;
}

std::string store_keywords(const std::vector<std::string>& keywords) {
  std::string out;
  for (const std::string& k : keywords) {
    if (!out.empty()) out += ' ';
    out += k;
  }
  return out;
}

namespace {

imap::MessageState message_state(const store::MessageInfo& m) {
  return {m.uid, imap_flags(m.flags, m.keywords), m.modseq};
}

// A store error as the engine's answer: NotFound is the mailbox that is not there.
Verdict store_error(const Status& st, RespCode missing) {
  if (st.is_not_found()) return Verdict::reject(missing, "No such mailbox");
  if (st.code() == Status::Code::AlreadyExists) return Verdict::reject(RespCode::AlreadyExists, "The mailbox exists");
  return Verdict::failed(st);
}

// SEARCH text of a stored message, read only when a text key reaches it.
class LazyText final : public imap::MessageText {
 public:
  LazyText(store::Mailboxes& m, store::MessageRef ref) : mailboxes_(m), ref_(std::move(ref)) {}
  std::string_view header() override { return load() ? text_->header() : std::string_view(); }
  std::string_view body() override { return load() ? text_->body() : std::string_view(); }

 private:
  bool load() {
    if (text_) return true;
    if (tried_) return false;
    tried_ = true;
    auto octets = mailboxes_.read_message(ref_);
    if (!octets) return false;
    octets_ = std::move(*octets);
    tree_ = mail::parse_structure(octets_);
    text_.emplace(octets_, tree_);
    return true;
  }
  store::Mailboxes& mailboxes_;
  store::MessageRef ref_;
  bool tried_ = false;
  std::string octets_;
  mail::Part tree_;
  std::optional<imap::StoredMessageText> text_;
};

// APPEND's message as the store reads it: the temporary file the chunks went to.
class FileSource final : public proto::Source {
 public:
  explicit FileSource(std::FILE* f) : f_(f) { std::rewind(f_); }
  Status read(std::size_t max, std::string& out) override {
    char buf[64 * 1024];
    const std::size_t n = std::fread(buf, 1, std::min(max, sizeof buf), f_);
    if (n == 0 && std::ferror(f_)) return Status::io_error("cannot read the APPEND spool file");
    out.append(buf, n);
    return Status();
  }

 private:
  std::FILE* f_;
};

}  // namespace

std::vector<MailboxInfo> imap_mailboxes(const std::vector<store::Folder>& folders) {
  std::vector<MailboxInfo> out;
  MailboxInfo inbox;
  inbox.name = "INBOX";  // RFC 9051 5.1: every user has one, even before the first delivery
  inbox.subscribed = true;
  out.push_back(inbox);
  for (const store::Folder& f : folders) {
    if (is_inbox(f.name)) {
      out[0].subscribed = f.subscribed;
      continue;
    }
    MailboxInfo m;
    m.name = f.name;
    m.subscribed = f.subscribed;
    m.special_use = f.special_use;  // RFC 6154 2
    out.push_back(std::move(m));
  }
  return out;
}

MailboxStatus imap_status(const store::Folder& folder, const std::vector<store::MessageInfo>& messages) {
  MailboxStatus st;
  st.uidvalidity = folder.uidvalidity;
  st.uidnext = folder.uidnext;
  st.highest_modseq = folder.highest_modseq;
  st.recent = 0;  // RFC 9051 removed \Recent; RFC 3501 clients are told none is recent
  for (const store::MessageInfo& m : messages) {
    ++st.messages;
    if (!(m.flags & store::kFlagSeen)) ++st.unseen;
    if (m.flags & store::kFlagDeleted) ++st.deleted;
    // RFC 8438 2: the sum of the messages' RFC822.SIZE, the stored octets FETCH sends.
    st.size += static_cast<std::uint64_t>(m.size);
  }
  return st;
}

StoreImapSession::StoreImapSession(store::Store& store, proto::PeerInfo peer, proto::Executor executor,
                                   std::shared_ptr<AuthGuard> guard)
    : store_(store),
      peer_(std::move(peer)),
      executor_(std::move(executor)),
      guard_(std::move(guard)),
      alive_(std::make_shared<StoreImapSession*>(this)) {}

StoreImapSession::~StoreImapSession() { *alive_ = nullptr; }

void StoreImapSession::log(std::string_view line) {
  if (logger_) logger_(0, line);  // the engine's diagnostics are errors
}

namespace {

struct LoginOutcome {
  Verdict verdict = Verdict::pending();
  std::string user;              // the authorized user, when logged in
  bool bad_credentials = false;  // for the AuthGuard: a failure to count
  bool authenticated = false;    // the password was right (whatever else happened)
  std::string denied;            // authenticated, yet refused: why, for the log
  std::string note;              // an error for the log (level 0)
};

// The blocking part of a log-in: the check (the password's, or SCRAM's identity) and the
// imapd row (a worker thread).
void blocking_login(store::Store& store, const sasl::Credentials& creds,
                    const std::function<Result<store::Identity>(store::Store&)>& check, LoginOutcome& out) {
  auto id = check(store);
  if (!id) {
    if (id.error().is_not_found()) {
      out.bad_credentials = true;
      out.verdict = Verdict::reject(RespCode::AuthenticationFailed, "Invalid user name or password");
    } else {
      out.note = "IMAP login of " + creds.authcid + ": " + id.error().to_string();
      out.verdict = Verdict::failed(id.error());
    }
    return;
  }
  out.authenticated = true;
  // An alias logs in to its target (docs/compatibility.md#users-aliases).
  const std::string user = id->authorized;
  auto row = store.directory().find_imapd(user);
  if (!row) {
    out.note = "IMAP login of " + creds.authcid + ": " + row.error().to_string();
    out.verdict = Verdict::failed(row.error());
    return;
  }
  if (!*row) {
    out.denied = "imap-not-enabled";
    // RFC 9051 7.1: AUTHORIZATIONFAILED, the credentials were good but this user may not use IMAP.
    out.verdict = Verdict::reject(RespCode::AuthorizationFailed, "IMAP access is not enabled for this account");
    return;
  }
  out.user = user;
  out.verdict = Verdict::user(user);
  // RFC 6154: Sent, Drafts, Trash, Junk and Archive exist from the first log-in on.
  if (Status st = store.mailboxes().ensure_special_folders(user); !st.ok())
    out.note = "special folders of " + user + ": " + st.to_string();
}

}  // namespace

Verdict StoreImapSession::login(const sasl::Credentials& creds) {
  // argon2id, or a legacy hash that is replaced after a good check (cmail/store/directory.h).
  return check_login(creds, false, [creds](store::Store& st) {
    return st.directory().authenticate(creds.authcid, creds.password);
  });
}

Verdict StoreImapSession::scram_credentials(const std::string& authcid) {
  // The guard as for any log-in, before anything is looked up; a user without credentials gets
  // the store's made-up ones (RFC 5802 5.1), so the answer does not tell who exists.
  const AuthGuard::Admission a = admit_attempt(guard_.get(), "imap", peer_.address, authcid, logger_);
  if (a.refused != AuthGuard::Refusal::None)
    return Verdict::reject(RespCode::Unavailable, "Too many failed logins, try again later");  // RFC 9051 7.1
  std::weak_ptr<StoreImapSession*> weak = alive_;
  store::Store* store = &store_;
  proto::Executor ex = executor_;
  run_after(ex, a.wait, [weak, store, ex, authcid] {
    ex.run_blocking([weak, store, ex, authcid] {
      auto creds = store->directory().scram_credentials(authcid);
      ex.post([weak, creds, authcid] {
        auto alive = weak.lock();
        if (!alive || !*alive || !(**alive).complete_) return;
        StoreImapSession& self = **alive;
        if (!creds) {
          if (self.logger_) self.logger_(0, "IMAP login of " + authcid + ": " + creds.error().to_string());
          return self.complete_(Verdict::failed(creds.error()));
        }
        self.complete_(Verdict::scram(*creds));
      });
    });
  });
  return Verdict::pending();
}

Verdict StoreImapSession::scram_login(const sasl::ScramResult& r) {
  return check_login(sasl::Credentials{r.authzid, r.authcid, ""}, true, [r](store::Store& st) -> Result<store::Identity> {
    if (!r.proved) return Status::not_found("authentication failed");  // RFC 5802 7: invalid-proof
    return st.directory().scram_identity(r.authcid);
  });
}

Verdict StoreImapSession::check_login(const sasl::Credentials& creds, bool admitted,
                                      std::function<Result<store::Identity>(store::Store&)> check) {
  // The guard first (cmail/backends/auth_guard.h): an address or user refused is answered at
  // once, without the password check; otherwise the check waits for the guard's delay. SCRAM
  // asked it before the lookup (`admitted`).
  std::shared_ptr<AuthGuard> guard = guard_;
  const std::string addr = peer_.address;
  const LogSink logger = logger_;
  AuthGuard::Admission a;
  if (!admitted) {
    a = admit_attempt(guard.get(), "imap", addr, creds.authcid, logger);
    if (a.refused != AuthGuard::Refusal::None) {
      // RFC 9051 7.1: UNAVAILABLE, a temporary failure (the password may be right: try later).
      return Verdict::reject(RespCode::Unavailable, "Too many failed logins, try again later");
    }
  }
  // Proxy authorization is not offered: an authzid must name the user who logs in (RFC 4616 2).
  const bool proxy = !creds.authzid.empty() && creds.authzid != creds.authcid;
  std::weak_ptr<StoreImapSession*> weak = alive_;
  store::Store* store = &store_;
  proto::Executor ex = executor_;
  run_after(ex, a.wait, [weak, store, ex, creds, proxy, guard, addr, logger, check = std::move(check)] {
    ex.run_blocking([weak, store, ex, creds, proxy, guard, addr, logger, check] {
      auto out = std::make_shared<LoginOutcome>();
      if (proxy) {
        out->bad_credentials = true;
        out->verdict = Verdict::reject(RespCode::AuthenticationFailed, "Invalid user name or password");
      } else {
        blocking_login(*store, creds, check, *out);
      }
      ex.post([weak, ex, out, proxy, guard, addr, logger, user = creds.authcid] {
        // Counted and logged even when the client has hung up meanwhile.
        std::chrono::milliseconds more{0};
        if (out->bad_credentials) {
          if (guard) more = guard->failed(addr, user);
          if (logger)
            logger(0, auth_log("auth failed", "imap", addr, user)
                          .add("reason", proxy ? "authzid-mismatch" : "bad-credentials")
                          .str());
        } else if (out->authenticated) {
          if (guard) guard->succeeded(addr, user);
          if (logger) {
            LogLine l = auth_log(out->denied.empty() ? "auth ok" : "login denied", "imap", addr, user);
            if (!out->denied.empty()) l.add("reason", out->denied);
            else if (out->user != user) l.add("identity", out->user);  // an alias logs in as its target
            logger(1, l.str());
          }
        }
        if (!out->note.empty() && logger) logger(0, out->note);
        // A failure's reply waits for the guard's further delay.
        run_after(ex, more, [weak, out, addr] {
          auto alive = weak.lock();
          if (!alive || !*alive || !(**alive).complete_) return;  // the connection ended meanwhile
          StoreImapSession& self = **alive;
          if (out->verdict.accepted() && self.limit_ && !out->user.empty()) {
            self.ticket_ = self.limit_->acquire(out->user);
            if (!self.ticket_) {  // RFC 5530 3: LIMIT, a limit of the server's was reached
              if (self.logger_)
                self.logger_(0, auth_log("login refused", "imap", addr, out->user)
                                    .add("reason", "sessions-per-user")
                                    .add("max", std::to_string(self.limit_->max()))
                                    .str());
              self.complete_(Verdict::reject(RespCode::Limit, "Too many sessions of this user at once"));
              return;
            }
          }
          if (!out->user.empty()) self.user_ = out->user;
          self.complete_(std::move(out->verdict));
        });
      });
    });
  });
  return Verdict::pending();
}

Verdict StoreImapSession::off_loop(std::string what, std::function<Verdict()> work) {
  std::weak_ptr<StoreImapSession*> weak = alive_;
  proto::Executor ex = executor_;
  executor_.run_blocking([weak, ex, what = std::move(what), work = std::move(work)] {
    auto verdict = std::make_shared<Verdict>(work());
    ex.post([weak, verdict, what] {
      auto alive = weak.lock();
      if (!alive || !*alive || !(**alive).complete_) return;
      StoreImapSession& self = **alive;
      if (verdict->kind() == Verdict::Kind::Failed && self.logger_)
        self.logger_(0, what + " of " + self.user_ + ": " + verdict->status().to_string());
      self.complete_(std::move(*verdict));
    });
  });
  return Verdict::pending();
}

Verdict StoreImapSession::list_mailboxes() {
  store::Store* store = &store_;
  return off_loop("LIST", [store, user = user_] {
    auto folders = store->mailboxes().list_folders(user);
    if (!folders) return Verdict::failed(folders.error());
    auto subscribed = store->mailboxes().subscriptions(user);
    if (!subscribed) return Verdict::failed(subscribed.error());
    std::vector<MailboxInfo> list = imap_mailboxes(*folders);
    // RFC 9051 6.3.7: subscriptions are names; one without a folder is listed as not existing.
    for (MailboxInfo& m : list)
      m.subscribed = std::binary_search(subscribed->begin(), subscribed->end(), m.name) ||
                     (m.name == "INBOX" && m.subscribed);
    for (const std::string& name : *subscribed) {
      if (std::any_of(list.begin(), list.end(), [&](const MailboxInfo& m) { return m.name == name; })) continue;
      list.push_back({name, "", false, true});
    }
    return Verdict::mailboxes(std::move(list));
  });
}

Verdict StoreImapSession::create(const std::string& mailbox, const std::string& special_use) {
  store::Store* store = &store_;
  return off_loop("CREATE", [store, user = user_, mailbox, special_use] {
    store::Mailboxes& m = store->mailboxes();
    // RFC 9051 6.3.4: the parents a name implies are created with it.
    for (std::size_t slash = mailbox.find('/'); slash != std::string::npos; slash = mailbox.find('/', slash + 1)) {
      auto made = m.create_folder(user, mailbox.substr(0, slash));
      if (!made && made.error().code() != Status::Code::AlreadyExists) return store_error(made.error(), RespCode::Cannot);
    }
    // RFC 6154 3: CREATE-SPECIAL-USE, the attribute on the mailbox itself (folders.folder_special).
    auto made = m.create_folder(user, mailbox, special_use);
    if (!made) return store_error(made.error(), RespCode::Cannot);
    return Verdict::accept();
  });
}

Verdict StoreImapSession::remove(const std::string& mailbox) {
  store::Store* store = &store_;
  return off_loop("DELETE", [store, user = user_, mailbox] {
    Status st = store->mailboxes().delete_folder(user, mailbox);
    if (!st.ok()) return store_error(st, RespCode::NonExistent);
    return Verdict::accept();
  });
}

Verdict StoreImapSession::rename(const std::string& from, const std::string& to) {
  store::Store* store = &store_;
  return off_loop("RENAME", [store, user = user_, from, to] {
    Status st = store->mailboxes().rename_folder(user, from, to);
    if (!st.ok()) return store_error(st, RespCode::NonExistent);
    return Verdict::accept();
  });
}

Verdict StoreImapSession::subscribe(const std::string& mailbox, bool subscribed) {
  store::Store* store = &store_;
  return off_loop(subscribed ? "SUBSCRIBE" : "UNSUBSCRIBE", [store, user = user_, mailbox, subscribed] {
    Status st = store->mailboxes().set_subscribed(user, mailbox, subscribed);
    if (!st.ok()) return Verdict::failed(st);
    return Verdict::accept();
  });
}

// --- The selected state --------------------------------------------------------------------

Verdict StoreImapSession::select(const std::string& mailbox, bool read_only) {
  store::Store* store = &store_;
  selected_ = is_inbox(mailbox) ? "INBOX" : mailbox;
  return off_loop("SELECT", [store, user = user_, name = selected_, read_only] {
    store::Mailboxes& m = store->mailboxes();
    // The messages first: listing numbers rows other programs wrote, which moves UIDNEXT.
    auto messages = m.list_messages(user, name);
    if (!messages) return Verdict::failed(messages.error());
    auto folder = name == "INBOX" ? m.ensure_folder(user, name) : m.folder_state(user, name);
    if (!folder) return store_error(folder.error(), RespCode::NonExistent);
    imap::SelectResult r;
    r.uidvalidity = folder->uidvalidity;
    r.uidnext = folder->uidnext;
    r.highest_modseq = folder->highest_modseq;
    r.read_only = read_only;
    std::map<std::string, bool> keywords;
    for (const store::MessageInfo& info : *messages) {
      r.messages.push_back(message_state(info));
      for (const std::string& k : r.messages.back().flags.keywords) keywords[k] = true;
      r.highest_modseq = std::max(r.highest_modseq, info.modseq);
    }
    for (const auto& [k, _] : keywords) r.keywords.push_back(k);
    return Verdict::selected(std::move(r));
  });
}

void StoreImapSession::unselect() { selected_.clear(); }

Verdict StoreImapSession::changes(std::uint64_t since, std::uint32_t) {
  store::Store* store = &store_;
  return off_loop("changes", [store, user = user_, name = selected_, since] {
    // Indexed reads only (no listing of the folder): this runs on every commit signal.
    auto c = store->mailboxes().changes_since(user, name, since);
    if (!c) {
      // The mailbox went away (DELETE elsewhere): nothing more to report.
      if (c.error().is_not_found()) return Verdict::changes({});
      return Verdict::failed(c.error());
    }
    imap::MailboxChanges out;
    out.uidnext = c->folder.uidnext;
    out.highest_modseq = c->folder.highest_modseq;
    for (const store::MessageInfo& info : c->messages) out.messages.push_back(message_state(info));
    out.expunged = c->expunged;
    return Verdict::changes(std::move(out));
  });
}

Verdict StoreImapSession::expunge(const std::vector<std::uint32_t>& uids) {
  store::Store* store = &store_;
  return off_loop("EXPUNGE", [store, user = user_, name = selected_, uids] {
    store::Mailboxes& m = store->mailboxes();
    auto messages = m.list_messages(user, name);
    if (!messages) return Verdict::failed(messages.error());
    std::vector<std::uint32_t> doomed;
    for (const store::MessageInfo& info : *messages)
      if ((info.flags & store::kFlagDeleted) && (uids.empty() || std::binary_search(uids.begin(), uids.end(), info.uid)))
        doomed.push_back(info.uid);
    if (doomed.empty()) return Verdict::expunged({});
    auto gone = m.expunge_uids(user, name, doomed);
    if (!gone) return Verdict::failed(gone.error());
    return Verdict::expunged(std::move(*gone));
  });
}

Verdict StoreImapSession::store(const std::vector<std::uint32_t>& uids, imap::StoreOp op, const imap::Flags& flags,
                                std::optional<std::uint64_t> unchanged_since) {
  store::Store* store = &store_;
  const store::FlagOp fop = op == imap::StoreOp::Add ? store::FlagOp::Add
                            : op == imap::StoreOp::Remove ? store::FlagOp::Remove
                                                          : store::FlagOp::Replace;
  return off_loop("STORE", [store, user = user_, name = selected_, uids, fop, flags, unchanged_since] {
    auto r = store->mailboxes().update_flags(user, name, uids, fop, flags.system, flags.keywords, unchanged_since);
    if (!r) return Verdict::failed(r.error());
    imap::StoreResult out;
    for (const store::FlagChange& c : r->changed) out.messages.push_back({c.uid, imap_flags(c.flags, c.keywords), c.modseq});
    out.modified = r->modified;
    return Verdict::stored(std::move(out));
  });
}

Verdict StoreImapSession::copy(const std::vector<std::uint32_t>& uids, const std::string& target, bool move) {
  store::Store* store = &store_;
  const std::string to = is_inbox(target) ? "INBOX" : target;
  return off_loop(move ? "MOVE" : "COPY", [store, user = user_, name = selected_, uids, to, move] {
    store::Mailboxes& m = store->mailboxes();
    // RFC 9051 6.4.7: a target that does not exist is NO [TRYCREATE].
    if (to == "INBOX") {
      if (auto f = m.ensure_folder(user, to); !f) return Verdict::failed(f.error());
    }
    auto r = move ? m.move(user, name, uids, to) : m.copy(user, name, uids, to);
    if (!r) return store_error(r.error(), RespCode::TryCreate);
    imap::CopyResult out;
    out.uidvalidity = r->uidvalidity;
    for (const auto& [from, made] : r->uids) {
      out.source.push_back(from);
      out.target.push_back(made);
    }
    return Verdict::copied(std::move(out));
  });
}

Verdict StoreImapSession::append_begin(const std::string& mailbox, const imap::Flags& flags,
                                       std::optional<std::int64_t> internal_date, std::uint64_t) {
  append_.reset();
  append_mailbox_ = is_inbox(mailbox) ? "INBOX" : mailbox;
  append_flags_ = flags;
  append_date_ = internal_date.value_or(0);
  // The message goes to a temporary file as it arrives (never held whole), and into the
  // store at append_end().
  std::FILE* f = std::tmpfile();
  if (!f) return Verdict::failed(Status::io_error("cannot create a spool file for APPEND"));
  append_.reset(f);
  append_ok_ = true;
  store::Store* store = &store_;
  return off_loop("APPEND", [store, user = user_, name = append_mailbox_] {
    store::Mailboxes& m = store->mailboxes();
    auto folder = name == "INBOX" ? m.ensure_folder(user, name) : m.folder_state(user, name);
    if (!folder) return store_error(folder.error(), RespCode::TryCreate);  // RFC 9051 6.3.12
    return Verdict::accept();
  });
}

void StoreImapSession::append_chunk(std::string_view bytes) {
  if (append_ && append_ok_ && std::fwrite(bytes.data(), 1, bytes.size(), append_.get()) != bytes.size())
    append_ok_ = false;
}

void StoreImapSession::append_abort() { append_.reset(); }

Verdict StoreImapSession::append_end() {
  if (!append_ || !append_ok_ || std::fflush(append_.get()) != 0) {
    append_.reset();
    return Verdict::failed(Status::io_error("cannot write the APPEND spool file"));
  }
  store::Store* store = &store_;
  auto file = std::make_shared<std::unique_ptr<std::FILE, FileCloser>>(std::move(append_));
  return off_loop("APPEND", [store, user = user_, name = append_mailbox_, flags = append_flags_,
                             date = append_date_, file] {
    FileSource source(file->get());
    auto r = store->mailboxes().append(user, name, source, flags.system, store_keywords(flags.keywords), date);
    if (!r) return store_error(r.error(), RespCode::TryCreate);
    return Verdict::appended({r->uidvalidity, r->uid});
  });
}

Verdict StoreImapSession::fetch(const std::vector<std::uint32_t>& uids, const imap::FetchNeeds& needs) {
  store::Store* store = &store_;
  return off_loop("FETCH", [store, user = user_, name = selected_, uids, needs] {
    store::Mailboxes& m = store->mailboxes();
    if (uids.empty()) return Verdict::fetched({});
    // A batch is a run of the view (UIDs ascending): only its UID range is read.
    const auto [lo, hi] = std::minmax_element(uids.begin(), uids.end());
    auto messages = m.list_messages(user, name, *lo, *hi);
    if (!messages) return Verdict::failed(messages.error());
    std::map<std::uint32_t, const store::MessageInfo*> by_uid;
    for (const store::MessageInfo& info : *messages) by_uid[info.uid] = &info;
    // What is answered: the batch's messages, up to kFetchBatchOctets of octets to read (one
    // message is always taken); the engine asks for the UIDs left with its next batch. Whole
    // messages count their size; with a tree, the ranges the items read of it.
    struct Wanted {
      const store::MessageInfo* info;
      std::size_t at;  // in `uids`
    };
    std::vector<Wanted> wanted;
    for (std::size_t i = 0; i < uids.size(); ++i)
      if (auto it = by_uid.find(uids[i]); it != by_uid.end()) wanted.push_back({it->second, i});
    auto refs_of = [&wanted] {
      std::vector<store::MessageRef> refs;
      for (const Wanted& w : wanted) refs.push_back(w.info->ref);
      return refs;
    };
    std::vector<mail::Part> structures;
    std::vector<store::Mailboxes::OctetRanges> ranges;
    std::vector<std::uint64_t> octets;  // what each reads
    if (needs.structure) {
      auto trees = m.read_structures(refs_of());
      if (!trees) return Verdict::failed(trees.error());
      structures = std::move(*trees);
    }
    for (std::size_t k = 0; needs.content && k < wanted.size(); ++k) {
      if (!needs.structure) {  // a streamed message is not held: it does not count
        const auto size = wanted[k].info->size;
        octets.push_back(needs.stream && size >= kStreamFrom ? 0 : static_cast<std::uint64_t>(size));
        continue;
      }
      ranges.emplace_back();
      octets.push_back(0);
      for (const imap::OctetRange& r : imap::content_ranges(structures[k], needs.content_items)) {
        ranges.back().emplace_back(r.offset, r.length);
        octets.back() += r.length;
      }
    }
    std::size_t answered = uids.size(), total = 0;
    for (std::size_t k = 0; k < octets.size(); ++k) {
      total += octets[k];
      if (total > kFetchBatchOctets && k > 0) {
        answered = wanted[k].at;
        wanted.resize(k);
        if (needs.structure) structures.resize(k);
        if (!ranges.empty()) ranges.resize(k);
        break;
      }
    }
    // RFC 9051 6.4.5: \Seen is set first, in one durable write for what is answered.
    std::map<std::uint32_t, store::FlagChange> seen;
    if (needs.set_seen) {
      std::vector<std::uint32_t> unseen;
      for (const Wanted& w : wanted)
        if (!(w.info->flags & store::kFlagSeen)) unseen.push_back(w.info->uid);
      if (!unseen.empty()) {
        auto r = m.update_flags(user, name, unseen, store::FlagOp::Add, store::kFlagSeen, {});
        if (!r) return Verdict::failed(r.error());
        for (const store::FlagChange& c : r->changed) seen[c.uid] = c;
      }
    }
    // RFC 7162 3.1.4.1: CHANGEDSINCE leaves out what did not change (\Seen set now is a change).
    std::vector<std::size_t> keep;
    for (std::size_t k = 0; k < wanted.size(); ++k) {
      const store::MessageInfo& info = *wanted[k].info;
      if (!needs.changed_since || info.modseq > *needs.changed_since || seen.count(info.uid)) keep.push_back(k);
    }
    std::vector<store::MessageRef> refs;
    std::vector<store::Mailboxes::OctetRanges> kept_ranges;
    for (std::size_t k : keep) {
      refs.push_back(wanted[k].info->ref);
      if (!ranges.empty()) kept_ranges.push_back(std::move(ranges[k]));
    }
    // The octets, by how they are read: streamed from the row as they are sent (BODY[] or
    // RFC822 alone, no tree asked, a large message), whole (no tree asked, or a small message:
    // one row read costs less than opening its blob), or only the ranges the items read of the
    // tree (a header, a part, a partial window).
    std::vector<std::vector<imap::OctetPiece>> contents(needs.content ? refs.size() : 0);
    std::vector<std::uint64_t> sizes(contents.size());
    std::vector<std::shared_ptr<proto::Source>> sources(contents.size());
    std::vector<std::size_t> whole, ranged;
    for (std::size_t j = 0; j < contents.size(); ++j) {
      const std::int64_t size = wanted[keep[j]].info->size;
      if (needs.structure && size >= kWholeBelow) {
        ranged.push_back(j);
        continue;
      }
      if (!needs.structure && needs.stream && size >= kStreamFrom) {
        auto source = m.open_message(refs[j]);
        if (!source) return Verdict::failed(source.error());
        if (auto known = (*source)->size()) {
          sizes[j] = *known;
          sources[j] = std::move(*source);
          continue;
        }
      }
      whole.push_back(j);
    }
    auto pick = [&refs](const std::vector<std::size_t>& js) {
      std::vector<store::MessageRef> out;
      for (std::size_t j : js) out.push_back(refs[j]);
      return out;
    };
    auto read = m.read_messages(pick(whole));
    if (!read) return Verdict::failed(read.error());
    for (std::size_t i = 0; i < whole.size(); ++i) {
      sizes[whole[i]] = (*read)[i].size();
      contents[whole[i]].push_back({0, std::move((*read)[i])});
    }
    std::vector<store::Mailboxes::OctetRanges> ranged_ranges;
    for (std::size_t j : ranged) ranged_ranges.push_back(std::move(kept_ranges[j]));
    auto pieces = m.read_message_ranges(pick(ranged), ranged_ranges);
    if (!pieces) return Verdict::failed(pieces.error());
    for (std::size_t i = 0; i < ranged.size(); ++i) {
      sizes[ranged[i]] = (*pieces)[i].size;
      for (auto& [offset, piece] : (*pieces)[i].pieces) contents[ranged[i]].push_back({offset, std::move(piece)});
    }
    std::vector<imap::FetchedMessage> out;
    for (std::size_t j = 0; j < keep.size(); ++j) {
      const store::MessageInfo& info = *wanted[keep[j]].info;
      const std::uint32_t uid = info.uid;
      imap::FetchedMessage f;
      f.state = message_state(info);
      if (auto s = seen.find(uid); s != seen.end()) {
        f.state = {uid, imap_flags(s->second.flags, s->second.keywords), s->second.modseq};
        f.seen_set = true;
      }
      f.internal_date = info.internal_date;
      f.size = static_cast<std::uint64_t>(info.size);
      if (needs.structure) f.structure = std::move(structures[keep[j]]);
      if (needs.content) {
        f.content = std::move(contents[j]);
        f.source = std::move(sources[j]);
        f.size = sizes[j];
      }
      out.push_back(std::move(f));
    }
    return Verdict::fetched(std::move(out), answered);
  });
}

Verdict StoreImapSession::search(const imap::SearchKey& key, const std::vector<std::uint32_t>& view,
                                 const std::vector<std::uint32_t>& saved) {
  store::Store* store = &store_;
  return off_loop("SEARCH", [store, user = user_, name = selected_, key, view, saved] {
    store::Mailboxes& m = store->mailboxes();
    auto messages = m.list_messages(user, name);
    if (!messages) return Verdict::failed(messages.error());
    std::map<std::uint32_t, const store::MessageInfo*> by_uid;
    for (const store::MessageInfo& info : *messages) by_uid[info.uid] = &info;
    const imap::SearchContext context = imap::SearchContext::of(view, saved);
    std::vector<imap::SearchMatch> found;
    for (std::size_t i = 0; i < view.size(); ++i) {
      auto it = by_uid.find(view[i]);
      if (it == by_uid.end()) continue;  // expunged meanwhile
      const store::MessageInfo& info = *it->second;
      const imap::Flags flags = imap_flags(info.flags, info.keywords);
      LazyText text(m, info.ref);
      imap::MessageView v;
      v.seq = static_cast<std::uint32_t>(i + 1);
      v.uid = info.uid;
      v.flags = flags.system;
      v.keywords = flags.keywords;
      v.internal_date = info.internal_date;
      v.size = static_cast<std::uint64_t>(info.size);
      v.modseq = info.modseq;
      v.text = &text;
      if (imap::matches(key, v, context)) found.push_back({v.seq, v.uid, v.modseq});
    }
    return Verdict::found(std::move(found));
  });
}

Verdict StoreImapSession::status(const std::string& mailbox) {
  store::Store* store = &store_;
  return off_loop("STATUS", [store, user = user_, mailbox] {
    store::Mailboxes& m = store->mailboxes();
    const std::string name = is_inbox(mailbox) ? "INBOX" : mailbox;
    auto folder = m.find_folder(user, name);
    if (!folder) return Verdict::failed(folder.error());
    if (!*folder && name != "INBOX") return Verdict::reject(RespCode::NonExistent, "No such mailbox");
    // The messages before the counters: listing numbers rows that other programs wrote, which
    // moves UIDNEXT.
    auto messages = m.list_messages(user, name);
    if (!messages) return Verdict::failed(messages.error());
    auto again = m.find_folder(user, name);
    if (!again) return Verdict::failed(again.error());
    if (*again) return Verdict::counts(imap_status(**again, *messages));
    if (name != "INBOX") return Verdict::reject(RespCode::NonExistent, "No such mailbox");  // deleted meanwhile
    // INBOX always exists (RFC 9051 5.1): its row is made, with a UIDVALIDITY, when first needed.
    auto made = m.ensure_folder(user, name);
    if (!made) return Verdict::failed(made.error());
    return Verdict::counts(imap_status(*made, *messages));
  });
}

}  // namespace cmail::backends
