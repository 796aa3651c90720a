"""examples/test_with_harness.py: a pytest test of an application's mail, with cmail.testing.

The `cmail_server` fixture (cmail.pytest_plugin) starts a real mail server on free loopback
ports with a throw-away database for each test and stops it after. Run it with

    /usr/bin/python3 -m pytest -p cmail.pytest_plugin examples/test_with_harness.py

or put `pytest_plugins = ["cmail.pytest_plugin"]` in your conftest.py.
"""
import poplib
import smtplib
import time
from email.message import EmailMessage


def send_welcome(host, port, to, login=None, attempts=3):
    """The application code under test: it sends a welcome mail over SMTP (as `login`, a
    (user, password) pair, when given), and tries again after a temporary failure."""
    msg = EmailMessage()
    msg["From"] = f"{login[0]}@localhost" if login else "noreply@app.example"
    msg["To"] = to
    msg["Subject"] = "Welcome!"
    msg.set_content("Your account is ready.")
    for attempt in range(attempts):
        try:
            with smtplib.SMTP(host, port, timeout=10) as s:
                if login:
                    s.login(*login)
                s.send_message(msg)
            return attempt + 1
        except (smtplib.SMTPDataError, smtplib.SMTPServerDisconnected) as e:
            if getattr(e, "smtp_code", 400) >= 500:
                raise
            time.sleep(0.05)  # a real application would back off for longer
    raise RuntimeError("gave up")


def test_welcome_mail_arrives(cmail_server):
    address = cmail_server.add_user("alice", "secret")
    send_welcome("127.0.0.1", cmail_server.ports["smtp"], address)

    (msg,) = cmail_server.wait_for_messages(1, timeout=5)
    assert msg["Subject"] == "Welcome!"
    assert msg.envelope.rcpt_to == (address,)
    assert "Your account is ready." in msg.get_content()

    # It is in alice's mailbox, too: read it back over POP3 as her mail client would.
    pop = poplib.POP3("127.0.0.1", cmail_server.ports["pop3"], timeout=10)
    pop.user("alice")
    pop.pass_("secret")
    assert pop.stat()[0] == 1
    pop.quit()


def test_the_application_retries_a_temporary_failure(cmail_server):
    address = cmail_server.add_user("alice", "secret")
    cmail_server.fail("data", address, 451, "Try again later", times=1)  # the first try is deferred
    assert send_welcome("127.0.0.1", cmail_server.ports["smtp"], address) == 2
    assert len(cmail_server.wait_for_messages(1)) == 1  # stored once


def test_mail_to_other_domains_is_captured(cmail_server):
    # The application sends through the server as a user; the server's outbound delivery hands
    # the mail to a sink inside it instead of the Internet.
    cmail_server.add_user("app", "pw")
    send_welcome("127.0.0.1", cmail_server.ports["smtp"], "bob@customer.example", login=("app", "pw"))
    (sent,) = cmail_server.wait_for_outbound(1, timeout=10)
    assert sent.envelope.rcpt_to == ("bob@customer.example",)
    assert sent["Subject"] == "Welcome!"
