// libcmail/store/schema.h: the master and user database schemas and their numbered migrations.
//
// A new database is created by running cmail's version-9 install script and then every
// migration, so that fresh and upgraded databases go through the same code. The migrations
// an upgrade needs run in one transaction, each with its meta.schema_version update.
//
// Thread-safety: stateless functions; the Connection passed in is used by the calling thread.
#pragma once

#include "sqlite.h"

#include <functional>
#include <string_view>

namespace cmail::store::detail {

enum class DbKind { Master, User };

// The schema version this build writes and understands.
inline constexpr int kSchemaVersion = 14;
// The oldest version that can be upgraded in place (cmail's last schema).
inline constexpr int kOldestUpgradable = 9;

// cmail's install scripts for schema version 9 (install_master.sql, install_user.sql).
std::string_view v9_install_sql(DbKind kind);

// Reads meta.schema_version of `schema` ("main" or an attached name). Returns 0 when the file
// holds no cmail meta table at all; throws SqlError when it cannot be read.
int read_schema_version(Connection& c, std::string_view schema = "main");

// Runs every migration from the current version up to `target` (kSchemaVersion; tests stop
// earlier to make old files) in one write transaction, reading the version under its lock.
// `before`, when given, runs inside it before the first step, with the version found there: a
// backup taken then holds exactly what the migrations start from, and when another process
// migrated meanwhile it does not run at all. A SqlError thrown by it ends the upgrade with
// nothing changed. REQUIRES: no transaction open on c; `schema` is "main" or attached.
Status migrate(Connection& c, DbKind kind, std::string_view schema = "main", int target = kSchemaVersion,
               const std::function<void(int from)>& before = {});

// Creates a new database of `kind` at the current version. REQUIRES: an empty database.
Status create_schema(Connection& c, DbKind kind);

}  // namespace cmail::store::detail
