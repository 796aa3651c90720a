// The C ABI's SMTP server engine: smtp::Server with a Session that turns every decision into
// an event and waits (Verdict::pending()) for the caller's verdict call.
#include "common.h"

#include <cmail/smtp/server.h>

#include <cstdio>
#include <deque>
#include <memory>

using namespace cmail;

namespace {

// One event as the handle keeps it until the caller takes the next.
struct Record {
  int type = CMAIL_EVENT_NONE;
  std::string data, address, helo, protocol;
  std::optional<std::string> ret, envid, auth, notify, orcpt, user;
  std::string authzid, authcid, password;
  std::optional<std::uint64_t> size;
  int body = 0;
  bool smtputf8 = false, esmtp = false, tls = false;
};

}  // namespace

struct cmail_smtp_server {
  class Session final : public smtp::Session {
   public:
    Session(cmail_smtp_server& h) : h_(h) {}
    smtp::Verdict helo(const smtp::SessionInfo& info) override {
      if (!decides(CMAIL_SMTP_DECIDE_HELO)) return smtp::Verdict::accept();
      push(CMAIL_SMTP_EVENT_HELO, info);
      return smtp::Verdict::pending();
    }
    smtp::Verdict auth(const smtp::SessionInfo& info, const sasl::Credentials& c) override {
      if (!decides(CMAIL_SMTP_DECIDE_AUTH)) return smtp::Session::auth(info, c);
      Record& r = push(CMAIL_SMTP_EVENT_AUTH, info);
      r.authzid = c.authzid;
      r.authcid = c.authcid;
      r.password = c.password;
      return smtp::Verdict::pending();
    }
    smtp::Verdict mail(const smtp::SessionInfo& info, const smtp::Path& from, const smtp::MailParams& p) override {
      if (!decides(CMAIL_SMTP_DECIDE_MAIL)) return smtp::Verdict::accept();
      Record& r = push(CMAIL_SMTP_EVENT_MAIL, info);
      r.address = from.address();
      r.size = p.size;
      r.body = static_cast<int>(p.body);
      r.smtputf8 = p.smtputf8;
      r.ret = p.ret;
      r.envid = p.envid;
      r.auth = p.auth;
      return smtp::Verdict::pending();
    }
    smtp::Verdict rcpt(const smtp::SessionInfo& info, const smtp::Path& to, const smtp::RcptParams& p) override {
      if (!decides(CMAIL_SMTP_DECIDE_RCPT)) return smtp::Verdict::accept();
      Record& r = push(CMAIL_SMTP_EVENT_RCPT, info);
      r.address = to.address();
      r.notify = p.notify;
      r.orcpt = p.orcpt;
      return smtp::Verdict::pending();
    }
    void data_chunk(std::string_view bytes) override {
      // Consecutive chunks become one event: feeding byte by byte does not make an event a byte.
      if (h_.queue.empty() || h_.queue.back().type != CMAIL_SMTP_EVENT_DATA) {
        h_.queue.emplace_back().type = CMAIL_SMTP_EVENT_DATA;
      }
      h_.queue.back().data.append(bytes);
    }
    smtp::Verdict data_end(const smtp::SessionInfo& info) override {
      if (!decides(CMAIL_SMTP_DECIDE_DATA_END)) return smtp::Verdict::accept();
      push(CMAIL_SMTP_EVENT_DATA_END, info);
      return smtp::Verdict::pending();
    }
    void reset() override { h_.queue.emplace_back().type = CMAIL_SMTP_EVENT_RESET; }

   private:
    bool decides(unsigned what) const { return (h_.decisions & what) != 0; }
    Record& push(int type, const smtp::SessionInfo& info) {
      Record& r = h_.queue.emplace_back();
      r.type = type;
      r.helo = info.helo;
      r.esmtp = info.esmtp;
      r.tls = info.tls;
      r.user = info.user;
      r.protocol = info.protocol();
      return r;
    }
    cmail_smtp_server& h_;
  };

  cmail_smtp_server(const smtp::ServerOptions& o, unsigned d) : decisions(d), session(*this), server(o, session) {}

  unsigned decisions;
  std::deque<Record> queue;
  Record current;
  Session session;
  smtp::Server server;  // after the Session it calls
};

namespace {

void fill(const Record& r, cmail_smtp_event* e) {
  *e = cmail_smtp_event{};
  e->type = r.type;
  if (r.type == CMAIL_EVENT_NONE) return;
  e->data = r.data.data();
  e->data_len = r.data.size();
  if (r.type == CMAIL_SMTP_EVENT_MAIL || r.type == CMAIL_SMTP_EVENT_RCPT) e->address = r.address.c_str();
  e->has_size = r.size.has_value();
  e->size = r.size.value_or(0);
  e->body = r.body;
  e->smtputf8 = r.smtputf8;
  e->ret = c::cstr(r.ret);
  e->envid = c::cstr(r.envid);
  e->auth = c::cstr(r.auth);
  e->notify = c::cstr(r.notify);
  e->orcpt = c::cstr(r.orcpt);
  if (r.type == CMAIL_SMTP_EVENT_AUTH) {
    e->authzid = r.authzid.c_str();
    e->authcid = r.authcid.c_str();
    e->password = r.password.c_str();
  }
  if (r.type >= CMAIL_SMTP_EVENT_HELO && r.type != CMAIL_SMTP_EVENT_DATA && r.type != CMAIL_SMTP_EVENT_RESET) {
    e->helo = r.helo.c_str();
    e->esmtp = r.esmtp;
    e->tls = r.tls;
    e->user = c::cstr(r.user);
    e->protocol = r.protocol.c_str();
  }
}

int complete(cmail_smtp_server* s, smtp::Verdict v, char** errmsg) {
  if (!c::live(s)) return c::bad_handle(errmsg);
  return c::guard(errmsg, [&] {
    Status st = s->server.complete(std::move(v));
    // complete() refuses only a verdict nobody waits for.
    return st.ok() ? c::ok(errmsg) : c::fail(errmsg, CMAIL_WRONG_STATE, st.message());
  });
}

}  // namespace

extern "C" {

void cmail_smtp_server_options_init(cmail_smtp_server_options* o) {
  if (!o) return;
  const smtp::ServerOptions d;
  *o = cmail_smtp_server_options{};
  o->hostname = "localhost";
  o->max_message_size = d.max_message_size;
  o->max_recipients = d.max_recipients;
  o->max_errors = d.max_errors;
  o->max_auth_failures = d.max_auth_failures;
  o->starttls_available = d.starttls_available;
  o->tls_active = d.tls_active;
  o->auth_enabled = d.auth_enabled;
  o->auth_requires_tls = d.auth_requires_tls;
  o->require_auth = d.require_auth;
  o->authenticated_user = nullptr;
  o->chunking = d.chunking;
  o->dsn = d.dsn;
  o->strict_envelopes = d.strict_envelopes;
  o->command_timeout_ms = d.command_timeout.count();
  o->data_timeout_ms = d.data_timeout.count();
  o->min_data_rate = d.min_data_rate;
  o->decisions = CMAIL_SMTP_DECIDE_ALL;
}

int cmail_smtp_server_new(const cmail_smtp_server_options* options, cmail_smtp_server** out, char** errmsg) {
  if (!out) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "out is NULL");
  *out = nullptr;
  return c::guard(errmsg, [&] {
    cmail_smtp_server_options o;
    cmail_smtp_server_options_init(&o);
    if (options) o = *options;
    if (o.max_recipients == 0 || o.max_errors <= 0 || o.max_auth_failures <= 0)
      return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "max_recipients, max_errors and max_auth_failures must be positive");
    smtp::ServerOptions so;
    so.hostname = c::str(o.hostname, "localhost");
    so.max_message_size = o.max_message_size;
    so.max_recipients = o.max_recipients;
    so.max_errors = o.max_errors;
    so.max_auth_failures = o.max_auth_failures;
    so.starttls_available = o.starttls_available;
    so.tls_active = o.tls_active;
    so.auth_enabled = o.auth_enabled;
    so.auth_requires_tls = o.auth_requires_tls;
    so.require_auth = o.require_auth;
    if (o.authenticated_user) so.authenticated_user = o.authenticated_user;
    so.chunking = o.chunking;
    so.dsn = o.dsn;
    so.strict_envelopes = o.strict_envelopes;
    so.command_timeout = c::ms(o.command_timeout_ms);
    so.data_timeout = c::ms(o.data_timeout_ms);
    so.min_data_rate = o.min_data_rate;
    *out = c::adopt(new cmail_smtp_server(so, o.decisions));
    return c::ok(errmsg);
  });
}

void cmail_smtp_server_free(cmail_smtp_server* s) {
  if (c::release(s)) delete s;
}

int cmail_smtp_server_receive(cmail_smtp_server* s, const char* data, size_t len, char** errmsg) {
  return c::receive(s, &cmail_smtp_server::server, data, len, errmsg);
}

int cmail_smtp_server_receive_eof(cmail_smtp_server* s, char** errmsg) {
  return c::receive_eof(s, &cmail_smtp_server::server, errmsg);
}

int cmail_smtp_server_pending_output(const cmail_smtp_server* s, const char** data, size_t* len, char** errmsg) {
  return c::pending_output(s, &cmail_smtp_server::server, data, len, errmsg);
}

int cmail_smtp_server_consume_output(cmail_smtp_server* s, size_t n, char** errmsg) {
  return c::consume_output(s, &cmail_smtp_server::server, n, errmsg);
}

int cmail_smtp_server_next_event(cmail_smtp_server* s, cmail_smtp_event* event, char** errmsg) {
  if (!c::live(s)) return c::bad_handle(errmsg);
  if (!event) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "event is NULL");
  return c::guard(errmsg, [&] {
    s->current = c::next_record(s->queue, s->server);
    fill(s->current, event);
    return c::ok(errmsg);
  });
}

int cmail_smtp_server_tls_established(cmail_smtp_server* s, const char* version, const char* cipher, int bits,
                                      char** errmsg) {
  return c::tls_established(s, &cmail_smtp_server::server, version, cipher, bits, errmsg);
}

int cmail_smtp_server_on_timeout(cmail_smtp_server* s, char** errmsg) {
  return c::on_timeout(s, &cmail_smtp_server::server, errmsg);
}

int cmail_smtp_server_wants_read(const cmail_smtp_server* s) { return c::live(s) && s->server.wants_read(); }
int cmail_smtp_server_is_closed(const cmail_smtp_server* s) { return !c::live(s) || s->server.closed(); }
int64_t cmail_smtp_server_timeout_ms(const cmail_smtp_server* s) { return c::live(s) ? s->server.timeout().count() : -1; }

int cmail_smtp_server_deadline(const cmail_smtp_server* s, uint64_t* phase, int64_t* budget_ms, char** errmsg) {
  return c::deadline(s, &cmail_smtp_server::server, phase, budget_ms, errmsg);
}

int cmail_smtp_server_state(const cmail_smtp_server* s) { return c::live(s) ? static_cast<int>(s->server.state()) : -1; }
uint64_t cmail_smtp_server_messages(const cmail_smtp_server* s) { return c::live(s) ? s->server.messages() : 0; }

int cmail_smtp_server_accept(cmail_smtp_server* s, const char* text, char** errmsg) {
  if (!c::one_line(text)) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "text holds a line end");
  return complete(s, smtp::Verdict::accept(c::str(text, "OK")), errmsg);
}

int cmail_smtp_server_authenticated(cmail_smtp_server* s, const char* identity, char** errmsg) {
  if (!identity || !*identity) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "identity is empty");
  return complete(s, smtp::Verdict::authenticated(identity), errmsg);
}

int cmail_smtp_server_reject(cmail_smtp_server* s, int code, const char* enhanced, const char* text, char** errmsg) {
  if (code < 400 || code > 599) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "a refusal's code is 400-599");
  smtp::EnhancedCode e{code / 100, 0, 0};
  if (enhanced) {
    char tail = 0;
    // "class.subject.detail" (RFC 3463 2), of the reply code's class.
    if (std::sscanf(enhanced, "%d.%d.%d%c", &e.klass, &e.subject, &e.detail, &tail) != 3 || e.klass != code / 100 ||
        e.subject < 0 || e.subject > 999 || e.detail < 0 || e.detail > 999)
      return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "enhanced code must be \"<class>.<subject>.<detail>\" of the reply's class");
  }
  if (!c::one_line(text))
    return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "text holds a line end");
  return complete(s, smtp::Verdict::reject(smtp::reply(code, e, c::str(text, "Refused"))), errmsg);
}

int cmail_smtp_server_fail(cmail_smtp_server* s, const char* reason, char** errmsg) {
  return complete(s, smtp::Verdict::failed(Status::internal(c::str(reason, "backend failure"))), errmsg);
}

}  // extern "C"
