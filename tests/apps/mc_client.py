#!/usr/bin/python3
"""Concurrent memcached load with every answer checked: CONNS asyncio connections, each
doing OPS rounds of `set k v` + `get k` with a key and value unique to the connection
and round, over the text protocol. Prints "mc ok=N bad=B errors=E seconds=S"; exits 1
on any wrong answer or error."""
import asyncio, sys, time

host, port, conns, ops = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ok = bad = errors = 0


async def client(cid):
    global ok, bad, errors
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        for i in range(ops):
            key = f"k{cid}-{i}"
            val = f"v{cid}-{i}-".encode() * (1 + i % 40)
            w.write(b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), len(val), val))
            w.write(b"get %s\r\n" % key.encode())
            if await asyncio.wait_for(r.readline(), 10) != b"STORED\r\n":
                bad += 1
                continue
            head = await asyncio.wait_for(r.readline(), 10)
            want = b"VALUE %s 0 %d\r\n" % (key.encode(), len(val))
            if head != want:
                bad += 1
                continue
            body = await asyncio.wait_for(r.readexactly(len(val) + 2 + 5), 10)
            if body == val + b"\r\nEND\r\n":
                ok += 1
            else:
                bad += 1
        w.close()
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
        errors += 1
        print(f"connection {cid}: {type(e).__name__} {e}", file=sys.stderr)


async def main():
    t0 = time.monotonic()
    await asyncio.gather(*(client(c) for c in range(conns)))
    print(f"mc ok={ok} bad={bad} errors={errors} seconds={time.monotonic() - t0:.1f}")
    sys.exit(0 if bad == 0 and errors == 0 and ok == conns * ops else 1)

asyncio.run(main())
