#include "store_impl.h"

#include <cmail/store/spool.h>

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>

namespace cmail::store {

using detail::Connection;
using detail::DbKind;
using detail::SqlError;
using detail::Stmt;

namespace detail {

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string queue_notify_path(const std::string& db_path) {
  if (db_path.empty() || db_path == ":memory:") return {};
  return db_path + "-notify-queue";
}

void touch_notify(const std::string& path, const std::string& db_path) {
  if (path.empty()) return;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0660);
  if (fd < 0) return;
  struct stat db{}, self{};
  // Created by root (cmail-admin): give it to the database's owner so the daemons can write it.
  // Both calls are best effort (glibc marks them warn_unused_result, which a (void) cast does not
  // silence in GCC): the change itself is in the database, and a daemon that misses the wake-up
  // finds it with its slow poll.
  if (::stat(db_path.c_str(), &db) == 0 && ::fstat(fd, &self) == 0 && self.st_uid != db.st_uid &&
      geteuid() == 0 && ::fchown(fd, db.st_uid, db.st_gid) != 0) {
    // not given away: only root can write it; the daemons poll
  }
  if (::pwrite(fd, "q", 1, 0) != 1) {
    // no inotify IN_MODIFY (the watchers' cue) this time
  }
  ::close(fd);
}

namespace {
// Opens (creating) a notify file, given to the database's owner when created by root.
int open_notify(const std::string& path, const std::string& db_path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0660);
  if (fd < 0) return fd;
  struct stat db{}, self{};
  if (::stat(db_path.c_str(), &db) == 0 && ::fstat(fd, &self) == 0 && self.st_uid != db.st_uid &&
      geteuid() == 0 && ::fchown(fd, db.st_uid, db.st_gid) != 0) {
    // not given away: only root can write it; watchers poll
  }
  return fd;
}
}  // namespace

void bump_notify(const std::string& path, const std::string& db_path,
                 const std::function<void(const std::string&)>& log) {
  if (path.empty()) return;
  int fd = open_notify(path, db_path);
  if (fd < 0) {
    if (log) log("cannot open " + path + ": " + std::strerror(errno));
    return;
  }
  // A read-modify-write that two processes may race: either way the file changes, and a
  // watcher only needs the inotify IN_MODIFY, never the value.
  unsigned char buf[8] = {};
  std::uint64_t n = 0;
  if (::pread(fd, buf, sizeof buf, 0) == static_cast<ssize_t>(sizeof buf))
    for (int i = 7; i >= 0; --i) n = (n << 8) | buf[i];
  ++n;
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<unsigned char>(n >> (8 * i));
  if (::pwrite(fd, buf, sizeof buf, 0) != static_cast<ssize_t>(sizeof buf) && log)
    log("cannot write " + path + ": " + std::strerror(errno));
  ::close(fd);
}

}  // namespace detail

std::string notify_path(std::string_view db_path) {
  if (db_path.empty() || db_path == ":memory:") return {};
  return std::string(db_path) + "-notify";
}

namespace {

namespace fs = std::filesystem;

bool file_is_empty_or_missing(const std::string& path) {
  std::error_code ec;
  auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return true;
  return fs::is_regular_file(st) && fs::file_size(path, ec) == 0 && !ec;
}

// SQLite files start with this 16-byte header (fileformat2.html, 1.3.1).
Status check_sqlite_header(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::io_error("cannot read " + path);
  char head[16] = {};
  in.read(head, sizeof head);
  if (in.gcount() != 16 || std::string_view(head, 16) != std::string_view("SQLite format 3\0", 16))
    return Status::corruption(path + " is not an SQLite database, so not a cmail database");
  return Status();
}

std::string timestamp() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

Status backup_connection(Connection& src, const std::string& dest) {
  std::error_code ec;
  if (fs::exists(dest, ec)) return Status::already_exists(dest + " exists; not overwriting it");
  auto out = Connection::open(dest, Connection::Mode::Create, 5000);
  if (!out) return out.error();
  sqlite3_backup* b = sqlite3_backup_init((*out)->raw(), "main", src.raw(), "main");
  if (!b) return detail::sqlite_status(sqlite3_errcode((*out)->raw()), "backup", (*out)->raw());
  int rc = sqlite3_backup_step(b, -1);  // all pages in one step: one consistent snapshot
  sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE) {
    out->reset();
    fs::remove(dest, ec);
    return detail::sqlite_status(rc, "backup to " + dest);
  }
  return Status();
}

// What kind of cmail database a connection holds; 0 = none.
Status classify(Connection& c, const std::string& path, int& version) {
  return detail::guarded([&] {
    version = detail::read_schema_version(c);
    if (version == 0)
      throw SqlError{Status::corruption(path + " is not a cmail database (no meta.schema_version)")};
    if (!c.table_exists("main", "users"))
      throw SqlError{Status::corruption(path + " is a cmail user database, not a master database")};
  });
}

// Whether this process may write `path` and create files beside it (SQLite's WAL, backups).
// The reason when not.
Status check_writable(const std::string& path) {
  if (::access(path.c_str(), W_OK) != 0) return Status::read_only(path + " is not writable");
  std::string dir = fs::path(path).parent_path().string();
  if (::access(dir.empty() ? "." : dir.c_str(), W_OK) != 0)
    return Status::read_only("the directory of " + path +
                             " is not writable (SQLite needs it for the WAL)");
  return Status();
}

// Upgrades the file at impl.path in place on a connection of its own, read_only or not
// (docs/compatibility.md#database-schema-version), and logs one line. The backup is read on a
// second connection while the upgrade's write transaction holds the lock: it holds exactly
// what the migrations start from, and of several processes opening the same old file only the
// one that migrates makes it and reports the upgrade.
Status upgrade_in_place(Store::Impl& impl) {
  const std::string& path = impl.path;
  auto conn = Connection::open(path, Connection::Mode::ReadWrite, impl.options.busy_timeout_ms);
  if (!conn) return conn.error();
  Connection& c = **conn;
  Status st = detail::guarded([&] {
    c.exec("PRAGMA journal_mode = WAL");
    c.exec("PRAGMA synchronous = FULL");
  });
  if (!st.ok()) return st;
  std::optional<Upgrade> done;
  st = detail::migrate(c, DbKind::Master, "main", detail::kSchemaVersion, [&](int from) {
    done = Upgrade{from, detail::kSchemaVersion, {}};
    if (!impl.options.backup_before_migrate) return;
    done->backup = path + ".backup-v" + std::to_string(from) + "-" + timestamp();
    auto reader = Connection::open(path, Connection::Mode::ReadOnly, impl.options.busy_timeout_ms);
    if (!reader) throw SqlError{reader.error()};
    if (Status b = backup_connection(**reader, done->backup); !b.ok()) throw SqlError{b};
  });
  if (!st.ok()) return st;
  impl.version = detail::kSchemaVersion;
  if (!done) return Status();  // another process upgraded it meanwhile
  impl.log("upgraded " + path + " from schema version " + std::to_string(done->from) + " to " +
           std::to_string(done->to) +
           (done->backup.empty() ? " (no backup)" : " (backup: " + done->backup + ")"));
  impl.upgrade = std::move(done);
  return Status();
}

}  // namespace

Status Store::Impl::read(const std::function<void(Connection&)>& fn, bool one_statement) {
  std::unique_ptr<Connection> c;
  {
    std::lock_guard lock(readers_mu);
    if (!idle_readers.empty()) {
      c = std::move(idle_readers.back());
      idle_readers.pop_back();
    }
  }
  if (!c) {
    auto opened = Connection::open(path, options.read_only ? Connection::Mode::ReadOnly
                                                           : Connection::Mode::ReadWrite,
                                   options.busy_timeout_ms);
    if (!opened) return opened.error();
    c = std::move(*opened);
    Status st = detail::guarded([&] { c->exec("PRAGMA query_only = 1"); });
    if (!st.ok()) return st;
  }
  Status st = detail::guarded([&] {
    if (one_statement) {
      fn(*c);  // stepped to its end, so its implicit read transaction is over
      return;
    }
    c->exec("BEGIN");  // one snapshot for everything fn reads
    try {
      fn(*c);
    } catch (...) {
      c->exec("ROLLBACK");
      throw;
    }
    c->exec("COMMIT");
  });
  std::lock_guard lock(readers_mu);
  if (idle_readers.size() < 16) idle_readers.push_back(std::move(c));
  return st;
}

Status Store::Impl::write(std::function<void(Connection&)> apply,
                          std::function<bool(Connection&, std::uint64_t)> prepare) {
  if (!writer) return Status::read_only(path + " is open read-only");
  return writer->run(std::move(apply), std::move(prepare));
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Store::~Store() {
  impl_->writer.reset();  // drains every submitted write first
}

int Store::current_schema_version() { return detail::kSchemaVersion; }

Status Store::create(const std::string& path) {
  if (!file_is_empty_or_missing(path)) return Status::already_exists(path + " already exists");
  auto c = Connection::open(path, Connection::Mode::Create, 5000);
  if (!c) return c.error();
  Status st = detail::guarded([&] {
    (*c)->exec("PRAGMA journal_mode = WAL");
    (*c)->exec("PRAGMA synchronous = FULL");
  });
  if (!st.ok()) return st;
  return detail::create_schema(**c, DbKind::Master);
}

Result<std::unique_ptr<Store>> Store::open(const std::string& path, const StoreOptions& options) {
  if (file_is_empty_or_missing(path)) {
    if (!options.create_if_missing || options.read_only)
      return Status::not_found("no database at " + path + " (create one with: cmail-admin init)");
    Status st = create(path);
    if (!st.ok()) return st;
  }
  if (Status st = check_sqlite_header(path); !st.ok()) return st;

  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->options = options;

  // Look before touching: a read-only connection changes nothing, not even the journal mode.
  {
    auto probe = Connection::open(path, Connection::Mode::ReadOnly, options.busy_timeout_ms);
    if (!probe) return probe.error();
    if (Status st = classify(**probe, path, impl->version); !st.ok()) return st;
  }
  const int v = impl->version;
  if (v > detail::kSchemaVersion)
    return Status::unsupported(path + " has schema version " + std::to_string(v) +
                               ", newer than this build understands (" +
                               std::to_string(detail::kSchemaVersion) + ")");
  if (v < detail::kOldestUpgradable)
    return Status::unsupported(path + " has schema version " + std::to_string(v) +
                               "; upgrade it to 9 with cmail's sql-update scripts first");
  if (v < detail::kSchemaVersion) {
    if (!options.migrate)
      return Status::unsupported(path + " needs an upgrade from schema version " +
                                 std::to_string(v) + " (run: cmail-admin migrate)");
    if (Status w = check_writable(path); !w.ok())
      return Status::read_only(path + " needs an upgrade from schema version " + std::to_string(v) +
                               " to " + std::to_string(detail::kSchemaVersion) + ", but " + w.message() +
                               " (run cmail-admin migrate as a user who may write it)");
    if (Status st = upgrade_in_place(*impl); !st.ok()) return st;
  }
  if (!options.read_only) {
    if (Status w = check_writable(path); !w.ok()) return Status::read_only(w.message());
    auto conn = Connection::open(path, Connection::Mode::ReadWrite, options.busy_timeout_ms);
    if (!conn) return conn.error();
    Status st = detail::guarded([&] {
      (*conn)->exec("PRAGMA journal_mode = WAL");
      (*conn)->exec("PRAGMA synchronous = FULL");
    });
    if (!st.ok()) return st;
    auto checkpointer = Connection::open(path, Connection::Mode::ReadWrite, options.busy_timeout_ms);
    if (!checkpointer) return checkpointer.error();
    // A connection opens the WAL with its first statement; until then sqlite3_wal_checkpoint_v2
    // on it returns at once without copying a page, and the WAL would grow to the writer's own
    // bound (kWriterCheckpointPages), making every page lookup in it slower.
    st = detail::guarded([&] { (*checkpointer)->exec("PRAGMA journal_mode = WAL"); });
    if (!st.ok()) return st;
    Impl* raw = impl.get();
    impl->writer = std::make_unique<detail::Writer>(
        std::move(*conn), std::move(*checkpointer), options.max_batch, [raw] {
          if (raw->queue_changed.exchange(false))
            detail::touch_notify(detail::queue_notify_path(raw->path), raw->path);
          if (raw->mail_changed.exchange(false))
            detail::bump_notify(notify_path(raw->path), raw->path, raw->options.logger);
        });
  }
  impl->directory = detail::make_directory(*impl);
  impl->queue = detail::make_queue(*impl);
  impl->mailboxes = detail::make_mailboxes(*impl);
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

const std::string& Store::path() const { return impl_->path; }
int Store::schema_version() const { return impl_->version; }
const std::optional<Upgrade>& Store::upgrade() const { return impl_->upgrade; }
Directory& Store::directory() { return *impl_->directory; }
Queue& Store::queue() { return *impl_->queue; }
Mailboxes& Store::mailboxes() { return *impl_->mailboxes; }
WriterStats Store::writer_stats() const {
  return impl_->writer ? impl_->writer->stats() : WriterStats{};
}

void Store::fail_writes(Status failure) {
  if (impl_->writer) impl_->writer->fail_writes(std::move(failure));
}

Result<std::unique_ptr<Spool>> Store::create_spool() const {
  // Next to the database: the same filesystem, whose free space the store needs anyway.
  return Spool::create(std::filesystem::path(impl_->path).parent_path().string());
}

Status Store::backup(const std::string& dest) {
  Status result;
  Status st = impl_->read([&](Connection& c) {
    c.exec("COMMIT");  // the backup API takes its own read transaction
    result = backup_connection(c, dest);
    c.exec("BEGIN");
  });
  return st.ok() ? result : st;
}

Result<std::vector<std::string>> Store::check() {
  std::vector<std::string> problems;
  Status st = impl_->read([&](Connection& c) {
    {
      Stmt s = c.prepare("PRAGMA integrity_check");
      while (s.step())
        if (s.text(0) != "ok") problems.push_back("integrity: " + s.text(0));
    }
    {
      Stmt s = c.prepare("PRAGMA foreign_key_check");
      while (s.step())
        problems.push_back("foreign key: row " + s.text(1) + " of " + s.text(0) +
                           " refers to a missing row of " + s.text(2));
    }
    int v = detail::read_schema_version(c);
    if (v != detail::kSchemaVersion)
      problems.push_back("schema version is " + std::to_string(v) + ", expected " +
                         std::to_string(detail::kSchemaVersion));
    static const char* const kColumns[][2] = {
        {"users", "user_name"},         {"users", "user_authdata"},
        {"users", "user_database"},     {"users", "user_alias"},
        {"addresses", "address_expression"}, {"addresses", "address_order"},
        {"addresses", "address_router"}, {"addresses", "address_route"},
        {"mailbox", "mail_id"},         {"mailbox", "mail_user"},
        {"mailbox", "mail_read"},       {"mailbox", "mail_ident"},
        {"mailbox", "mail_envelopeto"}, {"mailbox", "mail_envelopefrom"},
        {"mailbox", "mail_submission"}, {"mailbox", "mail_submitter"},
        {"mailbox", "mail_proto"},      {"mailbox", "mail_data"},
        {"mailbox", "mail_folder"},     {"mailbox", "mail_uid"},
        {"mailbox", "mail_modseq"},     {"mailbox", "mail_flags"},
        {"mailbox", "mail_keywords"},   {"mailbox", "mail_internaldate"},
        {"mailbox", "mail_size"},       {"meta", "key"},
        {"meta", "value"},              {"smtpd", "smtpd_user"},
        {"smtpd", "smtpd_router"},      {"smtpd", "smtpd_route"},
        {"outbox", "mail_id"},          {"outbox", "mail_remote"},
        {"outbox", "mail_envelopefrom"}, {"outbox", "mail_envelopeto"},
        {"outbox", "mail_submission"},  {"outbox", "mail_submitter"},
        {"outbox", "mail_data"},        {"outbox", "mail_queueid"},
        {"outbox", "mail_next_attempt"}, {"outbox", "mail_lease_owner"},
        {"outbox", "mail_lease_until"}, {"popd", "pop_user"},
        {"popd", "pop_lock"},           {"api_access", "api_user"},
        {"api_access", "api_permission"}, {"api_address_delegates", "api_expression"},
        {"api_user_delegates", "api_delegate"}, {"faillog", "fail_mail"},
        {"faillog", "fail_message"},    {"faillog", "fail_time"},
        {"faillog", "fail_fatal"},      {"outbound", "mail_failcount"},
        {"outbound", "mail_lasttry"},   {"outbound", "mail_fatality"},
        {"folders", "folder_uidnext"},  {"expunged", "exp_uid"},
        {"mailbox", "mail_wiresize"},   {"mailbox", "mail_uidl"},
        {"popd", "pop_lock_owner"},     {"popd", "pop_lock_time"},
        {"imapd", "imap_user"},
        {"mailbox", "mail_structure"},  {"subscriptions", "sub_user"},
        {"subscriptions", "sub_name"},
    };
    for (auto& [table, column] : kColumns)
      if (!c.column_exists("main", table, column))
        problems.push_back(std::string("missing column ") + table + "." + column);
    if (problems.empty()) {
      // Rows without a folder are mail another program wrote, numbered when next listed or
      // delivered to (docs/compatibility.md#database-rows-written-by-other-programs).
      auto bad = c.query_int(
          "SELECT COUNT(*) FROM mailbox LEFT JOIN folders ON mail_folder = folder_id "
          "WHERE mail_folder IS NOT NULL AND (folder_id IS NULL OR mail_uid IS NULL "
          "OR mail_uid >= folder_uidnext OR folder_user <> mail_user)");
      if (bad.value_or(0) > 0)
        problems.push_back(std::to_string(*bad) +
                           " stored messages lack a valid folder or UID below the folder's UIDNEXT");
    }
  });
  if (!st.ok()) return st;
  return problems;
}

}  // namespace cmail::store
