// cmail/backends/smtp_session.h: engine Sessions backed by the Store: what cmail-smtpd runs.
//
// StoreSmtpSession is the smtp::Session of one SMTP connection: it authenticates against the
// Directory, routes MAIL and RCPT with cmail/store/routing.h, prepends a Received header (RFC 5321
// 4.4) with an unpredictable queue id, and stores each message with Store::deliver(): all
// local copies and queue entries in one transaction, the 250 only after the commit is durable.
// A message larger than spool_threshold is written to a spool file as it arrives (on the
// connection's thread: page-cache writes) and copied into the rows by the writer in chunks;
// an optional DataBudget bounds what all sessions hold at once (cmail/backends/budget.h).
//
// Authentication (PLAIN, LOGIN, and SCRAM-SHA-256 when the engine offers it: docs/scram.md):
// with an AuthGuard in the options (cmail/backends/auth_guard.h), each AUTH is admitted by it first (refused with 454 4.7.0 without checking the password, or checked after
// the guard's wait, a timer through Executor::post_after) and its outcome counted; every failure
// and refusal is logged ("auth failed", "auth blocked", level 0), a success at level 1.
// Logging: set_logger() gets lines with a level (0 errors and warnings, 1 info: the
// key=value lines of docs/logging.md, such as one per accepted message).
//
// Asynchrony: password checks (argon2, ~30 ms of CPU) run through Executor::run_blocking and
// the commit completes on the Store's writer thread; both come back through Executor::post,
// which must run its function on the thread that owns the smtp::Server, where the session
// calls the completion set with set_completion() (normally: server.complete(v) and a flush).
//
// Thread-safety: one session per connection, used on the connection's thread; the functions
// passed to run_blocking run elsewhere and touch only the Store.
// Ownership: REQUIRES the Store to outlive the session; the session must outlive every
// function it posted (the runtime guarantees this by keeping connections until posts drain,
// or a session can be kept alive by a shared_ptr captured in the posted work).
#pragma once

#include <cmail/backends/budget.h>
#include <cmail/backends/auth_guard.h>
#include <cmail/backends/inbound_checks.h>
#include <cmail/export.h>
#include <cmail/log_sink.h>
#include <cmail/mail/auth_results.h>
#include <cmail/mail/dkim.h>
#include <cmail/mail/requiretls.h>
#include <cmail/mail/resolver.h>
#include <cmail/mail/spf.h>
#include <cmail/smtp/server.h>
#include <cmail/store/routing.h>
#include <cmail/store/spool.h>
#include <cmail/store/store.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cmail::backends {

struct SmtpBackendOptions {
  std::string hostname = "localhost";  // "by" in Received
  bool private_received = false;       // cmail's auth=private: "from remote" in Received
  // A message larger than this goes on in a spool file (Store::create_spool) as it arrives,
  // so that a session holds at most this much of it in memory.
  std::size_t spool_threshold = 256 * 1024;
  // Message data in flight across the sessions that share it; null: no bound.
  std::shared_ptr<DataBudget> budget;
  // Failed AUTH counted, delayed and refused, shared with whatever else holds it; null: none.
  std::shared_ptr<AuthGuard> auth_guard = nullptr;
  // SPF (RFC 7208) of mail from unauthenticated clients, through this resolver (used on the
  // connection's thread; it must outlive the session); null: no checks. The check starts at
  // MAIL FROM and runs while the recipients and the data come; the result goes into an
  // Authentication-Results header (RFC 8601) on the stored copy, and any that came with the
  // message under our hostname (forged, RFC 8601 5) are dropped from it. Report only: no mail
  // is refused for its result.
  mail::Resolver* resolver = nullptr;
  // How long after MAIL FROM the end of data waits for the SPF answer, and after the end of
  // the header for the DKIM keys and the DMARC record; then the result is temperror (RFC 7208
  // 4.6.4 allows giving up after 20 seconds).
  std::chrono::milliseconds spf_timeout{20000};
  // DKIM-sign mail that authenticated users submit, with the keys of its From domain (or the
  // nearest parent domain that has some) in the dkim_keys table (docs/auth.md#dkim-signing).
  bool dkim_signing = true;
  // What this listener does with mail failing DMARC: true enforce, false report only, whatever
  // the auth_policy table says; nullopt: the table decides per recipient domain.
  std::optional<bool> dmarc_enforce;
};

class CMAIL_EXPORT StoreSmtpSession final : public smtp::Session {
 public:
  StoreSmtpSession(store::Store& store, SmtpBackendOptions options, proto::PeerInfo peer, proto::Executor executor);
  ~StoreSmtpSession() override;

  // How a pending verdict is delivered; called on the connection's thread.
  void set_completion(std::function<void(smtp::Verdict)> complete) { complete_ = std::move(complete); }

  smtp::Verdict auth(const smtp::SessionInfo&, const sasl::Credentials&) override;
  // SCRAM (docs/scram.md): the stored (or made-up) credentials off the loop, after the guard's
  // wait; then who logs in, as auth() decides it.
  smtp::Verdict scram_credentials(const smtp::SessionInfo&, const std::string& authcid) override;
  smtp::Verdict scram_auth(const smtp::SessionInfo&, const sasl::ScramResult& result) override;
  smtp::Verdict mail(const smtp::SessionInfo&, const smtp::Path&, const smtp::MailParams&) override;
  smtp::Verdict rcpt(const smtp::SessionInfo&, const smtp::Path&, const smtp::RcptParams&) override;
  void data_chunk(std::string_view bytes) override;
  smtp::Verdict data_end(const smtp::SessionInfo&) override;
  void reset() override;
  void log(std::string_view line) override;

  // Where log lines go, with their level (0 errors and warnings, 1 info); called on the
  // connection's thread.
  void set_logger(LogSink logger) { logger_ = std::move(logger); }

 private:
  // AUTH's common part: the guard (unless `admitted`: SCRAM asked it at the lookup), `check` on a
  // worker, the verdict, the log line and the guard's count on the loop.
  smtp::Verdict check_auth(const sasl::Credentials& creds, bool admitted,
                           std::function<Result<store::Identity>(store::Store&)> check);
  std::string received_header(const smtp::SessionInfo& info, const std::string& id) const;
  // data_end() once the checks are done: the message stored (pending) or refused.
  smtp::Verdict deliver_message(const smtp::SessionInfo& info);
  // The sender checks answered after data_end() returned pending: the waiting message stored.
  void checks_done();
  // data_end() of a submission with DKIM keys: signs on a worker, then stores.
  smtp::Verdict sign_message(const smtp::SessionInfo& info);
  // DMARC policy (docs/auth.md#policy): a refusal, or copies filed into Junk.
  std::size_t enforcing(std::vector<bool>* which);
  std::optional<smtp::Reply> dmarc_refusal(const InboundResult& r);
  void quarantine(const InboundResult& r, store::Delivery& d);
  void log_dmarc(const smtp::SessionInfo& info, const InboundResult& r, const char* what);
  void drop_body();
  // The message's next octets, into memory or the spool (data_chunk after the filter).
  void take(std::string_view bytes);
  static smtp::Reply insufficient_storage();
  // The "delivered" report (RFC 3461) for the local recipients that asked for one, or null.
  std::shared_ptr<store::Delivery> success_report(const store::Delivery& d);
  // The transaction line of docs/logging.md for `d`, to be called with the store's answer
  // (on the connection's thread; it may outlive the session).
  std::function<void(const Status&)> transaction_log(const smtp::SessionInfo& info, const store::Delivery& d,
                                                     const std::optional<InboundResult>& checked) const;

  store::Store& store_;
  // Routing lookups, refreshed at every MAIL: a transaction's RCPTs reuse what MAIL found current.
  std::unique_ptr<store::CachedLookups> lookups_;
  SmtpBackendOptions options_;
  proto::PeerInfo peer_;
  proto::Executor executor_;
  std::function<void(smtp::Verdict)> complete_;
  LogSink logger_;
  // Guards posted work against a session that is gone.
  std::shared_ptr<StoreSmtpSession*> alive_;

  std::optional<store::routing::Sender> sender_;
  smtp::MailParams params_;
  mail::requiretls::HeaderScan tls_required_;  // "TLS-Required: No" (RFC 8689 5)
  std::vector<store::routing::Recipient> recipients_;
  std::string body_;                     // the message so far, while small
  std::unique_ptr<store::Spool> spool_;  // the message so far, once large
  Status spool_error_;                   // the spool failed: 451 at the end of the data
  DataBudget::Hold hold_;                // this message's octets in the budget
  bool over_budget_ = false;             // the budget could not take it: 452 at the end
  // The sender checks of this transaction (SPF, DKIM, DMARC), unauthenticated clients only.
  std::unique_ptr<InboundChecks> checks_;
  bool checking_ = false;  // data_end() returned pending while they finish
  // DKIM signing of a submission: the signer while the message streams, its keys once the
  // From domain is known, the fields made.
  std::shared_ptr<mail::dkim::Signer> signer_;
  bool signing_checked_ = false;
  std::vector<store::DkimKey> signing_keys_;
  std::string dkim_fields_;
  std::uint64_t transaction_ = 0;  // which MAIL; a reset makes later answers stale
  // With checks on: Authentication-Results in the message that claim our hostname go.
  std::optional<mail::ForgedResultsFilter> forged_;
  std::optional<smtp::SessionInfo> waiting_;  // data_end() waits for the check with this
};

}  // namespace cmail::backends
