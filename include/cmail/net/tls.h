// cmail/net/tls.h: TLS configuration for the runtime, on mbedTLS (hidden behind pimpl).
//
// A TlsServerContext holds a certificate chain and key loaded from PEM files; every TLS
// connection of a listener shares it. TLS 1.2 is the minimum; only ECDHE key exchange with
// AEAD ciphers (AES-GCM, ChaCha20-Poly1305) is offered, and renegotiation is off. (Debian 12's
// mbedTLS 2.28 has no production TLS 1.3.) generate_self_signed() makes the certificate of the
// zero-config `cmail serve`.
//
// Thread-safety: a context is immutable after load() and may be shared by threads.
#pragma once

#include <cmail/export.h>
#include <cmail/status.h>

#include <map>
#include <memory>
#include <string>
#include <utility>

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
