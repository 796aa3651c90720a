/* examples/intake.c: mail intake in C, over the C ABI (cmail/cmail.h, libcmail.so).
 *
 * Accepts mail for the addresses given on 127.0.0.1 and hands each message to a callback once
 * it is stored durably in the master database of DATA_DIR; the client gets its 250 after the
 * callback returns. Every address is routed to one store user, "intake", so the messages also
 * stay in the database (cmail-admin -d DATA_DIR/master.db3 user list). Other recipients are
 * refused by the store's routing, and a policy callback refuses one more: postmaster@ of any
 * domain we have, to show where an application's own rules go.
 *
 *   build/examples/intake-c DATA_DIR PORT ADDRESS...      (port 0: any free port)
 *
 * It prints "listening on 127.0.0.1:PORT", then each message; SIGINT or SIGTERM stops it.
 */
#define _POSIX_C_SOURCE 200809L

#include <cmail/cmail.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs on the server's thread after the commit; the 250 waits for it. */
static void delivered(void* user, const char* from, const char* const* recipients, size_t recipient_count,
                      const char* message, size_t message_len) {
  size_t i;
  (void)user;
  printf("--- message from <%s> to", from);
  for (i = 0; i < recipient_count; ++i) printf(" <%s>", recipients[i]);
  printf(" (%zu octets) ---\n%.*s", message_len, (int)message_len, message);
  fflush(stdout);
}

/* Runs on the server's thread for every RCPT, before the store routes it. */
static int rcpt_policy(void* user, const char* from, const char* to) {
  (void)user;
  (void)from;
  return strncmp(to, "postmaster@", 11) == 0 ? 550 : 0;
}

/* Prints what failed and returns 1. */
static int failed(const char* what, int rc, char* err) {
  fprintf(stderr, "intake-c: %s: %s: %s\n", what, cmail_status_name(rc), err ? err : "");
  cmail_free(err);
  return 1;
}

/* Routes `address` to the user "intake" unless a row for it exists already. */
static int add_address(cmail_store* st, const char* address) {
  cmail_address_list* rows = NULL;
  char* err = NULL;
  size_t i;
  int rc, known = 0;
  if ((rc = cmail_store_route_address(st, address, &rows, &err)) != CMAIL_OK) return failed(address, rc, err);
  for (i = 0; i < cmail_address_list_count(rows); ++i)
    known |= strcmp(cmail_address_list_expression(rows, i), address) == 0;
  cmail_address_list_free(rows);
  if (!known && (rc = cmail_store_add_address(st, address, "store", "intake", NULL, NULL, &err)) != CMAIL_OK)
    return failed(address, rc, err);
  return 0;
}

int main(int argc, char** argv) {
  cmail_server* srv = NULL;
  cmail_store* st;
  char* err = NULL;
  sigset_t stop;
  int rc, listener, i, sig;
  if (argc < 4) {
    fprintf(stderr, "usage: %s DATA_DIR PORT ADDRESS...\n", argv[0]);
    return 2;
  }
  /* Blocked here, so also in the server's thread: main waits for them below. */
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  if ((rc = cmail_server_new(argv[1], "intake.example", &srv, &err)) != CMAIL_OK) return failed("server", rc, err);
  st = cmail_server_store(srv);
  rc = cmail_store_add_user(st, "intake", NULL, &err);  /* no password: nobody logs in as it */
  if (rc != CMAIL_OK && rc != CMAIL_ALREADY_EXISTS) return failed("user", rc, err);
  cmail_free(err);
  for (i = 3; i < argc; ++i)
    if (add_address(st, argv[i])) return 1;
  if ((rc = cmail_server_on_delivered(srv, delivered, NULL, &err)) != CMAIL_OK ||
      (rc = cmail_server_on_rcpt(srv, rcpt_policy, NULL, &err)) != CMAIL_OK ||
      (rc = cmail_server_listen(srv, CMAIL_PROTO_SMTP, "127.0.0.1", (uint16_t)atoi(argv[2]), CMAIL_LISTEN_STARTTLS,
                                &listener, &err)) != CMAIL_OK ||
      (rc = cmail_server_start(srv, &err)) != CMAIL_OK)
    return failed("start", rc, err);
  printf("listening on 127.0.0.1:%u\n", (unsigned)cmail_server_port(srv, listener));
  fflush(stdout);

  sigwait(&stop, &sig);
  if ((rc = cmail_server_stop(srv, 5000, &err)) != CMAIL_OK) return failed("stop", rc, err);
  cmail_server_free(srv);
  return 0;
}
