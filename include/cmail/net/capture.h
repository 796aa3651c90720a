// cmail/net/capture.h: outbound mail kept instead of sent (capture mode), with faults on purpose.
//
// A CaptureSink is an SMTP server on a loopback port of a Runtime that keeps every message it
// is given, in memory, and applies the faults it is given (cmail/backends/faults.h) at chosen
// phases for chosen recipients: a 4xx to see a delivery deferred and retried, a 5xx to see it
// bounce, a dropped connection, a slow reply. With capture_zone() as
// the Dispatcher's resolver table (every domain without an entry of its own has no MX and the
// address 127.0.0.1) and the sink's port as its only port, the Dispatcher delivers all outbound
// mail to the sink through its real SMTP client: what a test sees is what would have left the
// machine, envelope and octets as sent, and retries, bounces and the queue's failure records
// happen as they would.
//
// Thread-safety: start() on the loop thread (before or during Runtime::run()); messages(),
// wait(), clear(), add_fault(), clear_faults() and on_message() from any thread (one mutex);
// the on_message callback runs on the loop thread, without the mutex held.
// Ownership: start() returns a shared CaptureSink; its connections hold it, so it may be
// dropped by its owner at any time. The Runtime must outlive the listener.
#pragma once

#include <cmail/backends/faults.h>
#include <cmail/export.h>
#include <cmail/net/resolver.h>
#include <cmail/status.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cmail::net {

class Runtime;

struct CapturedMessage {
  std::uint64_t id = 0;        // 1, 2, ... in arrival order
  std::string helo;            // the client's EHLO or HELO name
  std::string from;            // the reverse path; "" for <>
  std::vector<std::string> to;  // the recipients accepted
  std::string data;            // the message as received (dot-unstuffed, CRLF line ends)
  std::int64_t received = 0;   // Unix time
};

struct CaptureOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0: a free one (port())
  std::string hostname = "capture.invalid";  // its greeting
  std::size_t max_messages = 10000;          // beyond it the oldest is dropped
  std::uint64_t max_message_size = 50 * 1024 * 1024;
};

class CMAIL_EXPORT CaptureSink {
 public:
  // Listens (Runtime::listen) and serves. IoError for an address in use.
  static Result<std::shared_ptr<CaptureSink>> start(Runtime& runtime, CaptureOptions options = {});
  ~CaptureSink();
  CaptureSink(const CaptureSink&) = delete;
  CaptureSink& operator=(const CaptureSink&) = delete;

  std::uint16_t port() const;
  std::vector<CapturedMessage> messages() const;
  // Waits until at least `count` messages are kept or `timeout` passed; returns how many are.
  std::size_t wait(std::size_t count, std::chrono::milliseconds timeout) const;
  void clear();
  // See SmtpFaults::add.
  Status add_fault(backends::SmtpFault fault);
  void clear_faults();
  void on_message(std::function<void(const CapturedMessage&)> fn);

  struct State;  // shared with its connections (libcmail/net/capture.cc)

 private:
  explicit CaptureSink(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

// The resolver table for capture: no entries, every other name without MX and at 127.0.0.1.
// Entries added to it (a domain's MX, NXDOMAIN for a name) still answer as given.
CMAIL_EXPORT StaticZone capture_zone();

}  // namespace cmail::net
