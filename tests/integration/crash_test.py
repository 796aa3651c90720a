#!/usr/bin/python3
"""Kill a process in the middle of group commits and check what it leaves behind.

Usage: crash_test.py CRASH_CHILD_BINARY

The child delivers 64 KiB messages (3 local copies + 2 queue entries each) from 8 threads and
prints each message's ident after its commit was acknowledged. We SIGKILL it at random
moments, several times on the same file, and check after each kill that:
  - SQLite's integrity and foreign-key checks pass;
  - every acknowledged message is there, completely (nothing acknowledged is lost);
  - every message present is complete: 3 mailbox rows and 2 outbox rows, never a part;
  - UIDs are unique and below the folder's UIDNEXT.

The kill moments are random on purpose, from a seed that is printed first: CMAIL_TEST_SEED=N
(or the older CRASH_SEED) repeats the same delays. Each kill comes that long after the child's
first acknowledgement, so every round has something acknowledged to check, however slowly
the machine runs.
"""
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

from harness import wait_for


def check(db_path, acked):
    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    local = dict(db.execute("SELECT mail_ident, COUNT(*) FROM mailbox GROUP BY mail_ident"))
    queued = dict(db.execute("SELECT mail_queueid, COUNT(*) FROM outbox GROUP BY mail_queueid"))
    for ident in acked:
        assert local.get(ident) == 3, f"acknowledged {ident} has {local.get(ident)} local copies"
        assert queued.get(ident) == 2, f"acknowledged {ident} has {queued.get(ident)} queue rows"
    for ident, n in local.items():
        assert n == 3 and queued.get(ident) == 2, f"partial message {ident}: {n} local, {queued.get(ident)} queued"
    assert set(queued) == set(local), "queue rows without their local copies"
    bad = db.execute("""SELECT COUNT(*) FROM mailbox JOIN folders ON mail_folder = folder_id
                        WHERE mail_uid >= folder_uidnext""").fetchone()[0]
    assert bad == 0
    dup = db.execute("""SELECT COUNT(*) FROM (SELECT mail_folder, mail_uid FROM mailbox
                        GROUP BY 1, 2 HAVING COUNT(*) > 1)""").fetchone()[0]
    assert dup == 0
    n = db.execute("SELECT COUNT(*) FROM mailbox").fetchone()[0]
    db.close()
    return len(local), n

def has_users_table(db_path):
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            return db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'users'").fetchone()[0] == 1
        finally:
            db.close()
    except sqlite3.Error:
        return False


def first_line(pipe, timeout):
    """The first line the child prints (its first acknowledged ident), or None after `timeout`."""
    deadline = time.time() + timeout
    line = b""
    while not line.endswith(b"\n") and time.time() < deadline:
        ready, _, _ = select.select([pipe], [], [], max(0.0, deadline - time.time()))
        if not ready:
            break
        byte = os.read(pipe.fileno(), 1)  # unbuffered: the rest stays in the pipe for communicate()
        if not byte:
            break
        line += byte
    return line.decode().strip() if line.endswith(b"\n") else None


def main():
    child = sys.argv[1]
    seed_text = os.environ.get("CMAIL_TEST_SEED") or os.environ.get("CRASH_SEED")
    seed = int(seed_text, 0) if seed_text else random.SystemRandom().randrange(1 << 32)
    print(f"seed {seed} (CMAIL_TEST_SEED={seed} repeats these kill delays)", flush=True)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        db_path = os.path.join(tmp, "master.db3")
        # Create the database (the child's deliveries fail until the users exist), then users.
        p = subprocess.Popen([child, db_path], stdout=subprocess.PIPE)
        created = wait_for(lambda: has_users_table(db_path), 30)
        p.kill(); p.wait()
        assert created, f"crash-child did not create {db_path} (seed {seed})"
        db = sqlite3.connect(db_path)
        db.executemany("INSERT OR IGNORE INTO users (user_name) VALUES (?)", [("u1",), ("u2",), ("u3",)])
        db.commit(); db.close()

        total_acked = 0
        for round_ in range(6):
            delay = rng.uniform(0.05, 1.1)
            p = subprocess.Popen([child, db_path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            first = first_line(p.stdout, 60)
            if first is not None:
                time.sleep(delay)  # the random moment: mid-commit, mid-checkpoint, anywhere
            os.kill(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            acked = ([first] if first else []) + [line for line in out.decode().splitlines() if line]
            assert p.returncode == -signal.SIGKILL, (p.returncode, err, f"seed {seed}")
            assert acked, f"round {round_}: child acknowledged nothing within 60 s (seed {seed}): {err.decode()}"
            try:
                messages, rows = check(db_path, acked)
            except AssertionError as e:
                raise AssertionError(f"round {round_}, killed {delay:.3f} s after the first acknowledgement "
                                     f"(rerun with CMAIL_TEST_SEED={seed}): {e}") from e
            total_acked += len(acked)
            print(f"round {round_}: killed after {len(acked)} acknowledged; "
                  f"{messages} messages ({rows} mailbox rows) intact")
        print(f"ok: {total_acked} acknowledged messages, all present after 6 kills")

if __name__ == "__main__":
    main()
