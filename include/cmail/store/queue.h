// cmail/store/queue.h: the outbound delivery queue (cmail's outbox + faillog, extended).
//
// One outbox row per recipient, as in cmail, so cmail's `outbound` view keeps working. Added
// per row: the queue id that groups the recipients of one message, the next-attempt time, a
// lease (owner + expiry) so that two dispatchers, or a crashed one and its restart, never send
// the same recipient twice and never forget one, and the DSN parameters (RFC 3461).
// Entries are created by Store::deliver(); this facade reads and updates them.
//
// Thread-safety: every method may be called from any thread. Writes go through the Store's
// writer and return after the commit: they block for one group commit, so an event loop calls
// them from a worker. Obtain it from Store::queue(); it lives as long as the Store.
#pragma once

#include <cmail/export.h>
#include <cmail/status.h>
#include <cmail/store/store.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::store {

struct QueueEntry {
  std::int64_t id = 0;                       // outbox.mail_id
  std::string queue_id;                      // groups the recipients of one message
  std::optional<std::string> remote;         // handoff remote, nullopt = MX lookup
  std::optional<std::string> envelope_from;  // nullopt = a bounce (sent as MAIL FROM:<>)
  std::string envelope_to;
  std::int64_t submission = 0;  // Unix time
  std::optional<std::string> submitter;
  std::int64_t next_attempt = 0;  // Unix time; 0 = at once
  std::int64_t failures = 0;      // faillog rows
  bool fatal = false;             // a permanent failure is recorded
  std::optional<std::string> lease_owner;
  std::int64_t lease_until = 0;
  std::optional<std::string> dsn_ret, dsn_envid;
  DsnRecipient dsn;
  TlsRequired tls_required = TlsRequired::Default;  // outbox.mail_requiretls (RFC 8689)
  std::int64_t size = 0;  // octets of mail_data
};

// An MTA-STS policy as a dispatcher cached it (table mta_sts; RFC 8461 5.1: policies outlive
// restarts). The dispatcher parses `policy` again when it reads the row.
struct StsPolicyRow {
  std::string domain;  // lower case
  std::string id;      // the id of the TXT record it was fetched under
  std::string policy;  // the policy file as fetched
  std::int64_t fetched = 0, expires = 0;  // Unix times
  bool operator==(const StsPolicyRow&) const = default;
};

struct QueueFailure {
  std::int64_t time = 0;
  std::string message;
  bool fatal = false;
};

// What became of one leased entry (Queue::settle).
struct QueueOutcome {
  enum class Kind {
    Delivered,  // removed (its faillog rows cascade)
    Failed,     // a faillog row, the lease released, the next attempt set
    Released,   // the lease given back, nothing recorded
  };
  std::int64_t id = 0;
  Kind kind = Kind::Released;
  std::string message;  // Failed: faillog.fail_message (cmail/mail/delivery.h says what it holds)
  bool fatal = false;   // Failed: a permanent failure
  std::int64_t next_attempt = 0;  // Failed, and Released when > 0: when it is due again
};

class CMAIL_EXPORT Queue {
 public:
  virtual ~Queue() = default;

  // Every entry, oldest first, without message data.
  virtual Result<std::vector<QueueEntry>> list() = 0;
  virtual Result<std::optional<QueueEntry>> find(std::int64_t id) = 0;
  virtual Result<std::string> message_data(std::int64_t id) = 0;
  virtual Result<std::vector<QueueFailure>> failures(std::int64_t id) = 0;

  // Leases up to `max` entries that are due (next_attempt <= now), carry no permanent failure
  // and are not leased by someone else (or whose lease expired), to `owner` until
  // now + lease_seconds. Atomic across processes: an entry is leased to one owner at a time.
  virtual Result<std::vector<QueueEntry>> lease_due(std::string_view owner, std::int64_t now,
                                                    std::size_t max,
                                                    std::int64_t lease_seconds) = 0;
  // Delivered: removes the entry (its faillog rows cascade). NotFound if it is gone or
  // leased by another owner.
  virtual Status complete(std::int64_t id, std::string_view owner) = 0;
  // Records a failed attempt in faillog, releases the lease and sets the next attempt.
  virtual Status record_failure(std::int64_t id, std::string_view owner, std::string_view message,
                                bool fatal, std::int64_t next_attempt) = 0;
  // Gives a lease back without recording anything.
  virtual Status release(std::int64_t id, std::string_view owner) = 0;
  // Leases those of `ids` that lease_due would lease (due, no permanent failure, free).
  virtual Result<std::vector<QueueEntry>> lease_ids(const std::vector<std::int64_t>& ids,
                                                    std::string_view owner, std::int64_t now,
                                                    std::int64_t lease_seconds) = 0;
  // Leases up to `max` free entries that are to be returned to their senders: a permanent
  // failure recorded, at least `retries` failures, or at least one failure and queued for
  // `max_age` seconds or more (0 = no age limit). Only entries with failures are looked at.
  virtual Result<std::vector<QueueEntry>> lease_given_up(std::string_view owner, std::int64_t now,
                                                         std::size_t max, std::int64_t lease_seconds,
                                                         std::int64_t retries,
                                                         std::int64_t max_age) = 0;
  // Applies the outcomes of a delivery attempt in one transaction, without blocking: done runs
  // on the Store's writer thread after the commit. Entries gone meanwhile, or no longer leased
  // to `owner`, are skipped.
  virtual void settle(std::vector<QueueOutcome> outcomes, std::string owner,
                      std::function<void(Status)> done) = 0;
  // Extends every lease of `owner` to `until` (long deliveries keep their entries).
  virtual Status renew(std::string_view owner, std::int64_t until) = 0;
  // Who holds leases now, and giving back all leases of one (a dispatcher that died).
  virtual Result<std::vector<std::string>> lease_owners() = 0;
  virtual Result<std::int64_t> release_owner(std::string_view owner) = 0;
  // The earliest next attempt of a free entry without permanent failure, if any.
  virtual Result<std::optional<std::int64_t>> next_due() = 0;
  // The file that changes whenever queue entries become due (new mail, retry, flush): watch it
  // to notice them at once. "" for an in-memory database.
  virtual std::string notify_path() const = 0;
  // Touches the notify file without changing anything: watching dispatchers run at once.
  virtual void wake() = 0;

  // Makes entries due at once (all when id is nullopt). Returns how many changed.
  virtual Result<std::int64_t> retry_now(std::optional<std::int64_t> id) = 0;
  // Deletes an entry without delivering it. NotFound if absent.
  virtual Status remove(std::int64_t id) = 0;

  // The MTA-STS cache (docs/tls-policy.md#mta-sts): a domain's row, and writing one (replacing
  // the domain's row). Blocking; any thread.
  virtual Result<std::optional<StsPolicyRow>> mta_sts_policy(std::string_view domain) = 0;
  virtual Status save_mta_sts_policy(const StsPolicyRow& row) = 0;
};

}  // namespace cmail::store
