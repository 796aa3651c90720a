"""cmail.imap.Server, sans-I/O: a whole session fed whole, byte by byte and in random splits
(the same output each way) through every decision (LOGIN, LIST, STATUS, CREATE, RENAME,
SUBSCRIBE, DELETE, SELECT, FETCH of FLAGS/ENVELOPE/BODY[]/BODYSTRUCTURE/sections, SEARCH,
STORE, COPY, MOVE, EXPUNGE, APPEND with a literal, IDLE, LOGOUT); CHANGEDSINCE and
mailbox_changed(); bad use; and imaplib over a loopback socket against a small threaded server
answering from a dict of messages."""
import imaplib
import socket
import threading
import time

import pytest

import cmail
from cmail import imap
from conftest import MODES, splits

MSG1 = (b"From: Ann <ann@example.test>\r\nTo: bob@example.test\r\nSubject: one\r\n"
        b"Date: Tue, 1 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\nfirst body\r\n")
MSG2 = (b"From: carl@example.test\r\nSubject: two\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        b"hello part\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--b--\r\n")
MSG3 = b"Subject: three\r\n\r\nappended\r\n"
CONVERSATION = (
    b'a1 LOGIN alice wrong\r\na2 LOGIN alice secret\r\na3 LIST "" "*" RETURN (SUBSCRIBED)\r\n'
    b"a4 STATUS INBOX (MESSAGES UIDNEXT UNSEEN)\r\na5 CREATE Work\r\na6 RENAME Work Projects\r\n"
    b"a7 SUBSCRIBE Projects\r\na8 UNSUBSCRIBE Projects\r\na9 DELETE Projects\r\nb1 SELECT INBOX\r\n"
    b"b2 FETCH 1:2 (FLAGS ENVELOPE)\r\nb3 FETCH 1:2 (BODY[] BODYSTRUCTURE)\r\n"
    b"b4 FETCH 2 (BODY.PEEK[1] BODY.PEEK[HEADER.FIELDS (SUBJECT)] RFC822.SIZE)\r\n"
    b"b5 SEARCH SUBJECT two\r\nb6 UID SEARCH UNSEEN\r\nb7 STORE 1 +FLAGS (\\Deleted)\r\n"
    b"b8 COPY 1 Archive\r\nb9 MOVE 2 Archive\r\nc1 EXPUNGE\r\n"
    b"c2 APPEND INBOX (\\Seen $Work) {%d}\r\n%s\r\nc3 IDLE\r\nDONE\r\nc4 LOGOUT\r\n" % (len(MSG3), MSG3))


class Mailbox:
    """The embedder of the conversation: INBOX of uid 1 (MSG1, \\Seen) and uid 2 (MSG2, $Work)."""

    def __init__(self):
        self.flags = {1: imap.SEEN, 2: 0}
        self.octets = {1: MSG1, 2: MSG2}
        self.appended = b""
        self.uidnext, self.modseq = 3, 10
        self.pending_new = None
        self.events = []

    def give(self, s, ev):
        for uid in ev.uids:
            if uid not in self.octets:
                continue
            seen_set = False
            if getattr(ev, "set_seen", False) and not self.flags[uid] & imap.SEEN:
                self.flags[uid] |= imap.SEEN
                seen_set = True
            s.message(uid, self.flags[uid], ("$Work",) if uid == 2 else (), 4 + uid, 1796119200 + uid,
                      octets=self.octets[uid] if ev.need_octets else None, size=len(self.octets[uid]),
                      seen_set=seen_set)
        s.done()

    def decide(self, s, ev):
        self.events.append(ev)
        if isinstance(ev, imap.Login):
            if ev.password == "secret":
                s.user("alice")
            else:
                s.reject("Invalid credentials", imap.RESP_AUTHENTICATIONFAILED)
        elif isinstance(ev, imap.List):
            s.mailboxes([imap.Mailbox("INBOX", subscribed=True), imap.Mailbox("Archive", "\\Archive"),
                         imap.Mailbox("Old", subscribed=True, exists=False)])
        elif isinstance(ev, imap.Status):
            s.counts(messages=2, uidnext=3, uidvalidity=7, unseen=1, highest_modseq=10)
        elif isinstance(ev, (imap.Create, imap.Rename, imap.Subscribe, imap.Delete)):
            s.accept()
        elif isinstance(ev, imap.Select):
            s.selected(7, 3, [imap.MessageState(1, self.flags[1], (), 5), imap.MessageState(2, 0, ("$Work",), 6)],
                       highest_modseq=10, keywords=("$Work",))
        elif isinstance(ev, (imap.Fetch, imap.Search)):
            self.give(s, ev)
        elif isinstance(ev, imap.Store):
            for uid in ev.uids:
                self.flags[uid] |= ev.flags
            self.modseq = 11
            s.stored([imap.MessageState(u, self.flags[u], (), 11) for u in ev.uids])
        elif isinstance(ev, imap.Copy):
            if ev.move:
                self.modseq = 12
            s.copied(3, ev.uids, [20 + u for u in ev.uids])
        elif isinstance(ev, imap.Expunge):
            gone = [u for u, f in self.flags.items() if f & imap.DELETED]
            s.expunged(gone)
        elif isinstance(ev, imap.Append):
            s.accept()
        elif isinstance(ev, imap.AppendData):
            self.appended += ev.data
        elif isinstance(ev, imap.AppendEnd):
            self.pending_new = imap.MessageState(3, imap.SEEN, ("$Work",), 13)
            s.appended(7, 3)
        elif isinstance(ev, imap.Changes):
            if self.pending_new:
                new, self.pending_new = self.pending_new, None
                self.uidnext, self.modseq = 4, 13
                s.changes(4, 13, [new])
            else:
                s.changes(self.uidnext, self.modseq)


def converse(pieces, box=None):
    box = box or Mailbox()
    s = imap.Server()
    out = [s.data_to_send()]
    for piece in pieces:
        s.receive_data(piece)
        while (ev := s.next_event()) is not None:
            box.decide(s, ev)
        out.append(s.data_to_send())
    return s, box, b"".join(out)


@pytest.mark.parametrize("mode", MODES)
def test_imap_session_in_any_split(mode, rng):
    _, _, expected = converse([CONVERSATION])
    s, box, out = converse(splits(CONVERSATION, mode, rng))
    assert out == expected
    assert b"a1 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n" in out
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX\r\n' in out
    assert b'\\Archive) "/" Archive\r\n' in out
    assert b"* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UNSEEN 1)\r\n" in out
    assert b"* 2 EXISTS\r\n" in out and b"b1 OK [READ-WRITE]" in out
    assert (b'* 1 FETCH (FLAGS (\\Seen) ENVELOPE ("Tue, 1 Dec 2026 10:00:00 +0000" "one" '
            b'(("Ann" NIL "ann" "example.test"))') in out
    assert b"* 1 FETCH (BODY[] {%d}\r\n%s BODYSTRUCTURE (\"text\" \"plain\"" % (len(MSG1), MSG1) in out
    assert b'"mixed" ("boundary" "b") NIL NIL NIL) FLAGS (\\Seen $Work))' in out  # \Seen set by BODY[]
    assert (b"* 2 FETCH (BODY[1] {10}\r\nhello part BODY[HEADER.FIELDS (SUBJECT)] {16}\r\nSubject: two\r\n\r\n "
            b"RFC822.SIZE %d)" % len(MSG2)) in out
    assert b"* SEARCH 2\r\nb5 OK" in out and b"* SEARCH\r\nb6 OK" in out
    assert b"* 1 FETCH (FLAGS (\\Seen \\Deleted)" in out
    assert b"b8 OK [COPYUID 3 1 21]" in out
    assert b"[COPYUID 3 2 22]" in out and b"* 2 EXPUNGE\r\n" in out
    assert b"* 1 EXPUNGE\r\nc1 OK" in out
    assert b"* 1 EXISTS\r\nc2 OK [APPENDUID 7 3]" in out
    assert b"+ idling\r\nc3 OK" in out and b"* BYE" in out and b"c4 OK" in out
    assert box.appended == MSG3
    kinds = [type(e).__name__ for e in box.events]
    for name in ("Login", "List", "Status", "Create", "Rename", "Subscribe", "Delete", "Select", "Fetch", "Search",
                 "Store", "Copy", "Expunge", "Append", "AppendEnd", "Changes", "Unselect", "Close"):
        assert name in kinds, name
    assert [e for e in box.events if isinstance(e, imap.Rename)] == [imap.Rename("Work", "Projects")]
    assert [e.subscribe for e in box.events if isinstance(e, imap.Subscribe)] == [True, False]
    fetches = [e for e in box.events if isinstance(e, imap.Fetch)]
    assert [(f.uids, f.need_octets, f.set_seen) for f in fetches] == [
        ((1, 2), True, False), ((1, 2), True, True), ((2,), True, False)]
    searches = [e for e in box.events if isinstance(e, imap.Search)]
    assert [(x.uids, x.need_octets) for x in searches] == [((1, 2), True), ((1, 2), False)]
    store = next(e for e in box.events if isinstance(e, imap.Store))
    assert store == imap.Store((1,), imap.STORE_ADD, imap.DELETED, (), None)
    append = next(e for e in box.events if isinstance(e, imap.Append))
    assert append == imap.Append("INBOX", imap.SEEN, ("$Work",), None, len(MSG3))
    assert [(e.uids, e.target, e.move) for e in box.events if isinstance(e, imap.Copy)] == [
        ((1,), "Archive", False), ((2,), "Archive", True)]
    assert s.closed and s.state == 3
    s.close()


def selected_server(box=None, **options):
    box = box or Mailbox()
    s = imap.Server(**options)
    s.data_to_send()
    s.receive_data(b"a LOGIN alice secret\r\nb SELECT INBOX\r\n")
    while (ev := s.next_event()) is not None:
        box.decide(s, ev)
    assert b"b OK" in s.data_to_send()
    return s, box


def test_changedsince_idle_and_mailbox_changed():
    s, box = selected_server()
    s.receive_data(b"c ENABLE CONDSTORE\r\nd FETCH 1:2 (FLAGS) (CHANGEDSINCE 5)\r\n")
    ev = s.next_event()
    assert ev == imap.Fetch((1, 2), False, False, 5)
    box.give(s, ev)
    out = s.data_to_send()
    assert b"* 2 FETCH (FLAGS ($Work) MODSEQ (6))" in out and b"* 1 FETCH" not in out  # modseq 5 is not above 5
    s.receive_data(b"e IDLE\r\n")
    assert isinstance(s.next_event(), imap.Changes)
    s.changes(3, 10)
    assert s.idling and s.data_to_send() == b"+ idling\r\n"
    s.mailbox_changed()
    ev = s.next_event()
    assert ev == imap.Changes(10, 3)
    s.changes(4, 14, [imap.MessageState(3, 0, (), 14)], expunged=[1])
    out = s.data_to_send()
    assert b"* 1 EXPUNGE\r\n" in out and b"* 2 EXISTS\r\n" in out
    s.receive_data(b"DONE\r\n")
    assert not s.idling and b"e OK" in s.data_to_send()
    s.close()


def test_fetch_in_batches_and_envelopes():
    """FETCH of 40 messages: the engine asks in batches (16 with content); the answers arrive in
    order. ENVELOPE needs the octets for the structure only."""
    s = imap.Server()
    s.data_to_send()
    s.receive_data(b"a LOGIN alice secret\r\nb SELECT INBOX\r\n")
    s.next_event()
    s.user("alice")
    s.next_event()
    s.selected(9, 41, [(u,) for u in range(1, 41)])
    s.data_to_send()
    octets = {u: b"Subject: m%d\r\n\r\nbody %d\r\n" % (u, u) for u in range(1, 41)}
    for command, batches, expected in (
            (b"c FETCH 1:* BODY.PEEK[]\r\n", [16, 16, 8], b"body 40\r\n"),
            (b"d FETCH 1:* ENVELOPE\r\n", [40], b'"m40"')):
        s.receive_data(command)
        sizes, out = [], b""
        while (ev := s.next_event()) is not None:
            assert isinstance(ev, imap.Fetch) and ev.need_octets
            sizes.append(len(ev.uids))
            for u in ev.uids:
                s.message(u, octets=octets[u])
            s.done()
            out += s.data_to_send()
        out += s.data_to_send()
        assert sizes == batches
        assert out.count(b" FETCH (") == 40 and expected in out and out.endswith(b"OK FETCH completed\r\n")
        assert out.index(b"* 2 FETCH") < out.index(b"* 17 FETCH") < out.index(b"* 40 FETCH")
    s.close()


def test_starttls_logindisabled_and_deadline():
    s = imap.Server(starttls_available=1, tls_required=1, idle_timeout_ms=5000)
    s.data_to_send()
    s.receive_data(b"a CAPABILITY\r\nb LOGIN alice secret\r\nc STARTTLS\r\nd CAPA")
    out = s.data_to_send()
    assert b"LOGINDISABLED" in out and b"b NO" in out and b"c OK" in out
    assert s.next_event() == imap.StartTls(b"d CAPA") and not s.wants_read
    s.tls_established("TLSv1.3", None, 256)
    s.receive_data(b"BILITY\r\ne LOGIN alice secret\r\n")  # "d CAPA" went to the handshake
    assert s.next_event() == imap.Login("", "alice", "secret")  # inside TLS: LOGIN is allowed
    s.user("alice")
    out = s.data_to_send()
    assert out.startswith(b"BILITY BAD") and b"e OK" in out and s.state == 1
    assert s.deadline()[1] == 0
    s.receive_data(b"g NO")
    assert s.deadline()[1] == 5000
    s.on_timeout()
    assert s.next_event() == imap.Close() and s.closed
    s.close()


def test_append_refused_and_aborted():
    s, box = selected_server()
    s.receive_data(b"c APPEND Nope {5}\r\n")
    ev = s.next_event()
    assert ev == imap.Append("Nope", 0, (), None, 5)
    s.reject("No such mailbox", imap.RESP_TRYCREATE)
    assert b"c NO [TRYCREATE] No such mailbox\r\n" in s.data_to_send()  # no "+": nothing is sent
    s.receive_data(b'd APPEND INBOX (\\Flagged) "01-Dec-2026 10:00:00 +0000" {10+}\r\nhalf')
    ev = s.next_event()
    assert ev == imap.Append("INBOX", imap.FLAGGED, (), 1796119200, 10)
    s.accept()
    assert s.next_event() == imap.AppendData(b"half")
    s.receive_data(b"")  # the client went away mid-message
    events = []
    while (ev := s.next_event()) is not None:
        events.append(ev)
    assert imap.AppendAbort() in events and events[-1] == imap.Close()
    s.close()


def test_bad_use():
    with pytest.raises(TypeError):
        imap.Server(no_such_option=1)
    with pytest.raises(cmail.InvalidArgument):
        imap.Server(max_command_line=10)
    s = imap.Server(idle_timeout_ms=5000)
    assert s.timeout_ms() == 5000
    with pytest.raises(cmail.WrongState, match="no decision"):
        s.accept()
    s.receive_data(b"a LOGIN alice secret\r\n")
    assert isinstance(s.next_event(), imap.Login)
    with pytest.raises(cmail.WrongState, match="LOGIN"):
        s.mailboxes([])  # the wrong answer: LOGIN still waits
    with pytest.raises(cmail.InvalidArgument):
        s.user("")
    with pytest.raises(cmail.InvalidArgument):
        s.reject("two\r\nlines")
    s.user("alice")
    s.receive_data(b"b SELECT INBOX\r\n")
    assert isinstance(s.next_event(), imap.Select)
    with pytest.raises(cmail.InvalidArgument, match="ascending"):
        s.selected(7, 5, [(2,), (1,)])
    with pytest.raises(cmail.InvalidArgument, match="keywords"):
        s.selected(7, 5, [imap.MessageState(1, 0, ("bad(",))])
    s.selected(7, 5, [(1,), (2,)])
    s.data_to_send()
    s.receive_data(b"c UID FETCH 1:* BODY.PEEK[TEXT]\r\n")
    ev = s.next_event()
    assert ev.uids == (1, 2) and ev.need_octets
    with pytest.raises(cmail.InvalidArgument, match="not asked"):
        s.message(9, octets=MSG1)
    with pytest.raises(cmail.InvalidArgument, match="octets"):
        s.message(1)
    s.message(1, octets=MSG1)
    with pytest.raises(cmail.InvalidArgument, match="already"):
        s.message(1, octets=MSG1)
    with pytest.raises(cmail.WrongState, match="FETCH"):
        s.expunged([1])
    s.done()  # uid 2 no longer exists: left out
    out = s.data_to_send()
    assert b"* 1 FETCH (UID 1 BODY[TEXT] {12}\r\nfirst body\r\n)\r\nc OK" in out
    assert b"* 2 FETCH" not in out
    s.receive_data(b"d STATUS Nope (MESSAGES)\r\n")
    assert s.next_event() == imap.Status("Nope")
    s.reject("No such mailbox", imap.RESP_NONEXISTENT)
    assert b"d NO [NONEXISTENT] No such mailbox\r\n" in s.data_to_send()
    s.receive_data(b"e LIST \"\" *\r\n")
    assert s.next_event() == imap.List()
    s.fail("database gone")
    out = s.data_to_send()
    assert b"e NO [UNAVAILABLE]" in out and b"database gone" not in out
    s.on_timeout()
    assert s.next_event() == imap.Unselect() and s.next_event() == imap.Close()
    s.close()
    with pytest.raises(cmail.Closed):
        s.next_event()
    with pytest.raises(cmail.Closed):
        s.done()


# ---- imaplib over a loopback socket -----------------------------------------------------------

class DictStore:
    """A mailbox INBOX kept in a dict: uid -> [flags, keywords, internal_date, octets]."""

    def __init__(self, messages):
        self.messages = {uid: list(m) for uid, m in messages.items()}
        self.uidnext = max(self.messages) + 1
        self.lock = threading.Lock()
        self.append = None

    def decide(self, s, ev):
        m = self.messages
        if isinstance(ev, imap.Login):
            if (ev.authcid, ev.password) == ("alice", "secret"):
                s.user("alice")
            else:
                s.reject("Invalid credentials", imap.RESP_AUTHENTICATIONFAILED)
        elif isinstance(ev, imap.Select):
            if ev.mailbox != "INBOX":
                return s.reject("No such mailbox", imap.RESP_NONEXISTENT)
            s.selected(42, self.uidnext, [imap.MessageState(u, m[u][0], m[u][1]) for u in sorted(m)])
        elif isinstance(ev, (imap.Fetch, imap.Search)):
            for uid in ev.uids:
                if uid not in m:
                    continue
                seen_set = getattr(ev, "set_seen", False) and not m[uid][0] & imap.SEEN
                if seen_set:
                    m[uid][0] |= imap.SEEN
                s.message(uid, m[uid][0], m[uid][1], 0, m[uid][2], octets=m[uid][3], seen_set=seen_set)
            s.done()
        elif isinstance(ev, imap.Store):
            for uid in ev.uids:
                if uid not in m:
                    continue
                kws = set(m[uid][1])
                if ev.op == imap.STORE_ADD:
                    m[uid][0] |= ev.flags
                    kws |= set(ev.keywords)
                elif ev.op == imap.STORE_REMOVE:
                    m[uid][0] &= ~ev.flags
                    kws -= set(ev.keywords)
                else:
                    m[uid][0] = ev.flags
                    kws = set(ev.keywords)
                m[uid][1] = tuple(sorted(kws))
            s.stored([imap.MessageState(u, m[u][0], m[u][1]) for u in ev.uids if u in m])
        elif isinstance(ev, imap.Append):
            if ev.mailbox != "INBOX":
                return s.reject("No such mailbox", imap.RESP_TRYCREATE)
            self.append = [ev.flags, ev.keywords, ev.internal_date or int(time.time()), b""]
            s.accept()
        elif isinstance(ev, imap.AppendData):
            self.append[3] += ev.data
        elif isinstance(ev, imap.AppendEnd):
            uid, self.uidnext = self.uidnext, self.uidnext + 1
            m[uid], self.append = self.append, None
            s.appended(42, uid)
        elif isinstance(ev, imap.Changes):
            # What this connection's APPEND added to the selected mailbox.
            new = [imap.MessageState(u, m[u][0], m[u][1]) for u in sorted(m) if u >= ev.uidnext]
            s.changes(self.uidnext, 0, new)
        elif isinstance(ev, imap.Expunge):
            gone = [u for u in sorted(m) if m[u][0] & imap.DELETED and (not ev.uids or u in ev.uids)]
            for u in gone:
                del m[u]
            s.expunged(gone)
        elif isinstance(ev, (imap.List, imap.Status, imap.Create, imap.Delete, imap.Rename, imap.Subscribe,
                             imap.Copy)):
            s.reject("Not here", imap.RESP_CANNOT)


def serve(listener, store, done):
    conn, _ = listener.accept()
    with conn, imap.Server(hostname="dict.example.test") as s:
        conn.sendall(s.data_to_send())
        while not s.closed:
            data = conn.recv(65536)
            s.receive_data(data)
            while (ev := s.next_event()) is not None:
                with store.lock:
                    store.decide(s, ev)
            out = s.data_to_send()
            if out:
                conn.sendall(out)
            if not data:
                break
    done.set()


def literals(data):
    """The literals of an imaplib FETCH answer."""
    return [x[1] for x in data if isinstance(x, tuple)]


def text(data):
    """The text of an imaplib FETCH answer around its literals."""
    return b"".join(x[0] if isinstance(x, tuple) else x for x in data)


def test_imaplib_over_loopback():
    store = DictStore({
        1: [0, (), 1796119200, MSG1],
        2: [imap.SEEN, ("$Work",), 1796119300, MSG2],
    })
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()
    t = threading.Thread(target=serve, args=(listener, store, done), daemon=True)
    t.start()
    port = listener.getsockname()[1]
    c = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    try:
        assert c.welcome.startswith(b"* OK")
        with pytest.raises(imaplib.IMAP4.error):
            c.login("alice", "wrong")
        assert c.login("alice", "secret")[0] == "OK"
        typ, data = c.select("INBOX")
        assert typ == "OK" and data == [b"2"]
        typ, data = c.fetch("1:2", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
        assert literals(data) == [b"Subject: one\r\n\r\n", b"Subject: two\r\n\r\n"]
        assert b"1 (FLAGS () " in text(data) and b"2 (FLAGS (\\Seen $Work) " in text(data)
        typ, data = c.fetch("2", "(BODY[1] BODYSTRUCTURE)")
        assert literals(data) == [b"hello part"]
        assert b'"mixed" ("boundary" "b")' in text(data)
        typ, data = c.uid("FETCH", "1", "(RFC822)")  # sets \Seen on uid 1
        assert typ == "OK" and literals(data) == [MSG1] and b"FLAGS (\\Seen)" in text(data)
        assert store.messages[1][0] == imap.SEEN
        assert c.search(None, "SUBJECT", "two") == ("OK", [b"2"])
        assert c.search(None, "BODY", "hello") == ("OK", [b"2"])
        assert c.search(None, "FROM", "ann") == ("OK", [b"1"])
        assert c.search(None, "KEYWORD", "$Work") == ("OK", [b"2"])
        assert c.uid("SEARCH", "SENTON", "1-Dec-2026") == ("OK", [b"1"])
        typ, data = c.store("1", "+FLAGS", "(\\Flagged $Later)")
        assert typ == "OK" and b"\\Flagged" in data[0] and b"$Later" in data[0]
        assert store.messages[1][0] == imap.SEEN | imap.FLAGGED and store.messages[1][1] == ("$Later",)
        assert c.search(None, "FLAGGED") == ("OK", [b"1"])
        new = b"From: dave@example.test\r\nSubject: added\r\n\r\nnew body\r\n"
        typ, data = c.append("INBOX", "(\\Draft)", imaplib.Time2Internaldate(1796119400), new)
        assert typ == "OK" and b"[APPENDUID 42 3]" in data[0]
        assert store.messages[3] == [imap.DRAFT, (), 1796119400, new]
        assert c.search(None, "SUBJECT", "added") == ("OK", [b"3"])
        typ, data = c.fetch("3", "(BODY.PEEK[TEXT] INTERNALDATE)")
        assert literals(data) == [b"new body\r\n"]
        assert imaplib.Internaldate2tuple(text(data)) == time.localtime(1796119400)
        assert c.store("2", "+FLAGS", "(\\Deleted)")[0] == "OK"
        typ, data = c.expunge()
        assert typ == "OK" and data == [b"2"]
        assert sorted(store.messages) == [1, 3]
        assert c.uid("SEARCH", "ALL") == ("OK", [b"1 3"])
        assert c.select("Nope")[0] == "NO"
        c.logout()
    finally:
        c.shutdown() if c.state != "LOGOUT" else None
        listener.close()
    assert done.wait(10)
