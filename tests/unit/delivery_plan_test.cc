// Queue entries to transactions, outcomes to queue outcomes (cmail/net/delivery_plan.h).
#include <cmail/net/delivery_plan.h>

#include <doctest/doctest.h>

using namespace cmail;
using namespace cmail::net;

namespace {

store::QueueEntry entry(std::int64_t id, const std::string& qid, std::optional<std::string> from, const std::string& to,
                        std::optional<std::string> remote = std::nullopt) {
  store::QueueEntry e;
  e.id = id;
  e.queue_id = qid;
  e.envelope_from = std::move(from);
  e.envelope_to = to;
  e.remote = std::move(remote);
  return e;
}

std::vector<std::int64_t> ids(const Transaction& t) {
  std::vector<std::int64_t> out;
  for (const auto& e : t.rcpts) out.push_back(e.id);
  return out;
}

}  // namespace

TEST_CASE("delivery plan: transactions per destination, message and sender") {
  std::vector<store::QueueEntry> leased = {
      entry(1, "Q1", "a@local.test", "x@Example.org"),
      entry(2, "Q1", "a@local.test", "y@example.ORG"),  // same domain, any case
      entry(3, "Q1", "a@local.test", "z@other.test"),
      entry(4, "Q2", "a@local.test", "w@example.org"),  // another message
      entry(5, "Q1", std::nullopt, "v@example.org"),    // same queue id, the null sender: apart
      entry(6, "Q1", "", "u@example.org"),              // "" is not the same as nullopt
      entry(7, "Q1", "a@local.test", "t@example.org", "relay.test:2525"),  // a handoff: its own destination
      entry(8, "", "a@local.test", "s@example.org"),    // no queue id: by entry
      entry(9, "", "a@local.test", "r@example.org"),
  };
  auto plan = plan_transactions(std::move(leased), 100);
  CHECK(plan.failed.empty());
  REQUIRE(plan.destinations.size() == 3);
  const DestinationPlan& ex = plan.destinations[0];
  CHECK(ex.target.key == "example.org");
  REQUIRE(ex.transactions.size() == 6);
  CHECK(ids(ex.transactions[0]) == std::vector<std::int64_t>{1, 2});
  CHECK(ex.transactions[0].from == std::optional<std::string>("a@local.test"));
  CHECK(ids(ex.transactions[1]) == std::vector<std::int64_t>{4});
  CHECK(ids(ex.transactions[2]) == std::vector<std::int64_t>{5});
  CHECK_FALSE(ex.transactions[2].from);
  CHECK(ids(ex.transactions[3]) == std::vector<std::int64_t>{6});
  CHECK(ex.transactions[3].from == std::optional<std::string>(""));
  CHECK(ids(ex.transactions[4]) == std::vector<std::int64_t>{8});
  CHECK(ids(ex.transactions[5]) == std::vector<std::int64_t>{9});
  CHECK(plan.destinations[1].target.key == "other.test");
  CHECK(plan.destinations[2].target.key == "remote relay.test:2525");
  CHECK(plan.destinations[2].target.handoff());
  CHECK(ids(plan.destinations[2].transactions.at(0)) == std::vector<std::int64_t>{7});
}

TEST_CASE("delivery plan: at most max_recipients a transaction") {
  std::vector<store::QueueEntry> leased;
  for (int i = 1; i <= 7; ++i) leased.push_back(entry(i, "Q", "a@local.test", "r" + std::to_string(i) + "@example.org"));
  auto plan = plan_transactions(std::move(leased), 3);
  REQUIRE(plan.destinations.size() == 1);
  const auto& ts = plan.destinations[0].transactions;
  REQUIRE(ts.size() == 3);
  CHECK(ids(ts[0]) == std::vector<std::int64_t>{1, 2, 3});
  CHECK(ids(ts[1]) == std::vector<std::int64_t>{4, 5, 6});
  CHECK(ids(ts[2]) == std::vector<std::int64_t>{7});
}

TEST_CASE("delivery plan: entries without a destination fail permanently, one by one") {
  std::vector<store::QueueEntry> leased = {
      entry(1, "Q", "a@local.test", "postmaster"),
      entry(2, "Q", "a@local.test", "x@example.org", "u:secret@relay.test:25x"),
      entry(3, "Q", "a@local.test", "y@example.org"),
  };
  auto plan = plan_transactions(std::move(leased), 100);
  REQUIRE(plan.failed.size() == 2);
  CHECK(plan.failed[0].first.id == 1);
  CHECK(plan.failed[0].second == mail::Failure{"5.1.3 the recipient has no domain", true});
  CHECK(plan.failed[1].first.id == 2);
  CHECK(plan.failed[1].second.fatal);
  CHECK(plan.failed[1].second.record.starts_with("5.3.5 invalid handoff remote: "));
  REQUIRE(plan.destinations.size() == 1);
  CHECK(ids(plan.destinations[0].transactions.at(0)) == std::vector<std::int64_t>{3});
}

TEST_CASE("delivery plan: the envelope carries the DSN parameters (RFC 3461 4)") {
  Transaction t;
  t.from = std::nullopt;  // a bounce goes as MAIL FROM:<>
  auto e1 = entry(1, "Q", std::nullopt, "x@example.org");
  e1.dsn_ret = "HDRS";
  e1.dsn_envid = "env-1";
  e1.dsn = {"SUCCESS,FAILURE", "rfc822;X@example.org"};
  t.rcpts = {e1, entry(2, "Q", std::nullopt, "y@example.org")};
  auto env = envelope_of(t);
  CHECK(env.from.null());
  CHECK(env.params.ret == std::optional<std::string>("HDRS"));
  CHECK(env.params.envid == std::optional<std::string>("env-1"));
  REQUIRE(env.recipients.size() == 2);
  CHECK(env.recipients[0].to.address() == "x@example.org");
  CHECK(env.recipients[0].params.notify == std::optional<std::string>("SUCCESS,FAILURE"));
  CHECK(env.recipients[0].params.orcpt == std::optional<std::string>("rfc822;X@example.org"));
  CHECK_FALSE(env.recipients[1].params.notify);

  t.from = "a@local.test";
  CHECK(envelope_of(t).from.address() == "a@local.test");
}

TEST_CASE("delivery plan: outcomes settle entries") {
  using K = mail::RecipientOutcome::Kind;
  mail::RecipientOutcome delivered{K::Delivered, "", 0, false, true, std::nullopt};
  mail::RecipientOutcome deferred{K::Deferred, "451 4.3.0 later (from mx)", 4242, false, false, std::nullopt};
  mail::RecipientOutcome failed{K::Failed, "550 5.1.1 unknown (from mx)", 0, false, false, std::nullopt};
  auto d = queue_outcome(7, delivered);
  CHECK(d.id == 7);
  CHECK(d.kind == store::QueueOutcome::Kind::Delivered);
  auto t = queue_outcome(8, deferred);
  CHECK(t.kind == store::QueueOutcome::Kind::Failed);
  CHECK(t.message == deferred.record);
  CHECK_FALSE(t.fatal);
  CHECK(t.next_attempt == 4242);
  auto p = queue_outcome(9, failed);
  CHECK(p.kind == store::QueueOutcome::Kind::Failed);
  CHECK(p.message == failed.record);
  CHECK(p.fatal);

  auto e = entry(1, "Q", "a@local.test", "x@example.org");
  e.failures = 2;
  e.submission = 12345;
  e.dsn.notify = "NEVER";
  auto a = attempted(e);
  CHECK(a.failures == 2);
  CHECK(a.submission == 12345);
  CHECK(a.notify == std::optional<std::string>("NEVER"));
}
