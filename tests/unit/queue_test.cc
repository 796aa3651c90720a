#include "testutil.h"

#include <cmail/store/directory.h>
#include <cmail/store/queue.h>
#include <cmail/store/store.h>

#include <algorithm>
#include <filesystem>
#include <future>

using namespace cmail;
using namespace cmail::test;

namespace {

void enqueue(store::Store& s, const std::string& ident, int recipients) {
  store::Delivery d;
  d.ident = ident;
  d.envelope_from = "from@local.test";
  d.data = "Subject: q\r\n\r\nbody";
  for (int i = 0; i < recipients; ++i)
    d.queued.push_back({std::nullopt, "r" + std::to_string(i) + "@remote.test", {}});
  REQUIRE(s.deliver_sync(d).ok());
}

}  // namespace

TEST_CASE("queue: one message for many recipients, leased to one owner at a time") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  enqueue(*s, "Q1", 5);
  auto all = s->queue().list();
  REQUIRE(all.has_value());
  REQUIRE(all->size() == 5);
  CHECK((*all)[0].queue_id == "Q1");
  CHECK((*all)[0].size == 18);

  auto a = s->queue().lease_due("A", 1000, 3, 60);
  REQUIRE(a.has_value());
  CHECK(a->size() == 3);
  auto b = s->queue().lease_due("B", 1000, 10, 60);
  REQUIRE(b.has_value());
  CHECK(b->size() == 2);  // A's three are not offered again
  for (auto& e : *a)
    for (auto& f : *b) CHECK(e.id != f.id);
  // Asking again with the same owner does not hand out the same entries twice.
  auto a2 = s->queue().lease_due("A", 1000, 10, 60);
  REQUIRE(a2.has_value());
  CHECK(a2->empty());
  // After the lease expires, another owner may take them (a crashed dispatcher's work).
  auto c = s->queue().lease_due("C", 1061, 10, 60);
  REQUIRE(c.has_value());
  CHECK(c->size() == 5);
  // A stale owner cannot complete what was taken over.
  CHECK(s->queue().complete((*a)[0].id, "A").is_not_found());
  CHECK(s->queue().complete((*a)[0].id, "C").ok());
  CHECK(s->queue().list()->size() == 4);
}

TEST_CASE("queue: failures are recorded in faillog and delay the next attempt") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  enqueue(*s, "Q2", 2);
  auto leased = s->queue().lease_due("A", 100, 10, 60);
  REQUIRE(leased->size() == 2);
  std::int64_t temp = (*leased)[0].id, perm = (*leased)[1].id;
  REQUIRE(s->queue().record_failure(temp, "A", "451 4.3.0 try later", false, 500).ok());
  REQUIRE(s->queue().record_failure(perm, "A", "550 5.1.1 no such user", true, 500).ok());
  CHECK(s->queue().record_failure(perm, "A", "again", true, 500).is_not_found());  // lease gone

  auto db = raw(dir.file("m"));
  CHECK(count(*db, "SELECT mail_failcount FROM outbound WHERE mail_id = " + std::to_string(temp)) == 1);
  CHECK(count(*db, "SELECT mail_fatality FROM outbound WHERE mail_id = " + std::to_string(perm)) == 1);

  CHECK(s->queue().lease_due("A", 499, 10, 60)->empty());  // not yet due
  auto due = s->queue().lease_due("A", 500, 10, 60);
  REQUIRE(due->size() == 1);  // the permanent failure is never offered again
  CHECK((*due)[0].id == temp);
  CHECK((*due)[0].failures == 1);
  auto f = s->queue().failures(temp);
  REQUIRE(f->size() == 1);
  CHECK((*f)[0].message == "451 4.3.0 try later");
  CHECK_FALSE((*f)[0].fatal);

  REQUIRE(s->queue().release(temp, "A").ok());
  REQUIRE(s->queue().record_failure(temp, "A", "x", false, 9999).is_not_found());
  CHECK(*s->queue().retry_now(temp) == 1);  // due at once now
  CHECK(*s->queue().retry_now(temp) == 0);  // nothing left to change
  CHECK(s->queue().find(temp)->value().next_attempt == 0);
  REQUIRE(s->queue().remove(perm).ok());
  CHECK(count(*db, "SELECT COUNT(*) FROM faillog WHERE fail_mail = " + std::to_string(perm)) == 0);
  CHECK(s->queue().remove(perm).is_not_found());
  auto data = s->queue().message_data(temp);
  REQUIRE(data.has_value());
  CHECK(*data == "Subject: q\r\n\r\nbody");
}

TEST_CASE("queue: settle applies a whole attempt in one commit; given-up entries are leased for bouncing") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  enqueue(*s, "Q3", 4);
  auto leased = s->queue().lease_due("A", 100, 10, 60);
  REQUIRE(leased->size() == 4);
  std::vector<store::QueueOutcome> outcomes = {
      {(*leased)[0].id, store::QueueOutcome::Kind::Delivered, "", false, 0},
      {(*leased)[1].id, store::QueueOutcome::Kind::Failed, "451 4.3.0 later (from mx.test)", false, 500},
      {(*leased)[2].id, store::QueueOutcome::Kind::Failed, "550 5.1.1 no (from mx.test)", true, 0},
      {(*leased)[3].id, store::QueueOutcome::Kind::Released, "", false, 0},
      {99999, store::QueueOutcome::Kind::Delivered, "", false, 0},  // gone: skipped, not an error
  };
  std::promise<Status> p;
  s->queue().settle(outcomes, "A", [&](Status st) { p.set_value(st); });
  REQUIRE(p.get_future().get().ok());
  auto all = s->queue().list();
  REQUIRE(all->size() == 3);
  CHECK((*all)[0].failures == 1);
  CHECK((*all)[0].next_attempt == 500);
  CHECK_FALSE((*all)[0].lease_owner);
  CHECK((*all)[1].fatal);
  CHECK((*all)[2].failures == 0);
  CHECK_FALSE((*all)[2].lease_owner);
  // Only the fatal one is given up with retries = 5; with retries = 1 the temporary one too.
  auto g = s->queue().lease_given_up("B", 200, 10, 60, 5, 0);
  REQUIRE(g->size() == 1);
  CHECK(g->front().id == (*leased)[2].id);
  CHECK(s->queue().release_owner("B").value() == 1);
  g = s->queue().lease_given_up("B", 200, 10, 60, 1, 0);
  CHECK(g->size() == 2);
  // The fatal entry is never offered for delivery again; the others come when due.
  CHECK(s->queue().next_due().value() == std::optional<std::int64_t>(0));  // the released one
  auto again = s->queue().lease_due("C", 250, 10, 1000);
  REQUIRE(again->size() == 1);
  CHECK(again->front().id == (*leased)[3].id);
  // lease_ids leases only what is free and due.
  CHECK(s->queue().release_owner("B").value() == 2);
  auto ids = s->queue().lease_ids({(*leased)[1].id, (*leased)[2].id, (*leased)[3].id}, "D", 400, 60);
  CHECK(ids->empty());  // [1] not due before 500, [2] fatal, [3] leased by C
  ids = s->queue().lease_ids({(*leased)[1].id}, "D", 500, 60);
  CHECK(ids->size() == 1);
  auto owners = s->queue().lease_owners();
  std::sort(owners->begin(), owners->end());
  CHECK(*owners == std::vector<std::string>{"C", "D"});
  CHECK(s->queue().renew("D", 9999).ok());
  CHECK(s->queue().find((*leased)[1].id).value()->lease_until == 9999);
}

TEST_CASE("queue: a bounce replaces the entries it reports on, or nothing happens") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  enqueue(*s, "Q4", 2);
  auto leased = s->queue().lease_due("A", 100, 1, 60);
  REQUIRE(leased->size() == 1);
  store::Delivery bounce;
  bounce.ident = "B1";
  bounce.data = "bounce";
  bounce.queued.push_back({std::nullopt, "from@local.test", {}});
  bounce.replaces = {(*leased)[0].id, (*leased)[0].id + 1};  // the second is not leased to A
  bounce.replaces_owner = "A";
  CHECK(s->deliver_sync(bounce).is_not_found());
  CHECK(s->queue().list()->size() == 2);  // nothing committed
  bounce.replaces = {(*leased)[0].id};
  REQUIRE(s->deliver_sync(bounce).ok());
  auto all = s->queue().list();
  REQUIRE(all->size() == 2);
  CHECK((*all)[1].queue_id == "B1");
  CHECK_FALSE((*all)[1].envelope_from);  // a bounce: sent with MAIL FROM:<>
}

TEST_CASE("queue: writes that make entries due touch the notify file") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  const std::string notify = s->queue().notify_path();
  CHECK(notify == dir.file("m") + "-notify-queue");
  std::error_code ec;
  std::filesystem::remove(notify, ec);
  enqueue(*s, "Q5", 1);
  CHECK(std::filesystem::exists(notify));
  std::filesystem::remove(notify);
  store::Delivery local;  // a local-only delivery does not
  local.ident = "L1";
  local.envelope_from = "x@y";
  local.data = "x";
  REQUIRE(s->directory().add_user("u", std::nullopt).ok());
  local.local.push_back({"u", "u@local.test"});
  REQUIRE(s->deliver_sync(local).ok());
  CHECK_FALSE(std::filesystem::exists(notify));
  REQUIRE(s->queue().retry_now(std::nullopt).has_value());
  CHECK(std::filesystem::exists(notify));
}

TEST_CASE("queue: REQUIRETLS is recorded per message; MTA-STS policies are kept per domain") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  for (auto [ident, tls] : {std::pair{"Q1", store::TlsRequired::Yes}, std::pair{"Q2", store::TlsRequired::No},
                            std::pair{"Q3", store::TlsRequired::Default}}) {
    store::Delivery d;
    d.ident = ident;
    d.envelope_from = "from@local.test";
    d.data = "Subject: q\r\n\r\nbody";
    d.tls_required = tls;
    d.queued.push_back({std::nullopt, "r@remote.test", {}});
    REQUIRE(s->deliver_sync(d).ok());
  }
  auto all = s->queue().list();
  REQUIRE(all.has_value());
  REQUIRE(all->size() == 3);
  CHECK((*all)[0].tls_required == store::TlsRequired::Yes);
  CHECK((*all)[1].tls_required == store::TlsRequired::No);
  CHECK((*all)[2].tls_required == store::TlsRequired::Default);

  CHECK(s->queue().mta_sts_policy("example.org")->has_value() == false);
  store::StsPolicyRow row{"example.org", "one", "version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 60\n", 100, 160};
  REQUIRE(s->queue().save_mta_sts_policy(row).ok());
  CHECK(s->queue().mta_sts_policy("Example.ORG")->value() == row);
  row.id = "two";
  row.expires = 200;
  REQUIRE(s->queue().save_mta_sts_policy(row).ok());  // replaces
  CHECK(s->queue().mta_sts_policy("example.org")->value() == row);
}
