#!/usr/bin/env python3
"""Connections that leave the process that accepted them (tests/apps/passing.sh).

server PORT N DONE      accepts N connections, reads nothing, and passes each with
                        SCM_RIGHTS to a worker it spawned (fork + exec of this script),
                        closing its own copy; exits when the worker has.
worker SOCKFD N DONE    receives N connections over SOCKFD and serves each (a thread per
                        connection); then waits for the file DONE (the test reads the
                        counters meanwhile) and exits.
execsrv PORT DONE KEEP  accepts one connection, reads its 32-byte header and execs this
                        script (execd) with the socket kept open (no close-on-exec);
                        KEEP=0 removes LD_PRELOAD from the new image's environment.
execd FD DONE           the exec'd image: serves the connection on FD.
client HOST PORT N SIZE N concurrent kernel connections; each sends a 32-byte header and
                        64 KiB, gets SIZE bytes back and checks both sides' digests.
"""
import hashlib
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time

PAYLOAD = 64 * 1024


def blob(seed, size):
    return random.Random(seed).randbytes(size)


def recv_exact(s, n):
    out = bytearray()
    while len(out) < n:
        b = s.recv(n - len(out))
        if not b:
            raise EOFError(f"EOF after {len(out)} of {n} bytes")
        out += b
    return bytes(out)


def wait_file(path, limit=60):
    end = time.time() + limit
    while not os.path.exists(path) and time.time() < end:
        time.sleep(0.05)


def serve(conn, header=None):
    """Reads the header (unless given) and the payload, answers with the digest of the
    payload and SIZE bytes of the seed's blob, then closes."""
    if header is None:
        header = recv_exact(conn, 32)
    size, seed = struct.unpack("!QQ16x", header)
    payload = recv_exact(conn, PAYLOAD)
    conn.sendall(hashlib.sha1(payload).digest())
    conn.sendall(blob(seed, size))
    conn.close()


def server(port, n, done):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(64)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    w = subprocess.Popen([sys.executable, __file__, "worker", str(b.fileno()), str(n), done],
                         pass_fds=(b.fileno(),))
    b.close()
    for _ in range(n):
        c, _ = ls.accept()
        socket.send_fds(a, [b"c"], [c.fileno()])
        c.close()
    print("passed", n, flush=True)
    sys.exit(w.wait())


def worker(fd, n, done):
    ch = socket.socket(fileno=fd)
    threads = []
    for _ in range(n):
        msg, fds, _, _ = socket.recv_fds(ch, 1, 1)
        if not fds:
            print("FAIL: no descriptor", flush=True)
            sys.exit(1)
        t = threading.Thread(target=serve, args=(socket.socket(fileno=fds[0]),))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    print("served", n, flush=True)
    wait_file(done)


def execsrv(port, done, keep):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(8)
    c, _ = ls.accept()
    header = recv_exact(c, 32)
    with open(done + ".header", "wb") as f:
        f.write(header)
    fd = c.detach()
    os.set_inheritable(fd, True)
    env = dict(os.environ)
    if keep == "0":
        env.pop("LD_PRELOAD", None)
    os.execve(sys.executable, [sys.executable, __file__, "execd", str(fd), done], env)


def execd(fd, done):
    with open(done + ".header", "rb") as f:
        header = f.read()
    serve(socket.socket(fileno=fd), header)
    print("served 1 after exec", flush=True)
    wait_file(done)


def client(host, port, n, size):
    errors = []

    def one(i):
        try:
            seed = 1000 + i
            s = socket.create_connection((host, port), timeout=60)
            payload = blob(seed * 7, PAYLOAD)
            s.sendall(struct.pack("!QQ16x", size, seed) + payload)
            digest = recv_exact(s, 20)
            if digest != hashlib.sha1(payload).digest():
                errors.append(f"connection {i}: the server's digest of the payload is wrong")
            got = bytearray()
            while True:
                b = s.recv(1 << 16)
                if not b:
                    break
                got += b
            if len(got) != size or hashlib.sha1(got).digest() != hashlib.sha1(blob(seed, size)).digest():
                errors.append(f"connection {i}: {len(got)} of {size} bytes, digest mismatch")
            s.close()
        except Exception as e:
            errors.append(f"connection {i}: {e!r}")

    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for e in errors:
        print("FAIL:", e, flush=True)
    if errors:
        sys.exit(1)
    print(f"ok {n} connections, {size} bytes each, byte-exact", flush=True)


if __name__ == "__main__":
    m = sys.argv[1]
    if m == "server":
        server(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif m == "worker":
        worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif m == "execsrv":
        execsrv(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif m == "execd":
        execd(int(sys.argv[2]), sys.argv[3])
    elif m == "client":
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit("unknown mode " + m)
