#!/usr/bin/python3
"""The README's quick start, run as written: `cmail serve --data data`, then the command blocks
from "In another terminal" to the dispatchd paragraph, in bash without a terminal (stdin is /dev/null), so nothing in it
may prompt.

Usage: readme_test.py BUILD_DIR

The only changes made to the commands: the listener ports (the README shows cmail serve's
defaults; the test binds free ports) and the build directory (a link named `build`). Outbound
DNS comes from tests/dns_server.py, which fails every lookup (SERVFAIL), so the mail for
example.org waits in the queue with the reason.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import harness
from harness import read_ports, stop_daemon, wait_for

BUILD = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else "build")
CMAIL = os.path.join(BUILD, "frontends", "cmail", "cmail")
HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "..", "..", "README.md")
DNS_SERVER = os.path.join(HERE, "..", "dns_server.py")
DEFAULT_PORTS = {"smtp": 2525, "submission": 2587, "smtps": 2465, "pop3": 2110, "pop3s": 2995, "imap": 2143, "imaps": 2993}


def quick_start():
    """(the block of listener lines, [the shell blocks after "In another terminal"])."""
    with open(README) as f:
        text = f.read()
    section = text[text.index("## Quick start"):]
    section = section[:section.index("\n## ", 1)]
    listeners = re.search(r"prints one line per listener.*?\n```\n(.*?)```", section, re.S).group(1)
    rest = section[section.index("In another terminal"):section.index("`cmail-dispatchd dispatchd.conf`")]
    blocks = re.findall(r"```sh\n(.*?)```", rest, re.S)
    return listeners, [b for b in blocks if "$a " in b]


class ReadmeTest(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="cmail-readme-")
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        os.symlink(BUILD, os.path.join(self.tmp, "build"))
        zone = os.path.join(self.tmp, "zone.json")
        with open(zone, "w") as f:
            f.write('{"example.org": "SERVFAIL"}')
        self.dns = subprocess.Popen(["/usr/bin/python3", DNS_SERVER, zone, "--lifetime", "120"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(stop_daemon, self.dns)
        resolver = self.dns.stdout.readline().split()[1]
        args = [CMAIL, "serve", "--data", "data", "--resolver", resolver]
        for kind in DEFAULT_PORTS:
            args += [f"--{kind}-port", "0"]
        self.serve = subprocess.Popen(args, cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(stop_daemon, self.serve)
        self.ports = read_ports(self.serve, len(DEFAULT_PORTS))
        self.assertEqual(sorted(self.ports), sorted(DEFAULT_PORTS))
        self.database_line = self.serve.stdout.readline().strip()

    def run_block(self, block):
        for kind, port in DEFAULT_PORTS.items():
            block = block.replace(f"127.0.0.1:{port}", f"127.0.0.1:{self.ports[kind][0]}")
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", self.prologue + block], cwd=self.tmp,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, f"{block}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}")
        return r.stdout

    def test_quick_start_as_written(self):
        listeners, blocks = quick_start()
        self.assertEqual(len(blocks), 2, blocks)
        # What cmail serve prints is what the README shows (but the ports).
        shown = [line.split()[0] for line in listeners.strip().splitlines()]
        self.assertEqual(shown, list(DEFAULT_PORTS) + ["database"])
        self.assertEqual(self.database_line, "database data/master.db3")
        # Every variable the first block sets, the second uses.
        self.prologue = "".join(line + "\n" for line in blocks[0].splitlines() if re.match(r"^\w+=", line))
        out = self.run_block(blocks[0])
        self.assertIn("250 2.0.0 OK queued as", out)  # swaks
        self.assertRegex(out, r"alice \|\s+1 \|\s+\|\s+1 \|\s+1 \|")  # user list: a password, an address, a mail
        self.assertIn("This is a test mailing", out)  # curl: RETR 1, swaks's default body
        self.assertIn('* LIST (\\HasNoChildren) "/" INBOX', out)  # curl: LIST over IMAP after STARTTLS
        # swaks shows the body it sends, curl POP3 RETR 1, and curl IMAP: SELECT INBOX, UID FETCH 1 BODY[].
        self.assertEqual(out.count("This is a test mailing"), 3)
        out = self.run_block(blocks[1].replace("queue show 1", "queue show 1 >/dev/null; true"))
        self.assertIn("someone@example.org", out)  # queue list

        def attempted():  # the dispatcher tries at once and gets SERVFAIL
            r = subprocess.run(["bash", "-c", self.prologue + "$a -d $db queue show 1"], cwd=self.tmp,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
            return r.returncode == 0 and re.search(r"^Attempt at \d+ \(temporary\): .*DNS", r.stdout, re.M)
        shown = wait_for(attempted, 20)
        self.assertTrue(shown, "queue show never said why the mail waits")


if __name__ == "__main__":
    harness.main()
