// The capture sink: an SMTP server that keeps what it is given. See cmail/net/capture.h.
#include <cmail/net/capture.h>

#include <cmail/net/runtime.h>
#include <cmail/net/serve.h>
#include <cmail/proto/ascii.h>
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
  std::vector<CaptureFault> faults;
  std::function<void(const CapturedMessage&)> on_message;
  std::uint64_t next_id = 1;

  // The reply of the first fault for (phase, recipient), counting it; nullopt for none.
  std::optional<smtp::Reply> fault(CaptureFault::Phase phase, std::string_view recipient) {
    std::lock_guard lock(mu);
    for (auto it = faults.begin(); it != faults.end(); ++it) {
      if (it->phase != phase) continue;
      if (!it->recipient.empty() && proto::ascii_lower(it->recipient) != proto::ascii_lower(recipient)) continue;
      const int code = it->code;
      smtp::Reply r = smtp::reply(code, {code / 100, 0, 0}, it->text);
      if (--it->times == 0) faults.erase(it);
      return r;
    }
    return std::nullopt;
  }

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

// One connection to the sink: accepts everything the faults do not refuse.
class CaptureSession final : public smtp::Session {
 public:
  explicit CaptureSession(std::shared_ptr<CaptureSink::State> state) : state_(std::move(state)) {}

  smtp::Verdict mail(const smtp::SessionInfo& info, const smtp::Path& from, const smtp::MailParams&) override {
    reset();
    if (auto r = state_->fault(CaptureFault::Phase::Mail, "")) return smtp::Verdict::reject(*r);
    message_.helo = info.helo;
    message_.from = from.address();
    return smtp::Verdict::accept();
  }
  smtp::Verdict rcpt(const smtp::SessionInfo&, const smtp::Path& to, const smtp::RcptParams&) override {
    if (auto r = state_->fault(CaptureFault::Phase::Rcpt, to.address())) return smtp::Verdict::reject(*r);
    message_.to.push_back(to.address());
    return smtp::Verdict::accept();
  }
  void data_chunk(std::string_view bytes) override { message_.data.append(bytes); }
  smtp::Verdict data_end(const smtp::SessionInfo&) override {
    for (const std::string& to : message_.to)
      if (auto r = state_->fault(CaptureFault::Phase::Data, to)) return smtp::Verdict::reject(*r);
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
  auto id = serve_smtp(runtime, lo, so, [state](const proto::PeerInfo&, Completion<smtp::Verdict>) {
    return std::make_shared<CaptureSession>(state);
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

Status CaptureSink::add_fault(CaptureFault fault) {
  if (fault.code < 400 || fault.code > 599) return Status::invalid_argument("a fault's code is 400-599");
  if (fault.text.find_first_of("\r\n") != std::string::npos) return Status::invalid_argument("a fault's text is one line");
  std::lock_guard lock(state_->mu);
  if (fault.times > 0) state_->faults.push_back(std::move(fault));
  return Status();
}

void CaptureSink::clear_faults() {
  std::lock_guard lock(state_->mu);
  state_->faults.clear();
}

void CaptureSink::on_message(std::function<void(const CapturedMessage&)> fn) {
  std::lock_guard lock(state_->mu);
  state_->on_message = std::move(fn);
}

StaticZone capture_zone() {
  StaticZone zone;
  zone.otherwise = mail::AddressResult{mail::DnsStatus::Ok, {"127.0.0.1"}, ""};
  return zone;
}

}  // namespace cmail::net
