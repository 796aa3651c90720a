// cmail/backends/faults.h: SMTP faults on purpose, for test harnesses.
//
// A test of a program that sends mail wants to see what it does when the server it talks to
// refuses a recipient, defers a message, hangs up in the middle of a transaction or answers
// slowly. SmtpFaults is the list of such faults, each for a phase (MAIL, RCPT, the end of
// data) and a recipient (or any), applied a number of times; FaultySmtpSession is an
// smtp::Session around another one that consults the list before its inner session is asked:
//   Reply       the fault's reply instead of the inner session's verdict (the inner session
//               is not asked: a refused message is not stored)
//   Disconnect  the connection closes with no reply (smtp::Verdict::disconnect)
//   Delay       the inner session's verdict, given `delay` later (Executor::post_after)
// cmail_server puts it around its intake sessions (the harness's SMTP listener) and the
// capture sink around its own (what the dispatcher meets).
//
// Thread-safety: SmtpFaults may be changed from any thread while sessions consult it (one
// mutex; an empty list costs one atomic load). A FaultySmtpSession is one connection's, used
// on that connection's thread like any Session.
// Ownership: sessions share the SmtpFaults. A FaultySmtpSession owns its inner session; a
// delayed verdict that comes after the session is gone is dropped.
#pragma once

#include <cmail/export.h>
#include <cmail/proto/transport.h>
#include <cmail/smtp/server.h>
#include <cmail/status.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::backends {

struct SmtpFault {
  enum class Phase : std::uint8_t { Mail, Rcpt, Data };
  enum class Action : std::uint8_t { Reply, Disconnect, Delay };
  Phase phase = Phase::Rcpt;
  // Rcpt: the recipient of that RCPT; Data: any recipient of the message; Mail: ignored.
  // Compared without regard to case; "" matches any.
  std::string recipient;
  Action action = Action::Reply;
  int code = 451;                          // Reply: 400-599
  std::string text;                        // Reply: one line; "": a text saying it is a fault
  std::chrono::milliseconds delay{1000};   // Delay: at most 10 minutes
  std::size_t times = SIZE_MAX;            // then the fault is gone
};

class CMAIL_EXPORT SmtpFaults {
 public:
  // InvalidArgument (and nothing added) for a code outside 400-599, a text with a line end or
  // a delay outside 0-600 s.
  Status add(SmtpFault fault);
  void clear();
  // The first fault for (phase, recipient), counted as applied once; nullopt for none.
  std::optional<SmtpFault> take(SmtpFault::Phase phase, std::string_view recipient);
  // The first fault for the end of data of a message for any of `recipients`.
  std::optional<SmtpFault> take_data(const std::vector<std::string>& recipients);

 private:
  std::optional<SmtpFault> take_locked(SmtpFault::Phase phase, std::string_view recipient);
  std::mutex mu_;
  std::vector<SmtpFault> faults_;
  std::atomic<std::size_t> count_{0};
};

class CMAIL_EXPORT FaultySmtpSession final : public smtp::Session {
 public:
  FaultySmtpSession(std::shared_ptr<SmtpFaults> faults, proto::Executor executor);
  ~FaultySmtpSession() override;

  // The session asked for everything the faults leave alone. Its pending verdicts must come
  // back through inner_completion().
  void set_inner(std::unique_ptr<smtp::Session> inner) { inner_ = std::move(inner); }
  std::function<void(smtp::Verdict)> inner_completion();
  // Where this session's own pending verdicts go (normally: server.complete(v) and a flush);
  // called on the connection's thread.
  void set_completion(std::function<void(smtp::Verdict)> complete) { complete_ = std::move(complete); }

  smtp::Verdict helo(const smtp::SessionInfo& i) override { return inner_->helo(i); }
  smtp::Verdict auth(const smtp::SessionInfo& i, const sasl::Credentials& c) override { return inner_->auth(i, c); }
  smtp::Verdict scram_credentials(const smtp::SessionInfo& i, const std::string& user) override {
    return inner_->scram_credentials(i, user);
  }
  smtp::Verdict scram_auth(const smtp::SessionInfo& i, const sasl::ScramResult& r) override {
    return inner_->scram_auth(i, r);
  }
  smtp::Verdict mail(const smtp::SessionInfo&, const smtp::Path&, const smtp::MailParams&) override;
  smtp::Verdict rcpt(const smtp::SessionInfo&, const smtp::Path&, const smtp::RcptParams&) override;
  void data_chunk(std::string_view bytes) override { inner_->data_chunk(bytes); }
  smtp::Verdict data_end(const smtp::SessionInfo&) override;
  void reset() override;
  void log(std::string_view line) override { inner_->log(line); }

 private:
  // The verdict for a phase whose fault (if any) is `fault`, `ask` being the inner session.
  smtp::Verdict apply(const std::optional<SmtpFault>& fault, const std::function<smtp::Verdict()>& ask);
  void answered(smtp::Verdict v);  // the inner session's pending verdict, now given
  // Records an inner verdict; returns it, or nullopt when it goes to complete_ after the delay.
  std::optional<smtp::Verdict> settle(smtp::Verdict v);

  std::shared_ptr<SmtpFaults> faults_;
  proto::Executor executor_;
  std::unique_ptr<smtp::Session> inner_;
  std::function<void(smtp::Verdict)> complete_;
  std::shared_ptr<FaultySmtpSession*> alive_;  // cleared by the destructor: late work drops
  std::optional<std::chrono::milliseconds> delay_;  // of the verdict the inner session owes
  std::string rcpt_;                                // of the RCPT whose verdict is awaited
  std::vector<std::string> recipients_;             // accepted in this transaction
  bool awaiting_rcpt_ = false;
};

}  // namespace cmail::backends
