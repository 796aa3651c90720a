// net::CaptureSink with the real Dispatcher: outbound mail queued in a store is delivered over
// SMTP on loopback to the sink (capture_zone() resolves every domain to 127.0.0.1), kept with
// its envelope; an injected 4xx defers a recipient (a faillog row, the entry kept), a 5xx fails
// it for good; a fault applies as many times as it was given.
#include <cmail/mail/fields.h>
#include <cmail/net/capture.h>
#include <cmail/net/dispatcher.h>
#include <cmail/net/resolver.h>
#include <cmail/net/runtime.h>
#include <cmail/store/queue.h>
#include <cmail/store/store.h>

#include "../unit/fakes.h"
#include "../unit/testutil.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <functional>

using namespace cmail;
using namespace cmail::test;
using namespace std::chrono_literals;

namespace {

struct Outbound {
  TempDir dir;
  std::unique_ptr<store::Store> store = open_store(dir.file("master.db3"));
  net::Runtime rt;
  std::shared_ptr<net::CaptureSink> sink;
  std::unique_ptr<mail::Resolver> resolver;
  std::unique_ptr<net::Dispatcher> dispatcher;

  explicit Outbound(net::StaticZone zone = net::capture_zone()) {
    auto started = net::CaptureSink::start(rt);
    REQUIRE(started.has_value());
    sink = *started;
    resolver = net::make_static_resolver(rt, std::move(zone));
    net::DispatcherOptions o;
    o.announce = "mx.local.test";
    o.portprio = {{sink->port(), mail::TlsMode::Opportunistic}};
    auto made = net::Dispatcher::create(rt, *store, *resolver, o);
    REQUIRE(made.has_value());
    dispatcher = std::move(*made);
  }
  void queue(const std::string& from, const std::vector<std::string>& to, const std::string& data) {
    store::Delivery d;
    d.ident = mail::new_queue_id();
    d.envelope_from = from;
    d.data = data;
    for (const std::string& r : to) d.queued.push_back({std::nullopt, r, {}});
    REQUIRE(store->deliver_sync(d).ok());
  }
  // Delivery runs for `domain` on the loop (bounded), `between(n)` after run n; one loop run
  // for all of them (a Runtime runs once).
  void deliver(const std::string& domain, int runs = 1, std::function<void(int)> between = nullptr) {
    int done = 0;
    std::function<void()> next = [&] {
      dispatcher->deliver_domain(domain, [&](Status st) {
        CHECK(st.ok());
        if (between) between(done);
        if (++done == runs) return rt.shutdown(0ms);
        next();
      });
    };
    next();
    REQUIRE(run_bounded(rt, 20s));
    CHECK(done == runs);
  }
  std::vector<store::QueueEntry> entries() {
    auto list = store->queue().list();
    REQUIRE(list.has_value());
    return *list;
  }
};

}  // namespace

TEST_CASE("net::CaptureSink: the dispatcher's outbound mail is kept with its envelope; faults defer and fail") {
  Outbound o;
  using Fault = backends::SmtpFault;
  REQUIRE(o.sink->add_fault({Fault::Phase::Rcpt, "Carol@far.test", Fault::Action::Reply, 451, "Try later", {}, 1}).ok());
  REQUIRE(o.sink->add_fault({Fault::Phase::Rcpt, "dave@far.test", Fault::Action::Reply, 550, "No such user", {}, SIZE_MAX}).ok());
  CHECK_FALSE(o.sink->add_fault({Fault::Phase::Rcpt, "", Fault::Action::Reply, 250, "no", {}, 1}).ok());
  CHECK_FALSE(o.sink->add_fault({Fault::Phase::Data, "", Fault::Action::Reply, 451, "two\r\nlines", {}, 1}).ok());
  std::vector<net::CapturedMessage> seen;
  o.sink->on_message([&](const net::CapturedMessage& m) { seen.push_back(m); });
  const std::string data = "From: alice@local.test\r\nSubject: out\r\n\r\nhello\r\n";
  o.queue("alice@local.test", {"bob@far.test", "carol@far.test", "dave@far.test"}, data);
  o.deliver("far.test", 2, [&](int run) {
    if (run > 0) return;
    auto kept = o.sink->messages();
    REQUIRE(kept.size() == 1);
    CHECK(kept[0].id == 1);
    CHECK(kept[0].from == "alice@local.test");
    CHECK(kept[0].to == std::vector<std::string>{"bob@far.test"});
    CHECK(kept[0].helo == "mx.local.test");
    CHECK(kept[0].data.ends_with(data));  // after the dispatcher's own header lines, if any
    CHECK(seen.size() == 1);
    // carol deferred once (a failure recorded, the entry kept), dave failed for good.
    auto left = o.entries();
    REQUIRE(left.size() == 2);
    for (const store::QueueEntry& e : left) {
      CHECK(e.failures == 1);
      CHECK(e.fatal == (e.envelope_to == "dave@far.test"));
    }
    // The 451 was given once: the next attempt reaches the sink.
    auto carol = std::find_if(left.begin(), left.end(), [](const auto& e) { return e.envelope_to == "carol@far.test"; });
    REQUIRE(carol != left.end());
    REQUIRE(o.store->queue().retry_now(carol->id).has_value());
  });
  auto kept = o.sink->messages();
  REQUIRE(kept.size() == 2);
  CHECK(kept[1].id == 2);
  CHECK(kept[1].to == std::vector<std::string>{"carol@far.test"});
  CHECK(o.sink->wait(2, 1ms) == 2);
  o.sink->clear();
  CHECK(o.sink->messages().empty());
}

TEST_CASE("net::capture_zone: its own entries answer as given, every other name is 127.0.0.1 without MX") {
  net::StaticZone zone = net::capture_zone();
  zone.mx["gone.test"] = {mail::DnsStatus::NxDomain, {}, "no such domain"};
  Outbound o(zone);
  o.queue("alice@local.test", {"x@gone.test"}, "Subject: x\r\n\r\nx\r\n");
  o.deliver("gone.test");
  CHECK(o.sink->messages().empty());
  auto left = o.entries();
  REQUIRE(left.size() == 1);
  CHECK(left[0].fatal);  // NXDOMAIN is permanent (RFC 5321 5.1)
}
