// SCRAM-SHA-256 and -PLUS (cmail/proto/scram.h) and its framing in sasl::ServerAuth.
#include "scram_vectors.h"

#include <cmail/crypto/crypto.h>
#include <cmail/proto/sasl.h>

#include <doctest/doctest.h>

#include <variant>

using namespace cmail;
using namespace cmail::test;
namespace v = cmail::test::rfc7677;
using S = sasl::ScramServer;

namespace {

const std::string kExporter(32, '\x42');

// The step's kind and what it carries, for compact checks.
std::string show(const S::Step& s) {
  if (auto* c = std::get_if<S::Challenge>(&s)) return "challenge:" + c->data;
  if (auto* n = std::get_if<S::NeedCredentials>(&s)) return "need:" + n->authzid + "/" + n->authcid;
  if (auto* k = std::get_if<S::Checked>(&s))
    return std::string(k->result.proved ? "proved:" : "not-proved:") + k->result.authzid + "/" + k->result.authcid;
  return "failed:" + std::get<S::Failed>(s).reason;
}

// A server past the client-first-message `first`, given the example's credentials.
std::string after_first(S& server, const std::string& first, const sasl::ScramCredentials* creds) {
  std::string need = show(server.start(first));
  if (!need.starts_with("need:")) return need;
  return show(server.credentials(creds));
}

}  // namespace

TEST_CASE("scram: RFC 7677 3's example, server and client") {
  const auto creds = v::credentials();
  CHECK(creds.iterations == 4096);
  CHECK(creds.known);
  S server(false, "", v::options());
  CHECK(show(server.start(v::kClientFirst)) == "need:/user");
  CHECK(show(server.credentials(&creds)) == "challenge:" + v::kServerFirst);
  CHECK(show(server.step(v::kClientFinal)) == "challenge:" + v::kServerFinal);
  CHECK(show(server.step("")) == "proved:/user");

  sasl::ScramClient client("", v::kUser, v::kPassword, "", v::kClientNonce);
  CHECK(client.initial_response() == v::kClientFirst);
  CHECK(client.respond(v::kServerFirst) == v::kClientFinal);
  CHECK(client.respond(v::kServerFinal) == "");
  CHECK(client.server_verified());
  CHECK(client.error().empty());

  // Without an initial response the server asks for the first message with an empty challenge.
  S late(false, "", v::options());
  CHECK(show(late.start(std::nullopt)) == "challenge:");
  CHECK(show(late.step(v::kClientFirst)) == "need:/user");
}

TEST_CASE("scram: a wrong password, an unknown user, made-up credentials that stay the same") {
  const auto creds = v::credentials();
  S wrong(false, "", v::options());
  REQUIRE(after_first(wrong, v::kClientFirst, &creds) == "challenge:" + v::kServerFirst);
  CHECK(show(wrong.step(v::client_final("user", "pencil2", v::kServerFirst))) == "not-proved:/user");

  // No credentials: a salt and count all the same, on every try, for one secret and name.
  sasl::ScramOptions o = v::options();
  o.secret = "server secret";
  auto first_for = [&](const std::string& name, const sasl::ScramOptions& opts) {
    S s(false, "", opts);
    return after_first(s, "n,,n=" + name + ",r=" + v::kClientNonce, nullptr);
  };
  const std::string a = first_for("nobody", o);
  CHECK(a.starts_with("challenge:r=" + v::kClientNonce + v::kServerNonce + ",s="));
  CHECK(a.ends_with(",i=10000"));  // the default count of real credentials
  CHECK(first_for("nobody", o) == a);
  CHECK(first_for("somebody", o) != a);
  sasl::ScramOptions other = o;
  other.secret = "another secret";
  CHECK(first_for("nobody", other) != a);
  CHECK(sasl::scram_fake("k", "u").salt == sasl::scram_fake("k", "u").salt);
  CHECK(sasl::scram_fake("k", "u").salt.size() == 16);
  CHECK_FALSE(sasl::scram_fake("k", "u").known);

  // Even a proof that matches made-up keys proves nothing.
  sasl::ScramCredentials fake = sasl::scram_fake("k", "user", 4096);
  S s(false, "", v::options());
  REQUIRE(after_first(s, v::kClientFirst, &fake).starts_with("challenge:"));
  const std::string server_first = "r=" + v::kClientNonce + v::kServerNonce + ",s=" + v::b64(fake.salt) + ",i=4096";
  CHECK(show(s.step(v::client_final("user", "anything", server_first))) == "not-proved:/user");

  // Stored values that cannot be right are none.
  sasl::ScramCredentials broken = creds;
  broken.stored_key = "short";
  S b(false, "", v::options());
  CHECK(after_first(b, v::kClientFirst, &broken) != "challenge:" + v::kServerFirst);
}

TEST_CASE("scram: malformed messages fail with RFC 5802 7's error names") {
  const auto creds = v::credentials();
  struct Case {
    const char* message;
    const char* outcome;
  };
  const Case firsts[] = {
      {"", "failed:invalid-encoding"},
      {"n,", "failed:invalid-encoding"},
      {"x,,n=user,r=abc", "failed:invalid-encoding"},
      {"n,,m=ext,n=user,r=abc", "failed:extensions-not-supported"},  // RFC 5802 5.1
      {"n,,n=us=41er,r=abc", "failed:invalid-username-encoding"},
      {"n,,n=,r=abc", "failed:invalid-username-encoding"},
      {"n,,n=user", "failed:invalid-encoding"},
      {"n,,n=user,r=", "failed:invalid-encoding"},
      {"n,,r=abc,n=user", "failed:invalid-encoding"},
      {"n,,n=user,r=abc,", "failed:invalid-encoding"},
      {"n,,n=user,r=abc,x", "failed:invalid-encoding"},
      {"n,,n=user,r=a\x7f", "failed:invalid-encoding"},
      {"n,b=x,n=user,r=abc", "failed:invalid-encoding"},
      {"n,a=,n=user,r=abc", "failed:invalid-encoding"},
      {"n,,n=us\xff" "er,r=abc", "failed:invalid-username-encoding"},
      {"p=tls-exporter,,n=user,r=abc", "failed:other-error"},  // "p" needs -PLUS (RFC 5802 6)
      {"n,,n=user,r=abc,x=ignored", "need:/user"},            // unknown extensions are ignored
      {"n,a=admin,n=user,r=abc", "need:admin/user"},
      {"n,a=a=3Db=2Cc,n=u=2Cv,r=abc", "need:a=b,c/u,v"},
      {"y,,n=user,r=abc", "need:/user"},  // no binding offered here: "y" is fine
  };
  for (const auto& c : firsts) {
    CAPTURE(c.message);
    S s(false, "", v::options());
    CHECK(show(s.start(std::string_view(c.message))) == c.outcome);
  }

  const std::string good_first = v::kClientFirst;
  const std::string nonce = v::kClientNonce + v::kServerNonce;
  const std::string proof = ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
  const Case finals[] = {
      {"c=biws,r=x", "failed:invalid-encoding"},  // no proof
      {"r=x,c=biws,p=AA==", "failed:invalid-encoding"},
      {"c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AA==", "failed:channel-bindings-dont-match"},
      {"c=biws,r=rOprNGfwEbeRWgbNEkqO,p=AA==", "failed:other-error"},  // the server's half missing
      {"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AA==", "failed:invalid-encoding"},
      {"c=bi!s,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AA==", "failed:invalid-encoding"},
      {"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,x,p=AA==", "failed:invalid-encoding"},
  };
  for (const auto& c : finals) {
    CAPTURE(c.message);
    S s(false, "", v::options());
    REQUIRE(after_first(s, good_first, &creds) == "challenge:" + v::kServerFirst);
    CHECK(show(s.step(std::string_view(c.message))) == c.outcome);
  }
  // An extension before the proof is ignored, and is part of what the proof covers.
  {
    S s(false, "", v::options());
    REQUIRE(after_first(s, good_first, &creds).starts_with("challenge:"));
    CHECK(show(s.step("c=biws,r=" + nonce + ",x=1" + proof)) == "not-proved:/user");
  }
  // After the server signature only an empty response is right.
  S s(false, "", v::options());
  REQUIRE(after_first(s, good_first, &creds).starts_with("challenge:"));
  REQUIRE(show(s.step(v::kClientFinal)) == "challenge:" + v::kServerFinal);
  CHECK(show(s.step("v=x")) == "failed:other-error");
  CHECK(show(s.step("")) == "failed:other-error");  // over
  // credentials() out of turn.
  S early(false, "", v::options());
  CHECK(show(early.credentials(&creds)) == "failed:other-error");
}

TEST_CASE("scram: SCRAM-SHA-256-PLUS with tls-exporter, mismatches and downgrades refused") {
  const auto creds = v::credentials();
  const std::string nonce = v::kClientNonce + v::kServerNonce;
  const std::string server_first = "r=" + nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
  {
    S s(true, kExporter, v::options());
    sasl::ScramClient c("", "user", "pencil", kExporter, v::kClientNonce);
    CHECK(c.initial_response() == "p=tls-exporter,,n=user,r=" + v::kClientNonce);
    REQUIRE(after_first(s, c.initial_response(), &creds) == "challenge:" + server_first);
    const std::string final_message = c.respond(server_first);
    // RFC 5802 5.1, RFC 9266 2: c= is the gs2-header and the exporter's octets.
    CHECK(final_message.starts_with("c=" + v::b64("p=tls-exporter,," + kExporter) + ",r=" + nonce + ",p="));
    auto signature = s.step(final_message);
    REQUIRE(std::holds_alternative<S::Challenge>(signature));
    CHECK(c.respond(std::get<S::Challenge>(signature).data) == "");
    CHECK(c.server_verified());
    CHECK(show(s.step("")) == "proved:/user");
  }
  {  // The client is bound to another channel: someone in between (RFC 5802 6).
    S s(true, kExporter, v::options());
    sasl::ScramClient c("", "user", "pencil", std::string(32, '\x43'), v::kClientNonce);
    REQUIRE(after_first(s, c.initial_response(), &creds).starts_with("challenge:"));
    CHECK(show(s.step(c.respond(server_first))) == "failed:channel-bindings-dont-match");
  }
  {  // A right binding under a wrong header: the c= checked is the header of the first message.
    S s(true, kExporter, v::options());
    REQUIRE(after_first(s, "p=tls-exporter,,n=user,r=" + v::kClientNonce, &creds).starts_with("challenge:"));
    CHECK(show(s.step("c=" + v::b64("n,," + kExporter) + ",r=" + nonce + ",p=" + v::b64(std::string(32, 'x')))) ==
          "failed:channel-bindings-dont-match");
  }
  // "y" where -PLUS was offered: a downgrade (RFC 5802 6).
  S down(false, kExporter, v::options());
  CHECK(show(down.start("y,,n=user,r=abc")) == "failed:server-does-support-channel-binding");
  // "n" is still fine on a connection that could bind: the client does not bind at all.
  S plain(false, kExporter, v::options());
  CHECK(show(plain.start("n,,n=user,r=abc")) == "need:/user");
  // -PLUS must bind, and with tls-exporter.
  S unbound(true, kExporter, v::options());
  CHECK(show(unbound.start("n,,n=user,r=abc")) == "failed:other-error");
  S y_plus(true, kExporter, v::options());
  CHECK(show(y_plus.start("y,,n=user,r=abc")) == "failed:other-error");
  S unique(true, kExporter, v::options());
  CHECK(show(unique.start("p=tls-unique,,n=user,r=abc")) == "failed:unsupported-channel-binding-type");
  S none(true, "", v::options());
  CHECK(show(none.start("p=tls-exporter,,n=user,r=abc")) == "failed:channel-binding-not-supported");
}

TEST_CASE("scram: the client refuses bad server messages") {
  auto fresh = [] { return sasl::ScramClient("", "user", "pencil", "", v::kClientNonce); };
  const std::string bad_firsts[] = {
      "r=someone-else,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
      "r=" + v::kClientNonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",  // nothing added
      "r=" + v::kClientNonce + "x,s=,i=4096",
      "r=" + v::kClientNonce + "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095",  // RFC 7677 4
      "r=" + v::kClientNonce + "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999",
      "r=" + v::kClientNonce + "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=04096",
      "m=x,r=" + v::kClientNonce + "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
      "garbage",
  };
  for (const auto& m : bad_firsts) {
    CAPTURE(m);
    auto c = fresh();
    CHECK(c.respond(m) == "*");
    CHECK_FALSE(c.error().empty());
  }
  auto c = fresh();
  REQUIRE(c.respond(v::kServerFirst) == v::kClientFinal);
  CHECK(c.respond("v=" + v::b64(std::string(32, 'x'))) == "*");  // a server that does not know the key
  CHECK_FALSE(c.server_verified());
  auto e = fresh();
  REQUIRE(e.respond(v::kServerFirst) == v::kClientFinal);
  CHECK(e.respond("e=invalid-proof") == "*");
  CHECK(e.error().find("invalid-proof") != std::string::npos);
  // A password SASLprep cannot prepare is not sent unprepared (RFC 5802 2.2).
  sasl::ScramClient bell("", "user", "a\x07", "", v::kClientNonce);
  CHECK(bell.respond(v::kServerFirst) == "*");
}

TEST_CASE("scram: SASLprep, RFC 4013 3's examples and what cmail leaves out") {
  CHECK(sasl::saslprep("I\xC2\xAD" "X") == std::optional<std::string>("IX"));  // U+00AD mapped to nothing
  CHECK(sasl::saslprep("user") == std::optional<std::string>("user"));
  CHECK(sasl::saslprep("USER") == std::optional<std::string>("USER"));             // no case folding
  CHECK(sasl::saslprep("\xC2\xAA") == std::optional<std::string>("a"));             // U+00AA, NFKC
  CHECK(sasl::saslprep("\x07") == std::nullopt);                                    // prohibited
  CHECK(sasl::saslprep("\xD8\xA7" "1") == std::nullopt);                            // U+0627: beyond U+00FF
  CHECK(sasl::saslprep("\xE2\x85\xA8") == std::nullopt);  // U+2168 -> "IX" needs Unicode's NFKC tables
  // Spaces, Latin-1 letters, the rest of the compatibility characters.
  CHECK(sasl::saslprep("a\xC2\xA0" "b\xE2\x80\x83" "c") == std::optional<std::string>("a b c"));  // C.1.2
  CHECK(sasl::saslprep("a\xE2\x80\x8B" "b\xEF\xBB\xBF") == std::optional<std::string>("ab"));      // B.1
  CHECK(sasl::saslprep("Gr\xC3\xBC\xC3\x9F" "e") == std::optional<std::string>("Gr\xC3\xBC\xC3\x9F" "e"));
  CHECK(sasl::saslprep("x\xC2\xB2\xC2\xBD") == std::optional<std::string>("x21\xE2\x81\x84" "2"));
  CHECK(sasl::saslprep("\xC2\xB5") == std::optional<std::string>("\xCE\xBC"));
  CHECK(sasl::saslprep("p w") == std::optional<std::string>("p w"));
  CHECK(sasl::saslprep("\xC2\x85") == std::nullopt);       // C.2.2
  CHECK(sasl::saslprep("\x7f") == std::nullopt);           // C.2.1
  CHECK(sasl::saslprep("\xC3") == std::nullopt);           // not UTF-8
  CHECK(sasl::saslprep("\xC0\xAF") == std::nullopt);       // overlong
  CHECK(sasl::saslprep("\xED\xA0\x80") == std::nullopt);   // a surrogate
  CHECK(sasl::saslprep("\xF4\x90\x80\x80") == std::nullopt);  // above U+10FFFF
  // Derivation prepares the password first: a mapped character changes nothing.
  const std::string salt = "0123456789abcdef";
  CHECK(sasl::scram_derive("pen\xC2\xAD" "cil", salt, 4096)->stored_key ==
        sasl::scram_derive("pencil", salt, 4096)->stored_key);
  CHECK(sasl::scram_derive("\xE2\x85\xA8", salt, 4096) == std::nullopt);
  CHECK(sasl::scram_derive("pencil", "", 4096) == std::nullopt);
}

TEST_CASE("scram: saslname escaping (RFC 5802 5.1)") {
  CHECK(sasl::scram_escape("a,b=c") == "a=2Cb=3Dc");
  CHECK(sasl::scram_unescape("a=2Cb=3Dc") == std::optional<std::string>("a,b=c"));
  CHECK(sasl::scram_unescape("a=41") == std::nullopt);
  CHECK(sasl::scram_unescape("a=2") == std::nullopt);
  CHECK(sasl::scram_unescape("") == std::nullopt);
  CHECK(sasl::scram_unescape("a,b") == std::nullopt);
}

TEST_CASE("sasl::ServerAuth: SCRAM offered when enabled, -PLUS only with a channel binding") {
  using A = sasl::ServerAuth;
  A off("334 ");
  CHECK(off.offered_names() == "PLAIN LOGIN");
  CHECK(std::holds_alternative<A::UnknownMechanism>(off.start("SCRAM-SHA-256")));
  A on("334 ", v::options());
  CHECK(on.offered_names() == "PLAIN LOGIN SCRAM-SHA-256");
  CHECK(std::holds_alternative<A::UnknownMechanism>(on.start("SCRAM-SHA-256-PLUS")));
  on.set_channel_binding(kExporter);
  CHECK(on.offered_names("\r\n") == "PLAIN\r\nLOGIN\r\nSCRAM-SHA-256\r\nSCRAM-SHA-256-PLUS");

  // The exchange on the wire: the lookup, then base64 challenges, the empty acknowledgement.
  A auth("+ ", v::options());
  auto lookup = auth.start("scram-sha-256 " + v::b64(v::kClientFirst));
  REQUIRE(std::holds_alternative<A::ScramLookup>(lookup));
  CHECK(std::get<A::ScramLookup>(lookup).authcid == "user");
  CHECK(auth.active());
  const auto creds = v::credentials();
  auto first = auth.scram_credentials(&creds);
  REQUIRE(std::holds_alternative<A::Challenge>(first));
  CHECK(std::get<A::Challenge>(first).line == "+ " + v::b64(v::kServerFirst) + "\r\n");
  auto last = auth.respond(v::b64(v::kClientFinal));
  REQUIRE(std::holds_alternative<A::Challenge>(last));
  CHECK(std::get<A::Challenge>(last).line == "+ " + v::b64(v::kServerFinal) + "\r\n");
  auto done = auth.respond("");
  REQUIRE(std::holds_alternative<A::ScramChecked>(done));
  CHECK(std::get<A::ScramChecked>(done).result.proved);
  CHECK_FALSE(auth.active());
  // A cancel in the middle; a malformed message is a plain failure.
  REQUIRE(std::holds_alternative<A::ScramLookup>(auth.start("SCRAM-SHA-256 " + v::b64(v::kClientFirst))));
  REQUIRE(std::holds_alternative<A::Challenge>(auth.scram_credentials(nullptr)));
  CHECK(std::holds_alternative<A::Cancelled>(auth.respond("*")));
  auto bad = auth.start("SCRAM-SHA-256 " + v::b64("n,,n=user"));
  REQUIRE(std::holds_alternative<A::Failed>(bad));
  CHECK(std::get<A::Failed>(bad).reason == "invalid-encoding");
  CHECK_FALSE(auth.active());

  // ClientExchange speaks SCRAM too, with or without an initial response.
  for (bool ir : {true, false}) {
    CAPTURE(ir);
    A server("334 ", v::options());
    server.set_channel_binding(kExporter);
    sasl::ClientExchange client(sasl::Mechanism::ScramSha256Plus, {"", "user", "pencil"}, kExporter);
    A::Step step = ir ? server.start("SCRAM-SHA-256-PLUS " + v::b64(*client.initial_response()))
                      : server.start("SCRAM-SHA-256-PLUS");
    if (!ir) {
      REQUIRE(std::holds_alternative<A::Challenge>(step));
      step = server.respond(v::b64(client.respond("")));
    }
    REQUIRE(std::holds_alternative<A::ScramLookup>(step));
    step = server.scram_credentials(&creds);
    for (int i = 0; i < 3 && std::holds_alternative<A::Challenge>(step); ++i) {
      std::string line = std::get<A::Challenge>(step).line;
      auto challenge = base64_decode(line.substr(4, line.size() - 6));
      REQUIRE(challenge);
      step = server.respond(v::b64(client.respond(*challenge)));
    }
    REQUIRE(std::holds_alternative<A::ScramChecked>(step));
    CHECK(std::get<A::ScramChecked>(step).result.proved);
    CHECK(client.error().empty());
  }
}
