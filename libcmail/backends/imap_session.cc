// The Store-backed IMAP session: log-in, LIST and STATUS. See cmail/backends/imap_session.h.
#include <cmail/backends/imap_session.h>

#include <cmail/backends/log_line.h>
#include <cmail/proto/ascii.h>
#include <cmail/store/directory.h>

namespace cmail::backends {

using imap::MailboxInfo;
using imap::MailboxStatus;
using imap::RespCode;
using imap::Verdict;

namespace {

// RFC 9051 5.1: INBOX is case-insensitive; the engine asks for it in upper case.
bool is_inbox(std::string_view name) { return proto::equals_upper(name, "INBOX"); }

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
    // RFC 8438 2: the sum of the messages' RFC822.SIZE, which counts CRLF line ends.
    st.size += static_cast<std::uint64_t>(m.wire_size >= 0 ? m.wire_size : m.size);
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

// The blocking part of a log-in: password check and the imapd row (a worker thread).
void blocking_login(store::Store& store, const sasl::Credentials& creds, LoginOutcome& out) {
  // argon2id, or a legacy hash that is replaced after a good check (cmail/store/directory.h).
  auto id = store.directory().authenticate(creds.authcid, creds.password);
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
}

}  // namespace

Verdict StoreImapSession::login(const sasl::Credentials& creds) {
  // The guard first (cmail/backends/auth_guard.h): an address or user refused is answered at
  // once, without the password check; otherwise the check waits for the guard's delay.
  std::shared_ptr<AuthGuard> guard = guard_;
  const std::string addr = peer_.address;
  const LogSink logger = logger_;
  const AuthGuard::Admission a = admit_attempt(guard.get(), "imap", addr, creds.authcid, logger);
  if (a.refused != AuthGuard::Refusal::None) {
    // RFC 9051 7.1: UNAVAILABLE, a temporary failure (the password may be right: try later).
    return Verdict::reject(RespCode::Unavailable, "Too many failed logins, try again later");
  }
  // Proxy authorization is not offered: an authzid must name the user who logs in (RFC 4616 2).
  const bool proxy = !creds.authzid.empty() && creds.authzid != creds.authcid;
  std::weak_ptr<StoreImapSession*> weak = alive_;
  store::Store* store = &store_;
  proto::Executor ex = executor_;
  run_after(ex, a.wait, [weak, store, ex, creds, proxy, guard, addr, logger] {
    ex.run_blocking([weak, store, ex, creds, proxy, guard, addr, logger] {
      auto out = std::make_shared<LoginOutcome>();
      if (proxy) {
        out->bad_credentials = true;
        out->verdict = Verdict::reject(RespCode::AuthenticationFailed, "Invalid user name or password");
      } else {
        blocking_login(*store, creds, *out);
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
        run_after(ex, more, [weak, out] {
          auto alive = weak.lock();
          if (!alive || !*alive || !(**alive).complete_) return;  // the connection ended meanwhile
          StoreImapSession& self = **alive;
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
    return Verdict::mailboxes(imap_mailboxes(*folders));
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
