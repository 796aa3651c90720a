// The C ABI's in-process server: a Store in a data directory and a Runtime on a thread of its
// own, serving smtp::Server with backends::StoreSmtpSession, pop3::Server with
// StorePop3Session and imap::Server with StoreImapSession through net::serve_* (as
// frontends/daemon/*_service.cc do from config lines), plus the embedder's hooks: a policy
// call per recipient, a call per stored message and a log callback; faults on purpose
// (backends::FaultySmtpSession around every intake session) and a simulated full disk; and
// outbound delivery with the Dispatcher, to the Internet or to a net::CaptureSink (capture
// mode), whose resolver also serves the SPF checks of intake.
#include "common.h"
#include "store.h"

#include <cmail/backends/auth_guard.h>
#include <cmail/backends/faults.h>
#include <cmail/backends/imap_session.h>
#include <cmail/backends/pop3_session.h>
#include <cmail/backends/smtp_session.h>
#include <cmail/log_sink.h>
#include <cmail/net/capture.h>
#include <cmail/net/dispatcher.h>
#include <cmail/net/resolver.h>
#include <cmail/net/runtime.h>
#include <cmail/net/serve.h>
#include <cmail/net/tls.h>
#include <cmail/store/mailbox.h>

#include <filesystem>
#include <system_error>
#include <thread>
#include <vector>

using namespace cmail;
namespace fs = std::filesystem;

namespace {

// The embedder's callbacks, set before start and read by every connection.
struct Hooks {
  cmail_delivered_fn delivered = nullptr;
  void* delivered_user = nullptr;
  cmail_rcpt_fn rcpt = nullptr;
  void* rcpt_user = nullptr;
  LogSink log;  // cmail_server_on_log; empty: none
};

// StoreSmtpSession with the hooks around it: the policy is asked before the store routes a
// recipient; once the store's verdict on a message is an acceptance (after the commit), the
// message goes to the delivered callback, then the verdict to the engine.
class HookedSmtpSession final : public smtp::Session {
 public:
  HookedSmtpSession(store::Store& st, const backends::SmtpBackendOptions& o, const proto::PeerInfo& peer,
                    proto::Executor ex, std::shared_ptr<const Hooks> hooks, std::function<void(smtp::Verdict)> done)
      : inner_(st, o, peer, std::move(ex)), hooks_(std::move(hooks)), done_(std::move(done)) {
    inner_.set_completion([this](smtp::Verdict v) { finish(std::move(v)); });
    if (hooks_->log) inner_.set_logger(hooks_->log);
  }

  smtp::Verdict helo(const smtp::SessionInfo& i) override { return inner_.helo(i); }
  smtp::Verdict auth(const smtp::SessionInfo& i, const sasl::Credentials& c) override { return inner_.auth(i, c); }
  smtp::Verdict scram_credentials(const smtp::SessionInfo& i, const std::string& user) override {
    return inner_.scram_credentials(i, user);
  }
  smtp::Verdict scram_auth(const smtp::SessionInfo& i, const sasl::ScramResult& r) override {
    return inner_.scram_auth(i, r);
  }
  smtp::Verdict mail(const smtp::SessionInfo& i, const smtp::Path& from, const smtp::MailParams& p) override {
    smtp::Verdict v = inner_.mail(i, from, p);
    has_mail_ = v.accepted();
    from_ = from.address();
    recipients_.clear();
    return v;
  }
  smtp::Verdict rcpt(const smtp::SessionInfo& i, const smtp::Path& to, const smtp::RcptParams& p) override {
    if (hooks_->rcpt && has_mail_) {  // without MAIL the store refuses it anyway
      int code = hooks_->rcpt(hooks_->rcpt_user, from_.c_str(), to.address().c_str());
      if (code != 0) {
        if (code < 400 || code > 599) {
          inner_.log("rcpt policy callback returned " + std::to_string(code) + ", not 0 or 400-599");
          code = 451;
        }
        return smtp::Verdict::reject(smtp::reply(code, {code / 100, code / 100 == 5 ? 7 : 3, 1},
                                                 code / 100 == 5 ? "Recipient refused by policy"
                                                                 : "Recipient deferred by policy"));
      }
    }
    smtp::Verdict v = inner_.rcpt(i, to, p);
    if (v.accepted()) recipients_.push_back(to.address());
    return v;
  }
  void data_chunk(std::string_view bytes) override {
    if (hooks_->delivered) message_.append(bytes);
    inner_.data_chunk(bytes);
  }
  smtp::Verdict data_end(const smtp::SessionInfo& i) override {
    awaiting_data_end_ = true;
    smtp::Verdict v = inner_.data_end(i);
    if (v.kind() != proto::VerdictKind::Pending) return settle(std::move(v));
    return v;
  }
  void reset() override {
    has_mail_ = false;
    message_.clear();
    inner_.reset();
  }
  void log(std::string_view line) override { inner_.log(line); }

 private:
  void finish(smtp::Verdict v) { done_(settle(std::move(v))); }
  // The verdict on the message: after an acceptance (the commit is durable), the callback.
  smtp::Verdict settle(smtp::Verdict v) {
    if (awaiting_data_end_) {
      awaiting_data_end_ = false;
      has_mail_ = false;  // the transaction is over
      if (v.accepted() && hooks_->delivered) {
        std::vector<const char*> to;
        for (const std::string& r : recipients_) to.push_back(r.c_str());
        hooks_->delivered(hooks_->delivered_user, from_.c_str(), to.data(), to.size(), message_.data(), message_.size());
      }
      message_.clear();
    }
    return v;
  }

  backends::StoreSmtpSession inner_;
  std::shared_ptr<const Hooks> hooks_;
  std::function<void(smtp::Verdict)> done_;
  bool has_mail_ = false;
  std::string from_;
  std::vector<std::string> recipients_;  // accepted in this transaction
  std::string message_;                  // as received, while a delivered callback is set
  bool awaiting_data_end_ = false;
};

}  // namespace

struct cmail_server {
  enum class State { Ready, Running, Stopped };

  std::string hostname, cert, key;
  std::unique_ptr<store::Store> db;
  cmail_store lent;  // db, for cmail_server_store()
  std::shared_ptr<Hooks> hooks = std::make_shared<Hooks>();
  std::shared_ptr<backends::AuthGuard> guard = std::make_shared<backends::AuthGuard>();
  std::shared_ptr<backends::SmtpFaults> faults = std::make_shared<backends::SmtpFaults>();  // intake
  std::shared_ptr<net::TlsServerContext> tls;  // loaded by the first listener that needs it
  std::vector<std::uint16_t> ports;            // by listener number
  bool tls_bound = false;                      // a listener uses tls: it can no longer change
  State state = State::Ready;
  std::thread thread;
  // Outbound (cmail_server_outbound): mode 0 = none. The zone collects cmail_server_dns_*
  // entries until _start makes the resolver and the dispatcher.
  int outbound = 0;
  net::StaticZone zone = net::capture_zone();
  std::shared_ptr<net::CaptureSink> sink;
  std::unique_ptr<mail::Resolver> resolver;
  std::unique_ptr<net::Dispatcher> dispatcher;
  std::unique_ptr<net::Runtime> runtime;  // last: destroyed first, before the Store it serves

  ~cmail_server() {
    if (thread.joinable()) {
      runtime->shutdown(std::chrono::milliseconds(0));
      thread.join();
    }
    dispatcher.reset();  // before the resolver and the runtime it uses
    resolver.reset();
    runtime.reset();
  }
  bool on_loop_thread() const { return thread.joinable() && std::this_thread::get_id() == thread.get_id(); }
};

namespace {

int listen_on(cmail_server* srv, int protocol, const char* host, uint16_t port, unsigned flags, int* listener,
              char** errmsg) {
  net::ListenerOptions lo;
  lo.host = c::str(host, "127.0.0.1");
  lo.port = port;
  const bool starttls = flags & CMAIL_LISTEN_STARTTLS, implicit = flags & CMAIL_LISTEN_TLS;
  const bool plaintext_auth = flags & CMAIL_LISTEN_PLAINTEXT_AUTH;
  if (starttls || implicit) {
    if (!srv->tls) {
      auto loaded = net::TlsServerContext::load({srv->cert, srv->key});
      if (!loaded) return c::from_status(loaded.error(), errmsg);
      srv->tls = *loaded;
    }
    lo.tls = srv->tls;
    srv->tls_bound = true;
  }
  lo.implicit_tls = implicit;
  lo.log = srv->hooks->log;
  net::Runtime& rt = *srv->runtime;
  store::Store* st = srv->db.get();
  proto::Executor executor = rt.executor();
  auto guard = srv->guard;
  Result<int> id = Status::invalid_argument("protocol is not a CMAIL_PROTO_* value");
  if (protocol == CMAIL_PROTO_SMTP) {
    lo.name = implicit ? "smtps" : (flags & CMAIL_LISTEN_REQUIRE_AUTH) ? "submission" : "smtp";
    smtp::ServerOptions so;
    so.hostname = srv->hostname;
    so.starttls_available = starttls;
    so.tls_active = implicit;
    so.auth_enabled = flags & (CMAIL_LISTEN_AUTH | CMAIL_LISTEN_REQUIRE_AUTH);
    so.auth_requires_tls = !plaintext_auth;
    so.require_auth = flags & CMAIL_LISTEN_REQUIRE_AUTH;
    backends::SmtpBackendOptions bo;
    bo.hostname = srv->hostname;
    bo.auth_guard = guard;
    std::shared_ptr<const Hooks> hooks = srv->hooks;
    auto faults = srv->faults;
    id = net::serve_smtp(rt, lo, so, [srv, st, executor, bo, hooks, faults](const proto::PeerInfo& peer,
                                                                           net::Completion<smtp::Verdict> done) {
      // With outbound delivery the server has a resolver (made at start, before any session):
      // SPF checks of unauthenticated mail, reported in Authentication-Results.
      backends::SmtpBackendOptions o = bo;
      o.resolver = srv->resolver.get();
      // The faults (cmail_server_fault) around the hooks around the store's session.
      auto session = std::make_shared<backends::FaultySmtpSession>(faults, executor);
      session->set_inner(std::make_unique<HookedSmtpSession>(*st, o, peer, executor, hooks, session->inner_completion()));
      session->set_completion(std::move(done));
      return session;
    });
  } else if (protocol == CMAIL_PROTO_POP3) {
    lo.name = implicit ? "pop3s" : "pop3";
    pop3::ServerOptions po;
    po.hostname = srv->hostname;
    po.starttls_available = starttls;
    po.tls_active = implicit;
    po.tls_required = !plaintext_auth;
    id = net::serve_pop3(rt, lo, po, [st, executor, guard, log = lo.log](const proto::PeerInfo& peer,
                                                          net::Completion<pop3::Verdict> done) {
      auto session = std::make_shared<backends::StorePop3Session>(*st, peer, executor, guard);
      if (log) session->set_logger(log);
      session->set_completion(std::move(done));
      return session;
    });
  } else if (protocol == CMAIL_PROTO_IMAP) {
    lo.name = implicit ? "imaps" : "imap";
    imap::ServerOptions io;
    io.hostname = srv->hostname;
    io.starttls_available = starttls;
    io.tls_active = implicit;
    io.tls_required = !plaintext_auth;
    id = net::serve_imap(rt, lo, io, [st, executor, guard, log = lo.log](const proto::PeerInfo& peer,
                                                          net::Completion<imap::Verdict> done) {
      auto session = std::make_shared<backends::StoreImapSession>(*st, peer, executor, guard);
      if (log) session->set_logger(log);
      session->set_completion(std::move(done));
      return session;
    }, store::notify_path(st->path()));
  }
  if (!id) return c::from_status(id.error(), errmsg);  // IoError for an address in use
  srv->ports.push_back(rt.port(*id));
  if (listener) *listener = static_cast<int>(srv->ports.size() - 1);
  return c::ok(errmsg);
}

}  // namespace

extern "C" {

int cmail_server_new(const char* data_dir, const char* hostname, cmail_server** out, char** errmsg) {
  if (!out) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "out is NULL");
  *out = nullptr;
  if (!data_dir || !*data_dir) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "data_dir is empty");
  if (hostname && !smtp::valid_domain(hostname, false))
    return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "hostname is not a domain name");
  return c::guard(errmsg, [&] {
    auto srv = std::make_unique<cmail_server>();
    srv->hostname = c::str(hostname, "localhost");
    const fs::path dir(data_dir);
    std::error_code ec;
    if (fs::create_directories(dir, ec)) fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
    if (ec) return c::fail(errmsg, CMAIL_IO_ERROR, "cannot create " + dir.string() + ": " + ec.message());
    srv->cert = (dir / "cert.pem").string();
    srv->key = (dir / "key.pem").string();
    store::StoreOptions so;
    so.create_if_missing = true;
    auto opened = store::Store::open((dir / "master.db3").string(), so);
    if (!opened) return c::from_status(opened.error(), errmsg);
    srv->db = std::move(*opened);
    if (!fs::exists(srv->cert) || !fs::exists(srv->key)) {
      if (Status st = net::generate_self_signed(srv->cert, srv->key, srv->hostname); !st.ok())
        return c::from_status(st, errmsg);
    }
    srv->lent.store = srv->db.get();
    srv->runtime = std::make_unique<net::Runtime>();
    c::adopt(&srv->lent);
    *out = c::adopt(srv.release());
    return c::ok(errmsg);
  });
}

void cmail_server_free(cmail_server* srv) {
  if (!c::live(srv) || srv->on_loop_thread()) return;  // from a callback: the thread cannot join itself
  c::release(srv);
  c::release(&srv->lent);
  delete srv;
}

cmail_store* cmail_server_store(cmail_server* srv) { return c::live(srv) ? &srv->lent : nullptr; }

int cmail_server_listen(cmail_server* srv, int protocol, const char* host, uint16_t port, unsigned flags, int* listener,
                        char** errmsg) {
  if (!c::live(srv)) return c::bad_handle(errmsg);
  if (srv->state != cmail_server::State::Ready) return c::fail(errmsg, CMAIL_WRONG_STATE, "listen before start");
  const unsigned known = CMAIL_LISTEN_STARTTLS | CMAIL_LISTEN_TLS | CMAIL_LISTEN_AUTH | CMAIL_LISTEN_REQUIRE_AUTH |
                         CMAIL_LISTEN_PLAINTEXT_AUTH;
  if (flags & ~known) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "unknown flags");
  if ((flags & CMAIL_LISTEN_STARTTLS) && (flags & CMAIL_LISTEN_TLS))
    return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "STARTTLS and implicit TLS exclude each other");
  return c::guard(errmsg, [&] { return listen_on(srv, protocol, host, port, flags, listener, errmsg); });
}

uint16_t cmail_server_port(const cmail_server* srv, int listener) {
  if (!c::live(srv) || listener < 0 || static_cast<std::size_t>(listener) >= srv->ports.size()) return 0;
  return srv->ports[static_cast<std::size_t>(listener)];
}

int cmail_server_on_delivered(cmail_server* srv, cmail_delivered_fn fn, void* user, char** errmsg) {
  if (!c::live(srv)) return c::bad_handle(errmsg);
  if (srv->state != cmail_server::State::Ready) return c::fail(errmsg, CMAIL_WRONG_STATE, "callbacks before start");
  srv->hooks->delivered = fn;
  srv->hooks->delivered_user = user;
  return c::ok(errmsg);
}

int cmail_server_on_rcpt(cmail_server* srv, cmail_rcpt_fn fn, void* user, char** errmsg) {
  if (!c::live(srv)) return c::bad_handle(errmsg);
  if (srv->state != cmail_server::State::Ready) return c::fail(errmsg, CMAIL_WRONG_STATE, "callbacks before start");
  srv->hooks->rcpt = fn;
  srv->hooks->rcpt_user = user;
  return c::ok(errmsg);
}

int cmail_server_on_log(cmail_server* srv, cmail_log_fn fn, void* user, int verbosity, char** errmsg) {
  if (!c::live(srv)) return c::bad_handle(errmsg);
  if (srv->state != cmail_server::State::Ready || !srv->ports.empty())
    return c::fail(errmsg, CMAIL_WRONG_STATE, "the log callback before the first listener");
  if (verbosity < 0 || verbosity > 4) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "verbosity is 0 to 4");
  if (!fn) {
    srv->hooks->log = LogSink();
    return c::ok(errmsg);
  }
  srv->hooks->log = LogSink(
      [fn, user](int level, std::string_view line) {
        const std::string l(line);  // NUL-terminated for C
        fn(user, level, l.c_str());
      },
      verbosity);
  return c::ok(errmsg);
}

int cmail_server_tls_certificate(cmail_server* srv, const char* cert_file, const char* key_file, char** errmsg) {
  if (!c::live(srv)) return c::bad_handle(errmsg);
  if (srv->state != cmail_server::State::Ready || srv->tls_bound)
    return c::fail(errmsg, CMAIL_WRONG_STATE, "the certificate before the first TLS listener");
  if (!cert_file || !*cert_file || !key_file || !*key_file)
    return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "cert_file and key_file are paths");
  return c::guard(errmsg, [&] {
    auto loaded = net::TlsServerContext::load({cert_file, key_file});
    if (!loaded) return c::from_status(loaded.error(), errmsg);
    srv->tls = *loaded;
    srv->cert = cert_file;
    srv->key = key_file;
    return c::ok(errmsg);
  });
}

int cmail_server_start(cmail_server* srv, char** errmsg) {
  if (!c::live(srv)) return c::bad_handle(errmsg);
  if (srv->state != cmail_server::State::Ready) return c::fail(errmsg, CMAIL_WRONG_STATE, "started already");
  return c::guard(errmsg, [&] {
    if (srv->outbound) {
      net::DispatcherOptions o;
      o.announce = srv->hostname;
      if (LogSink log = srv->hooks->log) o.log = [log](int level, std::string_view line) { log(level, line); };
      if (srv->outbound == CMAIL_OUTBOUND_CAPTURE) {
        srv->resolver = net::make_static_resolver(*srv->runtime, srv->zone);
        o.portprio = {{srv->sink->port(), mail::TlsMode::Opportunistic}};
      } else {
        auto r = net::make_resolver(*srv->runtime);
        if (!r) return c::from_status(r.error(), errmsg);
        srv->resolver = std::move(*r);
      }
      auto d = net::Dispatcher::create(*srv->runtime, *srv->db, *srv->resolver, o);
      if (!d) return c::from_status(d.error(), errmsg);
      srv->dispatcher = std::move(*d);
      srv->dispatcher->start();
    }
    net::Runtime* rt = srv->runtime.get();
    srv->thread = std::thread([rt] { rt->run(); });
    srv->state = cmail_server::State::Running;
    return c::ok(errmsg);
  });
}

int cmail_server_stop(cmail_server* srv, int64_t grace_ms, char** errmsg) {
  if (!c::live(srv)) return c::bad_handle(errmsg);
  if (srv->state != cmail_server::State::Running) return c::fail(errmsg, CMAIL_WRONG_STATE, "not running");
  if (srv->on_loop_thread()) return c::fail(errmsg, CMAIL_WRONG_STATE, "stop from a callback");
  return c::guard(errmsg, [&] {
    srv->runtime->shutdown(c::ms(grace_ms));
    srv->thread.join();
    srv->state = cmail_server::State::Stopped;
    return c::ok(errmsg);
  });
}

int cmail_server_outbound(cmail_server* srv, int mode, char** errmsg) {
  if (!c::live(srv)) return c::bad_handle(errmsg);
  if (srv->state != cmail_server::State::Ready) return c::fail(errmsg, CMAIL_WRONG_STATE, "outbound before start");
  if (mode != CMAIL_OUTBOUND_DNS && mode != CMAIL_OUTBOUND_CAPTURE)
    return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "mode is not a CMAIL_OUTBOUND_* value");
  if (srv->outbound) return c::fail(errmsg, CMAIL_WRONG_STATE, "outbound delivery is set already");
  return c::guard(errmsg, [&] {
    if (mode == CMAIL_OUTBOUND_CAPTURE) {
      net::CaptureOptions co;
      co.hostname = "capture." + srv->hostname;
      auto sink = net::CaptureSink::start(*srv->runtime, co);
      if (!sink) return c::from_status(sink.error(), errmsg);
      srv->sink = *sink;
    }
    srv->outbound = mode;
    return c::ok(errmsg);
  });
}

namespace {
// The checks every cmail_server_dns_* call makes; CMAIL_OK when the zone may change.
int zone_open(cmail_server* srv, const char* name, char** errmsg) {
  if (!c::live(srv)) return c::bad_handle(errmsg);
  if (srv->outbound != CMAIL_OUTBOUND_CAPTURE) return c::fail(errmsg, CMAIL_WRONG_STATE, "fake DNS is for capture mode");
  if (srv->state != cmail_server::State::Ready) return c::fail(errmsg, CMAIL_WRONG_STATE, "DNS entries before start");
  if (!name || !*name) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "the name is empty");
  return CMAIL_OK;
}
}  // namespace

int cmail_server_dns_mx(cmail_server* srv, const char* domain, uint16_t preference, const char* host, char** errmsg) {
  if (int rc = zone_open(srv, domain, errmsg); rc != CMAIL_OK) return rc;
  return c::guard(errmsg, [&] {
    mail::MxResult& r = srv->zone.mx[domain];
    r.status = mail::DnsStatus::Ok;
    r.records.push_back({preference, c::str(host)});  // "": the null MX's "." (RFC 7505)
    return c::ok(errmsg);
  });
}

int cmail_server_dns_address(cmail_server* srv, const char* host, const char* address, char** errmsg) {
  if (int rc = zone_open(srv, host, errmsg); rc != CMAIL_OK) return rc;
  if (!address || !*address) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "the address is empty");
  return c::guard(errmsg, [&] {
    mail::AddressResult& r = srv->zone.addresses[host];
    r.status = mail::DnsStatus::Ok;
    r.addresses.push_back(address);
    return c::ok(errmsg);
  });
}

int cmail_server_dns_txt(cmail_server* srv, const char* name, const char* text, char** errmsg) {
  if (int rc = zone_open(srv, name, errmsg); rc != CMAIL_OK) return rc;
  if (!text) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "text is NULL");
  return c::guard(errmsg, [&] {
    mail::TxtResult& r = srv->zone.txt[name];
    r.status = mail::DnsStatus::Ok;
    r.records.push_back(text);
    return c::ok(errmsg);
  });
}

int cmail_server_dns_nxdomain(cmail_server* srv, const char* name, char** errmsg) {
  if (int rc = zone_open(srv, name, errmsg); rc != CMAIL_OK) return rc;
  return c::guard(errmsg, [&] {
    srv->zone.mx[name] = {mail::DnsStatus::NxDomain, {}, std::string("no such domain ") + name};
    srv->zone.addresses[name] = {mail::DnsStatus::NxDomain, {}, std::string("no such name ") + name};
    srv->zone.txt[name] = {mail::DnsStatus::NxDomain, {}, std::string("no such name ") + name};
    return c::ok(errmsg);
  });
}

void cmail_fault_init(cmail_fault* fault) {
  if (!fault) return;
  *fault = cmail_fault{};
  fault->target = CMAIL_FAULT_INTAKE;
  fault->phase = CMAIL_PHASE_RCPT;
  fault->action = CMAIL_FAULT_REPLY;
  fault->code = 451;
  fault->delay_ms = 1000;
}

int cmail_server_fault(cmail_server* srv, const cmail_fault* fault, char** errmsg) {
  if (!c::live(srv)) return c::bad_handle(errmsg);
  if (!fault) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "fault is NULL");
  if (fault->target != CMAIL_FAULT_INTAKE && fault->target != CMAIL_FAULT_CAPTURE)
    return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "target is not a CMAIL_FAULT_INTAKE or _CAPTURE");
  if (fault->target == CMAIL_FAULT_CAPTURE && !srv->sink)
    return c::fail(errmsg, CMAIL_WRONG_STATE, "capture faults are for capture mode");
  if (fault->phase < CMAIL_PHASE_MAIL || fault->phase > CMAIL_PHASE_DATA)
    return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "phase is not a CMAIL_PHASE_* value");
  if (fault->action < CMAIL_FAULT_REPLY || fault->action > CMAIL_FAULT_DELAY)
    return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "action is not a CMAIL_FAULT_* value");
  return c::guard(errmsg, [&] {
    using F = backends::SmtpFault;
    F f;
    f.phase = fault->phase == CMAIL_PHASE_MAIL ? F::Phase::Mail : fault->phase == CMAIL_PHASE_RCPT ? F::Phase::Rcpt : F::Phase::Data;
    f.action = fault->action == CMAIL_FAULT_REPLY        ? F::Action::Reply
               : fault->action == CMAIL_FAULT_DISCONNECT ? F::Action::Disconnect
                                                         : F::Action::Delay;
    f.recipient = c::str(fault->recipient);
    f.code = fault->code;
    f.text = c::str(fault->text);
    f.delay = std::chrono::milliseconds(fault->delay_ms);
    f.times = fault->times == 0 ? SIZE_MAX : fault->times;
    Status st = fault->target == CMAIL_FAULT_CAPTURE ? srv->sink->add_fault(std::move(f)) : srv->faults->add(std::move(f));
    return c::from_status(st, errmsg);
  });
}

int cmail_server_clear_faults(cmail_server* srv, int target, char** errmsg) {
  if (!c::live(srv)) return c::bad_handle(errmsg);
  if (target == CMAIL_FAULT_INTAKE) {
    srv->faults->clear();
  } else if (target == CMAIL_FAULT_CAPTURE) {
    if (!srv->sink) return c::fail(errmsg, CMAIL_WRONG_STATE, "capture faults are for capture mode");
    srv->sink->clear_faults();
  } else {
    return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "target is not a CMAIL_FAULT_INTAKE or _CAPTURE");
  }
  return c::ok(errmsg);
}

int cmail_server_disk_full(cmail_server* srv, int on, char** errmsg) {
  if (!c::live(srv)) return c::bad_handle(errmsg);
  return c::guard(errmsg, [&] {
    srv->db->fail_writes(on ? Status::no_space("the disk is full (simulated)") : Status());
    return c::ok(errmsg);
  });
}

}  // extern "C"

struct cmail_captured_list {
  std::vector<net::CapturedMessage> messages;
};

extern "C" {

int cmail_server_captured(cmail_server* srv, cmail_captured_list** out, char** errmsg) {
  if (!c::live(srv)) return c::bad_handle(errmsg);
  if (!out) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "out is NULL");
  *out = nullptr;
  if (!srv->sink) return c::fail(errmsg, CMAIL_WRONG_STATE, "nothing is captured without capture mode");
  return c::guard(errmsg, [&] {
    *out = c::adopt(new cmail_captured_list{srv->sink->messages()});
    return c::ok(errmsg);
  });
}

size_t cmail_server_wait_captured(cmail_server* srv, size_t count, int64_t timeout_ms) {
  if (!c::live(srv) || !srv->sink || srv->on_loop_thread()) return 0;
  return srv->sink->wait(count, c::ms(timeout_ms));
}

int cmail_server_clear_captured(cmail_server* srv, char** errmsg) {
  if (!c::live(srv)) return c::bad_handle(errmsg);
  if (!srv->sink) return c::fail(errmsg, CMAIL_WRONG_STATE, "nothing is captured without capture mode");
  srv->sink->clear();
  return c::ok(errmsg);
}

namespace {
const net::CapturedMessage* captured_at(const cmail_captured_list* l, size_t i) {
  return c::live(l) && i < l->messages.size() ? &l->messages[i] : nullptr;
}
}  // namespace

size_t cmail_captured_list_count(const cmail_captured_list* l) { return c::live(l) ? l->messages.size() : 0; }
uint64_t cmail_captured_list_id(const cmail_captured_list* l, size_t i) {
  const auto* m = captured_at(l, i);
  return m ? m->id : 0;
}
const char* cmail_captured_list_from(const cmail_captured_list* l, size_t i) {
  const auto* m = captured_at(l, i);
  return m ? m->from.c_str() : nullptr;
}
const char* cmail_captured_list_helo(const cmail_captured_list* l, size_t i) {
  const auto* m = captured_at(l, i);
  return m ? m->helo.c_str() : nullptr;
}
size_t cmail_captured_list_recipient_count(const cmail_captured_list* l, size_t i) {
  const auto* m = captured_at(l, i);
  return m ? m->to.size() : 0;
}
const char* cmail_captured_list_recipient(const cmail_captured_list* l, size_t i, size_t j) {
  const auto* m = captured_at(l, i);
  return m && j < m->to.size() ? m->to[j].c_str() : nullptr;
}
const char* cmail_captured_list_data(const cmail_captured_list* l, size_t i, size_t* len) {
  const auto* m = captured_at(l, i);
  if (len) *len = m ? m->data.size() : 0;
  return m ? m->data.data() : nullptr;
}
void cmail_captured_list_free(cmail_captured_list* l) {
  if (c::release(l)) delete l;
}

}  // extern "C"
