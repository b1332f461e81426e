#!/usr/bin/python3
"""The legitimate kernel-side conversation that must survive every attack: one TCP
connection to an echo server, paced sending of seeded random bytes while reading the echo,
until --seconds pass or --stop-file appears; then it checks the echo byte-exact (sha256).
Prints "legit bytes=N sha_ok=1 rounds=R"; exit 1 on any mismatch, reset or stall."""
import argparse, hashlib, os, random, socket, sys, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("--connect", required=True)
ap.add_argument("--seconds", type=float, default=30)
ap.add_argument("--stop-file", default="")
ap.add_argument("--rate", type=int, default=2_000_000, help="bytes per second")
ap.add_argument("--port-file", default="", help="write the local port here once connected")
a = ap.parse_args()
host, port = a.connect.rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=10)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
if a.port_file:
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(s.getsockname()[1]))
    os.rename(a.port_file + ".tmp", a.port_file)
rng = random.Random(5961)
sent_hash, recv_hash = hashlib.sha256(), hashlib.sha256()
sent = 0
received = [0]
err = []


def reader():
    try:
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            recv_hash.update(chunk)
            received[0] += len(chunk)
    except OSError as e:
        err.append(e)


t = threading.Thread(target=reader)
t.start()
t0 = time.monotonic()
chunk_len = 16384
try:
    while time.monotonic() - t0 < a.seconds and not (a.stop_file and os.path.exists(a.stop_file)):
        buf = rng.randbytes(chunk_len)
        s.sendall(buf)
        sent_hash.update(buf)
        sent += len(buf)
        ahead = sent / a.rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    s.shutdown(socket.SHUT_WR)
except OSError as e:
    err.append(e)
t.join(timeout=30)
ok = not err and not t.is_alive() and received[0] == sent and sent_hash.digest() == recv_hash.digest()
print(f"legit bytes_sent={sent} bytes_echoed={received[0]} sha_ok={int(ok)} "
      f"bytes_lost={sent - received[0]} seconds={time.monotonic() - t0:.1f}"
      + (f" error={err[0]!r}" if err else "") + (" reader_hung=1" if t.is_alive() else ""))
sys.exit(0 if ok else 1)
