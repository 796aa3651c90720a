// cmail/net/runtime.h: the runtime that serves engines on real sockets (libuv, TLS via mbedTLS).
//
// A Runtime owns one libuv loop. Listeners accept TCP connections (IPv4 and IPv6; implicit TLS
// or plain with STARTTLS available) and give each one a Handler, a type-erased engine (any
// type satisfying cmail::Engine, cmail/proto/transport.h); connect() does the same for outbound
// connections (client engines, with client TLS). A connection driver moves bytes between
// the socket, the TLS filter and the engine, writes pending output, acts on StartTls and
// Close, applies backpressure (stops reading while the engine does not want input or too much
// output is queued) and arms the engine's timeout. It never looks inside protocol bytes.
//
// Asynchronous verdicts: work done on other threads (the store's writer, a password check)
// comes back with post(), which runs a function on the loop thread; after completing a verdict
// there, call the connection's Kick (given to the factory) so that its output is flushed and
// reading resumes.
//
// Creating a Runtime sets SIGPIPE to ignored for the process (a closed peer is an error on
// that connection, not a signal).
//
// Thread-safety: post() and shutdown() may be called from any thread; everything else on the
// thread that calls run(). Ownership: the Runtime owns listeners and connections; a Handler
// lives until its connection is closed.
#pragma once

#include <cmail/export.h>
#include <cmail/log_sink.h>
#include <cmail/net/tls.h>
#include <cmail/proto/transport.h>
#include <cmail/status.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace cmail::net {

// What a service's listener bound to (printed by the daemons: "smtp 127.0.0.1:2525").
struct BoundListener {
  std::string kind;  // "smtp", "submission", "smtps", "pop3", "pop3s"
  std::string host;
  std::uint16_t port = 0;
};


// The verbs of an engine, type-erased.
class Handler {
 public:
  virtual ~Handler() = default;
  virtual void receive(std::string_view bytes) = 0;
  virtual void receive_eof() = 0;
  virtual std::string_view pending_output() const = 0;
  virtual void consume_output(std::size_t n) = 0;
  virtual std::optional<proto::Event> next_event() = 0;
  virtual void tls_established(const proto::TlsInfo& info) = 0;
  virtual void timed_out() = 0;
  virtual bool wants_read() const = 0;
  virtual std::chrono::milliseconds timeout() const = 0;
  virtual proto::Deadline deadline() const { return {}; }
};

// Puts an engine (and whatever it needs kept alive, such as its Session) behind Handler.
template <proto::Engine E>
class EngineHandler final : public Handler {
 public:
  EngineHandler(std::shared_ptr<E> engine, std::shared_ptr<void> keep = nullptr)
      : keep_(std::move(keep)), engine_(std::move(engine)) {}
  void receive(std::string_view b) override { engine_->receive(b); }
  void receive_eof() override { engine_->receive_eof(); }
  std::string_view pending_output() const override { return engine_->pending_output(); }
  void consume_output(std::size_t n) override { engine_->consume_output(n); }
  std::optional<proto::Event> next_event() override { return engine_->next_event(); }
  void tls_established(const proto::TlsInfo& i) override { engine_->tls_established(i); }
  void timed_out() override { engine_->timed_out(); }
  bool wants_read() const override { return engine_->wants_read(); }
  std::chrono::milliseconds timeout() const override { return engine_->timeout(); }
  proto::Deadline deadline() const override {
    if constexpr (requires(const E& e) { e.deadline(); }) return engine_->deadline();
    else return {};
  }

 private:
  std::shared_ptr<void> keep_;  // declared first: destroyed after the engine
  std::shared_ptr<E> engine_;
};

struct ListenerOptions {
  std::string host = "127.0.0.1";  // "*" = 0.0.0.0, "::" = all IPv6 (IPV6_V6ONLY)
  std::uint16_t port = 0;          // 0 = an ephemeral port (see Runtime::port())
  bool implicit_tls = false;       // TLS handshake first (SMTPS, POP3S)
  std::shared_ptr<TlsServerContext> tls;  // for implicit TLS and for StartTls events
  std::size_t max_connections = 1000;
  std::size_t max_per_address = 50;
  std::size_t max_output_buffer = 1 << 20;  // stop reading while more is queued
  std::string name;  // for logs, e.g. "smtp"
  // serve_smtp and serve_pop3: where the connect and disconnect lines go (docs/logging.md),
  // with their level (1); empty: not logged. Called on the loop thread.
  LogSink log;
};

// One outbound TCP connection (the dispatcher's SMTP client).
struct ConnectOptions {
  std::string address;       // numeric IPv4 or IPv6
  std::uint16_t port = 25;
  std::string bind_address;  // local address to connect from ("" = any); must be of the same family
  bool implicit_tls = false; // TLS handshake first (SMTPS, RFC 8314)
  std::shared_ptr<TlsClientContext> tls;  // for implicit TLS and the engine's StartTls events
  std::string server_name;   // SNI and the name the certificate must carry when tls verifies
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(30)};
  std::size_t max_output_buffer = 1 << 20;  // stop reading while more is queued
};

// Flushes a connection's output and re-evaluates reading after an asynchronous completion.
// Safe to call after the connection closed (does nothing). Loop thread only.
using Kick = std::function<void()>;
using Factory = std::function<std::unique_ptr<Handler>(const proto::PeerInfo& peer, Kick kick)>;

struct LoopAccess;

class CMAIL_EXPORT Runtime {
 public:
  Runtime();
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Binds and listens; returns the listener's index. Fails with a clear message if the
  // address cannot be bound.
  Result<int> listen(const ListenerOptions& options, Factory factory);
  std::uint16_t port(int listener) const;

  // Connects to options.address and, once connected (and for implicit TLS, while the handshake
  // runs), drives `handler` as the listeners drive theirs. `connected` runs once on the loop
  // thread: OK when the TCP connection stands, else the reason (the handler is then dropped
  // unused). After an OK, `closed` runs once when the connection is gone, with "" after an
  // orderly close and the reason otherwise ("TLS: ...", "connection reset by peer"). The
  // returned Kick flushes the handler's output after work done outside its calls (it does
  // nothing before the connection stands or after it closed). Loop thread.
  Kick connect(const ConnectOptions& options, std::unique_ptr<Handler> handler,
               std::function<void(Status)> connected, std::function<void(std::string)> closed);

  // Runs the loop until stop(), or until shutdown() finished. Loop thread.
  void run();
  // Thread-safe: runs fn on the loop thread soon.
  void post(std::function<void()> fn);
  // Thread-safe: runs fn on the loop thread once `after` has passed (a libuv timer; nothing
  // blocks meanwhile). Work still waiting when the runtime finishes is dropped, not run.
  void post_after(std::chrono::milliseconds after, std::function<void()> fn);
  // Stops accepting, lets connections finish for up to `grace`, then closes the rest and ends
  // run(). Thread-safe.
  void shutdown(std::chrono::milliseconds grace);
  // SIGTERM and SIGINT call shutdown(grace); SIGHUP calls on_hup (may be empty). Loop thread.
  void handle_signals(std::chrono::milliseconds grace, std::function<void()> on_hup);

  // Runs fn on the loop thread when shutdown begins (signal, shutdown() or destruction), once.
  // Components with libuv handles of their own (the resolver, the dispatcher) close them there,
  // so that run() can return. Called at once if shutdown already began. Loop thread.
  void at_shutdown(std::function<void()> fn);

  std::size_t connections() const;
  // For Executor::run_blocking: runs fn on libuv's thread pool.
  void run_blocking(std::function<void()> fn);
  // The Executor sessions need: run_blocking on the pool, post and post_after back to this loop.
  proto::Executor executor();

  struct Impl;  // the libuv loop and what runs on it, private to the runtime

 private:
  friend struct LoopAccess;  // the runtime layer's own components (libcmail/net/loop.h)
  Impl& impl() { return *impl_; }
  std::unique_ptr<Impl> impl_;
};

}  // namespace cmail::net
