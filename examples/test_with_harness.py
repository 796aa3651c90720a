"""examples/test_with_harness.py: a pytest test of an application's mail, with cmail.testing.

The `cmail_server` fixture (cmail.pytest_plugin) starts a real mail server on free loopback
ports with a throw-away database for each test and stops it after. Run it with

    /usr/bin/python3 -m pytest -p cmail.pytest_plugin examples/test_with_harness.py

or put `pytest_plugins = ["cmail.pytest_plugin"]` in your conftest.py.
"""
import poplib
import smtplib
from email.message import EmailMessage


def send_welcome(host, port, to):
    """The application code under test: it sends a welcome mail over SMTP."""
    msg = EmailMessage()
    msg["From"] = "noreply@app.example"
    msg["To"] = to
    msg["Subject"] = "Welcome!"
    msg.set_content("Your account is ready.")
    with smtplib.SMTP(host, port, timeout=10) as s:
        s.send_message(msg)


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
