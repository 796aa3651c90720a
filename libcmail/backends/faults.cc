// SMTP faults on purpose. See cmail/backends/faults.h.
#include <cmail/backends/faults.h>

#include <cmail/proto/ascii.h>

namespace cmail::backends {

namespace {

constexpr std::chrono::milliseconds kMaxDelay{600'000};

bool matches(const SmtpFault& f, std::string_view recipient) {
  return f.recipient.empty() || proto::ascii_lower(f.recipient) == proto::ascii_lower(recipient);
}

}  // namespace

Status SmtpFaults::add(SmtpFault fault) {
  if (fault.action == SmtpFault::Action::Reply && (fault.code < 400 || fault.code > 599))
    return Status::invalid_argument("a fault's reply code is 400-599");
  if (fault.text.find_first_of("\r\n") != std::string::npos)
    return Status::invalid_argument("a fault's text is one line");
  if (fault.delay.count() < 0 || fault.delay > kMaxDelay)
    return Status::invalid_argument("a fault's delay is 0 to 600 seconds");
  if (fault.times == 0) return Status();
  if (fault.text.empty()) fault.text = "Fault injected on purpose";
  std::lock_guard lock(mu_);
  faults_.push_back(std::move(fault));
  count_.store(faults_.size(), std::memory_order_relaxed);
  return Status();
}

void SmtpFaults::clear() {
  std::lock_guard lock(mu_);
  faults_.clear();
  count_.store(0, std::memory_order_relaxed);
}

std::optional<SmtpFault> SmtpFaults::take_locked(SmtpFault::Phase phase, std::string_view recipient) {
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (it->phase != phase || (phase != SmtpFault::Phase::Mail && !matches(*it, recipient))) continue;
    SmtpFault f = *it;
    if (--it->times == 0) faults_.erase(it);
    count_.store(faults_.size(), std::memory_order_relaxed);
    return f;
  }
  return std::nullopt;
}

std::optional<SmtpFault> SmtpFaults::take(SmtpFault::Phase phase, std::string_view recipient) {
  if (count_.load(std::memory_order_relaxed) == 0) return std::nullopt;
  std::lock_guard lock(mu_);
  return take_locked(phase, recipient);
}

std::optional<SmtpFault> SmtpFaults::take_data(const std::vector<std::string>& recipients) {
  if (count_.load(std::memory_order_relaxed) == 0) return std::nullopt;
  std::lock_guard lock(mu_);
  for (const std::string& r : recipients)
    if (auto f = take_locked(SmtpFault::Phase::Data, r)) return f;
  return std::nullopt;
}

FaultySmtpSession::FaultySmtpSession(std::shared_ptr<SmtpFaults> faults, proto::Executor executor)
    : faults_(std::move(faults)), executor_(std::move(executor)), alive_(std::make_shared<FaultySmtpSession*>(this)) {}

FaultySmtpSession::~FaultySmtpSession() { *alive_ = nullptr; }

std::function<void(smtp::Verdict)> FaultySmtpSession::inner_completion() {
  std::weak_ptr<FaultySmtpSession*> weak = alive_;
  return [weak](smtp::Verdict v) {
    auto alive = weak.lock();
    if (alive && *alive) (**alive).answered(std::move(v));
  };
}

smtp::Verdict FaultySmtpSession::mail(const smtp::SessionInfo& i, const smtp::Path& from, const smtp::MailParams& p) {
  recipients_.clear();
  return apply(faults_->take(SmtpFault::Phase::Mail, ""), [&] { return inner_->mail(i, from, p); });
}

smtp::Verdict FaultySmtpSession::rcpt(const smtp::SessionInfo& i, const smtp::Path& to, const smtp::RcptParams& p) {
  return apply(faults_->take(SmtpFault::Phase::Rcpt, to.address()), [&] {
    rcpt_ = to.address();
    awaiting_rcpt_ = true;
    return inner_->rcpt(i, to, p);
  });
}

smtp::Verdict FaultySmtpSession::data_end(const smtp::SessionInfo& i) {
  std::optional<SmtpFault> fault = faults_->take_data(recipients_);
  recipients_.clear();
  if (fault && fault->action != SmtpFault::Action::Delay) inner_->reset();  // the message is not stored
  return apply(fault, [&] { return inner_->data_end(i); });
}

void FaultySmtpSession::reset() {
  recipients_.clear();
  awaiting_rcpt_ = false;
  delay_.reset();
  inner_->reset();
}

smtp::Verdict FaultySmtpSession::apply(const std::optional<SmtpFault>& fault,
                                       const std::function<smtp::Verdict()>& ask) {
  if (fault && fault->action == SmtpFault::Action::Reply) {
    const int code = fault->code;
    inner_->log("fault injected: " + std::to_string(code) + " " + fault->text);
    return smtp::Verdict::reject(smtp::reply(code, {code / 100, 0, 0}, fault->text));
  }
  if (fault && fault->action == SmtpFault::Action::Disconnect) {
    inner_->log("fault injected: connection dropped");
    return smtp::Verdict::disconnect();
  }
  delay_.reset();
  if (fault) delay_ = fault->delay;
  smtp::Verdict v = ask();
  if (v.kind() == proto::VerdictKind::Pending) return v;  // answered() comes later
  if (auto now = settle(std::move(v))) return std::move(*now);
  return smtp::Verdict::pending();
}

void FaultySmtpSession::answered(smtp::Verdict v) {
  if (auto now = settle(std::move(v)); now && complete_) complete_(std::move(*now));
}

std::optional<smtp::Verdict> FaultySmtpSession::settle(smtp::Verdict v) {
  if (awaiting_rcpt_) {
    awaiting_rcpt_ = false;
    if (v.accepted()) recipients_.push_back(rcpt_);
  }
  if (!delay_) return v;
  const std::chrono::milliseconds delay = *delay_;
  delay_.reset();
  std::weak_ptr<FaultySmtpSession*> weak = alive_;
  auto later = [weak, v] {
    auto alive = weak.lock();
    if (alive && *alive && (**alive).complete_) (**alive).complete_(v);
  };
  if (executor_.post_after) executor_.post_after(delay, std::move(later));
  else executor_.post(std::move(later));
  return std::nullopt;
}

}  // namespace cmail::backends
