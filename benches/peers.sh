#!/usr/bin/env bash
# Verified-peers benchmark (as root; everything inside two network namespaces this script
# creates and deletes, named $NS_PREFIX-PID-c/s): $CONNS established TCP connections from the
# client namespace (4 source addresses) to the server namespace, then the cost of one refresh
# of the verified peers inside the server (examples/peers: the TCP socket tables over netlink,
# routes, resolv.conf and /proc/net/nf_conntrack, which a ctstate rule fills; build the set),
# and of the same refresh reading the socket tables from /proc/net/tcp, tcp6 (`--text`: the
# fallback, and the path before netlink), median of $RUNS, as a process (wall and CPU, 10 ms
# resolution) and in-process (`--repeat`: the gathering alone), next to `cat /proc/net/tcp`
# and `ss -tn state established` on the same sockets; and the flood detectors' read of the
# host's ports (`--host-ports`: all four socket tables, every 10 s in the daemon). Results: BENCHMARKS.md, "Verified peers".
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "peers.sh: needs root (network namespaces)" >&2; exit 1; }
CONNS=${CONNS:-100000}
RUNS=${RUNS:-20}
NS_PREFIX=${NS_PREFIX:-abpb}
C=$NS_PREFIX-$$-c
S=$NS_PREFIX-$$-s
PIDS=""
TMP=$(mktemp -d)
cleanup() {
  for p in $PIDS; do kill -- "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$C" 2>/dev/null || true
  ip netns del "$S" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# PEERS_BIN: an examples/peers binary already built (another version, side by side).
if [ -n "${PEERS_BIN:-}" ]; then
  BIN=$PEERS_BIN
else
  cargo build --release --example peers >/dev/null 2>&1 || cargo build --release --example peers
  BIN=./target/release/examples/peers
fi

ip netns add "$C"; ip netns add "$S"
ip -n "$C" link set lo up; ip -n "$S" link set lo up
ip -n "$C" link add vc type veth peer name vs netns "$S"
for i in 1 3 4 5; do ip -n "$C" addr add "10.210.0.$i/24" dev vc; done
ip -n "$S" addr add 10.210.0.2/24 dev vs
ip -n "$C" link set vc up; ip -n "$S" link set vs up
ip -n "$S" route add default via 10.210.0.1
ip netns exec "$C" sysctl -qw net.ipv4.ip_local_port_range="1024 65000"
# Conntrack tracks the flows from their first packet once a rule asks for it.
ip netns exec "$S" iptables -w -A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT

# One process holds at most PER sockets (the fd limit cannot be raised here): forked acceptors
# on one listening socket, and several clients.
PER=15000
cat >"$TMP/server.py" <<'PY'
import os, resource, socket, sys, time
per, workers = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("10.210.0.2", 7000)); ls.listen(4096)
for _ in range(workers):
    if os.fork() == 0:
        held = [ls.accept()[0] for _ in range(per)]
        time.sleep(86400)
time.sleep(86400)
PY
cat >"$TMP/client.py" <<'PY'
import errno, resource, socket, sys, time
n, first = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
srcs = ["10.210.0.1", "10.210.0.3", "10.210.0.4", "10.210.0.5"]; held = []
for i in range(first, first + n):
    s = socket.socket(); s.bind((srcs[i % 4], 0)); s.setblocking(False)
    e = s.connect_ex(("10.210.0.2", 7000))
    if e not in (0, errno.EINPROGRESS): sys.exit(f"connect {i}: {errno.errorcode.get(e, e)}")
    held.append(s)
    if i % 2000 == 1999: time.sleep(0.05)
time.sleep(86400)
PY
# The kernel's cost of the same facts over netlink (sock_diag, ESTABLISHED only, both
# families), read by a minimal reader that only counts the messages.
cat >"$TMP/diag.py" <<'PY'
import socket, struct, sys, time
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 1, 0x300
def dump(family):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    # inet_diag_req_v2: family, protocol, ext, pad, states, sockid (48 bytes)
    req = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 1 << 1) + b"\0" * 48
    hdr = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
    s.send(hdr + req)
    n = 0; total = 0
    while True:
        data = s.recv(1 << 20)
        off = 0; done = False
        while off < len(data):
            ln, typ = struct.unpack_from("=IH", data, off)
            if typ == 3: done = True; break
            n += 1; off += (ln + 3) & ~3
        total += len(data)
        if done: break
    return n, total
runs = []
for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 5):
    t = time.perf_counter(); n4 = dump(socket.AF_INET); n6 = dump(socket.AF_INET6); runs.append(time.perf_counter() - t)
runs.sort(); print(f"sock_diag established dump: {n4[0]}+{n6[0]} sockets, {n4[1]+n6[1]} bytes, median {runs[len(runs)//2]*1000:.1f} ms")
PY
WORKERS=$(( CONNS / PER + 2 ))
# setsid: the forked acceptors form one process group, killed as a whole on exit.
setsid ip netns exec "$S" python3 "$TMP/server.py" "$PER" "$WORKERS" & PIDS="$PIDS -$!"
sleep 0.5
left=$CONNS; first=0
while [ "$left" -gt 0 ]; do
  n=$(( left < PER ? left : PER ))
  ip netns exec "$C" python3 "$TMP/client.py" "$n" "$first" & PIDS="$PIDS $!"
  first=$(( first + n )); left=$(( left - n ))
done
established() { ip netns exec "$S" ss -Htn state established | wc -l; }
for _ in $(seq 240); do
  [ "$(established)" -ge "$CONNS" ] && break
  sleep 0.5
done
echo "## $(established) established TCP connections in $S ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
# Median wall and CPU (user + sys) of RUNS runs of a command: on a shared machine the CPU time
# is the steadier figure (the wall time waits for other load).
measure() {
  : >"$TMP/runs"
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %U %S" -o "$TMP/t" "$@" >/dev/null
    cat "$TMP/t" >>"$TMP/runs"
  done
  local mid=$(( (RUNS + 1) / 2 ))
  local wall cpu
  wall=$(awk '{print $1*1000}' "$TMP/runs" | sort -n | sed -n "${mid}p")
  cpu=$(awk '{print ($2+$3)*1000}' "$TMP/runs" | sort -n | sed -n "${mid}p")
  echo "wall ${wall} ms, cpu ${cpu} ms (median of $RUNS; 10 ms resolution)"
}
echo "cat /proc/net/tcp /proc/net/tcp6: $(measure ip netns exec "$S" cat /proc/net/tcp /proc/net/tcp6)"
echo "ss -Htn state established (netlink + text): $(measure ip netns exec "$S" ss -Htn state established)"
echo "netlink sock_diag dump, minimal reader: $(measure ip netns exec "$S" python3 "$TMP/diag.py" 1)"
echo "python3 startup (the reader's baseline): $(measure ip netns exec "$S" python3 -c pass)"
echo "conntrack entries: $(ip netns exec "$S" cat /proc/net/nf_conntrack | wc -l)"
for mode in netlink --text; do
  args=(); [ "$mode" = --text ] && args=(--text)
  echo "## one refresh of the verified peers (examples/peers ${args[*]}), socket tables: $mode"
  echo "process: $(measure ip netns exec "$S" "$BIN" "${args[@]}")"
  echo "in-process $(ip netns exec "$S" "$BIN" "${args[@]}" --repeat "$RUNS" | sed -n 1p)"
  ip netns exec "$S" "$BIN" "${args[@]}" | tail -1
  echo "in-process $(ip netns exec "$S" "$BIN" "${args[@]}" --host-ports --repeat "$RUNS" | sed -n 1p)"
done
echo "## one refresh, socket table + conntrack (--conntrack)"
echo "$(measure ip netns exec "$S" "$BIN" --conntrack)"
ip netns exec "$S" "$BIN" --conntrack | tail -1
ip netns exec "$S" /usr/bin/time -f "peak RSS of one refresh with conntrack (whole process): %M kB" "$BIN" --conntrack >/dev/null
echo "## the parser and the set alone: synthetic /proc/net/tcp text, $CONNS distinct peers"
"$BIN" --synthetic "$CONNS" --repeat "$RUNS" | sed -n 1,2p
