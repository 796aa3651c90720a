// libcmail/net/tls_filter.h: mbedTLS as a byte filter over memory buffers (private).
//
// Ciphertext from the socket goes in with feed(); plaintext comes out of read(); plaintext to
// send goes in with write() and ciphertext for the socket comes out of take_ciphertext(). The
// handshake runs inside feed()/step(). No sockets, no threads.
//
// Thread-safety: one filter per connection, one thread.
#pragma once

#include <cmail/net/tls.h>
#include <cmail/proto/transport.h>

#include <memory>
#include <string>
#include <string_view>

namespace cmail::net {

class TlsFilter {
 public:
  static std::unique_ptr<TlsFilter> server(std::shared_ptr<TlsServerContext> ctx);
  // `server_name` (SNI and the name the certificate must carry when the context verifies)
  // overrides the context's own when not empty.
  static std::unique_ptr<TlsFilter> client(std::shared_ptr<TlsClientContext> ctx,
                                           const std::string& server_name = "");
  ~TlsFilter();

  // Takes ciphertext and advances the handshake or decrypts; returns false on a fatal error.
  bool feed(std::string_view ciphertext);
  // Decrypted bytes since the last call (appended to out). Returns false at close_notify/EOF.
  bool read(std::string& out);
  // Encrypts plaintext (only after the handshake). Returns false on error.
  bool write(std::string_view plaintext);
  std::string take_ciphertext();
  void close_notify();

  bool handshake_done() const { return done_; }
  bool failed() const { return failed_; }
  const std::string& error() const { return error_; }
  proto::TlsInfo info() const;
  // DANE (a client context with TLSA records): after the handshake, the record the server's
  // certificate matched ("DANE-EE 3 1 1 0a1b..."); "" otherwise.
  const std::string& dane_verified() const;

  struct Impl;  // mbedTLS's session, private to libcmail/net/tls.cc

 private:
  TlsFilter();
  bool step();  // the handshake
  std::unique_ptr<Impl> impl_;
  std::shared_ptr<void> keep_;  // the context outlives the session
  bool done_ = false;
  bool failed_ = false;
  bool verify_optional_ = false;  // client: TlsInfo::verify_error is filled
  std::string error_;
};

}  // namespace cmail::net
