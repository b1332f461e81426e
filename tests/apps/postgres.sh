#!/usr/bin/env bash
# PostgreSQL 15 as user postgres, preloaded through fastnetd (the user has no privilege
# of its own), listening on the server veth. The postmaster accepts each connection,
# forks a backend and closes its copy; the backend takes the connection over from the
# postmaster's engine. `pgbench -i`, then `pgbench -c 8 -T 10` from the client
# namespace: no failed transaction; while it runs, at least 8 backends (children of the
# postmaster) show connections moved in and bytes sent, and no kernel socket serves a
# flow on the fastnet side (ss).
# Usage: postgres.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
need pgbench psql setpriv
PGBIN=/usr/lib/postgresql/15/bin
[[ -x $PGBIN/postgres && -x $PGBIN/initdb ]] || { echo "SKIP: PostgreSQL 15 is not installed (scripts/bootstrap.sh)" >&2; exit 77; }
id postgres > /dev/null 2>&1 || { echo "SKIP: no postgres user" >&2; exit 77; }
FND=$B/tools/fastnetd
SOCK=/run/fastnet/$TB_IF_SRV.sock
PORT=5433
public_lib

ip netns exec "$TB_NS_SRV" "$FND" --iface "$TB_IF_SRV" --allow-uid postgres > "$TMP/fnd.log" 2>&1 &
DP=$!; PIDS+=("$DP")
for _ in $(seq 100); do [[ -S $SOCK ]] && break; sleep 0.05; done
[[ -S $SOCK ]] || { fail "fastnetd did not start: $(cat "$TMP/fnd.log")"; finish; }

PGD=$TMP/pgdata
mkdir -p "$PGD" "$TMP/pgsock"; chown postgres: "$PGD" "$TMP/pgsock"
setpriv --reuid=postgres --regid=postgres --clear-groups "$PGBIN/initdb" -D "$PGD" -A trust -U postgres \
  > "$TMP/initdb.log" 2>&1 || { fail "initdb: $(tail -5 "$TMP/initdb.log")"; finish; }
echo "host all all 10.213.0.0/16 trust" >> "$PGD/pg_hba.conf"
ip netns exec "$TB_NS_SRV" setpriv --reuid=postgres --regid=postgres --clear-groups \
  env LD_PRELOAD="$PUBLIB" "$PGBIN/postgres" -D "$PGD" -p $PORT -c listen_addresses="$TB_IP_SRV" \
  -c unix_socket_directories="$TMP/pgsock" -c max_connections=40 -c fsync=off \
  -c synchronous_commit=off > "$TMP/pg.log" 2>&1 &
PM=$!; PIDS+=("$PM")
wait_listen "$TB_NS_SRV" $PORT || { fail "postgres: $(tail -5 "$TMP/pg.log")"; finish; }

cli timeout 120 pgbench -h "$TB_IP_SRV" -p $PORT -U postgres -i -s 2 postgres > "$TMP/init.out" 2>&1 \
  && pass "pgbench -i" || fail "pgbench -i: $(tail -5 "$TMP/init.out")"

sampler_start
cli timeout 60 pgbench -h "$TB_IP_SRV" -p $PORT -U postgres -c 8 -j 2 -T 10 postgres > "$TMP/run.out" 2>&1 &
RUN=$!
# Once the 8 backends are up (pgbench's vacuum comes first) and have served a while,
# their counters, read together (on a loaded machine a Python run per value took longer
# than the run itself): accelerated, a connection moved in, bytes sent.
for _ in $(seq 80); do
  backends=$(pgrep -P "$PM" -f "postgres: postgres")
  [[ $(wc -w <<< "$backends") -ge 8 ]] && break
  sleep 0.1
done
sleep 1
backends=$(pgrep -P "$PM" -f "postgres: postgres")
for c in $backends; do stat_json "$c" > "$TMP/stat.$c"; done
proven=$("$PY" - "$TMP" $backends <<'PYEOF'
import json, sys
n = 0
for pid in sys.argv[2:]:
    try:
        d = json.load(open(f"{sys.argv[1]}/stat.{pid}"))
    except (OSError, ValueError):
        continue
    if d["state"].startswith("accelerated") and d["sockets_moved"] >= 1 and d["bytes_tx"] > 1000:
        n += 1
print(n)
PYEOF
)
[[ $proven -ge 8 ]] && pass "$proven backends (children of the postmaster) serve connections they took over, bytes sent" \
  || fail "only $proven of the backends [$(echo $backends)] show a connection moved in and bytes sent"
wait $RUN; rc=$?
sampler_stop
failed=$(awk '/number of failed transactions/ {print $5}' "$TMP/run.out")
done_tx=$(awk '/number of transactions actually processed/ {print $6}' "$TMP/run.out")
[[ $rc == 0 && $failed == 0 && ${done_tx%%/*} -gt 100 ]] \
  && pass "pgbench -c 8 -T 10: $done_tx transactions, $failed failed" \
  || fail "pgbench: rc=$rc failed=[$failed] processed=[$done_tx] $(tail -8 "$TMP/run.out")"
prove_no_kernel_flows $PORT "pgbench clients to forked backends"
kill -INT "$PM" 2>/dev/null
for _ in $(seq 100); do kill -0 "$PM" 2>/dev/null || break; sleep 0.1; done
finish
