// cmail/net/bounce_plan.h: reports to senders, planned as plain functions over queue entries.
//
// A bounce run leases the entries that are to be returned (Queue::lease_given_up: a permanent
// failure, retries used up, or too old) and plans them here: one group per message and sender
// (plan_bounces); a report for the recipients whose NOTIFY asks for failures, never for mail
// with the null sender (a bounce); the RFC 3464 report (cmail/mail/delivery.h) from what faillog
// says of each recipient; and the store::Delivery that stores the report where
// store::routing::plan_report sends it (locally or queued), plus the `bounce_copy` addresses,
// and removes the group's entries in the same transaction. Success reports for recipients
// relayed to a server without DSN (RFC 3461 5.2.2) are planned the same way.
//
// The plan functions do no I/O and need no Runtime: the caller reads the faillog rows and the
// original message (Queue::failures, Queue::message_data), passes them in, and commits the
// Delivery (Store::deliver_sync); their only store access is the Directory lookups of routing.
// return_given_up() and store_relay_report() are those callers: they run the plans against a
// Store synchronously, blocking on its reads and commits, so the dispatcher
// (cmail/net/dispatcher.h) calls them on a worker thread. Tests call all of them directly.
//
// Thread-safety: plain functions; the Store and Directory may be used from any thread.
#pragma once

#include <cmail/export.h>
#include <cmail/mail/delivery.h>
#include <cmail/net/delivery_plan.h>
#include <cmail/smtp/syntax.h>
#include <cmail/store/directory.h>
#include <cmail/store/queue.h>
#include <cmail/store/store.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cmail::net {

// What reports are made of, from DispatcherOptions.
struct ReportOptions {
  std::string reporting_mta;        // `announce`: Reporting-MTA and the Message-ID's domain
  std::string from;                 // `bounce_from`; "" = MAILER-DAEMON@reporting_mta
  std::vector<std::string> copies;  // `bounce_copy`: every bounce goes to these too
  std::string owner;                // a bounce replaces its entries only while leased to this owner
};

// The given-up entries of one message and sender.
struct BounceGroup {
  std::vector<store::QueueEntry> entries;  // all of them are removed by the group's Delivery
  std::vector<std::size_t> reported;       // indexes into entries listed in a report; empty: none
  std::string dropped;                     // why there is no report (for the log), else ""
};

// Groups given-up entries, one group per message and sender (message_key, in its order), and
// decides who is reported: nobody for the null sender (RFC 5321 6.1), else every recipient
// whose NOTIFY asks for failures (RFC 3461 4.1: NOTIFY=NEVER, or without FAILURE, asks for none).
CMAIL_EXPORT std::vector<BounceGroup> plan_bounces(std::vector<store::QueueEntry> given_up);

// A report to the sender of `e` (a bounce or a success report), without recipients.
CMAIL_EXPORT mail::Bounce report_about(const store::QueueEntry& e, const ReportOptions& o, std::int64_t now,
                                       const std::string& message_id);

// What a bounce says of one recipient, from its faillog rows (oldest first): the last failure,
// its time, the number of attempts; "expired" (RFC 3463 4.4.7) when only temporary failures
// were recorded and the last one is not a 5xx.
CMAIL_EXPORT mail::BouncedRecipient bounced_recipient(const store::QueueEntry& e,
                                                      const std::vector<store::QueueFailure>& failures);

// The Delivery for one group, with queue id `ident`: it replaces every entry of the group
// (leased to o.owner). With reported recipients it carries the bounce (failures[i]: the faillog
// rows of entries[reported[i]]; `original`: the message, returned whole for RET=FULL), routed to
// the sender and to the copies; a routing refusal becomes a note. Without, it only removes the
// entries, and the note says why nobody is told.
CMAIL_EXPORT store::Delivery bounce_delivery(const BounceGroup& group,
                                             const std::vector<std::vector<store::QueueFailure>>& failures,
                                             std::string_view original, const ReportOptions& o, std::int64_t now,
                                             std::string ident, store::Directory& dir,
                                             std::vector<std::string>& notes);

// The success report for recipients of one message relayed to `host` (a server without DSN)
// with its reply (RFC 3461 5.2.2, "Action: relayed"), to the sender only (no copies), replacing
// nothing. nullopt when the sender is null or the report goes nowhere (notes say why).
CMAIL_EXPORT std::optional<store::Delivery> relay_report(
    const std::vector<std::pair<store::QueueEntry, smtp::Reply>>& relayed, std::string_view host,
    std::string_view original, const ReportOptions& o, std::int64_t now, std::string ident,
    store::Directory& dir, std::vector<std::string>& notes);

struct BounceRun {
  std::size_t leased = 0;          // entries leased to be returned (== max: run again)
  std::size_t bounces = 0;         // reports stored or queued
  std::vector<std::string> notes;  // for the log
};

// One bounce run, blocking: leases up to `max` entries to be returned (Queue::lease_given_up
// with the retry policy, to o.owner for lease_seconds), plans them and commits each group's
// Delivery; a group whose commit fails gives its leases back and is tried in a later run.
CMAIL_EXPORT BounceRun return_given_up(store::Store& store, const ReportOptions& o, const mail::RetryPolicy& retry,
                                       std::int64_t lease_seconds, std::int64_t now, std::size_t max = 200);

// Stores the success report of relay_report(), blocking. Returns notes for the log.
CMAIL_EXPORT std::vector<std::string> store_relay_report(
    store::Store& store, const std::vector<std::pair<store::QueueEntry, smtp::Reply>>& relayed,
    std::string_view host, std::string_view original, const ReportOptions& o, std::int64_t now);

}  // namespace cmail::net
