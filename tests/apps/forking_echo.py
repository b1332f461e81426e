"""Echo server and client for forking_server.sh.

server PORT: a socketserver.ForkingTCPServer; the parent accepts, forks and closes its
copy of the connection; the child echoes until the peer closes, then exits (os._exit).
client HOST PORT ROUNDS: sends ROUNDS messages of 1 to 64 KiB, checks each echo byte for
byte; halfway it says "paused" and waits 2 s with the connection open (the test reads
the child's counters then). Prints "ok N bytes" or exits non-zero."""
import os
import random
import socket
import socketserver
import sys
import time


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


def server(port):
    socketserver.ForkingTCPServer.allow_reuse_address = True
    with socketserver.ForkingTCPServer(("0.0.0.0", port), Echo) as srv:
        srv.serve_forever()


def client(host, port, rounds):
    rng = random.Random(7)
    s = socket.create_connection((host, port), timeout=20)
    total = 0
    for i in range(rounds):
        if i == rounds // 2:
            print("paused", flush=True)
            time.sleep(2)
        msg = os.urandom(rng.randint(1, 65536))
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            part = s.recv(len(msg) - len(got))
            if not part:
                sys.exit(f"round {i}: connection closed after {len(got)} of {len(msg)} bytes")
            got += part
        if got != msg:
            sys.exit(f"round {i}: echo differs")
        total += len(msg)
    s.shutdown(socket.SHUT_WR)
    if s.recv(1) != b"":
        sys.exit("data after the end")
    s.close()
    print(f"ok {total} bytes", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]))
    else:
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
