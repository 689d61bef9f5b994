#!/usr/bin/env bash
# Reaction-time benchmark (as root; everything inside two network namespaces this script
# creates and deletes; the host's tables are untouched). Results: BENCHMARKS.md, "Reaction time".
#
# For each backend, $RUNS runs of: a fresh `autoblock run` (release build, the shipped rules.toml
# with only the interface, socket and state dir changed) in the victim namespace; a SYN flood
# `hping3 -S -p 80 -c $COUNT -i $GAP` from the attacker namespace; then the daemon is stopped and
# `autoblock flush` removes its chain. Measured per run:
#   first->rule  time from the first attack packet (tcpdump on the victim's interface, kernel
#                timestamp) to the `applied` event (written right after iptables-restore /
#                ipset restore returned: the DROP is in the kernel);
#   first->cross time from the first attack packet to the crossing (the `block` event's time is
#                the capture time of the packet that went over the threshold);
#   reaction_ms  the daemon's own figure: crossing -> commit returned;
#   after        attack packets that reached the target after the crossing: an ACCEPT rule
#                appended to INPUT after the AUTOBLOCK jump counts the packets that passed,
#                minus the packets up to the crossing (the `block` event's `observed`);
#   rate         achieved flood rate: packets arrived (raw counter) / first-to-last packet span
#                in the capture.
# RULES=synflood turns conn-burst off (threshold 10^6) so that the syn-flood rule (1000/s, the
# FastNetMon comparison's threshold) is the one that fires.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "reaction.sh: needs root (network namespaces)" >&2; exit 1; }
RUNS=${RUNS:-7}
COUNT=${COUNT:-20000}
GAP=${GAP:-u10}
BACKENDS=${BACKENDS:-"iptables ipset"}
RULES=${RULES:-shipped}
PREFIX=${PREFIX:-abr}
A=$PREFIX-$$-a
V=$PREFIX-$$-v
ATT=10.201.1.1
VIC=10.201.1.2
TMP=$(mktemp -d)
DPID=""
TPID=""
cleanup() {
  [ -n "$TPID" ] && kill "$TPID" 2>/dev/null || true
  [ -n "$DPID" ] && kill -9 "$DPID" 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$V" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

if [ -z "${BIN:-}" ]; then # BIN=path measures another build
  cargo build --release --locked --bin autoblock >/dev/null 2>&1 || cargo build --release --bin autoblock
  BIN=$PWD/target/release/autoblock
fi

ip netns add "$A"; ip netns add "$V"
ip -n "$A" link set lo up; ip -n "$V" link set lo up
ip -n "$V" link add va type veth peer name eth0 netns "$A"
ip -n "$V" addr add "$VIC/24" dev va
ip -n "$A" addr add "$ATT/24" dev eth0
ip -n "$V" link set va up; ip -n "$A" link set eth0 up
# Counting rules (victim): every attack SYN that arrived (raw, before any filter), and every
# one that passed the AUTOBLOCK jump (appended to INPUT, so after it).
ip netns exec "$V" iptables -w -t raw -A PREROUTING -s "$ATT" -p tcp --syn -m comment --comment bench-arrived
ip netns exec "$V" iptables -w -A INPUT -s "$ATT" -p tcp --syn -m comment --comment bench-passed -j ACCEPT

counter() { # table, comment -> packets
  ip netns exec "$V" iptables -w -t "$1" -L -v -n -x | awk -v c="$2" '$0 ~ c {print $1; exit}'
}
wait_for() { # file, pattern, tenths of a second
  for _ in $(seq "$3"); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for $2 in $1" >&2; cat "$1" >&2; return 1
}

echo "# reaction: RUNS=$RUNS COUNT=$COUNT GAP=$GAP RULES=$RULES; hping3 -S -p 80 -c $COUNT -i $GAP $VIC"
RESULTS=$TMP/results.tsv
: >"$RESULTS"
for backend in $BACKENDS; do
  for run in $(seq "$RUNS"); do
    dir=$TMP/$backend-$run
    mkdir -p "$dir"
    sed -e 's|^interfaces = \[\]|interfaces = ["va"]|' \
        -e "s|^socket = .*|socket = \"$dir/s.sock\"|" \
        -e "s|^dir = .*|dir = \"$dir/state\"|" \
        -e "s|^backend = .*|backend = \"$backend\"|" rules.toml >"$dir/rules.toml"
    if [ "$RULES" = synflood ]; then sed -i 's|^threshold = 28$|threshold = 1000000|' "$dir/rules.toml"; fi
    ip netns exec "$V" "$BIN" run --config "$dir/rules.toml" >"$dir/events" 2>"$dir/stderr" &
    DPID=$!
    wait_for "$dir/events" '"event":"started"' 300
    ip netns exec "$V" iptables -w -Z INPUT
    ip netns exec "$V" iptables -w -t raw -Z PREROUTING
    ip netns exec "$V" tcpdump -i va -nn -s 64 -B 8192 -w "$dir/flood.pcap" "tcp and src host $ATT" 2>"$dir/tcpdump" &
    TPID=$!
    wait_for "$dir/tcpdump" 'listening on' 100
    ip netns exec "$A" timeout 60 hping3 -q -S -p 80 -c "$COUNT" -i "$GAP" "$VIC" >/dev/null 2>&1 || true
    wait_for "$dir/events" '"event":"applied"' 50
    sleep 0.3
    kill -INT "$TPID"; wait "$TPID" 2>/dev/null || true; TPID=""
    arrived=$(counter raw bench-arrived)
    passed=$(counter filter bench-passed)
    kill -TERM "$DPID"; wait "$DPID" || true; DPID=""
    ip netns exec "$V" "$BIN" flush --config "$dir/rules.toml" >/dev/null
    tcpdump -r "$dir/flood.pcap" -tt -nn 2>/dev/null | awk '{print $1}' >"$dir/times"
    python3 - "$backend" "$run" "$dir" "$arrived" "$passed" >>"$RESULTS" <<'EOF'
import json, sys
from datetime import datetime, timezone
backend, run, d, arrived, passed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
def ts(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
events = [json.loads(l) for l in open(d + "/events") if l.startswith("{")]
block = next(e for e in events if e["event"] == "block" and e["ip"] == "10.201.1.1")
applied = next(e for e in events if e["event"] == "applied" and e["blocks"] >= 1)
times = [float(t) for t in open(d + "/times") if t.strip()]
first, last = times[0], times[-1]
rate = arrived / (last - first) if last > first else 0
print("\t".join(str(x) for x in [
    backend, run, block["rule"], block["observed"],
    round((ts(block["ts"]) - first) * 1000, 1),
    applied["reaction_ms"], applied["commit_ms"],
    round((ts(applied["ts"]) - first) * 1000, 1),
    passed - block["observed"], passed, arrived, len(times), int(rate),
]))
EOF
    tail -1 "$RESULTS" | awk -F'\t' '{printf "%-8s run %s: rule=%s observed=%s first->cross=%s ms reaction=%s ms (commit %s ms) first->rule=%s ms after=%s (passed %s, arrived %s, captured %s, %s pkt/s)\n", $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13}'
    sleep 0.5
  done
done

echo "# medians [min-max]"
python3 - "$RESULTS" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
for backend in dict.fromkeys(r[0] for r in rows):
    rs = [r for r in rows if r[0] == backend]
    def col(i):
        v = [float(r[i]) for r in rs]
        return f"{statistics.median(v):g} [{min(v):g}-{max(v):g}]"
    print(f"{backend}: runs={len(rs)} rule={','.join(sorted(set(r[2] for r in rs)))} "
          f"first->rule_ms={col(7)} reaction_ms={col(5)} commit_ms={col(6)} first->cross_ms={col(4)} "
          f"after_crossing_pkts={col(8)} rate_pps={col(12)}")
EOF
