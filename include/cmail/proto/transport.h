// cmail/proto/transport.h: what every protocol engine says to whoever moves its bytes.
//
// Engines (smtp::Server, smtp::Client, pop3::Server, imap::Server) are sans-I/O state machines
// with the same verbs (STYLE.md part II b):
//
//   void receive(std::string_view bytes);    // any split; buffers partial lines up to limits
//   void receive_eof();                      // the peer closed its side
//   std::string_view pending_output() const; // bytes to send; valid until the next non-const call
//   void consume_output(std::size_t n);      // n bytes of pending_output() were sent
//   std::optional<Event> next_event();       // StartTls or Close; poll until empty
//   void tls_established(const TlsInfo&);    // the TLS handshake asked for by StartTls finished
//   void timed_out();                        // the wait given by timeout() passed
//   bool wants_read() const;                 // false while a verdict or TLS is pending
//   std::chrono::milliseconds timeout() const;  // how long to wait for the peer now
//   Deadline deadline() const;               // optional: a bound on the current phase as a whole
//
// The transport (the runtime's connection driver, or a test) calls receive() with what it
// read, sends pending_output(), then acts on events: for StartTls it first sends every byte of
// pending output in plaintext, then feeds `trailing` into the TLS handshake as ciphertext
// (never back into the engine: STARTTLS command injection, RFC 3207 section 4.2), and calls
// tls_established() when the handshake is done. For Close it sends the pending output and
// closes. The Engine concept below checks the verbs at compile time.
//
// Thread-safety: these are value types.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <optional>
#include <string>
#include <cstdint>
#include <functional>
#include <string_view>
#include <utility>
#include <variant>

namespace cmail::proto {

// What the TLS layer tells the engine after a handshake (for Received headers and policy).
struct TlsInfo {
  // The fields that every transport knows, in order (also as {version, cipher, bits}), and the
  // channel binding when it has one ({version, cipher, bits, tls_exporter}).
  TlsInfo(std::string v = {}, std::string c = {}, int b = 0, std::string exporter = {})
      : version(std::move(v)), cipher(std::move(c)), bits(b), tls_exporter(std::move(exporter)) {}
  std::string version;  // "TLSv1.2"
  std::string cipher;   // IANA name, e.g. "TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384"
  int bits = 0;
  // Client side with optional verification (net::TlsClientOptions::verify_optional): why the
  // server's certificate would have been refused; "" when it is valid for the name.
  std::string verify_error = {};
  // The tls-exporter channel binding (RFC 9266 2): 32 octets exported with the label
  // "EXPORTER-Channel-Binding" and no context (RFC 5705). Empty when the connection cannot
  // give one safely: TLS 1.2 without the extended master secret (RFC 9266 2, RFC 7627).
  // For SCRAM-SHA-256-PLUS (cmail/proto/scram.h).
  std::string tls_exporter = {};
};

// Who is on the other end of an accepted connection (for Received headers, logs, policy).
struct PeerInfo {
  std::string address;  // numeric, e.g. "192.0.2.1" or "2001:db8::1"
  std::uint16_t port = 0;
  std::string name;     // reverse DNS name, or the address when unknown
};

// How a Session hands blocking work off and gets back to its engine's thread: run_blocking runs a
// function on a worker thread; post runs one on the thread that owns the engine (from any thread);
// post_after does the same once a time has passed (a timer: nothing waits meanwhile). An
// Executor without post_after (an embedder's from before it existed) may be given: Sessions then
// post at once instead of waiting.
struct Executor {
  std::function<void(std::function<void()>)> run_blocking;  // on a worker thread
  std::function<void(std::function<void()>)> post;          // on the connection's thread
  std::function<void(std::chrono::milliseconds, std::function<void()>)> post_after = {};  // later, likewise
};

// Start TLS now. `trailing` holds every byte received after the command that asked for it;
// they belong to the TLS handshake.
struct StartTls {
  std::string trailing;
};

// Send what is pending, then close the connection.
struct Close {};

using Event = std::variant<StartTls, Close>;

// A bound on one phase of a conversation as a whole (a command line, a DATA phase), beside
// timeout()'s bound on silence: a peer that sends one byte before each timeout is still bound
// by it. The transport starts a phase's clock when it first sees its `phase`, and calls
// timed_out() once `budget` has passed since, or after timeout() of silence, whichever is
// first. A zero budget is no bound. Engines without deadline() have no phase bounds.
struct Deadline {
  std::uint64_t phase = 0;
  std::chrono::milliseconds budget{0};
  bool operator==(const Deadline&) const = default;
};

template <typename E>
concept Engine = requires(E e, const E ce, std::string_view bytes, std::size_t n,
                          const TlsInfo& info) {
  e.receive(bytes);
  e.receive_eof();
  { ce.pending_output() } -> std::convertible_to<std::string_view>;
  e.consume_output(n);
  { e.next_event() } -> std::same_as<std::optional<Event>>;
  e.tls_established(info);
  e.timed_out();
  { ce.wants_read() } -> std::same_as<bool>;
  { ce.timeout() } -> std::same_as<std::chrono::milliseconds>;
};

}  // namespace cmail::proto
