// cmail/proto/scram.h: SCRAM-SHA-256 (RFC 5802, RFC 7677) and SCRAM-SHA-256-PLUS with the
// tls-exporter channel binding (RFC 9266), both sides, sans-I/O.
//
// The server never sees a password: it holds a user's salt, iteration count, StoredKey and
// ServerKey (ScramCredentials, made by scram_derive() when the password is set) and checks the
// client's proof against them. The exchange asks for them once the client-first-message names
// the user (ScramServer::NeedCredentials): the engine asks its Session, which may answer later,
// and continues with credentials(). A user without credentials gets made-up ones (scram_fake():
// the same salt and count on every try, RFC 5802 5.1) and the exchange fails at the proof, as
// with a wrong password, so that the exchange does not tell who exists.
//
// Failures carry RFC 5802 7's server-error value ("invalid-proof", "channel-bindings-dont-match"...)
// as their reason, for the log; the protocols send their own failure reply, without e=
// (docs/scram.md#failures).
//
// SASLprep (RFC 4013) is implemented for the passwords it can prepare without Unicode tables:
// those whose code points are all at most U+00FF once mapped (docs/scram.md#saslprep). User
// names are taken as sent.
//
// Thread-safety: pure functions and value types; an exchange is used by one thread. The random
// nonces come from crypto::random_bytes.
#pragma once

#include <cmail/export.h>

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace cmail::sasl {

// RFC 7677 4: at least 4096 iterations. cmail derives new credentials with 10000
// (docs/scram.md#iterations); a client that is offered fewer than the minimum refuses.
inline constexpr unsigned kScramMinIterations = 4096;
inline constexpr unsigned kScramIterations = 10000;
// The most a client computes: a server cannot make it spin for minutes.
inline constexpr unsigned kScramMaxIterations = 10000000;

// What the server keeps of a password (RFC 5802 3): raw octets, not base64.
struct ScramCredentials {
  std::string salt;
  unsigned iterations = 0;
  std::string stored_key;  // H(ClientKey)
  std::string server_key;  // HMAC(SaltedPassword, "Server Key")
  bool known = true;       // false: made up for a user without credentials; never matches
};

// The part of SASLprep (RFC 4013 2) cmail implements: the B.1 characters removed and the C.1.2
// spaces made U+0020 (2.1); then, when every code point left is at most U+00FF, NFKC (2.2: the
// thirteen Latin-1 characters with a compatibility decomposition replaced by it, the rest are
// stable) and the prohibited controls (2.3: C.2.1, C.2.2) refused. nullopt: not UTF-8, a
// prohibited character, or a code point above U+00FF after mapping (which would need Unicode's
// tables: not implemented).
CMAIL_EXPORT std::optional<std::string> saslprep(std::string_view utf8);

// SaltedPassword = Hi(SASLprep(password), salt, i) and the keys from it (RFC 5802 3). nullopt
// when saslprep() cannot prepare the password.
CMAIL_EXPORT std::optional<ScramCredentials> scram_derive(std::string_view password, std::string_view salt,
                                                          unsigned iterations);

// Made-up credentials for `user` (known = false): a 16-octet salt and keys from
// HMAC-SHA-256(secret, ...), so repeated tries see the same salt (RFC 5802 5.1).
CMAIL_EXPORT ScramCredentials scram_fake(std::string_view secret, std::string_view user,
                                         unsigned iterations = kScramIterations);

// A random 32-octet secret made once per process, for fake credentials when the embedder gives
// none (ScramOptions::secret).
CMAIL_EXPORT const std::string& scram_process_secret();

// saslname (RFC 5802 7): ',' and '=' as "=2C" and "=3D"; unescape gives nullopt for any other
// '=' or an empty name.
CMAIL_EXPORT std::string scram_escape(std::string_view name);
CMAIL_EXPORT std::optional<std::string> scram_unescape(std::string_view saslname);

// How a server engine offers SCRAM (a member of each engine's ServerOptions).
struct ScramOptions {
  // Offer SCRAM-SHA-256, and SCRAM-SHA-256-PLUS on TLS connections with a tls-exporter. The
  // Session must implement the SCRAM calls (scram_credentials and the final decision).
  bool enabled = false;
  // The key of fake credentials (scram_fake); empty: scram_process_secret(). A Session that
  // gives its own made-up credentials (the store's) makes this unused.
  std::string secret;
  unsigned fake_iterations = kScramIterations;
  // The server's nonce; empty: 18 random octets in base64. Tests inject RFC 7677's.
  std::function<std::string()> nonce;
};

// What the exchange proved: the final decision of the Session (who logs in, aliases, access)
// comes after it.
struct ScramResult {
  std::string authzid;   // a= (empty: none)
  std::string authcid;   // n=
  bool proved = false;   // the proof matched the stored credentials (and they were not made up)
};

// The tls-exporter label of RFC 9266 2 and its length.
inline constexpr std::string_view kTlsExporterLabel = "EXPORTER-Channel-Binding";
inline constexpr std::size_t kTlsExporterSize = 32;

// The server side of one SCRAM-SHA-256[-PLUS] exchange (RFC 5802 5).
class CMAIL_EXPORT ScramServer {
 public:
  struct Challenge {
    std::string data;  // raw; the protocol base64-encodes it
  };
  // The client-first-message named the user: call credentials() with what the Session holds.
  struct NeedCredentials {
    std::string authzid;
    std::string authcid;
  };
  // The client-final-message was checked (proved or not), or the client acknowledged the
  // server signature; either way the exchange is over.
  struct Checked {
    ScramResult result;
  };
  struct Failed {
    std::string reason;  // RFC 5802 7 server-error-value
  };
  using Step = std::variant<Challenge, NeedCredentials, Checked, Failed>;

  // `plus`: the mechanism is SCRAM-SHA-256-PLUS. `tls_exporter`: the connection's channel
  // binding (RFC 9266), empty when it has none; when it has one, -PLUS is offered, and a client
  // that says it could bind but thinks the server cannot ("y") is refused (RFC 5802 6).
  ScramServer(bool plus, std::string tls_exporter, const ScramOptions& options);

  // `initial` is the decoded initial response; nullopt: none (an empty challenge asks for it).
  Step start(std::optional<std::string_view> initial);
  Step step(std::string_view response);
  // After NeedCredentials: the user's stored credentials, or null when it has none.
  Step credentials(const ScramCredentials* stored);

 private:
  Step client_first(std::string_view message);
  Step client_final(std::string_view message);
  enum class Round { First, Credentials, Final, Acknowledge, Done };
  Round round_ = Round::First;
  bool plus_;
  std::string exporter_;
  ScramOptions options_;
  std::string gs2_header_;
  std::string client_first_bare_;
  std::string server_first_;
  std::string nonce_;  // client's and server's
  std::string authzid_, authcid_;
  ScramCredentials creds_;
};

// The client side. initial_response() is the client-first-message; respond() answers the
// server-first-message with the client-final-message, and the server-final-message with an
// empty response after checking the server's signature. A failure (a bad server message, a
// wrong signature, too many or too few iterations) sets error() and the response is "*",
// which cancels the exchange in every protocol.
class CMAIL_EXPORT ScramClient {
 public:
  // `tls_exporter` non-empty: SCRAM-SHA-256-PLUS with that binding; empty: "n", no binding.
  // `nonce` empty: 18 random octets in base64.
  ScramClient(std::string authzid, std::string authcid, std::string password, std::string tls_exporter = {},
              std::string nonce = {});
  std::string initial_response() const { return gs2_header_ + client_first_bare_; }
  std::string respond(std::string_view challenge);
  const std::string& error() const { return error_; }
  // The server proved it knows the user's ServerKey (RFC 5802 5: v= matched).
  bool server_verified() const { return verified_; }

 private:
  std::string fail(std::string why);
  std::string password_;
  std::string exporter_;
  std::string gs2_header_;
  std::string client_first_bare_;
  std::string nonce_;
  std::string server_signature_;
  std::string error_;
  int round_ = 0;
  bool verified_ = false;
};

}  // namespace cmail::sasl
