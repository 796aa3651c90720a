// cmail/proto/sasl.h: SASL (RFC 4422) for every protocol that authenticates with it: SMTP AUTH
// (RFC 4954), POP3 AUTH (RFC 5034), IMAP AUTHENTICATE (RFC 9051 6.2.2), both sides.
//
// Two levels:
//   - the mechanisms, PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login):
//     ServerExchange turns decoded responses into challenges or credentials, ClientExchange
//     makes the client's responses; SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 7677, RFC 9266)
//     in cmail/proto/scram.h, offered when the engine's ScramOptions enable them;
//   - the wire framing the protocols share, ServerAuth: the command argument "MECHANISM
//     [SP initial-response]" with "=" for an empty initial response (trailing spaces and tabs
//     are dropped: "PLAIN " has no initial response), base64 in both directions, "*" to
//     cancel, and the challenge line with the protocol's continuation prefix ("334 " for SMTP,
//     "+ " for POP3 and IMAP). An engine only maps the outcomes to its replies; for SCRAM it
//     also asks its Session for the user's stored credentials (ScramLookup, answered with
//     scram_credentials()) and for the final decision once the proof is checked (ScramChecked).
//
// Thread-safety: value types; an exchange is used by one thread.
#pragma once

#include <cmail/base64.h>
#include <cmail/export.h>
#include <cmail/proto/scram.h>

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cmail::sasl {

struct Credentials {
  std::string authzid;  // requested authorization identity; empty = same as authcid
  std::string authcid;  // who logs in
  std::string password;
};

enum class Mechanism { Plain, Login, ScramSha256, ScramSha256Plus };

// Exact, case-insensitive mechanism names (RFC 4422 3.1).
CMAIL_EXPORT std::optional<Mechanism> parse_mechanism(std::string_view name);
CMAIL_EXPORT std::string_view mechanism_name(Mechanism m);
// The password mechanisms every Session supports, in the order we advertise them: PLAIN, LOGIN.
// SCRAM's follow them where offered (ServerAuth::offered()).
CMAIL_EXPORT const std::vector<Mechanism>& all_mechanisms();

// One server-side authentication exchange.
class CMAIL_EXPORT ServerExchange {
 public:
  struct Challenge {
    std::string data;  // raw; the protocol base64-encodes it
  };
  struct Done {
    Credentials credentials;
  };
  struct Failed {
    std::string reason;  // the response was malformed (not a wrong password)
  };
  using Step = std::variant<Challenge, Done, Failed>;

  explicit ServerExchange(Mechanism m) : mech_(m) {}
  // `initial` is the decoded initial response; nullopt when the client sent none.
  Step start(std::optional<std::string_view> initial);
  Step step(std::string_view response);

 private:
  Step plain(std::string_view message);
  Mechanism mech_;
  int round_ = 0;
  std::string user_;
};

// The names of all_mechanisms(), in order, separated by `sep` ("PLAIN LOGIN").
CMAIL_EXPORT std::string mechanism_names(std::string_view sep = " ");

// The server side of one exchange on the wire (the framing above ServerExchange).
class CMAIL_EXPORT ServerAuth {
 public:
  struct Challenge {
    std::string line;  // the continuation line to send, CRLF included
  };
  struct Done {
    Credentials credentials;
  };
  struct Cancelled {};         // the client sent "*" (RFC 4954 4, RFC 5034 4, RFC 9051 6.2.2)
  struct UnknownMechanism {};  // not one of ours
  struct BadSyntax {};         // more than "MECHANISM [SP initial-response]"
  struct BadBase64 {};         // a response or initial response that is not base64
  struct Failed {
    std::string reason;  // the mechanism refused the (decoded) response: a failed login
  };
  // SCRAM: the client-first-message names the user; ask the Session for its stored credentials
  // and give them to scram_credentials(). The exchange stays active meanwhile.
  struct ScramLookup {
    std::string authzid;
    std::string authcid;
  };
  // SCRAM: the proof was checked (result.proved) and the exchange is over; the Session decides
  // who logs in (or counts the failure).
  struct ScramChecked {
    ScramResult result;
  };
  using Step = std::variant<Challenge, Done, Cancelled, UnknownMechanism, BadSyntax, BadBase64, Failed, ScramLookup,
                            ScramChecked>;

  // `continuation`: what precedes a base64 challenge on the wire ("334 ", "+ ").
  explicit ServerAuth(std::string continuation, ScramOptions scram = {})
      : continuation_(std::move(continuation)), scram_options_(std::move(scram)) {}

  // The connection's tls-exporter channel binding (RFC 9266), once TLS is up; with SCRAM
  // enabled, SCRAM-SHA-256-PLUS is offered from then on. Empty: none.
  void set_channel_binding(std::string tls_exporter) { tls_exporter_ = std::move(tls_exporter); }
  // The mechanisms offered on this connection now, in order: PLAIN LOGIN, then SCRAM-SHA-256
  // and SCRAM-SHA-256-PLUS when enabled (-PLUS only with a channel binding).
  std::vector<Mechanism> offered() const;
  std::string offered_names(std::string_view sep = " ") const;

  // Starts an exchange from the command's argument; trailing white space is ignored. Every
  // step but Challenge and ScramLookup ends it. A mechanism not offered is UnknownMechanism.
  Step start(std::string_view argument);
  // The client's response line (without CRLF) to the last Challenge.
  Step respond(std::string_view line);
  // After ScramLookup: the user's stored credentials, or null when the Session has none (the
  // exchange goes on with made-up ones and fails at the proof).
  Step scram_credentials(const ScramCredentials* stored);
  // A Challenge was sent and the response is awaited, or a ScramLookup is being answered.
  bool active() const { return exchange_.has_value() || scram_.has_value(); }
  void reset() {
    exchange_.reset();
    scram_.reset();
  }

 private:
  Step next(const ServerExchange::Step& step);
  Step next(const ScramServer::Step& step);
  std::string continuation_;
  ScramOptions scram_options_;
  std::string tls_exporter_;
  std::optional<ServerExchange> exchange_;
  std::optional<ScramServer> scram_;
};

// The client side of one mechanism.
class CMAIL_EXPORT ClientExchange {
 public:
  // `tls_exporter`: the channel binding for SCRAM-SHA-256-PLUS (RFC 9266); unused otherwise.
  ClientExchange(Mechanism m, Credentials credentials, std::string tls_exporter = {});
  // What to send with the command (PLAIN's message, RFC 4616 2; SCRAM's client-first-message),
  // or nullopt (LOGIN waits).
  std::optional<std::string> initial_response() const;
  // The response to a decoded challenge. SCRAM: "*" (cancel) when the server's messages or
  // signature are wrong, with error() saying why.
  std::string respond(std::string_view challenge);
  Mechanism mechanism() const { return mech_; }
  // Empty unless the exchange failed on our side (SCRAM only).
  std::string error() const { return scram_ ? scram_->error() : std::string(); }

 private:
  Mechanism mech_;
  Credentials creds_;
  int round_ = 0;
  std::optional<ScramClient> scram_;
};

// The mechanism a client uses with a server that offers `offered` (upper-case names): PLAIN,
// else LOGIN; nullopt when neither is offered.
template <typename Set>
std::optional<Mechanism> choose_mechanism(const Set& offered) {
  for (auto m : all_mechanisms())
    if (offered.count(std::string(mechanism_name(m)))) return m;
  return std::nullopt;
}

// The base64 codec (cmail/base64.h), under the names the protocols have used.
using cmail::base64_decode;
using cmail::base64_encode;
using cmail::base64_value;

// The client's PLAIN message: authzid NUL authcid NUL password (RFC 4616 2; no trailing NUL,
// unlike cmail's dispatchd, docs/compatibility.md#dispatchd-authentication).
CMAIL_EXPORT std::string plain_message(std::string_view authzid, std::string_view authcid,
                                       std::string_view password);

}  // namespace cmail::sasl
