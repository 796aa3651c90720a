// SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677, RFC 9266): see cmail/proto/scram.h.
#include <cmail/proto/ascii.h>
#include <cmail/proto/scram.h>

#include <cmail/base64.h>
#include <cmail/crypto/crypto.h>

#include <charconv>
#include <vector>

namespace cmail::sasl {

namespace {

constexpr std::size_t kNonceOctets = 18;  // 24 base64 characters
constexpr std::size_t kMaxName = 255;     // as PLAIN's authcid (RFC 4616 2)
constexpr std::size_t kMaxNonce = 1024;

// One code point from UTF-8 (RFC 3629 4: no overlong forms, no surrogates, at most U+10FFFF).
std::optional<char32_t> next_code_point(std::string_view s, std::size_t& i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return ++i, char32_t(c);
  const std::size_t n = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC2 ? 1 : 0;
  if (n == 0 || c > 0xF4 || s.size() - i <= n) return std::nullopt;  // a lead octet, and n more
  char32_t cp = c & (0x3F >> n);
  for (std::size_t k = 1; k <= n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  static constexpr char32_t kMin[] = {0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
  i += n + 1;
  return cp;
}


bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();)
    if (!next_code_point(s, i)) return false;
  return true;
}

// RFC 3454 B.1: commonly mapped to nothing (RFC 4013 2.1).
bool mapped_to_nothing(char32_t c) {
  return c == 0x00AD || c == 0x034F || c == 0x1806 || (c >= 0x180B && c <= 0x180D) ||
         (c >= 0x200B && c <= 0x200D) || c == 0x2060 || (c >= 0xFE00 && c <= 0xFE0F) || c == 0xFEFF;
}

// RFC 3454 C.1.2: non-ASCII space characters, mapped to SPACE (RFC 4013 2.1).
bool non_ascii_space(char32_t c) {
  return c == 0x00A0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200B) || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// NFKC of the Latin-1 characters with a compatibility decomposition (UnicodeData.txt); every
// other code point up to U+00FF is its own NFKC form, and none of them composes with another.
const char* latin1_nfkc(char32_t c) {
  switch (c) {
    case 0xA8: return " \xCC\x88";             // U+0020 U+0308
    case 0xAA: return "a";
    case 0xAF: return " \xCC\x84";             // U+0020 U+0304
    case 0xB2: return "2";
    case 0xB3: return "3";
    case 0xB4: return " \xCC\x81";             // U+0020 U+0301
    case 0xB5: return "\xCE\xBC";              // U+03BC
    case 0xB8: return " \xCC\xA7";             // U+0020 U+0327
    case 0xB9: return "1";
    case 0xBA: return "o";
    case 0xBC: return "1\xE2\x81\x84" "4";     // 1 U+2044 4
    case 0xBD: return "1\xE2\x81\x84" "2";
    case 0xBE: return "3\xE2\x81\x84" "4";
    default: return nullptr;
  }
}

std::vector<std::string_view> split_commas(std::string_view s) {
  std::vector<std::string_view> parts;
  for (;;) {
    auto c = s.find(',');
    parts.push_back(s.substr(0, c));
    if (c == std::string_view::npos) return parts;
    s.remove_prefix(c + 1);
  }
}

// RFC 5802 7: printable = %x21-2B / %x2D-7E (no comma).
bool printable_nonce(std::string_view n) {
  if (n.empty() || n.size() > kMaxNonce) return false;
  for (char ch : n) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x21 || c > 0x7E || c == ',') return false;
  }
  return true;
}

// RFC 5802 7: attr-val = ALPHA "=" value; value = *value-char (no NUL, no comma).
bool attr_val(std::string_view a) {
  if (a.size() < 2 || a[1] != '=') return false;
  if (!((a[0] >= 'a' && a[0] <= 'z') || (a[0] >= 'A' && a[0] <= 'Z'))) return false;
  return a.find('\0') == std::string_view::npos && valid_utf8(a.substr(2));
}

std::string xor_octets(std::string_view a, std::string_view b) {
  std::string out(a);
  for (std::size_t i = 0; i < out.size() && i < b.size(); ++i) out[i] = static_cast<char>(out[i] ^ b[i]);
  return out;
}

std::string random_nonce() {
  auto r = crypto::random_bytes(kNonceOctets);
  return r ? base64_encode(*r) : std::string();
}

bool parse_count(std::string_view s, unsigned& out) {
  if (s.empty() || s.size() > 10 || s[0] == '0') return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::optional<std::string> saslprep(std::string_view utf8) {
  std::string out;
  for (std::size_t i = 0; i < utf8.size();) {
    auto cp = next_code_point(utf8, i);
    if (!cp) return std::nullopt;
    char32_t c = *cp;
    if (mapped_to_nothing(c)) continue;  // RFC 4013 2.1 (before the space mapping: U+200B is in both)
    if (non_ascii_space(c)) c = 0x20;    // RFC 4013 2.1
    if (c > 0xFF) return std::nullopt;   // NFKC would need Unicode's tables (docs/scram.md#saslprep)
    if (c < 0x20 || (c >= 0x7F && c <= 0x9F)) return std::nullopt;  // RFC 4013 2.3: C.2.1, C.2.2
    if (const char* k = latin1_nfkc(c)) out += k;                   // RFC 4013 2.2: NFKC
    else proto::append_utf8(out, c);
  }
  // RFC 4013 2.4 (bidirectional text): no RandALCat character is at most U+00FF; 2.5: all of
  // them are assigned.
  return out;
}

std::optional<ScramCredentials> scram_derive(std::string_view password, std::string_view salt, unsigned iterations) {
  auto prepared = saslprep(password);
  if (!prepared || salt.empty() || iterations == 0) return std::nullopt;
  // RFC 5802 3: SaltedPassword := Hi(Normalize(password), salt, i); ClientKey :=
  // HMAC(SaltedPassword, "Client Key"); StoredKey := H(ClientKey); ServerKey :=
  // HMAC(SaltedPassword, "Server Key"). RFC 7677: H is SHA-256.
  const std::string salted = crypto::pbkdf2_sha256(*prepared, salt, iterations);
  ScramCredentials c;
  c.salt = std::string(salt);
  c.iterations = iterations;
  c.stored_key = crypto::sha256(crypto::hmac_sha256(salted, "Client Key"));
  c.server_key = crypto::hmac_sha256(salted, "Server Key");
  return c;
}

ScramCredentials scram_fake(std::string_view secret, std::string_view user, unsigned iterations) {
  // RFC 5802 5.1: a server may answer for an unknown user with a made-up salt and count, the
  // same on every try, so that the exchange does not tell who exists.
  std::string u(user);
  ScramCredentials c;
  c.salt = crypto::hmac_sha256(secret, "cmail scram salt\n" + u).substr(0, 16);
  c.iterations = iterations;
  c.stored_key = crypto::hmac_sha256(secret, "cmail scram stored key\n" + u);
  c.server_key = crypto::hmac_sha256(secret, "cmail scram server key\n" + u);
  c.known = false;
  return c;
}

const std::string& scram_process_secret() {
  static const std::string secret = [] {
    auto r = crypto::random_bytes(32);
    return r ? *r : std::string("cmail: no random secret");
  }();
  return secret;
}

std::string scram_escape(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c == ',') out += "=2C";       // RFC 5802 5.1
    else if (c == '=') out += "=3D";
    else out += c;
  }
  return out;
}

std::optional<std::string> scram_unescape(std::string_view s) {
  // RFC 5802 5.1: "=2C" and "=3D" only; any other '=' makes the name invalid.
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == ',' || s[i] == '\0') return std::nullopt;
    if (s[i] != '=') {
      out += s[i];
      continue;
    }
    std::string_view e = s.substr(i + 1, 2);
    if (e == "2C") out += ',';
    else if (e == "3D") out += '=';
    else return std::nullopt;
    i += 2;
  }
  if (out.empty() || !valid_utf8(out)) return std::nullopt;
  return out;
}

ScramServer::ScramServer(bool plus, std::string tls_exporter, const ScramOptions& options)
    : plus_(plus), exporter_(std::move(tls_exporter)), options_(options) {}

ScramServer::Step ScramServer::start(std::optional<std::string_view> initial) {
  round_ = Round::First;
  // RFC 5802 5: the client sends first; without an initial response an empty challenge asks
  // for it (RFC 4422 5).
  if (!initial) return Challenge{""};
  return client_first(*initial);
}

ScramServer::Step ScramServer::step(std::string_view response) {
  switch (round_) {
    case Round::First:
      return client_first(response);
    case Round::Final:
      return client_final(response);
    case Round::Acknowledge:
      // RFC 4954 4, RFC 5034 4, RFC 9051 6.2.2: additional data with success goes as a
      // challenge, and the client answers it with an empty response.
      round_ = Round::Done;
      if (!response.empty()) return Failed{"other-error"};
      return Checked{ScramResult{authzid_, authcid_, true}};
    case Round::Credentials:
    case Round::Done:
      break;
  }
  round_ = Round::Done;
  return Failed{"other-error"};
}

ScramServer::Step ScramServer::client_first(std::string_view m) {
  round_ = Round::Done;  // until the message is good
  // RFC 5802 7: client-first-message = gs2-header client-first-message-bare, gs2-header =
  // gs2-cbind-flag "," [authzid] ",".
  const auto c1 = m.find(',');
  if (c1 == std::string_view::npos) return Failed{"invalid-encoding"};
  const auto c2 = m.find(',', c1 + 1);
  if (c2 == std::string_view::npos) return Failed{"invalid-encoding"};
  const std::string_view flag = m.substr(0, c1), authz = m.substr(c1 + 1, c2 - c1 - 1);
  if (flag == "n") {
    // RFC 5802 6: a client that chose -PLUS must bind.
    if (plus_) return Failed{"other-error"};
  } else if (flag == "y") {
    if (plus_) return Failed{"other-error"};
    // RFC 5802 6: the client could bind but thinks we cannot, while we offered -PLUS: a
    // downgrade by someone in between.
    if (!exporter_.empty()) return Failed{"server-does-support-channel-binding"};
  } else if (flag.starts_with("p=")) {
    // RFC 5802 6: "p" only with the -PLUS mechanism; RFC 9266: tls-exporter is the type we bind.
    if (!plus_) return Failed{"other-error"};
    if (flag.substr(2) != "tls-exporter") return Failed{"unsupported-channel-binding-type"};
    if (exporter_.empty()) return Failed{"channel-binding-not-supported"};
  } else {
    return Failed{"invalid-encoding"};
  }
  authzid_.clear();
  if (!authz.empty()) {
    if (!authz.starts_with("a=")) return Failed{"invalid-encoding"};
    auto a = scram_unescape(authz.substr(2));
    if (!a || a->size() > kMaxName) return Failed{"invalid-encoding"};
    authzid_ = std::move(*a);
  }
  gs2_header_ = std::string(m.substr(0, c2 + 1));
  const std::string_view bare = m.substr(c2 + 1);
  // RFC 5802 5.1: "m" is reserved for a mandatory extension: the server must fail.
  if (bare.starts_with("m=")) return Failed{"extensions-not-supported"};
  auto parts = split_commas(bare);
  if (parts.size() < 2 || !parts[0].starts_with("n=") || !parts[1].starts_with("r="))
    return Failed{"invalid-encoding"};
  auto name = scram_unescape(parts[0].substr(2));
  if (!name || name->size() > kMaxName) return Failed{"invalid-username-encoding"};  // RFC 5802 7
  if (!printable_nonce(parts[1].substr(2))) return Failed{"invalid-encoding"};
  for (std::size_t i = 2; i < parts.size(); ++i)  // extensions we do not know are ignored
    if (!attr_val(parts[i])) return Failed{"invalid-encoding"};
  authcid_ = std::move(*name);
  nonce_ = std::string(parts[1].substr(2));
  client_first_bare_ = std::string(bare);
  round_ = Round::Credentials;
  return NeedCredentials{authzid_, authcid_};
}

ScramServer::Step ScramServer::credentials(const ScramCredentials* stored) {
  if (round_ != Round::Credentials) {
    round_ = Round::Done;
    return Failed{"other-error"};
  }
  // Stored values that cannot be right are taken as none.
  const bool usable = stored && stored->known && !stored->salt.empty() && stored->iterations > 0 &&
                      stored->stored_key.size() == crypto::kSha256Size &&
                      stored->server_key.size() == crypto::kSha256Size;
  if (usable) {
    creds_ = *stored;
  } else if (stored && !stored->known && !stored->salt.empty() && stored->iterations > 0) {
    creds_ = *stored;  // the Session's own made-up ones
  } else {
    const std::string& secret = options_.secret.empty() ? scram_process_secret() : options_.secret;
    creds_ = scram_fake(secret, authcid_, options_.fake_iterations ? options_.fake_iterations : kScramIterations);
  }
  const std::string server_nonce = options_.nonce ? options_.nonce() : random_nonce();
  if (!printable_nonce(server_nonce)) {
    round_ = Round::Done;
    return Failed{"other-error"};
  }
  // RFC 5802 5.1: server-first-message = nonce "," salt "," iteration-count; the nonce starts
  // with the client's.
  nonce_ += server_nonce;
  server_first_ = "r=" + nonce_ + ",s=" + base64_encode(creds_.salt) + ",i=" + std::to_string(creds_.iterations);
  round_ = Round::Final;
  return Challenge{server_first_};
}

ScramServer::Step ScramServer::client_final(std::string_view m) {
  round_ = Round::Done;
  // RFC 5802 7: client-final-message = client-final-message-without-proof "," proof, the proof
  // last; without-proof = channel-binding "," nonce ["," extensions].
  const auto p = m.rfind(",p=");
  if (p == std::string_view::npos) return Failed{"invalid-encoding"};
  const std::string_view without_proof = m.substr(0, p), proof_text = m.substr(p + 3);
  if (proof_text.find(',') != std::string_view::npos) return Failed{"invalid-encoding"};
  auto parts = split_commas(without_proof);
  if (parts.size() < 2 || !parts[0].starts_with("c=") || !parts[1].starts_with("r="))
    return Failed{"invalid-encoding"};
  for (std::size_t i = 2; i < parts.size(); ++i)
    if (!attr_val(parts[i])) return Failed{"invalid-encoding"};
  auto cbind = base64_decode(parts[0].substr(2));
  if (!cbind) return Failed{"invalid-encoding"};
  // RFC 5802 5.1: c= is the base64 of the gs2-header and, with "p", the channel binding data:
  // for tls-exporter, the exporter's 32 octets (RFC 9266 2). A mismatch is someone in between.
  const std::string expected = gs2_header_ + (gs2_header_.starts_with("p=") ? exporter_ : std::string());
  if (*cbind != expected) return Failed{"channel-bindings-dont-match"};
  // RFC 5802 5.1: the nonce must be the client's and the server's, exactly.
  if (parts[1].substr(2) != nonce_) return Failed{"other-error"};
  auto proof = base64_decode(proof_text);
  if (!proof || proof->size() != crypto::kSha256Size) return Failed{"invalid-encoding"};
  // RFC 5802 3: AuthMessage := client-first-message-bare + "," + server-first-message + "," +
  // client-final-message-without-proof; ClientKey := ClientProof XOR ClientSignature, which
  // must hash to StoredKey (compared in constant time).
  const std::string auth_message = client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);
  const std::string client_signature = crypto::hmac_sha256(creds_.stored_key, auth_message);
  const std::string client_key = xor_octets(*proof, client_signature);
  const bool match = crypto::constant_time_equal(crypto::sha256(client_key), creds_.stored_key);
  if (!match || !creds_.known) return Checked{ScramResult{authzid_, authcid_, false}};  // e=invalid-proof
  // RFC 5802 5.1: server-final-message = verifier, v= base64(ServerSignature).
  round_ = Round::Acknowledge;
  return Challenge{"v=" + base64_encode(crypto::hmac_sha256(creds_.server_key, auth_message))};
}

ScramClient::ScramClient(std::string authzid, std::string authcid, std::string password, std::string tls_exporter,
                         std::string nonce)
    : password_(std::move(password)), exporter_(std::move(tls_exporter)), nonce_(std::move(nonce)) {
  if (nonce_.empty()) nonce_ = random_nonce();
  // RFC 5802 6 / RFC 9266: "p=tls-exporter" with a binding; "n" without (we do not know
  // whether the server could bind, so never "y").
  gs2_header_ = exporter_.empty() ? "n," : "p=tls-exporter,";
  if (!authzid.empty()) gs2_header_ += "a=" + scram_escape(authzid);
  gs2_header_ += ',';
  client_first_bare_ = "n=" + scram_escape(authcid) + ",r=" + nonce_;
}

std::string ScramClient::fail(std::string why) {
  error_ = std::move(why);
  round_ = 2;
  return "*";
}

std::string ScramClient::respond(std::string_view challenge) {
  if (round_ == 0) {
    round_ = 1;
    // RFC 5802 5.1: r= (starting with our nonce), s=, i=, maybe extensions.
    if (challenge.starts_with("m=")) return fail("the server asks for an extension (m=)");
    auto parts = split_commas(challenge);
    if (parts.size() < 3 || !parts[0].starts_with("r=") || !parts[1].starts_with("s=") || !parts[2].starts_with("i="))
      return fail("malformed server-first-message");
    const std::string_view nonce = parts[0].substr(2);
    if (!printable_nonce(nonce) || nonce.size() <= nonce_.size() || !nonce.starts_with(nonce_))
      return fail("the server's nonce does not extend ours");
    auto salt = base64_decode(parts[1].substr(2));
    unsigned iterations = 0;
    if (!salt || salt->empty()) return fail("malformed salt");
    if (!parse_count(parts[2].substr(2), iterations)) return fail("malformed iteration count");
    // RFC 7677 4: at least 4096; and a bound, so that a server cannot make us spin.
    if (iterations < kScramMinIterations || iterations > kScramMaxIterations)
      return fail("iteration count out of range: " + std::to_string(iterations));
    // RFC 5802 2.2: a password SASLprep cannot prepare is refused, never used unprepared.
    auto prepared = saslprep(password_);
    if (!prepared) return fail("the password cannot be prepared with SASLprep");
    const std::string salted = crypto::pbkdf2_sha256(*prepared, *salt, iterations);  // RFC 5802 3
    const std::string client_key = crypto::hmac_sha256(salted, "Client Key");
    const std::string stored_key = crypto::sha256(client_key);
    const std::string without_proof =
        "c=" + base64_encode(gs2_header_ + exporter_) + ",r=" + std::string(nonce);
    const std::string auth_message = client_first_bare_ + "," + std::string(challenge) + "," + without_proof;
    const std::string proof = xor_octets(client_key, crypto::hmac_sha256(stored_key, auth_message));
    server_signature_ = crypto::hmac_sha256(crypto::hmac_sha256(salted, "Server Key"), auth_message);
    return without_proof + ",p=" + base64_encode(proof);
  }
  if (round_ == 1) {
    round_ = 2;
    if (challenge.starts_with("e=")) return fail("the server refused: " + std::string(challenge.substr(2)));
    auto parts = split_commas(challenge);
    if (!parts[0].starts_with("v=")) return fail("malformed server-final-message");
    auto v = base64_decode(parts[0].substr(2));
    if (!v || !crypto::constant_time_equal(*v, server_signature_)) return fail("wrong server signature");
    verified_ = true;
    return "";
  }
  return fail("unexpected challenge");
}

}  // namespace cmail::sasl
