"""Server and client for killed_holder.sh: a forked child that holds a connection is
killed with SIGKILL; the connection must still close when its last live holder does.

server PORT MODE: accepts one connection per MODE word (comma-separated), forks a child
that sleeps holding the connection (it never touches it), sends "m" (the marker) and:
  kill-close: kills the child (left a zombie: not waited for), then closes its copy;
  close-kill: closes its copy (the child still holds it: no FIN yet), 0.5 s later
              kills the child.
It prints the child's pid per connection and waits for the children at the end.
client HOST PORT: connects, reads the marker, then waits up to 4 s for the end of the
stream; prints "eof S" (seconds from the marker to the FIN) or "timeout"/"reset"."""
import os
import signal
import socket
import sys
import time


def server(port, modes):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(8)
    print("listening", flush=True)
    children = []
    for mode in modes.split(","):
        c, _ = ls.accept()
        pid = os.fork()
        if pid == 0:
            ls.close()
            while True:
                time.sleep(60)
        children.append(pid)
        print(f"{mode} child {pid}", flush=True)
        time.sleep(0.2)   # the child is up and holds the connection
        c.sendall(b"m")
        if mode == "kill-close":
            os.kill(pid, signal.SIGKILL)
            c.close()
        else:
            c.close()
            time.sleep(0.5)
            os.kill(pid, signal.SIGKILL)
    time.sleep(3)   # children stay zombies while the clients wait for their FIN
    for pid in children:
        os.waitpid(pid, 0)
    print("done", flush=True)
    time.sleep(60)   # the test reads its counters; it is killed then


def client(host, port):
    s = socket.create_connection((host, port), timeout=10)
    if s.recv(1) != b"m":
        sys.exit("no marker")
    t0 = time.monotonic()
    s.settimeout(4)
    try:
        data = s.recv(100)
        print(f"eof {time.monotonic() - t0:.3f}" if not data else f"data {data!r}", flush=True)
    except socket.timeout:
        print("timeout", flush=True)
    except ConnectionResetError:
        print(f"reset {time.monotonic() - t0:.3f}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]), sys.argv[3])
    else:
        client(sys.argv[2], int(sys.argv[3]))
