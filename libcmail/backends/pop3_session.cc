// The Store-backed POP3 session: login, maildrop lock, listing, retrieval, deletion at QUIT.
// See cmail/backends/pop3_session.h.
#include <cmail/backends/pop3_session.h>

#include <cmail/backends/log_line.h>
#include <cmail/mail/fields.h>
#include <cmail/proto/message.h>
#include <cmail/store/directory.h>

#include <map>
#include <mutex>
#include <set>
#include <sstream>

namespace cmail::backends {

using pop3::RespCode;
using pop3::Verdict;

namespace {

// Sessions of this process that may hold a lock: a lock recorded for this process by a
// session no longer here is stale (its release was lost), so it is taken over.
std::mutex g_live_mu;
std::set<std::string> g_live;

void set_live(const std::string& session, bool live) {
  std::lock_guard lock(g_live_mu);
  if (live) g_live.insert(session);
  else g_live.erase(session);
}

bool is_live(const std::string& session) {
  std::lock_guard lock(g_live_mu);
  return g_live.count(session) > 0;
}

// RFC 1939 7: a unique-id is 1 to 70 characters in the range 0x21 to 0x7E.
bool valid_uid(std::string_view s) {
  if (s.empty() || s.size() > 70) return false;
  for (char c : s)
    if (c < 0x21 || c > 0x7E) return false;
  return true;
}

// The form of the unique-ids made from UIDVALIDITY and UID: never used for a legacy one.
bool looks_derived(std::string_view s) {
  std::size_t dot = s.find('.');
  if (dot == 0 || dot == std::string_view::npos || dot + 1 == s.size()) return false;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (i != dot && (s[i] < '0' || s[i] > '9')) return false;
  return true;
}

}  // namespace

Pop3LockHolder Pop3LockHolder::current(std::string session) {
  Pop3LockHolder h;
  static_cast<store::ProcessIdentity&>(h) = store::this_process();
  h.session = std::move(session);
  return h;
}

std::string Pop3LockHolder::to_string() const {
  return "host=" + host + " boot=" + boot_id + " pid=" + std::to_string(pid) + " start=" +
         std::to_string(start_time) + " session=" + session;
}

std::optional<Pop3LockHolder> Pop3LockHolder::parse(std::string_view text) {
  Pop3LockHolder h;
  int seen = 0;
  std::istringstream words{std::string(text)};
  std::string w;
  try {
    while (words >> w) {
      auto eq = w.find('=');
      if (eq == std::string::npos) return std::nullopt;
      std::string key = w.substr(0, eq), value = w.substr(eq + 1);
      if (key == "host") h.host = value, seen |= 1;
      else if (key == "boot") h.boot_id = value, seen |= 2;
      else if (key == "pid") h.pid = std::stoll(value), seen |= 4;
      else if (key == "start") h.start_time = std::stoull(value), seen |= 8;
      else if (key == "session") h.session = value, seen |= 16;
    }
  } catch (...) {
    return std::nullopt;
  }
  if (seen != 31) return std::nullopt;
  return h;
}

bool pop3_lock_holder_gone(const std::optional<std::string>& holder) {
  // No holder recorded: a lock set by the original cmail-popd (or by hand). The original refuses
  // any schema but 9, so it cannot be running on this database: a leftover, such as the lock it
  // leaked when a user database failed to open (docs/compatibility.md#pop3-maildrop-lock).
  if (!holder) return true;
  auto h = Pop3LockHolder::parse(*holder);
  if (!h) return false;  // unknown form: maybe someone alive; cmail-admin popd unlock frees it
  const store::ProcessIdentity& me = store::this_process();
  if (h->host == me.host && h->boot_id == me.boot_id && h->pid == me.pid && h->start_time == me.start_time)
    return !is_live(h->session);  // this process: gone if that session ended
  // Another machine's processes cannot be seen; on this one: another boot, no such process, or
  // the pid reused.
  return store::process_gone(*h);
}

std::vector<pop3::Listing> pop3_listing(std::uint32_t uidvalidity, const std::vector<store::MessageInfo>& messages) {
  std::vector<pop3::Listing> out;
  out.reserve(messages.size());
  std::set<std::string_view> legacy;
  for (const store::MessageInfo& m : messages) {
    pop3::Listing l;
    l.size = static_cast<std::uint64_t>(m.wire_size >= 0 ? m.wire_size : m.size);
    // The original's unique-id (its mail_ident) for the first message that had it, so that
    // clients leaving mail on the server see the same ids after the upgrade; otherwise one
    // made of UIDVALIDITY and UID: unique in the folder, stable, never reused.
    if (m.legacy_uidl && valid_uid(*m.legacy_uidl) && !looks_derived(*m.legacy_uidl) &&
        legacy.insert(*m.legacy_uidl).second) {
      l.uid = *m.legacy_uidl;
    } else {
      l.uid = std::to_string(uidvalidity) + "." + std::to_string(m.uid);
    }
    out.push_back(std::move(l));
  }
  return out;
}

StorePop3Session::StorePop3Session(store::Store& store, proto::PeerInfo peer, proto::Executor executor,
                                   std::shared_ptr<AuthGuard> guard)
    : store_(store),
      peer_(std::move(peer)),
      executor_(std::move(executor)),
      guard_(std::move(guard)),
      alive_(std::make_shared<StorePop3Session*>(this)),
      session_id_(mail::new_queue_id()),
      owner_(Pop3LockHolder::current(session_id_).to_string()) {
  set_live(session_id_, true);
}

StorePop3Session::~StorePop3Session() {
  *alive_ = nullptr;
  if (releasing_) return;  // update()'s task releases the lock and ends the session's record
  if (!locked_) {
    set_live(session_id_, false);
    return;
  }
  // A session that ends without QUIT (disconnect, timeout, shutdown): release, delete nothing.
  store::Store* store = &store_;
  std::string user = user_, owner = owner_, id = session_id_;
  executor_.run_blocking([store, user, owner, id] {
    (void)store->directory().release_popd(user, owner);
    set_live(id, false);
  });
}

void StorePop3Session::log(std::string_view line) {
  if (logger_) logger_(0, line);  // the engine's diagnostics are errors
}

namespace {

struct LoginOutcome {
  Verdict verdict = Verdict::pending();
  std::string user;
  std::vector<store::MessageRef> refs;
  std::vector<std::uint64_t> sizes;
  bool locked = false;
  bool bad_credentials = false;  // for the AuthGuard: a failure to count
  bool authenticated = false;    // the password was right (whatever became of the lock)
  std::string denied;            // authenticated, yet no maildrop: why, for the log
  std::vector<std::pair<int, std::string>> notes;  // for the log (level, line), written on the loop thread
};

// The blocking part of a login: the check (the password's, or SCRAM's identity), lock, listing
// (a worker thread).
void blocking_login(store::Store& store, const sasl::Credentials& creds, const std::string& owner,
                    const std::function<Result<store::Identity>(store::Store&)>& check, LoginOutcome& out) {
  auto id = check(store);
  if (!id) {
    if (id.error().is_not_found()) {
      out.bad_credentials = true;
      out.verdict = Verdict::reject(RespCode::Auth, "Invalid user name or password");
    } else {
      out.notes.emplace_back(0, "POP3 login of " + creds.authcid + ": " + id.error().to_string());
      out.verdict = Verdict::failed(id.error());
    }
    return;
  }
  out.authenticated = true;
  // An alias logs in to its target (docs/compatibility.md#users-aliases).
  const std::string user = id->authorized;
  auto lock = store.directory().lock_popd(user, owner, pop3_lock_holder_gone);
  if (!lock) {
    out.verdict = Verdict::failed(lock.error());
    return;
  }
  switch (lock->outcome) {
    case store::PopLock::Outcome::NotEnabled:
      out.denied = "pop3-not-enabled";
      out.verdict = Verdict::reject(RespCode::Auth, "POP3 access is not enabled for this account");
      return;
    case store::PopLock::Outcome::InUse:
      out.denied = "maildrop-in-use";
      // RFC 2449 8.1.1: another session has the maildrop.
      out.verdict = Verdict::reject(RespCode::InUse, "Maildrop is locked by another session");
      return;
    case store::PopLock::Outcome::Locked:
      break;
  }
  if (lock->taken_over)
    out.notes.emplace_back(1, "took over the maildrop lock of " + user + " from " +
                                  lock->previous.value_or("a holder not recorded (cmail's pop_lock)") +
                                  ": the holder is gone");
  auto fail = [&](const Status& st) {
    // The lock is released again at once (cmail kept it, docs/compatibility.md#pop3-maildrop-lock).
    (void)store.directory().release_popd(user, owner);
    out.denied = "maildrop-unavailable";
    out.notes.emplace_back(0, "maildrop of " + user + " unavailable: " + st.to_string());
    out.verdict = Verdict::reject(RespCode::SysTemp, "Maildrop unavailable, try again later");
  };
  auto messages = store.mailboxes().list_messages(user, "INBOX");
  if (!messages) return fail(messages.error());
  auto folder = store.mailboxes().find_folder(user, "INBOX");
  if (!folder) return fail(folder.error());
  for (store::MessageInfo& m : *messages) {
    if (m.wire_size >= 0) continue;  // rows written without it: measure the text once
    auto text = store.mailboxes().read_message(m.ref);
    if (!text) return fail(text.error());
    m.wire_size = static_cast<std::int64_t>(proto::wire_size(*text));
  }
  for (const store::MessageInfo& m : *messages) {
    out.refs.push_back(m.ref);
    out.sizes.push_back(static_cast<std::uint64_t>(m.wire_size));
  }
  out.user = user;
  out.locked = true;
  out.verdict = Verdict::maildrop(user, pop3_listing(*folder ? (*folder)->uidvalidity : 0, *messages));
}

}  // namespace

Verdict StorePop3Session::login(const sasl::Credentials& creds) {
  return check_login(creds, false, [creds](store::Store& st) {
    return st.directory().authenticate(creds.authcid, creds.password);
  });
}

Verdict StorePop3Session::scram_credentials(const std::string& authcid) {
  // The guard as for any login, before anything is looked up; a user without credentials gets
  // the store's made-up ones (RFC 5802 5.1), so the answer does not tell who exists.
  const AuthGuard::Admission a = admit_attempt(guard_.get(), "pop3", peer_.address, authcid, logger_);
  if (a.refused != AuthGuard::Refusal::None)
    return Verdict::reject(RespCode::SysTemp, "Too many failed logins, try again later");  // RFC 3206 4
  std::weak_ptr<StorePop3Session*> weak = alive_;
  store::Store* store = &store_;
  proto::Executor ex = executor_;
  run_after(ex, a.wait, [weak, store, ex, authcid] {
    ex.run_blocking([weak, store, ex, authcid] {
      auto creds = store->directory().scram_credentials(authcid);
      ex.post([weak, creds, authcid] {
        auto alive = weak.lock();
        if (!alive || !*alive || !(**alive).complete_) return;
        StorePop3Session& self = **alive;
        if (!creds) {
          if (self.logger_) self.logger_(0, "POP3 login of " + authcid + ": " + creds.error().to_string());
          return self.complete_(Verdict::failed(creds.error()));
        }
        self.complete_(Verdict::scram(*creds));
      });
    });
  });
  return Verdict::pending();
}

Verdict StorePop3Session::scram_login(const sasl::ScramResult& r) {
  return check_login(sasl::Credentials{r.authzid, r.authcid, ""}, true, [r](store::Store& st) -> Result<store::Identity> {
    if (!r.proved) return Status::not_found("authentication failed");  // RFC 5802 7: invalid-proof
    return st.directory().scram_identity(r.authcid);
  });
}

Verdict StorePop3Session::check_login(const sasl::Credentials& creds, bool admitted,
                                      std::function<Result<store::Identity>(store::Store&)> check) {
  // The guard first (cmail/backends/auth_guard.h): an address or user refused is answered at
  // once, without the password check; otherwise the check waits for the guard's delay. SCRAM
  // asked it before the lookup (`admitted`).
  std::shared_ptr<AuthGuard> guard = guard_;
  const std::string addr = peer_.address;
  const auto logger = logger_;
  std::chrono::milliseconds wait{0};
  if (!admitted) {
    const AuthGuard::Admission a = admit_attempt(guard.get(), "pop3", addr, creds.authcid, logger);
    if (a.refused != AuthGuard::Refusal::None) {
      // RFC 3206 4: SYS/TEMP, a temporary problem (the password may be right: try later).
      return Verdict::reject(RespCode::SysTemp, "Too many failed logins, try again later");
    }
    wait = a.wait;
  }
  // Proxy authorization is not offered: an authzid must name the user who logs in (RFC 4616 2).
  const bool proxy = !creds.authzid.empty() && creds.authzid != creds.authcid;
  std::weak_ptr<StorePop3Session*> weak = alive_;
  store::Store* store = &store_;
  proto::Executor ex = executor_;
  std::string owner = owner_;
  run_after(ex, wait, [weak, store, ex, creds, owner, proxy, guard, addr, logger, check = std::move(check)] {
    ex.run_blocking([weak, store, ex, creds, owner, proxy, guard, addr, logger, check] {
      auto out = std::make_shared<LoginOutcome>();
      if (proxy) {
        out->bad_credentials = true;
        out->verdict = Verdict::reject(RespCode::Auth, "Invalid user name or password");
      } else {
        blocking_login(*store, creds, owner, check, *out);
      }
      ex.post([weak, store, ex, owner, out, proxy, guard, addr, logger, user = creds.authcid] {
        // Counted and logged even when the client has hung up meanwhile.
        std::chrono::milliseconds more{0};
        if (out->bad_credentials) {
          if (guard) more = guard->failed(addr, user);
          if (logger)
            logger(0, auth_log("auth failed", "pop3", addr, user)
                          .add("reason", proxy ? "authzid-mismatch" : "bad-credentials")
                          .str());
        } else if (out->authenticated) {
          if (guard) guard->succeeded(addr, user);
          if (logger) {
            LogLine l = auth_log(out->denied.empty() ? "auth ok" : "login denied", "pop3", addr, user);
            if (!out->denied.empty()) l.add("reason", out->denied);
            logger(1, l.str());
          }
        }
        auto alive = weak.lock();
        if (!alive || !*alive || !(**alive).complete_) {
          // The connection ended meanwhile: give the lock back.
          if (out->locked)
            ex.run_blocking([store, user = out->user, owner] { (void)store->directory().release_popd(user, owner); });
          return;
        }
        StorePop3Session& self = **alive;
        if (self.logger_)
          for (const auto& [level, n] : out->notes) self.logger_(level, n);
        if (out->locked) {
          self.user_ = out->user;
          self.refs_ = std::move(out->refs);
          self.sizes_ = std::move(out->sizes);
          self.locked_ = true;
        }
        // A failure's reply waits for the guard (a lock is never held: only bad credentials wait).
        run_after(ex, more, [weak, out] {
          auto again = weak.lock();
          if (again && *again && (**again).complete_) (**again).complete_(std::move(out->verdict));
        });
      });
    });
  });
  return Verdict::pending();
}

Verdict StorePop3Session::retrieve(std::size_t index) {
  if (index >= refs_.size()) return Verdict::failed(Status::internal("message index out of range"));
  if (sizes_[index] > kStreamAbove) return stream(index);
  // Clients read forward: what lies behind is not wanted again.
  ahead_.erase(ahead_.begin(), ahead_.lower_bound(index));
  auto it = ahead_.find(index);
  if (it != ahead_.end()) {
    std::string text = std::move(it->second);
    ahead_.erase(it);
    read_ahead(index + 1);
    return Verdict::message(std::move(text));
  }
  waiting_ = index;
  if (!reading_) read_ahead(index);  // else: answered when the read in flight comes back
  return Verdict::pending();
}

Verdict StorePop3Session::stream(std::size_t index) {
  // A large message is read from its row as the engine sends it, never whole.
  std::weak_ptr<StorePop3Session*> weak = alive_;
  store::Store* store = &store_;
  proto::Executor ex = executor_;
  store::MessageRef ref = refs_[index];
  executor_.run_blocking([weak, store, ex, ref] {
    auto opened = store->mailboxes().open_message(ref);
    auto result = std::make_shared<decltype(opened)>(std::move(opened));
    ex.post([weak, result] {
      auto alive = weak.lock();
      if (!alive || !*alive || !(**alive).complete_) return;
      StorePop3Session& self = **alive;
      if (*result) return self.complete_(Verdict::message(std::shared_ptr<proto::Source>(std::move(**result))));
      if (result->error().is_not_found())  // expunged meanwhile, e.g. over IMAP
        return self.complete_(Verdict::reject(RespCode::None, "Message no longer exists"));
      self.complete_(Verdict::failed(result->error()));
    });
  });
  return Verdict::pending();
}

void StorePop3Session::read_ahead(std::size_t first) {
  if (reading_ || first >= refs_.size() || ahead_.count(first)) return;
  // One blocking task reads the wanted message and the small ones after it, so that a client
  // fetching one message after another mostly gets its answer without a trip to a worker.
  constexpr std::uint64_t kBudget = kStreamAbove;
  constexpr std::size_t kMost = 32;
  const bool wanted = waiting_ == first;
  std::vector<std::pair<std::size_t, store::MessageRef>> batch;
  std::uint64_t bytes = 0;
  for (std::size_t i = first; i < refs_.size() && batch.size() < kMost; ++i) {
    if (!batch.empty() && (sizes_[i] > kBudget || bytes + sizes_[i] > kBudget)) break;
    if (batch.empty() && !wanted && sizes_[i] > kBudget) return;  // large: read when asked for
    batch.emplace_back(i, refs_[i]);
    bytes += sizes_[i];
  }
  reading_ = true;
  std::weak_ptr<StorePop3Session*> weak = alive_;
  store::Store* store = &store_;
  proto::Executor ex = executor_;
  executor_.run_blocking([weak, store, ex, batch] {
    using Read = std::vector<std::pair<std::size_t, Result<std::string>>>;
    auto read = std::make_shared<Read>();
    for (const auto& [i, ref] : batch) read->emplace_back(i, store->mailboxes().read_message(ref));
    ex.post([weak, read] {
      auto alive = weak.lock();
      if (!alive || !*alive || !(**alive).complete_) return;
      StorePop3Session& self = **alive;
      self.reading_ = false;
      std::optional<Status> failure;  // of the message a RETR waits for
      for (auto& [i, text] : *read) {
        if (text) self.ahead_[i] = std::move(*text);
        else if (self.waiting_ == i) failure = text.error();
      }
      if (!self.waiting_) return;
      const std::size_t want = *self.waiting_;
      if (failure) {
        self.waiting_.reset();
        if (failure->is_not_found())  // expunged meanwhile, e.g. over IMAP
          return self.complete_(Verdict::reject(RespCode::None, "Message no longer exists"));
        return self.complete_(Verdict::failed(*failure));
      }
      auto it = self.ahead_.find(want);
      if (it == self.ahead_.end()) return self.read_ahead(want);  // the read was for others
      std::string text = std::move(it->second);
      self.ahead_.erase(it);
      self.waiting_.reset();
      self.read_ahead(want + 1);
      self.complete_(Verdict::message(std::move(text)));
    });
  });
}

Verdict StorePop3Session::update(const std::vector<std::size_t>& deleted) {
  std::vector<store::MessageRef> refs;
  for (std::size_t i : deleted)
    if (i < refs_.size()) refs.push_back(refs_[i]);
  std::weak_ptr<StorePop3Session*> weak = alive_;
  store::Store* store = &store_;
  proto::Executor ex = executor_;
  std::string user = user_, owner = owner_, id = session_id_;
  locked_ = false;  // the task below releases, whatever happens to this session
  releasing_ = true;
  executor_.run_blocking([weak, store, ex, refs, user, owner, id] {
    // RFC 1939 6: every deletion in one durable transaction, then the lock goes, then +OK.
    Status st = refs.empty() ? Status() : store->mailboxes().expunge(user, refs);
    (void)store->directory().release_popd(user, owner);
    set_live(id, false);
    ex.post([weak, st, n = refs.size(), user] {
      auto alive = weak.lock();
      if (!alive || !*alive || !(**alive).complete_) return;
      StorePop3Session& self = **alive;
      if (!st.ok()) {
        self.complete_(Verdict::failed(st));
        return;
      }
      if (n && self.logger_) self.logger_(1, LogLine("maildrop updated").add("user", user).add("deleted", n).str());
      self.complete_(Verdict::accept());
    });
  });
  return Verdict::pending();
}

}  // namespace cmail::backends
