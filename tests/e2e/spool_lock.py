"""Holds the spool's SQLite write lock until told to let go, so that the
daemon's writer jobs queue up behind it in an order the test chooses.

    spool_lock.py DATA_DIR/spool.db

Prints "locked" once BEGIN IMMEDIATE holds the lock, then waits for a line
on stdin (or its end), rolls back and prints "released"."""
import sqlite3
import sys

con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
con.execute("ROLLBACK")
con.close()
print("released", flush=True)
