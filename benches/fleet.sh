#!/usr/bin/env bash
# Fleet propagation benchmark (issue 16), as root; everything inside one network namespace this
# script creates and deletes (a `nats-server -js` on its 127.0.0.1, JetStream store in a temp
# dir; nothing touches the host's network or tables). Results: BENCHMARKS.md, "Fleet".
#
# Two fleet nodes (examples/fleet_node, release build: the same `autoblock::cluster` link the
# daemon will use), A publishing and B receiving. Measured, $RUNS runs each:
#   latency  $COUNT single bans published one at a time on A ($GAP s apart): from A's
#            ClusterHandle::publish call to B's receiver yielding the ban (both print the wall
#            clock in µs; same host, same clock); median and p99;
#   burst    $BURST bans published at once on A: from the first publish call to the last one
#            yielded on B.
#
# With E2E=1 (LINK=0 skips the above), the whole path through three daemons: see e2e below.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "fleet.sh: needs root (network namespaces)" >&2; exit 1; }
command -v nats-server >/dev/null || { echo "fleet.sh: needs nats-server (apt-get install nats-server)" >&2; exit 1; }
RUNS=${RUNS:-3}
COUNT=${COUNT:-500}
GAP=${GAP:-0.005}
BURST=${BURST:-10000}
NS=${NS_PREFIX:-abF}-fleet-$$
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  for n in a b c hub; do ip netns del "$NS-$n" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

cargo build --release --locked --example fleet_node >/dev/null 2>&1 || cargo build --release --example fleet_node
NODE=$PWD/target/release/examples/fleet_node

ip netns add "$NS"
ip -n "$NS" link set lo up

wait_for() { # file, pattern, tenths of a second
  for _ in $(seq "$3"); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for $2 in $1" >&2; tail -5 "$1" >&2; return 1
}
count_recv() { grep -c '^recv ' "$1" 2>/dev/null || true; }

# One run: a fresh broker and fleet; $1 = run directory. Leaves A's and B's output there.
start_fleet() {
  local d=$1
  mkdir -p "$d"
  ip netns exec "$NS" nats-server -js -a 127.0.0.1 -p 4222 -sd "$d/js" -l "$d/nats.log" &
  PIDS+=($!)
  wait_for "$d/nats.log" 'Server is ready' 100
  mkfifo "$d/a.in" "$d/b.in"
  # B's stdin stays open (fd 4): the node closes when its stdin ends.
  ip netns exec "$NS" "$NODE" --server nats://127.0.0.1:4222 --fleet bench --node b <"$d/b.in" >"$d/b.out" 2>"$d/b.err" &
  PIDS+=($!)
  exec 4>"$d/b.in"
  ip netns exec "$NS" "$NODE" --server nats://127.0.0.1:4222 --fleet bench --node a <"$d/a.in" >"$d/a.out" 2>"$d/a.err" &
  PIDS+=($!)
  exec 3>"$d/a.in"
  wait_for "$d/a.out" '^connected' 100
  wait_for "$d/b.out" '^connected' 100
  # A first ban creates the stream and B's consumer; it is not counted.
  echo "block 192.0.2.1 600 warmup" >&3
  wait_for "$d/b.out" '^recv block 192.0.2.1 ' 100
}

stop_fleet() {
  exec 3>&- 4>&-
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}

if [ "${LINK:-1}" = 1 ]; then
echo "# fleet: RUNS=$RUNS COUNT=$COUNT GAP=$GAP BURST=$BURST (nats-server $(nats-server --version | awk '{print $NF}'))"
for run in $(seq "$RUNS"); do
  d=$TMP/latency-$run
  start_fleet "$d"
  for i in $(seq 0 $((COUNT - 1))); do
    echo "block 10.$((i / 65536 % 256)).$((i / 256 % 256)).$((i % 256)) 600 bench"
    sleep "$GAP"
  done >&3
  for _ in $(seq 100); do [ "$(count_recv "$d/b.out")" -ge $((COUNT + 1)) ] && break; sleep 0.1; done
  python3 - "$d" "$run" <<'EOF'
import statistics, sys
d, run = sys.argv[1], sys.argv[2]
sent = {}
for l in open(d + "/a.out"):
    w = l.split()
    if w[:1] == ["sent"] and w[1] != "192.0.2.1":
        sent[w[1]] = int(w[3])
lat = []
for l in open(d + "/b.out"):
    w = l.split()
    if w[:1] == ["recv"] and w[2] in sent:
        lat.append((int(w[5]) - sent[w[2]]) / 1000)
lat.sort()
p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
print(f"latency run {run}: {len(lat)}/{len(sent)} received; median {statistics.median(lat):.2f} ms, "
      f"p99 {p99:.2f} ms, max {lat[-1]:.2f} ms")
EOF
  stop_fleet

  d=$TMP/burst-$run
  start_fleet "$d"
  echo "burst $BURST 10.100.0.0 600" >&3
  for _ in $(seq 300); do [ "$(count_recv "$d/b.out")" -ge $((BURST + 1)) ] && break; sleep 0.1; done
  python3 - "$d" "$run" "$BURST" <<'EOF'
import sys
d, run, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = next(int(l.split()[2]) for l in open(d + "/a.out") if l.startswith("burst-sent "))
times = [int(l.split()[5]) for l in open(d + "/b.out") if l.startswith("recv block 10.100.")]
print(f"burst run {run}: {len(times)}/{n} received; all on B after {(max(times) - start) / 1e6:.3f} s, "
      f"first after {(min(times) - start) / 1e3:.1f} ms" if times else f"burst run {run}: none received")
EOF
  stop_fleet
done
fi

# ---------------------------------------------------------------------------------------------
# End to end (E2E=1): three `autoblock run` daemons (release build), A, B and C, each in a
# namespace of its own joined by a veth to a bridge in a hub namespace where nats-server -js
# listens (10.202.0.1:4222). A uses iptables, B ipset, C nftables. Times are the daemons' own
# event stamps (one host, one clock, ms resolution).
#   e2e_latency: $E2E_COUNT manual bans on A, one at a time ($E2E_GAP s apart): from A's
#     `applied` event (A's kernel commit returned) to B's (and C's) `applied` event of the same
#     ban (the rule is in its kernel); median and p99;
#   e2e_burst: `autoblock ban --file` with $BURST targets on A (one request per 10,000): from
#     A's first `block` decision (published at once) to the `applied` event by which B's (and
#     C's) kernel holds all of them; the kernels' own counts are checked after.
E2E_COUNT=${E2E_COUNT:-500}
E2E_GAP=${E2E_GAP:-0.02}
BIN=$PWD/target/release/autoblock
HUB=$NS-hub

e2e_config() { # node backend dir -> config file path
  python3 - "$1" "$2" "$3" <<'EOF2'
import sys
node, backend, d = sys.argv[1:]
t = open("rules.toml").read()
for a, b in [
    ('interfaces = []', 'interfaces = ["fb"]'),
    ('socket = "/run/autoblock/autoblock.sock"', f'socket = "{d}/sock"'),
    ('dir = "/var/lib/autoblock"', f'dir = "{d}/state"'),
    ('servers = []', 'servers = ["nats://10.202.0.1:4222"]'),
    ('name = "default"', 'name = "bench"'),
    ('node = ""', f'node = "{node}"'),
]:
    assert t.count(a) == 1, a
    t = t.replace(a, b)
t = "\n".join(f'backend = "{backend}"' if l.startswith("backend = ") else l for l in t.split("\n"))
open(f"{d}/rules.toml", "w").write(t)
print(f"{d}/rules.toml")
EOF2
}

e2e_start() {
  local d=$E2E_DIR
  mkdir -p "$d"
  ip netns add "$HUB"
  ip -n "$HUB" link set lo up
  ip -n "$HUB" link add br0 type bridge
  ip -n "$HUB" addr add 10.202.0.1/24 dev br0
  ip -n "$HUB" link set br0 up
  ip netns exec "$HUB" nats-server -js -a 10.202.0.1 -p 4222 -sd "$d/js" -l "$d/nats.log" &
  PIDS+=($!)
  wait_for "$d/nats.log" 'Server is ready' 100
  local host=11
  for spec in a:iptables b:ipset c:nftables; do
    local node=${spec%%:*} backend=${spec##*:}
    local ns=$NS-$node nd=$d/$node
    mkdir -p "$nd"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$HUB" link add "fb$host" type veth peer name fb netns "$ns"
    ip -n "$HUB" link set "fb$host" master br0 up
    ip -n "$ns" addr add "10.202.0.$host/24" dev fb
    ip -n "$ns" link set fb up
    ip netns exec "$ns" "$BIN" run --config "$(e2e_config "$node" "$backend" "$nd")" >"$nd/events" 2>"$nd/stderr" &
    PIDS+=($!)
    host=$((host + 1))
  done
  for node in a b c; do
    for _ in $(seq 100); do
      "$BIN" status --socket "$d/$node/sock" --format json 2>/dev/null | grep -Eq '"connected": ?true' && break
      sleep 0.1
    done
    "$BIN" status --socket "$d/$node/sock" --format json | grep -Eq '"connected": ?true' \
      || { echo "node $node never connected" >&2; cat "$d/$node/stderr" >&2; return 1; }
  done
}

e2e_stop() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
  for n in a b c; do ip netns del "$NS-$n" 2>/dev/null || true; done
  ip netns del "$HUB" 2>/dev/null || true
}

# python3 e2e.py MODE DIR TARGETS_FILE: the figures from the three nodes' events.
e2e_report() {
  python3 - "$@" <<'EOF2'
import datetime, json, statistics, sys
mode, d, targets_file = sys.argv[1:]
targets = [l.strip() for l in open(targets_file) if l.strip()]
want = set(targets)
def t(ev):
    return datetime.datetime.strptime(ev["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
def events(node):
    out = []
    for l in open(f"{d}/{node}/events"):
        try:
            out.append(json.loads(l))
        except ValueError:
            pass
    return out
ev = {n: events(n) for n in "abc"}
def commits(node):
    """target -> time of the first `applied` with blocks after its `block` event."""
    out, waiting = {}, []
    for e in ev[node]:
        if e["event"] == "block" and e["ip"] in want and e["ip"] not in out:
            waiting.append(e["ip"])
        elif e["event"] == "applied" and e["blocks"] > 0:
            for ip in waiting:
                out[ip] = t(e)
            waiting = []
    return out
c = {n: commits(n) for n in "abc"}
decided = {e["ip"]: t(e) for e in ev["a"] if e["event"] == "block" and e["ip"] in want}
if mode == "latency":
    for n in "bc":
        for what, since in [("commit", c["a"]), ("decision", decided)]:
            lat = sorted((c[n][ip] - since[ip]) * 1000 for ip in targets if ip in c[n] and ip in since)
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            print(f"e2e latency A {what} -> {n.upper()} commit: {len(lat)}/{len(targets)} bans; "
                  f"median {statistics.median(lat):.1f} ms, p99 {p99:.1f} ms, "
                  f"min {lat[0]:.1f} ms, max {lat[-1]:.1f} ms")
else:
    start = min(decided.values())
    a_done = max(c["a"].values())
    line = f"e2e burst of {len(targets)}: A's kernel {a_done - start:.3f} s"
    for n in "bc":
        done = len(c[n])
        line += f"; {n.upper()}: {done}/{len(targets)} in its kernel after {max(c[n].values()) - start:.3f} s" if done else f"; {n.upper()}: none"
    print(line)
EOF2
}

e2e() {
  e2e_start
  local d=$E2E_DIR
  # Latency: one ban at a time.
  : >"$d/latency.txt"
  for i in $(seq 0 $((E2E_COUNT - 1))); do
    local ip="10.50.$((i / 256 % 256)).$((i % 256))"
    echo "$ip" >>"$d/latency.txt"
    "$BIN" ban --socket "$d/a/sock" --for 10m "$ip" >/dev/null
    sleep "$E2E_GAP"
  done
  sleep 2
  e2e_report latency "$d" "$d/latency.txt"
  # Burst: 10,000 at once (the fleet's rate bucket refilled meanwhile).
  sleep 10
  python3 -c "
import sys
n = int(sys.argv[1])
print('\n'.join(f'10.{100 + i // 65536}.{i // 256 % 256}.{i % 256}' for i in range(n)))" "$BURST" >"$d/burst.txt"
  "$BIN" ban --socket "$d/a/sock" --for 10m --file "$d/burst.txt" >/dev/null
  for _ in $(seq 100); do
    [ "$(ip netns exec "$NS-b" ipset list -t autoblock4 | awk '/entries/ {print $NF}')" -ge $((BURST + E2E_COUNT)) ] && break
    sleep 0.2
  done
  sleep 1
  e2e_report burst "$d" "$d/burst.txt"
  echo "kernels: B ipset autoblock4 $(ip netns exec "$NS-b" ipset list -t autoblock4 | awk '/entries/ {print $NF}') entries;" \
    "C nftables v4_32 $(ip netns exec "$NS-c" nft -j list set inet autoblock v4_32 | python3 -c 'import json,sys; print(sum(len(x["set"].get("elem", [])) for x in json.load(sys.stdin)["nftables"] if "set" in x))') elements" \
    "(expected $((BURST + E2E_COUNT)) each)"
  e2e_stop
}

if [ "${E2E:-0}" = 1 ]; then
  [ -x "$BIN" ] || { echo "fleet.sh: build the daemon first (cargo build --release)" >&2; exit 1; }
  for run in $(seq "$RUNS"); do echo "# e2e run $run"; E2E_DIR=$TMP/e2e-$run; e2e; done
fi
