"""cmail.testing: the Harness context manager and the cmail_server fixture: free ports, users
reachable over SMTP, POP3 and IMAP, messages() with envelopes, bounded waits, purge, reset,
and the throw-away directory."""
import imaplib
import os
import poplib
import smtplib
import socket
import threading
import time

import pytest

import cmail
from cmail.testing import Harness


def send(h, to, subject, mail_from="bob@example.org"):
    with smtplib.SMTP("127.0.0.1", h.ports["smtp"], timeout=10) as s:
        return s.sendmail(mail_from, to, f"Subject: {subject}\r\nFrom: {mail_from}\r\n\r\nbody of {subject}\r\n")


def pop3_count(h, user, password):
    p = poplib.POP3("127.0.0.1", h.ports["pop3"], timeout=10)
    try:
        p.user(user)
        p.pass_(password)
        return p.stat()[0]
    finally:
        p.quit()


def test_fixture_gives_a_running_server(cmail_server):
    h = cmail_server
    assert set(h.ports) == {"smtp", "pop3", "imap"}
    for port in h.ports.values():
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    address = h.add_user("alice", "wonderland")
    assert address == "alice@localhost"
    assert send(h, [address], "first") == {}
    (msg,) = h.wait_for_messages(1, timeout=5)
    assert msg["Subject"] == "first" and msg.get_content().strip() == "body of first"
    assert msg.envelope.mail_from == "bob@example.org" and msg.envelope.rcpt_to == ("alice@localhost",)
    assert msg.raw.startswith(b"Subject: first\r\n")
    assert pop3_count(h, "alice", "wonderland") == 1
    i = imaplib.IMAP4("127.0.0.1", h.ports["imap"], timeout=10)
    i.login("alice", "wonderland")
    assert i.select("INBOX") == ("OK", [b"1"])
    i.logout()


def test_harness_lifetime_and_directory():
    with Harness() as h:
        data = h.data_dir
        assert os.path.isfile(os.path.join(data, "master.db3"))
        port = h.ports["smtp"]
    assert not os.path.exists(data)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    with Harness(pop3=False, imap=False) as h:
        assert list(h.ports) == ["smtp"]


def test_start_to_ready_is_fast():
    t0 = time.monotonic()
    with Harness() as h:
        with smtplib.SMTP("127.0.0.1", h.ports["smtp"], timeout=10) as s:
            assert s.noop()[0] == 250
        ready = time.monotonic() - t0
    assert ready < 5, f"start to a served NOOP took {ready:.3f} s"  # a loose bound; ~0.1 s measured


def test_add_user_with_an_address_and_unknown_recipients():
    with Harness(hostname="mail.example.test") as h:
        a = h.add_user("carol", "pw", address="c.smith@example.test")
        assert a == "c.smith@example.test"
        assert h.add_user("dave", "pw2") == "dave@mail.example.test"
        refused = send(h, [a, "dave@mail.example.test", "nobody@example.test"], "two")
        assert list(refused) == ["nobody@example.test"]
        (msg,) = h.wait_for_messages(1)
        assert msg.envelope.rcpt_to == ("c.smith@example.test", "dave@mail.example.test")
        assert pop3_count(h, "carol", "pw") == 1 and pop3_count(h, "dave", "pw2") == 1


def test_wait_for_messages_is_bounded_and_wakes_up():
    with Harness() as h:
        a = h.add_user("alice", "pw")
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match="0 of 1"):
            h.wait_for_messages(1, timeout=0.2)
        assert 0.15 < time.monotonic() - t0 < 3
        sender = threading.Thread(target=lambda: [send(h, [a], f"m{n}") for n in range(3)])
        sender.start()
        got = h.wait_for_messages(3, timeout=10)
        sender.join(10)
        assert [m["Subject"] for m in got] == ["m0", "m1", "m2"]


def test_purge_and_reset():
    with Harness() as h:
        a = h.add_user("alice", "pw")
        send(h, [a], "one")
        send(h, [a], "two")
        h.wait_for_messages(2)
        assert pop3_count(h, "alice", "pw") == 2
        h.purge()
        assert h.messages() == []
        assert pop3_count(h, "alice", "pw") == 0  # the mailbox too
        send(h, [a], "three")  # the user and address still work
        assert [m["Subject"] for m in h.wait_for_messages(1)] == ["three"]
        h.reset()
        assert h.messages() == [] and h.store.list_users() == [] and h.store.list_addresses() == []
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            send(h, [a], "four")
        h.add_user("alice", "new")  # free to be made again
        assert h.store.authenticate("alice", "new") == "alice"


def test_harness_closed_is_a_clear_error():
    h = Harness().start()
    h.close()
    h.close()
    for call in (lambda: h.add_user("x", "y"), lambda: h.ports, h.purge):
        with pytest.raises(cmail.Closed, match="not running"):
            call()
