#!/usr/bin/env bash
# Prices issue 10's "count in the kernel" option (as root; everything inside two network
# namespaces this script creates and deletes). trafgen floods live.sh's SYNs over a veth; an
# XDP program (benches/xdp-count.c, built here with clang -target bpf) on the victim's end runs
# on every packet; the kernel's own BPF statistics (sysctl kernel.bpf_stats_enabled, set to 1
# for the run and put back as it was) give its run time per packet. Variants, in turn:
#   parse    COUNT=0: parse only (the floor)
#   lru      COUNT=1: per-source windows in an LRU hash, bpf_ktime_get_ns per packet
#   hash     COUNT=1 PLAIN=1: a preallocated hash, the coarse clock
# Needs clang-14, libbpf's headers, bpftool and iproute2 with libbpf (apt-get install clang-14
# libbpf-dev bpftool).
# Usage: benches/xdp-count.sh   (env: RUNS=3 COUNT=3000000 MODES="many few"; also million, scan:
#   benches/flood-lib.sh's floods)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "xdp-count.sh: needs root (network namespaces, XDP)" >&2; exit 1; }
for c in clang-14 bpftool trafgen; do
  command -v "$c" >/dev/null || { echo "xdp-count.sh: $c is missing (apt-get install clang-14 libbpf-dev bpftool netsniff-ng)" >&2; exit 1; }
done
[ -f /usr/include/bpf/bpf_helpers.h ] || { echo "xdp-count.sh: libbpf's headers are missing (apt-get install libbpf-dev)" >&2; exit 1; }
RUNS=${RUNS:-3}
COUNT=${COUNT:-3000000}
MODES=${MODES:-"many few"}
A=abX-$$-a; V=abX-$$-v; VIC=10.209.0.2
TMP=$(mktemp -d)
stats_before=$(cat /proc/sys/kernel/bpf_stats_enabled)
cleanup() {
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$V" 2>/dev/null || true
  echo "$stats_before" >/proc/sys/kernel/bpf_stats_enabled
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

inc=(-I/usr/include/"$(uname -m)"-linux-gnu)
clang-14 -O2 -g -target bpf -DCOUNT=0 "${inc[@]}" -c benches/xdp-count.c -o "$TMP/parse.o"
clang-14 -O2 -g -target bpf -DCOUNT=1 "${inc[@]}" -c benches/xdp-count.c -o "$TMP/lru.o"
clang-14 -O2 -g -target bpf -DCOUNT=1 -DPLAIN=1 "${inc[@]}" -c benches/xdp-count.c -o "$TMP/hash.o"

. benches/flood-lib.sh
flood_netns "$A" "$V" "$VIC"
for mode in $MODES; do
  flood_cfg "$mode" "$VIC" "$TMP/$mode.cfg" || { echo "xdp-count.sh: MODES holds many, few, million or scan, not $mode" >&2; exit 2; }
done
echo 1 >/proc/sys/kernel/bpf_stats_enabled

echo "# xdp-count: RUNS=$RUNS COUNT=$COUNT MODES=\"$MODES\"; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq 1 "$RUNS"); do
  for mode in $MODES; do
    for prog in parse lru hash; do
      ip -n "$V" link set dev va xdp off
      # A fresh load each time: a new program (its counters at 0) and a new, empty map.
      ip -n "$V" link set dev va xdpdrv obj "$TMP/$prog.o" sec xdp
      ip netns exec "$A" timeout 60 trafgen -o eth0 -P 1 -n "$COUNT" -c "$TMP/$mode.cfg" >/dev/null 2>&1 || true
      id=$(ip -n "$V" -d link show va | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p' | awk 'NR == 1')
      st=$(bpftool prog show id "$id" | awk 'NR == 1')
      ns=$(sed -n 's/.*run_time_ns \([0-9]*\).*/\1/p' <<<"$st")
      cnt=$(sed -n 's/.*run_cnt \([0-9]*\).*/\1/p' <<<"$st")
      printf '%s\t%s\t%s\t%s\n' "$mode" "$prog" "$cnt" "$ns" >>"$TMP/results.tsv"
      awk -v r="$run" -v m="$mode" -v p="$prog" -v c="$cnt" -v n="$ns" \
        'BEGIN {printf "run %s %-4s %-5s %s packets, %.1f ms: %.1f ns/packet\n", r, m, p, c, n / 1e6, c ? n / c : 0}'
    done
  done
done
ip -n "$V" link set dev va xdp off

echo
echo "medians of $RUNS runs (run time per packet, from the kernel's BPF statistics)"
echo "| sources | parse only | + windows, LRU hash | + windows, hash, coarse clock |"
echo "|---|---|---|---|"
for mode in $MODES; do
  row="| $mode"
  for prog in parse lru hash; do
    med=$(awk -F'\t' -v m="$mode" -v p="$prog" '$1 == m && $2 == p && $3 > 0 {print $4 / $3}' "$TMP/results.tsv" |
      sort -g | awk '{v[NR] = $1} END {if (NR) printf "%.0f ns", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
    row="$row | $med"
  done
  echo "$row |"
done
