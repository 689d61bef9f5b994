#!/usr/bin/env bash
# Enforcement benchmark (as root; everything inside two network namespaces this script creates
# and deletes, named $NS_PREFIX-PID-c/s): time to apply / expire / remove 10k bans with each backend, check_and_repair at
# 100k, and small-UDP-packet throughput client -> server with 0, 10k and 100k active bans
# (iperf3 -u -l 64 -b 0 -t $SECS, median of $RUNS). Results: BENCHMARKS.md, "Enforcement".
# Client and server iperf3 are pinned to one core ($CPU): the veth receive path and netfilter
# then run on that core too, which makes the per-packet cost of the rules visible and the
# figures stable (unpinned runs here swung between 150k and 540k packets/s with no rules).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "enforce.sh: needs root (network namespaces)" >&2; exit 1; }
RUNS=${RUNS:-3}
SECS=${SECS:-5}
COUNTS=${COUNTS:-"0 10000 100000"}
CPU=${CPU:-0}
NS_PREFIX=${NS_PREFIX:-abe}
C=$NS_PREFIX-$$-c
S=$NS_PREFIX-$$-s
IPERF_PID=""
cleanup() {
  [ -n "$IPERF_PID" ] && kill "$IPERF_PID" 2>/dev/null || true
  ip netns del "$C" 2>/dev/null || true
  ip netns del "$S" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

cargo build --release --locked -p autoblock-firewall --example enforce >/dev/null 2>&1 || cargo build --release -p autoblock-firewall --example enforce
BIN=./target/release/examples/enforce

ip netns add "$C"; ip netns add "$S"
ip -n "$C" link set lo up; ip -n "$S" link set lo up
ip -n "$C" link add vc type veth peer name vs netns "$S"
ip -n "$C" addr add 10.200.0.3/24 dev vc
ip -n "$S" addr add 10.200.0.2/24 dev vs
ip -n "$C" link set vc up; ip -n "$S" link set vs up

echo "## timing (bans as 198.18.0.0/15 /32s, one process call per family per commit)"
for backend in iptables ipset; do
  "$BIN" --netns "$S" --backend "$backend" --mode timing --bans 10000
done
"$BIN" --netns "$S" --backend iptables --mode fill --bans 10000
"$BIN" --netns "$S" --backend iptables --mode flush

echo "## throughput: iperf3 -u -l 64 -b 0 -t $SECS, both pinned to CPU $CPU, 10.200.0.3 -> 10.200.0.2, median of $RUNS (receiver packets/s)"
ip netns exec "$S" taskset -c "$CPU" iperf3 -s -B 10.200.0.2 >/dev/null 2>&1 &
IPERF_PID=$!
sleep 0.5
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
rate() {
  ip netns exec "$C" timeout $((SECS + 10)) taskset -c "$CPU" iperf3 -c 10.200.0.2 -u -l 64 -b 0 -t "$SECS" -J |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["end"]["sum"]; print(int((s["packets"]-s["lost_packets"])/s["seconds"]))'
}
for backend in iptables ipset; do
  for n in $COUNTS; do
    if [ "$n" -gt 0 ]; then "$BIN" --netns "$S" --backend "$backend" --mode fill --bans "$n"; fi
    runs=""
    for _ in $(seq "$RUNS"); do runs="$runs $(rate)"; done
    echo "$backend bans=$n pps_runs=[$runs ] median=$(for r in $runs; do echo "$r"; done | median)"
    "$BIN" --netns "$S" --backend "$backend" --mode flush
  done
done
