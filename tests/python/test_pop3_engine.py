"""cmail.pop3.Server, sans-I/O: a whole session fed whole, byte by byte and in random splits
(the same output each way), a refused login, RETR with dot-stuffing, UPDATE, and bad use."""
import pytest

import cmail
from cmail import pop3
from conftest import MODES, splits

MSGS = [b"Subject: one\r\n\r\nfirst\r\n.dot\r\n", b"Subject: two\r\n\r\nbody\r\nmore\r\n"]
CONVERSATION = (b"USER alice\r\nPASS wrong\r\nUSER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nUIDL\r\n"
                b"RETR 1\r\nTOP 2 0\r\nDELE 1\r\nQUIT\r\n")


def converse(s, pieces, events):
    out = [s.data_to_send()]
    for piece in pieces:
        s.receive_data(piece)
        while (ev := s.next_event()) is not None:
            events.append(ev)
            if isinstance(ev, pop3.Login):
                if ev.password == "secret":
                    s.maildrop("alice", [(len(m), f"uid-{i + 1}") for i, m in enumerate(MSGS)])
                else:
                    s.reject("Bad credentials", pop3.RESP_AUTH)
            elif isinstance(ev, pop3.Retrieve):
                s.message(MSGS[ev.index])
            elif isinstance(ev, pop3.Update):
                s.accept()
        out.append(s.data_to_send())
    return b"".join(out)


@pytest.mark.parametrize("mode", MODES)
def test_pop3_session_in_any_split(mode, rng):
    with pop3.Server(hostname="pop.example.test") as whole:
        expected = converse(whole, [CONVERSATION], [])
    s = pop3.Server(hostname="pop.example.test")
    assert s.state == 0 and s.wants_read
    events = []
    out = converse(s, splits(CONVERSATION, mode, rng), events)
    assert out == expected
    assert b"-ERR [AUTH] Bad credentials" in out
    assert f"+OK 2 {len(MSGS[0]) + len(MSGS[1])}".encode() in out
    assert b"1 uid-1\r\n2 uid-2\r\n" in out
    assert b"first\r\n..dot\r\n.\r\n" in out  # RETR 1, dot-stuffed
    assert b"Subject: two\r\n\r\n.\r\n" in out  # TOP 2 0
    logins = [e for e in events if isinstance(e, pop3.Login)]
    assert [(e.authzid, e.authcid, e.password) for e in logins] == [("", "alice", "wrong"), ("", "alice", "secret")]
    assert [e.index for e in events if isinstance(e, pop3.Retrieve)] == [0, 1]
    assert [e.deleted for e in events if isinstance(e, pop3.Update)] == [(0,)]
    assert isinstance(events[-1], pop3.Close) and s.closed and s.state == 4


def test_pop3_whole_outputs_agree(rng):
    outs = []
    for mode in MODES:
        with pop3.Server() as s:
            outs.append(converse(s, splits(CONVERSATION, mode, rng), []))
    assert outs[0] == outs[1] == outs[2]


def test_pop3_stls_and_timeout_and_bad_use():
    s = pop3.Server(starttls_available=1, tls_required=1, idle_timeout_ms=5000)
    assert s.timeout_ms() == 5000
    s.data_to_send()
    s.receive_data(b"STLS\r\nUSER x\r\n")
    assert s.next_event() == pop3.StartTls(b"USER x\r\n")
    assert b"+OK" in s.data_to_send()
    s.tls_established("TLSv1.3", None, 128)
    with pytest.raises(cmail.WrongState):
        s.accept()  # no decision awaits a verdict
    s.receive_data(b"USER alice\r\nPASS secret\r\n")
    assert s.next_event() == pop3.Login("", "alice", "secret")
    with pytest.raises(cmail.InvalidArgument, match="uid"):
        s.maildrop("alice", [(3, "has space")])
    s.maildrop("alice", [(3, "uid")])  # the decision still waited for a good answer
    assert b"maildrop has 1 messages (3 octets)" in s.data_to_send()
    s.on_timeout()
    assert s.next_event() == pop3.Close() and s.closed
    assert s.data_to_send().startswith(b"-ERR")
    s.close()
    with pytest.raises(cmail.Closed):
        s.next_event()
