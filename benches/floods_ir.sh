#!/usr/bin/env bash
# What the flood detectors cost, counted rather than timed: instructions and first-level data
# cache misses (valgrind's cachegrind, deterministic) of replaying the first PACKETS packets of
# each FILE with the shipped rules.toml (detectors on) and with the same file without its
# [[flood]] tables (off, as benches/floods.sh makes it). On a shared, noisy machine a 10%
# difference in wall time is within the noise of a run; these counts are the same every run.
# Usage: [AB=BINARY] benches/floods_ir.sh PACKETS FILE...
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:?usage: benches/floods_ir.sh PACKETS FILE...}
shift
[ $# -gt 0 ] || { echo "usage: benches/floods_ir.sh PACKETS FILE..." >&2; exit 2; }
command -v valgrind >/dev/null || { echo "floods_ir.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
dir=target/bench
mkdir -p "$dir"
if [ -n "${AB:-}" ]; then ab=$AB; else cargo build --release --locked --quiet; ab=./target/release/autoblock; fi
on=rules.toml
off=$dir/rules-no-floods.toml
awk '/^\[\[flood\]\]/ {skip = 1; next} skip && (/^$/ || /^\[/) {skip = 0} !skip' "$on" >"$off"
# "instructions d1-misses" of one replay.
counts() {
  valgrind --tool=cachegrind --cache-sim=yes --cachegrind-out-file=/dev/null \
    "$ab" replay --config "$1" "$2" 2>&1 >/dev/null |
    awk '/ I +refs:/ {gsub(",", "", $4); i = $4} / D1 +misses:/ {gsub(",", "", $4); d = $4} END {print i, d}'
}
echo "| file (first $n packets) | off: instructions, D1 misses | on: instructions, D1 misses | on / off: instructions (D1 misses) |"
echo "|---|---|---|---|"
for f in "$@"; do
  cut="$dir/first-$n-$(basename "$f")"
  [ -s "$cut" ] || tcpdump -r "$f" -c "$n" -w "$cut" 2>/dev/null
  read -r i0 d0 < <(counts "$off" "$cut")
  read -r i1 d1 < <(counts "$on" "$cut")
  awk -v f="$(basename "$f")" -v i0="$i0" -v d0="$d0" -v i1="$i1" -v d1="$d1" 'BEGIN {
    printf "| %s | %.1fM, %.2fM | %.1fM, %.2fM | **%.3f** (%.3f) |\n", f, i0/1e6, d0/1e6, i1/1e6, d1/1e6, i1/i0, d1/d0 }'
done
