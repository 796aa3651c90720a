// The runtime on real loopback sockets: a tiny line engine behind the connection driver,
// clients on other threads with blocking sockets (and the TLS filter as a TLS client).
#include <cmail/net/runtime.h>

#include <doctest/doctest.h>

#include "../unit/fakes.h"
#include "net/tls_filter.h"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <filesystem>
#include <future>
#include <memory>
#include <thread>

using namespace cmail;
using cmail::test::run_bounded;
using cmail::test::wait_until;
using namespace std::chrono_literals;

namespace {

std::atomic<int> g_lines{0};

// Echoes lines; "STARTTLS" asks for TLS, "QUIT" closes, "BIG" answers 8 MiB.
struct LineEngine {
  std::string in, out;
  std::deque<proto::Event> events;
  bool tls_wait = false, closed = false;
  std::chrono::milliseconds idle{5000};
  std::chrono::milliseconds line_budget{0};  // deadline() of a line in progress
  std::uint64_t lines = 0;

  LineEngine() { out = "hello\r\n"; }
  void receive(std::string_view b) {
    if (tls_wait || closed) return;
    in.append(b);
    std::size_t p;
    while (!tls_wait && !closed && (p = in.find("\r\n")) != std::string::npos) {
      std::string line = in.substr(0, p);
      in.erase(0, p + 2);
      ++g_lines;
      ++lines;
      if (line == "STARTTLS") {
        out += "go\r\n";
        events.push_back(proto::StartTls{std::move(in)});
        in.clear();
        tls_wait = true;
      } else if (line == "QUIT") {
        out += "bye\r\n";
        events.push_back(proto::Close{});
        closed = true;
      } else if (line == "BIG") {
        out += std::string(8 << 20, 'x') + "\r\n";
      } else {
        out += "echo: " + line + "\r\n";
      }
    }
  }
  void receive_eof() {
    closed = true;
    events.push_back(proto::Close{});
  }
  std::string_view pending_output() const { return out; }
  void consume_output(std::size_t n) { out.erase(0, n); }
  std::optional<proto::Event> next_event() {
    if (events.empty()) return std::nullopt;
    proto::Event e = events.front();
    events.pop_front();
    return e;
  }
  void tls_established(const proto::TlsInfo& i) {
    tls_wait = false;
    out += "tls " + i.version + "\r\n";
  }
  void timed_out() {
    out += "timeout\r\n";
    events.push_back(proto::Close{});
    closed = true;
  }
  bool wants_read() const { return !tls_wait && !closed; }
  std::chrono::milliseconds timeout() const { return idle; }
  proto::Deadline deadline() const {
    if (in.empty()) return {2 * lines, 0ms};
    return {2 * lines + 1, line_budget};
  }
};
static_assert(proto::Engine<LineEngine>);

struct Server {
  net::Runtime rt;
  std::thread thread;
  std::vector<int> ids;
  std::chrono::milliseconds idle{5000};
  std::chrono::milliseconds line_budget{0};

  int add(net::ListenerOptions o) {
    auto id = rt.listen(o, [this](const proto::PeerInfo&, net::Kick) {
      auto e = std::make_shared<LineEngine>();
      e->idle = idle;
      e->line_budget = line_budget;
      return std::make_unique<net::EngineHandler<LineEngine>>(e);
    });
    REQUIRE_MESSAGE(id.has_value(), id.error().to_string());
    return *id;
  }
  void start() { thread = std::thread([this] { rt.run(); }); }
  ~Server() {
    rt.shutdown(100ms);
    if (thread.joinable()) thread.join();
  }
};

int connect_to(std::uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

void send_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Bytes sent on `fd` that the peer's TCP has not acknowledged yet (0: all are in its socket).
int unacknowledged(int fd) {
  int n = -1;
  REQUIRE(ioctl(fd, SIOCOUTQ, &n) == 0);
  return n;
}

// Returns once the loop thread has run `turns` posted functions one after the other: every
// read callback that was due when this was called has run by then.
void loop_turns(net::Runtime& rt, int turns = 1) {
  for (int i = 0; i < turns; ++i) {
    auto ran = std::make_shared<std::promise<void>>();
    auto done = ran->get_future();
    rt.post([ran] { ran->set_value(); });
    REQUIRE(done.wait_for(5s) == std::future_status::ready);
  }
}

// Reads until `until` appears in what was read, EOF, or the 5 s timeout.
std::string read_until(int fd, std::string_view until, bool* eof = nullptr) {
  std::string got;
  char buf[65536];
  while (got.find(until) == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      if (eof) *eof = n == 0;
      break;
    }
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

// A blocking TLS client over the same filter the server uses.
struct TlsClient {
  int fd;
  std::unique_ptr<net::TlsFilter> tls;
  explicit TlsClient(int f) : fd(f) {
    net::TlsClientOptions o;
    o.verify = false;
    auto ctx = net::TlsClientContext::load(o);
    REQUIRE(ctx.has_value());
    tls = net::TlsFilter::client(*ctx);
  }
  bool handshake() {
    char buf[16384];
    for (int i = 0; i < 100 && !tls->handshake_done() && !tls->failed(); ++i) {
      send_all(fd, tls->take_ciphertext());
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return false;
      tls->feed(std::string_view(buf, static_cast<std::size_t>(n)));
    }
    send_all(fd, tls->take_ciphertext());
    return tls->handshake_done();
  }
  void write(std::string_view s) {
    REQUIRE(tls->write(s));
    send_all(fd, tls->take_ciphertext());
  }
  std::string read_until(std::string_view until) {
    std::string got;
    char buf[16384];
    tls->read(got);
    while (got.find(until) == std::string::npos) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      tls->feed(std::string_view(buf, static_cast<std::size_t>(n)));
      if (!tls->read(got)) break;
    }
    return got;
  }
};

struct Certs {
  cmail::test::TempDir tmp;
  std::filesystem::path dir = tmp.path();
  std::shared_ptr<net::TlsServerContext> ctx;
  Certs() {
    REQUIRE(net::generate_self_signed((dir / "c.pem").string(), (dir / "k.pem").string(), "mx.test").ok());
    CHECK((std::filesystem::status(dir / "k.pem").permissions() & std::filesystem::perms::others_read) ==
          std::filesystem::perms::none);
    auto c = net::TlsServerContext::load({(dir / "c.pem").string(), (dir / "k.pem").string()});
    REQUIRE_MESSAGE(c.has_value(), c.error().to_string());
    ctx = *c;
  }
};

}  // namespace

TEST_CASE("runtime: plain connections, several at once") {
  Server s;
  int id = s.add({});
  s.start();
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 5; ++i) {
    clients.emplace_back([&, i] {
      int fd = connect_to(s.rt.port(id));
      std::string greet = read_until(fd, "hello\r\n");
      send_all(fd, "ping " + std::to_string(i) + "\r\nQUIT\r\n");
      bool eof = false;
      std::string got = read_until(fd, "\r\nbye\r\n", &eof);
      if (greet == "hello\r\n" && got == "echo: ping " + std::to_string(i) + "\r\nbye\r\n") ++ok;
      close(fd);
    });
  }
  for (auto& t : clients) t.join();
  CHECK(ok == 5);
}

TEST_CASE("runtime: implicit TLS holds the greeting until the handshake") {
  Certs certs;
  Server s;
  net::ListenerOptions o;
  o.implicit_tls = true;
  o.tls = certs.ctx;
  int id = s.add(o);
  s.start();
  int fd = connect_to(s.rt.port(id));
  TlsClient c(fd);
  REQUIRE(c.handshake());
  CHECK(c.read_until("tls TLSv1.2\r\n") == "hello\r\ntls TLSv1.2\r\n");
  c.write("secret\r\n");
  CHECK(c.read_until("\r\n") == "echo: secret\r\n");
  close(fd);
  // A plaintext client on the TLS port gets nothing and is closed.
  int plain = connect_to(s.rt.port(id));
  send_all(plain, "hello there\r\n\r\n");
  bool eof = false;
  std::string got = read_until(plain, "hello\r\n", &eof);
  CHECK(got.find("hello\r\n") == std::string::npos);
  close(plain);
}

TEST_CASE("runtime: STARTTLS, and bytes after it go to the handshake, never to the engine") {
  Certs certs;
  Server s;
  net::ListenerOptions o;
  o.tls = certs.ctx;
  int id = s.add(o);
  s.start();
  SUBCASE("a real upgrade") {
    int fd = connect_to(s.rt.port(id));
    read_until(fd, "hello\r\n");
    send_all(fd, "STARTTLS\r\n");
    CHECK(read_until(fd, "go\r\n") == "go\r\n");
    TlsClient c(fd);
    REQUIRE(c.handshake());
    CHECK(c.read_until("\r\n") == "tls TLSv1.2\r\n");
    c.write("inside\r\n");
    CHECK(c.read_until("\r\n") == "echo: inside\r\n");
    close(fd);
  }
  SUBCASE("command injection") {
    int fd = connect_to(s.rt.port(id));
    read_until(fd, "hello\r\n");
    int before = g_lines;
    send_all(fd, "STARTTLS\r\nQUIT\r\n");  // QUIT rides in the same packet
    bool eof = false;
    std::string got = read_until(fd, "bye\r\n", &eof);
    CHECK(got.starts_with("go\r\n"));
    CHECK(got.find("bye") == std::string::npos);  // QUIT was handed to TLS and failed it
    CHECK(eof);
    CHECK(g_lines == before + 1);
    close(fd);
  }
}

TEST_CASE("runtime: idle timeout, per-address limit, post() from another thread") {
  Server s;
  s.idle = 300ms;
  net::ListenerOptions o;
  o.max_per_address = 1;
  int id = s.add(o);
  s.start();
  int first = connect_to(s.rt.port(id));
  read_until(first, "hello\r\n");
  int second = connect_to(s.rt.port(id));
  bool eof = false;
  std::string got = read_until(second, "hello\r\n", &eof);
  CHECK(got.empty());  // closed at once, not left waiting
  CHECK(eof);
  close(second);
  got = read_until(first, "timeout\r\n", &eof);
  CHECK(got == "timeout\r\n");
  read_until(first, "never", &eof);
  CHECK(eof);
  close(first);
  std::atomic<bool> ran{false};
  std::thread([&] { s.rt.post([&] { ran = true; }); }).join();
  CHECK(wait_until([&] { return ran.load(); }, 5s));
}

TEST_CASE("runtime: a phase's deadline holds however the peer trickles") {
  Server s;
  s.idle = 2000ms;
  s.line_budget = 500ms;
  int id = s.add({});
  s.start();
  int fd = connect_to(s.rt.port(id));
  read_until(fd, "hello\r\n");
  // Whole lines, each within the idle timeout: served, the deadline restarts with each line.
  for (int i = 0; i < 3; ++i) {
    send_all(fd, "ping\r\n");
    CHECK(read_until(fd, "echo: ping\r\n") == "echo: ping\r\n");
  }
  // One byte every 50 ms never leaves the idle timeout silent, but the line as a whole has
  // 500 ms: the engine is told it timed out long before the 8 s this client would go on for.
  timeval tv{0, 50 * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string got;
  bool eof = false;
  for (int i = 0; i < 160 && !eof && got.find("timeout\r\n") == std::string::npos; ++i) {
    send_all(fd, "x");
    char buf[256];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) got.append(buf, static_cast<std::size_t>(n));
    eof = n == 0;
  }
  CHECK(got == "timeout\r\n");
  close(fd);
}

TEST_CASE("runtime: a client that does not read stops the server reading") {
  Server s;
  net::ListenerOptions o;
  o.max_output_buffer = 64 * 1024;
  int id = s.add(o);
  s.start();
  int fd = connect_to(s.rt.port(id));
  read_until(fd, "hello\r\n");
  int before = g_lines;
  send_all(fd, "BIG\r\n");
  REQUIRE(wait_until([&] { return g_lines == before + 1; }, 5s));  // 8 MiB queued now, past the limit
  send_all(fd, "one\r\ntwo\r\n");
  // Once the server's TCP has the bytes and its loop has gone round twice since, a server still
  // reading would have read them (libuv polls level-triggered; a read runs in the loop pass
  // that sees the socket readable, before the second post can run).
  REQUIRE(wait_until([&] { return unacknowledged(fd) == 0; }, 5s));
  loop_turns(s.rt, 2);
  CHECK(g_lines.load() == before + 1);  // "one" and "two" wait in the socket
  std::string got = read_until(fd, "echo: two\r\n");
  CHECK(got.size() == (8u << 20) + 2 + 11 + 11);
  CHECK(g_lines == before + 3);
  close(fd);
}

TEST_CASE("runtime: shutdown lets a connection in flight finish within the grace period") {
  auto s = std::make_unique<Server>();
  int id = s->add({});
  s->start();
  int fd = connect_to(s->rt.port(id));
  read_until(fd, "hello\r\n");
  s->rt.shutdown(2000ms);
  loop_turns(s->rt);  // posted after it: the shutdown has begun when this returns
  send_all(fd, "still here\r\nQUIT\r\n");
  CHECK(read_until(fd, "bye\r\n") == "echo: still here\r\nbye\r\n");
  close(fd);
  s->thread.join();  // run() returned: the last connection closed
  CHECK(s->rt.connections() == 0);
}

TEST_CASE("runtime: IPv6 listeners") {
  Server s;
  net::ListenerOptions o;
  o.host = "::1";
  auto id = s.rt.listen(o, [](const proto::PeerInfo& peer, net::Kick) {
    CHECK(peer.address == "::1");
    return std::make_unique<net::EngineHandler<LineEngine>>(std::make_shared<LineEngine>());
  });
  if (!id) {
    MESSAGE("no IPv6 loopback on this machine: " << id.error().to_string());
    return;
  }
  s.start();
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(s.rt.port(*id));
  a.sin6_addr = in6addr_loopback;
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  CHECK(read_until(fd, "hello\r\n") == "hello\r\n");
  send_all(fd, "v6\r\n");
  CHECK(read_until(fd, "\r\n") == "echo: v6\r\n");
  close(fd);
}

TEST_CASE("runtime: post_after runs work on the loop once its time passed; pending timers do not hold shutdown") {
  net::Runtime rt;
  proto::Executor ex = rt.executor();
  std::vector<int> order;
  const auto start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::duration fired{};
  std::thread([&] {
    ex.post_after(150ms, [&] {
      order.push_back(2);
      fired = std::chrono::steady_clock::now() - start;
      rt.shutdown(0ms);
    });
    ex.post_after(20ms, [&] { order.push_back(1); });
    ex.post_after(std::chrono::hours(1), [&] { order.push_back(3); });  // dropped at the end
  }).join();
  rt.run();  // returns although the hour-long timer is still pending
  CHECK(order == std::vector<int>{1, 2});
  CHECK(fired >= 150ms);
}

TEST_CASE("runtime: work posted after the runtime is gone is dropped, not a crash") {
  proto::Executor ex;
  {
    net::Runtime rt;
    ex = rt.executor();
    std::atomic<bool> ran{false};
    ex.post([&] { ran = true; });
    rt.shutdown(0ms);
    rt.run();
    CHECK(ran);  // posted before the end: it ran
  }
  bool late = false;
  std::thread([&] { ex.post([&] { late = true; }); }).join();  // e.g. a store commit finishing late
  CHECK_FALSE(late);
}

namespace {

// The client side of LineEngine: STARTTLS when asked, then "ping", then QUIT.
struct PingEngine {
  std::string in, out, log;
  std::deque<proto::Event> events;
  bool starttls = false, tls_wait = false, done = false;
  void receive(std::string_view b) {
    in.append(b);
    std::size_t p;
    while (!tls_wait && (p = in.find("\r\n")) != std::string::npos) {
      std::string line = in.substr(0, p);
      in.erase(0, p + 2);
      log += line + "|";
      if (line == "hello") out += starttls ? "STARTTLS\r\n" : "ping\r\n";
      else if (line == "go") events.push_back(proto::StartTls{std::exchange(in, {})}), tls_wait = true;
      else if (line.starts_with("tls ") && starttls) out += "ping\r\n";
      else if (line == "echo: ping") out += "QUIT\r\n";
      else if (line == "bye") done = true, events.push_back(proto::Close{});  // both ends close, TLS or not
    }
  }
  void receive_eof() { events.push_back(proto::Close{}); }
  std::string_view pending_output() const { return out; }
  void consume_output(std::size_t n) { out.erase(0, n); }
  std::optional<proto::Event> next_event() {
    if (events.empty()) return std::nullopt;
    proto::Event e = events.front();
    events.pop_front();
    return e;
  }
  void tls_established(const proto::TlsInfo&) {
    tls_wait = false;
    log += "[tls]|";
    receive("");
  }
  void timed_out() { events.push_back(proto::Close{}); }
  bool wants_read() const { return true; }
  std::chrono::milliseconds timeout() const { return 5000ms; }
};

struct Outcome {
  Status connected;
  std::optional<std::string> closed;
  std::string log;
  bool ended = false;  // the loop ended by itself, not by the 8 s watchdog
};

Outcome ping(net::ConnectOptions o, bool starttls) {
  net::Runtime rt;
  auto engine = std::make_shared<PingEngine>();
  engine->starttls = starttls;
  Outcome out;
  out.connected = Status::internal("never called");
  rt.connect(o, std::make_unique<net::EngineHandler<PingEngine>>(engine),
             [&](Status st) {
               out.connected = st;
               if (!st.ok()) rt.shutdown(0ms);
             },
             [&](std::string reason) {
               out.closed = reason;
               rt.shutdown(0ms);
             });
  out.ended = run_bounded(rt, 8s);  // bounded: the runtime ends at the latest after 8 s
  out.log = engine->log;
  return out;
}

}  // namespace

TEST_CASE("runtime: outbound connections, plain, STARTTLS, implicit TLS, verified or refused") {
  Certs certs;
  Server server;
  net::ListenerOptions plain;
  plain.tls = certs.ctx;
  int p = server.add(plain);
  net::ListenerOptions implicit;
  implicit.tls = certs.ctx;
  implicit.implicit_tls = true;
  int t = server.add(implicit);
  server.start();
  net::TlsClientOptions unverified;
  unverified.verify = false;
  auto loose = net::TlsClientContext::load(unverified);
  REQUIRE(loose.has_value());
  net::TlsClientOptions verified;
  verified.ca_file = (certs.dir / "c.pem").string();  // the self-signed certificate is its own CA
  auto strict = net::TlsClientContext::load(verified);
  REQUIRE(strict.has_value());

  net::ConnectOptions o;
  o.address = "127.0.0.1";
  o.port = server.rt.port(p);
  SUBCASE("plain") {
    Outcome r = ping(o, false);
    CHECK(r.connected.ok());
    CHECK(r.log == "hello|echo: ping|bye|");
    CHECK(r.closed == std::optional<std::string>(""));
    CHECK(r.ended);
  }
  SUBCASE("STARTTLS with a verified certificate") {
    o.tls = *strict;
    o.server_name = "mx.test";
    Outcome r = ping(o, true);
    CHECK(r.log == "hello|go|[tls]|tls TLSv1.2|echo: ping|bye|");
    CHECK(r.ended);
  }
  SUBCASE("STARTTLS to a server whose certificate names another host") {
    o.tls = *strict;
    o.server_name = "other.test";
    Outcome r = ping(o, true);
    CHECK(r.connected.ok());
    CHECK(r.log == "hello|go|");
    REQUIRE(r.closed.has_value());
    CHECK(r.closed->find("TLS") == 0);
    CHECK(r.ended);
  }
  SUBCASE("implicit TLS") {
    o.port = server.rt.port(t);
    o.implicit_tls = true;
    o.tls = *loose;
    Outcome r = ping(o, false);
    // Both ends close at once: one close_notify each, no alert ping-pong until the guard fires.
    CHECK(r.ended);
    CHECK(r.log == "[tls]|hello|tls TLSv1.2|echo: ping|bye|");
  }
  SUBCASE("refused, and not an address") {
    int fd = socket(AF_INET, SOCK_STREAM, 0);  // a port nobody listens on
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    o.port = ntohs(a.sin_port);
    Outcome r = ping(o, false);
    close(fd);
    CHECK(r.connected.message().find("refused") != std::string::npos);
    CHECK_FALSE(r.closed.has_value());
    o.address = "mx.example.test";
    CHECK(ping(o, false).connected.code() == Status::Code::InvalidArgument);
    o.address = "127.0.0.1";
    o.bind_address = "::1";  // another family: the target is skipped (docs/compatibility.md#dispatchd-bind)
    CHECK(ping(o, false).connected.code() == Status::Code::InvalidArgument);
  }
}

TEST_CASE("tls: both ends export the same tls-exporter channel binding (RFC 9266), another one per connection") {
  Certs certs;
  net::TlsClientOptions o;
  o.verify = false;
  auto cctx = net::TlsClientContext::load(o);
  REQUIRE(cctx.has_value());
  auto handshake = [&] {
    auto server = net::TlsFilter::server(certs.ctx);
    auto client = net::TlsFilter::client(*cctx);
    for (int i = 0; i < 20 && !(server->handshake_done() && client->handshake_done()); ++i) {
      REQUIRE(server->feed(client->take_ciphertext()));
      REQUIRE(client->feed(server->take_ciphertext()));
    }
    REQUIRE(server->handshake_done());
    REQUIRE(client->handshake_done());
    // mbedTLS offers and accepts the extended master secret (RFC 7627), so the exporter exists.
    CHECK(server->info().tls_exporter.size() == 32);
    CHECK(server->info().tls_exporter == client->info().tls_exporter);
    return server->info().tls_exporter;
  };
  const std::string a = handshake(), b = handshake();
  CHECK(a != b);
}
