// Route planning (cmail/mail/route.h): destinations, lookups, MX answers, candidates.
#include <cmail/mail/route.h>

#include <doctest/doctest.h>

#include <set>

using namespace cmail;
using namespace cmail::mail;

namespace {

RouteTarget target(const std::optional<std::string>& remote, const std::string& rcpt) {
  auto t = route_target(remote, rcpt);
  REQUIRE(std::holds_alternative<RouteTarget>(t));
  return std::get<RouteTarget>(t);
}

RouteTarget mx_target(const std::string& domain) { return target(std::nullopt, "user@" + domain); }

Failure failure_of(const std::variant<HostPlan, Failure>& v) {
  REQUIRE(std::holds_alternative<Failure>(v));
  return std::get<Failure>(v);
}

Failure failure_of(const std::variant<std::vector<Candidate>, Failure>& v) {
  REQUIRE(std::holds_alternative<Failure>(v));
  return std::get<Failure>(v);
}

std::vector<Candidate> candidates_of(const std::variant<std::vector<Candidate>, Failure>& v) {
  if (auto* f = std::get_if<Failure>(&v)) FAIL("no candidates: " << f->record);
  return std::get<std::vector<Candidate>>(v);
}

AddressResult ok(std::vector<std::string> addresses) { return {DnsStatus::Ok, std::move(addresses), ""}; }
AddressResult status(DnsStatus s) { return {s, {}, "x"}; }

// "host address port" per candidate, for compact comparisons.
std::vector<std::string> summary(const std::vector<Candidate>& cs) {
  std::vector<std::string> out;
  for (const auto& c : cs) out.push_back(c.host + " " + c.address + " " + std::to_string(c.port.port));
  return out;
}

}  // namespace

TEST_CASE("route: the destination of a queued recipient") {
  auto d = target(std::nullopt, "Bob@Example.ORG");
  CHECK_FALSE(d.handoff());
  CHECK(d.domain == "example.org");  // lower-cased: one destination for all spellings
  CHECK(d.key == "example.org");
  CHECK(d.name == "example.org");

  auto h = target(std::string("usr:secret@smart.example:587/starttls"), "bob@example.org");
  REQUIRE(h.handoff());
  CHECK(h.key == "remote usr:secret@smart.example:587/starttls");
  CHECK(h.name == "handoff usr:***@smart.example:587/starttls");  // nothing secret in logs
  CHECK(h.remote->host == "smart.example");
  CHECK(h.remote->credentials->authcid == "usr");
  CHECK(h.domain.empty());

  // Permanent failures at once, never an entry stuck in the queue.
  auto bad = route_target(std::string("usr:secret@smart.example:25x"), "bob@example.org");
  REQUIRE(std::holds_alternative<Failure>(bad));
  CHECK(std::get<Failure>(bad).fatal);
  CHECK(std::get<Failure>(bad).record.starts_with("5.3.5 invalid handoff remote: "));
  CHECK(std::get<Failure>(bad).record.find("secret") == std::string::npos);
  auto nodomain = route_target(std::nullopt, "postmaster");
  REQUIRE(std::holds_alternative<Failure>(nodomain));
  CHECK(std::get<Failure>(nodomain) == Failure{"5.1.3 the recipient has no domain", true});
}

TEST_CASE("route: the first lookup") {
  RouteOptions o;
  o.portprio = {{465, TlsMode::Implicit}, {25, TlsMode::Opportunistic}};

  auto mx = first_lookup(mx_target("example.org"), o);
  CHECK(mx.mx == std::optional<std::string>("example.org"));

  // An address literal names its host: no MX lookup, the portprio list.
  auto lit = first_lookup(mx_target("[192.0.2.7]"), o);
  CHECK_FALSE(lit.mx);
  CHECK(lit.hosts == HostPlan{{"[192.0.2.7]"}, o.portprio, false});

  // A handoff remote: its host, with its own port and TLS mode, else the portprio list.
  auto own = first_lookup(target(std::string("relay.example:2525/tls"), "x@y.test"), o);
  CHECK_FALSE(own.mx);
  CHECK(own.hosts == HostPlan{{"relay.example"}, {{2525, TlsMode::Implicit}}, false});
  auto prio = first_lookup(target(std::string("[2001:db8::1]"), "x@y.test"), o);
  CHECK(prio.hosts == HostPlan{{"2001:db8::1"}, o.portprio, false});
}

TEST_CASE("route: order_mx, self-exclusion by preference") {
  std::mt19937 rng(1);
  const std::vector<MxRecord> r = {{10, "a.example"}, {20, "b.example"}, {20, "c.example"}, {30, "d.example"}};
  struct Case {
    const char* self;
    std::vector<std::string> hosts;  // "*" where the order among equals is random
  };
  const Case cases[] = {
      {"", {"a.example", "*", "*", "d.example"}},
      {"other.example", {"a.example", "*", "*", "d.example"}},
      {"D.example", {"a.example", "*", "*"}},  // we are the worst: the others only
      {"b.example", {"a.example"}},            // c.example has our preference: left out too
      {"a.example", {}},                       // we are the best: nobody (a loop)
  };
  for (const Case& c : cases) {
    CAPTURE(c.self);
    auto hosts = order_mx(r, c.self, rng);
    REQUIRE(hosts.size() == c.hosts.size());
    for (std::size_t i = 0; i < hosts.size(); ++i)
      if (c.hosts[i] != "*") CHECK(hosts[i] == c.hosts[i]);
    if (hosts.size() >= 3) CHECK(std::set<std::string>{hosts[1], hosts[2]} == std::set<std::string>{"b.example", "c.example"});
  }
}

TEST_CASE("route: the MX answer") {
  RouteOptions o;
  o.self = "mx.self.test";
  o.portprio = {{25, TlsMode::Opportunistic}, {587, TlsMode::StartTls}};
  std::mt19937 rng(3);
  const RouteTarget t = mx_target("example.org");

  SUBCASE("MX records: ordered hosts with the portprio list") {
    MxResult r{DnsStatus::Ok, {{20, "MX2.example.org"}, {10, "mx1.example.org"}}, "", false};
    auto v = hosts_from_mx(t, r, o, rng);
    REQUIRE(std::holds_alternative<HostPlan>(v));
    CHECK(std::get<HostPlan>(v) == HostPlan{{"mx1.example.org", "mx2.example.org"}, o.portprio, false});
  }
  SUBCASE("the implicit MX (RFC 5321 5.1): NoData, or Ok without records") {
    for (const MxResult& r : {MxResult{DnsStatus::NoData, {}, "", false}, MxResult{DnsStatus::Ok, {}, "", false}}) {
      auto v = hosts_from_mx(t, r, o, rng);
      REQUIRE(std::holds_alternative<HostPlan>(v));
      CHECK(std::get<HostPlan>(v) == HostPlan{{"example.org"}, o.portprio, true});
    }
  }
  SUBCASE("failures") {
    struct Case {
      MxResult answer;
      const char* record;
      bool fatal;
    };
    const Case cases[] = {
        {{DnsStatus::NxDomain, {}, "NXDOMAIN"}, "5.1.2 Failed to resolve recipient domain: example.org does not exist", true},
        {{DnsStatus::TempFail, {}, "timeout"}, "4.4.3 DNS lookup of the MX of example.org failed: timeout", false},
        {{DnsStatus::Ok, {{0, ""}}, ""}, "5.1.10 example.org does not accept mail (null MX)", true},  // RFC 7505 3
        {{DnsStatus::Ok, {{10, "mx.self.test"}, {20, "backup.example.org"}}, ""},
         "5.4.6 the MX records of example.org point back to this host", true},
    };
    for (const Case& c : cases) {
      CAPTURE(c.record);
      CHECK(failure_of(hosts_from_mx(t, c.answer, o, rng)) == Failure{c.record, c.fatal});
    }
  }
  SUBCASE("a null MX among other records is no null MX") {
    MxResult r{DnsStatus::Ok, {{0, ""}, {10, "mx1.example.org"}}, "", false};
    auto v = hosts_from_mx(t, r, o, rng);
    REQUIRE(std::holds_alternative<HostPlan>(v));
    CHECK(std::get<HostPlan>(v).hosts == std::vector<std::string>{"mx1.example.org"});
  }
}

TEST_CASE("route: candidates, host x port x address in order (portprio expansion)") {
  RouteOptions o;
  o.portprio = {{465, TlsMode::Implicit}, {25, TlsMode::Opportunistic}};
  const RouteTarget t = mx_target("example.org");
  const HostPlan plan{{"mx1.example.org", "mx2.example.org"}, o.portprio, false};
  auto cs = candidates_of(route_candidates(t, plan, {ok({"2001:db8::1", "192.0.2.1"}), ok({"192.0.2.2"})}, o));
  CHECK(summary(cs) == std::vector<std::string>{
                           "mx1.example.org 2001:db8::1 465", "mx1.example.org 192.0.2.1 465",
                           "mx1.example.org 2001:db8::1 25", "mx1.example.org 192.0.2.1 25",
                           "mx2.example.org 192.0.2.2 465", "mx2.example.org 192.0.2.2 25"});
  CHECK(cs[0].port.tls == TlsMode::Implicit);
  CHECK(cs[2].port.tls == TlsMode::Opportunistic);
  CHECK(cs[0].where() == "mx1.example.org [2001:db8::1]:465");
  for (const auto& c : cs) {
    CHECK_FALSE(c.verify);  // the default `credentials`: MX delivery is not verified
    CHECK_FALSE(c.credentials);
  }

  // A host without addresses is skipped while another has some.
  auto partial = candidates_of(route_candidates(t, plan, {status(DnsStatus::TempFail), ok({"192.0.2.2"})}, o));
  CHECK(summary(partial) == std::vector<std::string>{"mx2.example.org 192.0.2.2 465", "mx2.example.org 192.0.2.2 25"});
}

TEST_CASE("route: handoff candidates carry their port, TLS mode and credentials") {
  RouteOptions o;
  o.portprio = {{25, TlsMode::Opportunistic}, {587, TlsMode::StartTls}};
  struct Case {
    const char* spec;
    std::vector<std::string> candidates;
    TlsMode tls;
    const char* user;  // nullptr: no credentials
  };
  const Case cases[] = {
      {"relay.example", {"relay.example 192.0.2.9 25", "relay.example 192.0.2.9 587"}, TlsMode::Opportunistic, nullptr},
      {"relay.example:2600", {"relay.example 192.0.2.9 2600"}, TlsMode::Opportunistic, nullptr},
      {"relay.example:465/tls", {"relay.example 192.0.2.9 465"}, TlsMode::Implicit, nullptr},
      {"u:p@relay.example:587/starttls", {"relay.example 192.0.2.9 587"}, TlsMode::StartTls, "u"},
      {"u:p@relay.example:25/plain", {"relay.example 192.0.2.9 25"}, TlsMode::None, "u"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.spec);
    auto t = target(std::string(c.spec), "x@y.test");
    auto first = first_lookup(t, o);
    REQUIRE_FALSE(first.mx);
    auto cs = candidates_of(route_candidates(t, first.hosts, {ok({"192.0.2.9"})}, o));
    CHECK(summary(cs) == c.candidates);
    CHECK(cs.front().port.tls == c.tls);
    CHECK(cs.front().credentials.has_value() == (c.user != nullptr));
    if (c.user) {
      CHECK(cs.front().credentials->authcid == c.user);
      CHECK(cs.front().credentials->password == "p");
    }
  }
}

TEST_CASE("route: which certificates are verified (tls_verify) per candidate") {
  struct Case {
    TlsVerify verify;
    bool mx, handoff, handoff_with_credentials;
  };
  const Case cases[] = {
      {TlsVerify::Never, false, false, false},
      {TlsVerify::Credentials, false, false, true},
      {TlsVerify::Handoff, false, true, true},
      {TlsVerify::Always, true, true, true},
  };
  for (const Case& c : cases) {
    CAPTURE(static_cast<int>(c.verify));
    RouteOptions o;
    o.verify = c.verify;
    auto verified = [&](const RouteTarget& t) {
      const HostPlan plan{{"h.example"}, o.portprio, false};
      return candidates_of(route_candidates(t, plan, {ok({"192.0.2.1"})}, o)).front().verify;
    };
    CHECK(verified(mx_target("example.org")) == c.mx);
    CHECK(verified(target(std::string("relay.example"), "x@y.test")) == c.handoff);
    CHECK(verified(target(std::string("u:p@relay.example"), "x@y.test")) == c.handoff_with_credentials);
  }
}

TEST_CASE("route: `bind` leaves out addresses of the other family") {
  const RouteTarget t = mx_target("example.org");
  const HostPlan plan{{"mx1.example.org", "mx2.example.org"}, {{25, TlsMode::Opportunistic}}, false};
  const std::vector<AddressResult> answers = {ok({"2001:db8::1", "192.0.2.1"}), ok({"2001:db8::2"})};
  struct Case {
    const char* bind;
    std::vector<std::string> candidates;
  };
  const Case cases[] = {
      {"", {"mx1.example.org 2001:db8::1 25", "mx1.example.org 192.0.2.1 25", "mx2.example.org 2001:db8::2 25"}},
      {"127.0.0.5", {"mx1.example.org 192.0.2.1 25"}},
      {"::1", {"mx1.example.org 2001:db8::1 25", "mx2.example.org 2001:db8::2 25"}},
      {"[2001:db8::99]", {"mx1.example.org 2001:db8::1 25", "mx2.example.org 2001:db8::2 25"}},
      {"localhost", {"mx1.example.org 2001:db8::1 25", "mx1.example.org 192.0.2.1 25", "mx2.example.org 2001:db8::2 25"}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.bind);
    RouteOptions o;
    o.bind = c.bind;
    CHECK(summary(candidates_of(route_candidates(t, plan, answers, o))) == c.candidates);
  }
  // Nothing of our family: a temporary failure, as when no server could be reached.
  RouteOptions v4;
  v4.bind = "192.0.2.200";
  auto f = failure_of(route_candidates(t, plan, {ok({"2001:db8::1"}), ok({"2001:db8::2"})}, v4));
  CHECK_FALSE(f.fatal);
  CHECK(f.record == "4.4.1 Failed to reach any MX: every address is of another family than bind 192.0.2.200");
}

TEST_CASE("route: no address at all") {
  const RouteOptions o;
  const RouteTarget mx = mx_target("example.org");
  const RouteTarget handoff = target(std::string("relay.example"), "x@y.test");
  const HostPlan two{{"mx1.example.org", "mx2.example.org"}, o.portprio, false};
  struct Case {
    const char* name;
    RouteTarget target;
    HostPlan plan;
    std::vector<AddressResult> answers;
    Failure expected;
  };
  const Case cases[] = {
      {"a DNS failure of some host is temporary", mx, two, {status(DnsStatus::NxDomain), status(DnsStatus::TempFail)},
       {"4.4.3 cannot resolve example.org: mx1.example.org: NxDomain; mx2.example.org: TempFail", false}},
      {"MX hosts without addresses", mx, two, {status(DnsStatus::NxDomain), status(DnsStatus::NoData)},
       {"5.4.4 no server of example.org has an address: mx1.example.org: NxDomain; mx2.example.org: NoData", true}},
      {"the implicit MX without address (RFC 5321 5.1)", mx, {{"example.org"}, o.portprio, true}, {status(DnsStatus::NoData)},
       {"5.1.2 example.org has no MX and no address record", true}},
      {"a handoff remote without address is temporary", handoff, {{"relay.example"}, o.portprio, false},
       {status(DnsStatus::NxDomain)},
       {"5.4.4 no server of handoff remote relay.example has an address: relay.example: NxDomain", false}},
      {"a missing answer counts as a DNS failure", mx, two, {status(DnsStatus::NoData)},
       {"4.4.3 cannot resolve example.org: mx1.example.org: NoData; mx2.example.org: TempFail", false}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    CHECK(failure_of(route_candidates(c.target, c.plan, c.answers, o)) == c.expected);
  }
}

TEST_CASE("route: every candidate failed") {
  CHECK(unreachable(mx_target("example.org"), "connection refused (mx [192.0.2.1]:25)") ==
        Failure{"4.4.1 Failed to reach any MX: connection refused (mx [192.0.2.1]:25)", false});
  CHECK(unreachable(target(std::string("relay.example"), "x@y.test"), "554 5.7.1 no (from relay.example)") ==
        Failure{"4.4.1 Failed to connect or negotiate with handoff remote: 554 5.7.1 no (from relay.example)", false});
}

TEST_CASE("route: how the client talks to a candidate") {
  struct Case {
    TlsMode mode;
    bool verify;
    smtp::TlsPolicy policy;
    bool implicit;
  };
  const Case cases[] = {
      {TlsMode::Opportunistic, false, smtp::TlsPolicy::Opportunistic, false},
      {TlsMode::Opportunistic, true, smtp::TlsPolicy::Required, false},  // a verified server must do TLS
      {TlsMode::StartTls, false, smtp::TlsPolicy::Required, false},
      {TlsMode::Implicit, false, smtp::TlsPolicy::Opportunistic, true},
      {TlsMode::None, false, smtp::TlsPolicy::None, false},
  };
  for (const Case& c : cases) {
    CAPTURE(static_cast<int>(c.mode));
    CAPTURE(c.verify);
    Candidate cand{"h.example", "192.0.2.1", {25, c.mode}, c.verify, std::nullopt};
    smtp::ClientOptions co;
    co.helo_name = "me.test";
    configure_client(cand, co);
    CHECK(co.tls == c.policy);
    CHECK(co.tls_active == c.implicit);
    CHECK_FALSE(co.auth);
    CHECK(co.helo_name == "me.test");  // the rest is left alone
  }
  Candidate relay{"relay.example", "192.0.2.9", {587, TlsMode::StartTls}, true, sasl::Credentials{"", "u", "p"}};
  smtp::ClientOptions co;
  configure_client(relay, co);
  REQUIRE(co.auth);
  CHECK(co.auth->authcid == "u");
  CHECK(co.auth->password == "p");
}
