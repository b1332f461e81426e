#!/usr/bin/env python3
"""Opens TOTAL connections to HOST:PORT in batches of BATCH: every connection of a
batch is opened, sends one request and reads its answer, the batch stays open for HOLD
seconds (so that snapshots of `ss` see it established), then all are closed.
PROTO: http (GET /, expects "HTTP/1.1 200"), http-close (the same with Connection: close:
the server closes first, so these connections leave no TIME-WAIT here) or memcached
("version", expects "VERSION").
Prints how many connections failed, and why; exit status 1 if any did.
usage: conn_batches.py HOST PORT PROTO TOTAL BATCH [HOLD]"""
import socket
import sys
import time

host, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
total, batch = int(sys.argv[4]), int(sys.argv[5])
hold = float(sys.argv[6]) if len(sys.argv) > 6 else 0.2
REQ = {"http": (b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", b"HTTP/1.1 200"),
       "http-close": (b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", b"HTTP/1.1 200"),
       "memcached": (b"version\r\n", b"VERSION ")}[proto]

failed, reasons, done = 0, {}, 0


def bad(why):
    global failed
    failed += 1
    reasons[why] = reasons.get(why, 0) + 1


start = time.monotonic()
while done < total:
    n = min(batch, total - done)
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect((host, port))
            s.sendall(REQ[0])
            socks.append(s)
        except OSError as e:
            bad("connect/send: %s" % e.__class__.__name__)
            s.close()
    for s in socks:
        got = b""
        try:
            while len(got) < len(REQ[1]):
                part = s.recv(4096)
                if not part:
                    break
                got += part
            if not got.startswith(REQ[1]):
                bad("answer %r" % got[:20])
        except OSError as e:
            bad("recv: %s" % e.__class__.__name__)
    time.sleep(hold)
    for s in socks:
        s.close()
    done += n
print("%d connections in %.1f s, %d failed %s" % (total, time.monotonic() - start, failed,
                                                  reasons if reasons else ""))
sys.exit(1 if failed else 0)
