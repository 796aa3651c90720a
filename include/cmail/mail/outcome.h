// cmail/mail/outcome.h: what became of each recipient of a delivery attempt, as plain functions
// over the SMTP client's results (cmail/smtp/client.h) and the failures found here (DNS,
// connections, checks before sending): delivered, a temporary failure with its faillog record
// and the next attempt from the RetryPolicy, or a permanent failure; and which delivered
// recipients are "relayed" for a DSN success report (RFC 3461 5.2.2).
//
// The dispatcher (cmail/net/dispatcher.h) maps each RecipientOutcome to a store::QueueOutcome
// and settles them in one commit; the bounce run (cmail/net/bounce_plan.h) later returns what
// failed permanently or was given up. Tests call these directly.
//
// Thread-safety: value types and pure functions.
#pragma once

#include <cmail/export.h>
#include <cmail/mail/delivery.h>
#include <cmail/mail/route.h>
#include <cmail/smtp/client.h>
#include <cmail/smtp/syntax.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::mail {

// What classification needs to know of a recipient (a queue entry).
struct AttemptedRecipient {
  std::int64_t failures = 0;          // failed attempts before this one
  std::int64_t submission = 0;        // when it was queued (Unix time), for RetryPolicy::max_age
  std::optional<std::string> notify;  // DSN NOTIFY as given (RFC 3461 4.1)
};

struct RecipientOutcome {
  enum class Kind {
    Delivered,  // a 2xx: the entry is removed
    Deferred,   // a temporary failure: recorded, tried again at next_attempt
    Failed,     // a permanent failure: recorded, returned by the next bounce run
  };
  Kind kind = Kind::Deferred;
  std::string record;             // Deferred, Failed: faillog.fail_message
  std::int64_t next_attempt = 0;  // Deferred: Unix time
  // Deferred: this was the last try (retries used up or queued too long, RetryPolicy): the next
  // bounce run returns it instead of trying again.
  bool given_up = false;
  // Delivered to a server without DSN for a sender who asked for NOTIFY=SUCCESS: we report the
  // relay ourselves (RFC 3461 5.2.2).
  bool relayed = false;
  std::optional<smtp::Reply> reply;  // the server's reply that decided, if one did
};

// A failure for a recipient: permanent, or temporary with the next attempt after this
// (failures + 1)-th failure.
CMAIL_EXPORT RecipientOutcome outcome_of_failure(const Failure& failure, const AttemptedRecipient& r,
                                                 const RetryPolicy& retry, std::int64_t now);

// A server's reply for a recipient from `host`: 2xx delivered (3xx is taken as success as
// well), 4xx temporary, 5xx permanent (RFC 5321 4.2.1). `server_dsn`: the server offered DSN
// (RFC 3461 4), so it reports success itself.
CMAIL_EXPORT RecipientOutcome outcome_of_reply(const smtp::Reply& reply, std::string_view host, bool server_dsn,
                                               const AttemptedRecipient& r, const RetryPolicy& retry,
                                               std::int64_t now);

// A finished transaction (client_event::MailResult) with the RCPT replies seen for it
// (rcpt_replies[i] for recipients[i], nullopt when none came): an accepted recipient shares the
// message's final reply; a refused one keeps its own RCPT reply (the final reply when it has
// none). One outcome per recipient, in order.
CMAIL_EXPORT std::vector<RecipientOutcome> transaction_outcomes(
    const smtp::client_event::MailResult& result, const std::vector<std::optional<smtp::Reply>>& rcpt_replies,
    const std::vector<AttemptedRecipient>& recipients, std::string_view host, bool server_dsn,
    const RetryPolicy& retry, std::int64_t now);

// smtp::Client::send_mail refused the message before sending anything (a non-OK Status: larger
// than the server's SIZE, needing SMTPUTF8 or 8BITMIME it lacks): permanent for this server's
// destination, with the RFC 3463 code of the check (5.3.4, 5.6.7 RFC 6531 3.7.5, else 5.6.3).
CMAIL_EXPORT Failure refused_before_sending(std::string_view reason, std::string_view host);

// The connection failed (client_event::Failed, or a lost connection) while a transaction was
// under way: nothing was acknowledged, so a temporary failure for each of its recipients, with
// the server's reply if one came, else 4.4.2 and the reason.
CMAIL_EXPORT Failure lost_transaction(const Candidate& c, const std::optional<smtp::Reply>& reply,
                                      std::string_view reason);

// The connection failed before a transaction could start (connect, greeting, EHLO, STARTTLS,
// AUTH): why this candidate cannot be used, the last error that unreachable() names when every
// candidate failed. Not a failure of any recipient by itself.
CMAIL_EXPORT std::string unusable_candidate(const Candidate& c, const std::optional<smtp::Reply>& reply,
                                            std::string_view reason);

}  // namespace cmail::mail
