// cmail/net/tls.h: TLS configuration for the runtime, on mbedTLS (hidden behind pimpl).
//
// A TlsServerContext holds a certificate chain and key loaded from PEM files; every TLS
// connection of a listener shares it. TLS 1.2 is the minimum; only ECDHE key exchange with
// AEAD ciphers (AES-GCM, ChaCha20-Poly1305) is offered, and renegotiation is off. (Debian 12's
// mbedTLS 2.28 has no production TLS 1.3.) generate_self_signed() makes the certificate of the
// zero-config `cmail serve`.
//
// A client context may authenticate servers by DANE instead (RFC 7672 3, RFC 6698 2.1): given
// TLSA records (TlsClientOptions::tlsa), the chain the server presents is checked against them
// alone, in mbedTLS's verification callback: a DANE-EE(3) record matching the leaf, or a
// DANE-TA(2) record matching a certificate of the chain that the leaf chains up to (signatures
// and validity below the trust anchor checked) and a name of the leaf equal to one of
// `tlsa_names` (cmail/mail/dane.h has the matching and the name rules). A server that fails
// ends the handshake: the connection closes with "TLS: DANE: certificate of HOST matches no
// TLSA record" or the like (Runtime::connect's reason); with one that passes, the handshake
// completes as usual.
//
// Thread-safety: a context is immutable after load() and may be shared by threads.
#pragma once

#include <cmail/export.h>
#include <cmail/mail/resolver.h>
#include <cmail/status.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace cmail::net {

class TlsFilter;

struct TlsServerOptions {
  std::string cert_file;  // PEM, the chain with the leaf first
  std::string key_file;   // PEM
};

class CMAIL_EXPORT TlsServerContext {
 public:
  static Result<std::shared_ptr<TlsServerContext>> load(const TlsServerOptions& options);
  ~TlsServerContext();
  struct Impl;  // mbedTLS's configuration, private to the runtime

 private:
  friend class TlsFilter;  // the runtime's TLS byte filter (libcmail/net/tls_filter.h)
  Impl& impl() const { return *impl_; }
  TlsServerContext();
  std::unique_ptr<Impl> impl_;
};

// Loads each certificate and key pair once, so that listeners naming the same files share one
// context. Not thread-safe; used while setting listeners up.
class CMAIL_EXPORT TlsServerContexts {
 public:
  Result<std::shared_ptr<TlsServerContext>> get(const std::string& cert_file, const std::string& key_file);

 private:
  std::map<std::pair<std::string, std::string>, std::shared_ptr<TlsServerContext>> loaded_;
};

struct TlsClientOptions {
  bool verify = true;  // check the chain against ca_file and the name against server_name
  std::string ca_file = "/etc/ssl/certs/ca-certificates.crt";
  std::string server_name;  // SNI and the name to verify
  // DANE: when not empty, the server is authenticated by these records alone (`verify` and
  // `ca_file` are then not used); only usable ones count (mail::dane::usable). The context is
  // then for one host: its records, and the names DANE-TA(2) checks the leaf for (RFC 7672
  // 3.2.2: the MX host and the next-hop domain; empty = the connection's server name).
  std::vector<mail::TlsaRecord> tlsa;
  std::vector<std::string> tlsa_names;
  // With verify: check the chain and the name, but let the handshake go on when they fail;
  // proto::TlsInfo::verify_error says why (MTA-STS testing mode, docs/tls-policy.md).
  bool verify_optional = false;
};

class CMAIL_EXPORT TlsClientContext {
 public:
  static Result<std::shared_ptr<TlsClientContext>> load(const TlsClientOptions& options);
  ~TlsClientContext();
  struct Impl;  // mbedTLS's configuration, private to the runtime
  const TlsClientOptions& options() const;

 private:
  friend class TlsFilter;
  Impl& impl() const { return *impl_; }
  TlsClientContext();
  std::unique_ptr<Impl> impl_;
};

// Writes a new ECDSA P-256 key (mode 0600) and a self-signed certificate for `hostname`
// (subjectAltName dNSName, valid ten years) in PEM.
CMAIL_EXPORT Status generate_self_signed(const std::string& cert_path, const std::string& key_path,
                                         const std::string& hostname);

}  // namespace cmail::net
