// The libuv runtime: listeners, the connection driver, post(), signals. See cmail/net/runtime.h.
#include <cmail/net/runtime.h>

#include "loop.h"
#include "tls_filter.h"

#include <netdb.h>
#include <uv.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace cmail::net {

namespace {
struct Conn;
struct Listener;

// One post_after(): a one-shot timer on the loop, and the work it runs.
struct Delayed {
  uv_timer_t timer;
  std::function<void()> fn;
  Runtime::Impl* rt = nullptr;
};
}  // namespace

struct Runtime::Impl {
  uv_loop_t loop;
  uv_async_t async;
  uv_timer_t grace_timer;
  uv_signal_t sigterm, sigint, sighup;
  bool signals = false;
  std::function<void()> on_hup;
  std::vector<std::function<void()>> at_shutdown;  // components that own handles of their own
  std::chrono::milliseconds grace{0};
  // Work posted from other threads. Shared with every Executor handed out, so that a late
  // post (a store commit finishing after the runtime is gone) is dropped, not a crash.
  struct Posted {
    std::mutex mu;
    std::vector<std::function<void()>> work;
    uv_async_t* async = nullptr;  // null once the runtime is closing
  };
  std::shared_ptr<Posted> posted = std::make_shared<Posted>();
  std::vector<std::unique_ptr<Listener>> listeners;
  std::unordered_map<Conn*, std::shared_ptr<Conn>> conns;
  std::unordered_map<Delayed*, std::unique_ptr<Delayed>> delayed;  // timers not yet fired
  bool shutting_down = false;
  bool finished = false;
  // One read buffer for every connection: on_read consumes it completely before returning,
  // so an idle session costs no buffer memory.
  char read_buf[64 * 1024];

  void finish_if_done();
  void begin_shutdown(std::chrono::milliseconds grace);
  void start_delayed(std::chrono::milliseconds after, std::function<void()> fn);
  void close_delayed(Delayed* d);
};

namespace {

struct Listener {
  Runtime::Impl* rt = nullptr;
  uv_tcp_t tcp;
  ListenerOptions options;
  Factory factory;
  std::uint16_t port = 0;
  std::size_t count = 0;
  std::map<std::string, std::size_t> per_address;
  bool closed = false;
};

struct WriteReq {
  uv_write_t req;
  std::string data;
};

std::string address_of(const sockaddr_storage& ss, std::uint16_t& port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    uv_ip4_name(a, buf, sizeof buf);
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    uv_ip6_name(a, buf, sizeof buf);
    port = ntohs(a->sin6_port);
  }
  return buf;
}

// One connection: socket <-> TLS filter <-> engine. Never looks inside the bytes.
struct Conn : std::enable_shared_from_this<Conn> {
  Runtime::Impl* rt = nullptr;
  Listener* listener = nullptr;  // null for outbound connections
  uv_tcp_t tcp;
  uv_timer_t timer;
  std::unique_ptr<Handler> handler;
  std::unique_ptr<TlsFilter> tls;
  std::shared_ptr<TlsServerContext> server_tls;  // accepted: for implicit TLS and StartTls
  std::shared_ptr<TlsClientContext> client_tls;  // outbound
  std::string server_name;                       // outbound: SNI and the name to verify
  std::size_t max_output = 1 << 20;
  std::string peer;
  std::size_t queued = 0;  // bytes handed to uv_write and not yet written
  bool reading = false;
  bool write_now = true;  // send_raw may write synchronously (false in drive()'s last round)
  bool closing = false;
  bool close_after_flush = false;
  bool notified = false;     // the TLS close_notify was sent
  bool established = false;  // outbound: connected (Kick and closed() apply from here on)
  std::string close_reason;  // outbound: why it closed, for closed()
  std::optional<std::uint64_t> phase;  // the engine's Deadline phase, and when it was first seen
  std::uint64_t phase_start = 0;       // loop time, ms
  std::function<void(Status)> on_connected;
  std::function<void(std::string)> on_closed_cb;
  int open_handles = 2;

  void start() {
    uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp), on_alloc, on_read);
    reading = true;
    drive();
  }

  static void on_alloc(uv_handle_t* h, std::size_t, uv_buf_t* b) {
    auto* c = static_cast<Conn*>(h->data);
    *b = uv_buf_init(c->rt->read_buf, sizeof c->rt->read_buf);
  }

  static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t*) {
    auto* c = static_cast<Conn*>(s->data);
    auto self = c->shared_from_this();
    if (n == UV_EOF) {
      c->handler->receive_eof();
    } else if (n < 0) {
      return c->close(uv_strerror(static_cast<int>(n)));
    } else if (n > 0) {
      std::string_view bytes(c->rt->read_buf, static_cast<std::size_t>(n));
      if (c->tls) {
        bool was_done = c->tls->handshake_done();
        if (!c->tls->feed(bytes)) return c->close("TLS: " + c->tls->error());  // handshake or record failure
        if (!was_done && c->tls->handshake_done()) c->handler->tls_established(c->tls->info());
        std::string plain;
        bool open = c->tls->read(plain);
        if (!plain.empty()) c->handler->receive(plain);
        if (!open) c->handler->receive_eof();
        if (c->tls->failed()) return c->close("TLS: " + c->tls->error());
      } else {
        c->handler->receive(bytes);
      }
    }
    c->drive();
  }

  void send_raw(std::string data) {
    if (data.empty() || closing) return;
    // Nothing queued ahead: write now. What the socket takes leaves without a write request,
    // which libuv would finish by re-arming the socket's poll (an epoll_ctl for every reply).
    // Not in drive()'s last round: its write request's completion drives again, after the
    // loop has served the other connections.
    if (queued == 0 && write_now) {
      uv_buf_t now = uv_buf_init(data.data(), static_cast<unsigned>(data.size()));
      int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp), &now, 1);
      if (n == static_cast<int>(data.size())) return;
      if (n > 0) {
        data.erase(0, static_cast<std::size_t>(n));
      } else if (n != UV_EAGAIN) {
        return close(uv_strerror(n));
      }
    }
    auto* w = new WriteReq;
    w->data = std::move(data);
    w->req.data = this;
    queued += w->data.size();
    uv_buf_t b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp), &b, 1, on_written);
    if (rc != 0) {
      queued -= w->data.size();
      delete w;
      close(uv_strerror(rc));
    }
  }

  static void on_written(uv_write_t* req, int status) {
    auto* w = reinterpret_cast<WriteReq*>(req);
    auto* c = static_cast<Conn*>(req->data);
    c->queued -= w->data.size();
    delete w;
    if (c->closing) return;
    if (status < 0) return c->close(uv_strerror(status));
    c->drive();  // maybe resume reading, or finish a close
  }

  // Moves output, acts on events, and decides whether to read.
  void drive() {
    if (closing) return;
    auto self = shared_from_this();
    constexpr int kRounds = 64;
    for (int round = 0; round < kRounds; ++round) {
      write_now = round + 1 < kRounds;
      bool progress = false;
      // Engine output. While a TLS handshake runs it waits (implicit TLS: the greeting), and
      // while the socket is behind (backpressure: an engine that makes its output as it is
      // taken, such as POP3's RETR, is not drained into write buffers without bound).
      std::string_view out = handler->pending_output();
      if (!out.empty() && !(tls && !tls->handshake_done()) && queued < max_output) {
        if (tls) {
          if (!tls->write(out)) return close("TLS: " + tls->error());
        } else {
          send_raw(std::string(out));
        }
        handler->consume_output(out.size());
        progress = true;
      }
      if (tls) send_raw(tls->take_ciphertext());
      // Events only once every byte before them left the engine (StartTls: plaintext first);
      // output made as the last was taken is pulled first, up to the backpressure limit.
      if (!handler->pending_output().empty() && !(tls && !tls->handshake_done())) {
        if (progress) continue;
        break;
      }
      while (auto ev = handler->next_event()) {
        progress = true;
        if (auto* st = std::get_if<proto::StartTls>(&*ev)) {
          if (tls || (!server_tls && !client_tls)) return close("STARTTLS without a TLS context");
          tls = server_tls ? TlsFilter::server(server_tls) : TlsFilter::client(client_tls, server_name);
          // RFC 3207 4.2: bytes that came after STARTTLS are the start of the handshake.
          if (!st->trailing.empty() && !tls->feed(st->trailing)) return close("TLS: " + tls->error());
          send_raw(tls->take_ciphertext());
          if (tls->handshake_done()) handler->tls_established(tls->info());
        } else {
          close_after_flush = true;
        }
      }
      if (!progress) break;
    }
    write_now = true;
    if (close_after_flush) {
      if (tls && !notified) {  // once: every write completion comes back here
        notified = true;
        tls->close_notify();
        send_raw(tls->take_ciphertext());
      }
      if (queued == 0) return close();
      if (reading) uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp)), reading = false;
      return;
    }
    // A TLS handshake always reads (the engine waits for tls_established meanwhile).
    bool handshaking = tls && !tls->handshake_done();
    bool want = handshaking || (handler->wants_read() && queued < max_output);
    if (want && !reading) {
      uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp), on_alloc, on_read);
      reading = true;
    } else if (!want && reading) {
      uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp));
      reading = false;
    }
    auto ms = static_cast<std::uint64_t>(handler->timeout().count());
    // The phase's deadline, if sooner (cmail/proto/transport.h: Deadline): its clock is not
    // restarted by the bytes that arrive, so a trickling peer still meets it.
    const proto::Deadline d = handler->deadline();
    const std::uint64_t now = uv_now(&rt->loop);
    if (phase != d.phase) phase = d.phase, phase_start = now;
    if (d.budget.count() > 0) {
      const auto end = phase_start + static_cast<std::uint64_t>(d.budget.count());
      ms = std::min<std::uint64_t>(ms, end > now ? end - now : 1);
    }
    uv_timer_start(&timer, on_timer, ms ? ms : 1, 0);
  }

  static void on_timer(uv_timer_t* t) {
    auto* c = static_cast<Conn*>(t->data);
    if (c->closing) return;
    c->handler->timed_out();
    c->drive();
    if (!c->closing && !c->close_after_flush) c->close();  // an engine that ignores its timeout
  }

  void close(std::string reason = {}) {
    if (closing) return;
    closing = true;
    close_reason = std::move(reason);
    uv_timer_stop(&timer);
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp), on_closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), on_closed);
  }

  static void on_closed(uv_handle_t* h) {
    auto* c = static_cast<Conn*>(h->data);
    if (--c->open_handles > 0) return;
    if (Listener* l = c->listener) {
      if (--l->per_address[c->peer] == 0) l->per_address.erase(c->peer);
      --l->count;
    } else if (c->established && c->on_closed_cb) {
      auto cb = std::move(c->on_closed_cb);
      cb(c->close_reason);
    }
    Runtime::Impl* rt = c->rt;
    rt->conns.erase(c);  // frees the Conn (weak Kicks now do nothing)
    rt->finish_if_done();
  }
};

void on_connection(uv_stream_t* server, int status) {
  auto* l = static_cast<Listener*>(server->data);
  if (status < 0 || l->closed) return;
  auto c = std::make_shared<Conn>();
  c->rt = l->rt;
  c->listener = l;
  c->server_tls = l->options.tls;
  c->max_output = l->options.max_output_buffer;
  uv_tcp_init(&l->rt->loop, &c->tcp);
  uv_timer_init(&l->rt->loop, &c->timer);
  c->tcp.data = c.get();
  c->timer.data = c.get();
  l->rt->conns[c.get()] = c;
  ++l->count;
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    c->peer = "?";
    ++l->per_address[c->peer];
    return c->close();
  }
  sockaddr_storage ss{};
  int len = sizeof ss;
  uv_tcp_getpeername(&c->tcp, reinterpret_cast<sockaddr*>(&ss), &len);
  proto::PeerInfo peer;
  peer.address = address_of(ss, peer.port);
  peer.name = peer.address;
  c->peer = peer.address;
  std::size_t& from_here = ++l->per_address[c->peer];
  // Over a limit: accept and close at once, so nothing waits in the backlog
  // (docs/compatibility.md#daemons-connection-limits).
  if (l->count > l->options.max_connections || from_here > l->options.max_per_address) return c->close();
  uv_tcp_nodelay(&c->tcp, 1);
  std::weak_ptr<Conn> weak = c;
  c->handler = l->factory(peer, [weak] {
    if (auto s = weak.lock()) s->drive();
  });
  if (!c->handler) return c->close();
  if (l->options.implicit_tls) {
    if (!l->options.tls) return c->close();
    c->tls = TlsFilter::server(l->options.tls);
  }
  c->start();
}

void on_async(uv_async_t* a) {
  auto* rt = static_cast<Runtime::Impl*>(a->data);
  std::vector<std::function<void()>> work;
  {
    std::lock_guard lock(rt->posted->mu);
    work.swap(rt->posted->work);
  }
  for (auto& fn : work) fn();
}

}  // namespace

void Runtime::Impl::finish_if_done() {
  if (!shutting_down || !conns.empty() || finished) return;
  finished = true;
  uv_timer_stop(&grace_timer);
  {
    std::lock_guard lock(posted->mu);
    posted->async = nullptr;  // from now on post() drops its work
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&async), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&grace_timer), nullptr);
  // Timers not yet fired: their work is dropped, as late posts are (nobody is left to use it).
  while (!delayed.empty()) close_delayed(delayed.begin()->first);
  if (signals) {
    uv_close(reinterpret_cast<uv_handle_t*>(&sigterm), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&sigint), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&sighup), nullptr);
  }
}

void Runtime::Impl::begin_shutdown(std::chrono::milliseconds g) {
  if (shutting_down) return;
  shutting_down = true;
  std::vector<std::function<void()>> hooks;
  hooks.swap(at_shutdown);
  for (auto& fn : hooks) fn();
  for (auto& l : listeners) {
    if (!l->closed) {
      l->closed = true;
      uv_close(reinterpret_cast<uv_handle_t*>(&l->tcp), nullptr);
    }
  }
  uv_timer_start(&grace_timer, [](uv_timer_t* t) {
    auto* rt = static_cast<Runtime::Impl*>(t->data);
    std::vector<std::shared_ptr<Conn>> all;
    for (auto& [p, c] : rt->conns) all.push_back(c);
    for (auto& c : all) c->close();
  }, static_cast<std::uint64_t>(g.count()), 0);
  finish_if_done();
}

Runtime::Runtime() : impl_(std::make_unique<Impl>()) {
  // A peer that closes while we write must be an error on that connection, not the process's
  // death: the runtime owns the process's sockets, so it ignores SIGPIPE (documented in net.h).
  std::signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&impl_->loop);
  uv_async_init(&impl_->loop, &impl_->async, on_async);
  impl_->async.data = impl_.get();
  impl_->posted->async = &impl_->async;
  uv_timer_init(&impl_->loop, &impl_->grace_timer);
  impl_->grace_timer.data = impl_.get();
}

Runtime::~Runtime() {
  // Close whatever is left and let the callbacks run, then free the loop.
  impl_->begin_shutdown(std::chrono::milliseconds(0));
  std::vector<std::shared_ptr<Conn>> all;
  for (auto& [p, c] : impl_->conns) all.push_back(c);
  for (auto& c : all) c->close();
  uv_run(&impl_->loop, UV_RUN_DEFAULT);
  uv_loop_close(&impl_->loop);
}

Result<int> Runtime::listen(const ListenerOptions& options, Factory factory) {
  auto l = std::make_unique<Listener>();
  l->rt = impl_.get();
  l->options = options;
  l->factory = std::move(factory);
  std::string host = options.host == "*" ? "0.0.0.0" : options.host;
  sockaddr_storage ss{};
  unsigned flags = 0;
  if (uv_ip4_addr(host.c_str(), options.port, reinterpret_cast<sockaddr_in*>(&ss)) != 0) {
    if (uv_ip6_addr(host.c_str(), options.port, reinterpret_cast<sockaddr_in6*>(&ss)) == 0) {
      flags = UV_TCP_IPV6ONLY;
    } else {
      // A host name: the first address it resolves to (at startup, blocking is fine).
      addrinfo hints{}, *res = nullptr;
      hints.ai_socktype = SOCK_STREAM;
      hints.ai_flags = AI_PASSIVE;
      if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || !res)
        return Status::invalid_argument("cannot resolve listen address '" + options.host + "'");
      std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
      freeaddrinfo(res);
      if (ss.ss_family == AF_INET) reinterpret_cast<sockaddr_in*>(&ss)->sin_port = htons(options.port);
      else reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = htons(options.port), flags = UV_TCP_IPV6ONLY;
    }
  }
  if (options.implicit_tls && !options.tls)
    return Status::invalid_argument("an implicit-TLS listener needs a certificate and key");
  uv_tcp_init(&impl_->loop, &l->tcp);
  l->tcp.data = l.get();
  int rc = uv_tcp_bind(&l->tcp, reinterpret_cast<sockaddr*>(&ss), flags);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&l->tcp), 511, on_connection);
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&l->tcp), nullptr);
    l->closed = true;
    impl_->listeners.push_back(std::move(l));  // freed with the runtime, after the close callback
    return Status::io_error("cannot listen on " + options.host + " port " + std::to_string(options.port) + ": " +
                            uv_strerror(rc));
  }
  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(&l->tcp, reinterpret_cast<sockaddr*>(&bound), &len);
  address_of(bound, l->port);
  impl_->listeners.push_back(std::move(l));
  return static_cast<int>(impl_->listeners.size() - 1);
}

namespace {

struct ConnectReq {
  uv_connect_t req;
  std::shared_ptr<Conn> conn;
  bool implicit_tls = false;
};

// Fills `ss` from a numeric address; false if it is not one.
bool numeric_address(const std::string& host, std::uint16_t port, sockaddr_storage& ss) {
  std::string h = host.size() > 2 && host.front() == '[' && host.back() == ']' ? host.substr(1, host.size() - 2) : host;
  return uv_ip4_addr(h.c_str(), port, reinterpret_cast<sockaddr_in*>(&ss)) == 0 ||
         uv_ip6_addr(h.c_str(), port, reinterpret_cast<sockaddr_in6*>(&ss)) == 0;
}

void fail_connect(const std::shared_ptr<Conn>& c, Status st) {
  if (auto cb = std::move(c->on_connected)) cb(std::move(st));
  c->close();
}

void on_connect(uv_connect_t* req, int status) {
  std::unique_ptr<ConnectReq> r(static_cast<ConnectReq*>(req->data));
  std::shared_ptr<Conn> c = r->conn;
  if (!c->on_connected) return;  // already failed (timeout)
  if (status < 0 || c->closing)
    return fail_connect(c, Status::io_error("connect to " + c->peer + ": " + uv_strerror(status)));
  uv_tcp_nodelay(&c->tcp, 1);
  c->established = true;
  if (r->implicit_tls) c->tls = TlsFilter::client(c->client_tls, c->server_name);  // sends the ClientHello
  auto cb = std::move(c->on_connected);
  cb(Status());
  if (!c->closing) c->start();
}

}  // namespace

Kick Runtime::connect(const ConnectOptions& o, std::unique_ptr<Handler> handler,
                      std::function<void(Status)> connected, std::function<void(std::string)> closed) {
  auto c = std::make_shared<Conn>();
  c->rt = impl_.get();
  c->handler = std::move(handler);
  c->client_tls = o.tls;
  c->server_name = o.server_name;
  c->max_output = o.max_output_buffer;
  c->peer = o.address + " port " + std::to_string(o.port);
  c->on_connected = std::move(connected);
  c->on_closed_cb = std::move(closed);
  uv_tcp_init(&impl_->loop, &c->tcp);
  uv_timer_init(&impl_->loop, &c->timer);
  c->tcp.data = c.get();
  c->timer.data = c.get();
  impl_->conns[c.get()] = c;
  std::weak_ptr<Conn> weak = c;
  Kick kick = [weak] {
    if (auto s = weak.lock(); s && s->established && !s->closing) s->drive();
  };
  // Failures are reported from the loop, never from inside this call.
  auto later = [this, weak](Status st) {
    post([weak, st] {
      if (auto s = weak.lock()) fail_connect(s, st);
    });
  };
  sockaddr_storage to{}, from{};
  if (impl_->shutting_down) {
    later(Status::io_error("shutting down"));
    return kick;
  }
  if (!numeric_address(o.address, o.port, to)) {
    later(Status::invalid_argument("not a numeric address: " + o.address));
    return kick;
  }
  if (o.implicit_tls && !o.tls) {
    later(Status::invalid_argument("implicit TLS needs a TLS client context"));
    return kick;
  }
  if (!o.bind_address.empty()) {
    // dispatchd's `bind` (docs/compatibility.md#dispatchd-bind): the local address must be of the
    // target's family, else the target is skipped.
    if (!numeric_address(o.bind_address, 0, from) || from.ss_family != to.ss_family) {
      later(Status::invalid_argument("cannot connect to " + o.address + " from " + o.bind_address));
      return kick;
    }
    if (int rc = uv_tcp_bind(&c->tcp, reinterpret_cast<sockaddr*>(&from), 0); rc != 0) {
      later(Status::io_error("cannot bind to " + o.bind_address + ": " + uv_strerror(rc)));
      return kick;
    }
  }
  auto* req = new ConnectReq;
  req->conn = c;
  req->implicit_tls = o.implicit_tls;
  req->req.data = req;
  if (int rc = uv_tcp_connect(&req->req, &c->tcp, reinterpret_cast<sockaddr*>(&to), on_connect); rc != 0) {
    delete req;
    later(Status::io_error("connect to " + c->peer + ": " + uv_strerror(rc)));
    return kick;
  }
  // The engine's own timeouts apply once connected (drive() re-arms the timer).
  uv_timer_start(&c->timer, [](uv_timer_t* t) {
    auto* conn = static_cast<Conn*>(t->data);
    if (conn->established || conn->closing) return;
    fail_connect(conn->shared_from_this(), Status::io_error("connect to " + conn->peer + ": timed out"));
  }, static_cast<std::uint64_t>(std::max<std::int64_t>(o.connect_timeout.count(), 1)), 0);
  return kick;
}

std::uint16_t Runtime::port(int listener) const { return impl_->listeners.at(static_cast<std::size_t>(listener))->port; }

void Runtime::run() { uv_run(&impl_->loop, UV_RUN_DEFAULT); }

namespace {
void post_to(const std::shared_ptr<Runtime::Impl::Posted>& p, std::function<void()> fn) {
  std::lock_guard lock(p->mu);
  if (!p->async) return;  // the runtime is gone or closing
  p->work.push_back(std::move(fn));
  uv_async_send(p->async);
}
}  // namespace

void Runtime::post(std::function<void()> fn) { post_to(impl_->posted, std::move(fn)); }

void Runtime::Impl::start_delayed(std::chrono::milliseconds after, std::function<void()> fn) {
  if (finished) return;
  auto owned = std::make_unique<Delayed>();
  Delayed* d = owned.get();
  d->fn = std::move(fn);
  d->rt = this;
  uv_timer_init(&loop, &d->timer);
  d->timer.data = d;
  delayed.emplace(d, std::move(owned));
  // The loop's clock is the time its iteration began, in whole milliseconds: bring it up to
  // date and add the millisecond it may lag, so that the work never runs early.
  uv_update_time(&loop);
  uv_timer_start(&d->timer, [](uv_timer_t* t) {
    auto* dl = static_cast<Delayed*>(t->data);
    std::function<void()> work = std::move(dl->fn);
    dl->rt->close_delayed(dl);
    work();
  }, static_cast<std::uint64_t>(std::max<std::int64_t>(after.count(), 0)) + 1, 0);
}

void Runtime::Impl::close_delayed(Delayed* d) {
  auto it = delayed.find(d);
  if (it == delayed.end()) return;
  Delayed* raw = it->second.release();
  delayed.erase(it);
  uv_timer_stop(&raw->timer);
  uv_close(reinterpret_cast<uv_handle_t*>(&raw->timer), [](uv_handle_t* h) { delete static_cast<Delayed*>(h->data); });
}

void Runtime::post_after(std::chrono::milliseconds after, std::function<void()> fn) {
  Impl* rt = impl_.get();
  // Through the post queue, so that any thread may call it and a late call is dropped.
  post([rt, after, fn = std::move(fn)]() mutable { rt->start_delayed(after, std::move(fn)); });
}

void Runtime::shutdown(std::chrono::milliseconds grace) {
  Impl* rt = impl_.get();
  post([rt, grace] { rt->begin_shutdown(grace); });
}

void Runtime::handle_signals(std::chrono::milliseconds grace, std::function<void()> on_hup) {
  Impl* rt = impl_.get();
  rt->grace = grace;
  rt->on_hup = std::move(on_hup);
  rt->signals = true;
  for (uv_signal_t* s : {&rt->sigterm, &rt->sigint, &rt->sighup}) {
    uv_signal_init(&rt->loop, s);
    s->data = rt;
  }
  auto stop = [](uv_signal_t* s, int) {
    auto* r = static_cast<Impl*>(s->data);
    r->begin_shutdown(r->grace);
  };
  uv_signal_start(&rt->sigterm, stop, SIGTERM);
  uv_signal_start(&rt->sigint, stop, SIGINT);
  uv_signal_start(&rt->sighup, [](uv_signal_t* s, int) {
    auto* r = static_cast<Impl*>(s->data);
    if (r->on_hup) r->on_hup();
  }, SIGHUP);
}

void Runtime::at_shutdown(std::function<void()> fn) {
  if (impl_->shutting_down) return fn();
  impl_->at_shutdown.push_back(std::move(fn));
}

uv_loop_t* LoopAccess::loop(Runtime& rt) { return &rt.impl().loop; }

std::size_t Runtime::connections() const { return impl_->conns.size(); }

namespace {
struct Work {
  uv_work_t req;
  std::function<void()> fn;
};
}  // namespace

void Runtime::run_blocking(std::function<void()> fn) {
  auto* w = new Work;
  w->fn = std::move(fn);
  w->req.data = w;
  uv_queue_work(&impl_->loop, &w->req, [](uv_work_t* r) { static_cast<Work*>(r->data)->fn(); },
                [](uv_work_t* r, int) { delete static_cast<Work*>(r->data); });
}

proto::Executor Runtime::executor() {
  // run_blocking is only called on the loop thread (from engine callbacks), while the
  // runtime is alive; post may come from any thread at any time, hence the shared queue.
  std::shared_ptr<Impl::Posted> p = impl_->posted;
  Impl* rt = impl_.get();
  return proto::Executor{[this](std::function<void()> fn) { run_blocking(std::move(fn)); },
                         [p](std::function<void()> fn) { post_to(p, std::move(fn)); },
                         [p, rt](std::chrono::milliseconds after, std::function<void()> fn) {
                           // The timer starts on the loop; work posted runs only while rt lives.
                           post_to(p, [rt, after, fn = std::move(fn)]() mutable {
                             rt->start_delayed(after, std::move(fn));
                           });
                         }};
}

}  // namespace cmail::net
