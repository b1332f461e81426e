#!/usr/bin/python3
"""Both ends of the sleeping-thread case.
server PORT TIMES: accept one connection, send DOWN bytes (sendall returns once the
  last of them are in the socket buffer), then sleep 5 s without calling into the socket
  layer (TIMES.start marks its start), writing the sleep's start and end (wall clock) to
  TIMES; then read to EOF and answer
  with the SHA-256 of what it read (then stays up 10 s for fastnet-stat).
client HOST PORT GO: read the DOWN bytes with a small receive buffer, pausing PAUSE bytes
  before the end until the file GO exists (the test creates it once the server sleeps and
  its retransmit counter is read), so the last PAUSE bytes travel while the server sleeps:
  only fastnet's progress can send and retransmit them. Then send UP bytes, sampling
  TCP_INFO's bytes_acked every 50 ms; finally compare the server's SHA-256.
  Prints "down_done=T up_done=T acked=[(t, bytes) ...]" as JSON."""
import hashlib, json, os, socket, struct, sys, time

DOWN = bytes((i * 7 + 3) & 0xff for i in range(1 << 20))
PAUSE = 300 * 1024   # <= the server's 256 KB send buffer + the client's window
UP = bytes((i * 13 + 1) & 0xff for i in range(1 << 20)) * 16


def server(port, times):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("0.0.0.0", port))
    l.listen(4)
    c, _ = l.accept()
    c.sendall(DOWN)
    t0 = time.time()
    open(times + ".start", "w").close()
    time.sleep(5)
    t1 = time.time()
    with open(times, "w") as f:
        json.dump({"sleep_start": t0, "sleep_end": t1}, f)
    h = hashlib.sha256()
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        h.update(b)
    c.sendall(h.hexdigest().encode())
    c.close()
    time.sleep(10)   # stays up for fastnet-stat; the test stops it


def bytes_acked(s):
    ti = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return struct.unpack_from("Q", ti, 120)[0]   # tcpi_bytes_acked


def client(host, port, go):
    s = socket.socket()
    # A small window keeps most of the paused tail in the server's send buffer.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    s.settimeout(30)
    s.connect((host, port))
    got = b""
    paused = False
    while len(got) < len(DOWN):
        if not paused and len(got) >= len(DOWN) - PAUSE:
            paused = True
            deadline = time.time() + 20
            while not os.path.exists(go) and time.time() < deadline:
                time.sleep(0.01)
        b = s.recv(min(1 << 16, len(DOWN) - PAUSE - len(got)) if not paused else 1 << 16)
        if not b:
            break
        got += b
    down_done = time.time()
    if got != DOWN:
        print(json.dumps({"error": f"download: {len(got)} bytes, content differs"}))
        sys.exit(1)
    s.setblocking(False)
    acked, off, last = [], 0, 0.0
    while off < len(UP):
        try:
            off += s.send(UP[off:off + (1 << 16)])
        except BlockingIOError:
            time.sleep(0.005)
        if time.time() - last >= 0.05:
            last = time.time()
            acked.append((last, bytes_acked(s)))
        if time.time() - down_done > 60:
            print(json.dumps({"error": "upload stalled"}))
            sys.exit(1)
    s.setblocking(True)
    s.shutdown(socket.SHUT_WR)
    answer = b""
    while True:
        b = s.recv(256)
        if not b:
            break
        answer += b
    up_done = time.time()
    ok = answer.decode() == hashlib.sha256(UP).hexdigest()
    print(json.dumps({"down_done": down_done, "up_done": up_done, "sha_ok": ok, "acked": acked}))
    sys.exit(0 if ok else 1)


if sys.argv[1] == "server":
    server(int(sys.argv[2]), sys.argv[3])
else:
    client(sys.argv[2], int(sys.argv[3]), sys.argv[4])
