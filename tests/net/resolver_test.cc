// The resolvers on a real Runtime loop: the c-ares one against tests/dns_server.py on a loopback
// port (no network beyond 127.0.0.1), and the static one.
//
// Each test runs the loop on the test thread until its last callback calls rt.shutdown(); a
// watchdog thread shuts the runtime down after a bound, and ends the process if run() still
// does not return. The DNS server is killed by its owner's destructor on every path, and exits
// by itself when this process dies (its stdin closes).
#include <cmail/net/runtime.h>

#include <cmail/mail/dane.h>
#include <cmail/net/resolver.h>

#include <doctest/doctest.h>

#include "../unit/fakes.h"
#include "net/loop.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

extern char** environ;

using namespace cmail;
using namespace cmail::net;
using namespace std::chrono_literals;
using cmail::test::run_bounded;
using Clock = std::chrono::steady_clock;

namespace {

const char* const kZone = R"({
  "example.test": {"MX": [[10, "mx1.example.test"], [20, "mx2.example.test"]]},
  "mx1.example.test": {"A": ["127.0.0.2"], "AAAA": ["::1"]},
  "v4only.test": {"A": ["127.0.0.9"]},
  "multi.test": {"A": ["127.0.0.3", "127.0.0.4", "127.0.0.3"], "AAAA": ["2001:db8::2", "2001:db8::1"]},
  "nullmx.test": {"MX": [[0, "."]]},
  "text.test": {"TXT": ["v=spf1 -all", ["v=DKIM1; k=rsa; p=MIIB", "IjANBg"]]},
  "broken.test": "SERVFAIL",
  "refused.test": "REFUSED",
  "slow.test": "DROP"
})";

// tests/dns_server.py in a child process, with its zone in a temporary file.
class DnsServer {
 public:
  explicit DnsServer(const std::string& zone) {
    set_zone(zone);
    int in[2], out[2];
    REQUIRE(pipe2(in, O_CLOEXEC) == 0);
    REQUIRE(pipe2(out, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    std::string zone_path = dir_.file("zone.json");
    const char* argv[] = {CMAIL_PYTHON3, CMAIL_DNS_SERVER, zone_path.c_str(), "--lifetime", "120", nullptr};
    int rc = posix_spawn(&pid_, CMAIL_PYTHON3, &fa, nullptr, const_cast<char**>(argv), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    stdin_ = in[1];
    stdout_ = out[0];
    REQUIRE_MESSAGE(rc == 0, "cannot start " CMAIL_DNS_SERVER);
    // "dns 127.0.0.1:PORT\n", within 10 s.
    std::string line;
    auto deadline = Clock::now() + 10s;
    while (line.find('\n') == std::string::npos && Clock::now() < deadline) {
      pollfd p{stdout_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[256];
      ssize_t n = read(stdout_, buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<std::size_t>(n));
    }
    REQUIRE_MESSAGE(line.starts_with("dns 127.0.0.1:"), "dns_server.py said: " << line);
    address_ = line.substr(4, line.find('\n') - 4);
  }

  ~DnsServer() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      for (int i = 0; i < 500 && waitpid(pid_, &status, WNOHANG) == 0; ++i) std::this_thread::sleep_for(10ms);
      if (kill(pid_, 0) == 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
      }
    }
    if (stdin_ >= 0) close(stdin_);
    if (stdout_ >= 0) close(stdout_);
  }

  // Replaces the zone atomically (the server notices the new file on its next query).
  void set_zone(const std::string& zone) {
    std::filesystem::path tmp = dir_.path() / "zone.json.tmp";
    std::ofstream(tmp) << zone;
    std::filesystem::rename(tmp, dir_.path() / "zone.json");
  }

  const std::string& address() const { return address_; }  // "127.0.0.1:PORT"

 private:
  cmail::test::TempDir dir_;
  pid_t pid_ = -1;
  int stdin_ = -1, stdout_ = -1;
  std::string address_;
};

// Counts answers; the last one shuts the runtime down.
struct Countdown {
  net::Runtime& rt;
  int left;
  void done() {
    if (--left == 0) rt.shutdown(0ms);
  }
};

std::unique_ptr<mail::Resolver> resolver_for(net::Runtime& rt, const std::string& server,
                                       std::chrono::milliseconds timeout = 2s, int tries = 1, bool dnssec = false) {
  net::ResolverOptions o;
  o.servers = {server};
  o.timeout = timeout;
  o.tries = tries;
  o.dnssec = dnssec;
  auto r = net::make_resolver(rt, o);
  REQUIRE_MESSAGE(r.has_value(), r.error().to_string());
  return std::move(*r);
}

// libuv handles that keep the loop alive (active and referenced).
int live_handles(net::Runtime& rt) {
  int n = 0;
  uv_walk(loop_of(rt), [](uv_handle_t* h, void* arg) {
    if (uv_is_active(h) && uv_has_ref(h) && !uv_is_closing(h)) ++*static_cast<int*>(arg);
  }, &n);
  return n;
}

// A UDP socket on loopback that never answers: a name server that only times out.
struct SilentServer {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  std::string address;
  SilentServer() {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    address = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  }
  ~SilentServer() { close(fd); }
  // True when a datagram (a query) arrived; does not wait.
  bool asked() const {
    char buf[512];
    return ::recv(fd, buf, sizeof buf, MSG_DONTWAIT) >= 0;
  }
};

}  // namespace

TEST_CASE("to_string(DnsStatus)") {
  CHECK(std::string(to_string(mail::DnsStatus::Ok)) == "Ok");
  CHECK(std::string(to_string(mail::DnsStatus::NoData)) == "NoData");
  CHECK(std::string(to_string(mail::DnsStatus::NxDomain)) == "NxDomain");
  CHECK(std::string(to_string(mail::DnsStatus::TempFail)) == "TempFail");
}

TEST_CASE("c-ares: MX, AAAA+A, NoData, NxDomain, null MX, SERVFAIL and REFUSED") {
  DnsServer dns(kZone);
  net::Runtime rt;
  auto r = resolver_for(rt, dns.address());
  Countdown left{rt, 11};
  mail::MxResult mx, mx_case, mx_nodata, mx_nx, mx_null, mx_servfail, mx_refused;
  mail::AddressResult a, a_multi, a_nodata, a_nx;
  auto keep = [&](auto& slot) {
    return [&](auto result) {
      slot = std::move(result);
      left.done();
    };
  };
  r->mx("example.test", keep(mx));
  r->mx("EXAMPLE.Test.", keep(mx_case));
  r->mx("mx1.example.test", keep(mx_nodata));  // only A and AAAA
  r->mx("nope.test", keep(mx_nx));
  r->mx("nullmx.test", keep(mx_null));
  r->mx("broken.test", keep(mx_servfail));
  r->mx("refused.test", keep(mx_refused));
  r->addresses("mx1.example.test", keep(a));
  r->addresses("multi.test", keep(a_multi));
  r->addresses("example.test", keep(a_nodata));  // only MX
  r->addresses("nope.test", keep(a_nx));
  REQUIRE(run_bounded(rt));

  CHECK(mx.status == mail::DnsStatus::Ok);
  CHECK(mx.records == std::vector<mail::MxRecord>{{10, "mx1.example.test"}, {20, "mx2.example.test"}});
  CHECK_FALSE(mx.null_mx());
  CHECK(mx_case.records.size() == 2);
  CHECK(mx_nodata.status == mail::DnsStatus::NoData);  // RFC 5321 5.1: the implicit MX applies
  CHECK(mx_nodata.records.empty());
  CHECK_FALSE(mx_nodata.error.empty());
  CHECK(mx_nx.status == mail::DnsStatus::NxDomain);
  CHECK(mx_null.status == mail::DnsStatus::Ok);  // RFC 7505
  CHECK(mx_null.records == std::vector<mail::MxRecord>{{0, ""}});
  CHECK(mx_null.null_mx());
  CHECK(mx_servfail.status == mail::DnsStatus::TempFail);
  CHECK(mx_refused.status == mail::DnsStatus::TempFail);

  CHECK(a.status == mail::DnsStatus::Ok);
  CHECK(a.addresses == std::vector<std::string>{"::1", "127.0.0.2"});
  CHECK(a_multi.addresses == std::vector<std::string>{"2001:db8::2", "2001:db8::1", "127.0.0.3", "127.0.0.4"});
  CHECK(a_nodata.status == mail::DnsStatus::NoData);
  CHECK(a_nodata.addresses.empty());
  CHECK(a_nx.status == mail::DnsStatus::NxDomain);
}

TEST_CASE("c-ares: TXT records, a record's strings joined; NoData, NxDomain and SERVFAIL") {
  DnsServer dns(kZone);
  net::Runtime rt;
  auto r = resolver_for(rt, dns.address());
  Countdown left{rt, 5};
  mail::TxtResult txt, txt_case, txt_nodata, txt_nx, txt_servfail;
  auto keep = [&](mail::TxtResult& slot) {
    return [&](mail::TxtResult result) {
      slot = std::move(result);
      left.done();
    };
  };
  r->txt("text.test", keep(txt));
  r->txt("TEXT.test.", keep(txt_case));
  r->txt("example.test", keep(txt_nodata));  // only MX
  r->txt("nope.test", keep(txt_nx));
  r->txt("broken.test", keep(txt_servfail));
  REQUIRE(run_bounded(rt));
  CHECK(txt.status == mail::DnsStatus::Ok);
  std::vector<std::string> got = txt.records;
  std::sort(got.begin(), got.end());  // a DNS server may give the records in any order
  CHECK(got == std::vector<std::string>{"v=DKIM1; k=rsa; p=MIIBIjANBg", "v=spf1 -all"});  // RFC 6376 3.6.2.2
  CHECK(txt_case.records.size() == 2);
  CHECK(txt_nodata.status == mail::DnsStatus::NoData);
  CHECK(txt_nx.status == mail::DnsStatus::NxDomain);
  CHECK(txt_servfail.status == mail::DnsStatus::TempFail);
  CHECK_FALSE(txt_servfail.error.empty());
}

// DANE's questions: TLSA records (RFC 6698 2.1) and the AD bit of answers (RFC 4035 3.2.3),
// which dns_server.py sets for "AD": true names when the query asks for it (RFC 6840 5.7).
const char* const kSignedZone = R"({
  "signed.test": {"MX": [[10, "mx.signed.test"]], "AD": true},
  "mx.signed.test": {"A": ["127.0.0.2"], "AAAA": ["::1"], "AD": true},
  "v4.signed.test": {"A": ["127.0.0.5"], "AD": true},
  "_25._tcp.mx.signed.test": {"TLSA": [[3, 1, 1, "5464253eca52078d3a54f0fcd4fb45f9ec415e6cd42d8c57a022516c611259f4"],
                                       [2, 0, 1, "1cfaa1b2 82991a564bc8a31e57b80422bd8a1eefbb1ca4932e1acf598796ff5f"]],
                              "AD": true},
  "_25._tcp.big.signed.test": {"TLSA": [[3, 0, 0, "@BIG@"]], "AD": true, "TC": true},
  "_25._tcp.nodata.signed.test": {"A": ["127.0.0.9"], "AD": true},
  "_25._tcp.broken.signed.test": "SERVFAIL",
  "unsigned.test": {"MX": [[10, "mx.unsigned.test"]]},
  "mx.unsigned.test": {"A": ["127.0.0.3"]},
  "_25._tcp.mx.unsigned.test": {"TLSA": [[3, 1, 1, "00"]]}
})";

TEST_CASE("c-ares: TLSA records and the AD bit, trusted only with dnssec on") {
  std::string zone = kSignedZone;
  zone.replace(zone.find("@BIG@"), 5, std::string(1400, 'a'));  // 700 octets: truncated over UDP, so TCP
  DnsServer dns(zone);
  for (bool dnssec : {true, false}) {
    CAPTURE(dnssec);
    net::Runtime rt;
    auto r = resolver_for(rt, dns.address(), 2s, 1, dnssec);
    Countdown left{rt, 12};
    mail::MxResult mx, mx_unsigned, mx_nodata;
    mail::AddressResult a, a_v4, a_unsigned;
    mail::TlsaResult t, t_big, t_nodata, t_nx, t_broken, t_unsigned;
    auto keep = [&](auto& slot) {
      return [&](auto result) {
        slot = std::move(result);
        left.done();
      };
    };
    r->mx("signed.test", keep(mx));
    r->mx("unsigned.test", keep(mx_unsigned));
    r->mx("mx.signed.test", keep(mx_nodata));  // a secure NODATA
    r->addresses("mx.signed.test", keep(a));
    r->addresses("v4.signed.test", keep(a_v4));
    r->addresses("mx.unsigned.test", keep(a_unsigned));
    r->tlsa("_25._tcp.mx.signed.test", keep(t));
    r->tlsa("_25._tcp.big.signed.test.", keep(t_big));
    r->tlsa("_25._tcp.nodata.signed.test", keep(t_nodata));
    r->tlsa("_25._tcp.nope.signed.test", keep(t_nx));
    r->tlsa("_25._tcp.broken.signed.test", keep(t_broken));
    r->tlsa("_25._tcp.mx.unsigned.test", keep(t_unsigned));
    REQUIRE(run_bounded(rt));

    CHECK(mx.status == mail::DnsStatus::Ok);
    CHECK(mx.records == std::vector<mail::MxRecord>{{10, "mx.signed.test"}});
    CHECK(mx.secure == dnssec);
    CHECK_FALSE(mx_unsigned.secure);
    CHECK(mx_nodata.status == mail::DnsStatus::NoData);
    CHECK(mx_nodata.secure == dnssec);
    CHECK(a.status == mail::DnsStatus::Ok);
    CHECK(a.addresses == std::vector<std::string>{"::1", "127.0.0.2"});  // IPv6 first, either way
    CHECK(a.secure == dnssec);
    CHECK(a_v4.addresses == std::vector<std::string>{"127.0.0.5"});
    CHECK(a_v4.secure == dnssec);  // AAAA: a secure NODATA
    CHECK(a_unsigned.status == mail::DnsStatus::Ok);
    CHECK_FALSE(a_unsigned.secure);

    CHECK(t.status == mail::DnsStatus::Ok);
    REQUIRE(t.records.size() == 2);
    std::vector<std::string> got;
    for (const auto& rec : t.records) got.push_back(mail::dane::to_string(rec));
    std::sort(got.begin(), got.end());
    CHECK(got == std::vector<std::string>{"2 0 1 1cfaa1b282991a564bc8a31e57b80422bd8a1eefbb1ca4932e1acf598796ff5f",
                                          "3 1 1 5464253eca52078d3a54f0fcd4fb45f9ec415e6cd42d8c57a022516c611259f4"});
    CHECK(t.secure == dnssec);
    CHECK(t_big.status == mail::DnsStatus::Ok);
    REQUIRE(t_big.records.size() == 1);
    CHECK(t_big.records[0].data == std::string(700, '\xaa'));
    CHECK(t_nodata.status == mail::DnsStatus::NoData);
    CHECK(t_nodata.secure == dnssec);
    CHECK(t_nx.status == mail::DnsStatus::NxDomain);
    CHECK_FALSE(t_nx.secure);  // the test server signs no denial of a name it does not have
    CHECK(t_broken.status == mail::DnsStatus::TempFail);
    CHECK_FALSE(t_broken.secure);
    CHECK(t_unsigned.status == mail::DnsStatus::Ok);
    CHECK_FALSE(t_unsigned.secure);
  }
}

TEST_CASE("c-ares: with dnssec on, /etc/hosts and numeric addresses answer at once, never secure") {
  SilentServer silent;
  net::Runtime rt;
  auto r = resolver_for(rt, silent.address, 5s, 1, true);
  Countdown left{rt, 2};
  mail::AddressResult local, numeric;
  r->addresses("localhost", [&](mail::AddressResult res) {
    local = std::move(res);
    left.done();
  });
  r->addresses("192.0.2.1", [&](mail::AddressResult res) {
    numeric = std::move(res);
    left.done();
  });
  REQUIRE(run_bounded(rt));
  CHECK_FALSE(silent.asked());
  CHECK(local.status == mail::DnsStatus::Ok);
  CHECK(std::find(local.addresses.begin(), local.addresses.end(), "127.0.0.1") != local.addresses.end());
  CHECK_FALSE(local.secure);
  CHECK(numeric.addresses == std::vector<std::string>{"192.0.2.1"});
  CHECK_FALSE(numeric.secure);
}

TEST_CASE("c-ares: a server that never answers is TempFail within the configured timeout") {
  DnsServer dns(kZone);
  net::Runtime rt;
  auto r = resolver_for(rt, dns.address(), 300ms, 1);
  Countdown left{rt, 2};
  mail::MxResult mx;
  mail::AddressResult a;
  Clock::duration mx_took{}, a_took{};
  auto start = Clock::now();
  r->mx("slow.test", [&](mail::MxResult res) {
    mx = std::move(res);
    mx_took = Clock::now() - start;
    left.done();
  });
  r->addresses("slow.test", [&](mail::AddressResult res) {
    a = std::move(res);
    a_took = Clock::now() - start;
    left.done();
  });
  REQUIRE(run_bounded(rt));
  CHECK(mx.status == mail::DnsStatus::TempFail);
  CHECK(a.status == mail::DnsStatus::TempFail);
  CHECK_FALSE(mx.error.empty());
  CHECK(mx_took >= 250ms);  // it did wait for the answer
  CHECK(mx_took < 3s);      // 300 ms x 1 try, with room for a loaded machine
  CHECK(a_took >= 250ms);
  CHECK(a_took < 3s);
}

TEST_CASE("c-ares: numeric addresses and /etc/hosts answer without a query, never inside the call") {
  SilentServer silent;  // any query would take the whole 5 s timeout
  net::Runtime rt;
  auto r = resolver_for(rt, silent.address, 5s, 1);
  std::vector<std::pair<std::string, std::string>> cases = {
      {"192.0.2.1", "192.0.2.1"},           {"2001:DB8::1", "2001:db8::1"},
      {"[192.0.2.7]", "192.0.2.7"},         {"[IPv6:2001:db8::7]", "2001:db8::7"},
      {"[ipv6:::1]", "::1"},                {"localhost", "127.0.0.1"},
  };
  Countdown left{rt, static_cast<int>(cases.size()) + 1};
  std::map<std::string, mail::AddressResult> got;
  mail::AddressResult bad;
  bool inside = false;
  int called_inside = 0;
  for (auto& [host, want] : cases) {
    inside = true;
    r->addresses(host, [&, host = host](mail::AddressResult res) {
      if (inside) ++called_inside;
      got[host] = std::move(res);
      left.done();
    });
    inside = false;
  }
  inside = true;
  r->addresses("[not-an-address]", [&](mail::AddressResult res) {
    if (inside) ++called_inside;
    bad = std::move(res);
    left.done();
  });
  inside = false;
  REQUIRE(run_bounded(rt));
  CHECK_FALSE(silent.asked());  // no query went to the silent server
  CHECK(called_inside == 0);
  for (const auto& c : cases) {
    const std::string& host = c.first;  // not a structured binding: clang 14 cannot capture one
    const std::string& want = c.second;
    CAPTURE(host);
    CHECK(got[host].status == mail::DnsStatus::Ok);
    REQUIRE_FALSE(got[host].addresses.empty());
    CHECK(got[host].addresses[0] == want);
  }
  CHECK(got["localhost"].addresses.size() == 1);  // /etc/hosts, both families looked up
  CHECK(bad.status == mail::DnsStatus::NxDomain);
}

TEST_CASE("c-ares: many lookups in flight at once, a slow one does not hold up the others") {
  DnsServer dns(kZone);
  net::Runtime rt;
  auto r = resolver_for(rt, dns.address(), 500ms, 1);
  constexpr int kFast = 30;
  Countdown left{rt, kFast + 1};
  int ok = 0, fast_done_before_slow = 0;
  bool slow_done = false;
  r->mx("slow.test", [&](mail::MxResult res) {
    CHECK(res.status == mail::DnsStatus::TempFail);
    slow_done = true;
    left.done();
  });
  for (int i = 0; i < kFast; ++i) {
    auto check = [&, i](bool good) {
      CAPTURE(i);
      CHECK(good);
      if (good) ++ok;
      if (!slow_done) ++fast_done_before_slow;
      left.done();
    };
    if (i % 3 == 0) {
      r->mx("example.test", [check](mail::MxResult res) { check(res.records.size() == 2); });
    } else if (i % 3 == 1) {
      r->addresses("mx1.example.test", [check](mail::AddressResult res) { check(res.addresses.size() == 2); });
    } else {
      r->addresses("nope.test", [check](mail::AddressResult res) { check(res.status == mail::DnsStatus::NxDomain); });
    }
  }
  REQUIRE(run_bounded(rt));
  CHECK(ok == kFast);
  CHECK(fast_done_before_slow == kFast);
  CHECK(slow_done);
}

TEST_CASE("c-ares: the zone can change while the server runs (dns_server.py re-reads it)") {
  DnsServer dns(kZone);
  net::Runtime rt;
  auto r = resolver_for(rt, dns.address());
  mail::MxResult before, after;
  r->mx("example.test", [&](mail::MxResult res) {
    before = std::move(res);
    dns.set_zone(R"({"example.test": {"MX": [[5, "new.example.test"]]}})");
    r->mx("example.test", [&](mail::MxResult res2) {
      after = std::move(res2);
      rt.shutdown(0ms);
    });
  });
  REQUIRE(run_bounded(rt));
  CHECK(before.records.size() == 2);
  CHECK(after.records == std::vector<mail::MxRecord>{{5, "new.example.test"}});
}

TEST_CASE("c-ares: destroying the resolver cancels its lookups; their callbacks never run") {
  DnsServer dns(kZone);
  net::Runtime rt;
  auto r = resolver_for(rt, dns.address(), 300ms, 1);
  int slow_calls = 0, second_calls = 0, first_calls = 0;
  r->mx("slow.test", [&](mail::MxResult) { ++slow_calls; });          // in flight in c-ares
  r->addresses("slow.test", [&](mail::AddressResult) { ++slow_calls; });
  r->addresses("192.0.2.1", [&](mail::AddressResult) {                  // both answered in the same pass
    ++first_calls;
    r.reset();
  });
  r->addresses("192.0.2.2", [&](mail::AddressResult) { ++second_calls; });
  // A second resolver asks the same server the same slow questions after these, with the same
  // timeout: once its answers (TempFail) are in, the cancelled lookups' would have come too.
  auto twin = resolver_for(rt, dns.address(), 300ms, 1);
  Countdown twin_left{rt, 2};
  twin->mx("slow.test", [&](mail::MxResult res) {
    CHECK(res.status == mail::DnsStatus::TempFail);
    twin_left.done();
  });
  twin->addresses("slow.test", [&](mail::AddressResult res) {
    CHECK(res.status == mail::DnsStatus::TempFail);
    twin_left.done();
  });
  bool returned = run_bounded(rt);
  CHECK(returned);
  CHECK(twin_left.left == 0);
  CHECK(first_calls == 1);
  CHECK(second_calls == 0);
  CHECK(slow_calls == 0);
  CHECK(r == nullptr);
}

TEST_CASE("c-ares: Runtime::shutdown() with a lookup in flight lets run() return") {
  DnsServer dns(kZone);
  net::Runtime rt;
  auto r = resolver_for(rt, dns.address(), 5s, 2);  // would take 5 s + 10 s to time out
  int calls = 0;
  r->mx("slow.test", [&](mail::MxResult) { ++calls; });
  r->addresses("slow.test", [&](mail::AddressResult) { ++calls; });
  auto start = Clock::now();
  rt.shutdown(0ms);
  CHECK(run_bounded(rt, 3s));
  CHECK(Clock::now() - start < 3s);
  CHECK(calls == 0);
  // After shutdown a lookup is cancelled at once, and the resolver still goes away cleanly.
  r->mx("example.test", [&](mail::MxResult) { ++calls; });
  r.reset();
  CHECK(calls == 0);
}

TEST_CASE("c-ares: an idle resolver keeps no handle alive") {
  DnsServer dns(kZone);
  net::Runtime rt;
  int baseline = live_handles(rt);
  auto r = resolver_for(rt, dns.address());
  CHECK(live_handles(rt) == baseline);
  int in_flight = -1, after_mx = -1, after_addresses = -1;
  r->mx("example.test", [&](mail::MxResult) {
    after_mx = live_handles(rt);
    r->addresses("mx1.example.test", [&](mail::AddressResult) {
      after_addresses = live_handles(rt);
      rt.shutdown(0ms);
    });
    in_flight = live_handles(rt);
  });
  REQUIRE(run_bounded(rt));
  CHECK(in_flight > baseline);  // a lookup in flight arms the timeout timer
  CHECK(after_mx == baseline);
  CHECK(after_addresses == baseline);
}

TEST_CASE("c-ares: name servers are checked") {
  net::Runtime rt;
  for (std::string bad : {"not-an-ip", "example.test:53", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:",
                          "1.2.3.4:5x", "[::1", "[::1]x", "[::1]:", "[127.0.0.1]:53", "1.2.3.4,5.6.7.8", ""}) {
    CAPTURE(bad);
    net::ResolverOptions o;
    o.servers = {bad};
    auto r = net::make_resolver(rt, o);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == Status::Code::InvalidArgument);
    CHECK_FALSE(net::parse_name_server(bad).has_value());  // what config files check each line with
  }
  net::ResolverOptions o;
  o.servers = {"127.0.0.1:5353", "[::1]:53", "10.0.0.1", "::1"};
  auto r = net::make_resolver(rt, o);
  CHECK_MESSAGE(r.has_value(), r.error().to_string());
  CHECK(net::parse_name_server("127.0.0.1:5353") == "127.0.0.1:5353");
  CHECK(net::parse_name_server("[::1]:53") == "[::1]:53");
  CHECK(net::parse_name_server("10.0.0.1") == "10.0.0.1:53");
  CHECK(net::parse_name_server("::1") == "[::1]:53");
  auto system = net::make_resolver(rt);  // /etc/resolv.conf
  CHECK_MESSAGE(system.has_value(), system.error().to_string());
}

TEST_CASE("static resolver: answers from its tables, later, from the loop") {
  net::Runtime rt;
  net::StaticZone zone;
  mail::MxResult mx;
  mx.status = mail::DnsStatus::Ok;
  mx.records = {{10, "mx.example.test"}};
  zone.mx["Example.Test."] = mx;
  mail::MxResult temp;
  temp.status = mail::DnsStatus::TempFail;
  zone.mx["flaky.test"] = temp;
  mail::AddressResult a;
  a.status = mail::DnsStatus::Ok;
  a.addresses = {"2001:db8::5", "192.0.2.5"};
  zone.addresses["mx.example.test"] = a;
  mail::TxtResult t;
  t.status = mail::DnsStatus::Ok;
  t.records = {"v=spf1 ip4:192.0.2.5 -all"};
  zone.txt["Example.test"] = t;
  zone.txt["_dmarc.only-txt.test"] = t;
  auto r = net::make_static_resolver(rt, zone);
  Countdown left{rt, 12};
  mail::MxResult got_mx, got_mx_nodata, got_mx_nx, got_temp, got_mx_txt_only;
  mail::AddressResult got_a, got_a_nodata, got_a_nx, got_literal;
  mail::TxtResult got_txt, got_txt_nodata, got_txt_nx;
  bool inside = false;
  int called_inside = 0;
  auto keep = [&](auto& slot) {
    return [&](auto result) {
      if (inside) ++called_inside;
      slot = std::move(result);
      left.done();
    };
  };
  inside = true;
  r->mx("EXAMPLE.test", keep(got_mx));
  r->mx("mx.example.test.", keep(got_mx_nodata));  // only in addresses
  r->mx("nope.test", keep(got_mx_nx));
  r->mx("flaky.test", keep(got_temp));
  r->addresses("MX.example.test", keep(got_a));
  r->addresses("example.test", keep(got_a_nodata));  // only in mx
  r->addresses("nope.test", keep(got_a_nx));
  r->addresses("[IPv6:2001:db8::9]", keep(got_literal));
  r->txt("example.TEST.", keep(got_txt));
  r->txt("mx.example.test", keep(got_txt_nodata));  // only in addresses
  r->txt("nope.test", keep(got_txt_nx));
  r->mx("_dmarc.only-txt.test", keep(got_mx_txt_only));  // exists, without MX
  inside = false;
  REQUIRE(run_bounded(rt));
  CHECK(called_inside == 0);
  CHECK(got_mx.status == mail::DnsStatus::Ok);
  CHECK(got_mx.records == mx.records);
  CHECK(got_mx_nodata.status == mail::DnsStatus::NoData);
  CHECK(got_mx_nx.status == mail::DnsStatus::NxDomain);
  CHECK(got_temp.status == mail::DnsStatus::TempFail);
  CHECK(got_a.addresses == a.addresses);
  CHECK(got_a_nodata.status == mail::DnsStatus::NoData);
  CHECK(got_a_nx.status == mail::DnsStatus::NxDomain);
  CHECK(got_literal.addresses == std::vector<std::string>{"2001:db8::9"});
  CHECK(got_txt.records == t.records);
  CHECK(got_txt_nodata.status == mail::DnsStatus::NoData);
  CHECK(got_txt_nx.status == mail::DnsStatus::NxDomain);
  CHECK(got_mx_txt_only.status == mail::DnsStatus::NoData);
}

TEST_CASE("static resolver: destruction and shutdown cancel answers not yet delivered") {
  SUBCASE("destroyed from a callback") {
    net::Runtime rt;
    auto r = net::make_static_resolver(rt, {});
    int first = 0, second = 0;
    r->mx("a.test", [&](mail::MxResult) {
      ++first;
      r.reset();
      rt.shutdown(0ms);
    });
    r->mx("b.test", [&](mail::MxResult) { ++second; });
    REQUIRE(run_bounded(rt));
    CHECK(first == 1);
    CHECK(second == 0);
  }
  SUBCASE("shutdown with an answer queued") {
    net::Runtime rt;
    auto r = net::make_static_resolver(rt, {});
    int calls = 0;
    // Both run in the same pass over posted work: the answer is queued, then shutdown begins
    // before the resolver's zero timer can fire.
    rt.post([&] { r->mx("a.test", [&](mail::MxResult) { ++calls; }); });
    rt.shutdown(0ms);
    CHECK(run_bounded(rt, 3s));
    CHECK(calls == 0);
    r->mx("late.test", [&](mail::MxResult) { ++calls; });  // after shutdown: cancelled at once
    r.reset();
    CHECK(calls == 0);
  }
}
