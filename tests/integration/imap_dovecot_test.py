#!/usr/bin/python3
"""cmail's FETCH items against Dovecot's for the same message octets.

Usage: imap_dovecot_test.py IMAP_FETCH_DUMP

About twenty messages are generated here (plain, multipart/mixed, alternative, related, nested
message/rfc822, digest, RFC 2231 parameters, encoded words, groups, and malformed ones: missing
boundary, missing close delimiter, bad base64, 8-bit headers, bare LF), written into a Maildir,
and served by Dovecot (/usr/sbin/dovecot, Debian's dovecot-imapd) started as the current user
with a minimal configuration in a temporary directory, listening on a free loopback port.
BODYSTRUCTURE, BODY, ENVELOPE, RFC822.SIZE, BODY[...] sections and BINARY items are fetched
from it with imaplib and compared with what tests/tools/imap_fetch_dump.cc (cmail's encoders)
answers for the same file. They must be identical, or differ only as DIFFERENCES says (the same
list is in docs/imap-fetch.md). Every socket and process wait is bounded; Dovecot is stopped
at the end whatever happens.
"""
import imaplib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dovecot import Dovecot  # noqa: E402

DUMP = sys.argv.pop(1) if len(sys.argv) > 1 else "build/tests/imap-fetch-dump"

# The documented differences (docs/imap-fetch.md), by tag. A message lists the tags that apply
# to it; the comparison allows exactly those.
DIFFERENCES = {
    "case": "media types, subtypes and parameter names: Dovecot sends them as the message writes "
            "them, cmail in the lower case its structure parser keeps (RFC 2045 5.1: they are "
            "case-insensitive)",
    "lines": "body-fld-lines: Dovecot counts the line ends of a body, cmail counts lines, so a "
             "last line without a line end (every part before a boundary) counts one more",
    "lf": "bare LF line ends: Dovecot converts them to CRLF (sizes, lines and BODY[] octets), "
          "cmail serves the stored octets; compared on the message with CRLF, and the stored "
          "octets checked apart",
    "leaf-multipart": "a multipart without a usable boundary: Dovecot writes a multipart with one "
                      "empty text/plain part (BODY[1] empty), cmail one part of the multipart's "
                      "type whose body is the text (BODY[1] that text)",
    "multipart-end": "a part that is itself a multipart, or a message/rfc822 holding one, before "
                     "the next delimiter of its parent: Dovecot counts the line end before that "
                     "delimiter as the part's, cmail as the delimiter's (RFC 2046 5.1.1), so "
                     "Dovecot's octets are two more (the CRLF)",
    "rfc2231": "RFC 2231 extended parameters (name*=charset'lang'value): Dovecot sends them as "
               "written, cmail decoded under the plain name (the structure parser's contract); "
               "compared after decoding Dovecot's",
    "bad-base64": "BINARY of damaged base64: Dovecot answers NO [PARSE], cmail sends what the "
                  "lenient decoder of RFC 2045 6.8 gives",
    "binary-container": "BINARY of a multipart part: Dovecot undoes the encodings of the parts "
                        "inside (NO [UNKNOWN-CTE] for one it cannot), cmail sends the multipart "
                        "as stored (its own encoding is 7bit, 8bit or binary)",
    "literal8": "BINARY content: Dovecot sends a literal8 (~{N}) when it is not 7-bit text, "
                "cmail only when it holds NUL (RFC 3516 4.2: a literal carries any other "
                "octet); checked for every message",
}
GLOBAL = {"literal8"}

CRLF = "\r\n"


def msg(*lines, sep=CRLF):
    return (sep.join(lines)).encode("utf-8")


# (name, octets, difference tags, extra items)
MESSAGES = [
    ("plain", msg("From: Ann <ann@a.example>", "To: bob@b.example", "Subject: hello",
                  "Date: Wed, 02 Dec 2026 10:00:00 +0100", "Message-ID: <p1@a.example>", "",
                  "Hello Bob,", "bye.", ""), set(), []),
    ("qp-utf8", msg("From: ann@a.example", "Subject: qp", "MIME-Version: 1.0",
                    "Content-Type: text/plain; charset=utf-8; format=flowed",
                    "Content-Transfer-Encoding: quoted-printable", "", "caf=C3=A9 au lait =", "et cr=C3=A8me", ""),
     set(), []),
    ("mixed", msg("From: ann@a.example", "Subject: mixed", "MIME-Version: 1.0",
                  "Content-Type: multipart/mixed; boundary=\"b1\"", "", "preamble", "--b1",
                  "Content-Type: text/plain; charset=us-ascii", "", "see attachment", "--b1",
                  "Content-Type: application/octet-stream; name=\"data.bin\"",
                  "Content-Transfer-Encoding: base64",
                  "Content-Disposition: attachment; filename=\"data.bin\"; size=4", "",
                  "AAECAw==", "--b1--", "epilogue", ""), {"lines"}, ["BINARY.PEEK[2]<1.2>"]),
    ("alternative", msg("From: ann@a.example", "Subject: alt", "Content-Type: multipart/alternative; boundary=alt",
                        "", "--alt", "Content-Type: text/plain; charset=utf-8", "", "plain text", "", "--alt",
                        "Content-Type: text/html; charset=utf-8", "", "<p>html</p>", "--alt--", ""),
     {"lines"}, []),
    ("related", msg("From: ann@a.example", "Subject: rel",
                    "Content-Type: multipart/related; boundary=r; type=\"text/html\"", "", "--r",
                    "Content-Type: text/html", "", "<img src=\"cid:i1@a.example\">", "--r",
                    "Content-Type: image/gif", "Content-ID: <i1@a.example>", "Content-Transfer-Encoding: base64",
                    "Content-Location: http://a.example/i.gif", "Content-Description: a dot",
                    "Content-Disposition: inline", "", "R0lGODlhAQABAAAAACw=", "--r--", ""),
     {"lines"}, ["BODY.PEEK[2.MIME]"]),
    ("nested-rfc822", msg("From: ann@a.example", "Subject: fwd", "Content-Type: multipart/mixed; boundary=o", "",
                          "--o", "Content-Type: text/plain", "", "forwarded:", "--o", "Content-Type: message/rfc822",
                          "", "From: Bob <bob@b.example>", "To: ann@a.example", "Subject: original",
                          "Message-ID: <o1@b.example>",
                          "Content-Type: multipart/alternative; boundary=a", "", "--a", "Content-Type: text/plain",
                          "", "original text", "--a", "Content-Type: text/html", "", "<b>original</b>", "--a--",
                          "--o--", ""), {"lines", "multipart-end"},
     ["BODY.PEEK[2.HEADER]", "BODY.PEEK[2.TEXT]", "BODY.PEEK[2.1]", "BODY.PEEK[2.2]", "BODY.PEEK[2.2.MIME]",
      "BODY.PEEK[2.HEADER.FIELDS (SUBJECT)]", "BODY.PEEK[2.3]", "BINARY.PEEK[2.1]"]),
    ("digest", msg("From: list@l.example", "Subject: digest", "Content-Type: multipart/digest; boundary=d", "",
                   "--d", "", "From: one@l.example", "Subject: first", "", "one", "--d",
                   "Content-Type: message/rfc822", "", "From: two@l.example", "Subject: second", "", "two",
                   "--d--", ""), {"lines"}, ["BODY.PEEK[1.HEADER]", "BODY.PEEK[2.TEXT]", "BODY.PEEK[1.1]"]),
    ("rfc2231", msg("From: ann@a.example", "Subject: params", "Content-Type: multipart/mixed; boundary=p", "",
                    "--p", "Content-Type: application/pdf; name*0=\"a very long \"; name*1=\"name.pdf\"",
                    "Content-Disposition: attachment; filename*=utf-8''na%C3%AFve%20file.pdf", "", "%PDF", "--p",
                    "Content-Type: text/plain; charset*=us-ascii'en'us-ascii", "", "x", "--p--", ""),
     {"lines", "rfc2231"}, []),
    ("encoded-words", msg("From: =?utf-8?q?Ren=C3=A9?= <rene@a.example>",
                          "To: =?iso-8859-1?q?J=F6rg?= <joerg@b.example>",
                          "Subject: =?utf-8?b?Y2Fmw6k=?= and =?utf-8?q?cr=C3=A8me?=", "", "body", ""), set(), []),
    ("groups", msg("From: ann@a.example", "Sender: secretary@a.example", "Reply-To: list@l.example",
                   "To: friends: bob@b.example, Carl <carl@c.example>;, eve@e.example",
                   "Cc: undisclosed-recipients:;", "Bcc: local-only", "In-Reply-To: <x@b.example>",
                   "Subject: groups", "", "body", ""), set(), []),
    ("no-fields", msg("", "a body without a header", ""), set(), []),
    ("missing-boundary", msg("From: ann@a.example", "Subject: nob", "Content-Type: multipart/mixed", "",
                             "just text", ""), {"leaf-multipart"}, []),
    ("missing-close", msg("From: ann@a.example", "Subject: noclose", "Content-Type: multipart/mixed; boundary=m",
                          "", "--m", "Content-Type: text/plain", "", "first", "--m", "Content-Type: text/plain", "",
                          "second and no close delimiter", ""), {"lines"}, []),
    ("bad-base64", msg("From: ann@a.example", "Subject: b64", "Content-Type: application/octet-stream",
                       "Content-Transfer-Encoding: base64", "", "AAE*CAw=", "==xx", ""), {"bad-base64"}, []),
    ("8bit-headers", ("From: Ren\u00e9 <rene@a.example>\r\nSubject: caf\u00e9 cr\u00e8me\r\n"
                      "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                      "d\u00e9j\u00e0 vu\r\n").encode("utf-8"), set(), []),
    ("bare-lf", msg("From: ann@a.example", "Subject: lf", "Content-Type: multipart/mixed; boundary=l", "",
                    "--l", "Content-Type: text/plain", "", "one", "two", "--l--", "", sep="\n"), {"lf", "lines"}, []),
    ("upper-case", msg("From: ann@a.example", "Subject: case", "Content-Type: TEXT/HTML; CHARSET=UTF-8", "",
                       "<p>x</p>", ""), {"case"}, []),
    ("extension-data", msg("From: ann@a.example", "Subject: ext", "Content-Type: text/plain; charset=utf-8",
                           "Content-Language: en, fr", "Content-Location: http://a.example/t.txt",
                           "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==", "Content-Disposition: inline; filename=t.txt",
                           "Content-ID: <t@a.example>", "", "text", ""), set(), []),
    ("one-language", msg("From: ann@a.example", "Subject: lang", "Content-Type: text/plain; format=flowed",
                         "Content-Language: en", "Content-Disposition: attachment", "", "text", ""), set(), []),
    ("top-rfc822", msg("From: ann@a.example", "Subject: outer", "Content-Type: message/rfc822", "",
                       "From: bob@b.example", "Subject: inner", "", "inner body", ""), set(),
     ["BODY.PEEK[1.1]", "BODY.PEEK[1.HEADER]", "BODY.PEEK[1.TEXT]"]),
    ("deep", msg("From: ann@a.example", "Subject: deep", "Content-Type: multipart/mixed; boundary=x1", "",
                 "--x1", "Content-Type: multipart/mixed; boundary=x2", "", "--x2", "Content-Type: text/plain", "",
                 "leaf", "--x2", "Content-Type: text/plain", "Content-Transfer-Encoding: x-uuencode", "",
                 "begin 644 f", "--x2--", "--x1", "Content-Type: text/plain", "", "", "--x1--", ""),
     {"lines", "multipart-end", "binary-container"}, ["BODY.PEEK[1.1]", "BODY.PEEK[1.2.MIME]", "BINARY.PEEK[1.2]", "BINARY.SIZE[1.2]", "BODY.PEEK[1.3]",
                 "BINARY.PEEK[2]"]),
]

ITEMS = ["BODYSTRUCTURE", "BODY", "ENVELOPE", "RFC822.SIZE", "BODY.PEEK[]", "BODY.PEEK[HEADER]", "BODY.PEEK[TEXT]",
         "BODY.PEEK[1]", "BODY.PEEK[1.MIME]", "BODY.PEEK[2]", "BODY.PEEK[2.MIME]", "BODY.PEEK[9]",
         "BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)]", "BODY.PEEK[HEADER.FIELDS.NOT (from subject)]",
         "BINARY.PEEK[1]", "BINARY.SIZE[1]", "BODY.PEEK[]<10.20>", "BODY.PEEK[1]<2.1000>", "BODY.PEEK[]<5000.10>"]


def dovecot_item(im, seq, item):
    """The text of one data item ("BODY[1] {3}\\r\\none"), or "NO [CODE]" / "NO" on a NO."""
    typ, data = im.fetch(str(seq), "(" + item + ")")
    if typ != "OK":
        text = data[0].decode("utf-8", "replace") if data and data[0] else ""
        m = re.match(r"\[([A-Z-]+)\]", text)
        return ("NO " + m.group(1) if m else "NO").encode()
    # imaplib gives the untagged FETCH responses in pieces: a (head, literal) pair and the text
    # after it, or a line. Dovecot may add other FETCH responses (UID n) before the one asked.
    responses = []
    for part in data:
        if isinstance(part, tuple):
            if responses and (part[0].startswith(b" ") or part[0].startswith(b")")):
                responses[-1] += part[0] + b"\r\n" + part[1]
            else:
                responses.append(part[0] + b"\r\n" + part[1])
        elif part is not None:
            if responses and (part.startswith(b")") or part.startswith(b" ")):
                responses[-1] += part
            else:
                responses.append(part)
    found = []
    for raw in responses:
        m = re.match(rb"^%d \((.*)\)$" % seq, raw, re.S)
        if not m:
            raise AssertionError("unexpected FETCH response %r" % raw)
        if not re.match(rb"^UID \d+$", m.group(1)):
            found.append(m.group(1))
    if len(found) != 1:
        raise AssertionError("FETCH responses %r" % responses)
    return found[0]


def cmail_items(path, items):
    """cmail's text of each item for the message file, by the dump tool's frames."""
    out = subprocess.run([DUMP, path] + items, capture_output=True, timeout=20, check=True).stdout
    result, at = [], 0
    while at < len(out):
        nl = out.index(b"\n", at)
        head = out[at:nl].decode()
        at = nl + 1
        if head.startswith("OK "):
            n = int(head[3:])
            result.append(out[at:at + n])
            at += n
        elif head.startswith("NO "):
            result.append(head.encode())
        else:
            raise AssertionError("dump tool: " + head)
    assert len(result) == len(items), (result, items)
    return result


# A reader of IMAP values, to compare structures element by element.
def parse_values(data):
    pos = 0

    def value():
        nonlocal pos
        c = data[pos:pos + 1]
        if c == b"(":
            pos += 1
            items = []
            while data[pos:pos + 1] != b")":
                if data[pos:pos + 1] == b" ":
                    pos += 1
                    continue
                items.append(value())
            pos += 1
            return items
        if c == b'"':
            pos += 1
            s = b""
            while data[pos:pos + 1] != b'"':
                if data[pos:pos + 1] == b"\\":
                    pos += 1
                s += data[pos:pos + 1]
                pos += 1
            pos += 1
            return s
        if c in (b"{", b"~"):
            m = re.match(rb"~?\{(\d+)\}\r\n", data[pos:])
            n = int(m.group(1))
            pos += m.end()
            s = data[pos:pos + n]
            pos += n
            return s
        m = re.match(rb"[^ ()]+", data[pos:])
        pos += m.end()
        tok = m.group(0)
        return None if tok.upper() == b"NIL" else tok

    out = []
    while pos < len(data):
        if data[pos:pos + 1] == b" ":
            pos += 1
            continue
        out.append(value())
    return out


def lower(v):
    return v.lower() if isinstance(v, bytes) else v


def decode_2231(params):
    """Dovecot's parameters with RFC 2231 extended values decoded, the first of a name kept."""
    import urllib.parse
    out, seen = [], set()
    for i in range(0, len(params), 2):
        name, value = params[i], params[i + 1]
        if name.endswith(b"*") and value.count(b"'") >= 2:
            charset, _, rest = value.split(b"'", 2)
            name = name[:-1]
            value = urllib.parse.unquote_to_bytes(rest).decode(charset.decode() or "us-ascii").encode("utf-8")
        if name.lower() not in seen:
            seen.add(name.lower())
            out += [name, value]
    return out


def compare_params(a, b, tags, where):
    if "rfc2231" in tags and isinstance(b, list):
        b = decode_2231(b)
    if "case" in tags and isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        # names (even places) without case; values as they are but for the charset's
        for i in range(len(a)):
            x, y = (lower(a[i]), lower(b[i])) if i % 2 == 0 or lower(a[i - 1]) == b"charset" else (a[i], b[i])
            if x != y:
                return "%s: parameter %r != %r" % (where, a, b)
        return None
    return None if a == b else "%s: parameters %r != %r" % (where, a, b)


def compare_body(ours, theirs, tags, where="body"):
    """None when equal up to the tags' differences, else a description."""
    if not isinstance(ours, list) or not isinstance(theirs, list):
        return None if ours == theirs else "%s: %r != %r" % (where, ours, theirs)
    if "leaf-multipart" in tags and ours and lower(ours[0]) == b"multipart" and theirs and isinstance(theirs[0], list):
        subtype = [x for x in theirs if not isinstance(x, list)][0]
        return None if lower(ours[1]) == lower(subtype) else "%s: %r against %r" % (where, ours, theirs)
    if ours and isinstance(ours[0], list):  # multipart
        if not (theirs and isinstance(theirs[0], list)):
            return "%s: multipart against %r" % (where, theirs)
        n = sum(1 for x in ours if isinstance(x, list))
        m = sum(1 for x in theirs if isinstance(x, list))
        if n != m:
            return "%s: %d parts against %d" % (where, n, m)
        for i in range(n):
            d = compare_body(ours[i], theirs[i], tags, "%s.%d" % (where, i + 1))
            if d:
                return d
        rest_o, rest_t = ours[n:], theirs[n:]
        if len(rest_o) != len(rest_t):
            return "%s: extension %r != %r" % (where, rest_o, rest_t)
        if (lower(rest_o[0]) if "case" in tags else rest_o[0]) != (lower(rest_t[0]) if "case" in tags else rest_t[0]):
            return "%s: subtype %r != %r" % (where, rest_o[0], rest_t[0])
        if len(rest_o) > 1:
            d = compare_params(rest_o[1], rest_t[1], tags, where)
            if d:
                return d
            if rest_o[2:] != rest_t[2:]:
                return "%s: extension %r != %r" % (where, rest_o[2:], rest_t[2:])
        return None
    if len(ours) != len(theirs):
        return "%s: %r != %r" % (where, ours, theirs)
    is_text = lower(ours[0]) == b"text"
    is_msg = lower(ours[0]) == b"message" and len(ours) > 9 and isinstance(ours[8], list)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if i in (0, 1) and "case" in tags:
            a, b = lower(a), lower(b)
        if i == 6 and is_msg and "multipart-end" in tags and a.isdigit() and b.isdigit() and int(a) + 2 == int(b):
            continue
        if i == 8 and not is_text and not is_msg and isinstance(a, list) and isinstance(b, list) and len(a) == 2:
            d = compare_params(a[1], b[1], tags, where)  # body-fld-dsp of a basic part
            if d or a[0] != b[0]:
                return d or "%s: disposition %r != %r" % (where, a, b)
            continue
        if i == 2:
            d = compare_params(a, b, tags, where)
            if d:
                return d
            continue
        if is_msg and i == 8:
            d = compare_body(a, b, tags, where + ".msg")
            if d:
                return d
            continue
        if ((is_text and i == 7) or (is_msg and i == 9)) and "lines" in tags and a.isdigit() and b.isdigit():
            if int(a) in (int(b), int(b) + 1):
                continue
        if a != b:
            return "%s[%d]: %r != %r (ours %r, Dovecot %r)" % (where, i, a, b, ours, theirs)
    return None


def literal_of(text):
    m = re.match(rb"^(\S+(?: \([^)]*\))?\]?(?:<\d+>)?) (~?)\{(\d+)\}\r\n(.*)$", text, re.S)
    return (m.group(1), m.group(2) == b"~", m.group(4)) if m else None


def documented(item, mine, theirs, tags):
    """Whether cmail's `mine` and Dovecot's `theirs` differ only as the tags allow."""
    if item in ("BODYSTRUCTURE", "BODY"):
        return compare_body(parse_values(mine)[1], parse_values(theirs)[1], tags)
    binary = item.startswith("BINARY")
    part1 = re.match(r"^[A-Z.]+\[1[].]", item) is not None
    if binary and "bad-base64" in tags and theirs == b"NO PARSE":
        return None
    if binary and "binary-container" in tags and theirs == b"NO UNKNOWN-CTE" and mine.startswith(b"BINARY"):
        return None
    if "leaf-multipart" in tags and part1 and item.startswith("BINARY.SIZE") and theirs.endswith(b" 0"):
        return None
    a, b = literal_of(mine), literal_of(theirs)
    if a and b and a[0] == b[0]:
        if binary and not a[1] and b[1] and a[2] == b[2] and b"\0" not in a[2]:
            return None  # literal8
        if "multipart-end" in tags and b[2] == a[2] + b"\r\n":
            return None
        if "leaf-multipart" in tags and part1 and b[2] == b"" and a[2] != b"":
            return None
    return "\n  cmail   %r\n  Dovecot %r" % (mine[:300], theirs[:300])


def to_crlf(data):
    return re.sub(rb"\r?\n", b"\r\n", data)


class DovecotComparison(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cmail-dovecot-")
        os.chmod(cls.tmp, 0o755)  # the mail user may be another (Dovecot below)
        cls.files = []
        for i, (name, data, tags, _) in enumerate(MESSAGES):
            path = os.path.join(cls.tmp, "%02d-%s.eml" % (i + 1, name))
            with open(path, "wb") as f:
                f.write(to_crlf(data) if "lf" in tags else data)
            cls.files.append(path)
        cls.dovecot = None
        try:
            cls.dovecot = Dovecot(os.path.join(cls.tmp, "dovecot"), [m[1] for m in MESSAGES])
            cls.im = imaplib.IMAP4("127.0.0.1", cls.dovecot.port, timeout=10)
            cls.im.login("test", "pw")
            typ, data = cls.im.select("INBOX", readonly=True)
            assert typ == "OK" and int(data[0]) == len(MESSAGES), (data, cls.dovecot.log())
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if getattr(cls, "im", None) is not None:
                try:
                    cls.im.logout()
                except Exception:
                    pass
        finally:
            if cls.dovecot is not None:
                cls.dovecot.stop()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_differences_are_documented(self):
        docs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "imap-fetch.md")
        with open(docs) as f:
            text = f.read()
        for tag in DIFFERENCES:
            self.assertIn("`%s`" % tag, text, "difference %s not in docs/imap-fetch.md" % tag)
        for _, _, tags, _ in MESSAGES:
            self.assertTrue(tags <= DIFFERENCES.keys())

    def test_items_match_dovecot(self):
        failures = []
        for seq, ((name, data, tags, extra), path) in enumerate(zip(MESSAGES, self.files), 1):
            items = ITEMS + extra
            ours = cmail_items(path, items)
            for item, mine in zip(items, ours):
                theirs = dovecot_item(self.im, seq, item)
                if mine == theirs:
                    continue
                d = documented(item, mine, theirs, tags | GLOBAL)
                if d is not None:
                    failures.append("%s %s: %s" % (name, item, d))
        self.assertEqual(failures, [], "\n".join(failures))

    def test_bare_lf_served_as_stored(self):
        for i, (name, data, tags, _) in enumerate(MESSAGES):
            if "lf" not in tags:
                continue
            path = os.path.join(self.tmp, "raw-%d.eml" % i)
            with open(path, "wb") as f:
                f.write(data)
            body, size = cmail_items(path, ["BODY.PEEK[]", "RFC822.SIZE"])
            self.assertEqual(body, b"BODY[] {%d}\r\n" % len(data) + data)
            self.assertEqual(size, b"RFC822.SIZE %d" % len(data))


if __name__ == "__main__":
    start = time.monotonic()
    result = unittest.main(exit=False, verbosity=2).result
    print("%.1f s" % (time.monotonic() - start))
    sys.exit(0 if result.wasSuccessful() else 1)
