#!/usr/bin/python3
"""The exec case, both sides.
peer PORT OUT: (kernel, client namespace) accepts 3 connections; for each records its
  first bytes and the seconds from the moment "exec" was announced on connection A until
  its EOF; writes JSON to OUT.
app HOST PORT: (preloaded, server namespace) opens A (close-on-exec, Python's default) and
  B (inheritable), sends "A"/"B", then execs itself as `child`, which reports whether A's
  fd number survived, LD_PRELOAD and B's local port, then opens C through the new image's
  fastnet and sends "C" + the report, and writes "b after exec" on B, which survived the
  exec (the kernel continues it: a standalone process image cannot join its old UMEM);
  it stays up 10 s for fastnet-stat."""
import json, os, socket, sys, time


def peer(port, out):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("0.0.0.0", port))
    l.listen(8)
    l.settimeout(30)
    res = {}
    conns = []
    for _ in range(2):
        c, _ = l.accept()
        c.settimeout(30)
        tag = c.recv(1).decode()
        conns.append((tag, c))
    a = dict(conns)["A"]
    # A's EOF: sent by fastnet before the exec (the app writes "x" just before exec).
    a.settimeout(10)
    got = a.recv(1)
    t0 = time.monotonic()
    eof = a.recv(16)
    res["a_eof_after_s"] = time.monotonic() - t0 if eof == b"" else None
    c, _ = l.accept()
    c.settimeout(30)
    data = b""
    while not data.endswith(b"\n"):
        b = c.recv(4096)
        if not b:
            break
        data += b
    res["c"] = data.decode()
    b = dict(conns)["B"]
    b.settimeout(10)
    got = b""
    try:
        while not got.endswith(b"\n"):
            x = b.recv(4096)
            if not x:
                break
            got += x
    except OSError as e:
        got += repr(e).encode()
    res["b"] = got.decode(errors="replace")
    json.dump(res, open(out, "w"))


def app(host, port):
    a = socket.create_connection((host, port))
    b = socket.create_connection((host, port))
    os.set_inheritable(b.fileno(), True)
    a.sendall(b"A")
    b.sendall(b"B")
    time.sleep(0.3)
    a.sendall(b"x")
    os.execv(sys.executable, [sys.executable, __file__, "child", host, str(port), str(a.fileno()),
                              str(b.fileno())])


def child(host, port, a_fd, b_fd):
    a_alive = os.path.exists(f"/proc/self/fd/{a_fd}")
    b = socket.socket(fileno=b_fd)
    c = socket.create_connection((host, port))
    c.sendall(b"C" + json.dumps({"a_fd_open": a_alive, "b_port": b.getsockname()[1],
                                 "ld_preload": "libfastnet" in os.environ.get("LD_PRELOAD", "")}).encode() + b"\n")
    b.sendall(b"b after exec\n")
    time.sleep(10)


if sys.argv[1] == "peer":
    peer(int(sys.argv[2]), sys.argv[3])
elif sys.argv[1] == "app":
    app(sys.argv[2], int(sys.argv[3]))
else:
    child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
