/* cmail/cmail.h: the C ABI of cmail (libcmail.so.0), for C programs and for bindings
 * (ctypes, cffi) of other languages.
 *
 * Three parts, each over opaque handles:
 *   - the protocol engines, sans-I/O: an SMTP server (cmail_smtp_server), an SMTP client
 *     (cmail_smtp_client), a POP3 server (cmail_pop3_server) and an IMAP server
 *     (cmail_imap_server). The caller moves the bytes: it feeds what it read with _receive(),
 *     sends what _pending_output() shows and tells how much went with _consume_output(), takes
 *     events with _next_event() and answers the server engines' decisions (HELO, AUTH, MAIL,
 *     RCPT, end of data; POP3 login, retrieve, update; IMAP login, mailboxes, SELECT, FETCH,
 *     SEARCH, STORE, COPY, EXPUNGE, APPEND) with verdict calls, at once or later: while a
 *     decision is unanswered the engine parses nothing further (pipelined input waits) and
 *     replies leave in order. The engines read no clock: the caller arms a timer with
 *     _timeout_ms() and _deadline() and calls _on_timeout() when it fires. They are the C++
 *     engines of cmail/smtp/server.h, cmail/smtp/client.h, cmail/pop3/server.h and
 *     cmail/imap/server.h, with the same contracts (STARTTLS included: see
 *     cmail/proto/transport.h).
 *   - the store (cmail_store): open or create a master database, add and delete users with
 *     passwords (argon2id), addresses with their routers in priority order, and ask where an
 *     address goes.
 *   - the in-process server (cmail_server): a master database in a data directory, SMTP, POP3
 *     and IMAP listeners on a thread the library owns, a callback for every message stored and
 *     one for every recipient (policy).
 *
 * Errors. Every function that can fail returns an int, CMAIL_OK (0) or a cmail_status code, and
 * takes `char** errmsg` as its last parameter: when errmsg is not NULL, *errmsg is set to NULL
 * on success and to a message (for logs, never for a network peer) on failure, which the caller
 * frees with cmail_free(). A NULL required pointer or a call in the wrong state returns
 * CMAIL_INVALID_ARGUMENT or CMAIL_WRONG_STATE; it never crashes. The library knows its live
 * handles: a NULL, freed or wrong-kind handle is CMAIL_INVALID_ARGUMENT (queries give their
 * "none" value, -1 or 0), never dereferenced, and freeing one twice does nothing. (The address
 * of a freed handle may be reused by a new handle of the same kind, as a file descriptor is.)
 *
 * Ownership. A handle is made by a _new() or _open() function and freed by the matching _free()
 * or _close(); every other allocation the library returns (messages, lists) is freed by the
 * function named where it is returned. Strings given to the library are copied before the call
 * returns, unless said otherwise. Pointers the library returns into a handle (pending output,
 * an event's strings and bytes) stay valid until the next call on that handle other than the
 * read-only queries (_pending_output, _wants_read, _is_closed, _timeout_ms, _deadline, _state,
 * _idling).
 * Strings are UTF-8 and NUL-terminated; byte buffers are pointer plus length and may hold NULs.
 *
 * Threads. An engine handle is not thread-safe: use each from one thread at a time (several
 * engines on several threads are fine). A cmail_store may be used from any number of threads
 * at once. cmail_server_new, _listen, _on_delivered, _on_rcpt, _on_log, _tls_certificate,
 * _outbound, _dns_*, _start, _stop and _free are called from the embedder's threads (one at a
 * time per server), never from inside a callback; _port and _store from any thread once
 * _listen returned; the fault, full-disk and capture calls from any thread, also while the
 * server runs (_wait_captured never on the server's thread). The server's callbacks run on the
 * server's own thread (its event loop): keep them short, and do not call _stop or _free from
 * them. No other function of this library calls back. Creating a server sets SIGPIPE to ignored for the process (a closed
 * peer is an error on its connection, not a signal).
 *
 * Version: the soname is libcmail.so.0; until 1.0 the ABI may change with the minor version.
 */
#ifndef CMAIL_CMAIL_H
#define CMAIL_CMAIL_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define CMAIL_API __declspec(dllexport)
#else
#define CMAIL_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Errors and memory ------------------------------------------------------------------ */

typedef enum cmail_status {
  CMAIL_OK = 0,
  CMAIL_NOT_FOUND = 1,         /* the named thing does not exist */
  CMAIL_INVALID_ARGUMENT = 2,  /* a NULL handle or pointer, a malformed value; nothing changed */
  CMAIL_ALREADY_EXISTS = 3,    /* a unique key would be duplicated; nothing changed */
  CMAIL_CONSTRAINT = 4,        /* another database constraint refused the change */
  CMAIL_BUSY = 5,              /* the database stayed locked by another process */
  CMAIL_READ_ONLY = 6,         /* the database file or its directory is not writable */
  CMAIL_CORRUPTION = 7,        /* the file is damaged or is not a cmail database */
  CMAIL_UNSUPPORTED = 8,       /* e.g. a schema newer than this build */
  CMAIL_IO_ERROR = 9,          /* the operating system refused (a port in use, a file) */
  CMAIL_INTERNAL = 10,         /* a bug or an unexpected library error */
  CMAIL_WRONG_STATE = 11,      /* not now: no decision awaits this verdict, server running... */
  CMAIL_NO_SPACE = 12          /* the disk (or a simulated full disk) has no room: try later */
} cmail_status;

/* "OK", "NotFound", ... for a cmail_status; "Unknown" for anything else. Static storage. */
CMAIL_API const char* cmail_status_name(int status);
/* Frees what the library returned for the caller to free (error messages). NULL is fine. */
CMAIL_API void cmail_free(void* p);
/* "0.1.0". Static storage. */
CMAIL_API const char* cmail_version(void);

/* ---- Engines: what all three share ------------------------------------------------------- */

/* Transport events: every engine's _next_event() may give these after its own events. */
#define CMAIL_EVENT_NONE 0     /* no event waiting */
#define CMAIL_EVENT_STARTTLS 1 /* send all pending output in plaintext, then start TLS; `data`
                                  holds bytes received after the command: they belong to the
                                  handshake, never to the engine. Call _tls_established() after. */
#define CMAIL_EVENT_CLOSE 2    /* send the pending output, then close the connection */

/* ---- SMTP server engine ------------------------------------------------------------------ */

typedef struct cmail_smtp_server cmail_smtp_server;

/* Which decisions are given to the caller as events; the others are decided by the engine's
 * defaults: HELO accepted, AUTH refused (535), MAIL and RCPT accepted, the message accepted. */
#define CMAIL_SMTP_DECIDE_HELO 0x01
#define CMAIL_SMTP_DECIDE_AUTH 0x02
#define CMAIL_SMTP_DECIDE_MAIL 0x04
#define CMAIL_SMTP_DECIDE_RCPT 0x08
#define CMAIL_SMTP_DECIDE_DATA_END 0x10
#define CMAIL_SMTP_DECIDE_ALL 0x1f

typedef struct cmail_smtp_server_options {
  const char* hostname;          /* greeting and EHLO reply; "localhost" */
  uint64_t max_message_size;     /* SIZE; 0 = no fixed limit; 50 MiB */
  size_t max_recipients;         /* 100 */
  int max_errors;                /* then 421 and close; 10 */
  int max_auth_failures;         /* then 421 and close; 3 */
  int starttls_available;        /* offer STARTTLS (the caller can do TLS); 0 */
  int tls_active;                /* implicit TLS from the start; 0 */
  int auth_enabled;              /* offer AUTH PLAIN and LOGIN; 0 */
  int auth_requires_tls;         /* offer AUTH only inside TLS; 1 */
  int require_auth;              /* MAIL before AUTH gets 530 (submission); 0 */
  const char* authenticated_user;/* pre-authenticated as this user; NULL */
  int chunking;                  /* CHUNKING, BINARYMIME; 1 */
  int dsn;                       /* DSN; 1 */
  int strict_envelopes;          /* RFC 5321 paths only in MAIL and RCPT; 0 */
  int64_t command_timeout_ms;    /* 300000 */
  int64_t data_timeout_ms;       /* 180000 */
  uint32_t min_data_rate;        /* octets per second added to the DATA deadline; 500 */
  unsigned decisions;            /* CMAIL_SMTP_DECIDE_*; CMAIL_SMTP_DECIDE_ALL */
} cmail_smtp_server_options;

/* Fills *options with the defaults above. */
CMAIL_API void cmail_smtp_server_options_init(cmail_smtp_server_options* options);

#define CMAIL_SMTP_EVENT_HELO 10     /* decide: helo, esmtp */
#define CMAIL_SMTP_EVENT_AUTH 11     /* decide: authzid, authcid, password; answer with
                                        cmail_smtp_server_authenticated() or a refusal */
#define CMAIL_SMTP_EVENT_MAIL 12     /* decide: address (the reverse path, "" for <>), the MAIL
                                        parameters */
#define CMAIL_SMTP_EVENT_RCPT 13     /* decide: address, notify, orcpt */
#define CMAIL_SMTP_EVENT_DATA 14     /* message bytes (data, data_len), dot-unstuffed, CRLF line
                                        ends; no answer */
#define CMAIL_SMTP_EVENT_DATA_END 15 /* decide: the whole message arrived and passed the checks;
                                        store it, then accept */
#define CMAIL_SMTP_EVENT_RESET 16    /* the transaction ended without DATA_END (RSET, EHLO,
                                        STARTTLS, a refused message, close); no answer */

/* One event. Fields not used by its type are NULL or 0. Strings point into the handle (see
 * the ownership rules above). The session fields (helo, user, tls, protocol) are those of the
 * conversation when the event was queued. */
typedef struct cmail_smtp_event {
  int type;                /* CMAIL_EVENT_* or CMAIL_SMTP_EVENT_* */
  const char* data;        /* DATA bytes; STARTTLS trailing bytes */
  size_t data_len;
  const char* address;     /* MAIL: reverse path; RCPT: forward path (local@domain) */
  /* MAIL parameters */
  int has_size;
  uint64_t size;           /* SIZE=, when has_size */
  int body;                /* 0 7BIT, 1 8BITMIME, 2 BINARYMIME */
  int smtputf8;
  const char* ret;         /* "FULL", "HDRS" or NULL */
  const char* envid;       /* xtext decoded, or NULL */
  const char* auth;        /* MAIL AUTH=, or NULL */
  /* RCPT parameters */
  const char* notify;      /* "NEVER" or a list of SUCCESS,FAILURE,DELAY; or NULL */
  const char* orcpt;       /* "rfc822;addr", or NULL */
  /* AUTH */
  const char* authzid;
  const char* authcid;
  const char* password;
  /* the session */
  const char* helo;        /* the EHLO/HELO argument */
  int esmtp;               /* EHLO rather than HELO */
  int tls;
  const char* user;        /* authenticated identity, or NULL */
  const char* protocol;    /* "SMTP", "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA" */
} cmail_smtp_event;

/* Queues the 220 greeting. options NULL: the defaults. */
CMAIL_API int cmail_smtp_server_new(const cmail_smtp_server_options* options, cmail_smtp_server** out,
                                    char** errmsg);
CMAIL_API void cmail_smtp_server_free(cmail_smtp_server* s);
/* Bytes read from the peer, any split. */
CMAIL_API int cmail_smtp_server_receive(cmail_smtp_server* s, const char* data, size_t len, char** errmsg);
/* The peer closed its side. */
CMAIL_API int cmail_smtp_server_receive_eof(cmail_smtp_server* s, char** errmsg);
/* What to send: *data and *len (0 when nothing). */
CMAIL_API int cmail_smtp_server_pending_output(const cmail_smtp_server* s, const char** data, size_t* len,
                                               char** errmsg);
/* n octets of the pending output were sent; more than pending is CMAIL_INVALID_ARGUMENT. */
CMAIL_API int cmail_smtp_server_consume_output(cmail_smtp_server* s, size_t n, char** errmsg);
/* The next event, in order; type CMAIL_EVENT_NONE when none waits. */
CMAIL_API int cmail_smtp_server_next_event(cmail_smtp_server* s, cmail_smtp_event* event, char** errmsg);
/* The TLS handshake asked for by CMAIL_EVENT_STARTTLS finished. version/cipher may be NULL. */
CMAIL_API int cmail_smtp_server_tls_established(cmail_smtp_server* s, const char* version, const char* cipher,
                                                int bits, char** errmsg);
/* The wait of _timeout_ms() or the budget of _deadline() passed: 421 and close. */
CMAIL_API int cmail_smtp_server_on_timeout(cmail_smtp_server* s, char** errmsg);
/* 1 when the engine takes input now (0 while a decision or TLS is pending, or closed). */
CMAIL_API int cmail_smtp_server_wants_read(const cmail_smtp_server* s);
/* 1 once CMAIL_EVENT_CLOSE was queued (nothing more is parsed); 1 also for a NULL handle. */
CMAIL_API int cmail_smtp_server_is_closed(const cmail_smtp_server* s);
/* How long to wait for the peer now, in milliseconds; -1 for a NULL handle. */
CMAIL_API int64_t cmail_smtp_server_timeout_ms(const cmail_smtp_server* s);
/* The bound on the current phase as a whole (cmail/proto/transport.h, Deadline): start a clock
 * when *phase changes; call _on_timeout() once *budget_ms passed (0: no bound). */
CMAIL_API int cmail_smtp_server_deadline(const cmail_smtp_server* s, uint64_t* phase, int64_t* budget_ms,
                                         char** errmsg);
/* 0 Initial, 1 Ready, 2 Mail, 3 Rcpt, 4 Data, 5 Bdat, 6 Auth, 7 Closed; -1 for NULL. */
CMAIL_API int cmail_smtp_server_state(const cmail_smtp_server* s);
/* Messages accepted on this connection so far. */
CMAIL_API uint64_t cmail_smtp_server_messages(const cmail_smtp_server* s);

/* Verdicts for the decision last given as an event (HELO, AUTH, MAIL, RCPT, DATA_END), at
 * once or later; CMAIL_WRONG_STATE when none awaits one. */
/* Accepted; text ends the positive reply ("250 2.1.0 text"), NULL: "OK". Not for AUTH. */
CMAIL_API int cmail_smtp_server_accept(cmail_smtp_server* s, const char* text, char** errmsg);
/* AUTH: the credentials are good and the client is now `identity` (non-empty). */
CMAIL_API int cmail_smtp_server_authenticated(cmail_smtp_server* s, const char* identity, char** errmsg);
/* Refused with this reply: code 400-599, enhanced "4.x.y"/"5.x.y" of the same class (NULL:
 * "<class>.0.0"), text (NULL: "Refused"). */
CMAIL_API int cmail_smtp_server_reject(cmail_smtp_server* s, int code, const char* enhanced, const char* text,
                                       char** errmsg);
/* A backend failure: the peer gets the protocol's temporary failure (451, 454 for AUTH);
 * reason is for logs. */
CMAIL_API int cmail_smtp_server_fail(cmail_smtp_server* s, const char* reason, char** errmsg);

/* ---- SMTP client engine ------------------------------------------------------------------ */

typedef struct cmail_smtp_client cmail_smtp_client;

#define CMAIL_TLS_NONE 0          /* never STARTTLS */
#define CMAIL_TLS_OPPORTUNISTIC 1 /* STARTTLS when offered */
#define CMAIL_TLS_REQUIRED 2      /* fail unless TLS is (or becomes) active */

typedef struct cmail_smtp_client_options {
  const char* helo_name;         /* "localhost" */
  int tls;                       /* CMAIL_TLS_*; CMAIL_TLS_OPPORTUNISTIC */
  int tls_active;                /* implicit TLS; 0 */
  const char* auth_user;         /* AUTH PLAIN or LOGIN with these credentials; NULL: no AUTH */
  const char* auth_password;
  int auth_without_tls;          /* 0 */
  int chunking;                  /* BDAT when offered; 1 */
  int64_t greeting_timeout_ms;   /* 300000 */
  int64_t command_timeout_ms;    /* 300000 */
  int64_t data_block_timeout_ms; /* 180000 */
  int64_t data_end_timeout_ms;   /* 600000 */
} cmail_smtp_client_options;

CMAIL_API void cmail_smtp_client_options_init(cmail_smtp_client_options* options);

#define CMAIL_SMTP_CLIENT_READY 20       /* greeted (and TLS and AUTH done): send_mail() may be called */
#define CMAIL_SMTP_CLIENT_RCPT_RESULT 21 /* index: the recipient; the reply (2xx: accepted) */
#define CMAIL_SMTP_CLIENT_MAIL_RESULT 22 /* the final reply for the message; accepted[] */
#define CMAIL_SMTP_CLIENT_FAILED 23      /* fail_kind, reason, the reply if any (code 0: none),
                                            permanent */

#define CMAIL_FAIL_CONNECTION 0     /* closed, timed out, TLS failed */
#define CMAIL_FAIL_PROTOCOL 1       /* the server broke the protocol */
#define CMAIL_FAIL_IMPLEMENTATION 2 /* a needed feature is missing (STARTTLS, SMTPUTF8, ...) */
#define CMAIL_FAIL_RESPONSE 3       /* the server refused a step (greeting, EHLO, AUTH, ...) */

typedef struct cmail_smtp_client_event {
  int type;                 /* CMAIL_EVENT_* or CMAIL_SMTP_CLIENT_* */
  const char* data;         /* STARTTLS trailing bytes */
  size_t data_len;
  size_t index;             /* RCPT_RESULT: into the recipients given to send_mail */
  int reply_code;           /* 0: no reply */
  const char* reply_enhanced; /* "5.1.1" or "" */
  const char* reply_text;   /* the reply's lines joined with "\n" */
  const size_t* accepted;   /* MAIL_RESULT: the indexes of the accepted recipients */
  size_t accepted_count;
  int fail_kind;            /* FAILED: CMAIL_FAIL_* */
  const char* reason;       /* FAILED */
  int permanent;            /* FAILED */
} cmail_smtp_client_event;

CMAIL_API int cmail_smtp_client_new(const cmail_smtp_client_options* options, cmail_smtp_client** out,
                                    char** errmsg);
CMAIL_API void cmail_smtp_client_free(cmail_smtp_client* c);
CMAIL_API int cmail_smtp_client_receive(cmail_smtp_client* c, const char* data, size_t len, char** errmsg);
CMAIL_API int cmail_smtp_client_receive_eof(cmail_smtp_client* c, char** errmsg);
CMAIL_API int cmail_smtp_client_pending_output(const cmail_smtp_client* c, const char** data, size_t* len,
                                               char** errmsg);
CMAIL_API int cmail_smtp_client_consume_output(cmail_smtp_client* c, size_t n, char** errmsg);
/* Protocol results first, in order, then transport events. */
CMAIL_API int cmail_smtp_client_next_event(cmail_smtp_client* c, cmail_smtp_client_event* event, char** errmsg);
CMAIL_API int cmail_smtp_client_tls_established(cmail_smtp_client* c, const char* version, const char* cipher,
                                                int bits, char** errmsg);
CMAIL_API int cmail_smtp_client_on_timeout(cmail_smtp_client* c, char** errmsg);
CMAIL_API int cmail_smtp_client_wants_read(const cmail_smtp_client* c);
CMAIL_API int cmail_smtp_client_is_closed(const cmail_smtp_client* c);
CMAIL_API int64_t cmail_smtp_client_timeout_ms(const cmail_smtp_client* c);
/* Sends one message: from ("" for <>), the recipients, the message as stored (CRLF line ends,
 * no dot-stuffing). CMAIL_WRONG_STATE unless READY was given since the last send_mail; a
 * message the server cannot take (SIZE, SMTPUTF8, 8BITMIME) is CMAIL_UNSUPPORTED at once,
 * nothing sent. Results: one RCPT_RESULT per recipient, one MAIL_RESULT, then READY. */
CMAIL_API int cmail_smtp_client_send_mail(cmail_smtp_client* c, const char* from, const char* const* recipients,
                                          size_t recipient_count, const char* message, size_t message_len,
                                          char** errmsg);
/* QUIT, then Close. */
CMAIL_API int cmail_smtp_client_quit(cmail_smtp_client* c, char** errmsg);

/* ---- POP3 server engine ------------------------------------------------------------------ */

typedef struct cmail_pop3_server cmail_pop3_server;

typedef struct cmail_pop3_server_options {
  const char* hostname;       /* "localhost" */
  int starttls_available;     /* offer STLS; 0 */
  int tls_active;             /* implicit TLS; 0 */
  int tls_required;           /* USER, PASS, AUTH only inside TLS; 0 */
  int max_errors;             /* 10 */
  int max_login_failures;     /* 3 */
  int64_t idle_timeout_ms;    /* 600000 */
} cmail_pop3_server_options;

CMAIL_API void cmail_pop3_server_options_init(cmail_pop3_server_options* options);

#define CMAIL_POP3_EVENT_LOGIN 30    /* decide: authzid, authcid, password; answer with
                                        cmail_pop3_server_maildrop() or a refusal */
#define CMAIL_POP3_EVENT_RETRIEVE 31 /* decide: index (0-based into the maildrop); answer with
                                        cmail_pop3_server_message() */
#define CMAIL_POP3_EVENT_UPDATE 32   /* decide: delete deleted[] (ascending) durably, then
                                        cmail_pop3_server_accept() */

/* RFC 2449 8 / RFC 3206 response codes of a refusal. */
#define CMAIL_POP3_RESP_NONE 0
#define CMAIL_POP3_RESP_IN_USE 1
#define CMAIL_POP3_RESP_LOGIN_DELAY 2
#define CMAIL_POP3_RESP_SYS_TEMP 3
#define CMAIL_POP3_RESP_SYS_PERM 4
#define CMAIL_POP3_RESP_AUTH 5

typedef struct cmail_pop3_event {
  int type;              /* CMAIL_EVENT_* or CMAIL_POP3_EVENT_* */
  const char* data;      /* STARTTLS trailing bytes */
  size_t data_len;
  const char* authzid;   /* LOGIN; "" for USER/PASS */
  const char* authcid;
  const char* password;
  size_t index;          /* RETRIEVE */
  const size_t* deleted; /* UPDATE */
  size_t deleted_count;
} cmail_pop3_event;

CMAIL_API int cmail_pop3_server_new(const cmail_pop3_server_options* options, cmail_pop3_server** out,
                                    char** errmsg);
CMAIL_API void cmail_pop3_server_free(cmail_pop3_server* s);
CMAIL_API int cmail_pop3_server_receive(cmail_pop3_server* s, const char* data, size_t len, char** errmsg);
CMAIL_API int cmail_pop3_server_receive_eof(cmail_pop3_server* s, char** errmsg);
CMAIL_API int cmail_pop3_server_pending_output(const cmail_pop3_server* s, const char** data, size_t* len,
                                               char** errmsg);
/* Also encodes more of a RETR or TOP response as its output is taken. */
CMAIL_API int cmail_pop3_server_consume_output(cmail_pop3_server* s, size_t n, char** errmsg);
CMAIL_API int cmail_pop3_server_next_event(cmail_pop3_server* s, cmail_pop3_event* event, char** errmsg);
CMAIL_API int cmail_pop3_server_tls_established(cmail_pop3_server* s, const char* version, const char* cipher,
                                                int bits, char** errmsg);
CMAIL_API int cmail_pop3_server_on_timeout(cmail_pop3_server* s, char** errmsg);
CMAIL_API int cmail_pop3_server_wants_read(const cmail_pop3_server* s);
CMAIL_API int cmail_pop3_server_is_closed(const cmail_pop3_server* s);
CMAIL_API int64_t cmail_pop3_server_timeout_ms(const cmail_pop3_server* s);
CMAIL_API int cmail_pop3_server_deadline(const cmail_pop3_server* s, uint64_t* phase, int64_t* budget_ms,
                                         char** errmsg);
/* 0 Authorization, 1 Sasl, 2 Transaction, 3 Update, 4 Closed; -1 for NULL. */
CMAIL_API int cmail_pop3_server_state(const cmail_pop3_server* s);

/* LOGIN: the client is `identity` and holds these messages: number i+1 is sizes[i] octets
 * (with CRLF line ends, before dot-stuffing) with unique id uids[i] (1-70 characters
 * 0x21-0x7E). */
CMAIL_API int cmail_pop3_server_maildrop(cmail_pop3_server* s, const char* identity, const uint64_t* sizes,
                                         const char* const* uids, size_t count, char** errmsg);
/* RETRIEVE: the message as stored; its size with CRLF line ends must be the listed one. */
CMAIL_API int cmail_pop3_server_message(cmail_pop3_server* s, const char* text, size_t len, char** errmsg);
/* UPDATE: the deletions are durable. */
CMAIL_API int cmail_pop3_server_accept(cmail_pop3_server* s, char** errmsg);
/* "-ERR [code] text" for any decision; code CMAIL_POP3_RESP_*. */
CMAIL_API int cmail_pop3_server_reject(cmail_pop3_server* s, int code, const char* text, char** errmsg);
/* A backend failure: -ERR [SYS/TEMP]; reason is for logs. */
CMAIL_API int cmail_pop3_server_fail(cmail_pop3_server* s, const char* reason, char** errmsg);

/* ---- IMAP server engine ------------------------------------------------------------------ */

/* The IMAP4rev2/IMAP4rev1 server engine of cmail/imap/server.h (docs/imap.md): the command
 * loop with its literals, the states, CAPABILITY, STARTTLS, LOGIN/AUTHENTICATE, ENABLE, ID,
 * NAMESPACE, the mailbox commands, SELECT/EXAMINE, FETCH, SEARCH, STORE, COPY, MOVE, EXPUNGE,
 * APPEND (streamed), IDLE and LOGOUT are the engine's; every decision about the mailboxes is an
 * event the caller answers (see "Decisions" below). Sequence numbers never reach the caller:
 * events name UIDs of the selected mailbox.
 *
 * FETCH and SEARCH are message requests: the event lists the UIDs whose messages the engine
 * needs, and the caller gives each one that still exists with cmail_imap_server_message()
 * (flags, keywords, internal date, modseq and, when the event's need_octets is set, the raw
 * message as stored), then cmail_imap_server_done(). The library computes the rest itself:
 * ENVELOPE, BODYSTRUCTURE, sections, BINARY (it parses the MIME structure of the octets) and
 * every SEARCH key (header, body and text keys decode the message). Memory: a SEARCH message
 * is evaluated when it is given and then dropped, so a SEARCH holds one message at a time; a
 * FETCH batch holds, until done(), the parsed structure of each message given (the engine asks
 * for up to 256 messages a batch) and the octets its items send (BODY[...], BINARY, RFC822: then
 * up to 16 messages a batch), never the rest of the octets; a message longer than max_message
 * octets is refused with CMAIL_INVALID_ARGUMENT. need_octets is 0 when the items or keys need
 * no octets (FLAGS, UID, INTERNALDATE, RFC822.SIZE, MODSEQ; flag, date, size and UID keys):
 * give `size` instead then, and the request costs no message reads. */

typedef struct cmail_imap_server cmail_imap_server;

typedef struct cmail_imap_server_options {
  const char* hostname;       /* in the greeting; "localhost" */
  int starttls_available;     /* offer STARTTLS; 0 */
  int tls_active;             /* implicit TLS (IMAPS); 0 */
  int tls_required;           /* LOGINDISABLED outside TLS: no plaintext passwords; 0 */
  int max_errors;             /* BAD responses, then BYE and close; 20 */
  int max_login_failures;     /* then BYE and close; 3 */
  int64_t idle_timeout_ms;    /* the autologout timer, IDLE included; 1800000 (30 minutes) */
  size_t max_command_line;    /* one line piece between literals; 65536 */
  uint64_t max_append;        /* the largest APPEND message (APPENDLIMIT); 64 MiB */
  uint64_t max_message;       /* the largest message _message() takes; 64 MiB */
} cmail_imap_server_options;

CMAIL_API void cmail_imap_server_options_init(cmail_imap_server_options* options);

/* Decisions. Each is answered by the function named (or by _reject()/_fail()), at once or
 * later; until then the engine parses nothing further. Mailbox names are UTF-8 with "/" as
 * the hierarchy delimiter and INBOX in upper case (the engine converts them for IMAP4rev1
 * clients). */
#define CMAIL_IMAP_EVENT_LOGIN 40        /* authzid ("" for LOGIN), authcid, password: _user() */
#define CMAIL_IMAP_EVENT_LIST 41         /* LIST, LSUB: every mailbox and subscribed name:
                                            _mailboxes() */
#define CMAIL_IMAP_EVENT_STATUS 42       /* mailbox (also after LIST RETURN (STATUS)): _counts();
                                            CMAIL_IMAP_RESP_NONEXISTENT for an unknown one */
#define CMAIL_IMAP_EVENT_CREATE 43       /* mailbox, special_use ("" or "\\Sent", ...); parents
                                            are the caller's to create: _accept() */
#define CMAIL_IMAP_EVENT_DELETE 44       /* mailbox (never INBOX): _accept() */
#define CMAIL_IMAP_EVENT_RENAME 45       /* mailbox to target, children with it: _accept() */
#define CMAIL_IMAP_EVENT_SUBSCRIBE 46    /* mailbox, subscribe (1) or unsubscribe (0): _accept() */
#define CMAIL_IMAP_EVENT_SELECT 47       /* mailbox, read_only (EXAMINE): _selected() */
#define CMAIL_IMAP_EVENT_UNSELECT 48     /* the mailbox is no longer selected; no answer */
#define CMAIL_IMAP_EVENT_CHANGES 49      /* what changed since modseq `modseq` and from UID
                                            `uidnext` on (NOOP, IDLE, after mailbox_changed()):
                                            _changes() */
#define CMAIL_IMAP_EVENT_EXPUNGE 50      /* remove the messages with \Deleted among uids (all of
                                            the mailbox when uid_count is 0): _expunged() */
#define CMAIL_IMAP_EVENT_STORE 51        /* uids, op, flags, keywords; has_modseq: UNCHANGEDSINCE
                                            modseq: _stored() */
#define CMAIL_IMAP_EVENT_COPY 52         /* uids to target; move: expunge them in the same
                                            transaction: _copied(); CMAIL_IMAP_RESP_TRYCREATE for
                                            a target that does not exist */
#define CMAIL_IMAP_EVENT_APPEND 53       /* a message of `size` octets for mailbox, with flags,
                                            keywords, internal_date (has_date 0: now): _accept()
                                            to receive it as APPEND_DATA events */
#define CMAIL_IMAP_EVENT_APPEND_DATA 54  /* data, data_len: the next octets; no answer */
#define CMAIL_IMAP_EVENT_APPEND_END 55   /* all octets given: store it durably, _appended() */
#define CMAIL_IMAP_EVENT_APPEND_ABORT 56 /* an accepted APPEND ends without storing; no answer */
#define CMAIL_IMAP_EVENT_FETCH 57        /* a message request: uids; set_seen: set \Seen on each
                                            first, durably (report seen_set); has_modseq: only
                                            messages whose modseq is above `modseq` are sent
                                            (CHANGEDSINCE; the library skips the others) */
#define CMAIL_IMAP_EVENT_SEARCH 58       /* a message request: uids (the whole view) */

/* Message flags (RFC 9051 2.3.2); keywords travel as one string, atoms separated by spaces. */
#define CMAIL_IMAP_SEEN 0x01
#define CMAIL_IMAP_ANSWERED 0x02
#define CMAIL_IMAP_FLAGGED 0x04
#define CMAIL_IMAP_DELETED 0x08
#define CMAIL_IMAP_DRAFT 0x10

#define CMAIL_IMAP_STORE_REPLACE 0
#define CMAIL_IMAP_STORE_ADD 1
#define CMAIL_IMAP_STORE_REMOVE 2

/* _mailboxes() attributes. */
#define CMAIL_IMAP_MAILBOX_SUBSCRIBED 0x01
#define CMAIL_IMAP_MAILBOX_NONEXISTENT 0x02 /* only a subscribed name */

/* Response codes of a refusal ("tag NO [code] text"; RFC 9051 7.1, RFC 5530, RFC 6154). */
#define CMAIL_IMAP_RESP_NONE 0
#define CMAIL_IMAP_RESP_AUTHENTICATIONFAILED 1
#define CMAIL_IMAP_RESP_AUTHORIZATIONFAILED 2
#define CMAIL_IMAP_RESP_UNAVAILABLE 3
#define CMAIL_IMAP_RESP_CONTACTADMIN 4
#define CMAIL_IMAP_RESP_LIMIT 5
#define CMAIL_IMAP_RESP_TRYCREATE 6
#define CMAIL_IMAP_RESP_NONEXISTENT 7
#define CMAIL_IMAP_RESP_ALREADYEXISTS 8
#define CMAIL_IMAP_RESP_CANNOT 9
#define CMAIL_IMAP_RESP_HASCHILDREN 10
#define CMAIL_IMAP_RESP_INUSE 11
#define CMAIL_IMAP_RESP_NOPERM 12
#define CMAIL_IMAP_RESP_OVERQUOTA 13
#define CMAIL_IMAP_RESP_SERVERBUG 14
#define CMAIL_IMAP_RESP_USEATTR 15

/* One event. Fields not used by its type are NULL or 0; strings and arrays point into the
 * handle and stay valid until the next cmail_imap_server_next_event() or _free() (verdict calls
 * leave them alone, so a FETCH's uids may be walked while its messages are given). */
typedef struct cmail_imap_event {
  int type;                /* CMAIL_EVENT_* or CMAIL_IMAP_EVENT_* */
  const char* data;        /* APPEND_DATA octets; STARTTLS trailing bytes */
  size_t data_len;
  const char* authzid;     /* LOGIN */
  const char* authcid;
  const char* password;
  const char* mailbox;     /* STATUS, CREATE, DELETE, RENAME (from), SUBSCRIBE, SELECT, APPEND */
  const char* target;      /* RENAME (to), COPY */
  const char* special_use; /* CREATE */
  int subscribe;           /* SUBSCRIBE */
  int read_only;           /* SELECT */
  int move;                /* COPY */
  const uint32_t* uids;    /* EXPUNGE, STORE, COPY, FETCH, SEARCH: ascending for all but
                              SEARCH, whose list is the view in sequence order */
  size_t uid_count;
  int op;                  /* STORE: CMAIL_IMAP_STORE_* */
  uint32_t flags;          /* STORE, APPEND: CMAIL_IMAP_* bits */
  const char* keywords;    /* STORE, APPEND */
  int has_modseq;          /* STORE (UNCHANGEDSINCE), FETCH (CHANGEDSINCE); CHANGES: 1 */
  uint64_t modseq;
  uint32_t uidnext;        /* CHANGES */
  int has_date;            /* APPEND */
  int64_t internal_date;   /* APPEND: Unix time */
  uint64_t size;           /* APPEND: the message's octets */
  int need_octets;         /* FETCH, SEARCH: give each message's octets */
  int set_seen;            /* FETCH */
} cmail_imap_event;

/* One message of a FETCH or SEARCH request (zero it, then fill it). */
typedef struct cmail_imap_message {
  uint32_t uid;            /* one of the request's uids, each at most once */
  uint32_t flags;          /* CMAIL_IMAP_* bits (after set_seen) */
  const char* keywords;    /* NULL or "": none */
  uint64_t modseq;         /* 0 when the caller keeps none */
  int64_t internal_date;   /* Unix time */
  const char* octets;      /* the message as stored (required when need_octets) */
  size_t octets_len;
  uint64_t size;           /* RFC822.SIZE when octets is NULL (else octets_len is the size) */
  int seen_set;            /* FETCH set_seen changed its flags: FLAGS is sent */
} cmail_imap_message;

/* STATUS counts. */
typedef struct cmail_imap_status {
  uint32_t messages, recent, uidnext, uidvalidity, unseen, deleted;
  uint64_t size;           /* the sum of the messages' sizes (STATUS=SIZE) */
  uint64_t highest_modseq; /* 0: none kept */
} cmail_imap_status;

/* Queues the greeting. options NULL: the defaults. */
CMAIL_API int cmail_imap_server_new(const cmail_imap_server_options* options, cmail_imap_server** out,
                                    char** errmsg);
CMAIL_API void cmail_imap_server_free(cmail_imap_server* s);
CMAIL_API int cmail_imap_server_receive(cmail_imap_server* s, const char* data, size_t len, char** errmsg);
CMAIL_API int cmail_imap_server_receive_eof(cmail_imap_server* s, char** errmsg);
CMAIL_API int cmail_imap_server_pending_output(const cmail_imap_server* s, const char** data, size_t* len,
                                               char** errmsg);
/* Also encodes more of a long FETCH answer as its output is taken. */
CMAIL_API int cmail_imap_server_consume_output(cmail_imap_server* s, size_t n, char** errmsg);
CMAIL_API int cmail_imap_server_next_event(cmail_imap_server* s, cmail_imap_event* event, char** errmsg);
CMAIL_API int cmail_imap_server_tls_established(cmail_imap_server* s, const char* version, const char* cipher,
                                                int bits, char** errmsg);
/* BYE Autologout, then close. */
CMAIL_API int cmail_imap_server_on_timeout(cmail_imap_server* s, char** errmsg);
CMAIL_API int cmail_imap_server_wants_read(const cmail_imap_server* s);
CMAIL_API int cmail_imap_server_is_closed(const cmail_imap_server* s);
CMAIL_API int64_t cmail_imap_server_timeout_ms(const cmail_imap_server* s);
CMAIL_API int cmail_imap_server_deadline(const cmail_imap_server* s, uint64_t* phase, int64_t* budget_ms,
                                         char** errmsg);
/* 0 NotAuthenticated, 1 Authenticated, 2 Selected, 3 Logout; -1 for NULL. */
CMAIL_API int cmail_imap_server_state(const cmail_imap_server* s);
/* 1 while the client idles (IDLE); 0 otherwise or for NULL. */
CMAIL_API int cmail_imap_server_idling(const cmail_imap_server* s);
/* The selected mailbox changed elsewhere: a CHANGES event comes at once while idling, else at
 * the end of the next command that may report changes. */
CMAIL_API int cmail_imap_server_mailbox_changed(cmail_imap_server* s, char** errmsg);

/* Verdicts for the decision last given as an event; CMAIL_WRONG_STATE when none awaits one or
 * when the function does not answer the decision waiting (the decision still waits then).
 * Arrays of `count` entries; a NULL keywords array means no keywords for any entry. */
/* LOGIN: the client is now `identity` (non-empty; an alias logs in as its target). */
CMAIL_API int cmail_imap_server_user(cmail_imap_server* s, const char* identity, char** errmsg);
/* CREATE, DELETE, RENAME, SUBSCRIBE: done, durably; APPEND: send the message. */
CMAIL_API int cmail_imap_server_accept(cmail_imap_server* s, char** errmsg);
/* LIST: names[i] (UTF-8), special_use[i] ("\\Sent", ...; NULL array or entry: none),
 * attributes[i] (CMAIL_IMAP_MAILBOX_*; NULL array: all 0). */
CMAIL_API int cmail_imap_server_mailboxes(cmail_imap_server* s, const char* const* names,
                                          const char* const* special_use, const unsigned* attributes,
                                          size_t count, char** errmsg);
/* STATUS. */
CMAIL_API int cmail_imap_server_counts(cmail_imap_server* s, const cmail_imap_status* counts, char** errmsg);
/* SELECT: every message in UID order (uids ascending) with its flags, keywords and modseq
 * (modseqs NULL: none kept), the keywords defined in the mailbox, and whether it is read-only
 * (the caller may make a SELECT read-only). highest_modseq 0: no modseqs (NOMODSEQ). */
CMAIL_API int cmail_imap_server_selected(cmail_imap_server* s, uint32_t uidvalidity, uint32_t uidnext,
                                         uint64_t highest_modseq, int read_only, const uint32_t* uids,
                                         const uint32_t* flags, const char* const* keywords,
                                         const uint64_t* modseqs, size_t count, const char* mailbox_keywords,
                                         char** errmsg);
/* CHANGES: the messages added or changed since then (UID order, current flags) and the UIDs
 * expunged since then. */
CMAIL_API int cmail_imap_server_changes(cmail_imap_server* s, uint32_t uidnext, uint64_t highest_modseq,
                                        const uint32_t* uids, const uint32_t* flags, const char* const* keywords,
                                        const uint64_t* modseqs, size_t count, const uint32_t* expunged,
                                        size_t expunged_count, char** errmsg);
/* EXPUNGE: the UIDs removed. */
CMAIL_API int cmail_imap_server_expunged(cmail_imap_server* s, const uint32_t* uids, size_t count, char** errmsg);
/* STORE: every message of the set that still exists with its flags after the change, and the
 * UIDs left unchanged because of UNCHANGEDSINCE (`modified`). */
CMAIL_API int cmail_imap_server_stored(cmail_imap_server* s, const uint32_t* uids, const uint32_t* flags,
                                       const char* const* keywords, const uint64_t* modseqs, size_t count,
                                       const uint32_t* modified, size_t modified_count, char** errmsg);
/* COPY/MOVE: the target's UIDVALIDITY and the UIDs pairwise, sources ascending. */
CMAIL_API int cmail_imap_server_copied(cmail_imap_server* s, uint32_t uidvalidity, const uint32_t* source,
                                       const uint32_t* target, size_t count, char** errmsg);
/* APPEND_END: stored as `uid` in a mailbox of `uidvalidity`. */
CMAIL_API int cmail_imap_server_appended(cmail_imap_server* s, uint32_t uidvalidity, uint32_t uid, char** errmsg);
/* FETCH, SEARCH: one message of the request (copied before the call returns); then _done(). */
CMAIL_API int cmail_imap_server_message(cmail_imap_server* s, const cmail_imap_message* message, char** errmsg);
/* FETCH, SEARCH: every message of the request that exists was given. */
CMAIL_API int cmail_imap_server_done(cmail_imap_server* s, char** errmsg);
/* "tag NO [code] text" for any decision; code CMAIL_IMAP_RESP_*. */
CMAIL_API int cmail_imap_server_reject(cmail_imap_server* s, int code, const char* text, char** errmsg);
/* A backend failure: "NO [UNAVAILABLE]"; reason is for logs. */
CMAIL_API int cmail_imap_server_fail(cmail_imap_server* s, const char* reason, char** errmsg);

/* ---- Store administration ---------------------------------------------------------------- */

typedef struct cmail_store cmail_store;
typedef struct cmail_user_list cmail_user_list;
typedef struct cmail_address_list cmail_address_list;

#define CMAIL_STORE_CREATE 0x01     /* create the database when the file does not exist */
#define CMAIL_STORE_READ_ONLY 0x02  /* every write fails with CMAIL_READ_ONLY */
#define CMAIL_STORE_NO_UPGRADE 0x04 /* refuse an older schema instead of upgrading it */

/* Opens (or with CMAIL_STORE_CREATE creates) the master database at path. */
CMAIL_API int cmail_store_open(const char* path, unsigned flags, cmail_store** out, char** errmsg);
/* Completes every write, closes the file. The store of a cmail_server is the server's: closing
 * it does nothing. */
CMAIL_API void cmail_store_close(cmail_store* st);

/* password NULL or "": login disabled. Hashed with argon2id (tens of milliseconds). */
CMAIL_API int cmail_store_add_user(cmail_store* st, const char* name, const char* password, char** errmsg);
CMAIL_API int cmail_store_set_password(cmail_store* st, const char* name, const char* password, char** errmsg);
/* Deletes the user and everything that refers to it. */
CMAIL_API int cmail_store_delete_user(cmail_store* st, const char* name, char** errmsg);
/* CMAIL_OK and the authorized identity (freed with cmail_free) when the password is good;
 * CMAIL_NOT_FOUND for an unknown user, a disabled login or a wrong password alike. */
CMAIL_API int cmail_store_authenticate(cmail_store* st, const char* name, const char* password, char** identity,
                                       char** errmsg);
/* Users whose name matches the SQL LIKE pattern (NULL: all). */
CMAIL_API int cmail_store_list_users(cmail_store* st, const char* like, cmail_user_list** out, char** errmsg);
CMAIL_API size_t cmail_user_list_count(const cmail_user_list* l);
/* Row i's fields; NULL (or 0, -1) when i is out of range. */
CMAIL_API const char* cmail_user_list_name(const cmail_user_list* l, size_t i);
CMAIL_API int cmail_user_list_login_enabled(const cmail_user_list* l, size_t i);
CMAIL_API const char* cmail_user_list_alias(const cmail_user_list* l, size_t i);       /* NULL: none */
CMAIL_API int64_t cmail_user_list_addresses(const cmail_user_list* l, size_t i);       /* linked (store) */
CMAIL_API int64_t cmail_user_list_mails(const cmail_user_list* l, size_t i);           /* in the master mailbox */
CMAIL_API void cmail_user_list_free(cmail_user_list* l);

/* The protocols a user may use (cmail-admin smtpd/popd/imapd enable). SMTP: the outbound
 * router after AUTH ("any", "defined", "handoff", "reject", "drop") and its argument (NULL). */
CMAIL_API int cmail_store_enable_smtp(cmail_store* st, const char* user, const char* router, const char* route,
                                      char** errmsg);
CMAIL_API int cmail_store_enable_pop3(cmail_store* st, const char* user, char** errmsg);
CMAIL_API int cmail_store_enable_imap(cmail_store* st, const char* user, char** errmsg);

/* Adds an address expression (an SQL LIKE pattern over local@domain) with its inbound router
 * ("store", "redirect", "handoff", "reject", "drop") and argument (the user for store; NULL:
 * none). order NULL: after every other (max+1); higher orders are tried first. *order_out (may
 * be NULL) is the order given. */
CMAIL_API int cmail_store_add_address(cmail_store* st, const char* expression, const char* router,
                                      const char* route, const int64_t* order, int64_t* order_out, char** errmsg);
CMAIL_API int cmail_store_delete_address(cmail_store* st, int64_t order, char** errmsg);
/* Address rows whose expression matches the LIKE pattern (NULL: all), highest order first. */
CMAIL_API int cmail_store_list_addresses(cmail_store* st, const char* like, cmail_address_list** out,
                                         char** errmsg);
/* Where mail for `path` (local@domain) goes: the rows matching it, the one used first. */
CMAIL_API int cmail_store_route_address(cmail_store* st, const char* path, cmail_address_list** out,
                                        char** errmsg);
CMAIL_API size_t cmail_address_list_count(const cmail_address_list* l);
CMAIL_API int64_t cmail_address_list_order(const cmail_address_list* l, size_t i);
CMAIL_API const char* cmail_address_list_expression(const cmail_address_list* l, size_t i);
CMAIL_API const char* cmail_address_list_router(const cmail_address_list* l, size_t i);
CMAIL_API const char* cmail_address_list_route(const cmail_address_list* l, size_t i); /* NULL: none */
CMAIL_API void cmail_address_list_free(cmail_address_list* l);

/* ---- In-process server ------------------------------------------------------------------- */

typedef struct cmail_server cmail_server;

#define CMAIL_PROTO_SMTP 1
#define CMAIL_PROTO_POP3 2
#define CMAIL_PROTO_IMAP 3

#define CMAIL_LISTEN_STARTTLS 0x01       /* offer STARTTLS/STLS with the data directory's certificate */
#define CMAIL_LISTEN_TLS 0x02            /* implicit TLS (smtps, pop3s, imaps) */
#define CMAIL_LISTEN_AUTH 0x04           /* SMTP: offer AUTH (POP3 and IMAP always log in) */
#define CMAIL_LISTEN_REQUIRE_AUTH 0x08   /* SMTP: MAIL only after AUTH (submission) */
#define CMAIL_LISTEN_PLAINTEXT_AUTH 0x10 /* passwords also without TLS (tests on loopback) */

/* A message was stored (after the durable commit) and the client is about to get its 250:
 * the reverse path ("" for <>), the accepted recipients, the message as received (before the
 * Received header the store adds). The pointers are valid during the call only. */
typedef void (*cmail_delivered_fn)(void* user, const char* from, const char* const* recipients,
                                   size_t recipient_count, const char* message, size_t message_len);
/* Policy for one RCPT: return 0 to let the store's routing decide, or an SMTP code 400-599 to
 * refuse the recipient with it. */
typedef int (*cmail_rcpt_fn)(void* user, const char* from, const char* to);

/* A server over the data directory `data_dir` (created if missing, mode 0700): master.db3
 * (created if missing), cert.pem and key.pem (a self-signed certificate for hostname, made if
 * missing). hostname NULL: "localhost". */
CMAIL_API int cmail_server_new(const char* data_dir, const char* hostname, cmail_server** out, char** errmsg);
/* Stops the server if it runs, then frees it. */
CMAIL_API void cmail_server_free(cmail_server* srv);
/* The server's store for administration (users, addresses); owned by the server. */
CMAIL_API cmail_store* cmail_server_store(cmail_server* srv);
/* Binds now (before _start): protocol CMAIL_PROTO_*, host ("127.0.0.1", "::", "*"), port (0:
 * a free one), flags CMAIL_LISTEN_*; *listener (may be NULL) numbers it for _port(). A port
 * in use is CMAIL_IO_ERROR. */
CMAIL_API int cmail_server_listen(cmail_server* srv, int protocol, const char* host, uint16_t port,
                                  unsigned flags, int* listener, char** errmsg);
/* The port a listener is bound to; 0 for an unknown listener. */
CMAIL_API uint16_t cmail_server_port(const cmail_server* srv, int listener);
/* Callbacks (before _start; NULL fn: none). */
CMAIL_API int cmail_server_on_delivered(cmail_server* srv, cmail_delivered_fn fn, void* user, char** errmsg);
CMAIL_API int cmail_server_on_rcpt(cmail_server* srv, cmail_rcpt_fn fn, void* user, char** errmsg);
/* A log line: level 0 errors and warnings, 1 connections, messages, log-ins and deliveries,
 * 2-4 more detail (docs/logging.md); the line is valid during the call only. Runs on the
 * server's thread (nothing secret is ever in a line: no password, no message content). */
typedef void (*cmail_log_fn)(void* user, int level, const char* line);
/* Log lines up to `verbosity` (0-4) go to fn (NULL: none, the default). Before the first
 * listener (the listeners take it when they are bound). */
CMAIL_API int cmail_server_on_log(cmail_server* srv, cmail_log_fn fn, void* user, int verbosity, char** errmsg);
/* The certificate (PEM chain, leaf first) and key the TLS listeners present, instead of the
 * data directory's self-signed one; loaded now (a bad file is an error now). Before the
 * first TLS listener. */
CMAIL_API int cmail_server_tls_certificate(cmail_server* srv, const char* cert_file, const char* key_file,
                                           char** errmsg);
/* Starts serving on the server's own thread. Once only. */
CMAIL_API int cmail_server_start(cmail_server* srv, char** errmsg);
/* Stops accepting, lets connections finish for up to grace_ms, closes the rest, joins the
 * thread. CMAIL_WRONG_STATE when not running or called from a callback. */
CMAIL_API int cmail_server_stop(cmail_server* srv, int64_t grace_ms, char** errmsg);

/* ---- Outbound delivery and capture -------------------------------------------------------- */

#define CMAIL_OUTBOUND_DNS 1     /* deliver to other hosts: MX lookups with the system's resolver */
#define CMAIL_OUTBOUND_CAPTURE 2 /* keep it instead: every domain without an entry of its own
                                    (cmail_server_dns_*) resolves to an SMTP sink inside the
                                    server, which keeps what it is given (cmail_server_captured) */

/* Outbound delivery, on the server's thread, of the mail its routing queues for other hosts
 * (before _start; without it that mail stays queued). The dispatcher delivers over SMTP with
 * its retries, failure records and bounces in either mode: in capture mode it talks to the sink
 * on a loopback port, so a test sees the envelope and the octets that would have left. */
CMAIL_API int cmail_server_outbound(cmail_server* srv, int mode, char** errmsg);
/* Capture mode, before _start: a fake DNS entry. An MX record for `domain` (host NULL or "" with
 * preference 0: a null MX), an address for `host` (numeric; only 127.0.0.1 reaches the sink, any
 * other address is a connection that fails), or NXDOMAIN for `name`. With outbound delivery
 * (either mode) the server checks SPF (RFC 7208) of mail from unauthenticated clients through
 * the same resolver, report only: an Authentication-Results header on the stored copy. */
CMAIL_API int cmail_server_dns_mx(cmail_server* srv, const char* domain, uint16_t preference, const char* host,
                                  char** errmsg);
CMAIL_API int cmail_server_dns_address(cmail_server* srv, const char* host, const char* address, char** errmsg);
CMAIL_API int cmail_server_dns_nxdomain(cmail_server* srv, const char* name, char** errmsg);
/* Capture mode, before start: a TXT record of `name` (an SPF policy, say: the server checks
 * SPF of mail from unauthenticated clients against these entries and writes the result into
 * an Authentication-Results header of the stored copy). Several calls: several records. */
CMAIL_API int cmail_server_dns_txt(cmail_server* srv, const char* name, const char* text, char** errmsg);

/* ---- Faults on purpose (test harnesses) ------------------------------------------------------ */

#define CMAIL_FAULT_INTAKE 1  /* the server's own SMTP listeners: what a client sending to it meets */
#define CMAIL_FAULT_CAPTURE 2 /* the capture sink: what the server's outbound delivery meets */

#define CMAIL_PHASE_MAIL 1 /* MAIL FROM */
#define CMAIL_PHASE_RCPT 2 /* RCPT TO of the recipient */
#define CMAIL_PHASE_DATA 3 /* the end of data of a message for the recipient */

#define CMAIL_FAULT_REPLY 1      /* answer with code and text instead (nothing is stored) */
#define CMAIL_FAULT_DISCONNECT 2 /* close the connection with no reply (nothing is stored) */
#define CMAIL_FAULT_DELAY 3      /* give the usual answer delay_ms late */

typedef struct cmail_fault {
  int target;            /* CMAIL_FAULT_INTAKE or _CAPTURE; CMAIL_FAULT_INTAKE */
  int phase;             /* CMAIL_PHASE_*; CMAIL_PHASE_RCPT */
  const char* recipient; /* RCPT, DATA: only for this recipient (any case); NULL or "": any */
  int action;            /* CMAIL_FAULT_REPLY, _DISCONNECT, _DELAY; CMAIL_FAULT_REPLY */
  int code;              /* REPLY: 400-599 (a 4xx is retried by a client, a 5xx is final); 451 */
  const char* text;      /* REPLY: one line; NULL: a text saying it is a fault */
  uint32_t delay_ms;     /* DELAY: up to 600000; 1000 */
  uint32_t times;        /* applied this many times, then gone; 0 = always; 0 */
} cmail_fault;

/* Fills *fault with the defaults above. */
CMAIL_API void cmail_fault_init(cmail_fault* fault);
/* Adds a fault, any thread, before or while the server runs. Faults of a target apply in the
 * order added: the first that matches a command is the one applied. CMAIL_WRONG_STATE for
 * CMAIL_FAULT_CAPTURE without capture mode; CMAIL_INVALID_ARGUMENT for a bad field. */
CMAIL_API int cmail_server_fault(cmail_server* srv, const cmail_fault* fault, char** errmsg);
/* Removes every fault of a target. */
CMAIL_API int cmail_server_clear_faults(cmail_server* srv, int target, char** errmsg);
/* A full disk, simulated, any thread: while on is non-zero every write of the server's store
 * fails with CMAIL_NO_SPACE before it touches the file. SMTP intake answers 452 4.3.1 at the
 * end of data (the client keeps the message and tries later), POP3 and IMAP answer that the
 * change failed, and administration through cmail_server_store fails too. */
CMAIL_API int cmail_server_disk_full(cmail_server* srv, int on, char** errmsg);

typedef struct cmail_captured_list cmail_captured_list;
/* Capture mode, any thread: the messages the sink kept so far, oldest first. */
CMAIL_API int cmail_server_captured(cmail_server* srv, cmail_captured_list** out, char** errmsg);
/* Waits up to timeout_ms until the sink keeps at least `count` messages; returns how many it
 * keeps (0 for a bad handle or without capture). Any thread but the server's. */
CMAIL_API size_t cmail_server_wait_captured(cmail_server* srv, size_t count, int64_t timeout_ms);
CMAIL_API int cmail_server_clear_captured(cmail_server* srv, char** errmsg);
CMAIL_API size_t cmail_captured_list_count(const cmail_captured_list* l);
CMAIL_API uint64_t cmail_captured_list_id(const cmail_captured_list* l, size_t i);          /* 1, 2, ... */
CMAIL_API const char* cmail_captured_list_from(const cmail_captured_list* l, size_t i);     /* "" for <> */
CMAIL_API const char* cmail_captured_list_helo(const cmail_captured_list* l, size_t i);
CMAIL_API size_t cmail_captured_list_recipient_count(const cmail_captured_list* l, size_t i);
CMAIL_API const char* cmail_captured_list_recipient(const cmail_captured_list* l, size_t i, size_t j);
/* The octets as received (CRLF line ends); *len their count. */
CMAIL_API const char* cmail_captured_list_data(const cmail_captured_list* l, size_t i, size_t* len);
CMAIL_API void cmail_captured_list_free(cmail_captured_list* l);

#ifdef __cplusplus
}
#endif

#endif /* CMAIL_CMAIL_H */
