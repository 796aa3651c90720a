// libcmail/store/store_impl.h: the private side of cmail::Store, shared by the facades.
//
// Impl owns the writer (one thread and connection) and a pool of read connections. Facades
// (directory.cc, queue.cc, mailbox.cc) reach the database only through read() and the writer.
//
// Thread-safety: read() and writer() from any thread.
#pragma once

#include "schema.h"
#include "sqlite.h"
#include "writer.h"

#include <cmail/store/directory.h>
#include <cmail/store/mailbox.h>
#include <cmail/store/queue.h>
#include <cmail/store/store.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace cmail::store {

namespace detail {
std::unique_ptr<Directory> make_directory(Store::Impl& impl);
struct LookupCache;  // lookups.cc
std::shared_ptr<LookupCache> make_lookup_cache();
std::unique_ptr<Queue> make_queue(Store::Impl& impl);
std::unique_ptr<Mailboxes> make_mailboxes(Store::Impl& impl);

// Unix time now.
std::int64_t unix_now();

// The change-notification file of a database's queue ("<db>-notify-queue"): writers touch it
// after a commit that made queue entries due; dispatchers watch it (inotify via libuv).
std::string queue_notify_path(const std::string& db_path);
// Writes one byte into `path` (creating it with the owner and group of `db_path`), so that
// watchers see a change. Best effort: a failure only delays the watcher until its next poll.
void touch_notify(const std::string& path, const std::string& db_path);

// Adds one to the 8-octet counter at offset 0 of `path` (the mail notify file, creating it with
// the owner and group of `db_path`), so that watchers see a change. Best effort: a failure is
// logged and only delays the watchers until their next poll.
void bump_notify(const std::string& path, const std::string& db_path,
                 const std::function<void(const std::string&)>& log);

// The user databases attached to the writer connection. Used on the writer thread only.
class UserDatabases {
 public:
  // Attaches the user database at `path` (outside a transaction), upgrading a version-9 or
  // version-10 user database first. Returns the schema name to use ("u0".."u7"),
  // "" when every slot is taken by the current batch (commit first), or a failed Status when
  // the file cannot be used. Detaches databases not used by the current batch when full.
  Result<std::string> attach(Connection& writer, const std::string& path, std::uint64_t batch,
                             const std::function<void(const std::string&)>& log);

 private:
  struct Slot {
    std::string path;
    std::uint64_t last_batch = 0;
  };
  static constexpr int kSlots = 8;  // SQLite allows 10 attached databases by default
  Slot slots_[kSlots];
};

// A folder's UIDNEXT and HIGHESTMODSEQ, any connection.
std::pair<std::int64_t, std::int64_t> folder_counters(Connection& c, std::int64_t folder_id);
// Allocates the next UID of a folder and bumps its highest modseq (inside a write transaction).
// Returns {uid, modseq}.
std::pair<std::int64_t, std::int64_t> allocate_uid(Connection& c, std::int64_t folder_id);
struct NewMessage {
  std::int64_t folder = 0, uid = 0, modseq = 0;
};
// The folder of `user` named `name` (created if missing) and, in it, the next UID and modseq,
// allocated as allocate_uid does: one read for an existing folder (inside a write transaction).
NewMessage allocate_message(Connection& c, std::string_view user, std::string_view name);
// Finds or creates the folder of a user (inside a write transaction); returns folder_id.
// Throws SqlError (Constraint) for an unknown user.
std::int64_t ensure_folder_id(Connection& c, std::string_view user, std::string_view name);
// Creates a folder with a UIDVALIDITY never handed out before (RFC 9051 2.3.1.1) and, when
// `subscribed`, its subscription (inside a write transaction). Returns folder_id.
std::int64_t insert_folder(Connection& c, std::string_view user, std::string_view name,
                           std::string_view special_use, bool subscribed);

// Rows written by other programs (docs/compatibility.md#database-rows-written-by-other-programs):
// a mailbox row without a folder is one that a program knowing only cmail's version-9 columns
// inserted (cmail itself always sets the folder).
//
// Whether `schema` ("main" or an attached name) holds such rows of `user`: one indexed seek,
// any connection.
bool has_foreign_rows(Connection& c, std::string_view schema, std::string_view user);
// Gives those rows of `user` in each of `schemas` (in that order, each in mail_id order) what
// cmail's own rows carry: the INBOX folder, the next UID of its master counter and a modseq,
// the size and wire size of mail_data (TEXT or BLOB; NULL counts as an empty message), the
// internal date from mail_submission, \Seen from mail_read, and as the POP3 unique-id their
// mail_ident when no other message of the user in `schemas` has it as its unique-id. Inside
// a write transaction; the master's folders are "main".
void adopt_foreign_rows(Connection& c, std::string_view user, const std::vector<std::string>& schemas);

// Which users' master mailbox held no foreign rows when the writer last looked, valid while no
// other connection has committed to the master: `PRAGMA data_version` changes exactly then
// (SQLite: it is unchanged by the connection's own commits, and cmail's writer never writes a
// row without a folder). Saves the seek of has_foreign_rows() for every delivery. Writer thread
// only.
class ForeignRowsCache {
 public:
  // Whether `user` is known to have none in "main" (inside the writer's transaction).
  bool clean(Connection& c, const std::string& user);
  // `user` was just found to have none in "main".
  void mark_clean(const std::string& user) { clean_.insert(user); }

 private:
  std::int64_t version_ = -1;
  std::set<std::string, std::less<>> clean_;
};
}  // namespace detail

struct Store::Impl {
  std::string path;
  StoreOptions options;
  int version = 0;
  std::optional<Upgrade> upgrade;          // what open() did to an older file
  std::unique_ptr<detail::Writer> writer;  // null when read-only
  detail::UserDatabases user_databases;     // writer thread only
  detail::ForeignRowsCache foreign_rows;    // writer thread only
  std::shared_ptr<detail::LookupCache> lookup_cache = detail::make_lookup_cache();  // cached_lookups()

  std::mutex readers_mu;
  std::vector<std::unique_ptr<detail::Connection>> idle_readers;

  // Set by a write that made queue entries due; the writer touches the notify file after the
  // commit (Writer's after_commit hook) and clears it.
  std::atomic<bool> queue_changed{false};
  void note_queue_change() { queue_changed.store(true, std::memory_order_relaxed); }

  // Set by a write that changed some user's mail (stored, flagged, moved, expunged, deleted);
  // the writer bumps the mail notify file (notify_path()) after the commit and clears it.
  std::atomic<bool> mail_changed{false};
  void note_mail_change() { mail_changed.store(true, std::memory_order_relaxed); }

  std::unique_ptr<Directory> directory;
  std::unique_ptr<Queue> queue;
  std::unique_ptr<Mailboxes> mailboxes;

  // Runs fn on a pooled read connection in one read transaction (one snapshot for all it
  // reads); SqlError becomes the returned Status. `one_statement`: fn runs a single statement,
  // which is its own snapshot, so the BEGIN and COMMIT around it are left out (the lookups of
  // every MAIL and RCPT).
  Status read(const std::function<void(detail::Connection&)>& fn, bool one_statement = false);
  // Runs a write job and waits for its commit.
  Status write(std::function<void(detail::Connection&)> apply,
               std::function<bool(detail::Connection&, std::uint64_t)> prepare = nullptr);
  // Resolves where messages of `user` go: "main" or the attached schema of their user
  // database. Writer thread, outside a transaction. "" = commit the batch first.
  Result<std::string> user_schema(detail::Connection& w, const std::string& user,
                                  std::uint64_t batch);
  void log(const std::string& line) const {
    if (options.logger) options.logger(line);
  }
};

}  // namespace cmail::store
