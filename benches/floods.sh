#!/usr/bin/env bash
# What the flood detectors cost: replay time of the same files with the shipped rules.toml
# (its [[flood]] detectors on) and with the same file without its [[flood]] tables (off),
# alternating in one run (the order rotates each run): medians of wall and CPU time (user +
# sys of both replay threads), and the fastest wall time of each (on a shared, loaded machine
# the least disturbed run is the steadiest figure).
# Usage: [AB=BINARY] benches/floods.sh RUNS FILE...
#   AB: an autoblock binary already built (default: cargo build --release, then that one).
#   FILE: captures such as the engine benchmark's mixes (examples/gencap.rs --mix uniform,
#   skewed, mixed, zipf; benches/replay.sh writes them to target/bench/).
# Target: on / off <= 1.10 for every file.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:?usage: benches/floods.sh RUNS FILE...}
shift
[ $# -gt 0 ] || { echo "usage: benches/floods.sh RUNS FILE..." >&2; exit 2; }
dir=target/bench
mkdir -p "$dir"
if [ -n "${AB:-}" ]; then
  ab=$AB
else
  cargo build --release --locked --quiet
  ab=./target/release/autoblock
fi
on=rules.toml
off=$dir/rules-no-floods.toml
# Every [[flood]] table dropped: from its header to the next blank line or table.
awk '/^\[\[flood\]\]/ {skip = 1; next} skip && (/^$/ || /^\[/) {skip = 0} !skip' "$on" >"$off"
grep -q '^\[\[flood\]\]' "$off" && { echo "could not strip [[flood]] from $on" >&2; exit 1; }
"$ab" check --config "$off" >/dev/null

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# Runs a command with output discarded; prints "wall cpu" (seconds, ms resolution).
timed() {
  local TIMEFORMAT='%3R %3U %3S' out
  out=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
  awk '{printf "%.3f %.3f\n", $1, $2 + $3}' <<<"$out"
}

load_start=$(cut -d" " -f1-3 /proc/loadavg)
rows=()
for file in "$@"; do
  cat "$file" >/dev/null # warm the page cache
  declare -A wall=([on]="" [off]="") cpu=([on]="" [off]="")
  for i in $(seq "$runs"); do
    order=(on off)
    [ $((i % 2)) -eq 0 ] && order=(off on)
    line="run $i:"
    for t in "${order[@]}"; do
      cfg=$on
      [ "$t" = off ] && cfg=$off
      read -r w c <<<"$(timed "$ab" replay --config "$cfg" "$file")"
      wall[$t]+="$w "; cpu[$t]+="$c "
      line+=" $t ${w}s (cpu ${c}s)"
    done
    echo "$(basename "$file") $line"
  done
  attacks=$("$ab" replay --config "$on" --format json "$file" | grep -c '"event":"attack"' || true)
  m() { tr ' ' '\n' <<<"$1" | grep . | median; }
  lo() { tr ' ' '\n' <<<"$1" | grep . | sort -g | head -1; }
  won=$(m "${wall[on]}"); woff=$(m "${wall[off]}"); con=$(m "${cpu[on]}"); coff=$(m "${cpu[off]}")
  mon=$(lo "${wall[on]}"); moff=$(lo "${wall[off]}")
  rows+=("$(printf '| %s | %s | %.3f s (cpu %.3f s, fastest %.3f s) | %.3f s (cpu %.3f s, fastest %.3f s) | **%.3f** (cpu %.3f, fastest %.3f) |' \
    "$(basename "$file")" "$attacks" "$woff" "$coff" "$moff" "$won" "$con" "$mon" \
    "$(echo "$won / $woff" | bc -l)" "$(echo "$con / $coff" | bc -l)" "$(echo "$mon / $moff" | bc -l)")")
  unset wall cpu
done
echo
echo "medians of $runs runs, $(nproc) cores, load average at start: $load_start, at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| file | attacks reported | detectors off: median wall | detectors on: median wall | on / off: wall (cpu, fastest) |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo "target: on / off <= 1.10"
