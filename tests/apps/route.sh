#!/usr/bin/env bash
# A route more specific than the interface's subnet and default route is honoured: the
# client namespace holds an extra address FAR (10.213.255.<bed>/32, outside the bed's
# /24) on its loopback and answers ARP only for the veth's own address (arp_ignore=1);
# the server namespace reaches FAR through a /32 route via the client's veth address.
# A preloaded client connects to FAR and a kernel client connecting from FAR reaches a
# preloaded server: both only work when the engine sends FAR's frames to the gateway's
# MAC. The kernel alone is checked first (the bed is right), then fastnet (counters,
# no kernel socket while the flows live).
# Usage: route.sh <build-dir> <source-dir>
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
need curl
n=$(cut -d. -f3 <<< "$TB_NET")
FAR=10.213.255.$n

cli ip addr add "$FAR/32" dev lo
cli sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf."$TB_IF_CLI".arp_ignore=1
srv ip route add "$FAR/32" via "$TB_IP_CLI" dev "$TB_IF_SRV"

# A kernel server on FAR in the client namespace that holds each connection 3 s.
cli "$PY" -c 'import socket, sys, threading, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 9400)); s.listen()
def serve(c):
    c.recv(100); time.sleep(3); c.sendall(b"far\n"); c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()' "$FAR" > /dev/null 2>&1 &
PIDS+=($!)
wait_listen "$TB_NS_CLI" 9400 || finish

# The client waits for the server's FIN and closes before it exits: a client that exited
# with its own FIN still to deliver would hand the flow to the kernel (by design), whose
# TIME-WAIT the later checks for kernel sockets would see.
client='import socket, sys, time
s = socket.create_connection((sys.argv[1], 9400), timeout=5); s.sendall(b"hi\n")
print(s.recv(100).decode().strip(), flush=True)
while s.recv(100): pass
s.close(); time.sleep(0.3)'
out=$(srv timeout 10 "$PY" -c "$client" "$FAR" 2>&1)
[[ $out == far ]] && pass "the kernel reaches $FAR through the /32 route" || { fail "the bed itself: [$out]"; finish; }

sampler_start
ip netns exec "$TB_NS_SRV" env LD_PRELOAD="$LIB" "$PY" -c "$client" "$FAR" > "$TMP/c.out" 2>&1 &
CP=$!; PIDS+=("$CP")
# While the connection is open (the server answers after 3 s); a new engine may take a
# while to bind its socket on a loaded machine.
for i in $(seq 50); do
  [[ $(jget conn_opened <<< "$(stat_json "$CP")") -ge 1 ]] 2>/dev/null && break
  sleep 0.05
done
prove_counters "$CP" conn_opened 1
wait "$CP"
sampler_stop
[[ $(cat "$TMP/c.out") == far ]] && pass "a preloaded client reaches $FAR via $TB_IP_CLI" || fail "preloaded client: $(cat "$TMP/c.out")"
bad=$(veth_kernel_flows "$TMP/ss.srv")
[[ -z $bad ]] && pass "no kernel socket on $TB_IP_SRV while it ran" || fail "kernel sockets: $bad"

# The other way: a preloaded server answers a client whose address is FAR.
start_preloaded "$TMP/srv.out" "$PY" -c 'import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9401)); s.listen()
while True:
    c, _ = s.accept(); c.recv(100); c.sendall(b"near\n"); time.sleep(1); c.close()'
SP=$APP_PID
wait_listen "$TB_NS_SRV" 9401 || finish
sampler_start
got=$(cli timeout 10 "$PY" -c 'import socket, sys
s = socket.socket(); s.bind((sys.argv[1], 0)); s.settimeout(5)
s.connect((sys.argv[2], 9401)); s.sendall(b"hi\n"); print(s.recv(100).decode().strip(), flush=True)
import time; time.sleep(1)' "$FAR" "$TB_IP_SRV" 2>&1)
prove_counters "$SP" conn_accepted 1
sampler_stop
[[ $got == near ]] && pass "a preloaded server answers a client at $FAR" || fail "client at $FAR got [$got]"
prove_no_kernel_flows 9401 "a preloaded server, client at $FAR"
finish
