// The dispatcher's pure parts: MX ordering (RFC 5321 5.1).
#include <cmail/net/dispatcher.h>

#include <doctest/doctest.h>

#include <map>

using namespace cmail;

TEST_CASE("order_mx: preference order, random among equals, never to ourselves or beyond") {
  std::mt19937 rng(7);
  std::vector<mail::MxRecord> r = {{20, "B.example"}, {10, "a.example"}, {20, "c.example"}, {30, "d.example"},
                                  {10, "a.example"}};
  std::map<std::string, int> second;
  for (int i = 0; i < 200; ++i) {
    auto hosts = net::order_mx(r, "", rng);
    REQUIRE(hosts.size() == 4);  // the duplicate is dropped
    CHECK(hosts[0] == "a.example");
    CHECK(hosts[3] == "d.example");
    ++second[hosts[1]];
  }
  CHECK(second["b.example"] > 50);  // both orders of the equal pair occur (lower-cased)
  CHECK(second["c.example"] > 50);
  // We are c.example: it and everything at preference 20 or more is left out.
  CHECK(net::order_mx(r, "C.EXAMPLE", rng) == std::vector<std::string>{"a.example"});
  CHECK(net::order_mx(r, "a.example", rng).empty());  // only ourselves: a loop, the caller fails
  CHECK(net::order_mx({}, "x", rng).empty());
}
