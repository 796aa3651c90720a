// cmail/proto/sasl.h: SASL mechanisms (RFC 4422) shared by SMTP AUTH (RFC 4954), POP3 AUTH
// (RFC 5034) and IMAP AUTHENTICATE (RFC 9051 6.2.2): PLAIN (RFC 4616) and LOGIN
// (draft-murchison-sasl-login). The protocol engines do the base64 framing and cancellation;
// this module only turns decoded responses into challenges or credentials.
//
// Thread-safety: value types; a ServerExchange is used by one thread.
#pragma once

#include <cmail/export.h>

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

enum class Mechanism { Plain, Login };

// Exact, case-insensitive mechanism names (RFC 4422 3.1).
CMAIL_EXPORT std::optional<Mechanism> parse_mechanism(std::string_view name);
CMAIL_EXPORT std::string_view mechanism_name(Mechanism m);
// The mechanisms we implement, in the order we advertise them.
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

// RFC 4648 section 4 base64, strict: padding required, no whitespace, canonical trailing bits.
CMAIL_EXPORT std::string base64_encode(std::string_view bytes);
CMAIL_EXPORT std::optional<std::string> base64_decode(std::string_view text);

// The client's PLAIN message: authzid NUL authcid NUL password (RFC 4616 2; no trailing NUL,
// unlike cmail's dispatchd, spec 16.22).
CMAIL_EXPORT std::string plain_message(std::string_view authzid, std::string_view authcid,
                                       std::string_view password);

}  // namespace cmail::sasl
