#!/usr/bin/env bash
# A/B of two autoblock builds on replay.sh's four generated files, side by side with tcpdump.
# Usage: benches/replay-ab.sh ROUNDS BIN_A BIN_B   (run benches/replay.sh once first: it makes
# the files in target/bench). Per round and mix: tcpdump -r F -w /dev/null, then A and B with
# the shipped rules.toml and benches/rules-six.toml, in an order that rotates each round.
# Prints wall and CPU (user+sys) medians per mix and binary:rules, with every round's CPU;
# RAW=FILE also appends every run as "mix tool wall cpu".
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=$1; A=$2; B=$3
declare -A cpu wall
files=(uniform:target/bench/replay-2000000-64000-uniform.pcap skewed:target/bench/replay-2000000-64000-skewed.pcap mixed:target/bench/replay-2000000-60000-mixed.pcap zipf:target/bench/replay-2000000-200000-zipf.pcap)
rules=(shipped:rules.toml six:benches/rules-six.toml)
timed() { local TIMEFORMAT='%3R %3U %3S' out; out=$( { time "$@" >/dev/null 2>&1; } 2>&1 ); awk '{printf "%.3f %.3f\n", $1, $2 + $3}' <<<"$out"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$rounds"); do
  for fm in "${files[@]}"; do
    mix=${fm%%:*}; f=${fm#*:}
    tools=(tcpdump)
    for rr in "${rules[@]}"; do tools+=("A:$rr" "B:$rr"); done
    n=${#tools[@]}
    for k in $(seq 0 $((n-1))); do
      t=${tools[$(( (k + i) % n ))]}
      case $t in
        tcpdump) r=$(timed tcpdump -r "$f" -w /dev/null) ;;
        A:*) rr=${t#A:}; r=$(timed "$A" replay --config "${rr#*:}" "$f") ;;
        B:*) rr=${t#B:}; r=$(timed "$B" replay --config "${rr#*:}" "$f") ;;
      esac
      read -r w c <<<"$r"
      key="$mix ${t%:*}"
      [ "$t" = tcpdump ] && key="$mix tcpdump"
      cpu[$key]+="$c "; wall[$key]+="$w "; echo "$key $w $c" >> "${RAW:-/dev/null}"
    done
  done
  echo "round $i done, load $(cut -d' ' -f1-3 /proc/loadavg)"
done
while IFS= read -r k; do
  printf '%-22s wall %.3f cpu %.3f   cpu runs: %s\n' "$k" "$(tr ' ' '\n' <<<"${wall[$k]}" | grep . | median)" "$(tr ' ' '\n' <<<"${cpu[$k]}" | grep . | median)" "${cpu[$k]}"
done < <(printf '%s\n' "${!cpu[@]}" | sort)
