// DANE in the real Dispatcher with the static resolver (secure answers, TLSA records) and a
// CaptureSink as the MX on loopback, which offers no STARTTLS: where DANE applies (secure MX,
// secure addresses, secure TLSA records: RFC 7672 2.2) nothing may go to it in plaintext and
// the recipient is deferred with the reason; a failed TLSA lookup leaves the host out without
// connecting (4.7.5); insecure answers, no TLSA records, or a handoff leave delivery as before.
#include <cmail/mail/dane.h>
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

#include <chrono>

using namespace cmail;
using namespace cmail::test;
using namespace std::chrono_literals;

namespace {

struct Zone {
  bool mx_secure = true, address_secure = true, tlsa_secure = true;
  mail::DnsStatus tlsa_status = mail::DnsStatus::Ok;
  std::vector<mail::TlsaRecord> tlsa = {{3, 1, 1, std::string(32, '\x42')}};
};

// Delivers one message for bob@far.test through the dispatcher; the sink's messages and the
// entry's failure records afterwards.
struct Run {
  std::size_t delivered = 0;
  std::vector<std::string> failures;
};

Run deliver(const Zone& z, std::optional<std::string> remote = std::nullopt) {
  TempDir dir;
  auto store = open_store(dir.file("master.db3"));
  net::Runtime rt;
  auto started = net::CaptureSink::start(rt);
  REQUIRE(started.has_value());
  auto sink = *started;
  net::StaticZone zone;
  mail::MxResult mx;
  mx.status = mail::DnsStatus::Ok;
  mx.records = {{10, "mx.far.test"}};
  mx.secure = z.mx_secure;
  zone.mx["far.test"] = mx;
  mail::AddressResult a;
  a.status = mail::DnsStatus::Ok;
  a.addresses = {"127.0.0.1"};
  a.secure = z.address_secure;
  zone.addresses["mx.far.test"] = a;
  mail::TlsaResult t;
  t.status = z.tlsa_status;
  t.records = z.tlsa;
  t.secure = z.tlsa_secure;
  if (t.status == mail::DnsStatus::TempFail) t.error = "SERVFAIL";
  zone.tlsa[mail::dane::tlsa_name("mx.far.test", sink->port())] = t;
  auto resolver = net::make_static_resolver(rt, zone);
  net::DispatcherOptions o;
  o.announce = "mx.local.test";
  o.portprio = {{sink->port(), mail::TlsMode::Opportunistic}};
  auto dispatcher = net::Dispatcher::create(rt, *store, *resolver, o);
  REQUIRE(dispatcher.has_value());
  store::Delivery d;
  d.ident = mail::new_queue_id();
  d.envelope_from = "alice@local.test";
  d.data = "From: alice@local.test\r\nSubject: dane\r\n\r\nhello\r\n";
  d.queued.push_back({remote, "bob@far.test", {}});
  REQUIRE(store->deliver_sync(d).ok());
  auto done = [&](Status st) {
    CHECK(st.ok());
    rt.shutdown(0ms);
  };
  if (remote) (*dispatcher)->deliver_remote(*remote, done);
  else (*dispatcher)->deliver_domain("far.test", done);
  REQUIRE(run_bounded(rt, 20s));
  Run r;
  r.delivered = sink->messages().size();
  auto left = store->queue().list();
  REQUIRE(left.has_value());
  for (const store::QueueEntry& e : *left) {
    auto f = store->queue().failures(e.id);
    REQUIRE(f.has_value());
    for (const auto& x : *f) {
      CHECK_FALSE(x.fatal);  // RFC 7672 2.2: later, or another server; never a bounce at once
      r.failures.push_back(x.message);
    }
  }
  return r;
}

}  // namespace

TEST_CASE("dispatcher: DANE requires TLS of an MX whose secure zone publishes TLSA records") {
  Run r = deliver(Zone{});
  CHECK(r.delivered == 0);  // the sink offers no STARTTLS: nothing in plaintext
  REQUIRE(r.failures.size() == 1);
  CHECK(r.failures[0].find("4.4.1 Failed to reach any MX: ") == 0);
  CHECK(r.failures[0].find("STARTTLS") != std::string::npos);

  Zone unusable;  // RFC 7672 2.2: secure, all unusable (PKIX-EE): TLS still required
  unusable.tlsa = {{1, 1, 1, std::string(32, '\x42')}};
  r = deliver(unusable);
  CHECK(r.delivered == 0);
  CHECK(r.failures.size() == 1);
}

TEST_CASE("dispatcher: a failed TLSA lookup leaves the host out, without connecting") {
  Zone z;
  z.tlsa_status = mail::DnsStatus::TempFail;
  Run r = deliver(z);
  CHECK(r.delivered == 0);
  REQUIRE(r.failures.size() == 1);
  CHECK(r.failures[0].find("4.7.5 DANE: TLSA lookup for _") == 0);
  CHECK(r.failures[0].find("._tcp.mx.far.test failed: SERVFAIL") != std::string::npos);
}

TEST_CASE("dispatcher: insecure answers, no TLSA records and handoffs deliver as before") {
  for (int k = 0; k < 5; ++k) {
    CAPTURE(k);
    Zone z;
    if (k == 0) z.mx_secure = false;       // RFC 7672 2.2.1: an insecure MX RRset
    if (k == 1) z.address_secure = false;  // insecure addresses: no TLSA lookup
    if (k == 2) z.tlsa_secure = false;     // an insecure TLSA RRset
    if (k == 3) z.tlsa_status = mail::DnsStatus::NoData, z.tlsa.clear();  // none published
    Run r = k == 4 ? deliver(z, "mx.far.test") : deliver(z);  // a handoff remote: never DANE
    CHECK(r.delivered == 1);
    CHECK(r.failures.empty());
  }
}
