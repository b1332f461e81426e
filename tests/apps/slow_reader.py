#!/usr/bin/env python3
"""Connects, reads at about RATE bytes/s (0: as fast as it can) until EOF, stopping for
PAUSE seconds once PAUSE_AT bytes are in; prints bytes, sha256 and how it ended.
Usage: slow_reader.py HOST PORT RATE TIMEOUT [PAUSE_AT PAUSE]
"""
import hashlib
import json
import socket
import sys
import time

host, port, rate, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
pause_at = int(sys.argv[5]) if len(sys.argv) > 5 else -1
pause = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
# A small receive buffer, set before the handshake: the window stays small, so what the
# reader has not taken stays with the sender.
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
s.settimeout(timeout)
s.connect((host, port))
h = hashlib.sha256()
n = 0
end = "eof"
start = time.time()
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
        if 0 <= pause_at <= n:
            pause_at = -1
            time.sleep(pause)
            start = time.time() - n / rate if rate else start
        # Pace: no faster than RATE on average.
        ahead = n / rate - (time.time() - start) if rate else 0
        if ahead > 0:
            time.sleep(min(ahead, 0.5))
except OSError as e:
    end = "error: %s" % e
print(json.dumps({"bytes": n, "sha256": h.hexdigest(), "end": end}), flush=True)
