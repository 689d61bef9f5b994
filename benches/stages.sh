#!/usr/bin/env bash
# What each stage of replay costs: the shipped rules.toml split into stage configurations
# (no rules or floods; one rate rule; the four rate rules; the two distinct rules; the four
# flood detectors; the six rules; everything), each replayed ROUNDS times on FILE, with each
# thread's CPU (benches/threadcpu.py: t0 the engine, t1 the reader) beside tcpdump's.
# Usage: benches/stages.sh ROUNDS FILE   (BIN=path to autoblock, default target/release;
# ONE=the rule measured alone, default conn-burst). Rules are sorted by their `metric` line:
# packets and bytes are rate rules, dst_ports and dst_addrs distinct ones.
#        benches/stages.sh --configs DIR   writes the stage configurations (none.toml,
# one-rate-rule.toml, rate-rules.toml, distinct-rules.toml, floods.toml, six-rules.toml,
# shipped.toml) into DIR, checks them and stops: for other benchmarks, e.g.
# CONFIG=DIR/none.toml benches/live.sh (the live pipeline with detection off).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-target/release/autoblock}; one=${ONE:-conn-burst}
configs=(none one-rate-rule rate-rules distinct-rules floods six-rules shipped)
if [ "${1:-}" = --configs ]; then
  [ $# -eq 2 ] || { echo "usage: benches/stages.sh --configs DIR" >&2; exit 2; }
  dir=$2; mkdir -p "$dir"
else
  [ $# -eq 2 ] || { echo "usage: benches/stages.sh ROUNDS FILE | --configs DIR" >&2; exit 2; }
  rounds=$1; file=$2
  dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
fi
# The part before the first [[rule]]/[[flood]], then each block, sorted by kind.
awk -v d="$dir" -v one="$one" '
  function keep() {
    if (kind == "flood") floods = floods cur
    else if (kind == "rule") {
      rules = rules cur
      if (cur ~ /(^|\n)metric *= *"(dst_ports|dst_addrs)"/) distinct = distinct cur; else rates = rates cur
      if (cur ~ ("(^|\n)name *= *\"" one "\"")) single = cur
    }
  }
  /^\[\[(rule|flood)\]\]/ { keep(); cur = ""; kind = ($0 ~ /flood/) ? "flood" : "rule" }
  { if (kind == "") head = head $0 "\n"; else cur = cur $0 "\n" }
  END {
    keep()
    if (single == "") { print "no rule named " one > "/dev/stderr"; exit 2 }
    printf "%s", head > (d "/none.toml")
    printf "%s%s", head, single > (d "/one-rate-rule.toml")
    printf "%s%s", head, rates > (d "/rate-rules.toml")
    printf "%s%s", head, distinct > (d "/distinct-rules.toml")
    printf "%s%s", head, floods > (d "/floods.toml")
    printf "%s%s", head, rules > (d "/six-rules.toml")
  }' rules.toml
cp rules.toml "$dir/shipped.toml"
for c in "${configs[@]}"; do "$bin" check --config "$dir/$c.toml" >/dev/null; done
if [ "$1" = --configs ]; then
  printf "$dir/%s.toml\n" "${configs[@]}"
  exit 0
fi
echo "file $file, $rounds rounds, load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for c in "${configs[@]}"; do
  printf '%-15s ' "$c"
  python3 benches/threadcpu.py "$rounds" "$bin" replay --config "$dir/$c.toml" "$file" | tail -1
done
printf '%-15s ' tcpdump
python3 benches/threadcpu.py "$rounds" tcpdump -r "$file" -w /dev/null | tail -1
