/* tests/c_abi/c_abi_test.c: drives every function of the C ABI (include/cmail/cmail.h).
 *
 * C99 with -Wall -Wextra -Werror, linked against libcmail.so alone. The engines run whole
 * conversations fed at once, byte by byte and in random splits (the output must be the same
 * each way), the SMTP client talks to the SMTP server engine in memory, the store is
 * administered on a temporary file, and the in-process server takes mail over SMTP and serves
 * it over POP3 and IMAP on loopback. Bad use (NULL, freed and wrong-kind handles, verdicts
 * nobody waits for, a port in use, a read-only data directory) must give an error code and a
 * message.
 *
 * Random splits come from a seed: CMAIL_TEST_SEED=N, else 1; it is printed.
 * Usage: c_abi_test. Exits 1 after naming every failed check.
 */
#define _POSIX_C_SOURCE 200809L

#include <cmail/cmail.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                  \
  do {                                                               \
    ++checks;                                                        \
    if (!(cond)) {                                                   \
      ++failures;                                                    \
      fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                \
  } while (0)

/* A call that must succeed; its message is printed when it does not. */
#define OK(call)                                                                            \
  do {                                                                                      \
    char* ok_err_ = NULL;                                                                   \
    int ok_rc_ = (call);                                                                    \
    ++checks;                                                                               \
    if (ok_rc_ != CMAIL_OK) {                                                               \
      ++failures;                                                                           \
      fprintf(stderr, "%s:%d: FAILED: %s: %s: %s\n", __FILE__, __LINE__, #call,            \
              cmail_status_name(ok_rc_), ok_err_ ? ok_err_ : "(no message)");              \
    }                                                                                       \
    cmail_free(ok_err_);                                                                    \
  } while (0)

/* A call that must fail with `code` and say why. The call takes `&err` as its errmsg. */
#define FAILS(code, call)                                                                   \
  do {                                                                                      \
    char* err = NULL;                                                                       \
    int fails_rc_ = (call);                                                                 \
    ++checks;                                                                               \
    if (fails_rc_ != (code) || err == NULL || err[0] == '\0') {                             \
      ++failures;                                                                           \
      fprintf(stderr, "%s:%d: FAILED: %s gave %s (%s), expected %s with a message\n",      \
              __FILE__, __LINE__, #call, cmail_status_name(fails_rc_), err ? err : "no message", \
              cmail_status_name(code));                                                     \
    }                                                                                       \
    cmail_free(err);                                                                        \
  } while (0)

static int contains(const char* hay, size_t len, const char* needle) {
  size_t n = strlen(needle), i;
  if (n > len) return 0;
  for (i = 0; i + n <= len; ++i)
    if (memcmp(hay + i, needle, n) == 0) return 1;
  return 0;
}

/* ---- Random splits ---------------------------------------------------------------------- */

static unsigned long rng = 1;
static unsigned rnd(void) {
  rng = rng * 1103515245ul + 12345ul;
  return (unsigned)((rng >> 8) & 0xffffff);
}

enum { WHOLE, BYTES, RANDOM };
static const char* const mode_names[] = {"whole", "byte by byte", "random splits"};
static size_t piece(int mode, size_t left) {
  size_t max;
  if (mode == WHOLE) return left;
  if (mode == BYTES) return 1;
  max = left < 40 ? left : 40;
  return 1 + rnd() % max;
}

/* Output collected from an engine. */
typedef struct {
  char data[65536];
  size_t len;
} buffer;

static void append(buffer* b, const char* p, size_t n) {
  if (n > sizeof b->data - 1 - b->len) n = sizeof b->data - 1 - b->len;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

/* ---- SMTP server engine ----------------------------------------------------------------- */

typedef struct {
  cmail_smtp_server* s;
  buffer out;           /* everything the engine sent */
  buffer message;       /* DATA events */
  int resets, closed, starttls, data_ends, defer_data_end, deferred;
  char user[64];        /* the session's user at MAIL */
  char protocol[16];    /* the session's protocol at DATA_END */
  char trailing[64];    /* STARTTLS's trailing bytes */
  size_t forwarded;     /* how much of out went to the client (shuttle) */
  const char* notify;   /* the NOTIFY expected for me@example.test */
} smtp_peer;

/* Takes the engine's output, in two steps to exercise partial consumption. */
static void smtp_take_output(smtp_peer* p) {
  const char* data;
  size_t len;
  OK(cmail_smtp_server_pending_output(p->s, &data, &len, NULL));
  if (len == 0) return;
  append(&p->out, data, len / 2);
  OK(cmail_smtp_server_consume_output(p->s, len / 2, NULL));
  OK(cmail_smtp_server_pending_output(p->s, &data, &len, NULL));
  append(&p->out, data, len);
  OK(cmail_smtp_server_consume_output(p->s, len, NULL));
}

/* Answers every decision: the one recipient we have is me@example.test. */
static void smtp_pump(smtp_peer* p) {
  cmail_smtp_event ev;
  for (;;) {
    smtp_take_output(p);
    OK(cmail_smtp_server_next_event(p->s, &ev, NULL));
    switch (ev.type) {
      case CMAIL_EVENT_NONE:
        return;
      case CMAIL_SMTP_EVENT_HELO:
        CHECK(ev.helo && strcmp(ev.helo, "client.example") == 0);
        CHECK(ev.esmtp == 1);
        OK(cmail_smtp_server_accept(p->s, NULL, NULL));
        break;
      case CMAIL_SMTP_EVENT_AUTH:
        CHECK(strcmp(ev.authcid, "alice") == 0 && strcmp(ev.authzid, "") == 0);
        if (strcmp(ev.password, "secret") == 0)
          OK(cmail_smtp_server_authenticated(p->s, "alice", NULL));
        else
          OK(cmail_smtp_server_reject(p->s, 535, "5.7.8", "Bad credentials", NULL));
        break;
      case CMAIL_SMTP_EVENT_MAIL:
        CHECK(strcmp(ev.address, "a@b.example") == 0);
        CHECK(ev.has_size && ev.size == 42);
        CHECK(ev.body == 1);
        snprintf(p->user, sizeof p->user, "%s", ev.user ? ev.user : "");
        OK(cmail_smtp_server_accept(p->s, "Sender OK", NULL));
        break;
      case CMAIL_SMTP_EVENT_RCPT:
        if (strcmp(ev.address, "me@example.test") == 0) {
          if (p->notify)
            CHECK(ev.notify && strcmp(ev.notify, p->notify) == 0);
          else
            CHECK(ev.notify == NULL);
          OK(cmail_smtp_server_accept(p->s, NULL, NULL));
        } else {
          CHECK(ev.notify == NULL);
          OK(cmail_smtp_server_reject(p->s, 550, "5.1.1", "No such user here", NULL));
        }
        break;
      case CMAIL_SMTP_EVENT_DATA:
        append(&p->message, ev.data, ev.data_len);
        break;
      case CMAIL_SMTP_EVENT_DATA_END:
        ++p->data_ends;
        snprintf(p->protocol, sizeof p->protocol, "%s", ev.protocol);
        if (p->defer_data_end) {
          p->deferred = 1;  /* answered later, by the test */
        } else {
          OK(cmail_smtp_server_accept(p->s, "Queued", NULL));
        }
        break;
      case CMAIL_SMTP_EVENT_RESET:
        ++p->resets;
        break;
      case CMAIL_EVENT_STARTTLS:
        ++p->starttls;
        snprintf(p->trailing, sizeof p->trailing, "%.*s", (int)ev.data_len, ev.data);
        break;
      case CMAIL_EVENT_CLOSE:
        ++p->closed;
        break;
      default:
        CHECK(!"an unknown SMTP event type");
        return;
    }
  }
}

static void smtp_feed(smtp_peer* p, const char* input, int mode) {
  size_t len = strlen(input), at = 0;
  while (at < len) {
    size_t n = piece(mode, len - at);
    OK(cmail_smtp_server_receive(p->s, input + at, n, NULL));
    at += n;
    smtp_pump(p);
  }
}

static const char smtp_conversation[] =
    "EHLO client.example\r\n"
    "MAIL FROM:<a@b.example> SIZE=42 BODY=8BITMIME\r\n"
    "RCPT TO:<me@example.test> NOTIFY=SUCCESS,FAILURE\r\n"
    "RCPT TO:<other@example.test>\r\n"
    "DATA\r\n"
    "Subject: hi\r\n"
    "\r\n"
    "line\r\n"
    "..dot\r\n"
    ".\r\n"
    "QUIT\r\n";
static const char smtp_message[] = "Subject: hi\r\n\r\nline\r\n.dot\r\n";

static void test_smtp_server_conversation(void) {
  static smtp_peer first, p;
  int mode, round;
  for (round = 0; round < 6; ++round) {
    mode = round < 2 ? round : RANDOM;
    memset(&p, 0, sizeof p);
    p.notify = "SUCCESS,FAILURE";
    OK(cmail_smtp_server_new(NULL, &p.s, NULL));
    CHECK(cmail_smtp_server_state(p.s) == 0);
    CHECK(cmail_smtp_server_wants_read(p.s) == 1);
    CHECK(cmail_smtp_server_timeout_ms(p.s) == 300000);
    smtp_feed(&p, smtp_conversation, mode);
    if (round == 0) {
      CHECK(contains(p.out.data, p.out.len, "220 localhost"));
      CHECK(contains(p.out.data, p.out.len, "250 2.1.0 Sender OK\r\n"));
      CHECK(contains(p.out.data, p.out.len, "250 2.1.5 OK\r\n"));
      CHECK(contains(p.out.data, p.out.len, "550 5.1.1 No such user here\r\n"));
      CHECK(contains(p.out.data, p.out.len, "354 "));
      CHECK(contains(p.out.data, p.out.len, "250 2.0.0 Queued\r\n"));
      CHECK(contains(p.out.data, p.out.len, "221 2.0.0"));
      first = p;
    } else {
      if (p.out.len != first.out.len || memcmp(p.out.data, first.out.data, p.out.len) != 0)
        fprintf(stderr, "SMTP output %s differs from whole (seed %lu)\n", mode_names[mode], rng);
      CHECK(p.out.len == first.out.len && memcmp(p.out.data, first.out.data, p.out.len) == 0);
    }
    CHECK(p.message.len == strlen(smtp_message) && memcmp(p.message.data, smtp_message, p.message.len) == 0);
    CHECK(p.data_ends == 1);
    CHECK(strcmp(p.protocol, "ESMTP") == 0);
    CHECK(p.closed == 1);
    CHECK(cmail_smtp_server_is_closed(p.s) == 1);
    CHECK(cmail_smtp_server_wants_read(p.s) == 0);
    CHECK(cmail_smtp_server_messages(p.s) == 1);
    CHECK(cmail_smtp_server_state(p.s) == 7);
    cmail_smtp_server_free(p.s);
  }
}

/* A verdict given later: pipelined input waits, replies stay in order. */
static void test_smtp_server_pending(void) {
  static smtp_peer p;
  uint64_t phase = 99;
  int64_t budget = -1;
  memset(&p, 0, sizeof p);
  p.defer_data_end = 1;
  p.notify = "SUCCESS,FAILURE";
  OK(cmail_smtp_server_new(NULL, &p.s, NULL));
  OK(cmail_smtp_server_deadline(p.s, &phase, &budget, NULL));
  CHECK(budget >= 0);
  smtp_feed(&p, smtp_conversation, WHOLE);
  CHECK(p.deferred == 1);
  CHECK(!contains(p.out.data, p.out.len, "Queued"));
  CHECK(!contains(p.out.data, p.out.len, "221"));
  CHECK(p.closed == 0);
  OK(cmail_smtp_server_accept(p.s, "Queued", NULL));
  smtp_pump(&p);
  CHECK(contains(p.out.data, p.out.len, "250 2.0.0 Queued\r\n221 2.0.0"));
  CHECK(p.closed == 1);
  /* Nobody waits for a verdict now. */
  FAILS(CMAIL_WRONG_STATE, cmail_smtp_server_accept(p.s, NULL, &err));
  cmail_smtp_server_free(p.s);
}

/* AUTH, STARTTLS (its trailing bytes never reach the parser), time-outs, and the options. */
static void test_smtp_server_auth_tls_timeout(void) {
  static smtp_peer p;
  cmail_smtp_server_options o;
  uint64_t phase = 0, phase2 = 0;
  int64_t budget = 0;
  memset(&p, 0, sizeof p);
  cmail_smtp_server_options_init(&o);
  CHECK(o.max_message_size == 50u * 1024 * 1024 && o.auth_requires_tls == 1 && o.decisions == CMAIL_SMTP_DECIDE_ALL);
  o.hostname = "mx.example.test";
  o.auth_enabled = 1;
  o.auth_requires_tls = 0;
  o.starttls_available = 1;
  o.command_timeout_ms = 1234;
  OK(cmail_smtp_server_new(&o, &p.s, NULL));
  CHECK(cmail_smtp_server_timeout_ms(p.s) == 1234);
  /* PLAIN: NUL alice NUL wrong, then NUL alice NUL secret. */
  smtp_feed(&p, "EHLO client.example\r\nAUTH PLAIN AGFsaWNlAHdyb25n\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", RANDOM);
  CHECK(contains(p.out.data, p.out.len, "AUTH PLAIN LOGIN\r\n"));
  CHECK(contains(p.out.data, p.out.len, "535 5.7.8 Bad credentials"));
  CHECK(contains(p.out.data, p.out.len, "235 2.7.0"));
  smtp_feed(&p, "MAIL FROM:<a@b.example> SIZE=42 BODY=8BITMIME\r\n", WHOLE);
  CHECK(strcmp(p.user, "alice") == 0);
  OK(cmail_smtp_server_deadline(p.s, &phase, &budget, NULL));
  smtp_feed(&p, "RSET\r\nSTARTTLS\r\nEHLO injected\r\n", WHOLE);
  CHECK(p.resets >= 1);
  CHECK(p.starttls == 1);
  CHECK(strcmp(p.trailing, "EHLO injected\r\n") == 0);
  CHECK(contains(p.out.data, p.out.len, "220 2.0.0 Ready to start TLS"));
  CHECK(!contains(p.out.data, p.out.len, "injected"));
  CHECK(cmail_smtp_server_wants_read(p.s) == 0);
  OK(cmail_smtp_server_tls_established(p.s, "TLSv1.2", "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384", 256, NULL));
  CHECK(cmail_smtp_server_wants_read(p.s) == 1);
  p.out.len = 0;
  smtp_feed(&p, "EHLO client.example\r\n", BYTES);
  CHECK(contains(p.out.data, p.out.len, "250-mx.example.test"));
  CHECK(!contains(p.out.data, p.out.len, "STARTTLS"));
  OK(cmail_smtp_server_deadline(p.s, &phase2, &budget, NULL));
  CHECK(phase2 > phase && phase2 % 2 == 0);
  CHECK(budget == 0);  /* between lines only the time-out bounds the wait */
  smtp_feed(&p, "NO", WHOLE);
  OK(cmail_smtp_server_deadline(p.s, &phase, &budget, NULL));
  CHECK(phase == phase2 + 1);
  CHECK(budget == 1234);  /* a line begun must end within command_timeout */
  smtp_feed(&p, "OP\r\n", WHOLE);
  CHECK(contains(p.out.data, p.out.len, "250 2.0.0 OK\r\n"));
  OK(cmail_smtp_server_on_timeout(p.s, NULL));
  smtp_pump(&p);
  CHECK(contains(p.out.data, p.out.len, "421 4.4.2"));
  CHECK(p.closed == 1);
  cmail_smtp_server_free(p.s);

  /* Undecided decisions take the engine's defaults; the peer closing is no crash. */
  memset(&p, 0, sizeof p);
  p.notify = "SUCCESS,FAILURE";
  cmail_smtp_server_options_init(&o);
  o.decisions = CMAIL_SMTP_DECIDE_RCPT;
  OK(cmail_smtp_server_new(&o, &p.s, NULL));
  smtp_feed(&p, smtp_conversation, RANDOM);
  CHECK(contains(p.out.data, p.out.len, "250 2.0.0 OK\r\n"));
  CHECK(contains(p.out.data, p.out.len, "550 5.1.1"));
  OK(cmail_smtp_server_receive_eof(p.s, NULL));
  cmail_smtp_server_free(p.s);
}

static void test_smtp_server_bad_use(void) {
  cmail_smtp_server* s = NULL;
  cmail_smtp_server_options o;
  cmail_smtp_event ev;
  const char* data;
  size_t len;
  uint64_t phase;
  int64_t budget;
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_new(NULL, NULL, &err));
  cmail_smtp_server_options_init(&o);
  o.max_recipients = 0;
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_new(&o, &s, &err));
  CHECK(s == NULL);
  cmail_smtp_server_options_init(NULL);
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_receive(NULL, "x", 1, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_receive_eof(NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_pending_output(NULL, &data, &len, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_consume_output(NULL, 0, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_next_event(NULL, &ev, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_tls_established(NULL, NULL, NULL, 0, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_on_timeout(NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_deadline(NULL, &phase, &budget, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_accept(NULL, NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_authenticated(NULL, "x", &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_reject(NULL, 550, NULL, NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_fail(NULL, NULL, &err));
  CHECK(cmail_smtp_server_wants_read(NULL) == 0);
  CHECK(cmail_smtp_server_is_closed(NULL) == 1);
  CHECK(cmail_smtp_server_timeout_ms(NULL) == -1);
  CHECK(cmail_smtp_server_state(NULL) == -1);
  CHECK(cmail_smtp_server_messages(NULL) == 0);
  cmail_smtp_server_free(NULL);

  OK(cmail_smtp_server_new(NULL, &s, NULL));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_receive(s, NULL, 3, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_pending_output(s, NULL, &len, &err));
  OK(cmail_smtp_server_pending_output(s, &data, &len, NULL));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_consume_output(s, len + 1, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_next_event(s, NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_deadline(s, NULL, &budget, &err));
  FAILS(CMAIL_WRONG_STATE, cmail_smtp_server_accept(s, NULL, &err));
  FAILS(CMAIL_WRONG_STATE, cmail_smtp_server_fail(s, "no", &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_accept(s, "two\r\nlines", &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_authenticated(s, "", &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_reject(s, 250, NULL, NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_reject(s, 550, "4.1.1", NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_reject(s, 550, "5.1", NULL, &err));
  OK(cmail_smtp_server_receive(s, "HELO client.example\r\n", 21, NULL));
  OK(cmail_smtp_server_next_event(s, &ev, NULL));
  CHECK(ev.type == CMAIL_SMTP_EVENT_HELO && ev.esmtp == 0);
  /* A failed backend gets the generic temporary failure. */
  OK(cmail_smtp_server_fail(s, "database gone", NULL));
  OK(cmail_smtp_server_pending_output(s, &data, &len, NULL));
  CHECK(contains(data, len, "451 4.3.0"));
  CHECK(!contains(data, len, "database gone"));
  cmail_smtp_server_free(s);
  /* Freed: an error, not a crash; freeing it again does nothing. */
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_receive(s, "x", 1, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_accept(s, NULL, &err));
  CHECK(cmail_smtp_server_is_closed(s) == 1);
  CHECK(cmail_smtp_server_state(s) == -1);
  cmail_smtp_server_free(s);
  /* Another kind of handle is no SMTP server. */
  {
    cmail_pop3_server* pop = NULL;
    OK(cmail_pop3_server_new(NULL, &pop, NULL));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_server_receive((cmail_smtp_server*)(void*)pop, "x", 1, &err));
    cmail_smtp_server_free((cmail_smtp_server*)(void*)pop);  /* not freed: not an SMTP server */
    CHECK(cmail_pop3_server_state(pop) == 0);
    cmail_pop3_server_free(pop);
  }
}

/* ---- SMTP client engine, against the server engine in memory ---------------------------- */

typedef struct {
  cmail_smtp_client* c;
  int ready, rcpt_ok, rcpt_refused, mail_results, failed, closed, starttls, fail_kind;
  size_t accepted[4];
  size_t accepted_count;
  int mail_code;
} client_peer;

static void client_pump(client_peer* p) {
  cmail_smtp_client_event ev;
  for (;;) {
    OK(cmail_smtp_client_next_event(p->c, &ev, NULL));
    switch (ev.type) {
      case CMAIL_EVENT_NONE:
        return;
      case CMAIL_SMTP_CLIENT_READY:
        ++p->ready;
        break;
      case CMAIL_SMTP_CLIENT_RCPT_RESULT:
        if (ev.reply_code == 250) {
          CHECK(ev.index == 0);
          ++p->rcpt_ok;
        } else {
          CHECK(ev.index == 1 && ev.reply_code == 550 && strcmp(ev.reply_enhanced, "5.1.1") == 0);
          CHECK(strcmp(ev.reply_text, "No such user here") == 0);
          ++p->rcpt_refused;
        }
        break;
      case CMAIL_SMTP_CLIENT_MAIL_RESULT:
        ++p->mail_results;
        p->mail_code = ev.reply_code;
        p->accepted_count = ev.accepted_count < 4 ? ev.accepted_count : 4;
        memcpy(p->accepted, ev.accepted, p->accepted_count * sizeof(size_t));
        break;
      case CMAIL_SMTP_CLIENT_FAILED:
        ++p->failed;
        p->fail_kind = ev.fail_kind;
        CHECK(ev.reason != NULL && ev.reason[0] != '\0');
        break;
      case CMAIL_EVENT_STARTTLS:
        ++p->starttls;
        break;
      case CMAIL_EVENT_CLOSE:
        ++p->closed;
        break;
      default:
        CHECK(!"an unknown client event type");
        return;
    }
  }
}

/* Moves bytes both ways, in pieces, until neither side has output. Each TLS hand-off is
 * finished on both sides at once (the bytes stay plaintext: this tests the engines). */
static void shuttle(client_peer* cp, smtp_peer* sp, int mode) {
  int moved = 1;
  while (moved) {
    const char* data;
    size_t len, n;
    moved = 0;
    OK(cmail_smtp_client_pending_output(cp->c, &data, &len, NULL));
    if (len) {
      n = piece(mode, len);
      OK(cmail_smtp_server_receive(sp->s, data, n, NULL));
      OK(cmail_smtp_client_consume_output(cp->c, n, NULL));
      moved = 1;
    }
    smtp_pump(sp);  /* the server's output goes to sp->out */
    if (sp->out.len > sp->forwarded) {
      n = piece(mode, sp->out.len - sp->forwarded);
      OK(cmail_smtp_client_receive(cp->c, sp->out.data + sp->forwarded, n, NULL));
      sp->forwarded += n;
      moved = 1;
    }
    client_pump(cp);
    if (cp->starttls == 1 && sp->starttls == 1) {
      OK(cmail_smtp_server_tls_established(sp->s, "TLSv1.2", "X", 256, NULL));
      OK(cmail_smtp_client_tls_established(cp->c, "TLSv1.2", "X", 256, NULL));
      cp->starttls = sp->starttls = 2;
      moved = 1;
    }
  }
}

static void test_smtp_client(void) {
  static smtp_peer sp;
  static const char* const rcpts[] = {"me@example.test", "other@example.test"};
  client_peer cp;
  cmail_smtp_client_options co;
  cmail_smtp_server_options so;
  int mode;
  for (mode = WHOLE; mode <= RANDOM; ++mode) {
    memset(&sp, 0, sizeof sp);
    memset(&cp, 0, sizeof cp);
    cmail_smtp_server_options_init(&so);
    so.starttls_available = 1;
    so.auth_enabled = 1;
    so.decisions = CMAIL_SMTP_DECIDE_ALL & ~(unsigned)CMAIL_SMTP_DECIDE_MAIL;  /* MAIL by default */
    OK(cmail_smtp_server_new(&so, &sp.s, NULL));
    cmail_smtp_client_options_init(&co);
    CHECK(co.tls == CMAIL_TLS_OPPORTUNISTIC && co.chunking == 1);
    co.helo_name = "client.example";
    co.auth_user = "alice";
    co.auth_password = "secret";
    OK(cmail_smtp_client_new(&co, &cp.c, NULL));
    CHECK(cmail_smtp_client_timeout_ms(cp.c) == 300000);
    CHECK(cmail_smtp_client_wants_read(cp.c) == 1);
    FAILS(CMAIL_WRONG_STATE, cmail_smtp_client_send_mail(cp.c, "a@b.example", rcpts, 2, "x\r\n", 3, &err));
    shuttle(&cp, &sp, mode);
    CHECK(cp.starttls == 2);  /* STARTTLS taken, then AUTH inside it */
    CHECK(cp.ready == 1);
    OK(cmail_smtp_client_send_mail(cp.c, "a@b.example", rcpts, 2, smtp_message, strlen(smtp_message), NULL));
    shuttle(&cp, &sp, mode);
    CHECK(cp.rcpt_ok == 1 && cp.rcpt_refused == 1);
    CHECK(cp.mail_results == 1 && cp.mail_code == 250);
    CHECK(cp.accepted_count == 1 && cp.accepted[0] == 0);
    CHECK(cp.ready == 2);
    CHECK(strcmp(sp.protocol, "ESMTPSA") == 0);
    CHECK(sp.message.len == strlen(smtp_message) && memcmp(sp.message.data, smtp_message, sp.message.len) == 0);
    OK(cmail_smtp_client_quit(cp.c, NULL));
    shuttle(&cp, &sp, mode);
    CHECK(cp.closed == 1 && sp.closed == 1);
    CHECK(cmail_smtp_client_is_closed(cp.c) == 1);
    OK(cmail_smtp_client_receive_eof(cp.c, NULL));
    cmail_smtp_client_free(cp.c);
    cmail_smtp_server_free(sp.s);
  }

  /* A server that never answers: the time-out is a connection failure. */
  memset(&cp, 0, sizeof cp);
  OK(cmail_smtp_client_new(NULL, &cp.c, NULL));
  OK(cmail_smtp_client_on_timeout(cp.c, NULL));
  client_pump(&cp);
  CHECK(cp.failed == 1 && cp.fail_kind == CMAIL_FAIL_CONNECTION);
  CHECK(cp.closed == 1);
  cmail_smtp_client_free(cp.c);

  /* Bad use. */
  {
    const char* data;
    size_t len;
    cmail_smtp_client_event ev;
    cmail_smtp_client* c = NULL;
    cmail_smtp_client_options_init(&co);
    co.tls = 7;
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_client_new(&co, &c, &err));
    cmail_smtp_client_options_init(&co);
    co.auth_user = "alice";
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_client_new(&co, &c, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_client_new(NULL, NULL, &err));
    cmail_smtp_client_options_init(NULL);
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_client_receive(NULL, "x", 1, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_client_receive_eof(NULL, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_client_pending_output(NULL, &data, &len, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_client_consume_output(NULL, 0, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_client_next_event(NULL, &ev, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_client_tls_established(NULL, NULL, NULL, 0, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_client_on_timeout(NULL, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_client_send_mail(NULL, "", rcpts, 1, "", 0, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_client_quit(NULL, &err));
    CHECK(cmail_smtp_client_wants_read(NULL) == 0);
    CHECK(cmail_smtp_client_is_closed(NULL) == 1);
    CHECK(cmail_smtp_client_timeout_ms(NULL) == -1);
    cmail_smtp_client_free(NULL);
    OK(cmail_smtp_client_new(NULL, &c, NULL));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_client_send_mail(c, "", rcpts, 0, "", 0, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_client_consume_output(c, 1, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_client_next_event(c, NULL, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_client_receive(c, NULL, 2, &err));
    /* Garbage from the server is a protocol failure, not a crash. */
    OK(cmail_smtp_client_receive(c, "hello\r\n", 7, NULL));
    OK(cmail_smtp_client_next_event(c, &ev, NULL));
    CHECK(ev.type == CMAIL_SMTP_CLIENT_FAILED && ev.fail_kind == CMAIL_FAIL_PROTOCOL);
    cmail_smtp_client_free(c);
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_smtp_client_quit(c, &err));
    cmail_smtp_client_free(c);
  }
}

/* ---- POP3 server engine ----------------------------------------------------------------- */

static const char pop3_msg1[] = "Subject: one\r\n\r\nfirst\r\n.dot\r\n";
static const char pop3_msg2[] = "Subject: two\r\n\r\nbody\r\nmore\r\n";

typedef struct {
  cmail_pop3_server* s;
  buffer out;
  int logins, retrieves, updates, closed, starttls;
  size_t deleted[4];
  size_t deleted_count;
} pop3_peer;

static void pop3_pump(pop3_peer* p) {
  cmail_pop3_event ev;
  static const char* const uids[] = {"uid-1", "uid-2"};
  uint64_t sizes[2];
  sizes[0] = strlen(pop3_msg1);
  sizes[1] = strlen(pop3_msg2);
  for (;;) {
    const char* data;
    size_t len;
    OK(cmail_pop3_server_pending_output(p->s, &data, &len, NULL));
    append(&p->out, data, len);
    OK(cmail_pop3_server_consume_output(p->s, len, NULL));
    OK(cmail_pop3_server_next_event(p->s, &ev, NULL));
    switch (ev.type) {
      case CMAIL_EVENT_NONE:
        OK(cmail_pop3_server_pending_output(p->s, &data, &len, NULL));
        if (len) continue;  /* consume_output made more of a RETR */
        return;
      case CMAIL_POP3_EVENT_LOGIN:
        ++p->logins;
        CHECK(strcmp(ev.authzid, "") == 0 && strcmp(ev.authcid, "alice") == 0);
        if (strcmp(ev.password, "secret") == 0)
          OK(cmail_pop3_server_maildrop(p->s, "alice", sizes, uids, 2, NULL));
        else
          OK(cmail_pop3_server_reject(p->s, CMAIL_POP3_RESP_AUTH, "Bad credentials", NULL));
        break;
      case CMAIL_POP3_EVENT_RETRIEVE:
        ++p->retrieves;
        CHECK(ev.index < 2);
        if (ev.index == 0)
          OK(cmail_pop3_server_message(p->s, pop3_msg1, strlen(pop3_msg1), NULL));
        else
          OK(cmail_pop3_server_message(p->s, pop3_msg2, strlen(pop3_msg2), NULL));
        break;
      case CMAIL_POP3_EVENT_UPDATE:
        ++p->updates;
        p->deleted_count = ev.deleted_count < 4 ? ev.deleted_count : 4;
        memcpy(p->deleted, ev.deleted, p->deleted_count * sizeof(size_t));
        OK(cmail_pop3_server_accept(p->s, NULL));
        break;
      case CMAIL_EVENT_STARTTLS:
        ++p->starttls;
        break;
      case CMAIL_EVENT_CLOSE:
        ++p->closed;
        break;
      default:
        CHECK(!"an unknown POP3 event type");
        return;
    }
  }
}

static void pop3_feed(pop3_peer* p, const char* input, int mode) {
  size_t len = strlen(input), at = 0;
  while (at < len) {
    size_t n = piece(mode, len - at);
    OK(cmail_pop3_server_receive(p->s, input + at, n, NULL));
    at += n;
    pop3_pump(p);
  }
}

static const char pop3_conversation[] =
    "USER alice\r\nPASS wrong\r\nUSER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 2 0\r\n"
    "DELE 1\r\nQUIT\r\n";

static void test_pop3_server(void) {
  static pop3_peer first, p;
  cmail_pop3_server_options o;
  int round, mode;
  for (round = 0; round < 6; ++round) {
    mode = round < 2 ? round : RANDOM;
    memset(&p, 0, sizeof p);
    OK(cmail_pop3_server_new(NULL, &p.s, NULL));
    CHECK(cmail_pop3_server_state(p.s) == 0);
    CHECK(cmail_pop3_server_timeout_ms(p.s) == 600000);
    pop3_feed(&p, pop3_conversation, mode);
    if (round == 0) {
      CHECK(contains(p.out.data, p.out.len, "-ERR [AUTH] Bad credentials\r\n"));
      CHECK(contains(p.out.data, p.out.len, "+OK 2 "));
      CHECK(contains(p.out.data, p.out.len, "1 uid-1\r\n2 uid-2\r\n.\r\n"));
      CHECK(contains(p.out.data, p.out.len, "Subject: one\r\n\r\nfirst\r\n..dot\r\n.\r\n"));
      CHECK(contains(p.out.data, p.out.len, "Subject: two\r\n\r\n.\r\n"));
      CHECK(!contains(p.out.data, p.out.len, "more"));
      first = p;
    } else {
      if (p.out.len != first.out.len || memcmp(p.out.data, first.out.data, p.out.len) != 0)
        fprintf(stderr, "POP3 output %s differs from whole (seed %lu)\n", mode_names[mode], rng);
      CHECK(p.out.len == first.out.len && memcmp(p.out.data, first.out.data, p.out.len) == 0);
    }
    CHECK(p.logins == 2 && p.retrieves == 2 && p.updates == 1);
    CHECK(p.deleted_count == 1 && p.deleted[0] == 0);
    CHECK(p.closed == 1);
    CHECK(cmail_pop3_server_is_closed(p.s) == 1);
    CHECK(cmail_pop3_server_state(p.s) == 4);
    cmail_pop3_server_free(p.s);
  }

  /* STLS, then a time-out with a pending login answered too late. */
  memset(&p, 0, sizeof p);
  cmail_pop3_server_options_init(&o);
  CHECK(o.max_login_failures == 3);
  o.starttls_available = 1;
  o.tls_required = 1;
  o.idle_timeout_ms = 5000;
  OK(cmail_pop3_server_new(&o, &p.s, NULL));
  CHECK(cmail_pop3_server_timeout_ms(p.s) == 5000);
  pop3_feed(&p, "CAPA\r\nSTLS\r\n", WHOLE);
  CHECK(contains(p.out.data, p.out.len, "STLS\r\n"));
  CHECK(p.starttls == 1);
  CHECK(cmail_pop3_server_wants_read(p.s) == 0);
  OK(cmail_pop3_server_tls_established(p.s, "TLSv1.2", "X", 256, NULL));
  CHECK(cmail_pop3_server_wants_read(p.s) == 1);
  {
    uint64_t phase = 0;
    int64_t budget = 0;
    OK(cmail_pop3_server_deadline(p.s, &phase, &budget, NULL));
    CHECK(budget == 0);
    pop3_feed(&p, "NO", WHOLE);
    OK(cmail_pop3_server_deadline(p.s, &phase, &budget, NULL));
    CHECK(budget == 5000 && phase % 2 == 1);
  }
  OK(cmail_pop3_server_on_timeout(p.s, NULL));
  pop3_pump(&p);
  CHECK(p.closed == 1);
  OK(cmail_pop3_server_receive_eof(p.s, NULL));
  cmail_pop3_server_free(p.s);

  /* Bad use. */
  {
    cmail_pop3_server* s = NULL;
    cmail_pop3_event ev;
    const char* data;
    size_t len;
    uint64_t phase, size = 3;
    int64_t budget;
    static const char* const bad_uid[] = {"has space"};
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_new(NULL, NULL, &err));
    cmail_pop3_server_options_init(&o);
    o.max_errors = 0;
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_new(&o, &s, &err));
    cmail_pop3_server_options_init(NULL);
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_receive(NULL, "x", 1, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_receive_eof(NULL, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_pending_output(NULL, &data, &len, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_consume_output(NULL, 0, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_next_event(NULL, &ev, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_tls_established(NULL, NULL, NULL, 0, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_on_timeout(NULL, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_deadline(NULL, &phase, &budget, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_maildrop(NULL, "a", NULL, NULL, 0, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_message(NULL, "", 0, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_accept(NULL, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_reject(NULL, 0, NULL, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_fail(NULL, NULL, &err));
    CHECK(cmail_pop3_server_wants_read(NULL) == 0);
    CHECK(cmail_pop3_server_is_closed(NULL) == 1);
    CHECK(cmail_pop3_server_timeout_ms(NULL) == -1);
    CHECK(cmail_pop3_server_state(NULL) == -1);
    cmail_pop3_server_free(NULL);
    OK(cmail_pop3_server_new(NULL, &s, NULL));
    FAILS(CMAIL_WRONG_STATE, cmail_pop3_server_accept(s, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_consume_output(s, 1 << 20, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_reject(s, 9, "x", &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_next_event(s, NULL, &err));
    OK(cmail_pop3_server_receive(s, "USER a\r\nPASS b\r\n", 16, NULL));
    OK(cmail_pop3_server_next_event(s, &ev, NULL));
    CHECK(ev.type == CMAIL_POP3_EVENT_LOGIN);
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_maildrop(s, "a", &size, bad_uid, 1, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_maildrop(s, "", &size, bad_uid, 1, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_maildrop(s, "a", NULL, NULL, 1, &err));
    OK(cmail_pop3_server_fail(s, "database gone", NULL));  /* the decision still waited */
    OK(cmail_pop3_server_pending_output(s, &data, &len, NULL));
    CHECK(contains(data, len, "-ERR [SYS/TEMP]"));
    CHECK(!contains(data, len, "database gone"));
    cmail_pop3_server_free(s);
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_pop3_server_accept(s, &err));
    cmail_pop3_server_free(s);
  }
}

/* ---- IMAP server engine ----------------------------------------------------------------- */

static const char imap_msg1[] =
    "From: Ann <ann@example.test>\r\nTo: bob@example.test\r\nSubject: one\r\n"
    "Date: Tue, 1 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\nfirst body\r\n";
static const char imap_msg2[] =
    "From: carl@example.test\r\nSubject: two\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
    "hello part\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--b--\r\n";
static const char imap_msg3[] = "Subject: three\r\n\r\nappended\r\n";

/* The embedder: a mailbox INBOX (UIDVALIDITY 7) of uid 1 (imap_msg1, \Seen) and uid 2
 * (imap_msg2, $Work), answering every decision. */
typedef struct {
  cmail_imap_server* s;
  buffer out;
  buffer appended;     /* APPEND_DATA events */
  int events[64];      /* how many of each event type (index type - 40) */
  int closed, refused_login, appended_reported, defer;
  uint32_t flags[3];   /* of uid 1 and 2 */
  uint32_t uidnext;
  uint64_t modseq;     /* the highest */
  uint32_t search_uids[4];
  size_t search_count;
} imap_peer;

static const char* imap_octets(uint32_t uid) { return uid == 1 ? imap_msg1 : imap_msg2; }

/* FETCH and SEARCH: every message asked for, octets when the request needs them. */
static void imap_give(imap_peer* p, const cmail_imap_event* ev) {
  size_t i;
  for (i = 0; i < ev->uid_count; ++i) {
    cmail_imap_message m;
    uint32_t uid = ev->uids[i];
    CHECK(uid == 1 || uid == 2);
    if (uid != 1 && uid != 2) continue;
    memset(&m, 0, sizeof m);
    m.uid = uid;
    if (ev->set_seen && !(p->flags[uid] & CMAIL_IMAP_SEEN)) {
      p->flags[uid] |= CMAIL_IMAP_SEEN;
      m.seen_set = 1;
    }
    m.flags = p->flags[uid];
    m.keywords = uid == 2 ? "$Work" : NULL;
    m.modseq = 4 + uid;
    m.internal_date = 1796119200 + (int64_t)uid; /* 2026-12-01 10:00 UTC */
    if (ev->need_octets) {
      m.octets = imap_octets(uid);
      m.octets_len = strlen(m.octets);
    } else {
      m.size = strlen(imap_octets(uid));
    }
    OK(cmail_imap_server_message(p->s, &m, NULL));
  }
  OK(cmail_imap_server_done(p->s, NULL));
}

static void imap_decide(imap_peer* p, const cmail_imap_event* ev) {
  static const char* const names[] = {"INBOX", "Archive", "Old"};
  static const char* const uses[] = {NULL, "\\Archive", NULL};
  static const unsigned attrs[] = {CMAIL_IMAP_MAILBOX_SUBSCRIBED, 0,
                                   CMAIL_IMAP_MAILBOX_SUBSCRIBED | CMAIL_IMAP_MAILBOX_NONEXISTENT};
  static const uint32_t uids[] = {1, 2};
  static const char* const kws[] = {NULL, "$Work"};
  static const uint64_t modseqs[] = {5, 6};
  switch (ev->type) {
    case CMAIL_IMAP_EVENT_LOGIN:
      CHECK(strcmp(ev->authzid, "") == 0 && strcmp(ev->authcid, "alice") == 0);
      if (strcmp(ev->password, "secret") == 0) {
        OK(cmail_imap_server_user(p->s, "alice", NULL));
      } else {
        ++p->refused_login;
        OK(cmail_imap_server_reject(p->s, CMAIL_IMAP_RESP_AUTHENTICATIONFAILED, "Invalid credentials", NULL));
      }
      break;
    case CMAIL_IMAP_EVENT_LIST:
      OK(cmail_imap_server_mailboxes(p->s, names, uses, attrs, 3, NULL));
      break;
    case CMAIL_IMAP_EVENT_STATUS: {
      cmail_imap_status st;
      memset(&st, 0, sizeof st);
      CHECK(strcmp(ev->mailbox, "INBOX") == 0);
      st.messages = 2;
      st.uidnext = 3;
      st.uidvalidity = 7;
      st.unseen = 1;
      st.highest_modseq = 10;
      OK(cmail_imap_server_counts(p->s, &st, NULL));
      break;
    }
    case CMAIL_IMAP_EVENT_CREATE:
      CHECK(strcmp(ev->mailbox, "Work") == 0 && strcmp(ev->special_use, "") == 0);
      OK(cmail_imap_server_accept(p->s, NULL));
      break;
    case CMAIL_IMAP_EVENT_RENAME:
      CHECK(strcmp(ev->mailbox, "Work") == 0 && strcmp(ev->target, "Projects") == 0);
      OK(cmail_imap_server_accept(p->s, NULL));
      break;
    case CMAIL_IMAP_EVENT_SUBSCRIBE:
      CHECK(strcmp(ev->mailbox, "Projects") == 0);
      CHECK(ev->subscribe == (p->events[CMAIL_IMAP_EVENT_SUBSCRIBE - 40] == 1));
      OK(cmail_imap_server_accept(p->s, NULL));
      break;
    case CMAIL_IMAP_EVENT_DELETE:
      CHECK(strcmp(ev->mailbox, "Projects") == 0);
      OK(cmail_imap_server_accept(p->s, NULL));
      break;
    case CMAIL_IMAP_EVENT_SELECT:
      CHECK(strcmp(ev->mailbox, "INBOX") == 0 && ev->read_only == 0);
      OK(cmail_imap_server_selected(p->s, 7, 3, 10, 0, uids, p->flags + 1, kws, modseqs, 2, "$Work", NULL));
      break;
    case CMAIL_IMAP_EVENT_CHANGES:
      CHECK(ev->has_modseq == 1 && ev->uidnext >= 3);
      if (p->events[CMAIL_IMAP_EVENT_APPEND_END - 40] && !p->appended_reported) {
        static const uint32_t added[] = {3};
        static const uint32_t added_flags[] = {CMAIL_IMAP_SEEN};
        static const char* const added_kws[] = {"$Work"};
        static const uint64_t added_modseq[] = {13};
        p->appended_reported = 1;
        p->uidnext = 4;
        p->modseq = 13;
        OK(cmail_imap_server_changes(p->s, 4, 13, added, added_flags, added_kws, added_modseq, 1, NULL, 0, NULL));
      } else {
        OK(cmail_imap_server_changes(p->s, p->uidnext, p->modseq, NULL, NULL, NULL, NULL, 0, NULL, 0, NULL));
      }
      break;
    case CMAIL_IMAP_EVENT_FETCH:
    case CMAIL_IMAP_EVENT_SEARCH:
      if (ev->type == CMAIL_IMAP_EVENT_SEARCH) {
        p->search_count = ev->uid_count < 4 ? ev->uid_count : 4;
        memcpy(p->search_uids, ev->uids, p->search_count * sizeof(uint32_t));
      }
      imap_give(p, ev);
      break;
    case CMAIL_IMAP_EVENT_STORE: {
      static const uint32_t one[] = {1};
      uint64_t m = 11;
      CHECK(ev->op == CMAIL_IMAP_STORE_ADD && ev->flags == CMAIL_IMAP_DELETED && strcmp(ev->keywords, "") == 0);
      CHECK(ev->uid_count == 1 && ev->uids[0] == 1 && ev->has_modseq == 0);
      p->flags[1] |= CMAIL_IMAP_DELETED;
      p->modseq = 11;
      OK(cmail_imap_server_stored(p->s, one, p->flags + 1, NULL, &m, 1, NULL, 0, NULL));
      break;
    }
    case CMAIL_IMAP_EVENT_COPY: {
      uint32_t made = ev->move ? 22 : 21;
      CHECK(strcmp(ev->target, "Archive") == 0 && ev->uid_count == 1);
      CHECK(ev->uids[0] == (ev->move ? 2u : 1u));
      if (ev->move) p->modseq = 12;
      OK(cmail_imap_server_copied(p->s, 3, ev->uids, &made, 1, NULL));
      break;
    }
    case CMAIL_IMAP_EVENT_EXPUNGE: {
      static const uint32_t gone[] = {1};
      CHECK(ev->uid_count == 0);
      OK(cmail_imap_server_expunged(p->s, gone, 1, NULL));
      break;
    }
    case CMAIL_IMAP_EVENT_APPEND:
      CHECK(strcmp(ev->mailbox, "INBOX") == 0 && ev->flags == CMAIL_IMAP_SEEN && strcmp(ev->keywords, "$Work") == 0);
      CHECK(ev->has_date == 0 && ev->size == strlen(imap_msg3));
      OK(cmail_imap_server_accept(p->s, NULL));
      break;
    case CMAIL_IMAP_EVENT_APPEND_DATA:
      append(&p->appended, ev->data, ev->data_len);
      break;
    case CMAIL_IMAP_EVENT_APPEND_END:
      CHECK(strcmp(p->appended.data, imap_msg3) == 0);
      OK(cmail_imap_server_appended(p->s, 7, 3, NULL));
      break;
    case CMAIL_IMAP_EVENT_UNSELECT:
    case CMAIL_IMAP_EVENT_APPEND_ABORT:
      break;
    case CMAIL_EVENT_STARTTLS:
      CHECK(ev->data_len == 7 && memcmp(ev->data, "t3 CAPA", 7) == 0);
      break;
    case CMAIL_EVENT_CLOSE:
      ++p->closed;
      break;
    default:
      CHECK(!"an unexpected IMAP event type");
  }
}

static void imap_pump(imap_peer* p) {
  cmail_imap_event ev;
  for (;;) {
    const char* data;
    size_t len;
    OK(cmail_imap_server_pending_output(p->s, &data, &len, NULL));
    append(&p->out, data, len);
    OK(cmail_imap_server_consume_output(p->s, len, NULL));
    OK(cmail_imap_server_next_event(p->s, &ev, NULL));
    if (ev.type == CMAIL_EVENT_NONE) {
      OK(cmail_imap_server_pending_output(p->s, &data, &len, NULL));
      if (len) continue; /* consume_output made more of a FETCH */
      return;
    }
    if (ev.type >= 40 && ev.type < 104) ++p->events[ev.type - 40];
    imap_decide(p, &ev);
  }
}

static void imap_feed(imap_peer* p, const char* input, size_t len, int mode) {
  size_t at = 0;
  while (at < len) {
    size_t n = piece(mode, len - at);
    OK(cmail_imap_server_receive(p->s, input + at, n, NULL));
    at += n;
    imap_pump(p);
  }
}

static void imap_send(imap_peer* p, const char* input) { imap_feed(p, input, strlen(input), WHOLE); }

static void imap_peer_init(imap_peer* p) {
  memset(p, 0, sizeof *p);
  p->flags[1] = CMAIL_IMAP_SEEN;
  p->uidnext = 3;
  p->modseq = 10;
}

static void test_imap_server(void) {
  static imap_peer first, p;
  static char conversation[2048];
  cmail_imap_server_options o;
  int round, mode, n;
  n = snprintf(conversation, sizeof conversation,
               "a1 LOGIN alice wrong\r\na2 LOGIN alice secret\r\na3 LIST \"\" \"*\" RETURN (SUBSCRIBED)\r\n"
               "a3 LIST (SUBSCRIBED) \"\" \"*\"\r\n"
               "a4 STATUS INBOX (MESSAGES UIDNEXT UNSEEN)\r\na5 CREATE Work\r\na6 RENAME Work Projects\r\n"
               "a7 SUBSCRIBE Projects\r\na8 UNSUBSCRIBE Projects\r\na9 DELETE Projects\r\nb1 SELECT INBOX\r\n"
               "b2 FETCH 1:2 (FLAGS ENVELOPE)\r\nb3 FETCH 1:2 (BODY[] BODYSTRUCTURE)\r\n"
               "b4 FETCH 2 (BODY.PEEK[1] BODY.PEEK[HEADER.FIELDS (SUBJECT)] RFC822.SIZE)\r\n"
               "b5 SEARCH SUBJECT two\r\nb6 UID SEARCH UNSEEN\r\nb7 STORE 1 +FLAGS (\\Deleted)\r\n"
               "b8 COPY 1 Archive\r\nb9 MOVE 2 Archive\r\nc1 EXPUNGE\r\n"
               "c2 APPEND INBOX (\\Seen $Work) {%u}\r\n%s\r\nc3 IDLE\r\nDONE\r\nc4 LOGOUT\r\n",
               (unsigned)strlen(imap_msg3), imap_msg3);
  CHECK(n > 0 && (size_t)n < sizeof conversation);
  for (round = 0; round < 6; ++round) {
    mode = round < 2 ? round : RANDOM;
    imap_peer_init(&p);
    OK(cmail_imap_server_new(NULL, &p.s, NULL));
    CHECK(cmail_imap_server_state(p.s) == 0);
    CHECK(cmail_imap_server_timeout_ms(p.s) == 1800000);
    imap_feed(&p, conversation, strlen(conversation), mode);
    if (round == 0) {
      const char* o1 = p.out.data;
      size_t l = p.out.len;
      CHECK(contains(o1, l, "* OK [CAPABILITY "));
      CHECK(contains(o1, l, "a1 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n"));
      CHECK(contains(o1, l, "a2 OK [CAPABILITY "));
      CHECK(contains(o1, l, "* LIST (\\HasNoChildren \\Subscribed) \"/\" INBOX\r\n"));
      CHECK(contains(o1, l, "\\Archive) \"/\" Archive\r\n"));
      CHECK(contains(o1, l, "* LIST (\\NonExistent \\HasNoChildren \\Subscribed) \"/\" Old\r\n"));
      CHECK(contains(o1, l, "* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UNSEEN 1)\r\n"));
      CHECK(contains(o1, l, "a5 OK") && contains(o1, l, "a6 OK") && contains(o1, l, "a7 OK"));
      CHECK(contains(o1, l, "a8 OK") && contains(o1, l, "a9 OK"));
      CHECK(contains(o1, l, "* 2 EXISTS\r\n"));
      CHECK(contains(o1, l, "[UIDVALIDITY 7]") && contains(o1, l, "[UIDNEXT 3]"));
      CHECK(contains(o1, l, "b1 OK [READ-WRITE]"));
      CHECK(contains(o1, l, "* 1 FETCH (FLAGS (\\Seen) ENVELOPE (\"Tue, 1 Dec 2026 10:00:00 +0000\" \"one\" "
                            "((\"Ann\" NIL \"ann\" \"example.test\"))"));
      CHECK(contains(o1, l, "* 2 FETCH (FLAGS ($Work) ENVELOPE (NIL \"two\" "));
      CHECK(contains(o1, l, "BODY[] {"));
      CHECK(contains(o1, l, "first body\r\n BODYSTRUCTURE (\"text\" \"plain\""));
      CHECK(contains(o1, l, "* 2 FETCH (BODY[1] {10}\r\nhello part BODY[HEADER.FIELDS (SUBJECT)] {16}\r\n"
                            "Subject: two\r\n\r\n RFC822.SIZE "));
      CHECK(contains(o1, l, "* SEARCH 2\r\n"));
      CHECK(contains(o1, l, "* SEARCH\r\nb6 OK")); /* b3 set \\Seen on uid 2 */
      CHECK(contains(o1, l, "* 2 FETCH (BODY[] {197}\r\n"));
      CHECK(contains(o1, l, "(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 8 1 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL) FLAGS (\\Seen $Work))"));
      CHECK(contains(o1, l, "* 1 FETCH (FLAGS (\\Seen \\Deleted)"));
      CHECK(contains(o1, l, "b8 OK [COPYUID 3 1 21]"));
      CHECK(contains(o1, l, "[COPYUID 3 2 22]") && contains(o1, l, "* 2 EXPUNGE\r\n"));
      CHECK(contains(o1, l, "* 1 EXPUNGE\r\nc1 OK"));
      CHECK(contains(o1, l, "+ "));
      CHECK(contains(o1, l, "c2 OK [APPENDUID 7 3]"));
      CHECK(contains(o1, l, "* 1 EXISTS\r\n"));
      CHECK(contains(o1, l, "+ idling\r\n") && contains(o1, l, "c3 OK"));
      CHECK(contains(o1, l, "* BYE") && contains(o1, l, "c4 OK"));
      first = p;
    } else {
      if (p.out.len != first.out.len || memcmp(p.out.data, first.out.data, p.out.len) != 0)
        fprintf(stderr, "IMAP output %s differs from whole (seed %lu)\n", mode_names[mode], rng);
      CHECK(p.out.len == first.out.len && memcmp(p.out.data, first.out.data, p.out.len) == 0);
    }
    CHECK(p.refused_login == 1 && p.events[CMAIL_IMAP_EVENT_LOGIN - 40] == 2);
    CHECK(p.events[CMAIL_IMAP_EVENT_LIST - 40] == 2 && p.events[CMAIL_IMAP_EVENT_SUBSCRIBE - 40] == 2 && p.events[CMAIL_IMAP_EVENT_FETCH - 40] == 3);
    CHECK(p.events[CMAIL_IMAP_EVENT_SEARCH - 40] == 2 && p.search_count == 2 && p.search_uids[0] == 1);
    CHECK(p.events[CMAIL_IMAP_EVENT_COPY - 40] == 2 && p.events[CMAIL_IMAP_EVENT_APPEND_END - 40] == 1);
    CHECK(p.events[CMAIL_IMAP_EVENT_CHANGES - 40] >= 2 && p.appended_reported == 1);
    CHECK(p.events[CMAIL_IMAP_EVENT_UNSELECT - 40] == 1);
    CHECK(p.flags[2] == CMAIL_IMAP_SEEN); /* BODY[] did, BODY.PEEK did not */
    CHECK(p.closed == 1 && cmail_imap_server_is_closed(p.s) == 1);
    CHECK(cmail_imap_server_state(p.s) == 3);
    cmail_imap_server_free(p.s);
  }
  if (failures) fprintf(stderr, "IMAP output (whole):\n%s\n", first.out.data);

  /* STARTTLS with tls_required, IDLE told of a change elsewhere, a deferred verdict, a
   * time-out. */
  imap_peer_init(&p);
  cmail_imap_server_options_init(&o);
  CHECK(o.max_login_failures == 3 && o.max_message == (64u << 20));
  o.starttls_available = 1;
  o.tls_required = 1;
  o.idle_timeout_ms = 5000;
  OK(cmail_imap_server_new(&o, &p.s, NULL));
  CHECK(cmail_imap_server_timeout_ms(p.s) == 5000);
  imap_send(&p, "t1 CAPABILITY\r\nt2 STARTTLS\r\nt3 CAPA");
  CHECK(contains(p.out.data, p.out.len, "LOGINDISABLED"));
  CHECK(cmail_imap_server_wants_read(p.s) == 0);
  {
    cmail_imap_event ev;
    OK(cmail_imap_server_next_event(p.s, &ev, NULL));
    CHECK(ev.type == CMAIL_EVENT_NONE); /* the STARTTLS event was taken by imap_pump */
  }
  OK(cmail_imap_server_tls_established(p.s, "TLSv1.3", "X", 256, NULL));
  CHECK(cmail_imap_server_wants_read(p.s) == 1);
  p.out.len = 0;
  imap_send(&p, "t4 CAPABILITY\r\nt5 LOGIN alice secret\r\nt6 SELECT INBOX\r\nt7 IDLE\r\n");
  CHECK(!contains(p.out.data, p.out.len, "LOGINDISABLED") && contains(p.out.data, p.out.len, "t5 OK"));
  CHECK(cmail_imap_server_idling(p.s) == 1 && cmail_imap_server_state(p.s) == 2);
  p.events[CMAIL_IMAP_EVENT_APPEND_END - 40] = 1; /* the next CHANGES reports uid 3 */
  OK(cmail_imap_server_mailbox_changed(p.s, NULL));
  imap_pump(&p);
  CHECK(contains(p.out.data, p.out.len, "* 3 EXISTS\r\n"));
  imap_send(&p, "DONE\r\n");
  CHECK(cmail_imap_server_idling(p.s) == 0 && contains(p.out.data, p.out.len, "t7 OK"));
  {
    uint64_t phase = 0;
    int64_t budget = -1;
    OK(cmail_imap_server_deadline(p.s, &phase, &budget, NULL));
    CHECK(budget == 0);
    imap_send(&p, "t8 NO");
    OK(cmail_imap_server_deadline(p.s, &phase, &budget, NULL));
    CHECK(budget == 5000);
  }
  OK(cmail_imap_server_on_timeout(p.s, NULL));
  imap_pump(&p);
  CHECK(p.closed == 1 && contains(p.out.data, p.out.len, "* BYE"));
  OK(cmail_imap_server_receive_eof(p.s, NULL));
  cmail_imap_server_free(p.s);

  /* Bad use. */
  {
    cmail_imap_server* s = NULL;
    cmail_imap_event ev;
    cmail_imap_message m;
    cmail_imap_status st;
    const char* data;
    size_t len;
    uint64_t phase;
    int64_t budget;
    uint32_t u[2] = {2, 1}, f = 0;
    static const char* const bad_kw[] = {"a\\b"};
    static const char* const no_name[] = {""};
    memset(&m, 0, sizeof m);
    memset(&st, 0, sizeof st);
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_new(NULL, NULL, &err));
    cmail_imap_server_options_init(&o);
    o.max_errors = 0;
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_new(&o, &s, &err));
    cmail_imap_server_options_init(&o);
    o.max_command_line = 100;
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_new(&o, &s, &err));
    cmail_imap_server_options_init(NULL);
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_receive(NULL, "x", 1, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_receive_eof(NULL, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_pending_output(NULL, &data, &len, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_consume_output(NULL, 0, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_next_event(NULL, &ev, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_tls_established(NULL, NULL, NULL, 0, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_on_timeout(NULL, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_deadline(NULL, &phase, &budget, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_mailbox_changed(NULL, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_user(NULL, "a", &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_accept(NULL, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_mailboxes(NULL, NULL, NULL, NULL, 0, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_counts(NULL, &st, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_selected(NULL, 1, 1, 0, 0, NULL, NULL, NULL, NULL, 0, NULL, &err));
    FAILS(CMAIL_INVALID_ARGUMENT,
          cmail_imap_server_changes(NULL, 1, 0, NULL, NULL, NULL, NULL, 0, NULL, 0, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_expunged(NULL, NULL, 0, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_stored(NULL, NULL, NULL, NULL, NULL, 0, NULL, 0, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_copied(NULL, 1, NULL, NULL, 0, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_appended(NULL, 1, 1, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_message(NULL, &m, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_done(NULL, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_reject(NULL, 0, NULL, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_fail(NULL, NULL, &err));
    CHECK(cmail_imap_server_wants_read(NULL) == 0);
    CHECK(cmail_imap_server_is_closed(NULL) == 1);
    CHECK(cmail_imap_server_timeout_ms(NULL) == -1);
    CHECK(cmail_imap_server_state(NULL) == -1);
    CHECK(cmail_imap_server_idling(NULL) == 0);
    cmail_imap_server_free(NULL);

    OK(cmail_imap_server_new(NULL, &s, NULL));
    /* Verdicts nobody waits for. */
    FAILS(CMAIL_WRONG_STATE, cmail_imap_server_accept(s, &err));
    FAILS(CMAIL_WRONG_STATE, cmail_imap_server_done(s, &err));
    FAILS(CMAIL_WRONG_STATE, cmail_imap_server_fail(s, "x", &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_consume_output(s, 1 << 20, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_next_event(s, NULL, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_receive(s, NULL, 3, &err));
    OK(cmail_imap_server_receive(s, "x1 LOGIN a b\r\n", 14, NULL));
    OK(cmail_imap_server_next_event(s, &ev, NULL));
    CHECK(ev.type == CMAIL_IMAP_EVENT_LOGIN && strcmp(ev.password, "b") == 0);
    /* Wrong answers for the LOGIN waiting: it still waits. */
    FAILS(CMAIL_WRONG_STATE, cmail_imap_server_accept(s, &err));
    FAILS(CMAIL_WRONG_STATE, cmail_imap_server_mailboxes(s, NULL, NULL, NULL, 0, &err));
    FAILS(CMAIL_WRONG_STATE, cmail_imap_server_message(s, &m, &err));
    FAILS(CMAIL_WRONG_STATE, cmail_imap_server_appended(s, 1, 1, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_user(s, "", &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_reject(s, 99, "x", &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_reject(s, 0, "two\r\nlines", &err));
    OK(cmail_imap_server_user(s, "a", NULL));
    OK(cmail_imap_server_receive(s, "x2 LIST \"\" *\r\n", 14, NULL));
    OK(cmail_imap_server_next_event(s, &ev, NULL));
    CHECK(ev.type == CMAIL_IMAP_EVENT_LIST);
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_mailboxes(s, NULL, NULL, NULL, 1, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_mailboxes(s, no_name, NULL, NULL, 1, &err));
    OK(cmail_imap_server_fail(s, "database gone", NULL));
    OK(cmail_imap_server_pending_output(s, &data, &len, NULL));
    CHECK(contains(data, len, "x2 NO [UNAVAILABLE]") && !contains(data, len, "database gone"));
    OK(cmail_imap_server_consume_output(s, len, NULL));
    OK(cmail_imap_server_receive(s, "x3 SELECT INBOX\r\n", 17, NULL));
    OK(cmail_imap_server_next_event(s, &ev, NULL));
    CHECK(ev.type == CMAIL_IMAP_EVENT_SELECT);
    FAILS(CMAIL_WRONG_STATE, cmail_imap_server_counts(s, &st, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_selected(s, 7, 3, 0, 0, u, NULL, NULL, NULL, 2, NULL, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_selected(s, 0, 3, 0, 0, u + 1, NULL, NULL, NULL, 1, NULL, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_selected(s, 7, 1, 0, 0, u + 1, NULL, NULL, NULL, 1, NULL, &err));
    FAILS(CMAIL_INVALID_ARGUMENT,
          cmail_imap_server_selected(s, 7, 3, 0, 0, u + 1, NULL, bad_kw, NULL, 1, NULL, &err));
    f = 0x100;
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_selected(s, 7, 3, 0, 0, u + 1, &f, NULL, NULL, 1, NULL, &err));
    OK(cmail_imap_server_selected(s, 7, 3, 0, 0, u + 1, NULL, NULL, NULL, 1, NULL, NULL));
    OK(cmail_imap_server_receive(s, "x4 FETCH 1 BODY[]\r\n", 19, NULL));
    OK(cmail_imap_server_next_event(s, &ev, NULL));
    CHECK(ev.type == CMAIL_IMAP_EVENT_FETCH && ev.uid_count == 1 && ev.uids[0] == 1 && ev.need_octets == 1);
    CHECK(ev.set_seen == 1);
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_message(s, NULL, &err));
    m.uid = 9;
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_message(s, &m, &err)); /* not asked for */
    m.uid = 1;
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_message(s, &m, &err)); /* no octets */
    m.octets = imap_msg3;
    m.octets_len = strlen(imap_msg3);
    m.keywords = "(bad";
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_message(s, &m, &err));
    m.keywords = NULL;
    OK(cmail_imap_server_message(s, &m, NULL));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_message(s, &m, &err)); /* given twice */
    FAILS(CMAIL_WRONG_STATE, cmail_imap_server_expunged(s, NULL, 0, &err));
    OK(cmail_imap_server_done(s, NULL));
    FAILS(CMAIL_WRONG_STATE, cmail_imap_server_done(s, &err));
    OK(cmail_imap_server_pending_output(s, &data, &len, NULL));
    CHECK(contains(data, len, "* 1 FETCH (BODY[] {28}\r\nSubject: three\r\n\r\nappended\r\n)\r\nx4 OK"));
    cmail_imap_server_free(s);
    /* A freed handle. */
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_receive(s, "x", 1, &err));
    FAILS(CMAIL_INVALID_ARGUMENT, cmail_imap_server_done(s, &err));
    CHECK(cmail_imap_server_state(s) == -1);
    cmail_imap_server_free(s);
  }
}

/* ---- Store administration --------------------------------------------------------------- */

static char tmp_root[256];

static void test_store(void) {
  char path[512];
  cmail_store* st = NULL;
  cmail_user_list* users = NULL;
  cmail_address_list* addrs = NULL;
  char* identity = NULL;
  int64_t order = -1, one = 1;
  snprintf(path, sizeof path, "%s/admin.db3", tmp_root);

  FAILS(CMAIL_NOT_FOUND, cmail_store_open(path, 0, &st, &err));
  CHECK(st == NULL);
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_open(NULL, CMAIL_STORE_CREATE, &st, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_open(path, 0x80, &st, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_open(path, CMAIL_STORE_CREATE, NULL, &err));
  OK(cmail_store_open(path, CMAIL_STORE_CREATE, &st, NULL));

  OK(cmail_store_add_user(st, "alice", "secret", NULL));
  OK(cmail_store_add_user(st, "bob", NULL, NULL));
  FAILS(CMAIL_ALREADY_EXISTS, cmail_store_add_user(st, "alice", "x", &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_add_user(st, "a b", "x", &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_add_user(st, NULL, "x", &err));
  OK(cmail_store_authenticate(st, "alice", "secret", &identity, NULL));
  CHECK(identity && strcmp(identity, "alice") == 0);
  cmail_free(identity);
  FAILS(CMAIL_NOT_FOUND, cmail_store_authenticate(st, "alice", "wrong", &identity, &err));
  CHECK(identity == NULL);
  FAILS(CMAIL_NOT_FOUND, cmail_store_authenticate(st, "bob", "", &identity, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_authenticate(st, "alice", "secret", NULL, &err));
  OK(cmail_store_set_password(st, "alice", "better", NULL));
  FAILS(CMAIL_NOT_FOUND, cmail_store_authenticate(st, "alice", "secret", &identity, &err));
  OK(cmail_store_authenticate(st, "alice", "better", &identity, NULL));
  cmail_free(identity);
  FAILS(CMAIL_NOT_FOUND, cmail_store_set_password(st, "nobody", "x", &err));

  OK(cmail_store_list_users(st, NULL, &users, NULL));
  CHECK(cmail_user_list_count(users) == 2);
  CHECK(strcmp(cmail_user_list_name(users, 0), "alice") == 0);
  CHECK(cmail_user_list_login_enabled(users, 0) == 1);
  CHECK(cmail_user_list_login_enabled(users, 1) == 0);
  CHECK(cmail_user_list_alias(users, 0) == NULL);
  CHECK(cmail_user_list_mails(users, 0) == 0);
  CHECK(cmail_user_list_name(users, 2) == NULL);
  CHECK(cmail_user_list_login_enabled(users, 2) == -1);
  CHECK(cmail_user_list_addresses(users, 2) == -1);
  CHECK(cmail_user_list_mails(users, 2) == -1);
  cmail_user_list_free(users);
  OK(cmail_store_list_users(st, "b%", &users, NULL));
  CHECK(cmail_user_list_count(users) == 1);
  cmail_user_list_free(users);
  CHECK(cmail_user_list_count(NULL) == 0);
  cmail_user_list_free(NULL);

  /* Addresses in priority order: the higher order is tried first. */
  OK(cmail_store_add_address(st, "%@example.test", "reject", "No such user here", &one, &order, NULL));
  CHECK(order == 1);
  OK(cmail_store_add_address(st, "alice@example.test", "store", "alice", NULL, &order, NULL));
  CHECK(order == 2);
  FAILS(CMAIL_ALREADY_EXISTS, cmail_store_add_address(st, "x@example.test", "store", "alice", &one, NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_add_address(st, "x@example.test", "teleport", NULL, NULL, NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_add_address(st, "a b@example.test", "store", "alice", NULL, NULL, &err));
  OK(cmail_store_list_addresses(st, NULL, &addrs, NULL));
  CHECK(cmail_address_list_count(addrs) == 2);
  cmail_address_list_free(addrs);
  OK(cmail_store_route_address(st, "alice@example.test", &addrs, NULL));
  CHECK(cmail_address_list_count(addrs) == 2);
  CHECK(cmail_address_list_order(addrs, 0) == 2);
  CHECK(strcmp(cmail_address_list_router(addrs, 0), "store") == 0);
  CHECK(strcmp(cmail_address_list_route(addrs, 0), "alice") == 0);
  CHECK(strcmp(cmail_address_list_expression(addrs, 0), "alice@example.test") == 0);
  CHECK(cmail_address_list_order(addrs, 2) == -1);
  CHECK(cmail_address_list_expression(addrs, 2) == NULL);
  CHECK(cmail_address_list_router(addrs, 2) == NULL);
  CHECK(cmail_address_list_route(addrs, 2) == NULL);
  cmail_address_list_free(addrs);
  OK(cmail_store_route_address(st, "carol@example.test", &addrs, NULL));
  CHECK(cmail_address_list_count(addrs) == 1);
  CHECK(strcmp(cmail_address_list_router(addrs, 0), "reject") == 0);
  cmail_address_list_free(addrs);
  OK(cmail_store_route_address(st, "x@elsewhere.test", &addrs, NULL));
  CHECK(cmail_address_list_count(addrs) == 0);
  cmail_address_list_free(addrs);
  OK(cmail_store_delete_address(st, 2, NULL));
  FAILS(CMAIL_NOT_FOUND, cmail_store_delete_address(st, 2, &err));
  OK(cmail_store_route_address(st, "alice@example.test", &addrs, NULL));
  CHECK(cmail_address_list_count(addrs) == 1 && cmail_address_list_order(addrs, 0) == 1);
  cmail_address_list_free(addrs);
  CHECK(cmail_address_list_count(NULL) == 0);
  cmail_address_list_free(NULL);
  cmail_address_list_free(addrs);  /* freed twice: nothing happens */
  CHECK(cmail_address_list_count(addrs) == 0);
  CHECK(cmail_address_list_expression(addrs, 0) == NULL);

  OK(cmail_store_enable_smtp(st, "alice", "any", NULL, NULL));
  OK(cmail_store_enable_pop3(st, "alice", NULL));
  FAILS(CMAIL_ALREADY_EXISTS, cmail_store_enable_pop3(st, "alice", &err));
  OK(cmail_store_enable_imap(st, "alice", NULL));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_enable_smtp(st, "alice", NULL, NULL, &err));
  FAILS(CMAIL_NOT_FOUND, cmail_store_enable_imap(st, "nobody", &err));

  OK(cmail_store_delete_user(st, "bob", NULL));
  FAILS(CMAIL_NOT_FOUND, cmail_store_delete_user(st, "bob", &err));

  /* NULL handles and pointers. */
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_add_user(NULL, "x", NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_set_password(NULL, "x", NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_delete_user(NULL, "x", &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_authenticate(NULL, "x", "y", &identity, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_list_users(NULL, NULL, &users, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_list_users(st, NULL, NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_enable_smtp(NULL, "x", "any", NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_enable_pop3(NULL, "x", &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_enable_imap(NULL, "x", &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_add_address(NULL, "x", "store", "y", NULL, NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_delete_address(NULL, 1, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_list_addresses(NULL, NULL, &addrs, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_route_address(NULL, "x", &addrs, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_route_address(st, NULL, &addrs, &err));
  cmail_store_close(NULL);
  cmail_store_close(st);

  /* Read-only: reads work, every write is refused. */
  OK(cmail_store_open(path, CMAIL_STORE_READ_ONLY | CMAIL_STORE_NO_UPGRADE, &st, NULL));
  OK(cmail_store_list_users(st, "%", &users, NULL));
  CHECK(cmail_user_list_count(users) == 1);
  cmail_user_list_free(users);
  FAILS(CMAIL_READ_ONLY, cmail_store_add_user(st, "carol", "x", &err));
  cmail_store_close(st);
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_add_user(st, "carol", "x", &err));
  cmail_store_close(st);

  /* Not a database. */
  snprintf(path, sizeof path, "%s/not-a-db", tmp_root);
  {
    FILE* f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
      fputs("this is not SQLite\n", f);
      fclose(f);
    }
  }
  FAILS(CMAIL_CORRUPTION, cmail_store_open(path, CMAIL_STORE_CREATE, &st, &err));
}

/* ---- In-process server ------------------------------------------------------------------ */

typedef struct {
  pthread_mutex_t mu;
  int calls;
  char from[128];
  char to[128];
  size_t recipients;
  char message[4096];
  size_t message_len;
  int stop_status, free_ok;
  cmail_server* srv;
  int policy_calls;
} delivered_log;

static void on_delivered(void* user, const char* from, const char* const* recipients, size_t recipient_count,
                         const char* message, size_t message_len) {
  delivered_log* d = (delivered_log*)user;
  char* err = NULL;
  pthread_mutex_lock(&d->mu);
  ++d->calls;
  snprintf(d->from, sizeof d->from, "%s", from);
  snprintf(d->to, sizeof d->to, "%s", recipient_count ? recipients[0] : "");
  d->recipients = recipient_count;
  d->message_len = message_len < sizeof d->message ? message_len : sizeof d->message;
  memcpy(d->message, message, d->message_len);
  /* A callback may not stop (or free) the server it runs on. */
  d->stop_status = cmail_server_stop(d->srv, 0, &err);
  cmail_free(err);
  pthread_mutex_unlock(&d->mu);
}

static int on_rcpt(void* user, const char* from, const char* to) {
  delivered_log* d = (delivered_log*)user;
  pthread_mutex_lock(&d->mu);
  ++d->policy_calls;
  pthread_mutex_unlock(&d->mu);
  (void)from;
  if (strcmp(to, "blocked@example.test") == 0) return 450;
  if (strcmp(to, "odd@example.test") == 0) return 42;  /* not a refusal code: 451 */
  return 0;
}

static int tcp_connect(uint16_t port) {
  struct sockaddr_in a;
  struct timeval tv;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  tv.tv_sec = 10;  /* the bound on every read: a hung server fails the test, it does not hang it */
  tv.tv_usec = 0;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr*)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Sends `line` (may be NULL), then reads until `expect` arrived (1) or the read timed out or
 * the peer closed (0). What was read is in b. */
static int exchange(int fd, buffer* b, const char* line, const char* expect) {
  b->len = 0;
  b->data[0] = '\0';
  if (line && send(fd, line, strlen(line), 0) != (ssize_t)strlen(line)) return 0;
  while (!contains(b->data, b->len, expect)) {
    char chunk[4096];
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return 0;
    append(b, chunk, (size_t)n);
  }
  return 1;
}

static void test_server(void) {
  static buffer b;
  static delivered_log d;
  char dir[512];
  cmail_server* srv = NULL;
  cmail_store* st;
  int smtp = -1, pop3 = -1, imap = -1, extra = -1, fd;
  uint16_t smtp_port, pop3_port, imap_port;
  snprintf(dir, sizeof dir, "%s/server", tmp_root);
  memset(&d, 0, sizeof d);
  pthread_mutex_init(&d.mu, NULL);

  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_new(NULL, NULL, &srv, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_new(dir, "not a host name", &srv, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_new(dir, NULL, NULL, &err));
  OK(cmail_server_new(dir, "mx.example.test", &srv, NULL));
  if (!srv) return;
  d.srv = srv;
  st = cmail_server_store(srv);
  CHECK(st != NULL);
  CHECK(cmail_server_store(NULL) == NULL);
  OK(cmail_store_add_user(st, "alice", "secret", NULL));
  OK(cmail_store_add_address(st, "%@example.test", "store", "alice", NULL, NULL, NULL));
  OK(cmail_store_enable_pop3(st, "alice", NULL));
  OK(cmail_store_enable_imap(st, "alice", NULL));
  cmail_store_close(st);  /* the server's: does nothing */

  OK(cmail_server_on_delivered(srv, on_delivered, &d, NULL));
  OK(cmail_server_on_rcpt(srv, on_rcpt, &d, NULL));
  OK(cmail_server_listen(srv, CMAIL_PROTO_SMTP, "127.0.0.1", 0, CMAIL_LISTEN_STARTTLS, &smtp, NULL));
  OK(cmail_server_listen(srv, CMAIL_PROTO_POP3, "127.0.0.1", 0, CMAIL_LISTEN_PLAINTEXT_AUTH, &pop3, NULL));
  OK(cmail_server_listen(srv, CMAIL_PROTO_IMAP, NULL, 0, CMAIL_LISTEN_STARTTLS | CMAIL_LISTEN_PLAINTEXT_AUTH, &imap,
                         NULL));
  OK(cmail_server_listen(srv, CMAIL_PROTO_SMTP, "127.0.0.1", 0, CMAIL_LISTEN_TLS | CMAIL_LISTEN_REQUIRE_AUTH, &extra,
                         NULL));
  CHECK(smtp == 0 && pop3 == 1 && imap == 2 && extra == 3);
  smtp_port = cmail_server_port(srv, smtp);
  pop3_port = cmail_server_port(srv, pop3);
  imap_port = cmail_server_port(srv, imap);
  CHECK(smtp_port != 0 && pop3_port != 0 && imap_port != 0 && smtp_port != pop3_port);
  CHECK(cmail_server_port(srv, 4) == 0 && cmail_server_port(srv, -1) == 0 && cmail_server_port(NULL, 0) == 0);
  /* A port in use. */
  FAILS(CMAIL_IO_ERROR, cmail_server_listen(srv, CMAIL_PROTO_SMTP, "127.0.0.1", smtp_port, 0, NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_listen(srv, 9, "127.0.0.1", 0, 0, NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_listen(srv, CMAIL_PROTO_SMTP, "127.0.0.1", 0, 0x100, NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT,
        cmail_server_listen(srv, CMAIL_PROTO_SMTP, "127.0.0.1", 0, CMAIL_LISTEN_TLS | CMAIL_LISTEN_STARTTLS, NULL, &err));
  FAILS(CMAIL_WRONG_STATE, cmail_server_stop(srv, 0, &err));

  OK(cmail_server_start(srv, NULL));
  FAILS(CMAIL_WRONG_STATE, cmail_server_start(srv, &err));
  FAILS(CMAIL_WRONG_STATE, cmail_server_listen(srv, CMAIL_PROTO_SMTP, "127.0.0.1", 0, 0, NULL, &err));
  FAILS(CMAIL_WRONG_STATE, cmail_server_on_delivered(srv, NULL, NULL, &err));
  FAILS(CMAIL_WRONG_STATE, cmail_server_on_rcpt(srv, NULL, NULL, &err));

  /* SMTP: the callback has run before the 250 after the data arrives. */
  fd = tcp_connect(smtp_port);
  CHECK(fd >= 0);
  if (fd >= 0) {
    CHECK(exchange(fd, &b, NULL, "220 mx.example.test"));
    CHECK(exchange(fd, &b, "EHLO client.example\r\n", "250 "));
    CHECK(contains(b.data, b.len, "STARTTLS"));
    CHECK(exchange(fd, &b, "RCPT TO:<blocked@example.test>\r\n", "503 "));  /* no MAIL: no policy call */
    CHECK(exchange(fd, &b, "MAIL FROM:<sender@remote.test>\r\n", "250 "));
    CHECK(exchange(fd, &b, "RCPT TO:<blocked@example.test>\r\n", "450 4.3.1"));
    CHECK(exchange(fd, &b, "RCPT TO:<odd@example.test>\r\n", "451 "));
    CHECK(exchange(fd, &b, "RCPT TO:<alice@example.test>\r\n", "250 "));
    CHECK(exchange(fd, &b, "DATA\r\n", "354 "));
    pthread_mutex_lock(&d.mu);
    CHECK(d.calls == 0);
    pthread_mutex_unlock(&d.mu);
    CHECK(exchange(fd, &b, "Subject: intake\r\n\r\nhello\r\n.\r\n", "250 "));
    pthread_mutex_lock(&d.mu);
    CHECK(d.calls == 1);
    CHECK(strcmp(d.from, "sender@remote.test") == 0);
    CHECK(d.recipients == 1 && strcmp(d.to, "alice@example.test") == 0);
    CHECK(d.message_len == 26 && memcmp(d.message, "Subject: intake\r\n\r\nhello\r\n", 26) == 0);
    CHECK(d.stop_status == CMAIL_WRONG_STATE);
    CHECK(d.policy_calls == 3);
    pthread_mutex_unlock(&d.mu);
    CHECK(exchange(fd, &b, "QUIT\r\n", "221 "));
    close(fd);
  }

  /* POP3: the stored message (with the Received header the store added). */
  fd = tcp_connect(pop3_port);
  CHECK(fd >= 0);
  if (fd >= 0) {
    CHECK(exchange(fd, &b, NULL, "+OK"));
    CHECK(exchange(fd, &b, "USER alice\r\n", "\r\n"));
    CHECK(exchange(fd, &b, "PASS secret\r\n", "+OK"));
    CHECK(exchange(fd, &b, "STAT\r\n", "\r\n"));
    CHECK(contains(b.data, b.len, "+OK 1 "));
    CHECK(exchange(fd, &b, "RETR 1\r\n", "\r\n.\r\n"));
    CHECK(contains(b.data, b.len, "Received: from client.example"));
    CHECK(contains(b.data, b.len, "Subject: intake\r\n\r\nhello\r\n.\r\n"));
    CHECK(exchange(fd, &b, "QUIT\r\n", "+OK"));
    close(fd);
  }

  /* IMAP: log in and see the message. */
  fd = tcp_connect(imap_port);
  CHECK(fd >= 0);
  if (fd >= 0) {
    CHECK(exchange(fd, &b, NULL, "* OK"));
    CHECK(exchange(fd, &b, "a LOGIN alice secret\r\n", "a OK"));
    CHECK(exchange(fd, &b, "b SELECT INBOX\r\n", "b OK"));
    CHECK(contains(b.data, b.len, "* 1 EXISTS"));
    CHECK(exchange(fd, &b, "c LOGOUT\r\n", "c OK"));
    close(fd);
  }

  OK(cmail_server_stop(srv, 1000, NULL));
  FAILS(CMAIL_WRONG_STATE, cmail_server_stop(srv, 0, &err));
  FAILS(CMAIL_WRONG_STATE, cmail_server_start(srv, &err));
  CHECK(tcp_connect(smtp_port) < 0);  /* stopped: nothing listens */
  cmail_server_free(srv);
  cmail_server_free(NULL);
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_start(srv, &err));
  CHECK(cmail_server_store(srv) == NULL);
  CHECK(cmail_server_port(srv, 0) == 0);
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_store_add_user(st, "carol", "x", &err));  /* its store went with it */
  cmail_server_free(srv);

  /* The mail stays in the data directory; a second server there finds it. Freeing a running
   * server stops it. */
  OK(cmail_server_new(dir, NULL, &srv, NULL));
  OK(cmail_server_listen(srv, CMAIL_PROTO_SMTP, "127.0.0.1", 0, 0, &smtp, NULL));
  smtp_port = cmail_server_port(srv, smtp);
  OK(cmail_server_start(srv, NULL));
  fd = tcp_connect(smtp_port);
  CHECK(fd >= 0 && exchange(fd, &b, NULL, "220 localhost"));
  if (fd >= 0) close(fd);
  {
    cmail_user_list* users = NULL;
    OK(cmail_store_list_users(cmail_server_store(srv), "alice", &users, NULL));
    CHECK(cmail_user_list_count(users) == 1 && cmail_user_list_mails(users, 0) == 1);
    cmail_user_list_free(users);
  }
  cmail_server_free(srv);
  CHECK(tcp_connect(smtp_port) < 0);
  /* One never started is freed too. */
  OK(cmail_server_new(dir, NULL, &srv, NULL));
  cmail_server_free(srv);

  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_listen(NULL, CMAIL_PROTO_SMTP, NULL, 0, 0, NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_on_delivered(NULL, NULL, NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_on_rcpt(NULL, NULL, NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_start(NULL, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_stop(NULL, 0, &err));
  pthread_mutex_destroy(&d.mu);
}

/* Capture mode: outbound mail goes through the dispatcher to the server's sink; fake DNS and
 * faults decide which recipients it reaches. */
static void test_server_capture(void) {
  static buffer b;
  char dir[512];
  cmail_server* srv = NULL;
  cmail_store* st;
  cmail_captured_list* got = NULL;
  cmail_fault fault;
  int smtp = -1, pop3 = -1, fd, ok_smtp;
  size_t len = 0;
  const char* data;
  snprintf(dir, sizeof dir, "%s/capture", tmp_root);
  OK(cmail_server_new(dir, "mx.local.test", &srv, NULL));
  if (!srv) return;
  st = cmail_server_store(srv);
  OK(cmail_store_add_user(st, "alice", "secret", NULL));
  OK(cmail_store_add_address(st, "%@local.test", "store", "alice", NULL, NULL, NULL));
  OK(cmail_store_enable_smtp(st, "alice", "any", NULL, NULL));
  OK(cmail_server_listen(srv, CMAIL_PROTO_SMTP, "127.0.0.1", 0, CMAIL_LISTEN_AUTH | CMAIL_LISTEN_PLAINTEXT_AUTH,
                         &smtp, NULL));
  OK(cmail_store_enable_pop3(st, "alice", NULL));
  OK(cmail_server_listen(srv, CMAIL_PROTO_POP3, "127.0.0.1", 0, CMAIL_LISTEN_PLAINTEXT_AUTH, &pop3, NULL));

  /* Before capture mode: no fake DNS, no faults, nothing captured. */
  FAILS(CMAIL_WRONG_STATE, cmail_server_dns_nxdomain(srv, "gone.test", &err));
  cmail_fault_init(&fault);
  fault.target = CMAIL_FAULT_CAPTURE;
  FAILS(CMAIL_WRONG_STATE, cmail_server_fault(srv, &fault, &err));
  FAILS(CMAIL_WRONG_STATE, cmail_server_clear_faults(srv, CMAIL_FAULT_CAPTURE, &err));
  FAILS(CMAIL_WRONG_STATE, cmail_server_captured(srv, &got, &err));
  CHECK(got == NULL);
  CHECK(cmail_server_wait_captured(srv, 1, 0) == 0);
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_outbound(srv, 7, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_outbound(NULL, CMAIL_OUTBOUND_CAPTURE, &err));
  OK(cmail_server_outbound(srv, CMAIL_OUTBOUND_CAPTURE, NULL));
  FAILS(CMAIL_WRONG_STATE, cmail_server_outbound(srv, CMAIL_OUTBOUND_DNS, &err));

  OK(cmail_server_dns_nxdomain(srv, "gone.test", NULL));
  OK(cmail_server_dns_txt(srv, "remote.test", "v=spf1 ip4:127.0.0.0/8 -all", NULL));
  OK(cmail_server_dns_txt(srv, "forged.test", "v=spf1 ip4:192.0.2.1 -all", NULL));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_dns_txt(srv, "x.test", NULL, &err));
  OK(cmail_server_dns_mx(srv, "far.test", 10, "mx.far.test", NULL));
  OK(cmail_server_dns_address(srv, "mx.far.test", "127.0.0.1", NULL));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_dns_mx(srv, "", 10, "x", &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_dns_address(srv, "h.test", NULL, &err));
  fault.recipient = "Dave@far.test";
  fault.code = 550;
  fault.text = "No such user";
  OK(cmail_server_fault(srv, &fault, NULL));
  fault.recipient = NULL;
  fault.phase = 9;
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_fault(srv, &fault, &err));
  fault.phase = CMAIL_PHASE_DATA;
  fault.code = 250;
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_fault(srv, &fault, &err));
  fault.code = 451;
  fault.text = "two\r\nlines";
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_fault(srv, &fault, &err));
  fault.text = NULL;
  fault.action = 0;
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_fault(srv, &fault, &err));
  fault.action = CMAIL_FAULT_REPLY;
  fault.target = 5;
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_fault(srv, &fault, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_fault(srv, NULL, &err));
  OK(cmail_server_start(srv, NULL));
  FAILS(CMAIL_WRONG_STATE, cmail_server_dns_nxdomain(srv, "late.test", &err));

  /* One message for four recipients: bob (far.test, its MX), erin (far.test), dave (refused by
   * the fault, 550) and x@gone.test (NXDOMAIN): the sink keeps it once, for bob and erin. */
  fd = tcp_connect(cmail_server_port(srv, smtp));
  CHECK(fd >= 0);
  ok_smtp = fd >= 0 && exchange(fd, &b, NULL, "220 ") && exchange(fd, &b, "EHLO client.test\r\n", "250 ") &&
            exchange(fd, &b, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", "235 ") &&
            exchange(fd, &b, "MAIL FROM:<alice@local.test>\r\n", "250 ") &&
            exchange(fd, &b, "RCPT TO:<bob@far.test>\r\n", "250 ") &&
            exchange(fd, &b, "RCPT TO:<erin@far.test>\r\n", "250 ") &&
            exchange(fd, &b, "RCPT TO:<dave@far.test>\r\n", "250 ") &&
            exchange(fd, &b, "RCPT TO:<x@gone.test>\r\n", "250 ") && exchange(fd, &b, "DATA\r\n", "354 ") &&
            exchange(fd, &b, "Subject: out\r\n\r\nto the world\r\n.\r\n", "250 ") &&
            exchange(fd, &b, "QUIT\r\n", "221 ");
  CHECK(ok_smtp);
  if (fd >= 0) close(fd);
  CHECK(cmail_server_wait_captured(srv, 1, 20000) == 1);
  OK(cmail_server_captured(srv, &got, NULL));
  CHECK(cmail_captured_list_count(got) == 1);
  if (cmail_captured_list_count(got) == 1) {
    CHECK(cmail_captured_list_id(got, 0) == 1);
    CHECK(strcmp(cmail_captured_list_from(got, 0), "alice@local.test") == 0);
    CHECK(strcmp(cmail_captured_list_helo(got, 0), "mx.local.test") == 0);
    CHECK(cmail_captured_list_recipient_count(got, 0) == 2);
    CHECK(strcmp(cmail_captured_list_recipient(got, 0, 0), "bob@far.test") == 0);
    CHECK(strcmp(cmail_captured_list_recipient(got, 0, 1), "erin@far.test") == 0);
    CHECK(cmail_captured_list_recipient(got, 0, 2) == NULL);
    data = cmail_captured_list_data(got, 0, &len);
    CHECK(data != NULL && contains(data, len, "Subject: out\r\n\r\nto the world\r\n"));
  }
  CHECK(cmail_captured_list_id(got, 1) == 0);
  CHECK(cmail_captured_list_from(got, 1) == NULL);
  CHECK(cmail_captured_list_data(got, 1, &len) == NULL && len == 0);
  cmail_captured_list_free(got);
  cmail_captured_list_free(got);  /* twice: nothing */
  CHECK(cmail_captured_list_count(got) == 0);
  OK(cmail_server_clear_captured(srv, NULL));
  CHECK(cmail_server_wait_captured(srv, 1, 0) == 0);

  /* SPF of mail from unauthenticated clients, against the fake TXT records: pass for
   * remote.test (127.0.0.0/8), fail for forged.test (report only: stored all the same). */
  fd = tcp_connect(cmail_server_port(srv, smtp));
  CHECK(fd >= 0);
  ok_smtp = fd >= 0 && exchange(fd, &b, NULL, "220 ") && exchange(fd, &b, "EHLO client.test\r\n", "250 ") &&
            exchange(fd, &b, "MAIL FROM:<x@remote.test>\r\n", "250 ") &&
            exchange(fd, &b, "RCPT TO:<alice@local.test>\r\n", "250 ") && exchange(fd, &b, "DATA\r\n", "354 ") &&
            exchange(fd, &b, "Subject: spf\r\n\r\npass\r\n.\r\n", "250 ") &&
            exchange(fd, &b, "MAIL FROM:<y@forged.test>\r\n", "250 ") &&
            exchange(fd, &b, "RCPT TO:<alice@local.test>\r\n", "250 ") && exchange(fd, &b, "DATA\r\n", "354 ") &&
            exchange(fd, &b, "Subject: spf\r\n\r\nfail\r\n.\r\n", "250 ") && exchange(fd, &b, "QUIT\r\n", "221 ");
  CHECK(ok_smtp);
  if (fd >= 0) close(fd);
  fd = tcp_connect(cmail_server_port(srv, pop3));
  CHECK(fd >= 0);
  if (fd >= 0) {
    CHECK(exchange(fd, &b, NULL, "+OK") && exchange(fd, &b, "USER alice\r\n", "\r\n") &&
          exchange(fd, &b, "PASS secret\r\n", "+OK"));
    /* The bounces for dave and gone.test may be there too, before or after: look at each. */
    int passed = 0, failed = 0, n, count = 0;
    char retr[32];
    CHECK(exchange(fd, &b, "STAT\r\n", "\r\n") && sscanf(b.data, "+OK %d", &count) == 1);
    CHECK(count >= 2);
    for (n = 1; n <= count && n <= 8; ++n) {
      snprintf(retr, sizeof retr, "RETR %d\r\n", n);
      CHECK(exchange(fd, &b, retr, "\r\n.\r\n"));
      passed += contains(b.data, b.len,
                         "Authentication-Results: mx.local.test;\r\n\tspf=pass smtp.mailfrom=x@remote.test;\r\n\tdkim=none\r\n");
      failed += contains(b.data, b.len, "spf=fail smtp.mailfrom=y@forged.test");
    }
    CHECK(passed == 1);
    CHECK(failed == 1);
    CHECK(exchange(fd, &b, "QUIT\r\n", "+OK"));
    close(fd);
  }
  OK(cmail_server_clear_faults(srv, CMAIL_FAULT_CAPTURE, NULL));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_clear_faults(srv, 7, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_clear_faults(NULL, CMAIL_FAULT_INTAKE, &err));
  OK(cmail_server_stop(srv, 1000, NULL));
  cmail_server_free(srv);
}

/* Log lines gathered by cmail_server_on_log's callback (on the server's thread). */
typedef struct {
  pthread_mutex_t mu;
  int lines, accepted, secret;
} log_lines;

static void on_log(void* user, int level, const char* line) {
  log_lines* l = (log_lines*)user;
  pthread_mutex_lock(&l->mu);
  ++l->lines;
  if (level <= 1 && strstr(line, "result=accepted")) ++l->accepted;
  if (strstr(line, "secret") || strstr(line, "AGFsaWNl")) ++l->secret;  /* a password, or AUTH's base64 */
  pthread_mutex_unlock(&l->mu);
}

/* Faults on the server's own SMTP listener, and a full disk: what a client sending to it
 * meets; the log callback and a certificate of one's own on the way. */
static void test_server_intake_faults(void) {
  static buffer b;
  char dir[512];
  cmail_server* srv = NULL;
  cmail_store* st;
  cmail_user_list* users = NULL;
  cmail_fault fault;
  int smtp = -1, fd;
  struct timespec t0, t1;
  double waited;
  static log_lines logs;
  cmail_server* srv2 = NULL;
  char other[512], cert[600], key[600];
  snprintf(dir, sizeof dir, "%s/intake-faults", tmp_root);
  OK(cmail_server_new(dir, "mx.local.test", &srv, NULL));
  if (!srv) return;
  st = cmail_server_store(srv);
  OK(cmail_store_add_user(st, "alice", "secret", NULL));
  OK(cmail_store_add_address(st, "%@local.test", "store", "alice", NULL, NULL, NULL));
  /* Logs up to level 1, into `logs`; a verbosity out of range is refused. */
  pthread_mutex_init(&logs.mu, NULL);
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_on_log(srv, on_log, &logs, 5, &err));
  OK(cmail_server_on_log(srv, on_log, &logs, 1, NULL));
  /* A certificate of its own: the one another data directory made (for other.test). */
  snprintf(other, sizeof other, "%s/intake-faults-other", tmp_root);
  OK(cmail_server_new(other, "other.test", &srv2, NULL));
  cmail_server_free(srv2);
  snprintf(cert, sizeof cert, "%s/cert.pem", other);
  snprintf(key, sizeof key, "%s/key.pem", other);
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_tls_certificate(srv, NULL, key, &err));
  {
    char* e = NULL;  /* a directory, not a PEM file: an error with a message */
    CHECK(cmail_server_tls_certificate(srv, dir, key, &e) != CMAIL_OK && e != NULL && e[0] != '\0');
    cmail_free(e);
  }
  OK(cmail_server_tls_certificate(srv, cert, key, NULL));
  OK(cmail_server_listen(srv, CMAIL_PROTO_SMTP, "127.0.0.1", 0, 0, &smtp, NULL));
  OK(cmail_server_listen(srv, CMAIL_PROTO_SMTP, "127.0.0.1", 0, CMAIL_LISTEN_STARTTLS, NULL, NULL));
  FAILS(CMAIL_WRONG_STATE, cmail_server_tls_certificate(srv, cert, key, &err));
  FAILS(CMAIL_WRONG_STATE, cmail_server_on_log(srv, NULL, NULL, 0, &err));
  OK(cmail_server_start(srv, NULL));

  /* A 550 for bob, twice; the message for carol is stored, the one for bob alone is not. */
  cmail_fault_init(&fault);
  CHECK(fault.target == CMAIL_FAULT_INTAKE && fault.phase == CMAIL_PHASE_RCPT && fault.code == 451);
  fault.recipient = "BOB@local.test";
  fault.code = 550;
  fault.text = "Mailbox unavailable on purpose";
  fault.times = 2;
  OK(cmail_server_fault(srv, &fault, NULL));
  fd = tcp_connect(cmail_server_port(srv, smtp));
  CHECK(fd >= 0);
  if (fd >= 0) {
    CHECK(exchange(fd, &b, NULL, "220 ") && exchange(fd, &b, "EHLO client.test\r\n", "250 "));
    CHECK(exchange(fd, &b, "MAIL FROM:<x@remote.test>\r\n", "250 "));
    CHECK(exchange(fd, &b, "RCPT TO:<bob@local.test>\r\n", "\r\n"));
    CHECK(contains(b.data, b.len, "550 5.0.0 Mailbox unavailable on purpose"));
    CHECK(exchange(fd, &b, "RCPT TO:<carol@local.test>\r\n", "250 "));
    CHECK(exchange(fd, &b, "DATA\r\n", "354 ") && exchange(fd, &b, "Subject: a\r\n\r\na\r\n.\r\n", "250 "));
    CHECK(exchange(fd, &b, "MAIL FROM:<x@remote.test>\r\n", "250 "));
    CHECK(exchange(fd, &b, "RCPT TO:<bob@local.test>\r\n", "550 "));
    CHECK(exchange(fd, &b, "RCPT TO:<bob@local.test>\r\n", "250 "));  /* twice only */
    CHECK(exchange(fd, &b, "RSET\r\n", "250 "));
    /* The connection dropped at the end of data of a message for dave: no reply, not stored. */
    fault.recipient = "dave@local.test";
    fault.phase = CMAIL_PHASE_DATA;
    fault.action = CMAIL_FAULT_DISCONNECT;
    fault.times = 1;
    OK(cmail_server_fault(srv, &fault, NULL));
    CHECK(exchange(fd, &b, "MAIL FROM:<x@remote.test>\r\n", "250 "));
    CHECK(exchange(fd, &b, "RCPT TO:<dave@local.test>\r\n", "250 "));
    CHECK(exchange(fd, &b, "DATA\r\n", "354 "));
    CHECK(!exchange(fd, &b, "Subject: b\r\n\r\nb\r\n.\r\n", "250 "));
    CHECK(b.len == 0);  /* closed, nothing said */
    close(fd);
  }
  OK(cmail_store_list_users(st, "alice", &users, NULL));
  CHECK(cmail_user_list_count(users) == 1 && cmail_user_list_mails(users, 0) == 1);
  cmail_user_list_free(users);

  /* A slow reply to MAIL: 300 ms late, then the usual 250. */
  cmail_fault_init(&fault);
  fault.phase = CMAIL_PHASE_MAIL;
  fault.action = CMAIL_FAULT_DELAY;
  fault.delay_ms = 300;
  fault.times = 1;
  OK(cmail_server_fault(srv, &fault, NULL));
  fault.delay_ms = 700000;
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_fault(srv, &fault, &err));
  fd = tcp_connect(cmail_server_port(srv, smtp));
  CHECK(fd >= 0);
  if (fd >= 0) {
    CHECK(exchange(fd, &b, NULL, "220 ") && exchange(fd, &b, "EHLO client.test\r\n", "250 "));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(exchange(fd, &b, "MAIL FROM:<x@remote.test>\r\n", "250 "));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(waited >= 0.29);
    /* A full disk: 452 4.3.1 at the end of data, nothing stored; then it is over. */
    OK(cmail_server_disk_full(srv, 1, NULL));
    CHECK(exchange(fd, &b, "RCPT TO:<erin@local.test>\r\n", "250 "));
    CHECK(exchange(fd, &b, "DATA\r\n", "354 ") && exchange(fd, &b, "Subject: c\r\n\r\nc\r\n.\r\n", "\r\n"));
    CHECK(contains(b.data, b.len, "452 4.3.1 "));
    FAILS(CMAIL_NO_SPACE, cmail_store_add_user(st, "frank", "x", &err));
    OK(cmail_server_disk_full(srv, 0, NULL));
    CHECK(exchange(fd, &b, "MAIL FROM:<x@remote.test>\r\n", "250 "));
    CHECK(exchange(fd, &b, "RCPT TO:<erin@local.test>\r\n", "250 "));
    CHECK(exchange(fd, &b, "DATA\r\n", "354 ") && exchange(fd, &b, "Subject: c\r\n\r\nc\r\n.\r\n", "250 "));
    CHECK(exchange(fd, &b, "QUIT\r\n", "221 "));
    close(fd);
  }
  OK(cmail_store_list_users(st, "alice", &users, NULL));
  CHECK(cmail_user_list_count(users) == 1 && cmail_user_list_mails(users, 0) == 2);
  cmail_user_list_free(users);
  OK(cmail_server_clear_faults(srv, CMAIL_FAULT_INTAKE, NULL));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_disk_full(NULL, 1, &err));
  OK(cmail_server_stop(srv, 1000, NULL));
  cmail_server_free(srv);
  /* The log: connections and the two accepted messages (level 1), nothing secret. */
  pthread_mutex_lock(&logs.mu);
  CHECK(logs.lines >= 4);
  CHECK(logs.accepted == 2);
  CHECK(logs.secret == 0);
  pthread_mutex_unlock(&logs.mu);
  pthread_mutex_destroy(&logs.mu);
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_on_log(NULL, NULL, NULL, 0, &err));
  FAILS(CMAIL_INVALID_ARGUMENT, cmail_server_tls_certificate(NULL, cert, key, &err));
}

/* A data directory nobody may write: an error, no server. As root (who may write anywhere)
 * the directory is /proc/self, which refuses everyone. */
static void test_server_read_only_dir(void) {
  char dir[512];
  cmail_server* srv = NULL;
  int rc;
  char* err = NULL;
  if (geteuid() == 0) {
    snprintf(dir, sizeof dir, "/proc/self");
  } else {
    snprintf(dir, sizeof dir, "%s/read-only", tmp_root);
    CHECK(mkdir(dir, 0500) == 0);
  }
  rc = cmail_server_new(dir, NULL, &srv, &err);
  CHECK(rc != CMAIL_OK);
  CHECK(rc == CMAIL_READ_ONLY || rc == CMAIL_IO_ERROR || rc == CMAIL_NOT_FOUND);
  CHECK(srv == NULL);
  CHECK(err != NULL && err[0] != '\0');
  if (rc == CMAIL_OK) cmail_server_free(srv);
  cmail_free(err);
}

static void test_library(void) {
  CHECK(strcmp(cmail_status_name(CMAIL_OK), "OK") == 0);
  CHECK(strcmp(cmail_status_name(CMAIL_NOT_FOUND), "NotFound") == 0);
  CHECK(strcmp(cmail_status_name(CMAIL_INTERNAL), "Internal") == 0);
  CHECK(strcmp(cmail_status_name(CMAIL_WRONG_STATE), "WrongState") == 0);
  CHECK(strcmp(cmail_status_name(CMAIL_NO_SPACE), "NoSpace") == 0);
  CHECK(strcmp(cmail_status_name(-1), "Unknown") == 0);
  CHECK(strcmp(cmail_status_name(99), "Unknown") == 0);
  CHECK(strcmp(cmail_version(), "0.1.0") == 0);
  cmail_free(NULL);
}

static void remove_tree(const char* root) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "chmod -R u+w '%s' 2>/dev/null; rm -rf '%s'", root, root);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
}

int main(void) {
  const char* seed = getenv("CMAIL_TEST_SEED");
  const char* tmp = getenv("TMPDIR");
  rng = seed ? strtoul(seed, NULL, 10) : 1;
  printf("seed %lu (CMAIL_TEST_SEED=N for another)\n", rng);
  snprintf(tmp_root, sizeof tmp_root, "%s/cmail-c-abi-XXXXXX", tmp ? tmp : "/tmp");
  if (!mkdtemp(tmp_root)) {
    perror("mkdtemp");
    return 1;
  }
  test_library();
  test_smtp_server_conversation();
  test_smtp_server_pending();
  test_smtp_server_auth_tls_timeout();
  test_smtp_server_bad_use();
  test_smtp_client();
  test_pop3_server();
  test_imap_server();
  test_store();
  test_server();
  test_server_capture();
  test_server_intake_faults();
  test_server_read_only_dir();
  remove_tree(tmp_root);
  printf("%d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
