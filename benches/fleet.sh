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
# What this does not measure yet (needs the daemon wiring, see the hooks at the end): ban
# committed in A's kernel -> rule present in B's kernel. The link's figures above are the
# NATS part of that path; B's engine + firewall commit (BENCHMARKS.md "Enforcement": one batch
# of 10k ipset entries ~0.35 s) comes on top.
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

# ---------------------------------------------------------------------------------------------
# Hooks for the end-to-end version (ban committed on A -> rule in B's kernel), once the daemon
# starts the link (see src/cluster/mod.rs for what the wiring must do). Per node: a namespace of
# its own, `autoblock run` with `[cluster] servers = ["nats://<broker>:4222"]`, `node = "a"`.
#   e2e_latency: on A, `autoblock ban --for 10m 10.x.y.z` $COUNT times ($GAP apart); from A's
#     `applied` event (the commit returned) to B's `applied` event that holds the same target
#     with `origin: "a"` (needs the event to name its targets, or poll `ipset test` on B).
#   e2e_burst: `autoblock ban --file` with 10,000 targets on A; time until B's (and C's) kernel
#     holds all of them (`ipset list -t` member count, or the last `applied` event).
e2e_latency() { echo "e2e_latency: needs the daemon wiring of the fleet link (issue 16)" >&2; return 1; }
e2e_burst() { echo "e2e_burst: needs the daemon wiring of the fleet link (issue 16)" >&2; return 1; }
if [ "${E2E:-0}" = 1 ]; then e2e_latency; e2e_burst; fi
