// Reports to senders (cmail/net/bounce_plan.h): grouping, NOTIFY, the report, its Delivery.
#include <cmail/base64.h>
#include <cmail/crypto/keys.h>
#include <cmail/mail/dkim.h>
#include "testutil.h"

#include <cmail/net/bounce_plan.h>
#include <cmail/store/directory.h>
#include <cmail/store/queue.h>

#include <map>

using namespace cmail;
using namespace cmail::net;
using namespace cmail::test;

namespace {

constexpr std::int64_t kNow = 1'700'000'000;

store::QueueEntry entry(std::int64_t id, const std::string& qid, std::optional<std::string> from, const std::string& to,
                        std::optional<std::string> notify = std::nullopt) {
  store::QueueEntry e;
  e.id = id;
  e.queue_id = qid;
  e.envelope_from = std::move(from);
  e.envelope_to = to;
  e.dsn.notify = std::move(notify);
  e.submission = kNow - 3600;
  return e;
}

ReportOptions options() {
  ReportOptions o;
  o.reporting_mta = "mx.local.test";
  o.from = "postmaster@local.test";
  o.owner = "dispatchd:test";
  return o;
}

// A master database with alice@local.test stored locally.
struct Fixture {
  TempDir dir;
  std::unique_ptr<store::Store> store = open_store(dir.file("m"));
  store::Directory& d = store->directory();
  Fixture() {
    REQUIRE(d.add_user("alice", std::nullopt).ok());
    REQUIRE(d.add_address("alice@local.test", "store", std::string_view("alice"), 10).has_value());
    REQUIRE(d.add_address("nobody@local.test", "reject", std::string_view("gone"), 11).has_value());
  }
};

std::vector<std::int64_t> ids(const BounceGroup& g) {
  std::vector<std::int64_t> out;
  for (const auto& e : g.entries) out.push_back(e.id);
  return out;
}

}  // namespace

TEST_CASE("bounce plan: one group per message and sender") {
  auto groups = plan_bounces({
      entry(1, "Q1", "a@local.test", "x@remote.test"),
      entry(2, "Q2", "a@local.test", "y@remote.test"),
      entry(3, "Q1", "a@local.test", "z@remote.test"),
      entry(4, "Q1", "b@local.test", "w@remote.test"),  // same message, another sender
  });
  REQUIRE(groups.size() == 3);
  CHECK(ids(groups[0]) == std::vector<std::int64_t>{1, 3});
  CHECK(groups[0].reported == std::vector<std::size_t>{0, 1});
  CHECK(groups[0].dropped.empty());
  CHECK(ids(groups[1]) == std::vector<std::int64_t>{4});
  CHECK(ids(groups[2]) == std::vector<std::int64_t>{2});
}

TEST_CASE("bounce plan: who is reported") {
  struct Case {
    const char* name;
    std::optional<std::string> from;
    std::vector<std::optional<std::string>> notify;
    std::vector<std::size_t> reported;
    const char* dropped;
  };
  const Case cases[] = {
      {"no NOTIFY: failures are reported", "a@local.test", {std::nullopt, std::nullopt}, {0, 1}, ""},
      {"NOTIFY=NEVER (RFC 3461 4.1)", "a@local.test", {"NEVER", "NEVER"}, {}, "the sender asked for no report"},
      {"NOTIFY without FAILURE", "a@local.test", {"SUCCESS,DELAY", "delay"}, {}, "the sender asked for no report"},
      {"mixed: only who asked", "a@local.test", {"NEVER", "failure"}, {1}, ""},
      {"the null sender: never a bounce for a bounce", std::nullopt, {std::nullopt, "FAILURE"}, {}, "it has the null sender"},
      {"the empty sender is the null sender too", "", {std::nullopt}, {}, "it has the null sender"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    std::vector<store::QueueEntry> es;
    for (std::size_t i = 0; i < c.notify.size(); ++i)
      es.push_back(entry(static_cast<std::int64_t>(i + 1), "Q", c.from, "r" + std::to_string(i) + "@remote.test", c.notify[i]));
    auto groups = plan_bounces(es);
    REQUIRE(groups.size() == 1);
    CHECK(groups[0].entries.size() == c.notify.size());  // all of them are settled either way
    CHECK(groups[0].reported == c.reported);
    CHECK(groups[0].dropped == c.dropped);
  }
}

TEST_CASE("bounce plan: what the report says of a recipient") {
  auto e = entry(1, "Q", "a@local.test", "x@remote.test");
  e.dsn.orcpt = "rfc822;X@remote.test";

  SUBCASE("a permanent failure from a server") {
    e.fatal = true;
    auto r = bounced_recipient(e, {{kNow - 60, "451 4.3.0 busy (from mx.remote.test)", false},
                                   {kNow - 5, "550 5.1.1 unknown (from mx.remote.test)", true}});
    CHECK(r.address == "x@remote.test");
    CHECK(r.orcpt == std::optional<std::string>("rfc822;X@remote.test"));
    CHECK(r.action == "failed");
    CHECK(r.last.status == smtp::EnhancedCode{5, 1, 1});
    CHECK(r.last.remote == std::optional<std::string>("mx.remote.test"));
    CHECK(r.last_attempt == kNow - 5);
    CHECK(r.attempts == 2);
    CHECK_FALSE(r.expired);
  }
  SUBCASE("retries used up or too old: expired (RFC 3463 4.4.7)") {
    auto r = bounced_recipient(e, {{kNow - 5, "4.4.1 Failed to reach any MX: refused", false}});
    CHECK(r.last.status == smtp::EnhancedCode{4, 4, 1});
    CHECK(r.expired);
    CHECK(r.attempts == 1);
  }
  SUBCASE("a 5xx recorded as temporary is not 'expired'") {
    auto r = bounced_recipient(e, {{kNow - 5, "554 5.7.1 no (from mx)", false}});
    CHECK_FALSE(r.expired);
  }
  SUBCASE("no faillog rows") {
    auto r = bounced_recipient(e, {});
    CHECK(r.last.text == "no attempt could be made");
    CHECK(r.attempts == 0);
  }
}

TEST_CASE("bounce plan: the report's header facts") {
  auto e = entry(1, "Q9", "a@local.test", "x@remote.test");
  e.dsn_envid = "env-7";
  auto b = report_about(e, options(), kNow, "ID1");
  CHECK(b.reporting_mta == "mx.local.test");
  CHECK(b.from == "postmaster@local.test");
  CHECK(b.to == "a@local.test");
  CHECK(b.queue_id == "Q9");
  CHECK(b.arrival == kNow - 3600);
  CHECK(b.envid == std::optional<std::string>("env-7"));
  CHECK(b.now == kNow);
  CHECK(b.message_id == "ID1");
  CHECK(b.recipients.empty());
}

TEST_CASE("bounce plan: the Delivery replaces the group and goes where the routing says") {
  Fixture f;
  std::vector<std::string> notes;

  SUBCASE("a remote sender: queued for MX delivery with NOTIFY=NEVER, the null sender") {
    auto g = plan_bounces({entry(11, "Q", "bob@remote.test", "x@far.test"), entry(12, "Q", "bob@remote.test", "y@far.test", "NEVER")});
    REQUIRE(g.size() == 1);
    auto d = bounce_delivery(g[0], {{{kNow, "550 5.1.1 unknown (from mx.far.test)", true}}},
                             "Subject: hi\r\n\r\nbody\r\n", options(), kNow, "BOUNCE1", f.d, notes);
    CHECK(d.ident == "BOUNCE1");
    CHECK_FALSE(d.envelope_from);
    CHECK(d.protocol == "local");
    CHECK(d.replaces == std::vector<std::int64_t>{11, 12});  // y@far.test too, though not reported
    CHECK(d.replaces_owner == "dispatchd:test");
    REQUIRE(d.queued.size() == 1);
    CHECK(d.queued[0].envelope_to == "bob@remote.test");
    CHECK(d.queued[0].dsn.notify == std::optional<std::string>("NEVER"));
    CHECK(d.local.empty());
    CHECK(d.data.find("Final-Recipient: rfc822; x@far.test") != std::string::npos);
    CHECK(d.data.find("y@far.test") == std::string::npos);
    CHECK(d.data.find("Message-ID: <BOUNCE1@mx.local.test>") != std::string::npos);
    CHECK(d.data.find("Subject: hi") != std::string::npos);  // the original's headers
    CHECK(d.data.find("text/rfc822-headers") != std::string::npos);
    CHECK(d.tls_required == store::TlsRequired::Default);
    CHECK(notes.empty());
  }
  SUBCASE("a REQUIRETLS message: its bounce is sent with REQUIRETLS too (RFC 8689 5)") {
    auto e = entry(15, "Q", "bob@remote.test", "x@far.test");
    e.tls_required = store::TlsRequired::Yes;
    auto d = bounce_delivery(plan_bounces({e})[0], {{}}, "Subject: secret\r\n\r\nbody\r\n", options(), kNow, "B5", f.d, notes);
    REQUIRE(d.queued.size() == 1);
    CHECK(d.tls_required == store::TlsRequired::Yes);
  }
  SUBCASE("a local sender: stored locally; copies; RET=FULL returns the message") {
    auto o = options();
    o.copies = {"carol@remote.test"};
    auto e = entry(21, "Q", "alice@local.test", "x@far.test");
    e.dsn_ret = "full";
    auto d = bounce_delivery(plan_bounces({e})[0], {{}}, "Subject: hi\r\n\r\nthe body\r\n", o, kNow, "B2", f.d, notes);
    REQUIRE(d.local.size() == 1);
    CHECK(d.local[0].user == "alice");
    REQUIRE(d.queued.size() == 1);
    CHECK(d.queued[0].envelope_to == "carol@remote.test");
    CHECK(d.data.find("message/rfc822") != std::string::npos);
    CHECK(d.data.find("the body") != std::string::npos);
  }
  SUBCASE("a local sender whose routing refuses: a note, nothing stored") {
    auto d = bounce_delivery(plan_bounces({entry(31, "Q", "nobody@local.test", "x@far.test")})[0], {{}}, "", options(), kNow,
                             "B3", f.d, notes);
    CHECK(d.local.empty());
    CHECK(d.queued.empty());
    CHECK(d.replaces == std::vector<std::int64_t>{31});  // the entry is settled all the same
    REQUIRE(notes.size() == 1);
    CHECK(notes[0] == "the report to local <nobody@local.test> is refused by its routing; dropped");
  }
  SUBCASE("nobody to tell: the entries only go") {
    auto d = bounce_delivery(plan_bounces({entry(41, "QN", std::nullopt, "x@far.test"), entry(42, "QN", std::nullopt, "y@far.test")})[0],
                             {}, "", options(), kNow, "B4", f.d, notes);
    CHECK(d.replaces == std::vector<std::int64_t>{41, 42});
    CHECK(d.data.empty());
    CHECK(d.local.empty());
    CHECK(d.queued.empty());
    REQUIRE(notes.size() == 1);
    CHECK(notes[0] == "dropped QN for 2 recipient(s) after failure: it has the null sender");
  }
}

TEST_CASE("bounce plan: success reports for relayed recipients (RFC 3461 5.2.2)") {
  Fixture f;
  std::vector<std::string> notes;
  auto e = entry(1, "Q", "alice@local.test", "x@far.test", "SUCCESS");
  e.failures = 1;
  const smtp::Reply ok = smtp::reply(250, {2, 0, 0}, "queued as 77");
  auto d = relay_report({{e, ok}}, "mx.far.test", "Subject: hi\r\n\r\nbody\r\n", options(), kNow, "R1", f.d, notes);
  REQUIRE(d);
  CHECK(d->replaces.empty());
  REQUIRE(d->local.size() == 1);
  CHECK(d->local[0].user == "alice");
  CHECK(d->data.find("Action: relayed") != std::string::npos);
  CHECK(d->data.find("Subject: Successful Mail Delivery Report") != std::string::npos);
  CHECK(d->data.find("Remote-MTA: dns; mx.far.test") != std::string::npos);
  CHECK(d->data.find("Diagnostic-Code: smtp; 250 2.0.0 queued as 77") != std::string::npos);
  CHECK(d->data.find("body") == std::string::npos);  // headers only

  // Nobody to tell, or nowhere to put it.
  CHECK_FALSE(relay_report({{entry(2, "Q", std::nullopt, "x@far.test", "SUCCESS"), ok}}, "mx", "", options(), kNow, "R2", f.d, notes));
  CHECK_FALSE(relay_report({{entry(3, "Q", "", "x@far.test", "SUCCESS"), ok}}, "mx", "", options(), kNow, "R3", f.d, notes));
  CHECK_FALSE(relay_report({}, "mx", "", options(), kNow, "R4", f.d, notes));
  CHECK_FALSE(relay_report({{entry(4, "Q", "nobody@local.test", "x@far.test", "SUCCESS"), ok}}, "mx", "", options(), kNow, "R5",
                           f.d, notes));
}

TEST_CASE("bounce plan: a bounce run on a store returns what was given up, once") {
  Fixture f;
  store::Queue& q = f.store->queue();
  store::Delivery in;
  in.ident = "QRUN";
  in.envelope_from = "bob@remote.test";
  in.data = "Subject: returned\r\n\r\nbody\r\n";
  in.queued.push_back({std::nullopt, "x@far.test", {}});
  in.queued.push_back({std::nullopt, "y@far.test", {}});
  in.queued.push_back({std::nullopt, "z@far.test", {"NEVER", std::nullopt}});
  REQUIRE(f.store->deliver_sync(in).ok());
  auto leased = q.lease_due("dispatchd:test", kNow, 10, 60);
  REQUIRE(leased);
  REQUIRE(leased->size() == 3);
  std::map<std::string, std::int64_t> id;
  for (const auto& e : *leased) id[e.envelope_to] = e.id;
  // x failed permanently, z too (but asked for no report), y only temporarily once: not given up.
  REQUIRE(q.record_failure(id["x@far.test"], "dispatchd:test", "550 5.1.1 unknown (from mx.far.test)", true, 0).ok());
  REQUIRE(q.record_failure(id["y@far.test"], "dispatchd:test", "451 4.3.0 later (from mx.far.test)", false, kNow + 60).ok());
  REQUIRE(q.record_failure(id["z@far.test"], "dispatchd:test", "550 5.1.1 unknown (from mx.far.test)", true, 0).ok());

  mail::RetryPolicy retry;
  retry.retries = 5;
  retry.max_age = 0;
  auto run = return_given_up(*f.store, options(), retry, 60, kNow);
  CHECK(run.leased == 2);
  CHECK(run.bounces == 1);
  auto all = q.list();
  REQUIRE(all);
  std::vector<std::string> left;
  std::string bounce_data;
  for (const auto& e : *all) {
    left.push_back(e.envelope_to + (e.envelope_from ? "" : " (bounce)"));
    if (!e.envelope_from) {
      auto data = q.message_data(e.id);
      REQUIRE(data);
      bounce_data = *data;
    }
  }
  CHECK(left == std::vector<std::string>{"y@far.test", "bob@remote.test (bounce)"});
  CHECK(bounce_data.find("Final-Recipient: rfc822; x@far.test") != std::string::npos);
  CHECK(bounce_data.find("z@far.test") == std::string::npos);
  CHECK(bounce_data.find("Subject: returned") != std::string::npos);

  // Nothing more to return; y is returned once its retries are used up.
  CHECK(return_given_up(*f.store, options(), retry, 60, kNow).leased == 0);
  retry.retries = 1;
  auto later = return_given_up(*f.store, options(), retry, 60, kNow + 120);
  CHECK(later.leased == 1);
  CHECK(later.bounces == 1);
  REQUIRE(!later.notes.empty());
  CHECK(later.notes.back().starts_with("returned QRUN to <bob@remote.test> (1 recipient(s)) as "));
}

TEST_CASE("bounce plan: reports are DKIM-signed with the keys of their From domain") {
  Fixture f;
  std::vector<std::string> notes;
  auto g = plan_bounces({entry(41, "Q", "bob@remote.test", "x@far.test")});
  REQUIRE(g.size() == 1);
  auto unsigned_report = bounce_delivery(g[0], {{{kNow, "550 5.1.1 unknown", true}}}, "Subject: hi\r\n\r\nbody\r\n",
                                         options(), kNow, "B41", f.d, notes);
  CHECK(unsigned_report.data.starts_with("From: "));  // no keys: not signed
  auto key = crypto::PrivateKey::generate(crypto::KeyType::Ed25519);
  REQUIRE(key);
  REQUIRE(f.d.add_dkim_key({"local.test", "b", "ed25519-sha256", key->pem(), kNow}).ok());
  auto d = bounce_delivery(g[0], {{{kNow, "550 5.1.1 unknown", true}}}, "Subject: hi\r\n\r\nbody\r\n", options(), kNow,
                           "B42", f.d, notes);
  REQUIRE(d.data.starts_with("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=local.test; s=b;"));
  mail::dkim::Verifier v;
  v.feed(d.data);
  v.finish();
  auto q = v.key_queries();
  REQUIRE(q.size() == 1);
  CHECK(q[0].second == "b._domainkey.local.test");
  v.set_key(q[0].first, {mail::DnsStatus::Ok, {"k=ed25519; p=" + base64_encode(key->public_key().bytes())}, ""});
  REQUIRE(v.results().size() == 1);
  CHECK(v.results()[0].result == mail::dkim::Answer::Pass);
  CHECK(notes.empty());
}
