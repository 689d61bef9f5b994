#!/usr/bin/env bash
# Peak memory of `autoblock replay` with many tracked sources (issue 10: <= 128 MB at 1M).
# Usage: benches/memory.sh [PACKETS] [LIMITS...]   (defaults: 1000000 "1000 100000 1000000")
# The file: PACKETS packets, each from a new source (gencap --mix distinct: every 8th IPv6;
# SYN, UDP, ICMP echo and TCP data in turn, to 16 servers and 7 ports), over PACKETS/200k s of
# capture time, shorter than the longest window, so nothing goes idle and every source stays
# tracked up to the limit. Rule sets: benches/rules-memory.toml (every metric kind: packets,
# bytes, dst_ports, dst_addrs) and the shipped rules.toml, each with max_tracked_sources set
# to every value of LIMITS. Peak RSS is the kernel's (/usr/bin/time -v: maximum resident set
# size); the engine's own figures come from replay's summary event.
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-1000000}
shift || true
limits=("$@")
[ ${#limits[@]} -eq 0 ] && limits=(1000 100000 1000000)
dir=target/bench
file=$dir/memory-${packets}-distinct.pcap
mkdir -p "$dir"
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing (Debian package time)" >&2; exit 1; }
cargo build --release --locked --quiet
cargo build --release --locked --quiet --example gencap
[ -f "$file" ] || { ./target/release/examples/gencap --out "$file.tmp" --mix distinct --packets "$packets" && mv "$file.tmp" "$file"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat "$file" >/dev/null

field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" <<<"$2"; }

echo "file: $file ($packets packets, one per source)"
echo "| rules | max_tracked_sources | peak RSS | engine tables (peak) | sources in report | untracked packets | wall |"
echo "|---|---|---|---|---|---|---|"
for rules in benches/rules-memory.toml rules.toml; do
  for limit in "${limits[@]}"; do
    cfg=$tmp/rules.toml
    # The same rules with only [limits] max_tracked_sources changed.
    grep -q '^max_tracked_sources = ' "$rules" || { echo "$rules: no max_tracked_sources line" >&2; exit 1; }
    sed "s/^max_tracked_sources = .*/max_tracked_sources = $limit/" "$rules" >"$cfg"
    start=$(date +%s%N)
    /usr/bin/time -v -o "$tmp/time" "${AB:-./target/release/autoblock}" replay --config "$cfg" --format json "$file" >"$tmp/out"
    wall=$(( ($(date +%s%N) - start) / 1000000 ))
    rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tmp/time")
    summary=$(tail -1 "$tmp/out")
    printf '| %s | %s | %.1f MB | %.1f MB | %s | %s | %d ms |\n' "$(basename "$rules")" "$limit" \
      "$(echo "$rss_kb / 1024" | bc -l)" "$(echo "$(field peak_table_bytes "$summary") / 1048576" | bc -l)" \
      "$(field sources "$summary")" "$(field untracked_packets "$summary")" "$wall"
  done
done
echo "target: <= 128 MB peak RSS at max_tracked_sources = 1000000 (and a report bounded by it)"
