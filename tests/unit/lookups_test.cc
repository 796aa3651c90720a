// The routing lookups' cache (cmail/store/directory.h: CachedLookups, Store::cached_lookups()).
#include "testutil.h"

#include <cmail/store/directory.h>

using namespace cmail;
using namespace cmail::test;

namespace {

std::string router_of(store::DirectoryLookups& l, const std::string& path) {
  auto a = l.route_address(path);
  REQUIRE(a.has_value());
  return a->has_value() ? (*a)->router : "none";
}

struct Fixture {
  TempDir dir;
  std::unique_ptr<store::Store> store = open_store(dir.file("m"));
  Fixture() {
    REQUIRE(store->directory().add_user("alice", std::nullopt).ok());
    REQUIRE(store->directory().add_address("alice@local.test", "store", std::string_view("alice"), 10).has_value());
  }
};

}  // namespace

TEST_CASE("cached lookups: answers as of the last refresh, and current after the next") {
  Fixture f;
  auto l = f.store->cached_lookups();
  REQUIRE(l->refresh().ok());
  CHECK(router_of(*l, "alice@local.test") == "store");
  CHECK(router_of(*l, "bob@local.test") == "none");  // a negative answer is kept too
  auto u = l->find_user("alice");
  REQUIRE(u.has_value());
  CHECK(u->has_value());

  // Another program changes the routing (a connection of its own, as cmail-admin or sqlite3).
  auto c = raw(f.dir.file("m"));
  c->exec("UPDATE addresses SET address_router = 'reject' WHERE address_order = 10");
  c->exec("INSERT INTO addresses (address_expression, address_order, address_router, address_route) "
          "VALUES ('bob@local.test', 11, 'store', 'alice')");
  c->exec("DELETE FROM users WHERE user_name = 'alice' AND 0");  // touches no row: no change
  // Until the next refresh (the next MAIL), the transaction keeps what it saw.
  CHECK(router_of(*l, "alice@local.test") == "store");
  CHECK(router_of(*l, "bob@local.test") == "none");
  REQUIRE(l->refresh().ok());
  CHECK(router_of(*l, "alice@local.test") == "reject");
  CHECK(router_of(*l, "bob@local.test") == "store");
  // The store's own writes count the same way.
  REQUIRE(f.store->directory().delete_user("alice").ok());
  REQUIRE(l->refresh().ok());
  u = l->find_user("alice");
  REQUIRE(u.has_value());
  CHECK_FALSE(u->has_value());
}

TEST_CASE("cached lookups: every session of a store shares one cache") {
  Fixture f;
  auto first = f.store->cached_lookups();
  REQUIRE(first->refresh().ok());
  CHECK(router_of(*first, "alice@local.test") == "store");
  // A change that bypasses the counter (its trigger dropped) shows what a second session
  // answers from: the first one's entry, not the database.
  auto c = raw(f.dir.file("m"));
  c->exec("DROP TRIGGER directory_generation_addresses_update");
  c->exec("UPDATE addresses SET address_router = 'drop' WHERE address_order = 10");
  auto second = f.store->cached_lookups();
  REQUIRE(second->refresh().ok());
  CHECK(router_of(*second, "alice@local.test") == "store");
  // Without a refresh there is no cache: the database answers.
  auto fresh = f.store->cached_lookups();
  CHECK(router_of(*fresh, "alice@local.test") == "drop");
}

TEST_CASE("cached lookups: many different addresses keep the cache bounded and the answers right") {
  Fixture f;
  auto l = f.store->cached_lookups();
  REQUIRE(l->refresh().ok());
  for (int i = 0; i < 10000; ++i) CHECK(router_of(*l, "u" + std::to_string(i) + "@nowhere.test") == "none");
  CHECK(router_of(*l, "alice@local.test") == "store");
}
