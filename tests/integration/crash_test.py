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
"""
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

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

def main():
    child = sys.argv[1]
    rng = random.Random(int(os.environ.get("CRASH_SEED", "0")) or None)
    with tempfile.TemporaryDirectory() as tmp:
        db_path = os.path.join(tmp, "master.db3")
        # Create the database (the child's deliveries fail until the users exist), then users.
        p = subprocess.Popen([child, db_path], stdout=subprocess.PIPE)
        time.sleep(0.3)
        p.kill(); p.wait()
        db = sqlite3.connect(db_path)
        db.executemany("INSERT OR IGNORE INTO users (user_name) VALUES (?)", [("u1",), ("u2",), ("u3",)])
        db.commit(); db.close()

        total_acked = 0
        for round_ in range(6):
            p = subprocess.Popen([child, db_path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(rng.uniform(0.4, 1.5))
            os.kill(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            acked = [line for line in out.decode().splitlines() if line]
            assert p.returncode == -signal.SIGKILL, (p.returncode, err)
            assert acked, f"round {round_}: child acknowledged nothing: {err.decode()}"
            messages, rows = check(db_path, acked)
            total_acked += len(acked)
            print(f"round {round_}: killed after {len(acked)} acknowledged; "
                  f"{messages} messages ({rows} mailbox rows) intact")
        print(f"ok: {total_acked} acknowledged messages, all present after 6 kills")

if __name__ == "__main__":
    main()
