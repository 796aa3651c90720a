// tests/unit/scram_vectors.h: RFC 7677 3's example exchange of SCRAM-SHA-256 (user "user",
// password "pencil"), for the engines' tests: the server's nonce is injected through
// ScramOptions::nonce, so every message is known in advance.
#pragma once

#include <cmail/proto/scram.h>
#include <cmail/base64.h>

#include <string>

namespace cmail::test::rfc7677 {

inline const std::string kUser = "user";
inline const std::string kPassword = "pencil";
inline const std::string kClientNonce = "rOprNGfwEbeRWgbNEkqO";
inline const std::string kServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
inline const std::string kClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
inline const std::string kServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
inline const std::string kClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
inline const std::string kServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

// What the server stores for "pencil" with the example's salt and count.
inline sasl::ScramCredentials credentials() {
  return *sasl::scram_derive(kPassword, *base64_decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
}

// SCRAM enabled, with the example's server nonce.
inline sasl::ScramOptions options() {
  sasl::ScramOptions o;
  o.enabled = true;
  o.nonce = [] { return kServerNonce; };
  return o;
}

// The client-final-message a client with `password` (and `exporter`, for -PLUS) sends after
// `server_first`, with the example's client nonce.
inline std::string client_final(const std::string& user, const std::string& password, const std::string& server_first,
                                const std::string& exporter = {}) {
  sasl::ScramClient c("", user, password, exporter, kClientNonce);
  return c.respond(server_first);
}

inline std::string b64(const std::string& s) { return base64_encode(s); }

}  // namespace cmail::test::rfc7677
