#!/usr/bin/env python3
"""Connects, reads at about RATE bytes/s until EOF, prints bytes, sha256 and how it ended.
Usage: slow_reader.py HOST PORT RATE TIMEOUT
"""
import hashlib
import json
import socket
import sys
import time

host, port, rate, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
s = socket.create_connection((host, port), timeout=timeout)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
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
        # Pace: no faster than RATE on average.
        ahead = n / rate - (time.time() - start)
        if ahead > 0:
            time.sleep(min(ahead, 0.5))
except OSError as e:
    end = "error: %s" % e
print(json.dumps({"bytes": n, "sha256": h.hexdigest(), "end": end}), flush=True)
