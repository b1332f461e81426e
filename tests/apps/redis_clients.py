#!/usr/bin/env python3
"""N redis connections issuing commands without pause until a stop file appears.

Each connection INCRs its own key and checks the answer is the previous one plus one,
so a lost, duplicated or misrouted command shows as a failure; any socket error ends
that connection and counts as a failure too. Prints one JSON line: ops, failures,
connections still alive, and the first errors.
Usage: redis_clients.py HOST PORT CONNS STOPFILE MAXSECONDS
"""
import json
import os
import socket
import sys
import time

host, port, conns, stopfile, maxsecs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])


def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def read_line(s, buf):
    while b"\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        buf += chunk
    line, _, rest = buf.partition(b"\r\n")
    return line, rest


socks, bufs, counts, keys = [], [], [], []
errors = []
for i in range(conns):
    s = socket.create_connection((host, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = "bgsave-test-%d-%d" % (os.getpid(), i)
    s.sendall(cmd("SET", key, 0))
    line, rest = read_line(s, b"")
    if line != b"+OK":
        raise SystemExit("SET answered %r" % line)
    socks.append(s); bufs.append(rest); counts.append(0); keys.append(key)

print("connected", flush=True)
ops = failures = 0
alive = [True] * conns
deadline = time.time() + maxsecs
while not os.path.exists(stopfile) and time.time() < deadline:
    for i, s in enumerate(socks):
        if not alive[i]:
            continue
        try:
            s.sendall(cmd("INCR", keys[i]))
            line, bufs[i] = read_line(s, bufs[i])
            want = counts[i] + 1
            if line != b":%d" % want:
                failures += 1
                errors.append("conn %d: INCR answered %r, expected %d" % (i, line, want))
                alive[i] = False
                continue
            counts[i] = want
            ops += 1
        except (OSError, ConnectionError) as e:
            failures += 1
            alive[i] = False
            errors.append("conn %d after %d commands: %s" % (i, counts[i], e))
for s in socks:
    s.close()
print(json.dumps({"ops": ops, "failures": failures, "alive": sum(alive), "errors": errors[:5]}), flush=True)
