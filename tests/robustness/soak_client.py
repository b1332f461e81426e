#!/usr/bin/python3
"""Short-connection load for the soak: WORKERS concurrent asyncio clients, each looping
connect → send 64 bytes → read the 64-byte echo → close, until COUNT connections were
started (all workers together; 0 = no limit) or SECONDS pass. Every
connection must echo byte-exact; connect/IO errors and timeouts are counted, never hidden.
Prints "soak connections=N failed=F bytes_lost=L seconds=S conn_per_s=R"."""
import asyncio, sys, time

host, port = sys.argv[1], int(sys.argv[2])
seconds, workers = float(sys.argv[3]), int(sys.argv[4])
count = int(sys.argv[5]) if len(sys.argv) > 5 else 0
ok = failed = lost = started = 0
errors = {}


async def worker(wid, end):
    global ok, failed, lost, started
    n = 0
    while time.monotonic() < end and (count == 0 or started < count):
        started += 1
        msg = f"{wid:05d}-{n:09d}-".encode().ljust(64, b".")
        n += 1
        w = None
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(host, port), 30)
            w.write(msg)
            got = await asyncio.wait_for(r.readexactly(len(msg)), 30)
            if got == msg:
                ok += 1
            else:
                failed += 1
                lost += len(msg)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            failed += 1
            lost += len(msg)
            errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
        finally:
            if w:
                w.close()
                try:
                    await asyncio.wait_for(w.wait_closed(), 5)
                except (OSError, asyncio.TimeoutError):
                    pass


async def main():
    t0 = time.monotonic()
    await asyncio.gather(*(worker(i, t0 + seconds) for i in range(workers)))
    el = time.monotonic() - t0
    print(f"soak connections={ok} failed={failed} bytes_lost={lost} seconds={el:.1f} "
          f"conn_per_s={ok / el:.0f}" + (f" errors={errors}" if errors else ""))
    sys.exit(0 if failed == 0 and ok > 0 else 1)

asyncio.run(main())
