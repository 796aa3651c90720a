// backends::SessionLimit: places per user, given back when a ticket goes, from any thread.
#include <cmail/backends/session_limit.h>

#include <doctest/doctest.h>

#include <thread>
#include <vector>

using cmail::backends::SessionLimit;

TEST_CASE("session limit: at most max per user; a destroyed ticket frees its place") {
  auto limit = SessionLimit::create(2);
  auto a1 = limit->acquire("alice");
  auto a2 = limit->acquire("alice");
  REQUIRE(a1);
  REQUIRE(a2);
  CHECK_FALSE(limit->acquire("alice"));  // the third
  CHECK(limit->count("alice") == 2);
  auto b = limit->acquire("bob");  // another user's places are their own
  CHECK(b);
  a1.reset();
  CHECK(limit->count("alice") == 1);
  CHECK(limit->acquire("alice"));  // and gone again at once (a temporary)
  CHECK(limit->count("alice") == 1);
  a2.reset();
  b.reset();
  CHECK(limit->count("alice") == 0);
  CHECK(limit->count("bob") == 0);
}

TEST_CASE("session limit: 0 counts without refusing; a ticket keeps its limit alive") {
  std::unique_ptr<SessionLimit::Ticket> kept;
  {
    auto none = SessionLimit::create(0);
    std::vector<std::unique_ptr<SessionLimit::Ticket>> many;
    for (int i = 0; i < 100; ++i) many.push_back(none->acquire("u"));
    for (auto& t : many) CHECK(t);
    CHECK(none->count("u") == 100);
    kept = std::move(many.back());
  }
  kept.reset();  // releases into the limit it shares: no use after free (ASan)
}

TEST_CASE("session limit: concurrent acquires never exceed max") {
  auto limit = SessionLimit::create(5);
  std::vector<std::thread> threads;
  std::vector<std::vector<std::unique_ptr<SessionLimit::Ticket>>> got(8);
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i)
        if (auto k = limit->acquire("u")) got[t].push_back(std::move(k));
    });
  for (auto& th : threads) th.join();
  std::size_t total = 0;
  for (auto& g : got) total += g.size();
  CHECK(total == 5);
  CHECK(limit->count("u") == 5);
}
