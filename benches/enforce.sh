#!/usr/bin/env bash
# Enforcement benchmark (as root; everything inside two network namespaces this script creates
# and deletes, named $NS_PREFIX-PID-c/s): time to apply / expire / remove 10k bans with each backend (iptables, ipset,
# nftables), apply + check_and_repair at 10k and 100k, the time from someone else's flush
# (`nft flush ruleset`, `iptables -F`) to bans restored by the watch + check_and_repair path,
# our own 100k commit with and without a listening monitor, and small-UDP-packet throughput
# client -> server with 0, 10k and 100k active bans (iperf3 -u -l 64 -b 0 -t $SECS, median of
# $RUNS), then alternating rounds. Results: BENCHMARKS.md, "Enforcement".
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
for backend in iptables ipset nftables; do
  "$BIN" --netns "$S" --backend "$backend" --mode timing --bans 10000
done
echo "## apply + check_and_repair (fill mode), 10k and 100k"
for backend in iptables ipset nftables; do
  for n in 10000 100000; do
    "$BIN" --netns "$S" --backend "$backend" --mode fill --bans "$n"
    "$BIN" --netns "$S" --backend "$backend" --mode flush
  done
done
REPAIRS=${REPAIRS:-3}
echo "## flush from outside -> watch event -> check_and_repair, $REPAIRS rounds"
for _ in $(seq "$REPAIRS"); do
  for n in 10000 100000; do
    for backend in ipset nftables; do
      "$BIN" --netns "$S" --backend "$backend" --mode flushrepair --bans "$n"
    done
  done
  "$BIN" --netns "$S" --backend iptables --mode flushrepair --bans 10000
done

# A listening `nft monitor` slows our own large commits (the kernel builds a notification per
# element for any listener): alternate none / a foreign monitor / our own watch.
MONROUNDS=${MONROUNDS:-3}
echo "## 100k-ban commit: no monitor / a foreign nft monitor listening / our own watch, $MONROUNDS rounds"
for _ in $(seq "$MONROUNDS"); do
  for backend in nftables iptables; do
    "$BIN" --netns "$S" --backend "$backend" --mode flush
    "$BIN" --netns "$S" --backend "$backend" --mode fill --bans 100000 | grep ' fill '
    "$BIN" --netns "$S" --backend "$backend" --mode flush
    ip netns exec "$S" nft monitor destroy >/dev/null &
    MON=$!
    sleep 1
    "$BIN" --netns "$S" --backend "$backend" --mode fill --bans 100000 | grep ' fill ' | sed 's/ fill / fill_foreign_monitor /'
    kill "$MON"; wait "$MON" 2>/dev/null || true
    "$BIN" --netns "$S" --backend "$backend" --mode flush
    "$BIN" --netns "$S" --backend "$backend" --mode fillwatched --bans 100000
    "$BIN" --netns "$S" --backend "$backend" --mode flush
  done
done

echo "## throughput: iperf3 -u -l 64 -b 0 -t $SECS, both pinned to CPU $CPU, 10.200.0.3 -> 10.200.0.2, median of $RUNS (receiver packets/s)"
ip netns exec "$S" taskset -c "$CPU" iperf3 -s -B 10.200.0.2 >/dev/null 2>&1 &
IPERF_PID=$!
sleep 0.5
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
rate() {
  ip netns exec "$C" timeout $((SECS + 10)) taskset -c "$CPU" iperf3 -c 10.200.0.2 -u -l 64 -b 0 -t "$SECS" -J |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["end"]["sum"]; print(int((s["packets"]-s["lost_packets"])/s["seconds"]))'
}
for backend in iptables ipset nftables; do
  for n in $COUNTS; do
    if [ "$n" -gt 0 ]; then "$BIN" --netns "$S" --backend "$backend" --mode fill --bans "$n"; fi
    runs=""
    for _ in $(seq "$RUNS"); do runs="$runs $(rate)"; done
    echo "$backend bans=$n pps_runs=[$runs ] median=$(for r in $runs; do echo "$r"; done | median)"
    "$BIN" --netns "$S" --backend "$backend" --mode flush
  done
done

# On a shared machine the rate drifts by tens of percent between minutes. Two things help: the
# runs alternate (no table/chain, one ban, 100k bans) close in time, and besides the rate each
# run reports CPU time per packet (iperf3's own client + server CPU, which includes the veth
# and netfilter softirq work done in their context): far less sensitive to other load.
PAIRS=${PAIRS:-5}
measure() {
  ip netns exec "$C" timeout $((SECS + 10)) taskset -c "$CPU" iperf3 -c 10.200.0.2 -u -l 64 -b 0 -t "$SECS" -J |
    python3 -c 'import json,sys; e=json.load(sys.stdin)["end"]; s=e["sum"]; c=e["cpu_utilization_percent"]; print(int((s["packets"]-s["lost_packets"])/s["seconds"]), int((c["host_total"]+c["remote_total"])/100*s["seconds"]/s["packets"]*1e9))'
}
ratio() { echo "scale=3; $1 / $2" | bc; }
if [ "$PAIRS" -gt 0 ]; then
  echo "## alternating: no table/chain, 1 ban, 100k bans; $PAIRS rounds per backend; pps and CPU ns/packet"
  for backend in ipset nftables; do
    p_one=""; p_full=""; c_one=""; c_full=""
    for _ in $(seq "$PAIRS"); do
      "$BIN" --netns "$S" --backend "$backend" --mode flush
      read -r zp zc < <(measure)
      "$BIN" --netns "$S" --backend "$backend" --mode fill --bans 1 >/dev/null
      read -r op oc < <(measure)
      "$BIN" --netns "$S" --backend "$backend" --mode fill --bans 100000 >/dev/null
      read -r fp fc < <(measure)
      echo "$backend round: pps none=$zp one=$op 100k=$fp  cpu_ns none=$zc one=$oc 100k=$fc"
      p_one="$p_one $(ratio "$op" "$zp")"; p_full="$p_full $(ratio "$fp" "$zp")"
      c_one="$c_one $(ratio "$oc" "$zc")"; c_full="$c_full $(ratio "$fc" "$zc")"
    done
    "$BIN" --netns "$S" --backend "$backend" --mode flush
    med() { for r in "$@"; do echo "$r"; done | median; }
    echo "$backend pps ratio one/none [$p_one ] median=$(med $p_one); 100k/none [$p_full ] median=$(med $p_full)"
    echo "$backend cpu ratio one/none [$c_one ] median=$(med $c_one); 100k/none [$c_full ] median=$(med $c_full)"
  done
fi
