// cmail/proto/verdict.h: how a Session answers an engine, now or later.
//
// Every decision an engine asks its Session for (a login, a sender, a recipient, the end of a
// message, a message to retrieve) is answered with a verdict of that engine's Verdict type:
// accepted (with what the engine needs, such as the authenticated identity or the maildrop),
// refused (with the reply the peer gets), failed (a backend Status: logged, never shown to the
// peer; the peer gets the protocol's "temporary failure" reply) or pending. A pending verdict
// is given later with the engine's complete(); until then the engine parses nothing further,
// so pipelined commands wait and replies leave in order.
//
// VerdictBase holds what every engine's Verdict shares; Awaiting is the engine's record of
// which decision a pending verdict will answer.
//
// Thread-safety: value types.
#pragma once

#include <cmail/proto/scram.h>
#include <cmail/status.h>

#include <memory>
#include <optional>
#include <utility>

namespace cmail::proto {

enum class VerdictKind { Accept, Reject, Pending, Failed };

template <typename Derived>
class VerdictBase {
 public:
  using Kind = VerdictKind;
  // Answered later, with the engine's complete().
  static Derived pending() { return Derived(Kind::Pending); }
  // A backend failure: the Status goes to the Session's log, the peer gets a generic
  // temporary failure.
  static Derived failed(Status st) {
    Derived d(Kind::Failed);
    d.status_ = std::move(st);
    return d;
  }
  // The answer to a SCRAM lookup (every engine's Session::scram_credentials): the user's
  // stored credentials, made-up ones (known = false), or nullopt for none; the exchange goes on
  // either way and fails at the proof without real ones (cmail/proto/scram.h).
  static Derived scram(std::optional<sasl::ScramCredentials> credentials) {
    Derived d(Kind::Accept);
    if (credentials) d.scram_ = std::make_shared<const sasl::ScramCredentials>(std::move(*credentials));
    return d;
  }
  Kind kind() const { return kind_; }
  bool accepted() const { return kind_ == Kind::Accept; }
  const Status& status() const { return status_; }
  // What scram() gave; null for none.
  const sasl::ScramCredentials* scram_credentials() const { return scram_.get(); }

 protected:
  explicit VerdictBase(Kind k) : kind_(k) {}
  Kind kind_;
  Status status_;
  std::shared_ptr<const sasl::ScramCredentials> scram_;
};

// Which decision the pending verdict answers (the engine's own enum of decisions).
template <typename Decision>
class Awaiting {
 public:
  bool active() const { return what_.has_value(); }
  void begin(Decision d) { what_ = d; }
  // The decision answered now; REQUIRES active().
  Decision end() {
    Decision d = *what_;
    what_.reset();
    return d;
  }
  void cancel() { what_.reset(); }

 private:
  std::optional<Decision> what_;
};

// The checks every engine's complete() makes first: a verdict must be awaited, and a
// completion cannot itself be pending.
inline Status check_completion(bool awaited, VerdictKind given) {
  if (!awaited) return Status::invalid_argument("no verdict is pending");
  if (given == VerdictKind::Pending) return Status::invalid_argument("complete() with a pending verdict");
  return Status();
}

}  // namespace cmail::proto
