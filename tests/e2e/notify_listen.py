"""A stand-in for systemd's side of sd_notify(3), for test_reload.sh.

    notify_listen.py SOCKET LOG [HOST:PORT ...]

Binds a unix datagram socket at SOCKET (the daemon's NOTIFY_SOCKET) and
appends each datagram it receives to LOG as one line, its assignments
separated by spaces. At the first READY=1 it first connects to every
HOST:PORT and writes "accept HOST:PORT yes" or "accept HOST:PORT no" before
the READY line: the daemon must say it is ready only once its listeners
take connections. Runs until killed.
"""
import os
import socket
import sys

path, log = sys.argv[1], sys.argv[2]
targets = sys.argv[3:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
if os.path.exists(path):
    os.unlink(path)
s.bind(path)
os.chmod(path, 0o666)
ready_seen = False
with open(log, "a", buffering=1) as out:
    out.write("listening\n")
    while True:
        data = s.recv(4096).decode("utf-8", "replace")
        if "READY=1" in data.split("\n") and not ready_seen:
            ready_seen = True
            for t in targets:
                host, port = t.rsplit(":", 1)
                try:
                    socket.create_connection((host, int(port)), 1).close()
                    out.write("accept %s yes\n" % t)
                except OSError:
                    out.write("accept %s no\n" % t)
        out.write(data.replace("\n", " ").strip() + "\n")
