#!/usr/bin/env bash
# Replay throughput, side by side with tcpdump on the same generated file in the same run.
# Usage: benches/replay.sh [PACKETS] [SOURCES] [RUNS] [uniform|skewed]   (defaults: 2000000 64000 7 uniform)
# uniform: every packet from a random one of all sources (the source table's worst case);
# skewed: sources drawn log-uniformly (a few busy, many quiet), closer to real traffic.
# Prints each run and the medians; the ratio is autoblock's median time / tcpdump's.
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-2000000}
sources=${2:-64000}
runs=${3:-7}
dist=${4:-uniform}
dir=target/bench
file=$dir/replay-${packets}-${sources}-${dist}.pcap
skew=(); [ "$dist" = skewed ] && skew=(--skewed)
mkdir -p "$dir"
cargo build --release --locked --quiet
cargo build --release --locked --quiet --example gencap
[ -f "$file" ] || ./target/release/examples/gencap --out "$file" --packets "$packets" --sources "$sources" --attackers 4 "${skew[@]}"
command -v tcpdump >/dev/null || { echo "tcpdump is missing (make deps)" >&2; exit 1; }

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
t_dump=(); t_ab=()
# Warm the page cache once.
cat "$file" >/dev/null
for i in $(seq "$runs"); do
  s=$(now); tcpdump -r "$file" -w /dev/null 2>/dev/null; e=$(now)
  t_dump+=("$(echo "$e - $s" | bc -l)")
  s=$(now); ./target/release/autoblock replay --config rules.toml "$file" >/dev/null; e=$(now)
  t_ab+=("$(echo "$e - $s" | bc -l)")
  printf 'run %d: tcpdump %.3fs  autoblock %.3fs\n' "$i" "${t_dump[-1]}" "${t_ab[-1]}"
done
md=$(printf '%s\n' "${t_dump[@]}" | median)
ma=$(printf '%s\n' "${t_ab[@]}" | median)
distinct=$(./target/release/autoblock replay --config rules.toml --format json "$file" | tail -1 | sed -n 's/.*"sources":\([0-9]*\).*/\1/p')
printf 'file: %s (%s packets, %s distinct sources, %s)\n' "$file" "$packets" "$distinct" "$dist"
printf 'median tcpdump -r F -w /dev/null: %.3fs (%.2f Mpps)\n' "$md" "$(echo "$packets / $md / 1000000" | bc -l)"
printf 'median autoblock replay F:        %.3fs (%.2f Mpps)\n' "$ma" "$(echo "$packets / $ma / 1000000" | bc -l)"
printf 'ratio autoblock/tcpdump: %.2f (target <= 1.5)\n' "$(echo "$ma / $md" | bc -l)"
