// tests/unit/testutil.h: temporary directories and small database helpers for unit tests.
#pragma once

#include "store/sqlite.h"

#include <cmail/store/store.h>

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace cmail::test {

// A fresh directory under $TMPDIR, removed with everything in it at scope end.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "cmail-test-XXXXXX").string();
    char* p = mkdtemp(tmpl.data());
    REQUIRE(p != nullptr);
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// Opens a raw connection for checking what is in a database file.
inline std::unique_ptr<store::detail::Connection> raw(const std::string& path) {
  auto c = store::detail::Connection::open(path, store::detail::Connection::Mode::ReadWrite, 5000);
  REQUIRE(c.has_value());
  return std::move(*c);
}

inline std::int64_t count(store::detail::Connection& c, const std::string& sql) {
  return c.query_int(sql).value_or(-1);
}

inline std::unique_ptr<store::Store> open_store(const std::string& path, store::StoreOptions o = {}) {
  o.create_if_missing = true;
  auto s = store::Store::open(path, o);
  REQUIRE_MESSAGE(s.has_value(), s.error().to_string());
  return std::move(*s);
}

}  // namespace cmail::test
