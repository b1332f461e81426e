# Opens N TCP connections to HOST:PORT and holds them idle, for the memory workload of
# bench/run.sh: prints "ready <held> <failed>" once every connect has finished, then holds
# them up to HOLD seconds (or until SIGTERM). usage: idle_conns.py HOST PORT N HOLD
import selectors
import signal
import socket
import sys
import time


def main():
    host, port, n, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sel = selectors.DefaultSelector()
    held, failed, pending = [], 0, 0
    deadline = time.monotonic() + 60
    opened = 0
    # Batches keep the server's accept queue from overflowing (SYN retries cost seconds).
    while (opened < n or pending) and time.monotonic() < deadline:
        while opened < n and pending < 256:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect((host, port))
            except BlockingIOError:
                pass
            except OSError:
                failed += 1
                s.close()
                opened += 1
                continue
            sel.register(s, selectors.EVENT_WRITE)
            pending += 1
            opened += 1
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            sel.unregister(s)
            pending -= 1
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                held.append(s)
            else:
                failed += 1
                s.close()
    print(f"ready {len(held)} {failed + pending}", flush=True)
    end = time.monotonic() + hold
    while time.monotonic() < end:
        time.sleep(0.5)


main()
