"""cmail.smtp.Server and Client, sans-I/O: whole conversations fed whole, byte by byte and in
random splits (the same output each way), verdicts given later, AUTH, STARTTLS, time-outs,
the client against the server in memory, and bad use."""
import base64

import pytest

import cmail
from cmail import smtp
from conftest import MODES, splits

CONVERSATION = (b"EHLO client.example\r\n"
                b"MAIL FROM:<a@b.example> SIZE=42 BODY=8BITMIME\r\n"
                b"RCPT TO:<me@example.test> NOTIFY=SUCCESS,FAILURE\r\n"
                b"RCPT TO:<other@example.test>\r\n"
                b"DATA\r\n"
                b"Subject: hi\r\n\r\nline\r\n..dot\r\n.\r\n"
                b"QUIT\r\n")
MESSAGE = b"Subject: hi\r\n\r\nline\r\n.dot\r\n"


def answer(s, ev):
    """A small policy: me@example.test only; the message queued."""
    if isinstance(ev, smtp.Rcpt):
        if ev.address == "me@example.test":
            s.accept()
        else:
            s.reject(550, "5.1.1", "No such user here")
    elif isinstance(ev, smtp.Mail):
        s.accept("Sender OK")
    elif isinstance(ev, smtp.DataEnd):
        s.accept("Queued")
    elif isinstance(ev, smtp.Helo):
        s.accept()


def converse(s, pieces, events):
    out = [s.data_to_send()]
    for piece in pieces:
        s.receive_data(piece)
        while (ev := s.next_event()) is not None:
            events.append(ev)
            answer(s, ev)
        out.append(s.data_to_send())
    return b"".join(out)


@pytest.mark.parametrize("mode", MODES)
def test_server_conversation_in_any_split(mode, rng):
    with smtp.Server() as whole:
        expected = converse(whole, [CONVERSATION], [])
    s = smtp.Server()
    assert s.state == 0 and s.wants_read and s.timeout_ms() == 300000
    events = []
    out = converse(s, splits(CONVERSATION, mode, rng), events)
    assert out == expected
    for line in (b"220 localhost", b"250 2.1.0 Sender OK\r\n", b"250 2.1.5 OK\r\n",
                 b"550 5.1.1 No such user here\r\n", b"354 ", b"250 2.0.0 Queued\r\n", b"221 2.0.0"):
        assert line in out
    kinds = [type(e).__name__ for e in events if not isinstance(e, smtp.Data)]
    assert kinds == ["Helo", "Mail", "Rcpt", "Rcpt", "DataEnd", "Close"]
    helo, mail, rcpt = events[0], events[1], events[2]
    assert helo.helo == "client.example" and helo.esmtp
    assert mail.address == "a@b.example" and mail.size == 42 and mail.body == 1
    assert rcpt.notify == "SUCCESS,FAILURE" and rcpt.session.protocol == "ESMTP"
    assert b"".join(e.chunk for e in events if isinstance(e, smtp.Data)) == MESSAGE
    assert s.closed and not s.wants_read and s.messages == 1 and s.state == 7
    s.close()


def test_verdict_given_later_holds_pipelined_input():
    s = smtp.Server()
    events = []
    s.receive_data(CONVERSATION)
    out = s.data_to_send()
    while (ev := s.next_event()) is not None:
        events.append(ev)
        if not isinstance(ev, smtp.DataEnd):
            answer(s, ev)
    out += s.data_to_send()
    assert isinstance(events[-1], smtp.DataEnd)
    assert b"Queued" not in out and b"221" not in out and not s.closed
    s.accept("Queued")
    assert isinstance(s.next_event(), smtp.Close)
    assert b"250 2.0.0 Queued\r\n221 2.0.0" in s.data_to_send()
    with pytest.raises(cmail.WrongState):
        s.accept()


def test_auth_starttls_timeout():
    s = smtp.Server(hostname="mx.example.test", auth_enabled=1, auth_requires_tls=0,
                    starttls_available=1, command_timeout_ms=1234)
    assert s.timeout_ms() == 1234
    plain = base64.b64encode(b"\0alice\0secret")
    s.receive_data(b"EHLO client.example\r\nAUTH PLAIN " + plain + b"\r\n")
    assert isinstance(s.next_event(), smtp.Helo)
    s.accept()
    auth = s.next_event()
    assert (auth.authcid, auth.password) == ("alice", "secret")
    s.authenticated("alice")
    out = s.data_to_send()
    assert b"AUTH PLAIN LOGIN\r\n" in out and b"235 2.7.0" in out
    s.receive_data(b"MAIL FROM:<a@b.example>\r\n")
    mail = s.next_event()
    assert mail.session.user == "alice" and mail.session.protocol == "ESMTPA"
    s.accept()
    s.receive_data(b"RSET\r\nSTARTTLS\r\nEHLO injected\r\n")
    evs = []
    while (ev := s.next_event()) is not None:
        evs.append(ev)
    assert isinstance(evs[0], smtp.Reset)
    assert evs[-1] == smtp.StartTls(b"EHLO injected\r\n")
    out = s.data_to_send()
    assert b"220 2.0.0 Ready to start TLS" in out and b"injected" not in out
    assert not s.wants_read
    s.tls_established("TLSv1.3", "TLS_AES_128_GCM_SHA256", 128)
    assert s.wants_read
    s.receive_data(b"EHLO client.example\r\n")
    helo = s.next_event()
    assert helo.session.tls
    s.accept()
    assert b"STARTTLS" not in s.data_to_send()
    phase, budget = s.deadline()
    assert budget == 0
    s.receive_data(b"NO")
    assert s.deadline() == (phase + 1, 1234)
    s.on_timeout()
    assert isinstance(s.next_event(), smtp.Close)
    assert b"421 4.4.2" in s.data_to_send() and s.closed


def test_fail_gives_the_generic_temporary_failure():
    s = smtp.Server()
    s.receive_data(b"HELO client.example\r\n")
    assert s.next_event().esmtp is False
    s.fail("database gone")
    out = s.data_to_send()
    assert b"451 4.3.0" in out and b"database gone" not in out


def test_bad_use_is_a_clear_exception():
    s = smtp.Server()
    with pytest.raises(cmail.WrongState) as e:
        s.accept()
    assert e.value.status == 11 and e.value.name == "WrongState" and str(e.value)
    with pytest.raises(cmail.InvalidArgument):
        s.reject(250)
    with pytest.raises(cmail.InvalidArgument):
        s.reject(550, "4.1.1")
    with pytest.raises(cmail.InvalidArgument):
        s.consume_output(len(s.pending_output()) + 1)
    with pytest.raises(TypeError):
        s.receive_data("text, not bytes")
    with pytest.raises(TypeError):
        smtp.Server(no_such_option=1)
    s.close()
    s.close()  # twice is fine
    assert s.closed
    for call in (lambda: s.receive_data(b"x"), s.next_event, s.accept, s.data_to_send, s.timeout_ms):
        with pytest.raises(cmail.Closed, match="closed"):
            call()
    assert issubclass(cmail.Closed, cmail.Error) and issubclass(cmail.InvalidArgument, ValueError)


def shuttle(client, server, mode, rng, client_events, server_events):
    """Moves bytes both ways until neither side has anything to say."""
    while True:
        moved = False
        out = server.data_to_send()
        if out:
            moved = True
            for piece in splits(out, mode, rng):
                client.receive_data(piece)
        while (ev := server.next_event()) is not None:
            moved = True
            server_events.append(ev)
            answer(server, ev)
        while (ev := client.next_event()) is not None:
            moved = True
            client_events.append(ev)
        out = client.data_to_send()
        if out:
            moved = True
            for piece in splits(out, mode, rng):
                server.receive_data(piece)
        if not moved:
            return


@pytest.mark.parametrize("mode", MODES)
def test_client_sends_to_server_in_memory(mode, rng):
    client, server = smtp.Client(tls=smtp.TLS_NONE, helo_name="client.example"), smtp.Server()
    cev, sev = [], []
    shuttle(client, server, mode, rng, cev, sev)
    assert cev == [smtp.Ready()]
    client.send_mail("a@b.example", ["me@example.test", "other@example.test"], MESSAGE)
    with pytest.raises(cmail.WrongState):  # not Ready again yet
        client.send_mail("a@b.example", ["me@example.test"], MESSAGE)
    shuttle(client, server, mode, rng, cev, sev)
    rcpts = [e for e in cev if isinstance(e, smtp.RcptResult)]
    assert [(r.index, r.reply.code) for r in rcpts] == [(0, 250), (1, 550)]
    assert rcpts[1].reply.enhanced == "5.1.1" and rcpts[1].reply.text == "No such user here"
    result = [e for e in cev if isinstance(e, smtp.MailResult)]
    assert len(result) == 1 and result[0].accepted == (0,) and result[0].reply.code == 250
    assert isinstance(cev[-1], smtp.Ready)
    assert b"".join(e.chunk for e in sev if isinstance(e, smtp.Data)) == MESSAGE
    client.quit()
    shuttle(client, server, mode, rng, cev, sev)
    assert isinstance(cev[-1], smtp.Close) and isinstance(sev[-1], smtp.Close)
    assert client.closed and server.closed and server.messages == 1


def test_client_reports_a_refusing_server():
    client = smtp.Client(tls=smtp.TLS_NONE)
    client.receive_data(b"554 5.3.2 go away\r\n")
    events = []
    while (ev := client.next_event()) is not None:
        events.append(ev)
    failed = [e for e in events if isinstance(e, smtp.Failed)]
    assert failed and failed[0].kind == smtp.FAIL_RESPONSE and failed[0].reply.code == 554
    assert failed[0].permanent and failed[0].reason
    with pytest.raises(cmail.WrongState):
        client.send_mail("a@b.example", ["me@example.test"], MESSAGE)
    with pytest.raises(TypeError):
        client.send_mail("a@b.example", "me@example.test", MESSAGE)
