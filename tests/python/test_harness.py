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


def send_as(h, user, password, to, subject, mail_from=None):
    """Submits with AUTH (the harness users may send anywhere)."""
    mail_from = mail_from or f"{user}@{h.hostname}"
    with smtplib.SMTP("127.0.0.1", h.ports["smtp"], timeout=10) as s:
        s.login(user, password)
        return s.sendmail(mail_from, to, f"Subject: {subject}\r\nFrom: {mail_from}\r\n\r\nbody of {subject}\r\n")


def wait_until(predicate, timeout=10.0, what="the condition"):
    """A bounded wait for what no event announces (a bounce stored by the dispatcher)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen in {timeout} s")
        time.sleep(0.02)


def mails(h, user):
    (u,) = h.store.list_users(user)
    return u.mails


def test_outbound_is_captured_with_fake_dns():
    with Harness(mx={"far.test": ["mx.far.test"]}, addresses={"mx.far.test": "127.0.0.1"},
                 nxdomain=["gone.test"]) as h:
        h.add_user("alice", "pw")
        refused = send_as(h, "alice", "pw", ["bob@far.test", "Carol@elsewhere.test", "x@gone.test"], "out")
        assert refused == {}
        got = h.wait_for_outbound(2, timeout=20)
        by_rcpt = {m.envelope.rcpt_to: m for m in got}
        assert set(by_rcpt) == {("bob@far.test",), ("Carol@elsewhere.test",)}  # one per destination
        for m in got:
            assert m.envelope.mail_from == "alice@localhost"
            assert m["Subject"] == "out" and m.helo == "localhost"
            assert m.raw.endswith(b"body of out\r\n") and b"Received: " in m.raw
        # x@gone.test does not exist: the bounce comes back to alice's mailbox.
        wait_until(lambda: mails(h, "alice") == 1, what="the bounce for x@gone.test")
        assert len(h.messages()) == 1  # what intake accepted: the one message
        h.purge()
        assert h.outbound() == [] and h.messages() == []


def test_outbound_faults_bounce_at_the_sink():
    with Harness() as h:
        h.add_user("alice", "pw")
        h.fail("rcpt", "dave@far.test", 550, "No such user here", outbound=True)
        send_as(h, "alice", "pw", ["dave@far.test", "erin@far.test"], "partly")
        (m,) = h.wait_for_outbound(1, timeout=20)
        assert m.envelope.rcpt_to == ("erin@far.test",)
        wait_until(lambda: mails(h, "alice") == 1, what="the bounce for dave")
        p = poplib.POP3("127.0.0.1", h.ports["pop3"], timeout=10)
        p.user("alice")
        p.pass_("pw")
        bounce = b"\r\n".join(p.retr(1)[1])
        p.quit()
        assert b"dave@far.test" in bounce and b"No such user here" in bounce
        with pytest.raises(ValueError, match="phase"):
            h.fail("helo", outbound=True)


def test_intake_replies_and_disconnects_on_purpose():
    with Harness() as h:
        a = h.add_user("alice", "pw")
        b = h.add_user("bob", "pw")
        h.fail("rcpt", "BOB@localhost", 550, "Mailbox disabled on purpose", times=1)
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            send(h, [b], "refused")
        assert e.value.recipients[b] == (550, b"5.0.0 Mailbox disabled on purpose")
        assert send(h, [b], "accepted") == {}  # times=1: once only
        h.fail("data", a, 451, times=1)
        with pytest.raises(smtplib.SMTPDataError) as e:
            send(h, [a], "deferred")
        assert e.value.smtp_code == 451
        h.fail("mail", code=421, text="Going away", times=1)
        with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPServerDisconnected)):
            send(h, [a], "closed")
        h.disconnect("data", a, times=1)
        with pytest.raises(smtplib.SMTPServerDisconnected):
            send(h, [a], "dropped")
        assert send(h, [a], "fine") == {}
        assert [m["Subject"] for m in h.wait_for_messages(2)] == ["accepted", "fine"]
        assert mails(h, "alice") == 1 and mails(h, "bob") == 1  # nothing refused was stored
        h.fail("rcpt", code=450)
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            send(h, [a], "always")
        h.clear_faults()
        assert send(h, [a], "cleared") == {}
        with pytest.raises(cmail.InvalidArgument):
            h.fail("rcpt", code=250)


def test_slow_replies():
    with Harness() as h:
        a = h.add_user("alice", "pw")
        h.slow("rcpt", 0.4, a, times=1)
        t0 = time.monotonic()
        assert send(h, [a], "slow") == {}
        assert time.monotonic() - t0 >= 0.39
        t0 = time.monotonic()
        send(h, [a], "quick")
        assert time.monotonic() - t0 < 0.39
        # A client with a shorter patience than the delay gives up; the server goes on.
        h.slow("mail", 2.0, times=1)
        s = smtplib.SMTP("127.0.0.1", h.ports["smtp"], timeout=10)
        s.ehlo()
        s.sock.settimeout(0.3)
        with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):  # smtplib's word for it
            s.mail("x@example.org")
        s.close()
        assert [m["Subject"] for m in h.wait_for_messages(2)] == ["slow", "quick"]


def test_full_disk():
    with Harness() as h:
        a = h.add_user("alice", "pw")
        with h.disk_full():
            with pytest.raises(smtplib.SMTPDataError) as e:
                send(h, [a], "no room")
            assert e.value.smtp_code == 452 and e.value.smtp_error.startswith(b"4.3.1 ")
            with pytest.raises(cmail.NoSpace):
                h.add_user("bob", "pw")
        assert send(h, [a], "room again") == {}
        assert [m["Subject"] for m in h.wait_for_messages(1)] == ["room again"]
        assert mails(h, "alice") == 1
        full = h.disk_full()
        h.reset()  # ends it too
        h.add_user("carol", "pw")
        full.end()


def test_no_capture():
    with Harness(capture=False) as h:
        h.add_user("alice", "pw")
        assert send_as(h, "alice", "pw", ["bob@far.test"], "stays queued") == {}
        assert h.outbound() == []
        with pytest.raises(TimeoutError):
            h.wait_for_outbound(1, timeout=0.2)
        with pytest.raises(ValueError):
            h.fail("rcpt", outbound=True)
    with pytest.raises(ValueError):
        Harness(capture=False, nxdomain=["x.test"])


def test_spf_of_incoming_mail_against_the_fake_txt_records():
    with Harness(txt={"good.test": "v=spf1 ip4:127.0.0.1 -all", "forged.test": ["unrelated", "v=spf1 ip4:192.0.2.1 -all"],
                      "two.test": ["v=spf1 -all", "v=spf1 +all"]}) as h:
        a = h.add_user("alice", "pw")
        for sender in ("bob@good.test", "eve@forged.test", "x@two.test", "y@elsewhere.test"):
            assert send(h, [a], sender, mail_from=sender) == {}  # report only: all are stored
        h.wait_for_messages(4)
        i = imaplib.IMAP4("127.0.0.1", h.ports["imap"], timeout=10)
        i.login("alice", "pw")
        i.select("INBOX")
        results = {}
        for n in range(1, 5):
            typ, data = i.fetch(str(n), "(BODY.PEEK[HEADER.FIELDS (Authentication-Results Subject)])")
            header = data[0][1].decode()
            results[header.split("Subject: ")[1].split("\r\n")[0]] = " ".join(header.split())
        i.logout()
        assert "spf=pass smtp.mailfrom=bob@good.test" in results["bob@good.test"]
        assert "spf=fail smtp.mailfrom=eve@forged.test" in results["eve@forged.test"]
        assert "spf=permerror smtp.mailfrom=x@two.test" in results["x@two.test"]  # RFC 7208 4.5
        assert "spf=none smtp.mailfrom=y@elsewhere.test" in results["y@elsewhere.test"]
        for value in results.values():
            assert value.startswith("Authentication-Results: localhost;")
        # Mail submitted with AUTH is not checked.
        send_as(h, "alice", "pw", [a], "submitted")
        (_, _, _, _, msg) = h.wait_for_messages(5)
        i = imaplib.IMAP4("127.0.0.1", h.ports["imap"], timeout=10)
        i.login("alice", "pw")
        i.select("INBOX")
        typ, data = i.fetch("5", "(BODY.PEEK[HEADER])")
        i.logout()
        assert b"Authentication-Results" not in data[0][1]


def test_dkim_and_dmarc_of_incoming_mail_against_the_fake_txt_records():
    import base64
    import dkim  # Debian's python3-dkim and python3-nacl (dev.sh installs them)
    import nacl.signing as nacl
    seed = os.urandom(32)
    public = nacl.SigningKey(seed).verify_key.encode()
    txt = {"good.test": "v=spf1 -all",  # SPF fails: DMARC passes on the aligned signature alone
           "s1._domainkey.good.test": "v=DKIM1; k=ed25519; p=" + base64.b64encode(public).decode(),
           "_dmarc.good.test": "v=DMARC1; p=reject"}
    with Harness(txt=txt) as h:
        a = h.add_user("alice", "pw")
        raw = b"From: Bob <bob@good.test>\r\nTo: alice\r\nSubject: signed\r\n\r\nHello.\r\n"
        signed = dkim.sign(raw, b"s1", b"good.test", base64.b64encode(seed), signature_algorithm=b"ed25519-sha256")
        with smtplib.SMTP("127.0.0.1", h.ports["smtp"], timeout=10) as s:
            s.sendmail("bob@good.test", [a], signed + raw)
            s.sendmail("bob@good.test", [a], signed + raw.replace(b"Hello.", b"Goodbye."))
        h.wait_for_messages(2)
        i = imaplib.IMAP4("127.0.0.1", h.ports["imap"], timeout=10)
        i.login("alice", "pw")
        i.select("INBOX")
        found = []
        for n in (1, 2):
            typ, data = i.fetch(str(n), "(BODY.PEEK[HEADER.FIELDS (Authentication-Results)])")
            found.append(" ".join(data[0][1].decode().split()))
        i.logout()
        assert "spf=fail smtp.mailfrom=bob@good.test" in found[0]
        assert "dkim=pass header.d=good.test header.s=s1 header.a=ed25519-sha256" in found[0]
        assert "dmarc=pass header.from=good.test" in found[0]
        assert 'dkim=fail reason="body hash did not verify"' in found[1]
        assert "dmarc=fail (p=reject) header.from=good.test" in found[1]  # report only: stored
