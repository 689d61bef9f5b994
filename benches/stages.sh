#!/usr/bin/env bash
# What each stage of replay costs: the shipped rules.toml split into stage configurations
# (no rules or floods; one rate rule; the four rate rules; the two distinct rules; the four
# flood detectors; the six rules; everything), each replayed ROUNDS times on FILE, with each
# thread's CPU (benches/threadcpu.py: t0 the engine, t1 the reader) beside tcpdump's.
# Usage: benches/stages.sh ROUNDS FILE   (BIN=path to autoblock, default target/release)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=$1; file=$2; bin=${BIN:-target/release/autoblock}
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
# The part before the first [[rule]]/[[flood]], then each block, split by awk.
awk -v d="$dir" '
  /^\[\[(rule|flood)\]\]/ { n++; kind[n] = ($0 ~ /flood/) ? "flood" : "rule" }
  { if (n == 0) head = head $0 "\n"; else block[n] = block[n] $0 "\n" }
  END {
    printf "%s", head > (d "/none.toml")
    r = 0
    for (i = 1; i <= n; i++) {
      if (kind[i] == "flood") { floods = floods block[i]; continue }
      r++; rules = rules block[i]
      if (r == 2) one = block[i]
      if (r <= 4) rates = rates block[i]; else distinct = distinct block[i]
    }
    printf "%s%s", head, one > (d "/one-rate-rule.toml")
    printf "%s%s", head, rates > (d "/rate-rules.toml")
    printf "%s%s", head, distinct > (d "/distinct-rules.toml")
    printf "%s%s", head, floods > (d "/floods.toml")
    printf "%s%s", head, rules > (d "/six-rules.toml")
    printf "%s%s%s", head, rules, floods > (d "/shipped.toml")
  }' rules.toml
echo "file $file, $rounds rounds, load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for c in none one-rate-rule rate-rules distinct-rules floods six-rules shipped; do
  "$bin" check --config "$dir/$c.toml" >/dev/null
  printf '%-15s ' "$c"
  python3 benches/threadcpu.py "$rounds" "$bin" replay --config "$dir/$c.toml" "$file" | tail -1
done
printf '%-15s ' tcpdump
python3 benches/threadcpu.py "$rounds" tcpdump -r "$file" -w /dev/null | tail -1
