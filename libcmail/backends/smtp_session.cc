// The Store-backed SMTP session: authentication, routing, Received header, durable delivery.
#include <cmail/backends/smtp_session.h>

#include <cmail/backends/log_line.h>
#include <cmail/backends/dkim_signing.h>
#include <cmail/mail/auth_results.h>
#include <cmail/mail/delivery.h>
#include <cmail/mail/fields.h>
#include <cmail/proto/ascii.h>
#include <cmail/store/directory.h>
#include <cmail/store/spool.h>

#include <sys/random.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <set>

namespace cmail::backends {

using smtp::Verdict;

// How much of a spooled message a delivery report reads to find the message's header.
constexpr std::size_t kReportHeaderBytes = 64 * 1024;


StoreSmtpSession::StoreSmtpSession(store::Store& store, SmtpBackendOptions options, proto::PeerInfo peer,
                                   proto::Executor executor)
    : store_(store),
      lookups_(store.cached_lookups()),
      options_(std::move(options)),
      peer_(std::move(peer)),
      executor_(std::move(executor)),
      alive_(std::make_shared<StoreSmtpSession*>(this)),
      hold_(options_.budget) {}

StoreSmtpSession::~StoreSmtpSession() { *alive_ = nullptr; }

void StoreSmtpSession::log(std::string_view line) {
  if (logger_) logger_(0, line);  // the engine's diagnostics are errors
}

Verdict StoreSmtpSession::auth(const smtp::SessionInfo&, const sasl::Credentials& creds) {
  return check_auth(creds, false, [creds](store::Store& st) {
    return st.directory().authenticate(creds.authcid, creds.password);
  });
}

Verdict StoreSmtpSession::scram_credentials(const smtp::SessionInfo&, const std::string& authcid) {
  // The guard as for any AUTH, before anything is looked up; a user without credentials gets
  // the store's made-up ones (RFC 5802 5.1), so the answer does not tell who exists.
  std::shared_ptr<AuthGuard> guard = options_.auth_guard;
  const AuthGuard::Admission a = admit_attempt(guard.get(), "smtp", peer_.address, authcid, logger_);
  if (a.refused != AuthGuard::Refusal::None)
    return Verdict::reject(smtp::reply(454, {4, 7, 0}, "Too many failed authentications, try again later"));
  std::weak_ptr<StoreSmtpSession*> weak = alive_;
  store::Store* store = &store_;
  proto::Executor ex = executor_;
  const auto logger = logger_;
  const std::string addr = peer_.address;
  run_after(ex, a.wait, [weak, store, ex, authcid, logger, addr] {
    ex.run_blocking([weak, store, ex, authcid, logger, addr] {
      auto creds = store->directory().scram_credentials(authcid);
      ex.post([weak, creds, logger, addr, authcid] {
        auto alive = weak.lock();
        if (!alive || !*alive || !(**alive).complete_) return;
        if (!creds) {
          if (logger) logger(0, auth_log("auth error", "smtp", addr, authcid).add("error", creds.error().to_string()).str());
          return (**alive).complete_(Verdict::reject(smtp::reply(454, {4, 7, 0}, "Temporary authentication failure")));
        }
        (**alive).complete_(Verdict::scram(*creds));
      });
    });
  });
  return Verdict::pending();
}

Verdict StoreSmtpSession::scram_auth(const smtp::SessionInfo&, const sasl::ScramResult& r) {
  return check_auth(sasl::Credentials{r.authzid, r.authcid, ""}, true, [r](store::Store& st) -> Result<store::Identity> {
    if (!r.proved) return Status::not_found("authentication failed");  // RFC 5802 7: invalid-proof
    return st.directory().scram_identity(r.authcid);
  });
}

Verdict StoreSmtpSession::check_auth(const sasl::Credentials& creds, bool admitted,
                                     std::function<Result<store::Identity>(store::Store&)> check) {
  // The guard first (cmail/backends/auth_guard.h): an address or user refused is answered at
  // once, without the password check; otherwise the check waits for the guard's delay.
  std::shared_ptr<AuthGuard> guard = options_.auth_guard;
  const std::string addr = peer_.address;
  const auto logger = logger_;
  std::chrono::milliseconds wait{0};
  if (!admitted) {
    const AuthGuard::Admission a = admit_attempt(guard.get(), "smtp", addr, creds.authcid, logger);
    if (a.refused != AuthGuard::Refusal::None) {
      // RFC 4954 6: 454 4.7.0, a temporary authentication failure.
      return Verdict::reject(smtp::reply(454, {4, 7, 0}, "Too many failed authentications, try again later"));
    }
    wait = a.wait;
  }
  // Proxy authorization is not offered: an authzid must name the user who logs in (RFC 4616 2).
  const bool proxy = !creds.authzid.empty() && creds.authzid != creds.authcid;
  std::weak_ptr<StoreSmtpSession*> weak = alive_;
  store::Store* store = &store_;
  proto::Executor ex = executor_;
  run_after(ex, wait, [weak, store, ex, user = creds.authcid, check = std::move(check), proxy, guard, addr, logger] {
    ex.run_blocking([weak, store, ex, user, check, proxy, guard, addr, logger] {
      Result<store::Identity> id = proxy ? Result<store::Identity>(Status::not_found("authzid differs")) : check(*store);
      ex.post([weak, ex, id, proxy, guard, addr, logger, user] {
        auto answer = [weak](Verdict v) {
          auto alive = weak.lock();
          if (alive && *alive && (**alive).complete_) (**alive).complete_(std::move(v));
        };
        if (id) {
          if (guard) guard->succeeded(addr, user);
          if (logger.shows(1)) logger(1, auth_log("auth ok", "smtp", addr, user).add("identity", id->authorized).str());
          // The authorized identity (docs/compatibility.md#users-aliases).
          return answer(Verdict::authenticated(id->authorized));
        }
        if (!id.error().is_not_found()) {
          if (logger) logger(0, auth_log("auth error", "smtp", addr, user).add("error", id.error().to_string()).str());
          return answer(Verdict::reject(smtp::reply(454, {4, 7, 0}, "Temporary authentication failure")));
        }
        // Counted even when the client has hung up meanwhile; the reply waits for the guard.
        const std::chrono::milliseconds more = guard ? guard->failed(addr, user) : std::chrono::milliseconds(0);
        if (logger)
          logger(0, auth_log("auth failed", "smtp", addr, user)
                        .add("reason", proxy ? "authzid-mismatch" : "bad-credentials")
                        .str());
        run_after(ex, more, [answer] {
          answer(Verdict::reject(smtp::reply(535, {5, 7, 8}, "Authentication credentials invalid")));
        });
      });
    });
  });
  return Verdict::pending();
}

Verdict StoreSmtpSession::mail(const smtp::SessionInfo& info, const smtp::Path& from,
                               const smtp::MailParams& params) {
  reset();
  // A full budget refuses new transactions for now, as does a declared size that cannot fit.
  if (const auto& budget = options_.budget;
      budget && (budget->spent() || (params.size && !budget->fits(*params.size))))
    return Verdict::reject(insufficient_storage());
  // The directory as of now (one read), for this MAIL and the RCPTs that follow it.
  if (Status st = lookups_->refresh(); !st.ok()) return Verdict::failed(st);
  auto r = store::routing::check_sender(*lookups_, info.user, from);
  if (!r) return Verdict::failed(r.error());
  if (auto* reply = std::get_if<smtp::Reply>(&*r)) return Verdict::reject(*reply);
  sender_ = std::get<store::routing::Sender>(*r);
  params_ = params;
  if (options_.resolver && !info.user) {
    InboundCheckOptions co;
    co.resolver = options_.resolver;
    co.hostname = options_.hostname;
    co.timeout = options_.spf_timeout;
    checks_ = std::make_unique<InboundChecks>(co, executor_);
    checks_->start(peer_.address, info.helo, from.null() ? std::string() : from.address(), from.domain);
    forged_.emplace(options_.hostname);
  }
  // Mail an authenticated user submits is signed with its From domain's DKIM keys, if it has
  // any (docs/auth.md#dkim-signing); which domain is known once the header is in.
  if (info.user && options_.dkim_signing) signer_ = std::make_shared<mail::dkim::Signer>();
  return Verdict::accept("Sender OK");
}

Verdict StoreSmtpSession::rcpt(const smtp::SessionInfo&, const smtp::Path& to,
                               const smtp::RcptParams& params) {
  if (!sender_) return Verdict::reject(smtp::reply(503, {5, 5, 1}, "Need MAIL before RCPT"));
  auto r = store::routing::route_recipient(*lookups_, *sender_, to, params);
  if (!r) return Verdict::failed(r.error());
  if (auto* reply = std::get_if<smtp::Reply>(&*r)) return Verdict::reject(*reply);
  auto& recipient = std::get<store::routing::Recipient>(*r);
  // A recipient given again gets its 250 but no second copy: one per mailbox for local
  // delivery, one per address (domain in any case) and destination for the queue.
  auto same = [&](const store::routing::Recipient& e) {
    using Kind = store::routing::Recipient::Kind;
    if (e.kind != recipient.kind || e.target != recipient.target) return false;
    return recipient.kind == Kind::Store ||
           (e.path.local == recipient.path.local &&
            proto::ascii_lower(e.path.domain) == proto::ascii_lower(recipient.path.domain));
  };
  if (std::none_of(recipients_.begin(), recipients_.end(), same)) recipients_.push_back(std::move(recipient));
  return Verdict::accept("Recipient OK");
}

void StoreSmtpSession::data_chunk(std::string_view bytes) {
  if (checks_) checks_->feed(bytes);  // the message as it came
  if (!params_.requiretls && !tls_required_.header_done()) tls_required_.feed(bytes);  // RFC 8689 4.1
  if (signer_) {
    signer_->feed(bytes);
    if (!signing_checked_ && signer_->header_done()) {
      signing_checked_ = true;
      auto domain = signer_->from_domain();
      if (domain) signing_keys_ = signing_keys(*lookups_, *domain);
      if (signing_keys_.empty()) signer_.reset();  // nothing to sign with: no more hashing
    }
  }
  if (!forged_) return take(bytes);
  // RFC 8601 5: our own authserv-id in a header field that came in is forged: dropped.
  std::string passed;
  forged_->feed(bytes, passed);
  take(passed);
}

void StoreSmtpSession::take(std::string_view bytes) {
  if (over_budget_ || !spool_error_.ok()) return;  // dropped; data_end() says why
  if (!hold_.take(bytes.size())) {
    over_budget_ = true;
    drop_body();
    return;
  }
  if (!spool_ && body_.size() + bytes.size() <= options_.spool_threshold) {
    body_.append(bytes);
    return;
  }
  if (!spool_) {
    // Too large to hold: the message goes on in a file, and so does what came so far.
    auto spool = store_.create_spool();
    if (!spool) {
      spool_error_ = spool.error();
    } else {
      spool_ = std::move(*spool);
      spool_error_ = spool_->append(body_);
      body_.clear();
      body_.shrink_to_fit();
    }
  }
  if (spool_error_.ok()) spool_error_ = spool_->append(bytes);
  if (!spool_error_.ok()) drop_body();
}

void StoreSmtpSession::drop_body() {
  body_.clear();
  body_.shrink_to_fit();
  spool_.reset();
  hold_.release();
}

std::string StoreSmtpSession::received_header(const smtp::SessionInfo& info, const std::string& id) const {
  // RFC 5321 4.4: Received: from <helo> (<name> [<address>]) by <host> with <protocol> id <id>
  // for <recipient>; <date>. Continuation lines start with a tab (RFC 5322 2.2.3 folding).
  std::string h = "Received: from " + info.helo;
  if (options_.private_received) {
    h += " (remote)";
  } else {
    h += " (" + peer_.name;
    if (peer_.name != peer_.address) h += " [" + peer_.address + "]";
    h += ")";
  }
  h += "\r\n\tby " + options_.hostname + " (cmail) with " + info.protocol() + " id " + id;
  if (info.tls_info)
    h += "\r\n\t(using " + info.tls_info->version + " with cipher " + info.tls_info->cipher + ")";
  if (recipients_.size() == 1) h += "\r\n\tfor <" + recipients_[0].path.to_wire() + ">";
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  h += ";\r\n\t" + mail::rfc5322_date(now) + "\r\n";
  return h;
}

Verdict StoreSmtpSession::data_end(const smtp::SessionInfo& info) {
  if (!sender_) return Verdict::reject(smtp::reply(503, {5, 5, 1}, "Need MAIL command"));
  if (forged_) {
    std::string rest;
    forged_->finish(rest);
    take(rest);
    if (forged_->dropped()) log("dropped " + std::to_string(forged_->dropped()) + " forged Authentication-Results");
    forged_.reset();
  }
  if (over_budget_) {
    reset();
    return Verdict::reject(insufficient_storage());
  }
  if (!spool_error_.ok()) {
    Status st = spool_error_;
    reset();
    if (st.code() == Status::Code::NoSpace) {
      log("spool: " + st.to_string());
      return Verdict::reject(insufficient_storage());
    }
    return Verdict::failed(st);  // 451 4.3.0: the client tries again
  }
  if (checks_) {  // the sender checks: wait for their answers (bounded), then store
    waiting_ = info;
    bool now = false;
    std::weak_ptr<StoreSmtpSession*> weak = alive_;
    const std::uint64_t t = transaction_;
    checks_->finish([weak, t, &now] {
      auto alive = weak.lock();
      if (!alive || !*alive) return;
      StoreSmtpSession& self = **alive;
      if (self.transaction_ != t || !self.waiting_) return;
      if (!self.checking_) {
        now = true;  // answered within finish(): data_end goes on itself
        return;
      }
      self.checks_done();
    });
    if (now) {
      waiting_.reset();
      return deliver_message(info);
    }
    checking_ = true;
    return Verdict::pending();
  }
  if (signer_) return sign_message(info);
  return deliver_message(info);
}

void StoreSmtpSession::checks_done() {
  checking_ = false;
  smtp::SessionInfo info = std::move(*waiting_);
  waiting_.reset();
  Verdict v = deliver_message(info);
  if (v.kind() != proto::VerdictKind::Pending && complete_) complete_(std::move(v));
}

Verdict StoreSmtpSession::sign_message(const smtp::SessionInfo& info) {
  // RSA signatures cost a millisecond or two of CPU each: made on a worker, not the loop.
  signer_->finish();
  auto signer = std::move(signer_);
  auto keys = std::move(signing_keys_);
  waiting_ = info;
  std::weak_ptr<StoreSmtpSession*> weak = alive_;
  const std::uint64_t t = transaction_;
  proto::Executor ex = executor_;
  const auto logger = logger_;
  ex.run_blocking([weak, t, ex, signer, keys, logger] {
    std::string errors;
    std::string fields = sign_with(keys, *signer, static_cast<std::int64_t>(std::time(nullptr)), errors);
    ex.post([weak, t, fields = std::move(fields), errors = std::move(errors), logger] {
      if (!errors.empty() && logger) logger(0, "dkim signing failed: " + errors);
      auto alive = weak.lock();
      if (!alive || !*alive) return;
      StoreSmtpSession& self = **alive;
      if (self.transaction_ != t || !self.waiting_) return;
      self.dkim_fields_ = fields;
      smtp::SessionInfo info = std::move(*self.waiting_);
      self.waiting_.reset();
      Verdict v = self.deliver_message(info);
      if (v.kind() != proto::VerdictKind::Pending && self.complete_) self.complete_(std::move(v));
    });
  });
  return Verdict::pending();
}

Verdict StoreSmtpSession::deliver_message(const smtp::SessionInfo& info) {
  store::Delivery d;
  d.ident = mail::new_queue_id();
  d.submitter = peer_.name;
  d.protocol = proto::ascii_lower(info.protocol());
  std::optional<InboundResult> checked;
  if (checks_) checked = checks_->result();
  if (checked) {
    if (auto refusal = dmarc_refusal(*checked)) {
      log_dmarc(info, *checked, "rejected");
      reset();
      return Verdict::reject(*refusal);
    }
  }
  d.data = dkim_fields_ + (checked ? checked->header(options_.hostname) : std::string()) + received_header(info, d.ident);
  if (spool_) d.spool = std::move(spool_);
  else d.data += body_;
  d.dsn_ret = params_.ret;
  d.dsn_envid = params_.envid;
  // RFC 8689 4.1: REQUIRETLS tags the message; without it, "TLS-Required: No" does.
  d.tls_required = params_.requiretls       ? store::TlsRequired::Yes
                   : tls_required_.tls_optional() ? store::TlsRequired::No
                                                  : store::TlsRequired::Default;
  store::routing::plan_delivery(*sender_, recipients_, d);
  if (checked) quarantine(*checked, d);
  auto log_result = transaction_log(info, d, checked);  // the transaction line, once the store answered
  const std::string id = d.ident;
  const bool nothing = d.local.empty() && d.queued.empty();
  // RFC 3461 6.2.2: "delivered" reports for local recipients that asked for NOTIFY=SUCCESS,
  // made after the commit (the message's headers are all they return).
  std::shared_ptr<store::Delivery> report = success_report(d);
  // The message's octets stay counted against the budget until the commit is done.
  auto hold = std::make_shared<DataBudget::Hold>(std::move(hold_));
  reset();
  if (nothing) return Verdict::accept("OK " + id);  // every recipient routed to drop
  std::weak_ptr<StoreSmtpSession*> weak = alive_;
  proto::Executor ex = executor_;
  store::Store* store = &store_;
  store_.deliver(std::move(d), [weak, ex, id, report, store, hold, log_result](Status st) {
    hold->release();
    if (st.ok() && report) store->deliver(std::move(*report), nullptr);  // best effort, after the commit
    // Writer thread: the commit is durable (or failed as a whole). Hand the verdict back.
    ex.post([weak, id, st, log_result] {
      log_result(st);
      auto alive = weak.lock();
      if (!alive || !*alive || !(**alive).complete_) return;
      StoreSmtpSession& self = **alive;
      if (st.ok()) {
        self.complete_(Verdict::accept("OK queued as " + id));
      } else if (st.code() == Status::Code::NoSpace) {
        self.log("message " + id + " not stored: " + st.to_string());
        self.complete_(Verdict::reject(insufficient_storage()));
      } else if (st.code() == Status::Code::Constraint || st.code() == Status::Code::InvalidArgument) {
        self.log("message " + id + " refused by the store: " + st.to_string());
        self.complete_(Verdict::reject(smtp::reply(554, {5, 3, 0}, "Message refused by the mail store")));
      } else {
        self.complete_(Verdict::failed(st));
      }
    });
  });
  return Verdict::pending();
}

std::shared_ptr<store::Delivery> StoreSmtpSession::success_report(const store::Delivery& d) {
  if (!sender_ || sender_->path.null()) return nullptr;  // nobody to tell (RFC 3461 5.2)
  mail::Bounce b;
  for (const store::routing::Recipient& r : recipients_) {
    if (r.kind != store::routing::Recipient::Kind::Store || !mail::wants_success_report(r.params.notify)) continue;
    mail::BouncedRecipient br;
    br.address = r.path.to_wire();
    br.orcpt = r.params.orcpt;
    br.action = "delivered";
    br.last = mail::parse_failure("2.0.0 delivered to the mailbox", false);
    b.recipients.push_back(std::move(br));
  }
  if (b.recipients.empty()) return nullptr;
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  auto report = std::make_shared<store::Delivery>();
  report->ident = mail::new_queue_id();
  report->protocol = "local";
  b.reporting_mta = options_.hostname;
  b.to = sender_->path.address();
  b.queue_id = d.ident;
  b.arrival = now;
  b.envid = d.dsn_envid;
  b.now = now;
  b.message_id = report->ident;
  for (auto& r : b.recipients) r.last_attempt = now;
  // The report returns the message's header (RFC 3462 2): from memory, or the spool's start.
  std::string start = d.data;
  if (d.spool) {
    std::string chunk;
    if (d.spool->read(0, kReportHeaderBytes, chunk).ok()) start += chunk;
  }
  std::size_t end = start.find("\r\n\r\n");
  report->data = mail::compose_bounce(b, std::string_view(start).substr(0, end == std::string::npos ? start.size() : end + 2));
  auto planned = store::routing::plan_report(store_.directory(), b.to, *report);
  if (!planned || !*planned) return nullptr;
  return report;
}

std::function<void(const Status&)> StoreSmtpSession::transaction_log(const smtp::SessionInfo& info,
                                                                      const store::Delivery& d,
                                                                      const std::optional<InboundResult>& checked) const {
  if (!logger_.shows(1)) return [](const Status&) {};  // not built to be dropped
  std::set<std::string> to;  // recipients as received, each once (copies and queue entries)
  for (const store::LocalCopy& c : d.local) to.insert(c.envelope_to);
  for (const store::QueuedRecipient& q : d.queued) to.insert(q.envelope_to);
  LogLine l("message");
  l.add("id", d.ident).add("proto", "smtp").add("addr", peer_.address);
  if (info.user) l.add("user", *info.user);
  l.add("from", "<" + d.envelope_from.value_or("") + ">").add("rcpts", to.size()).add("size", d.data.size() + (d.spool ? d.spool->size() : 0));
  if (checked) {
    l.add("spf", checked->spf ? mail::spf::to_string(checked->spf->result) : "none");
    std::string dkim;
    for (const auto& v : checked->dkim) dkim += (dkim.empty() ? "" : ",") + std::string(mail::dkim::to_string(v.result));
    l.add("dkim", dkim.empty() ? "none" : dkim).add("dmarc", to_string(checked->dmarc));
  }
  if (!dkim_fields_.empty()) l.add("signed", "dkim");
  if (d.tls_required != store::TlsRequired::Default)  // RFC 8689: what the sender asked of TLS
    l.add("requiretls", d.tls_required == store::TlsRequired::Yes ? "yes" : "no");
  std::size_t junk = 0;
  for (const store::LocalCopy& c : d.local) junk += c.folder == "\\Junk";
  if (junk) l.add("quarantined", junk);
  return [logger = logger_, line = l.str()](const Status& st) {
    LogLine out(line);
    if (st.ok()) out.add("result", "accepted");
    else out.add("result", "refused").add("error", st.to_string());
    logger(1, out.str());
  };
}

void StoreSmtpSession::reset() {
  ++transaction_;  // answers of checks started before are stale now
  checks_.reset();
  checking_ = false;
  signer_.reset();
  signing_checked_ = false;
  signing_keys_.clear();
  dkim_fields_.clear();
  waiting_.reset();
  forged_.reset();
  sender_.reset();
  params_ = {};
  tls_required_ = mail::requiretls::HeaderScan();
  recipients_.clear();
  body_.clear();
  if (body_.capacity() > options_.spool_threshold) body_.shrink_to_fit();
  spool_.reset();
  spool_error_ = Status();
  over_budget_ = false;
  hold_.release();
}

// How many of `recipients_` are in domains that enforce DMARC: the listener's dmarc= when it
// has one, else the recipients' domains' auth_policy rows.
std::size_t StoreSmtpSession::enforcing(std::vector<bool>* which) {
  std::size_t n = 0;
  if (which) which->assign(recipients_.size(), false);
  for (std::size_t i = 0; i < recipients_.size(); ++i) {
    const bool enforce = options_.dmarc_enforce ? *options_.dmarc_enforce : [&] {
      auto p = lookups_->auth_policy(proto::ascii_lower(recipients_[i].path.domain));
      return p && *p == store::AuthPolicy::Enforce;
    }();
    if (enforce) {
      ++n;
      if (which) (*which)[i] = true;
    }
  }
  return n;
}

// RFC 7489 6.7, 10.3: p=reject for a failing message, refused at the end of DATA when every
// recipient's domain enforces the policy (a domain that only reports gets its copy).
std::optional<smtp::Reply> StoreSmtpSession::dmarc_refusal(const InboundResult& r) {
  if (r.dmarc != InboundResult::Dmarc::Fail || !r.policy_applies || r.policy != mail::dmarc::Policy::Reject)
    return std::nullopt;
  if (recipients_.empty() || enforcing(nullptr) != recipients_.size()) return std::nullopt;
  // RFC 7489 10.3: 550 5.7.1, the text naming the policy.
  return smtp::reply(550, {5, 7, 1}, "Message rejected by the DMARC policy of " + r.from_domain);
}

// p=quarantine (or p=reject where not every recipient could refuse it): the copies for users
// in enforcing domains go into their Junk folder (RFC 7489 6.3: "suspicious").
void StoreSmtpSession::quarantine(const InboundResult& r, store::Delivery& d) {
  if (r.dmarc != InboundResult::Dmarc::Fail || !r.policy_applies || r.policy == mail::dmarc::Policy::None) return;
  std::vector<bool> which;
  if (enforcing(&which) == 0) return;
  std::set<std::string> users;  // the local users of enforcing recipients
  for (std::size_t i = 0; i < recipients_.size(); ++i)
    if (which[i] && recipients_[i].kind == store::routing::Recipient::Kind::Store) users.insert(recipients_[i].target);
  for (store::LocalCopy& c : d.local)
    if (users.count(c.user)) c.folder = "\\Junk";  // the user's Junk, whatever its name (RFC 6154)
}

void StoreSmtpSession::log_dmarc(const smtp::SessionInfo& info, const InboundResult& r, const char* what) {
  if (!logger_.shows(1)) return;
  LogLine l("message");
  l.add("proto", "smtp").add("addr", peer_.address).add("helo", info.helo);
  l.add("from", "<" + (sender_ ? sender_->path.address() : std::string()) + ">");
  l.add("header_from", r.from_domain).add("dmarc", to_string(r.dmarc)).add("policy", mail::dmarc::to_string(r.policy));
  l.add("result", what);
  logger_(1, l.str());
}

smtp::Reply StoreSmtpSession::insufficient_storage() {
  // RFC 5321 4.2.3 / RFC 1870 6.2: 452, a temporary lack of room; RFC 3463 3.4: X.3.1.
  return smtp::reply(452, {4, 3, 1}, "Insufficient system storage, try again later");
}

}  // namespace cmail::backends
