#!/usr/bin/env bash
# Replay throughput, side by side with tcpdump on the same generated file in the same run.
# Usage: benches/replay.sh [PACKETS] [SOURCES] [RUNS] [MIX...]
#   defaults: 2000000 default 7 uniform. SOURCES "default" (or "-") takes each mix's own:
#   64000 for uniform/skewed, 60000 IPv4 (+ a fifth as many IPv6) for mixed, 200000 for zipf.
#   MIX: uniform | skewed | mixed | zipf | all (= the four) | few | scan, several allowed.
# Mixes (examples/gencap.rs says more):
#   uniform  every packet from a random one of all sources (the source table's worst case);
#   skewed   sources drawn log-uniformly (a few busy, many quiet);
#   mixed    issue 10's SYN-heavy IPv4+IPv6 mix, 20 s of capture time, two SYN flooders;
#   zipf     unlike the others: Zipf sources all over the address space, bursty, many ports
#            and protocols, fragments, VLAN, ARP, attackers of every kind;
#   few      benches/live.sh's "few" flood: SYNs to port 80 from 8 sources (SOURCES);
#   scan     "few" with each SYN to a random port: 8 port scanners, their port sets at the cap.
# Each file is replayed with every rule set in RULESETS (default: the shipped rules.toml and
# benches/rules-six.toml, three of whose six rules count distinct values; "agg" names
# benches/rules-agg.toml, the shipped rules plus one with its own /24 aggregation, i.e. a
# second source table; any other word is a path), alternating with
# `tcpdump -r F -w /dev/null` RUNS times (the order rotates each run). Prints each run, then
# a table of medians: wall time, and autoblock's wall time / tcpdump's (the target is <= 1.5);
# CPU is user+sys of the process (autoblock replay runs two threads), and the CPU ratio next to
# the wall ratio: on a shared, loaded machine it is the steadier of the two.
# NOISE=N (default 0) keeps N cores busy during the whole run, for tcpdump and autoblock alike:
# N copies of `dd if=/dev/zero of=/dev/null bs=32M` (each streams 32 MB buffers through the
# caches: a neighbour's memory-heavy job), started before the first run and killed at the end
# (each also stops by itself after an hour). Issue 10 asks for the ratio "under normal noise";
# NOISE=1 on 2 cores is a reproducible stand-in: one core left, shared by both of replay's
# threads, so the wall ratio becomes about the CPU ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-2000000}
sources_arg=${2:-default}
runs=${3:-7}
shift $(( $# < 3 ? $# : 3 )) || true
mixes=("$@")
[ ${#mixes[@]} -eq 0 ] && mixes=(uniform)
[ "${mixes[*]}" = all ] && mixes=(uniform skewed mixed zipf)
read -r -a rulesets <<<"${RULESETS:-shipped six}"
dir=target/bench
mkdir -p "$dir"
noise=${NOISE:-0}
[[ $noise =~ ^[0-9]+$ ]] || { echo "NOISE must be a number of cores, not '$noise'" >&2; exit 2; }
command -v tcpdump >/dev/null || { echo "tcpdump is missing (make deps)" >&2; exit 1; }
cargo build --release --locked --quiet
cargo build --release --locked --quiet --example gencap
ab=${AB:-./target/release/autoblock}
hogs=()
stop_hogs() { for h in "${hogs[@]}"; do kill "$h" 2>/dev/null || true; done; }
trap stop_hogs EXIT
trap 'exit 130' INT TERM
for _ in $(seq "$noise"); do
  timeout 3600 dd if=/dev/zero of=/dev/null bs=32M 2>/dev/null &
  hogs+=($!)
done

rules_file() {
  case $1 in
    shipped) echo rules.toml ;;
    six) echo benches/rules-six.toml ;;
    agg) echo benches/rules-agg.toml ;;
    *) echo "$1" ;;
  esac
}

default_sources() {
  case $1 in
    mixed) echo 60000 ;;
    zipf) echo 200000 ;;
    few|scan) echo 8 ;;
    *) echo 64000 ;;
  esac
}

# The file of a mix, generated once (deterministic: seed 1).
capture_file() {
  local mix=$1 sources=$2
  local file=$dir/replay-${packets}-${sources}-${mix}.pcap
  if [ ! -f "$file" ]; then
    case $mix in
      uniform|skewed) ./target/release/examples/gencap --out "$file.tmp" --packets "$packets" \
          --sources "$sources" --attackers 4 --mix "$mix" ;;
      mixed|zipf|few|scan) ./target/release/examples/gencap --out "$file.tmp" \
          --packets "$packets" --sources "$sources" --mix "$mix" ;;
      *) echo "unknown mix $mix" >&2; exit 2 ;;
    esac
    mv "$file.tmp" "$file"
  fi
  echo "$file"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# Runs a command with output discarded; prints "wall cpu" (seconds, ms resolution).
timed() {
  local TIMEFORMAT='%3R %3U %3S' out
  out=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
  awk '{printf "%.3f %.3f\n", $1, $2 + $3}' <<<"$out"
}

load_start=$(cut -d" " -f1-3 /proc/loadavg)
declare -A wall cpu
summary=()
for mix in "${mixes[@]}"; do
  sources=$sources_arg
  [ "$sources" = default ] || [ "$sources" = - ] && sources=$(default_sources "$mix")
  file=$(capture_file "$mix" "$sources")
  cat "$file" >/dev/null # warm the page cache
  tools=(tcpdump "${rulesets[@]}")
  for t in "${tools[@]}"; do wall[$t]=""; cpu[$t]=""; done
  for i in $(seq "$runs"); do
    line="run $i:"
    n=${#tools[@]}
    for k in $(seq 0 $((n - 1))); do
      t=${tools[$(( (k + i) % n ))]}
      if [ "$t" = tcpdump ]; then
        r=$(timed tcpdump -r "$file" -w /dev/null)
      else
        r=$(timed "$ab" replay --config "$(rules_file "$t")" "$file")
      fi
      read -r w c <<<"$r"
      wall[$t]+="$w "; cpu[$t]+="$c "
      line+=" $t ${w}s (cpu ${c}s)"
    done
    echo "$mix $line"
  done
  distinct=$("$ab" replay --config rules.toml --format json "$file" | tail -1 | sed -n 's/.*"sources":\([0-9]*\).*/\1/p')
  md=$(tr ' ' '\n' <<<"${wall[tcpdump]}" | grep . | median)
  mdc=$(tr ' ' '\n' <<<"${cpu[tcpdump]}" | grep . | median)
  row="$(printf '| %-8s | %s | %s | %.3f s, cpu %.3f s |' "$mix" "$(basename "$file")" "$distinct" "$md" "$mdc")"
  for t in "${rulesets[@]}"; do
    m=$(tr ' ' '\n' <<<"${wall[$t]}" | grep . | median)
    mc=$(tr ' ' '\n' <<<"${cpu[$t]}" | grep . | median)
    row+="$(printf ' %.3f s, cpu %.3f s | **%.2f** (cpu %.2f) |' "$m" "$mc" "$(echo "$m / $md" | bc -l)" "$(echo "$mc / $mdc" | bc -l)")"
  done
  summary+=("$row")
done

echo
header="| mix | file | sources | tcpdump -r F -w /dev/null |"
sep="|---|---|---|---|"
for t in "${rulesets[@]}"; do header+=" autoblock, $t rules | ratio (cpu ratio) |"; sep+="---|---|"; done
echo "medians of $runs runs, $(nproc) cores, $noise of them kept busy (NOISE), load average at start: $load_start, at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$header"
echo "$sep"
printf '%s\n' "${summary[@]}"
echo "target: ratio <= 1.5 (aim 1.2) for every mix and rule set"
