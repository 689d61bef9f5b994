#!/usr/bin/env bash
# Records one of benches/live.sh's trafgen floods into a pcap file, for replay and callgrind
# (as root; inside two network namespaces this script creates and deletes; the host's tables
# are untouched; trafgen stops after COUNT packets, and after 120 s whatever happens).
# Usage: benches/record-flood.sh MODE COUNT RATE OUT
#   MODE  many (64k sources, SYNs to port 80) | few (8 sources) | scan (8 sources, each SYN to
#         a random port: port scanners whose distinct-port sets sit at their cap)
#   RATE  trafgen's --rate, e.g. 200000pps (slow enough that tcpdump drops nothing)
set -euo pipefail
[ $# = 4 ] || { sed -n '2,8p' "$0" >&2; exit 2; }
MODE=$1 COUNT=$2 RATE=$3 OUT=$4
[ "$(id -u)" = 0 ] || { echo "record-flood.sh: needs root (network namespaces)" >&2; exit 1; }
command -v trafgen >/dev/null || { echo "record-flood.sh: trafgen is missing (make deps)" >&2; exit 1; }
case $MODE in
  many|few|scan) ;;
  *) echo "record-flood.sh: MODE is many, few or scan" >&2; exit 2 ;;
esac
A=abR-$$-a V=abR-$$-v VIC=10.209.0.2 TMP=$(mktemp -d)
cleanup() { ip netns del "$A" 2>/dev/null || true; ip netns del "$V" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
. "$(dirname "$0")/flood-lib.sh"
flood_netns "$A" "$V" "$VIC"
flood_cfg "$MODE" "$VIC" "$TMP/flood.cfg"
ip netns exec "$V" tcpdump -ni va -w "$OUT" -s 128 -B 65536 2>"$TMP/err" &
T=$!
for _ in $(seq 100); do grep -q listening "$TMP/err" && break; sleep 0.1; done
ip netns exec "$A" timeout 120 trafgen -o eth0 -P 1 -n "$COUNT" -b "$RATE" -c "$TMP/flood.cfg" >/dev/null 2>&1 || true
sleep 1
kill -INT "$T"; wait "$T" || true
cat "$TMP/err" >&2
