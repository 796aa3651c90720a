// cmail/net/delivery_plan.h: between the queue and the core's delivery plans, as plain
// functions: leased queue entries (cmail/store/queue.h) -> transactions per destination
// (route_target, cmail/mail/route.h), a transaction -> the smtp::Envelope to send, and each
// recipient's outcome (cmail/mail/outcome.h) -> the store::QueueOutcome that settles it.
//
// The dispatcher (cmail/net/dispatcher.h) runs these on its loop; tests call them directly.
// Thread-safety: value types and pure functions.
#pragma once

#include <cmail/export.h>
#include <cmail/mail/delivery.h>
#include <cmail/mail/outcome.h>
#include <cmail/mail/route.h>
#include <cmail/smtp/client.h>
#include <cmail/store/queue.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cmail::net {

// Recipients of one message and one sender travel together: the key that groups them (the
// queue id, else the entry's id; then the sender, the null sender apart from "").
CMAIL_EXPORT std::string message_key(const store::QueueEntry& e);

// The null reverse path (nullopt or ""): a bounce, whose sender is never told anything
// (RFC 5321 6.1).
CMAIL_EXPORT bool null_sender(const store::QueueEntry& e);

// One SMTP transaction's worth: one message, one sender, recipients of one destination.
struct Transaction {
  std::optional<std::string> from;  // nullopt (a bounce) and "" both go as MAIL FROM:<>
  std::vector<store::QueueEntry> rcpts;
};

struct DestinationPlan {
  mail::RouteTarget target;
  std::vector<Transaction> transactions;  // in the order their first recipient was leased
};

struct TransactionPlan {
  std::vector<DestinationPlan> destinations;  // in the order they first appear
  // Entries without a destination (a remote spec that does not parse, no domain): permanent.
  std::vector<std::pair<store::QueueEntry, mail::Failure>> failed;
};

// Groups leased entries by destination (RouteTarget::key) and by message and sender, at most
// `max_recipients` recipients a transaction (RFC 5321 4.5.3.1.8: every server takes 100), the
// rest in further transactions of the same message.
CMAIL_EXPORT TransactionPlan plan_transactions(std::vector<store::QueueEntry> leased, std::size_t max_recipients);

// What is sent for a transaction: MAIL FROM with the message's DSN RET and ENVID (RFC 3461
// 4.3, 4.4), and one RCPT TO per recipient with its NOTIFY and ORCPT (RFC 3461 4.1, 4.2).
CMAIL_EXPORT smtp::Envelope envelope_of(const Transaction& t);

// What outcome classification needs of an entry.
CMAIL_EXPORT mail::AttemptedRecipient attempted(const store::QueueEntry& e);

// How an outcome settles the entry `id`: Delivered removes it; Deferred and Failed record the
// failure (Failed as permanent, Deferred with its next attempt).
CMAIL_EXPORT store::QueueOutcome queue_outcome(std::int64_t id, const mail::RecipientOutcome& o);

}  // namespace cmail::net
