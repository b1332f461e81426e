#!/usr/bin/python3
"""Run preloaded with a low RLIMIT_NOFILE: opens echo-checked connections until the
limit, expects EMFILE (not a crash, not a hang, not a half-made socket), closes them all,
and does it again: the second round must reach the same count. Then prints the
process's fastnet counters (fastnet-stat --json on itself).
Usage: exhaust_client.py HOST PORT FASTNET_STAT [ROUNDS]"""
import errno, json, os, socket, subprocess, sys, time

host, port, stat = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
counts, errs = [], []
for r in range(rounds):
    socks, err = [], None
    while len(socks) < 5000:
        try:
            s = socket.socket()
        except OSError as e:
            err = e.errno
            break
        try:
            s.settimeout(5)
            s.connect((host, port))
            s.sendall(b"ping")
            got = b""
            while len(got) < 4:
                c = s.recv(4 - len(got))
                if not c:
                    break
                got += c
            if got != b"ping":
                err = -1
                s.close()
                break
        except OSError as e:
            err = e.errno
            s.close()
            break
        socks.append(s)
    counts.append(len(socks))
    errs.append(errno.errorcode.get(err, str(err)))
    for s in socks:
        s.close()
    time.sleep(0.5)
env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
j = json.loads(subprocess.check_output([stat, "--json", str(os.getpid())], env=env))
print(f"exhaust rounds={rounds} counts={counts} errors={errs} state={j.get('state')!r} "
      f"conn_opened={j.get('conn_opened')} conn_closed={j.get('conn_closed')} "
      f"sockets_accelerated={j.get('sockets_accelerated')}")
print(json.dumps(j))
ok = all(e == "EMFILE" for e in errs) and len(set(counts)) == 1 and counts[0] > 0
sys.exit(0 if ok else 1)
