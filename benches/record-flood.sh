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
dp=80
case $MODE in
  many) src='sa[2]=drnd(), sa[3]=drnd()' ;;
  few) src='sa[3]=drnd(1, 8)' ;;
  scan) src='sa[3]=drnd(1, 8)'; dp='drnd()' ;;
  *) echo "record-flood.sh: MODE is many, few or scan" >&2; exit 2 ;;
esac
A=abR-$$-a V=abR-$$-v VIC=10.209.0.2 TMP=$(mktemp -d)
cleanup() { ip netns del "$A" 2>/dev/null || true; ip netns del "$V" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
ip netns add "$A"; ip netns add "$V"
ip -n "$A" link set lo up; ip -n "$V" link set lo up
ip -n "$V" link add va type veth peer name eth0 netns "$A"
ip -n "$V" addr add "$VIC/24" dev va; ip -n "$A" addr add 10.209.0.1/24 dev eth0
ip -n "$V" link set va up; ip -n "$A" link set eth0 up
vmac=$(ip -n "$V" -o link show va | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
cat >"$TMP/flood.cfg" <<EOF
{
  eth(da=$vmac),
  ipv4(sa=198.18.0.0, da=$VIC, $src),
  tcp(sp=drnd(), dp=$dp, syn)
}
EOF
ip netns exec "$V" tcpdump -ni va -w "$OUT" -s 128 -B 65536 2>"$TMP/err" &
T=$!
for _ in $(seq 100); do grep -q listening "$TMP/err" && break; sleep 0.1; done
ip netns exec "$A" timeout 120 trafgen -o eth0 -P 1 -n "$COUNT" -b "$RATE" -c "$TMP/flood.cfg" >/dev/null 2>&1 || true
sleep 1
kill -INT "$T"; wait "$T" || true
cat "$TMP/err" >&2
