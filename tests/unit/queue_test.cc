#include "testutil.h"

#include <cmail/queue.h>
#include <cmail/store.h>

using namespace cmail;
using namespace cmail::test;

namespace {

void enqueue(Store& s, const std::string& ident, int recipients) {
  Delivery d;
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
