// cmail/store/store.h: the master database, the one SQLite file every cmail module shares.
//
// Store opens (or creates) a master database, upgrades a cmail schema-version-9 (or 10) file in
// place (after an online backup next to it, also when opened read_only), and owns:
//   - one writer thread that commits whatever writes are waiting as one transaction (group
//     commit) and then completes each caller's callback; reads use their own connections;
//   - the Directory (users, addresses, ACLs), the Queue and the Mailboxes facades.
// The file is opened in WAL mode with synchronous=FULL and foreign keys on; several processes
// may use it at once (writes are BEGIN IMMEDIATE with a busy timeout).
//
// Thread-safety: every method of Store, Directory, Queue and Mailboxes may be called from any
// thread. Completion callbacks run on the writer thread: keep them short, never call a
// blocking Store method from inside one, and post to your own loop if you need it.
// Ownership: the facades live as long as the Store. Destroying the Store completes every
// write submitted before, then closes the file.
#pragma once

#include <cmail/export.h>
#include <cmail/status.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cmail::store {

class Directory;
class CachedLookups;
class Queue;
class Mailboxes;
class Spool;

struct StoreOptions {
  // Create a new master database when `path` does not exist (or is an empty file).
  bool create_if_missing = false;
  // Upgrade an older cmail schema in place, read_only or not: on a connection of its own, then
  // the file is opened as asked. When false an older schema is refused (Unsupported).
  bool migrate = true;
  // Before the first migration, copy the file (online) to "<path>.backup-v<N>-<UTC time>".
  bool backup_before_migrate = true;
  // Open without the writer: every write fails with ReadOnly.
  bool read_only = false;
  // How long a write waits for another process's lock before failing with Busy.
  int busy_timeout_ms = 30000;
  // Most jobs the writer commits in one transaction.
  std::size_t max_batch = 1024;
  // Receives one line per notable event (an upgrade and its backup: one line). May be empty.
  std::function<void(const std::string&)> logger;
};

// What Store::open did to a file with an older schema.
struct Upgrade {
  int from = 0;        // the version the file had
  int to = 0;          // the version it has now
  std::string backup;  // the copy made first; empty with backup_before_migrate = false
};

// One local copy of a received message (the `store` router's effect).
struct LocalCopy {
  std::string user;         // users.user_name; aliases are not resolved here
  std::string envelope_to;  // mailbox.mail_envelopeto: the recipient as received
  // A folder name, or a special use (RFC 6154) such as "\\Junk": the user's folder with that
  // use, else one named after it ("Junk"), made with that use.
  std::string folder = "INBOX";
};

// DSN parameters of one recipient (RFC 3461 4.1, 4.2).
struct DsnRecipient {
  std::optional<std::string> notify;  // "NEVER" or a comma list of SUCCESS, FAILURE, DELAY
  std::optional<std::string> orcpt;   // "rfc822;addr" as given (xtext decoded)
};

// What the sender asked of TLS on the way (RFC 8689; outbox.mail_requiretls).
enum class TlsRequired : int {
  Default = 0,  // neither
  Yes = 1,      // MAIL FROM ... REQUIRETLS (RFC 8689 4.1): verified TLS to a REQUIRETLS server, or a bounce
  No = -1,      // the header field "TLS-Required: No" (RFC 8689 5): recipient TLS policies may be ignored
};

// One recipient handed to the queue (outbox row).
struct QueuedRecipient {
  std::optional<std::string> remote;  // outbox.mail_remote: nullopt = deliver by MX lookup
  std::string envelope_to;
  DsnRecipient dsn;
};

// Everything one received message becomes, committed in one transaction: all or nothing.
struct Delivery {
  std::string ident;                         // unique queue id: mail_ident / mail_queueid
  std::optional<std::string> envelope_from;  // reverse path; nullopt only for bounces (NULL)
  std::optional<std::string> submitter;      // peer name (mail_submitter)
  std::string protocol = "smtp";             // mail_proto, e.g. "esmtps"
  std::string data;                          // the full message as stored, or its start:
  // The rest of the message, when it arrived too large to hold in memory: stored after `data`,
  // copied into each row in chunks. REQUIRES: `data` is empty or ends with a LF.
  std::shared_ptr<const Spool> spool;
  std::optional<std::string> dsn_ret;        // RFC 3461 4.3: FULL or HDRS
  std::optional<std::string> dsn_envid;      // RFC 3461 4.4
  TlsRequired tls_required = TlsRequired::Default;  // RFC 8689, queued rows only
  std::int64_t received_at = 0;              // Unix time; 0 = now
  std::vector<LocalCopy> local;
  std::vector<QueuedRecipient> queued;
  // Queue entries this delivery settles (a bounce replacing the entries it reports on), deleted
  // in the same transaction. Each must still be leased to `replaces_owner`; if one is not,
  // nothing is committed (NotFound), so that no two bounces report the same failure.
  std::vector<std::int64_t> replaces;
  std::string replaces_owner;
};

struct WriterStats {
  std::uint64_t transactions = 0;  // commits made by the writer
  std::uint64_t jobs = 0;          // writes completed (committed or failed)
};

class CMAIL_EXPORT Store {
 public:
  using Done = std::function<void(Status)>;

  // Opens the master database at `path` (see StoreOptions). A file that is not a cmail
  // database, or whose schema is newer than this build, is refused and left untouched. An
  // older schema that must be upgraded in a file or directory this process may not write is
  // refused with ReadOnly, untouched.
  static Result<std::unique_ptr<Store>> open(const std::string& path,
                                             const StoreOptions& options = {});
  // Creates a new master database at `path`. Fails with AlreadyExists if a non-empty file is
  // there.
  static Status create(const std::string& path);

  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const;
  // The schema version of the open file (kSchemaVersion after a successful open).
  int schema_version() const;
  // The schema version this build writes.
  static int current_schema_version();
  // Set when open() upgraded the file; nullopt when it was current (or another process
  // upgraded it meanwhile).
  const std::optional<Upgrade>& upgrade() const;

  // Writes a consistent copy of the live database to `dest` (SQLite online backup).
  Status backup(const std::string& dest);
  // Runs SQLite's integrity and foreign-key checks and cmail's own (schema version, every
  // table and column present, UIDs unique and below UIDNEXT). Returns the problems found.
  Result<std::vector<std::string>> check();

  // Stores one message for every local copy and queues every queued recipient in one
  // transaction, then calls done(Status) after the commit is durable (fsync'd WAL). A local
  // copy whose user has a user database goes there; if that file cannot be used, it goes to
  // the master mailbox (as cmail did). Fails as a whole: nothing is half-stored.
  void deliver(Delivery delivery, Done done);
  // deliver() and wait. Returns the commit's Status.
  Status deliver_sync(Delivery delivery);

  Directory& directory();
  // The routing lookups of directory() through the cache this Store's sessions share
  // (cmail/store/directory.h: CachedLookups). One per session.
  std::unique_ptr<CachedLookups> cached_lookups();
  Queue& queue();
  Mailboxes& mailboxes();

  WriterStats writer_stats() const;
  // Fault injection for test harnesses: while `failure` is not OK, every write (delivery,
  // queue update, administration) fails with it before it touches the file, as a full disk
  // would make it fail (Status::no_space: SMTP intake answers 452 4.3.1). Status() ends it.
  // Any thread.
  void fail_writes(Status failure);

  // A new, empty Spool next to the database (cmail/store/spool.h), for Delivery::spool.
  Result<std::unique_ptr<Spool>> create_spool() const;

  struct Impl;

 private:
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cmail::store
