// libFuzzer target: SCRAM-SHA-256[-PLUS] (cmail/proto/scram.h). One input is up to three
// messages separated by LF: a client-first-message and a client-final-message for the server
// (byte 0 chooses -PLUS, a channel binding and whether the user has credentials), and a
// server-first-message for the client. The whole input also goes to SASLprep and the saslname
// codec. Invariants: nothing is proved without the acknowledging empty response; a challenge
// after client-first starts with the client's nonce; SASLprep's output holds no control
// character and is stable when it is all Latin-1; saslnames round-trip.
#include <cmail/base64.h>
#include <cmail/proto/scram.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <variant>

using namespace cmail;
using S = sasl::ScramServer;

namespace {

// Valid UTF-8 with every code point at most U+00FF: no lead octet above 0xC3.
bool latin1_only(const std::string& s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0xC4) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t flags = data[0];
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto nl = in.find('\n');
  const std::string_view first = in.substr(0, nl);
  const std::string_view rest = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  const auto nl2 = rest.find('\n');
  const std::string_view final_message = rest.substr(0, nl2);
  const std::string_view server_first = nl2 == std::string_view::npos ? std::string_view() : rest.substr(nl2 + 1);

  if (auto p = sasl::saslprep(in)) {
    for (char c : *p)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) std::abort();
    if (latin1_only(*p) && sasl::saslprep(*p) != p) std::abort();
  }
  if (auto n = sasl::scram_unescape(first)) {
    if (sasl::scram_unescape(sasl::scram_escape(*n)) != n) std::abort();
  }

  sasl::ScramOptions o;
  o.enabled = true;
  o.secret = "fuzz";
  o.fake_iterations = 4096;
  o.nonce = [] { return std::string("serverNONCE"); };
  const std::string exporter = (flags & 2) ? std::string(32, 'E') : std::string();
  S server((flags & 1) != 0, exporter, o);
  S::Step step = (flags & 8) ? server.start(std::nullopt) : server.start(first);
  if (flags & 8) step = server.step(first);
  auto proved = [](const S::Step& s) {
    auto* c = std::get_if<S::Checked>(&s);
    return c && c->result.proved;
  };
  if (proved(step)) std::abort();
  if (std::holds_alternative<S::NeedCredentials>(step)) {
    static const auto creds = sasl::scram_derive("pencil", "salt-of-sixteen!", 4096);
    step = server.credentials((flags & 4) ? &*creds : nullptr);
    auto* c = std::get_if<S::Challenge>(&step);
    if (!c || !c->data.starts_with("r=")) std::abort();
    step = server.step(final_message);
    if (proved(step)) std::abort();  // only after the empty response to v=
    if (std::holds_alternative<S::Challenge>(step) && proved(server.step("x"))) std::abort();
  }

  // The client, only with the count it would accept cheaply (PBKDF2 runs that often).
  if (server_first.find(",i=4096") != std::string_view::npos && server_first.size() < 512) {
    sasl::ScramClient client("", "user", "pencil", exporter, "clientNONCE");
    const std::string reply = client.respond(server_first);
    if (reply == "*" && client.error().empty()) std::abort();
    if (client.respond("v=" + base64_encode(std::string(32, 'v'))) != "*" && !client.server_verified()) std::abort();
  }
  return 0;
}
