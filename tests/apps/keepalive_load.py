"""Keep-alive HTTP load for nginx_reload.sh, and the check of what it saw.

run HOST PORT CONNS DIR: CONNS threads, each keeps one persistent connection and sends
`GET /pid` on it continuously (1 ms apart); nginx answers with the pid of the worker
that serves the connection. A connection that ends is replaced by a new one. Each
connection is tagged with the phase in DIR/phase at its opening (the test writes it)
and ends as one of: stopped (DIR/stop exists), closed (EOF or reset before any byte of
the next response: the server closed it between requests), timeout (no complete answer
within 3 s), broken (a partial or malformed answer), refused (connect failed). DIR/count
holds the number of answers so far, DIR/live the open connections per worker ("pid:n ..."),
DIR/conns.json the connections at the end.

check DIR RULES.json: applies the test's expectations to DIR/conns.json (see nginx_reload.sh)
and prints one line per finding; exits 1 if any is a failure."""
import json
import os
import socket
import sys
import threading
import time

REQ = b"GET /pid HTTP/1.1\r\nHost: fastnet\r\n\r\n"


class Conn:
    def __init__(self, phase):
        self.phase = phase
        self.pids = set()
        self.answered = 0
        self.end = None
        self.detail = ""


def read_phase(d):
    try:
        with open(os.path.join(d, "phase")) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def one_answer(s, buf):
    """Reads one response; returns (pid, rest) or raises with the reason."""
    got_any = bool(buf)
    while b"\r\n\r\n" not in buf:
        part = s.recv(4096)
        if not part:
            raise EOFError("partial" if got_any else "eof")
        buf += part
        got_any = True
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 200"):
        raise ValueError(lines[0].decode(errors="replace"))
    length = None
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    if length is None:
        raise ValueError("no Content-Length")
    while len(rest) < length:
        part = s.recv(4096)
        if not part:
            raise EOFError("partial")
        rest += part
    return int(rest[:length]), rest[length:]


def worker(host, port, d, out, lock, counter):
    while not os.path.exists(os.path.join(d, "stop")):
        c = Conn(read_phase(d))
        with lock:
            out.append(c)
        try:
            s = socket.create_connection((host, port), timeout=3)
        except OSError as e:
            c.end, c.detail = "refused", str(e)
            time.sleep(0.05)
            continue
        s.settimeout(3)
        buf = b""
        while True:
            if os.path.exists(os.path.join(d, "stop")):
                c.end = "stopped"
                break
            try:
                s.sendall(REQ)
                pid, buf = one_answer(s, buf)
            except socket.timeout:
                c.end = "timeout"
                break
            except EOFError as e:
                c.end = "closed" if str(e) == "eof" else "broken"
                break
            except ConnectionResetError:
                c.end = "closed" if not buf else "broken"
                c.detail = "reset"
                break
            except (OSError, ValueError) as e:
                c.end, c.detail = "broken", str(e)
                break
            c.pids.add(pid)
            c.answered += 1
            with lock:
                counter[0] += 1
            time.sleep(0.001)
        s.close()


def run(host, port, conns, d):
    out, lock, counter = [], threading.Lock(), [0]
    ts = [threading.Thread(target=worker, args=(host, port, d, out, lock, counter)) for _ in range(conns)]
    for t in ts:
        t.start()
    while any(t.is_alive() for t in ts):
        with lock:
            live = {}
            for c in out:
                if c.end is None and len(c.pids) == 1:
                    pid = next(iter(c.pids))
                    live[pid] = live.get(pid, 0) + 1
            n = counter[0]
        for name, text in (("count", str(n)), ("live", " ".join(f"{p}:{k}" for p, k in live.items()))):
            with open(os.path.join(d, name + ".tmp"), "w") as f:
                f.write(text)
            os.replace(os.path.join(d, name + ".tmp"), os.path.join(d, name))
        time.sleep(0.05)
    with open(os.path.join(d, "conns.json"), "w") as f:
        json.dump([{"phase": c.phase, "pids": sorted(c.pids), "answered": c.answered,
                    "end": c.end, "detail": c.detail} for c in out], f)


def check(d, rules_path):
    """RULES: {"old": [pids], "victim": pid}.
    Every connection is served by one worker; none ends as timeout, broken or refused
    (except a connect reset in phase 0, which is reported: see below);
    one that closed was served by an old worker (reload: they finish gracefully) or the
    victim (SIGKILL); connections opened in phase >= 1 are served by neither an old
    worker nor (phase 2) the victim; the victim's and the old workers' connections did
    end (they did not hang)."""
    with open(os.path.join(d, "conns.json")) as f:
        conns = json.load(f)
    with open(rules_path) as f:
        rules = json.load(f)
    old, victim = set(rules["old"]), rules["victim"]
    bad = []
    served = {}
    ends = {}
    for i, c in enumerate(conns):
        pid = c["pids"][0] if len(c["pids"]) == 1 else None
        ends.setdefault(c["end"], 0)
        ends[c["end"]] += 1
        if len(c["pids"]) > 1:
            bad.append(f"connection {i} was answered by several workers {c['pids']}")
        if c["end"] == "refused" and c["phase"] == 0 and "reset" in c["detail"].lower():
            # A connect answered by a reset in the reload's window (phase 0 ends at the
            # new workers' readiness): a known gap (docs/DESIGN.md "Known gaps"), no
            # request lost on an established connection. Reported, not failed.
            print(f"note: connection {i} (phase 0) was refused by a reset: {c['detail']}")
        elif c["end"] in ("timeout", "broken", "refused"):
            bad.append(f"connection {i} (phase {c['phase']}, worker {pid}, {c['answered']} answers) "
                       f"failed: {c['end']} {c['detail']}")
        elif c["end"] == "closed" and pid not in old and pid != victim:
            bad.append(f"connection {i} (phase {c['phase']}, worker {pid}, {c['answered']} answers) "
                       f"was closed by a worker that was neither reloaded nor killed")
        if c["phase"] >= 1 and pid in old:
            bad.append(f"connection {i} opened after the reload was served by old worker {pid}")
        if c["phase"] >= 2 and pid == victim:
            bad.append(f"connection {i} opened after the kill was served by the killed worker")
        if c["end"] == "stopped" and (pid in old or pid == victim):
            bad.append(f"connection {i} of worker {pid} still answered at the end")
        if pid is not None and c["phase"] >= 1:
            served.setdefault(pid, 0)
            served[pid] += 1
    print("ends: " + ", ".join(f"{k} {v}" for k, v in sorted(ends.items())))
    print("answers: " + str(sum(c["answered"] for c in conns)))
    for pid, n in sorted(served.items()):
        print(f"served {pid} {n}")
    for c in ("pre", "victim"):
        key = {"pre": lambda c: c["phase"] == 0, "victim": lambda c: c["pids"] == [victim]}[c]
        n = sum(1 for x in conns if key(x))
        print(f"count {c} {n}")
    for b in bad:
        print("bad: " + b)
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        sys.exit(check(sys.argv[2], sys.argv[3]))
