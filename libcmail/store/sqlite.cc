#include "sqlite.h"

#include <sqlite3.h>

#include <string>

namespace cmail::store::detail {

Status sqlite_status(int rc, std::string_view what, sqlite3* db) {
  std::string msg(what);
  msg += ": ";
  msg += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
      return Status();
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::busy(msg);
    case SQLITE_READONLY:
      return Status::read_only(msg);
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return Status::already_exists(msg);
      return Status::constraint(msg);
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return Status::corruption(msg);
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_PERM:
      return Status::io_error(msg);
    case SQLITE_FULL:
      return Status::no_space(msg);
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
      return Status::invalid_argument(msg);
    default:
      return Status::internal(msg);
  }
}

static void check_bind(int rc, sqlite3_stmt* s) {
  if (rc != SQLITE_OK) throw SqlError{sqlite_status(rc, "bind", sqlite3_db_handle(s))};
}

Stmt& Stmt::bind(int i, std::nullopt_t) {
  check_bind(sqlite3_bind_null(s_, i), s_);
  return *this;
}
Stmt& Stmt::bind(int i, std::int64_t v) {
  check_bind(sqlite3_bind_int64(s_, i, v), s_);
  return *this;
}
Stmt& Stmt::bind(int i, std::string_view text) {
  check_bind(sqlite3_bind_text64(s_, i, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8),
             s_);
  return *this;
}
Stmt& Stmt::bind_static(int i, std::string_view text) {
  check_bind(sqlite3_bind_text64(s_, i, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8), s_);
  return *this;
}
Stmt& Stmt::bind(int i, const std::optional<std::string>& text) {
  return text ? bind(i, std::string_view(*text)) : bind(i, std::nullopt);
}
Stmt& Stmt::bind(int i, const std::optional<std::int64_t>& v) {
  return v ? bind(i, *v) : bind(i, std::nullopt);
}
Stmt& Stmt::bind_zeroblob(int i, std::uint64_t size) {
  check_bind(sqlite3_bind_zeroblob64(s_, i, size), s_);
  return *this;
}
Stmt& Stmt::bind_blob(int i, std::string_view bytes) {
  check_bind(sqlite3_bind_blob64(s_, i, bytes.data(), bytes.size(), SQLITE_TRANSIENT), s_);
  return *this;
}

bool Stmt::step() {
  int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  sqlite3* db = sqlite3_db_handle(s_);
  // Extended code of the failing step (sqlite3_step returns the primary one for legacy reasons).
  Status st = sqlite_status(sqlite3_extended_errcode(db), sqlite3_sql(s_), db);
  sqlite3_reset(s_);
  throw SqlError{st};
}

int Stmt::run() {
  while (step()) {
  }
  return sqlite3_changes(sqlite3_db_handle(s_));
}

int Stmt::column_count() const { return sqlite3_column_count(s_); }

std::string Stmt::describe(int col) const {
  switch (sqlite3_column_type(s_, col)) {
    case SQLITE_NULL: return "null";
    case SQLITE_INTEGER: return "i:" + std::to_string(int64(col));
    case SQLITE_FLOAT: return "f:" + std::to_string(sqlite3_column_double(s_, col));
    case SQLITE_TEXT: return "t:" + text(col);
    default: return "b:" + text(col);
  }
}

bool Stmt::is_null(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
std::int64_t Stmt::int64(int col) const { return sqlite3_column_int64(s_, col); }
std::string_view Stmt::text_view(int col) const {
  // Reading as a blob keeps every byte (including NUL) of TEXT and BLOB values alike.
  const void* p = sqlite3_column_blob(s_, col);
  int n = sqlite3_column_bytes(s_, col);
  return p ? std::string_view(static_cast<const char*>(p), static_cast<std::size_t>(n))
           : std::string_view();
}
std::string Stmt::text(int col) const { return std::string(text_view(col)); }
std::optional<std::string> Stmt::opt_text(int col) const {
  if (is_null(col)) return std::nullopt;
  return text(col);
}
std::optional<std::int64_t> Stmt::opt_int64(int col) const {
  if (is_null(col)) return std::nullopt;
  return int64(col);
}

Result<std::unique_ptr<Connection>> Connection::open(const std::string& path, Mode mode,
                                                     int busy_timeout_ms) {
  int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
  switch (mode) {
    case Mode::ReadOnly: flags |= SQLITE_OPEN_READONLY; break;
    case Mode::ReadWrite: flags |= SQLITE_OPEN_READWRITE; break;
    case Mode::Create: flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE; break;
  }
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    Status st = sqlite_status(rc, "cannot open " + path, db);
    sqlite3_close_v2(db);
    return st;
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, busy_timeout_ms);
  std::unique_ptr<Connection> c(new Connection(db, path));
  Status st = guarded([&] { c->exec("PRAGMA foreign_keys = ON"); });
  if (!st.ok()) return st;
  return c;
}

Connection::~Connection() {
  for (auto& [sql, s] : cache_) sqlite3_finalize(s);
  sqlite3_close_v2(db_);
}

void Connection::exec(std::string_view sql) {
  // One statement (BEGIN, COMMIT, SAVEPOINT ...): run it from the statement cache instead of
  // parsing it again on every transaction.
  if (sql.find(';') == std::string_view::npos) {
    prepare(sql).run();
    return;
  }
  std::string s(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string what = err ? err : "exec";
    sqlite3_free(err);
    throw SqlError{sqlite_status(sqlite3_extended_errcode(db_), what)};
  }
}

Stmt Connection::prepare(std::string_view sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &s, nullptr);
    if (rc != SQLITE_OK) throw SqlError{sqlite_status(rc, sql, db_)};
    it = cache_.emplace(std::string(sql), s).first;
  }
  sqlite3_reset(it->second);
  sqlite3_clear_bindings(it->second);
  return Stmt(it->second);
}

std::optional<std::int64_t> Connection::query_int(std::string_view sql) {
  Stmt s = prepare(sql);
  if (!s.step()) return std::nullopt;
  std::optional<std::int64_t> v;
  if (!s.is_null(0)) v = s.int64(0);
  s.run();  // to the end, so that no read stays open (a NULL value once left it open)
  return v;
}

std::optional<std::string> Connection::query_text(std::string_view sql) {
  Stmt s = prepare(sql);
  if (!s.step()) return std::nullopt;
  std::optional<std::string> v;
  if (!s.is_null(0)) v = s.text(0);
  s.run();  // to the end, so that no read stays open (a NULL value once left it open)
  return v;
}

std::int64_t Connection::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }

bool Connection::table_exists(std::string_view schema, std::string_view table) {
  std::string sql = "SELECT 1 FROM \"" + std::string(schema) +
                    "\".sqlite_master WHERE type IN ('table','view') AND name = ?1";
  Stmt s = prepare(sql);
  s.bind(1, table);
  bool found = s.step();
  s.run();
  return found;
}

bool Connection::column_exists(std::string_view schema, std::string_view table,
                               std::string_view column) {
  Stmt s = prepare("SELECT 1 FROM pragma_table_info(?1, ?2) WHERE name = ?3");
  s.bind(1, table).bind(2, schema).bind(3, column);
  bool found = s.step();
  s.run();
  return found;
}

Status Connection::transaction(const std::function<void()>& fn) {
  Status st = guarded([&] { exec("BEGIN IMMEDIATE"); });
  if (!st.ok()) return st;
  st = guarded([&] {
    fn();
    exec("COMMIT");
  });
  if (!st.ok()) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  return st;
}

Blob::Blob(Connection& c, const std::string& schema, const char* table, const char* column,
           std::int64_t row, bool writable)
    : db_(c.raw()) {
  int rc = sqlite3_blob_open(db_, schema.c_str(), table, column, row, writable ? 1 : 0, &b_);
  if (rc != SQLITE_OK) {
    Status st = sqlite_status(rc, "open blob", db_);
    sqlite3_blob_close(b_);
    throw SqlError{st};
  }
}

Blob::~Blob() { sqlite3_blob_close(b_); }

std::uint64_t Blob::size() const { return static_cast<std::uint64_t>(sqlite3_blob_bytes(b_)); }

void Blob::write(std::uint64_t offset, std::string_view bytes) {
  int rc = sqlite3_blob_write(b_, bytes.data(), static_cast<int>(bytes.size()), static_cast<int>(offset));
  if (rc != SQLITE_OK) throw SqlError{sqlite_status(rc, "write blob", db_)};
}

void Blob::read(std::uint64_t offset, std::size_t n, std::string& out) {
  out.resize(n);
  int rc = sqlite3_blob_read(b_, out.data(), static_cast<int>(n), static_cast<int>(offset));
  if (rc != SQLITE_OK) throw SqlError{sqlite_status(rc, "read blob", db_)};
}

}  // namespace cmail::store::detail
