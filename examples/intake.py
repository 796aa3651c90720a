#!/usr/bin/python3
"""examples/intake.py: mail intake in Python, over the cmail package (the C ABI, libcmail.so).

Accepts mail for the addresses given on 127.0.0.1 and hands each message to a callback once it
is stored durably in the master database of DATA_DIR; the client gets its 250 after the
callback returns. Every address is routed to one store user, "intake", so the messages also
stay in the database. Other recipients are refused by the store's routing, and a policy
callback refuses one more: postmaster@ of any domain, to show where an application's own rules
go. The same program as examples/intake.c.

    examples/intake.py DATA_DIR PORT ADDRESS...      (port 0: any free port)

It prints "listening on 127.0.0.1:PORT", then each message; SIGINT or SIGTERM stops it.
The callbacks run on the server's thread; the main thread only waits for the signal.
"""
import signal
import sys

import cmail


def delivered(mail_from, recipients, message):
    """On the server's thread, after the commit; the client's 250 waits for it."""
    to = " ".join(f"<{r}>" for r in recipients)
    sys.stdout.write(f"--- message from <{mail_from}> to {to} ({len(message)} octets) ---\n")
    sys.stdout.write(message.decode("utf-8", "replace").replace("\r\n", "\n"))
    sys.stdout.flush()


def rcpt_policy(mail_from, to):
    """On the server's thread, for every RCPT before the store routes it: None lets it decide."""
    return 550 if to.startswith("postmaster@") else None


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    data_dir, port, addresses = argv[1], int(argv[2]), argv[3:]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    server = cmail.Server(data_dir)
    try:
        store = server.store
        if not store.list_users("intake"):  # a second run finds its user and addresses
            store.add_user("intake")        # no password: nobody logs in as it
        known = {row.expression for row in store.list_addresses()}
        for address in addresses:
            if address not in known:
                store.add_address(address, "store", "intake")
        bound = server.listen("smtp", "127.0.0.1", port)
        server.on_delivered(delivered)
        server.on_rcpt(rcpt_policy)
        server.start()
        print(f"listening on 127.0.0.1:{bound}", flush=True)
        while not stop:
            signal.pause()  # the handlers above end the wait
        server.stop(grace=2)
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
