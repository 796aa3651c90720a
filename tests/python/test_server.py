"""cmail.Server on 127.0.0.1 port 0, driven by smtplib, poplib and imaplib: mail stored and
read back, the delivered and rcpt callbacks (also when they raise), TLS listeners, and bad use:
a port in use, a read-only data directory, a closed server, calls in the wrong state."""
import imaplib
import poplib
import smtplib
import socket
import ssl
import threading

import pytest

import cmail
from test_store import read_only_dir


@pytest.fixture
def server(tmp_path):
    srv = cmail.Server(tmp_path / "data", "mx.example.test")
    st = srv.store
    st.add_user("alice", "wonderland")
    st.enable_pop3("alice")
    st.enable_imap("alice")
    st.add_address("alice@example.test", "store", "alice")
    yield srv
    srv.close()


def test_smtp_pop3_imap_round_trip(server):
    smtp_port = server.listen("smtp", port=0, starttls=True)
    pop3_port = server.listen("pop3", plaintext_auth=True)
    imap_port = server.listen("imap", plaintext_auth=True)
    assert server.ports == {"smtp": smtp_port, "pop3": pop3_port, "imap": imap_port}
    assert len({smtp_port, pop3_port, imap_port}) == 3 and 0 not in server.ports.values()
    delivered, lock, done = [], threading.Lock(), threading.Event()

    @server.on_delivered
    def got(mail_from, rcpts, message):
        with lock:
            delivered.append((mail_from, rcpts, message, threading.get_ident()))
        done.set()

    with server:
        assert server.running
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as s:
            code, ehlo = s.ehlo("client.example")
            assert code == 250 and b"STARTTLS" in ehlo
            s.starttls(context=ssl._create_unverified_context())
            refused = s.sendmail("bob@example.org", ["alice@example.test", "nobody@example.test"],
                                 b"Subject: round trip\r\n\r\nhello alice\r\n")
            assert list(refused) == ["nobody@example.test"]
            # The callback ran after the commit and before the 250 sendmail waited for.
            assert done.is_set()
        (mail_from, rcpts, message, thread), = delivered
        assert (mail_from, rcpts) == ("bob@example.org", ["alice@example.test"])
        assert message == b"Subject: round trip\r\n\r\nhello alice\r\n"
        assert thread != threading.get_ident()  # the server's own thread
        assert server.store.list_users("alice")[0].mails == 1

        p = poplib.POP3("127.0.0.1", pop3_port, timeout=10)
        p.user("alice")
        p.pass_("wonderland")
        assert p.stat()[0] == 1
        lines = p.retr(1)[1]
        assert b"Subject: round trip" in lines and b"hello alice" in lines
        p.quit()

        i = imaplib.IMAP4("127.0.0.1", imap_port, timeout=10)
        assert i.login("alice", "wonderland")[0] == "OK"
        assert i.select("INBOX") == ("OK", [b"1"])
        typ, data = i.fetch("1", "(BODY[TEXT])")
        assert typ == "OK" and b"hello alice" in data[0][1]
        i.logout()
        server.stop(grace=1)
        assert not server.running
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", smtp_port), timeout=5)


def test_implicit_tls_and_submission(server):
    server.store.enable_smtp("alice", "any")
    port = server.listen("smtp", tls=True, require_auth=True)
    second = server.listen("smtp", tls=True, require_auth=True)
    named = server.listen("smtp", starttls=True, auth=True, name="submission")
    assert server.ports == {"smtps": port, "smtps-2": second, "submission": named}
    server.start()
    with smtplib.SMTP_SSL("127.0.0.1", port, timeout=10, context=ssl._create_unverified_context()) as s:
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail("alice@example.test", ["alice@example.test"], b"Subject: x\r\n\r\nx\r\n")
        assert e.value.smtp_code == 530
        s.login("alice", "wonderland")
        assert s.sendmail("alice@example.test", ["alice@example.test"], b"Subject: x\r\n\r\nx\r\n") == {}


def test_rcpt_policy_and_a_raising_callback(server, caplog):
    port = server.listen("smtp")
    asked = []

    @server.on_rcpt
    def policy(mail_from, to):
        asked.append((mail_from, to))
        if to.startswith("boom"):
            raise RuntimeError("policy bug")
        if to.startswith("later"):
            return 450
        return None

    @server.on_delivered
    def explode(mail_from, rcpts, message):
        raise ValueError("delivered bug")

    server.store.add_address("%@example.test", "store", "alice")
    server.start()
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        refused = s.sendmail("bob@example.org", ["alice@example.test", "later@example.test", "boom@example.test"],
                             b"Subject: policy\r\n\r\nx\r\n")
        assert refused["later@example.test"][0] == 450
        assert refused["boom@example.test"][0] == 451  # the safe answer to a raising policy
        assert "alice@example.test" not in refused
        assert s.noop()[0] == 250  # the server lives on
    assert [to for _, to in asked] == ["alice@example.test", "later@example.test", "boom@example.test"]
    assert server.callback_errors == 2
    assert isinstance(server.last_callback_error, ValueError)
    assert "policy bug" in caplog.text and "delivered bug" in caplog.text
    assert server.store.list_users("alice")[0].mails == 1  # stored, whatever the callback did


def test_port_in_use(server, tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(cmail.IoError) as e:
            server.listen("smtp", port=taken.getsockname()[1])
        assert isinstance(e.value, OSError) and e.value.status == 9 and str(e.value)
    finally:
        taken.close()
    with pytest.raises(cmail.InvalidArgument):
        server.listen("gopher")
    with pytest.raises(cmail.InvalidArgument):
        server.listen("smtp", starttls=True, tls=True)


def test_read_only_data_directory(tmp_path):
    with pytest.raises(cmail.Error) as e:
        cmail.Server(read_only_dir(tmp_path))
    assert e.value.status in (1, 6, 9) and str(e.value)


def test_wrong_state_and_closed(server):
    server.listen("smtp")
    server.start()
    with pytest.raises(cmail.WrongState):
        server.start()
    with pytest.raises(cmail.WrongState):
        server.listen("pop3")
    with pytest.raises(cmail.WrongState):
        server.on_rcpt(lambda f, t: None)
    store = server.store
    server.close()
    server.close()
    for call in (server.start, lambda: server.listen("smtp"), server.stop, lambda: server.store):
        with pytest.raises(cmail.Closed):
            call()
    with pytest.raises(cmail.Closed):
        store.list_users()  # the lent store died with its server
    with pytest.raises(cmail.WrongState):
        cmail.Server(server.data_dir).stop()  # never started


def test_exit_with_a_running_server(tmp_path):
    """The interpreter exits cleanly (the atexit hook closes the server) with a client still
    connected and a callback set."""
    import os
    import subprocess
    import sys
    from conftest import ROOT
    code = ("import cmail, socket, sys\n"
            f"s = cmail.Server({str(tmp_path / 'd')!r})\n"
            "port = s.listen('smtp')\n"
            "s.on_rcpt(lambda f, t: None)\n"
            "s.start()\n"
            "c = socket.create_connection(('127.0.0.1', port), timeout=10)\n"
            "assert c.recv(100).startswith(b'220')\n"
            "print('serving')\n")
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings", "python"))
    r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=env, timeout=60)
    assert (r.returncode, r.stdout) == (0, "serving\n"), r.stderr


def test_a_certificate_of_its_own_and_the_log(server, tmp_path):
    other = cmail.Server(tmp_path / "other", "other.test")  # makes a certificate for other.test
    other.close()
    cert, key = tmp_path / "other" / "cert.pem", tmp_path / "other" / "key.pem"
    server.store.enable_smtp("alice", "any")
    lines = []
    server.on_log(lambda level, line: lines.append((level, line)), verbosity=1)
    with pytest.raises(cmail.IoError):
        server.tls_certificate(tmp_path / "missing.pem", key)
    server.tls_certificate(cert, key)
    port = server.listen("smtp", tls=True, auth=True)
    with pytest.raises(cmail.WrongState):
        server.tls_certificate(cert, key)  # a TLS listener has it already
    with pytest.raises(cmail.WrongState):
        server.on_log(None)  # listeners took the callback when they were bound
    server.start()
    with smtplib.SMTP_SSL("127.0.0.1", port, timeout=10, context=ssl._create_unverified_context()) as s:
        presented = s.sock.getpeercert(binary_form=True)
        s.login("alice", "wonderland")
        s.sendmail("alice@example.test", ["alice@example.test"], b"Subject: logged\r\n\r\nx\r\n")
    assert presented == ssl.PEM_cert_to_DER_cert(cert.read_text())  # other.test's, not the data directory's
    server.stop()
    text = "\n".join(line for _, line in lines)
    assert "result=accepted" in text and "proto=smtp" in text
    assert all(level <= 1 for level, _ in lines)
    assert "wonderland" not in text  # never a password
