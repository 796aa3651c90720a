// The capture sink: an SMTP server that keeps what it is given. See cmail/net/capture.h.
#include <cmail/net/capture.h>

#include <cmail/net/runtime.h>
#include <cmail/net/serve.h>
#include <cmail/smtp/server.h>

#include <condition_variable>
#include <ctime>
#include <deque>
#include <mutex>

namespace cmail::net {

struct CaptureSink::State {
  CaptureOptions options;
  std::uint16_t port = 0;
  mutable std::mutex mu;
  mutable std::condition_variable arrived;
  std::deque<CapturedMessage> messages;
  std::shared_ptr<backends::SmtpFaults> faults = std::make_shared<backends::SmtpFaults>();
  std::function<void(const CapturedMessage&)> on_message;
  std::uint64_t next_id = 1;

  void keep(CapturedMessage m) {
    std::function<void(const CapturedMessage&)> fn;
    {
      std::lock_guard lock(mu);
      m.id = next_id++;
      messages.push_back(m);
      while (messages.size() > options.max_messages) messages.pop_front();
      fn = on_message;
    }
    arrived.notify_all();
    if (fn) fn(m);
  }
};

namespace {

// One connection to the sink: accepts everything (the faults are applied around it).
class CaptureSession final : public smtp::Session {
 public:
  explicit CaptureSession(std::shared_ptr<CaptureSink::State> state) : state_(std::move(state)) {}

  smtp::Verdict mail(const smtp::SessionInfo& info, const smtp::Path& from, const smtp::MailParams&) override {
    reset();
    message_.helo = info.helo;
    message_.from = from.address();
    return smtp::Verdict::accept();
  }
  smtp::Verdict rcpt(const smtp::SessionInfo&, const smtp::Path& to, const smtp::RcptParams&) override {
    message_.to.push_back(to.address());
    return smtp::Verdict::accept();
  }
  void data_chunk(std::string_view bytes) override { message_.data.append(bytes); }
  smtp::Verdict data_end(const smtp::SessionInfo&) override {
    message_.received = static_cast<std::int64_t>(std::time(nullptr));
    state_->keep(std::move(message_));
    message_ = {};
    return smtp::Verdict::accept("Captured");
  }
  void reset() override { message_ = {}; }

 private:
  std::shared_ptr<CaptureSink::State> state_;
  CapturedMessage message_;
};

}  // namespace

Result<std::shared_ptr<CaptureSink>> CaptureSink::start(Runtime& runtime, CaptureOptions options) {
  auto state = std::make_shared<State>();
  state->options = std::move(options);
  ListenerOptions lo;
  lo.host = state->options.host;
  lo.port = state->options.port;
  lo.name = "capture";
  smtp::ServerOptions so;
  so.hostname = state->options.hostname;
  so.max_message_size = state->options.max_message_size;
  auto id = serve_smtp(runtime, lo, so, [state, ex = runtime.executor()](const proto::PeerInfo&,
                                                                       Completion<smtp::Verdict> done) {
    auto session = std::make_shared<backends::FaultySmtpSession>(state->faults, ex);
    session->set_inner(std::make_unique<CaptureSession>(state));
    session->set_completion(std::move(done));
    return session;
  });
  if (!id) return id.error();
  state->port = runtime.port(*id);
  return std::shared_ptr<CaptureSink>(new CaptureSink(std::move(state)));
}

CaptureSink::~CaptureSink() = default;

std::uint16_t CaptureSink::port() const { return state_->port; }

std::vector<CapturedMessage> CaptureSink::messages() const {
  std::lock_guard lock(state_->mu);
  return {state_->messages.begin(), state_->messages.end()};
}

std::size_t CaptureSink::wait(std::size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(state_->mu);
  state_->arrived.wait_for(lock, timeout, [&] { return state_->messages.size() >= count; });
  return state_->messages.size();
}

void CaptureSink::clear() {
  std::lock_guard lock(state_->mu);
  state_->messages.clear();
}

Status CaptureSink::add_fault(backends::SmtpFault fault) { return state_->faults->add(std::move(fault)); }

void CaptureSink::clear_faults() { state_->faults->clear(); }

void CaptureSink::on_message(std::function<void(const CapturedMessage&)> fn) {
  std::lock_guard lock(state_->mu);
  state_->on_message = std::move(fn);
}

StaticZone capture_zone() {
  StaticZone zone;
  zone.otherwise = mail::AddressResult{mail::DnsStatus::Ok, {"127.0.0.1"}, "", false};
  return zone;
}

}  // namespace cmail::net
