#!/usr/bin/env bash
# Live capture cost under a flood (as root; everything inside two network namespaces this
# script creates and deletes; the host's tables are untouched).
#
# trafgen (Debian package netsniff-ng, one process) sends COUNT TCP SYNs at its full rate over
# a veth pair into the victim namespace, from 64k random sources ("many": drnd() on the last
# two bytes of 198.18.x.y) or from 8 ("few"). On the victim's end of the veth, in turn:
#   tcpdump    tcpdump -ni IF -w /dev/null -s 128 (its default buffer)
#   autoblock  autoblock run --dry-run, the shipped rules.toml (six rules) with only the
#              interface, control socket and state dir changed
# Per run: CPU time of the capturing process during the flood (utime+stime from
# /proc/PID/stat, all threads, read before and after) divided by the packets it captured;
# kernel drops (tcpdump's "dropped by kernel"; autoblock's `status` kernel_drops, i.e.
# libpcap's ps_drop); engine-queue drops (autoblock's `status` queue_drops); peak
# RSS (VmHWM); and trafgen's achieved rate (packets / its wall time). A run with no capturer
# gives the generator's own rate. RUNS rounds, capturers alternating; medians at the end.
#
# MODES=million sends from ~16M random sources (sa[1..3]=drnd()): with COUNT=1100000 and a
# CONFIG whose max_tracked_sources is 1000000 (CONFIG=benches/rules-memory.toml: every metric
# kind), the daemon's peak RSS at ~1M tracked sources. MAX_SOURCES=N sets the config's
# max_tracked_sources: MODES=million MAX_SOURCES=100000 floods a full table with sources that
# are all active (a spoofed flood): the untracked path, with no source the sweeps could evict.
# Usage: benches/live.sh   (env: RUNS=3 COUNT=3000000 MODES="many few" CONFIG=rules.toml PREFIX=abB
#   BIN=target/release/autoblock; PERF_DIR=DIR also records `perf record -g` of each capturer
#   during the flood into DIR/MODE-CAPTURER-RUN.data; SMAPS_DIR=DIR keeps each capturer's
#   /proc/PID/smaps after the flood (what its peak RSS is made of); BIN_B=OTHER adds a second build,
#   "autoblock-b", to every round: an A/B of two builds in one run, the order rotating)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "live.sh: needs root (network namespaces)" >&2; exit 1; }
command -v trafgen >/dev/null || { echo "live.sh: trafgen is missing (apt-get install netsniff-ng, or make deps)" >&2; exit 1; }
RUNS=${RUNS:-3}
COUNT=${COUNT:-3000000}
MODES=${MODES:-"many few"}
CONFIG=${CONFIG:-rules.toml}
MAX_SOURCES=${MAX_SOURCES:-}
PREFIX=${PREFIX:-abB}
A=$PREFIX-live-$$-a
V=$PREFIX-live-$$-v
VIC=10.209.0.2
TMP=$(mktemp -d)
CPID=""
cleanup() {
  [ -n "$CPID" ] && kill -9 "$CPID" 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$V" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --quiet --bin autoblock
  BIN=$PWD/target/release/autoblock
fi
PERF_DIR=${PERF_DIR:-}
HZ=$(getconf CLK_TCK)

. benches/flood-lib.sh
flood_netns "$A" "$V" "$VIC"
for mode in many few million; do
  flood_cfg "$mode" "$VIC" "$TMP/$mode.cfg"
done
# A CONFIG with only rules (no `interfaces` line, e.g. benches/rules-memory.toml) runs under
# rules.toml's tables up to its first [[rule]]; the CONFIG's own tables before its rules are
# then left out (rules-memory.toml's [limits] is the shipped one).
base=$CONFIG
if ! grep -q '^interfaces = ' "$CONFIG"; then
  echo "live.sh: $CONFIG has no [capture] interfaces: its rules under rules.toml's other tables" >&2
  { sed '/^\[\[rule\]\]/,$d' rules.toml; sed -n '/^\[\[rule\]\]/,$p' "$CONFIG"; } >"$TMP/base.toml"
  base=$TMP/base.toml
fi
limit=()
[ -n "$MAX_SOURCES" ] && limit=(-e "s|^max_tracked_sources = .*|max_tracked_sources = $MAX_SOURCES|")
sed -e 's|^interfaces = \[.*\]|interfaces = ["va"]|' \
    -e "s|^socket = .*|socket = \"$TMP/ab.sock\"|" \
    -e "s|^dir = .*|dir = \"$TMP/state\"|" "${limit[@]}" "$base" >"$TMP/rules.toml"
if [ -n "$MAX_SOURCES" ] && ! grep -q "^max_tracked_sources = $MAX_SOURCES\$" "$TMP/rules.toml"; then
  echo "live.sh: MAX_SOURCES: no max_tracked_sources line in $base to set" >&2; exit 2
fi
"$BIN" check --config "$TMP/rules.toml" >/dev/null

wait_for() { # file, pattern, tenths of a second
  for _ in $(seq "$3"); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for $2 in $1" >&2; cat "$1" >&2; return 1
}
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
# Context switches, CPU ticks and minor page faults of every thread of $1: "name switches
# ticks faults" per thread.
switches() {
  local t
  for t in /proc/"$1"/task/*; do
    awk -v n="$(cat "$t/comm")" -v c="$(sed 's/.*) //' "$t/stat" | awk '{print $12 + $13, $8}')" \
      '/ctxt_switches/ {s += $2} END {print n, s, c}' "$t/status"
  done | sort
}

# Floods with trafgen from the attacker namespace; prints "packets seconds".
flood() {
  local s e
  s=$(date +%s%N)
  ip netns exec "$A" timeout 60 trafgen -o eth0 -P 1 -n "$COUNT" -c "$TMP/$1.cfg" >"$TMP/trafgen.out" 2>&1 || true
  e=$(date +%s%N)
  echo "$COUNT $(echo "($e - $s) / 1000000000" | bc -l)"
}

# One run: capturer ($1: none|tcpdump|autoblock), mode ($2). Appends a result line.
run_one() {
  local cap=$1 mode=$2 out=$TMP/run c0 c1 sent secs captured kdrop qdrop hwm
  rm -f "$out".*
  case $cap in
    none) ;;
    tcpdump)
      ip netns exec "$V" tcpdump -ni va -w /dev/null -s 128 2>"$out.err" &
      CPID=$!
      wait_for "$out.err" 'listening on' 100 ;;
    autoblock|autoblock-b)
      local bin=$BIN; [ "$cap" = autoblock-b ] && bin=$BIN_B
      ip netns exec "$V" "$bin" run --dry-run --config "$TMP/rules.toml" >"$out.events" 2>"$out.err" &
      CPID=$!
      wait_for "$out.events" '"event":"started"' 300 ;;
  esac
  [ -n "$CPID" ] && { c0=$(cpu_ticks "$CPID"); switches "$CPID" >"$out.sw0"; }
  local ppid=""
  if [ -n "$PERF_DIR" ] && [ -n "$CPID" ]; then
    mkdir -p "$PERF_DIR"
    perf record -q -e cpu-clock -g -p "$CPID" -o "$PERF_DIR/$mode-$cap-$run.data" 2>/dev/null &
    ppid=$!
    sleep 0.5
  fi
  read -r sent secs < <(flood "$mode")
  sleep 1.5 # the capturer drains its buffer; the daemon's drop monitor takes a sample
  [ -n "$ppid" ] && { kill -INT "$ppid"; wait "$ppid" 2>/dev/null || true; }
  captured=0 kdrop=0 qdrop=0 hwm=0 c1=0 c0=${c0:-0}
  if [ -n "$CPID" ]; then
    c1=$(cpu_ticks "$CPID"); hwm=$(hwm_kb "$CPID"); switches "$CPID" >"$out.sw1"
    if [ -n "${SMAPS_DIR:-}" ]; then
      mkdir -p "$SMAPS_DIR"; cp "/proc/$CPID/smaps" "$SMAPS_DIR/$mode-$cap-$run.smaps"
    fi
  fi
  case $cap in
    tcpdump)
      kill -INT "$CPID"; wait "$CPID" 2>/dev/null || true
      captured=$(sed -n 's/^\([0-9]*\) packets captured/\1/p' "$out.err")
      kdrop=$(sed -n 's/^\([0-9]*\) packets dropped by kernel/\1/p' "$out.err") ;;
    autoblock|autoblock-b)
      st=$("$BIN" status --config "$TMP/rules.toml" --format json)
      captured=$(jq '[.interfaces[].packets] | add' <<<"$st")
      kdrop=$(jq '[.interfaces[] | .kernel_drops + .interface_drops] | add' <<<"$st")
      kill -TERM "$CPID"; wait "$CPID" 2>/dev/null || true
      qdrop=$(jq '[.interfaces[] | .queue_drops // 0] | add' <<<"$st") ;;
  esac
  CPID=""
  local ns_pp=0
  [ "${captured:-0}" -gt 0 ] && ns_pp=$(echo "($c1 - $c0) / $HZ * 1000000000 / $captured" | bc -l)
  printf '%s\t%s\t%d\t%.0f\t%s\t%s\t%s\t%.3f\t%s\t%s\n' "$mode" "$cap" "$sent" \
    "$(echo "$sent / $secs" | bc -l)" "${captured:-0}" "${kdrop:-0}" "$qdrop" \
    "$(echo "($c1 - $c0) / $HZ" | bc -l)" "$(printf '%.0f' "$ns_pp")" "$hwm" >>"$TMP/results.tsv"
  tail -1 "$TMP/results.tsv" | awk -F'\t' '{printf "%-4s %-9s sent %s at %s pps: captured %s, kernel drops %s, queue drops %s, cpu %ss = %s ns/packet, peak RSS %s kB\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10}'
  if [ -f "$out.sw1" ]; then # context switches per thread during the flood
    printf '     per thread during the flood (context switches, CPU ticks of 1/%s s, minor faults):' "$HZ"
    join "$out.sw0" "$out.sw1" | awk '{printf " %s %d %d %d;", $1, $5 - $2, $6 - $3, $7 - $4}'
    echo
  fi
}

echo "# live: RUNS=$RUNS COUNT=$COUNT MODES=\"$MODES\" CONFIG=$CONFIG MAX_SOURCES=${MAX_SOURCES:-as configured}; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$TMP/results.tsv"
for run in $(seq "$RUNS"); do
  for mode in $MODES; do
    order=(tcpdump autoblock ${BIN_B:+autoblock-b})
    # rotate the order each run
    for _ in $(seq $(( (run - 1) % ${#order[@]} ))); do order=("${order[@]:1}" "${order[0]}"); done
    for cap in none "${order[@]}"; do
      printf 'run %s ' "$run"; run_one "$cap" "$mode"
    done
  done
done

echo
echo "medians of $RUNS runs; load at end $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$TMP/results.tsv" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
def med(rs, i):
    return statistics.median(float(r[i]) for r in rs)
print("| sources | capturer | generator pps | captured | kernel drops | queue drops | CPU ns/packet | ratio to tcpdump | peak RSS |")
print("|---|---|---|---|---|---|---|---|---|")
for mode in dict.fromkeys(r[0] for r in rows):
    base = [r for r in rows if r[0] == mode and r[1] == "tcpdump"]
    for cap in ("none", "tcpdump", "autoblock", "autoblock-b"):
        rs = [r for r in rows if r[0] == mode and r[1] == cap]
        if not rs:
            continue
        if cap == "none":
            print(f"| {mode} | (none) | {med(rs, 3):,.0f} | | | | | | |")
            continue
        ratio = med(rs, 8) / med(base, 8) if base and med(base, 8) else 0
        drops = ", ".join(r[5] for r in rs)
        qdrops = ", ".join(r[6] for r in rs)
        print(f"| {mode} | {cap} | {med(rs, 3):,.0f} | {med(rs, 4):,.0f} | {drops} | {qdrops} | "
              f"{med(rs, 8):.0f} | **{ratio:.2f}** | {med(rs, 9) / 1024:.1f} MB |")
EOF
echo "target: autoblock's CPU per packet <= 2x tcpdump's, and no drops where tcpdump has none"
