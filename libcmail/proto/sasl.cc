// SASL PLAIN and LOGIN, and the framing of every mechanism (SCRAM's exchanges: scram.cc).
#include <cmail/proto/sasl.h>

#include <algorithm>

namespace cmail::sasl {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

}  // namespace

std::optional<Mechanism> parse_mechanism(std::string_view name) {
  if (iequals(name, "PLAIN")) return Mechanism::Plain;
  if (iequals(name, "LOGIN")) return Mechanism::Login;
  if (iequals(name, "SCRAM-SHA-256")) return Mechanism::ScramSha256;  // RFC 7677 3
  if (iequals(name, "SCRAM-SHA-256-PLUS")) return Mechanism::ScramSha256Plus;
  return std::nullopt;
}

std::string_view mechanism_name(Mechanism m) {
  switch (m) {
    case Mechanism::Plain: return "PLAIN";
    case Mechanism::Login: return "LOGIN";
    case Mechanism::ScramSha256: return "SCRAM-SHA-256";
    case Mechanism::ScramSha256Plus: return "SCRAM-SHA-256-PLUS";
  }
  return "";
}

const std::vector<Mechanism>& all_mechanisms() {
  static const std::vector<Mechanism> kAll{Mechanism::Plain, Mechanism::Login};
  return kAll;
}

ServerExchange::Step ServerExchange::plain(std::string_view m) {
  // RFC 4616 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd; authcid and passwd are
  // 1*SAFE (no NUL), up to 255 octets each.
  auto first = m.find('\0');
  if (first == std::string_view::npos) return Failed{"PLAIN message without NUL separators"};
  auto second = m.find('\0', first + 1);
  if (second == std::string_view::npos) return Failed{"PLAIN message with one NUL separator"};
  if (m.find('\0', second + 1) != std::string_view::npos) return Failed{"extra NUL in PLAIN message"};
  Credentials c{std::string(m.substr(0, first)), std::string(m.substr(first + 1, second - first - 1)),
                std::string(m.substr(second + 1))};
  if (c.authcid.empty() || c.authcid.size() > 255 || c.password.size() > 255 || c.authzid.size() > 255)
    return Failed{"PLAIN fields out of range"};
  return Done{std::move(c)};
}

ServerExchange::Step ServerExchange::start(std::optional<std::string_view> initial) {
  round_ = 0;
  if (mech_ == Mechanism::Plain) {
    if (!initial) return Challenge{""};  // RFC 4422 5: empty challenge, then the message
    return plain(*initial);
  }
  // LOGIN: an initial response is the user name (RFC 4954 clients may send it).
  if (initial) {
    user_ = std::string(*initial);
    round_ = 1;
    return Challenge{"Password:"};
  }
  return Challenge{"Username:"};
}

ServerExchange::Step ServerExchange::step(std::string_view response) {
  if (mech_ == Mechanism::Plain) return plain(response);
  if (round_ == 0) {
    if (response.empty() || response.size() > 255 || response.find('\0') != std::string_view::npos)
      return Failed{"bad LOGIN user name"};
    user_ = std::string(response);
    round_ = 1;
    return Challenge{"Password:"};
  }
  if (response.size() > 255 || response.find('\0') != std::string_view::npos)
    return Failed{"bad LOGIN password"};
  if (user_.empty() || user_.size() > 255) return Failed{"bad LOGIN user name"};
  return Done{Credentials{"", user_, std::string(response)}};
}

std::string mechanism_names(std::string_view sep) {
  std::string names;
  for (auto m : all_mechanisms()) {
    if (!names.empty()) names += sep;
    names += mechanism_name(m);
  }
  return names;
}

std::vector<Mechanism> ServerAuth::offered() const {
  std::vector<Mechanism> m = all_mechanisms();
  if (scram_options_.enabled) {
    m.push_back(Mechanism::ScramSha256);
    // RFC 9266, RFC 5802 6: -PLUS only where we can bind to the channel.
    if (!tls_exporter_.empty()) m.push_back(Mechanism::ScramSha256Plus);
  }
  return m;
}

std::string ServerAuth::offered_names(std::string_view sep) const {
  std::string names;
  for (auto m : offered()) {
    if (!names.empty()) names += sep;
    names += mechanism_name(m);
  }
  return names;
}

ServerAuth::Step ServerAuth::start(std::string_view argument) {
  reset();
  // RFC 4954 4, RFC 5034 4: the initial response is optional, and an empty one is sent as "=".
  // So white space at the end ("AUTH PLAIN ") is no response at all: dropped, as cmail and
  // Postfix do (docs/compatibility.md#users-sasl-trailing-white-space).
  while (!argument.empty() && (argument.back() == ' ' || argument.back() == '\t')) argument.remove_suffix(1);
  std::size_t sp = argument.find(' ');
  auto mech = parse_mechanism(argument.substr(0, sp));
  if (!mech) return UnknownMechanism{};
  const auto offers = offered();
  if (std::find(offers.begin(), offers.end(), *mech) == offers.end()) return UnknownMechanism{};
  std::optional<std::string> initial;
  if (sp != std::string_view::npos) {
    std::string_view ir = argument.substr(sp + 1);
    if (ir.empty() || ir.find(' ') != std::string_view::npos) return BadSyntax{};
    if (ir == "=") {
      initial = std::string();  // RFC 4954 4, RFC 5034 4, RFC 4959 3: "=" is an empty response
    } else {
      initial = base64_decode(ir);
      if (!initial) return BadBase64{};
    }
  }
  const auto ir = initial ? std::optional<std::string_view>(*initial) : std::nullopt;
  if (*mech == Mechanism::ScramSha256 || *mech == Mechanism::ScramSha256Plus) {
    scram_.emplace(*mech == Mechanism::ScramSha256Plus, tls_exporter_, scram_options_);
    return next(scram_->start(ir));
  }
  exchange_.emplace(*mech);
  return next(exchange_->start(ir));
}

ServerAuth::Step ServerAuth::respond(std::string_view line) {
  if (!active()) return Failed{"no exchange in progress"};
  if (line == "*") {  // the client cancels (RFC 4954 4, RFC 5034 4, RFC 9051 6.2.2)
    reset();
    return Cancelled{};
  }
  auto decoded = base64_decode(line);
  if (!decoded) {
    reset();
    return BadBase64{};
  }
  if (scram_) return next(scram_->step(*decoded));
  return next(exchange_->step(*decoded));
}

ServerAuth::Step ServerAuth::scram_credentials(const ScramCredentials* stored) {
  if (!scram_) return Failed{"no exchange in progress"};
  return next(scram_->credentials(stored));
}

ServerAuth::Step ServerAuth::next(const ScramServer::Step& step) {
  if (auto* c = std::get_if<ScramServer::Challenge>(&step))
    return Challenge{continuation_ + base64_encode(c->data) + "\r\n"};
  if (auto* n = std::get_if<ScramServer::NeedCredentials>(&step)) return ScramLookup{n->authzid, n->authcid};
  scram_.reset();
  if (auto* f = std::get_if<ScramServer::Failed>(&step)) return Failed{f->reason};
  return ScramChecked{std::get<ScramServer::Checked>(step).result};
}

ServerAuth::Step ServerAuth::next(const ServerExchange::Step& step) {
  if (auto* c = std::get_if<ServerExchange::Challenge>(&step))
    return Challenge{continuation_ + base64_encode(c->data) + "\r\n"};
  exchange_.reset();
  if (auto* f = std::get_if<ServerExchange::Failed>(&step)) return Failed{f->reason};
  return Done{std::get<ServerExchange::Done>(step).credentials};
}

ClientExchange::ClientExchange(Mechanism m, Credentials credentials, std::string tls_exporter)
    : mech_(m), creds_(std::move(credentials)) {
  if (m == Mechanism::ScramSha256 || m == Mechanism::ScramSha256Plus)
    scram_.emplace(creds_.authzid, creds_.authcid, creds_.password,
                   m == Mechanism::ScramSha256Plus ? std::move(tls_exporter) : std::string());
}

std::optional<std::string> ClientExchange::initial_response() const {
  if (mech_ == Mechanism::Plain) return plain_message(creds_.authzid, creds_.authcid, creds_.password);
  if (scram_) return scram_->initial_response();  // RFC 5802 5: the client speaks first
  return std::nullopt;
}

std::string ClientExchange::respond(std::string_view challenge) {
  if (scram_) {
    // A server that sent an empty challenge first (no initial response) gets client-first.
    if (round_++ == 0 && challenge.empty()) return scram_->initial_response();
    return scram_->respond(challenge);
  }
  // LOGIN asks for the user name, then the password; what its challenges say varies
  // ("Username:", "User Name"), so the order decides (draft-murchison-sasl-login 2).
  if (mech_ == Mechanism::Plain) return plain_message(creds_.authzid, creds_.authcid, creds_.password);
  return round_++ == 0 ? creds_.authcid : creds_.password;
}

std::string plain_message(std::string_view authzid, std::string_view authcid,
                          std::string_view password) {
  std::string m(authzid);
  m += '\0';
  m += authcid;
  m += '\0';
  m += password;
  return m;
}

}  // namespace cmail::sasl
