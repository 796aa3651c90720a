// The C ABI's SMTP client engine: smtp::Client, its protocol results and transport events
// as one stream of events.
#include "common.h"

#include <cmail/smtp/client.h>

#include <vector>

using namespace cmail;

namespace {

struct Record {
  int type = CMAIL_EVENT_NONE;
  std::string data;
  std::size_t index = 0;
  int code = 0;
  std::string enhanced, text, reason;
  std::vector<std::size_t> accepted;
  int fail_kind = 0;
  bool permanent = false;

  void set_reply(const smtp::Reply& r) {
    code = r.code;
    enhanced = r.enhanced ? r.enhanced->to_string() : "";
    for (const std::string& line : r.lines) text += (text.empty() ? "" : "\n") + line;
  }
};

}  // namespace

struct cmail_smtp_client {
  explicit cmail_smtp_client(const smtp::ClientOptions& o) : client(o) {}
  smtp::Client client;
  Record current;
};

namespace {

void fill(const Record& r, cmail_smtp_client_event* e) {
  *e = cmail_smtp_client_event{};
  e->type = r.type;
  if (r.type == CMAIL_EVENT_NONE) return;
  e->data = r.data.data();
  e->data_len = r.data.size();
  e->index = r.index;
  e->reply_code = r.code;
  e->reply_enhanced = r.enhanced.c_str();
  e->reply_text = r.text.c_str();
  e->accepted = r.accepted.data();
  e->accepted_count = r.accepted.size();
  e->fail_kind = r.fail_kind;
  e->reason = r.reason.c_str();
  e->permanent = r.permanent;
}

Record record(smtp::ClientEvent& ev) {
  Record r;
  if (std::holds_alternative<smtp::client_event::Ready>(ev)) {
    r.type = CMAIL_SMTP_CLIENT_READY;
  } else if (auto* rc = std::get_if<smtp::client_event::RcptResult>(&ev)) {
    r.type = CMAIL_SMTP_CLIENT_RCPT_RESULT;
    r.index = rc->index;
    r.set_reply(rc->reply);
  } else if (auto* m = std::get_if<smtp::client_event::MailResult>(&ev)) {
    r.type = CMAIL_SMTP_CLIENT_MAIL_RESULT;
    r.set_reply(m->reply);
    r.accepted = std::move(m->accepted);
  } else {
    auto& f = std::get<smtp::client_event::Failed>(ev);
    r.type = CMAIL_SMTP_CLIENT_FAILED;
    r.fail_kind = static_cast<int>(f.kind);
    r.reason = f.reason;
    r.permanent = f.permanent();
    if (f.reply) r.set_reply(*f.reply);
  }
  return r;
}

}  // namespace

extern "C" {

void cmail_smtp_client_options_init(cmail_smtp_client_options* o) {
  if (!o) return;
  const smtp::ClientOptions d;
  *o = cmail_smtp_client_options{};
  o->helo_name = "localhost";
  o->tls = static_cast<int>(d.tls);
  o->tls_active = d.tls_active;
  o->auth_without_tls = d.auth_without_tls;
  o->chunking = d.chunking;
  o->greeting_timeout_ms = d.greeting_timeout.count();
  o->command_timeout_ms = d.command_timeout.count();
  o->data_block_timeout_ms = d.data_block_timeout.count();
  o->data_end_timeout_ms = d.data_end_timeout.count();
}

int cmail_smtp_client_new(const cmail_smtp_client_options* options, cmail_smtp_client** out, char** errmsg) {
  if (!out) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "out is NULL");
  *out = nullptr;
  return c::guard(errmsg, [&] {
    cmail_smtp_client_options o;
    cmail_smtp_client_options_init(&o);
    if (options) o = *options;
    if (o.tls < CMAIL_TLS_NONE || o.tls > CMAIL_TLS_REQUIRED) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "tls is not a CMAIL_TLS_* value");
    if (!o.auth_user != !o.auth_password) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "auth_user and auth_password go together");
    smtp::ClientOptions co;
    co.helo_name = c::str(o.helo_name, "localhost");
    co.tls = static_cast<smtp::TlsPolicy>(o.tls);
    co.tls_active = o.tls_active;
    if (o.auth_user) co.auth = sasl::Credentials{"", o.auth_user, o.auth_password};
    co.auth_without_tls = o.auth_without_tls;
    co.chunking = o.chunking;
    co.greeting_timeout = c::ms(o.greeting_timeout_ms);
    co.command_timeout = c::ms(o.command_timeout_ms);
    co.data_block_timeout = c::ms(o.data_block_timeout_ms);
    co.data_end_timeout = c::ms(o.data_end_timeout_ms);
    *out = c::adopt(new cmail_smtp_client(co));
    return c::ok(errmsg);
  });
}

void cmail_smtp_client_free(cmail_smtp_client* cl) {
  if (c::release(cl)) delete cl;
}

int cmail_smtp_client_receive(cmail_smtp_client* cl, const char* data, size_t len, char** errmsg) {
  return c::receive(cl, &cmail_smtp_client::client, data, len, errmsg);
}

int cmail_smtp_client_receive_eof(cmail_smtp_client* cl, char** errmsg) {
  return c::receive_eof(cl, &cmail_smtp_client::client, errmsg);
}

int cmail_smtp_client_pending_output(const cmail_smtp_client* cl, const char** data, size_t* len, char** errmsg) {
  return c::pending_output(cl, &cmail_smtp_client::client, data, len, errmsg);
}

int cmail_smtp_client_consume_output(cmail_smtp_client* cl, size_t n, char** errmsg) {
  return c::consume_output(cl, &cmail_smtp_client::client, n, errmsg);
}

int cmail_smtp_client_next_event(cmail_smtp_client* cl, cmail_smtp_client_event* event, char** errmsg) {
  if (!c::live(cl)) return c::bad_handle(errmsg);
  if (!event) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "event is NULL");
  return c::guard(errmsg, [&] {
    cl->current = Record{};
    if (auto ev = cl->client.next_client_event()) {
      cl->current = record(*ev);
    } else if (auto t = cl->client.next_event()) {
      if (auto* tls = std::get_if<proto::StartTls>(&*t)) {
        cl->current.type = CMAIL_EVENT_STARTTLS;
        cl->current.data = std::move(tls->trailing);
      } else {
        cl->current.type = CMAIL_EVENT_CLOSE;
      }
    }
    fill(cl->current, event);
    return c::ok(errmsg);
  });
}

int cmail_smtp_client_tls_established(cmail_smtp_client* cl, const char* version, const char* cipher, int bits,
                                      char** errmsg) {
  return c::tls_established(cl, &cmail_smtp_client::client, version, cipher, bits, errmsg);
}

int cmail_smtp_client_on_timeout(cmail_smtp_client* cl, char** errmsg) {
  return c::on_timeout(cl, &cmail_smtp_client::client, errmsg);
}

int cmail_smtp_client_wants_read(const cmail_smtp_client* cl) { return c::live(cl) && cl->client.wants_read(); }
int cmail_smtp_client_is_closed(const cmail_smtp_client* cl) { return !c::live(cl) || cl->client.closed(); }
int64_t cmail_smtp_client_timeout_ms(const cmail_smtp_client* cl) { return c::live(cl) ? cl->client.timeout().count() : -1; }

int cmail_smtp_client_send_mail(cmail_smtp_client* cl, const char* from, const char* const* recipients,
                                size_t recipient_count, const char* message, size_t message_len, char** errmsg) {
  if (!c::live(cl)) return c::bad_handle(errmsg);
  if (!recipients || recipient_count == 0) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "no recipients");
  if (!message && message_len) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "message is NULL");
  for (size_t i = 0; i < recipient_count; ++i)
    if (!recipients[i] || !*recipients[i]) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "a recipient is NULL or empty");
  return c::guard(errmsg, [&] {
    smtp::Envelope env;
    env.from = smtp::Path::from_address(c::str(from));
    for (size_t i = 0; i < recipient_count; ++i) env.recipients.push_back({smtp::Path::from_address(recipients[i]), {}});
    Status st = cl->client.send_mail(std::move(env), std::string(message ? message : "", message_len));
    // With recipients given, InvalidArgument is the engine's "before Ready".
    if (st.code() == Status::Code::InvalidArgument) return c::fail(errmsg, CMAIL_WRONG_STATE, st.message());
    return c::from_status(st, errmsg);
  });
}

int cmail_smtp_client_quit(cmail_smtp_client* cl, char** errmsg) {
  if (!c::live(cl)) return c::bad_handle(errmsg);
  return c::guard(errmsg, [&] {
    cl->client.quit();
    return c::ok(errmsg);
  });
}

}  // extern "C"
