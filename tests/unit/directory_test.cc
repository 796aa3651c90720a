#include "testutil.h"

#include <cmail/store/directory.h>
#include <cmail/store/password.h>

using namespace cmail;
using namespace cmail::test;

TEST_CASE("directory: address lookup takes the highest order, LIKE is ASCII case-insensitive") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  store::Directory& d = s->directory();
  REQUIRE(d.add_user("cbdev", std::nullopt).ok());
  REQUIRE(d.add_user("other", std::nullopt).ok());
  REQUIRE(d.add_address("cb@bar.baz", "store", std::string_view("cbdev"), 101).has_value());
  REQUIRE(d.add_address("cb@bar.baz", "store", std::string_view("other"), 102).has_value());
  REQUIRE(d.add_address("%@bar.baz", "reject", std::string_view("No such person"), 50).has_value());
  auto r = d.route_address("CB@Bar.Baz");
  REQUIRE(r.has_value());
  REQUIRE(r->has_value());
  CHECK((*r)->order == 102);
  CHECK((*r)->route == std::optional<std::string>("other"));
  auto all = d.match_addresses("cb@bar.baz");
  REQUIRE(all->size() == 3);
  CHECK((*all)[0].order == 102);
  CHECK((*all)[2].router == "reject");
  auto none = d.route_address("cb@elsewhere.test");
  REQUIRE(none.has_value());
  CHECK_FALSE(none->has_value());
  // Without an order the next free one is used.
  auto next = d.add_address("new@bar.baz", "drop", std::nullopt, std::nullopt);
  REQUIRE(next.has_value());
  CHECK(*next == 103);
}

TEST_CASE("directory: bad input is refused before anything is written") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  store::Directory& d = s->directory();
  REQUIRE(d.add_user("alice", std::nullopt).ok());
  auto bad_router = d.add_address("a@b.test", "stroe", std::string_view("alice"), std::nullopt);
  REQUIRE_FALSE(bad_router.has_value());
  CHECK(bad_router.error().code() == Status::Code::InvalidArgument);
  CHECK(bad_router.error().message().find("store") != std::string::npos);  // lists valid ones
  CHECK(d.add_address("a b@c.test", "store", std::nullopt, std::nullopt).error().code() == Status::Code::InvalidArgument);
  CHECK(d.add_address("", "store", std::nullopt, std::nullopt).error().code() == Status::Code::InvalidArgument);
  CHECK(d.add_address("a@b@c", "store", std::nullopt, std::nullopt).error().code() == Status::Code::InvalidArgument);
  CHECK(d.enable_smtpd("alice", std::string_view("store"), std::nullopt).code() == Status::Code::InvalidArgument);
  CHECK(d.set_password("nobody", std::string_view("pw")).is_not_found());
  CHECK(d.add_user("alice", std::nullopt).code() == Status::Code::AlreadyExists);
  CHECK(d.add_user("", std::nullopt).code() == Status::Code::InvalidArgument);
  CHECK(d.add_user("has space", std::nullopt).code() == Status::Code::InvalidArgument);
  auto addrs = d.list_addresses();
  REQUIRE(addrs.has_value());
  CHECK(addrs->empty());
  CHECK(d.list_smtpd()->empty());
}

TEST_CASE("directory: authentication follows one alias level and never tells why it failed") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  store::Directory& d = s->directory();
  REQUIRE(d.add_user("c", std::string_view("pc")).ok());
  REQUIRE(d.add_user("b", std::string_view("pb")).ok());
  REQUIRE(d.add_user("a", std::string_view("pa")).ok());
  REQUIRE(d.set_alias("a", std::string_view("b")).ok());
  REQUIRE(d.set_alias("b", std::string_view("c")).ok());
  auto id = d.authenticate("a", "pa");
  REQUIRE(id.has_value());
  CHECK(id->authenticated == "a");
  CHECK(id->authorized == "b");  // one level only (docs/compatibility.md#users-aliases)
  auto wrong = d.authenticate("a", "pb");
  auto unknown = d.authenticate("zz", "pa");
  REQUIRE_FALSE(wrong.has_value());
  REQUIRE_FALSE(unknown.has_value());
  CHECK(wrong.error().message() == unknown.error().message());
  CHECK(wrong.error().message().find("pb") == std::string::npos);
  REQUIRE(d.set_password("c", std::nullopt).ok());  // disabled login
  CHECK_FALSE(d.authenticate("c", "pc").has_value());
  auto u = d.find_user("a");
  REQUIRE(u->has_value());
  CHECK((*u)->authdata->starts_with("$argon2id$"));
  REQUIRE(d.set_alias("a", std::string_view("a")).ok());  // alias to itself removes it
  CHECK_FALSE((*d.find_user("a"))->alias.has_value());
}

TEST_CASE("directory: deleting a user cascades like cmail") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  store::Directory& d = s->directory();
  REQUIRE(d.add_user("x", std::nullopt).ok());
  REQUIRE(d.add_user("y", std::nullopt).ok());
  REQUIRE(d.set_alias("y", std::string_view("x")).ok());
  REQUIRE(d.enable_smtpd("x", std::string_view("any"), std::nullopt).ok());
  REQUIRE(d.enable_popd("x").ok());
  REQUIRE(d.grant("x", "admin").ok());
  REQUIRE(d.add_address("x@h.test", "store", std::string_view("x"), std::nullopt).has_value());
  REQUIRE(d.delete_user("x").ok());
  CHECK(d.delete_user("x").is_not_found());
  CHECK_FALSE((*d.find_user("y"))->alias.has_value());
  CHECK(d.list_smtpd()->empty());
  CHECK(d.list_popd()->empty());
  CHECK(d.list_permissions()->empty());
  // Addresses are kept (docs/compatibility.md#admin-tools-user).
  CHECK(d.list_addresses()->size() == 1);
}

TEST_CASE("directory: the imapd table: enable, find, list, disable, and it goes with its user") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  store::Directory& d = s->directory();
  REQUIRE(d.add_user("alice", std::nullopt).ok());
  REQUIRE(d.add_user("bob", std::nullopt).ok());
  REQUIRE(d.add_user("carol", std::nullopt).ok());
  CHECK_FALSE(d.find_imapd("alice")->has_value());
  REQUIRE(d.enable_imapd("bob").ok());
  REQUIRE(d.enable_imapd("alice").ok());
  CHECK(d.enable_imapd("alice").code() == Status::Code::AlreadyExists);
  CHECK(d.enable_imapd("nobody").is_not_found());  // only users have rows
  auto a = d.find_imapd("alice");
  REQUIRE(a.has_value());
  REQUIRE(a->has_value());
  CHECK((*a)->user == "alice");
  auto all = d.list_imapd();
  REQUIRE(all.has_value());
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].user == "alice");  // ordered by name
  CHECK((*all)[1].user == "bob");
  CHECK(d.list_imapd("b%")->size() == 1);
  // IMAP access is its own: POP3 rows neither give nor take it.
  REQUIRE(d.enable_popd("carol").ok());
  CHECK_FALSE(d.find_imapd("carol")->has_value());
  REQUIRE(d.disable_imapd("bob").ok());
  CHECK(d.disable_imapd("bob").is_not_found());
  CHECK_FALSE(d.find_imapd("bob")->has_value());
  CHECK(d.find_popd("carol")->has_value());
  // ON DELETE CASCADE.
  REQUIRE(d.delete_user("alice").ok());
  CHECK(d.list_imapd()->empty());
}
