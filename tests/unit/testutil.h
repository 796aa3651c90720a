// tests/unit/testutil.h: small database helpers for unit tests (temporary directories, files
// and the shared fakes are in fakes.h).
#pragma once

#include "fakes.h"
#include "store/sqlite.h"

#include <cmail/store/store.h>

#include <doctest/doctest.h>

#include <cstdint>
#include <memory>
#include <string>

namespace cmail::test {

// Opens a raw connection for checking what is in a database file.
inline std::unique_ptr<store::detail::Connection> raw(const std::string& path) {
  auto c = store::detail::Connection::open(path, store::detail::Connection::Mode::ReadWrite, 5000);
  REQUIRE(c.has_value());
  return std::move(*c);
}

inline std::int64_t count(store::detail::Connection& c, const std::string& sql) {
  return c.query_int(sql).value_or(-1);
}

// Adds a users row the way cmail's tools did, with no password (and a user database if given).
inline void insert_user(const std::string& db_path, const std::string& name, const char* user_database = nullptr) {
  auto c = raw(db_path);
  auto s = c->prepare("INSERT INTO users (user_name, user_database) VALUES (?1, ?2)");
  s.bind(1, name);
  if (user_database) s.bind(2, user_database);
  s.run();
}

inline std::unique_ptr<store::Store> open_store(const std::string& path, store::StoreOptions o = {}) {
  o.create_if_missing = true;
  auto s = store::Store::open(path, o);
  REQUIRE_MESSAGE(s.has_value(), s.error().to_string());
  return std::move(*s);
}

}  // namespace cmail::test
