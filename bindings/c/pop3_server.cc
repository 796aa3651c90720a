// The C ABI's POP3 server engine: pop3::Server with a Session that turns every decision
// (login, retrieve, update) into an event and waits for the caller's verdict call.
#include "common.h"

#include <cmail/pop3/server.h>

#include <deque>
#include <vector>

using namespace cmail;

namespace {

struct Record {
  int type = CMAIL_EVENT_NONE;
  std::string data, authzid, authcid, password;
  std::size_t index = 0;
  std::vector<std::size_t> deleted;
};

}  // namespace

struct cmail_pop3_server {
  class Session final : public pop3::Session {
   public:
    explicit Session(cmail_pop3_server& h) : h_(h) {}
    pop3::Verdict login(const sasl::Credentials& c) override {
      Record& r = h_.queue.emplace_back();
      r.type = CMAIL_POP3_EVENT_LOGIN;
      r.authzid = c.authzid;
      r.authcid = c.authcid;
      r.password = c.password;
      return pop3::Verdict::pending();
    }
    pop3::Verdict retrieve(std::size_t index) override {
      Record& r = h_.queue.emplace_back();
      r.type = CMAIL_POP3_EVENT_RETRIEVE;
      r.index = index;
      return pop3::Verdict::pending();
    }
    pop3::Verdict update(const std::vector<std::size_t>& deleted) override {
      Record& r = h_.queue.emplace_back();
      r.type = CMAIL_POP3_EVENT_UPDATE;
      r.deleted = deleted;
      return pop3::Verdict::pending();
    }

   private:
    cmail_pop3_server& h_;
  };

  explicit cmail_pop3_server(const pop3::ServerOptions& o) : session(*this), server(o, session) {}

  std::deque<Record> queue;
  Record current;
  Session session;
  pop3::Server server;  // after the Session it calls
};

namespace {

int complete(cmail_pop3_server* s, pop3::Verdict v, char** errmsg) {
  if (!c::live(s)) return c::bad_handle(errmsg);
  return c::guard(errmsg, [&] {
    Status st = s->server.complete(std::move(v));
    return st.ok() ? c::ok(errmsg) : c::fail(errmsg, CMAIL_WRONG_STATE, st.message());
  });
}

// RFC 1939 7: a unique-id is 1 to 70 characters in 0x21-0x7E.
bool valid_uid(const char* uid) {
  if (!uid) return false;
  std::string_view u(uid);
  if (u.empty() || u.size() > 70) return false;
  for (char ch : u)
    if (ch < 0x21 || ch > 0x7e) return false;
  return true;
}

}  // namespace

extern "C" {

void cmail_pop3_server_options_init(cmail_pop3_server_options* o) {
  if (!o) return;
  const pop3::ServerOptions d;
  *o = cmail_pop3_server_options{};
  o->hostname = "localhost";
  o->starttls_available = d.starttls_available;
  o->tls_active = d.tls_active;
  o->tls_required = d.tls_required;
  o->max_errors = d.max_errors;
  o->max_login_failures = d.max_login_failures;
  o->idle_timeout_ms = d.idle_timeout.count();
}

int cmail_pop3_server_new(const cmail_pop3_server_options* options, cmail_pop3_server** out, char** errmsg) {
  if (!out) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "out is NULL");
  *out = nullptr;
  return c::guard(errmsg, [&] {
    cmail_pop3_server_options o;
    cmail_pop3_server_options_init(&o);
    if (options) o = *options;
    if (o.max_errors <= 0 || o.max_login_failures <= 0)
      return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "max_errors and max_login_failures must be positive");
    pop3::ServerOptions po;
    po.hostname = c::str(o.hostname, "localhost");
    po.starttls_available = o.starttls_available;
    po.tls_active = o.tls_active;
    po.tls_required = o.tls_required;
    po.max_errors = o.max_errors;
    po.max_login_failures = o.max_login_failures;
    po.idle_timeout = c::ms(o.idle_timeout_ms);
    *out = c::adopt(new cmail_pop3_server(po));
    return c::ok(errmsg);
  });
}

void cmail_pop3_server_free(cmail_pop3_server* s) {
  if (c::release(s)) delete s;
}

int cmail_pop3_server_receive(cmail_pop3_server* s, const char* data, size_t len, char** errmsg) {
  return c::receive(s, &cmail_pop3_server::server, data, len, errmsg);
}

int cmail_pop3_server_receive_eof(cmail_pop3_server* s, char** errmsg) {
  return c::receive_eof(s, &cmail_pop3_server::server, errmsg);
}

int cmail_pop3_server_pending_output(const cmail_pop3_server* s, const char** data, size_t* len, char** errmsg) {
  return c::pending_output(s, &cmail_pop3_server::server, data, len, errmsg);
}

int cmail_pop3_server_consume_output(cmail_pop3_server* s, size_t n, char** errmsg) {
  return c::consume_output(s, &cmail_pop3_server::server, n, errmsg);
}

int cmail_pop3_server_next_event(cmail_pop3_server* s, cmail_pop3_event* event, char** errmsg) {
  if (!c::live(s)) return c::bad_handle(errmsg);
  if (!event) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "event is NULL");
  return c::guard(errmsg, [&] {
    s->current = c::next_record(s->queue, s->server);
    const Record& r = s->current;
    *event = cmail_pop3_event{};
    event->type = r.type;
    if (r.type != CMAIL_EVENT_NONE) {
      event->data = r.data.data();
      event->data_len = r.data.size();
      if (r.type == CMAIL_POP3_EVENT_LOGIN) {
        event->authzid = r.authzid.c_str();
        event->authcid = r.authcid.c_str();
        event->password = r.password.c_str();
      }
      event->index = r.index;
      event->deleted = r.deleted.data();
      event->deleted_count = r.deleted.size();
    }
    return c::ok(errmsg);
  });
}

int cmail_pop3_server_tls_established(cmail_pop3_server* s, const char* version, const char* cipher, int bits,
                                      char** errmsg) {
  return c::tls_established(s, &cmail_pop3_server::server, version, cipher, bits, errmsg);
}

int cmail_pop3_server_on_timeout(cmail_pop3_server* s, char** errmsg) {
  return c::on_timeout(s, &cmail_pop3_server::server, errmsg);
}

int cmail_pop3_server_wants_read(const cmail_pop3_server* s) { return c::live(s) && s->server.wants_read(); }
int cmail_pop3_server_is_closed(const cmail_pop3_server* s) { return !c::live(s) || s->server.closed(); }
int64_t cmail_pop3_server_timeout_ms(const cmail_pop3_server* s) { return c::live(s) ? s->server.timeout().count() : -1; }

int cmail_pop3_server_deadline(const cmail_pop3_server* s, uint64_t* phase, int64_t* budget_ms, char** errmsg) {
  return c::deadline(s, &cmail_pop3_server::server, phase, budget_ms, errmsg);
}

int cmail_pop3_server_state(const cmail_pop3_server* s) { return c::live(s) ? static_cast<int>(s->server.state()) : -1; }

int cmail_pop3_server_maildrop(cmail_pop3_server* s, const char* identity, const uint64_t* sizes,
                               const char* const* uids, size_t count, char** errmsg) {
  if (!identity || !*identity) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "identity is empty");
  if (count && (!sizes || !uids)) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "sizes or uids is NULL");
  return c::guard(errmsg, [&] {
    std::vector<pop3::Listing> listing;
    listing.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      if (!valid_uid(uids[i]))
        return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "uid " + std::to_string(i) + " is not 1-70 characters 0x21-0x7E");
      listing.push_back({sizes[i], uids[i]});
    }
    return complete(s, pop3::Verdict::maildrop(identity, std::move(listing)), errmsg);
  });
}

int cmail_pop3_server_message(cmail_pop3_server* s, const char* text, size_t len, char** errmsg) {
  if (!text && len) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "text is NULL");
  return c::guard(errmsg, [&] { return complete(s, pop3::Verdict::message(std::string(text ? text : "", len)), errmsg); });
}

int cmail_pop3_server_accept(cmail_pop3_server* s, char** errmsg) { return complete(s, pop3::Verdict::accept(), errmsg); }

int cmail_pop3_server_reject(cmail_pop3_server* s, int code, const char* text, char** errmsg) {
  if (code < CMAIL_POP3_RESP_NONE || code > CMAIL_POP3_RESP_AUTH)
    return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "code is not a CMAIL_POP3_RESP_* value");
  if (!c::one_line(text)) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "text holds a line end");
  return c::guard(errmsg, [&] {
    return complete(s, pop3::Verdict::reject(static_cast<pop3::RespCode>(code), c::str(text, "Refused")), errmsg);
  });
}

int cmail_pop3_server_fail(cmail_pop3_server* s, const char* reason, char** errmsg) {
  return c::guard(errmsg, [&] {
    return complete(s, pop3::Verdict::failed(Status::internal(c::str(reason, "backend failure"))), errmsg);
  });
}

}  // extern "C"
