// TLS contexts, the memory-buffer filter, and self-signed certificates on mbedTLS 2.28.
#include "tls_filter.h"

#include <cmail/mail/dane.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/ssl_internal.h>  // the handshake's extended_ms, for the tls-exporter
#include <mbedtls/x509_crt.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <mutex>

namespace cmail::net {

namespace {

std::string mbed_error(int rc) {
  char buf[160];
  mbedtls_strerror(rc, buf, sizeof buf);
  return buf;
}

// IoError unless `file` is a regular file (mbedTLS reads whatever it is given to its end: a
// directory, a FIFO or a device would be read as a size it cannot allocate, or for ever).
Status regular_file(const std::string& what, const std::string& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0)
    return Status::io_error("cannot load " + what + " " + file + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return Status::io_error("cannot load " + what + " " + file + ": not a regular file");
  return Status();
}

// A PEM file that could not be used: IoError when it could not be read (missing, no
// permission), InvalidArgument when what it holds is not a certificate or key.
Status file_error(int rc, const std::string& what, const std::string& file) {
  const std::string msg = "cannot load " + what + " " + file + ": " + mbed_error(rc);
  if (rc == MBEDTLS_ERR_X509_FILE_IO_ERROR || rc == MBEDTLS_ERR_PK_FILE_IO_ERROR) return Status::io_error(msg);
  return Status::invalid_argument(msg);
}

// ECDHE with AEAD only, strongest first (TLS 1.2).
const int kCiphersuites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    0,
};

// One random generator per context (mbedtls_ctr_drbg_random is not thread-safe without
// MBEDTLS_THREADING_C, so calls are serialized).
struct Rng {
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  std::mutex mu;
  Rng() {
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
  }
  ~Rng() {
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
  }
  int seed() {
    static const unsigned char kPers[] = "cmail";
    return mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, kPers, sizeof kPers - 1);
  }
  static int random(void* self, unsigned char* out, std::size_t n) {
    auto* r = static_cast<Rng*>(self);
    std::lock_guard lock(r->mu);
    return mbedtls_ctr_drbg_random(&r->drbg, out, n);
  }
};

// The tls-exporter channel binding (RFC 9266) of the handshake running on this thread.
// mbedTLS 2.28 has no exporter API and calls its key export callback with the configuration's
// argument, not the connection's: TlsFilter::step() says which connection is handshaking (the
// callback runs inside mbedtls_ssl_handshake, on the same thread).
struct ExportTarget {
  const mbedtls_ssl_context* ssl;
  std::string* exporter;
};
thread_local ExportTarget* t_export = nullptr;

int export_keys(void*, const unsigned char* master, const unsigned char*, std::size_t, std::size_t, std::size_t,
                const unsigned char client_random[32], const unsigned char server_random[32],
                mbedtls_tls_prf_types prf) {
  ExportTarget* t = t_export;
  if (!t) return 0;
  t->exporter->clear();
  // RFC 9266 2: with TLS 1.2, tls-exporter only after the extended master secret (RFC 7627),
  // which binds the master secret to the whole handshake.
  if (!t->ssl->handshake || t->ssl->handshake->extended_ms != MBEDTLS_SSL_EXTENDED_MS_ENABLED) return 0;
  // RFC 5705 4: PRF(master_secret, label, client_random + server_random) without a context;
  // RFC 9266 2: the label "EXPORTER-Channel-Binding", 32 octets.
  unsigned char seed[64];
  std::memcpy(seed, client_random, 32);
  std::memcpy(seed + 32, server_random, 32);
  unsigned char out[32];
  if (mbedtls_ssl_tls_prf(prf, master, 48, "EXPORTER-Channel-Binding", seed, sizeof seed, out, sizeof out) == 0)
    t->exporter->assign(reinterpret_cast<const char*>(out), sizeof out);
  return 0;
}

}  // namespace

struct TlsServerContext::Impl {
  Rng rng;
  mbedtls_ssl_config conf;
  mbedtls_x509_crt cert;
  mbedtls_pk_context key;
  Impl() {
    mbedtls_ssl_config_init(&conf);
    mbedtls_x509_crt_init(&cert);
    mbedtls_pk_init(&key);
  }
  ~Impl() {
    mbedtls_pk_free(&key);
    mbedtls_x509_crt_free(&cert);
    mbedtls_ssl_config_free(&conf);
  }
};

TlsServerContext::TlsServerContext() : impl_(std::make_unique<Impl>()) {}
TlsServerContext::~TlsServerContext() = default;

Result<std::shared_ptr<TlsServerContext>> TlsServerContext::load(const TlsServerOptions& o) {
  std::shared_ptr<TlsServerContext> ctx(new TlsServerContext());
  Impl& i = *ctx->impl_;
  if (int rc = i.rng.seed(); rc != 0) return Status::internal("TLS random generator: " + mbed_error(rc));
  if (Status st = regular_file("certificate", o.cert_file); !st.ok()) return st;
  if (Status st = regular_file("key", o.key_file); !st.ok()) return st;
  if (int rc = mbedtls_x509_crt_parse_file(&i.cert, o.cert_file.c_str()); rc != 0)
    return file_error(rc, "certificate", o.cert_file);
  if (int rc = mbedtls_pk_parse_keyfile(&i.key, o.key_file.c_str(), nullptr); rc != 0)
    return file_error(rc, "key", o.key_file);
  if (int rc = mbedtls_ssl_config_defaults(&i.conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                           MBEDTLS_SSL_PRESET_DEFAULT);
      rc != 0)
    return Status::internal("TLS config: " + mbed_error(rc));
  mbedtls_ssl_conf_rng(&i.conf, Rng::random, &i.rng);
  mbedtls_ssl_conf_min_version(&i.conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);  // TLS 1.2+
  mbedtls_ssl_conf_ciphersuites(&i.conf, kCiphersuites);
  mbedtls_ssl_conf_renegotiation(&i.conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
  mbedtls_ssl_conf_export_keys_ext_cb(&i.conf, export_keys, nullptr);  // the tls-exporter (RFC 9266)
  if (int rc = mbedtls_ssl_conf_own_cert(&i.conf, &i.cert, &i.key); rc != 0)
    return Status::invalid_argument("certificate " + o.cert_file + " does not match key " + o.key_file + ": " +
                                    mbed_error(rc));
  return ctx;
}

Result<std::shared_ptr<TlsServerContext>> TlsServerContexts::get(const std::string& cert, const std::string& key) {
  auto& ctx = loaded_[{cert, key}];
  if (!ctx) {
    auto loaded = TlsServerContext::load({cert, key});
    if (!loaded) return loaded.error();
    ctx = *loaded;
  }
  return ctx;
}

struct TlsClientContext::Impl {
  Rng rng;
  mbedtls_ssl_config conf;
  mbedtls_x509_crt ca;
  TlsClientOptions options;
  Impl() {
    mbedtls_ssl_config_init(&conf);
    mbedtls_x509_crt_init(&ca);
  }
  ~Impl() {
    mbedtls_x509_crt_free(&ca);
    mbedtls_ssl_config_free(&conf);
  }
};

TlsClientContext::TlsClientContext() : impl_(std::make_unique<Impl>()) {}
TlsClientContext::~TlsClientContext() = default;
const TlsClientOptions& TlsClientContext::options() const { return impl_->options; }

Result<std::shared_ptr<TlsClientContext>> TlsClientContext::load(const TlsClientOptions& o) {
  std::shared_ptr<TlsClientContext> ctx(new TlsClientContext());
  Impl& i = *ctx->impl_;
  i.options = o;
  if (int rc = i.rng.seed(); rc != 0) return Status::internal("TLS random generator: " + mbed_error(rc));
  if (int rc = mbedtls_ssl_config_defaults(&i.conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                           MBEDTLS_SSL_PRESET_DEFAULT);
      rc != 0)
    return Status::internal("TLS config: " + mbed_error(rc));
  mbedtls_ssl_conf_rng(&i.conf, Rng::random, &i.rng);
  mbedtls_ssl_conf_min_version(&i.conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_renegotiation(&i.conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
  mbedtls_ssl_conf_export_keys_ext_cb(&i.conf, export_keys, nullptr);  // the tls-exporter (RFC 9266)
  if (!o.tlsa.empty()) {
    // DANE (RFC 7672 3): the callback TlsFilter::client sets decides; OPTIONAL so that
    // mbedTLS neither wants a CA chain nor fails on PKIX's flags, which the callback clears.
    mbedtls_ssl_conf_authmode(&i.conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
  } else if (o.verify) {
    if (Status st = regular_file("CA file", o.ca_file); !st.ok()) return st;
    if (int rc = mbedtls_x509_crt_parse_file(&i.ca, o.ca_file.c_str()); rc < 0)
      return file_error(rc, "CA file", o.ca_file);
    mbedtls_ssl_conf_ca_chain(&i.conf, &i.ca, nullptr);
    mbedtls_ssl_conf_authmode(&i.conf, o.verify_optional ? MBEDTLS_SSL_VERIFY_OPTIONAL : MBEDTLS_SSL_VERIFY_REQUIRED);
  } else {
    mbedtls_ssl_conf_authmode(&i.conf, MBEDTLS_SSL_VERIFY_NONE);  // opportunistic (RFC 7435)
  }
  return ctx;
}


struct TlsFilter::Impl {
  mbedtls_ssl_context ssl;
  std::string in;   // ciphertext received, not yet consumed by mbedTLS
  std::string out;  // ciphertext to send
  // DANE: the records and names to check (the context's options), the server's name, and
  // what the check found: the record that matched, or why none did.
  const TlsClientOptions* dane = nullptr;
  std::string host;
  std::string verified, dane_error;
  std::string exporter;  // the tls-exporter, once the keys are derived (RFC 9266)
  Impl() { mbedtls_ssl_init(&ssl); }
  ~Impl() { mbedtls_ssl_free(&ssl); }
  static int send(void* self, const unsigned char* buf, std::size_t len) {
    static_cast<Impl*>(self)->out.append(reinterpret_cast<const char*>(buf), len);
    return static_cast<int>(len);
  }
  static int recv(void* self, unsigned char* buf, std::size_t len) {
    auto* i = static_cast<Impl*>(self);
    if (i->in.empty()) return MBEDTLS_ERR_SSL_WANT_READ;
    std::size_t n = std::min(len, i->in.size());
    std::memcpy(buf, i->in.data(), n);
    i->in.erase(0, n);
    return static_cast<int>(n);
  }
};

namespace {

std::string octets(const mbedtls_x509_buf& b) {
  return b.p ? std::string(reinterpret_cast<const char*>(b.p), b.len) : std::string();
}

// The names of a leaf certificate for the DANE-TA name check: its subjectAltName dNSNames, or
// its subject CNs when it has none (RFC 7672 3.2.3, RFC 6125 6.4.4).
std::vector<std::string> names_of(const mbedtls_x509_crt* crt) {
  std::vector<std::string> out;
  for (const mbedtls_x509_sequence* s = &crt->subject_alt_names; s; s = s->next)
    if (s->buf.p && s->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_DNS_NAME)) out.push_back(octets(s->buf));
  if (!out.empty()) return out;
  for (const mbedtls_x509_name* n = &crt->subject; n; n = n->next)
    if (n->oid.p && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0) out.push_back(octets(n->val));
  return out;
}

// The leaf chains up to `anchor` (a certificate the server presented that a DANE-TA record
// matched): signatures, CA constraints and validity as PKIX checks them from a trust anchor
// down (RFC 7672 3.1.2), the anchor's own validity aside (the DNS vouches for it, not its
// dates). "" when it does, else why not.
std::string chains_to(mbedtls_x509_crt* leaf, const mbedtls_x509_crt* anchor) {
  mbedtls_x509_crt ta;
  mbedtls_x509_crt_init(&ta);
  std::string why;
  if (int rc = mbedtls_x509_crt_parse_der(&ta, anchor->raw.p, anchor->raw.len); rc != 0) {
    why = "the trust anchor does not parse: " + mbed_error(rc);
  } else {
    std::uint32_t flags = 0;
    auto anchor_dates = [](void* p, mbedtls_x509_crt* crt, int, std::uint32_t* f) {
      if (crt == p) *f &= ~static_cast<std::uint32_t>(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE);
      return 0;
    };
    int vrc = mbedtls_x509_crt_verify(leaf, &ta, nullptr, nullptr, &flags, anchor_dates, &ta);
    if (vrc != 0 || flags != 0) {
      char buf[256] = {};
      mbedtls_x509_crt_verify_info(buf, sizeof buf, "", flags);
      std::string info(buf);
      while (!info.empty() && (info.back() == '\n' || info.back() == ' ')) info.pop_back();
      for (auto& c : info) if (c == '\n') c = ';';
      why = "its chain does not verify up to the trust anchor" + (info.empty() ? std::string() : " (" + info + ")");
    }
  }
  mbedtls_x509_crt_free(&ta);
  return why;
}

}  // namespace

// mbedTLS calls this for every certificate of the chain it built, the leaf (depth 0) last.
// PKIX's flags are cleared: DANE decides alone (RFC 7672 3.1), at the leaf, over the chain as
// the server presented it (crt and its `next`).
static int dane_verify(void* p, mbedtls_x509_crt* crt, int depth, std::uint32_t* flags) {
  auto* i = static_cast<TlsFilter::Impl*>(p);
  *flags = 0;
  if (depth != 0) return 0;
  std::vector<mail::dane::Certificate> chain;
  for (const mbedtls_x509_crt* c = crt; c && c->raw.p; c = c->next) chain.push_back({octets(c->raw), octets(c->pk_raw)});
  const std::vector<mail::TlsaRecord>& records = i->dane->tlsa;
  if (auto r = mail::dane::match_end_entity(records, chain)) {
    i->verified = "DANE-EE " + mail::dane::to_string(*r, 16);  // RFC 7672 3.1.1: no name, no dates
    return 0;
  }
  const std::vector<std::string> refs = i->dane->tlsa_names.empty() ? mail::dane::reference_names(i->host, "")
                                                                    : i->dane->tlsa_names;
  std::string why;
  for (const mail::dane::AnchorMatch& m : mail::dane::match_trust_anchor(records, chain)) {
    const mbedtls_x509_crt* anchor = crt;
    for (std::size_t k = 0; k < m.index; ++k) anchor = anchor->next;
    if (m.index > 0) {  // the leaf itself as the anchor needs no signature
      why = chains_to(crt, anchor);
      if (!why.empty()) continue;
    }
    if (!mail::dane::name_matches(names_of(crt), refs)) {  // RFC 7672 3.2
      std::string list;
      for (const auto& n : refs) list += (list.empty() ? "" : ", ") + n;
      why = "it does not carry the name " + list;
      continue;
    }
    i->verified = "DANE-TA " + mail::dane::to_string(m.record, 16);
    return 0;
  }
  i->dane_error = "DANE: certificate of " + i->host +
                  (why.empty() ? " matches no TLSA record" : " matches a DANE-TA record, but " + why);
  return MBEDTLS_ERR_X509_CERT_VERIFY_FAILED;  // fatal: the handshake ends with an alert
}

TlsFilter::TlsFilter() : impl_(std::make_unique<Impl>()) {}
TlsFilter::~TlsFilter() = default;

std::unique_ptr<TlsFilter> TlsFilter::server(std::shared_ptr<TlsServerContext> ctx) {
  std::unique_ptr<TlsFilter> f(new TlsFilter());
  if (int rc = mbedtls_ssl_setup(&f->impl_->ssl, &ctx->impl().conf); rc != 0) {
    f->failed_ = true;
    f->error_ = mbed_error(rc);
  }
  mbedtls_ssl_set_bio(&f->impl_->ssl, f->impl_.get(), Impl::send, Impl::recv, nullptr);
  f->keep_ = std::move(ctx);
  return f;
}

std::unique_ptr<TlsFilter> TlsFilter::client(std::shared_ptr<TlsClientContext> ctx, const std::string& server_name) {
  std::unique_ptr<TlsFilter> f(new TlsFilter());
  if (int rc = mbedtls_ssl_setup(&f->impl_->ssl, &ctx->impl().conf); rc != 0) {
    f->failed_ = true;
    f->error_ = mbed_error(rc);
  }
  const std::string& name = server_name.empty() ? ctx->options().server_name : server_name;
  if (!name.empty()) mbedtls_ssl_set_hostname(&f->impl_->ssl, name.c_str());  // SNI + name check
  if (!ctx->options().tlsa.empty()) {
    // RFC 7672 8.1: SNI (set above) names the TLSA base domain; the chain is DANE's to judge.
    f->impl_->dane = &ctx->options();
    f->impl_->host = name;
    mbedtls_ssl_set_verify(&f->impl_->ssl, dane_verify, f->impl_.get());
  }
  mbedtls_ssl_set_bio(&f->impl_->ssl, f->impl_.get(), Impl::send, Impl::recv, nullptr);
  f->verify_optional_ = ctx->options().verify && ctx->options().verify_optional;
  f->keep_ = std::move(ctx);
  if (!f->failed_) f->step();  // the ClientHello
  return f;
}

bool TlsFilter::step() {
  if (done_ || failed_) return !failed_;
  ExportTarget target{&impl_->ssl, &impl_->exporter};
  t_export = &target;
  int rc = mbedtls_ssl_handshake(&impl_->ssl);
  t_export = nullptr;
  if (rc == 0 && impl_->dane && impl_->verified.empty()) {
    failed_ = true;  // never without the check (a chain mbedTLS could not walk)
    error_ = "DANE: the certificate of " + impl_->host + " was not checked";
  } else if (rc == 0) {
    done_ = true;
  } else if (rc != MBEDTLS_ERR_SSL_WANT_READ && rc != MBEDTLS_ERR_SSL_WANT_WRITE) {
    failed_ = true;
    error_ = impl_->dane_error.empty() ? mbed_error(rc) : impl_->dane_error;
  }
  return !failed_;
}

bool TlsFilter::feed(std::string_view ciphertext) {
  impl_->in.append(ciphertext);
  return step();
}

bool TlsFilter::read(std::string& out) {
  if (!done_) return !failed_;
  unsigned char buf[16384];
  for (;;) {
    int n = mbedtls_ssl_read(&impl_->ssl, buf, sizeof buf);
    if (n > 0) {
      out.append(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(n));
      continue;
    }
    if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE) return true;
    if (n != 0 && n != MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
      failed_ = true;
      error_ = mbed_error(n);
    }
    return false;  // closed
  }
}

bool TlsFilter::write(std::string_view plaintext) {
  if (!done_ || failed_) return false;
  while (!plaintext.empty()) {
    int n = mbedtls_ssl_write(&impl_->ssl, reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size());
    if (n < 0) {
      failed_ = true;
      error_ = mbed_error(n);
      return false;
    }
    plaintext.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string TlsFilter::take_ciphertext() {
  std::string out;
  out.swap(impl_->out);
  return out;
}

void TlsFilter::close_notify() {
  if (done_ && !failed_) mbedtls_ssl_close_notify(&impl_->ssl);
}

const std::string& TlsFilter::dane_verified() const { return impl_->verified; }

proto::TlsInfo TlsFilter::info() const {
  proto::TlsInfo i;
  i.version = mbedtls_ssl_get_version(&impl_->ssl);
  i.cipher = mbedtls_ssl_get_ciphersuite(&impl_->ssl);
  i.bits = 0;
  if (verify_optional_) {
    const std::uint32_t flags = mbedtls_ssl_get_verify_result(&impl_->ssl);
    if (flags != 0) {
      char buf[512];
      if (mbedtls_x509_crt_verify_info(buf, sizeof buf, "", flags) < 0) buf[0] = 0;
      std::string why(buf);
      for (char& c : why)
        if (c == '\n') c = ';';
      while (!why.empty() && (why.back() == ';' || why.back() == ' ')) why.pop_back();
      i.verify_error = why.empty() ? "certificate not verified" : why;
    }
  }
  if (done_) i.tls_exporter = impl_->exporter;
  return i;
}


namespace {

bool write_file(const std::string& path, const unsigned char* data, mode_t mode) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  ::chmod(path.c_str(), mode);
  bool ok = std::fputs(reinterpret_cast<const char*>(data), f) >= 0;
  return std::fclose(f) == 0 && ok;
}

}  // namespace

Status generate_self_signed(const std::string& cert_path, const std::string& key_path,
                            const std::string& hostname) {
  Rng rng;
  if (int rc = rng.seed(); rc != 0) return Status::internal("random generator: " + mbed_error(rc));
  mbedtls_pk_context key;
  mbedtls_pk_init(&key);
  mbedtls_x509write_cert crt;
  mbedtls_x509write_crt_init(&crt);
  mbedtls_mpi serial;
  mbedtls_mpi_init(&serial);
  Status result;
  auto cleanup = [&] {
    mbedtls_mpi_free(&serial);
    mbedtls_x509write_crt_free(&crt);
    mbedtls_pk_free(&key);
  };
  auto fail = [&](const std::string& what, int rc) {
    cleanup();
    return Status::internal(what + ": " + mbed_error(rc));
  };
  if (int rc = mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)); rc) return fail("key", rc);
  if (int rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(key), Rng::random, &rng); rc)
    return fail("key generation", rc);
  unsigned char serial_bytes[16];
  Rng::random(&rng, serial_bytes, sizeof serial_bytes);
  serial_bytes[0] &= 0x7f;  // positive
  mbedtls_mpi_read_binary(&serial, serial_bytes, sizeof serial_bytes);
  std::string subject = "CN=" + hostname;
  std::time_t now = std::time(nullptr);
  std::tm from{}, to{};
  gmtime_r(&now, &from);
  std::time_t later = now + 10LL * 365 * 24 * 3600;
  gmtime_r(&later, &to);
  char nb[16], na[16];
  std::strftime(nb, sizeof nb, "%Y%m%d%H%M%S", &from);
  std::strftime(na, sizeof na, "%Y%m%d%H%M%S", &to);
  mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
  mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
  mbedtls_x509write_crt_set_subject_key(&crt, &key);
  mbedtls_x509write_crt_set_issuer_key(&crt, &key);
  if (int rc = mbedtls_x509write_crt_set_subject_name(&crt, subject.c_str()); rc) return fail("subject", rc);
  if (int rc = mbedtls_x509write_crt_set_issuer_name(&crt, subject.c_str()); rc) return fail("issuer", rc);
  if (int rc = mbedtls_x509write_crt_set_serial(&crt, &serial); rc) return fail("serial", rc);
  if (int rc = mbedtls_x509write_crt_set_validity(&crt, nb, na); rc) return fail("validity", rc);
  if (int rc = mbedtls_x509write_crt_set_basic_constraints(&crt, 0, -1); rc) return fail("constraints", rc);
  // subjectAltName: SEQUENCE { [2] dNSName } (RFC 5280 4.2.1.6), DER by hand (2.28 has no helper).
  if (hostname.size() < 120) {
    std::string san;
    san += '\x30';
    san += static_cast<char>(hostname.size() + 2);
    san += '\x82';
    san += static_cast<char>(hostname.size());
    san += hostname;
    if (int rc = mbedtls_x509write_crt_set_extension(&crt, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                                     MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0,
                                                     reinterpret_cast<const unsigned char*>(san.data()), san.size());
        rc)
      return fail("subjectAltName", rc);
  }
  unsigned char pem[4096];
  if (int rc = mbedtls_pk_write_key_pem(&key, pem, sizeof pem); rc) return fail("key PEM", rc);
  if (!write_file(key_path, pem, 0600)) {
    cleanup();
    return Status::io_error("cannot write " + key_path);
  }
  if (int rc = mbedtls_x509write_crt_pem(&crt, pem, sizeof pem, Rng::random, &rng); rc) return fail("certificate PEM", rc);
  if (!write_file(cert_path, pem, 0644)) {
    cleanup();
    return Status::io_error("cannot write " + cert_path);
  }
  cleanup();
  return result;
}

}  // namespace cmail::net
