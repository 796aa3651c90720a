// libcmail/store/sqlite.h: private RAII wrappers over the SQLite C API.
//
// Connection owns one sqlite3 handle and a cache of prepared statements; Stmt is a borrowed,
// reset-on-use view of a cached statement. Inside libcmail, SQL failures throw SqlError, which
// every public entry point catches and turns into a Status (the public API never throws), so
// the SQL code reads straight through.
//
// Thread-safety: a Connection is used by one thread at a time (SQLite is built serialized on
// Debian, but statements and transactions are per connection). Not part of the public API.
#pragma once

#include <cmail/status.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;
struct sqlite3_blob;

namespace cmail::store::detail {

// A failed SQLite call: the Status it maps to (Busy, AlreadyExists, Constraint, ...).
struct SqlError {
  Status status;
};

// Maps an SQLite result code (extended codes included) to a Status with `what` as context.
Status sqlite_status(int rc, std::string_view what, sqlite3* db = nullptr);

class Stmt {
 public:
  explicit Stmt(sqlite3_stmt* s) : s_(s) {}

  // Binding, 1-based like SQLite. Returns *this so that calls chain.
  Stmt& bind(int i, std::nullopt_t);
  Stmt& bind(int i, std::int64_t v);
  Stmt& bind(int i, int v) { return bind(i, std::int64_t{v}); }
  Stmt& bind(int i, std::string_view text);  // bound as TEXT (copied)
  Stmt& bind(int i, const char* text) { return bind(i, std::string_view(text)); }
  Stmt& bind(int i, const std::string& text) { return bind(i, std::string_view(text)); }
  Stmt& bind(int i, const std::optional<std::string>& text);
  // Bound as TEXT without a copy (SQLITE_STATIC): `text` must stay as it is while the
  // statement runs. SQLite keeps the pointer until the parameter is bound again, so use it only
  // in statements that bind every parameter at each use (the cache hands the same statement
  // out again). For the large values of an INSERT.
  Stmt& bind_static(int i, std::string_view text);
  Stmt& bind(int i, const std::optional<std::int64_t>& v);
  Stmt& bind_blob(int i, std::string_view bytes);
  Stmt& bind_zeroblob(int i, std::uint64_t size);  // room for incremental blob I/O

  // Advances; true while a row is available. Throws SqlError on failure.
  bool step();
  // Runs a statement that returns no rows (or ignores them); returns sqlite3_changes().
  int run();

  int column_count() const;
  // The value with its storage class, e.g. "i:5", "t:abc", "b:...", "null" (for comparisons).
  std::string describe(int col) const;
  bool is_null(int col) const;
  std::int64_t int64(int col) const;
  std::string text(int col) const;            // "" for NULL
  std::string_view text_view(int col) const;  // valid until the next step/reset
  std::optional<std::string> opt_text(int col) const;
  std::optional<std::int64_t> opt_int64(int col) const;

 private:
  sqlite3_stmt* s_;
};

class Connection {
 public:
  enum class Mode { ReadOnly, ReadWrite, Create };

  // Opens `path`. Sets the busy timeout and turns foreign keys on; sets nothing else (the
  // caller decides journal mode after checking what the file is).
  static Result<std::unique_ptr<Connection>> open(const std::string& path, Mode mode,
                                                  int busy_timeout_ms);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs one or more statements without results. Throws SqlError.
  void exec(std::string_view sql);
  // A cached prepared statement for `sql`, reset and with bindings cleared. Throws SqlError.
  Stmt prepare(std::string_view sql);
  // Single-value helpers. Throw SqlError.
  std::optional<std::int64_t> query_int(std::string_view sql);
  std::optional<std::string> query_text(std::string_view sql);
  std::int64_t last_insert_rowid() const;
  bool table_exists(std::string_view schema, std::string_view table);
  bool column_exists(std::string_view schema, std::string_view table, std::string_view column);

  // Runs fn inside BEGIN IMMEDIATE ... COMMIT (ROLLBACK when it throws or fails).
  Status transaction(const std::function<void()>& fn);

  sqlite3* raw() const { return db_; }
  const std::string& path() const { return path_; }

 private:
  Connection(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
  std::map<std::string, sqlite3_stmt*, std::less<>> cache_;
};

// One value of a row opened for incremental I/O (sqlite3_blob_open): a message written or read
// in chunks. Offsets and sizes must lie within the value (SQLite's limit: under 2 GiB).
class Blob {
 public:
  Blob(Connection& c, const std::string& schema, const char* table, const char* column, std::int64_t row,
       bool writable);
  ~Blob();
  Blob(const Blob&) = delete;
  Blob& operator=(const Blob&) = delete;

  std::uint64_t size() const;
  void write(std::uint64_t offset, std::string_view bytes);
  void read(std::uint64_t offset, std::size_t n, std::string& out);

 private:
  sqlite3* db_;
  sqlite3_blob* b_ = nullptr;
};

// Runs fn and converts a thrown SqlError into its Status.
template <typename Fn>
Status guarded(Fn&& fn) {
  try {
    fn();
    return Status();
  } catch (const SqlError& e) {
    return e.status;
  }
}

}  // namespace cmail::store::detail
