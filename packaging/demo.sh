#!/usr/bin/env bash
# autoblock in two minutes, without touching this host's firewall.
#
# Creates two network namespaces joined by a veth pair (attacker 10.77.0.1, victim 10.77.0.2),
# runs the daemon inside the victim namespace with a demo config (8 s bans; socket, state and
# events under a temp dir), floods it with a bounded SYN flood from the attacker namespace,
# shows the ban (events, `autoblock list`, the kernel rule, a probe that gets no answer),
# waits for the ban to expire and shows that too, then stops the daemon and deletes
# everything it created. Every firewall change happens inside the victim namespace.
#
# Usage (as root): packaging/demo.sh            (make demo builds the release binary first)
# Environment: AUTOBLOCK_BIN (default target/release/autoblock),
#              DEMO_PREFIX (namespace name prefix, default abdemo).

set -euo pipefail

BIN=${AUTOBLOCK_BIN:-target/release/autoblock}
PREFIX=${DEMO_PREFIX:-abdemo}
ATK_NS="$PREFIX-$$-atk"
VIC_NS="$PREFIX-$$-vic"
ATK_IP=10.77.0.1
VIC_IP=10.77.0.2
BAN_SECS=8

if [ -t 1 ]; then
  say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  say() { printf '\n== %s\n' "$*"; }
fi
die() { echo "demo: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (network namespaces, iptables)"
[ -x "$BIN" ] || die "$BIN not found: run 'make demo' (it builds the release binary)"
BIN=$(realpath "$BIN")
for tool in ip hping3 iptables; do
  command -v "$tool" >/dev/null || die "$tool is missing: run 'make deps'"
done

TMP=""
DAEMON_PID=""
created_ns=()
cleanup() {
  local rc=$?
  set +e
  if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID"
    for _ in $(seq 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
  fi
  # Anything still running inside our namespaces (an interrupted hping3) was started here.
  for ns in "${created_ns[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  done
  # Deleting a namespace deletes its veth end (and so the pair) and its whole firewall.
  for ns in "${created_ns[@]}"; do ip netns del "$ns" 2>/dev/null; done
  [ -n "$TMP" ] && rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TMP=$(mktemp -d /tmp/autoblock-demo.XXXXXX)
in_atk() { ip netns exec "$ATK_NS" "$@"; }
in_vic() { ip netns exec "$VIC_NS" "$@"; }
show_events() {
  # $1: jq filter over the event kinds to show
  if command -v jq >/dev/null; then
    jq -c "select(.event | test(\"^($1)\$\")) | del(.ts)" "$TMP/events.jsonl"
  else
    grep -E "\"event\":\"($1)\"" "$TMP/events.jsonl" || true
  fi
}

say "two namespaces joined by a veth pair: $ATK_NS ($ATK_IP) -> $VIC_NS ($VIC_IP)"
ip netns add "$ATK_NS"; created_ns+=("$ATK_NS")
ip netns add "$VIC_NS"; created_ns+=("$VIC_NS")
in_atk ip link add veth-atk type veth peer name veth-vic netns "$VIC_NS"
in_atk ip addr add "$ATK_IP/24" dev veth-atk
in_vic ip addr add "$VIC_IP/24" dev veth-vic
for ns in "$ATK_NS" "$VIC_NS"; do ip netns exec "$ns" ip link set lo up; done
in_atk ip link set veth-atk up
in_vic ip link set veth-vic up

cat >"$TMP/rules.toml" <<EOF
# Demo config: capture on the victim's veth, ${BAN_SECS}s bans, everything under $TMP.
[capture]
interfaces = ["veth-vic"]
[enforce]
backend = "iptables"
ban = "${BAN_SECS}s"
keep_on_exit = false
[events]
file = "$TMP/events.jsonl"
[control]
socket = "$TMP/run/autoblock.sock"
[state]
dir = "$TMP/state"

# More than 500 connection attempts (SYN without ACK) from one source within 1 s.
[[rule]]
name = "syn-flood"
protocol = "tcp"
tcp_flags = "syn"
metric = "packets"
threshold = 500
window = "1s"
EOF
say "autoblock check"
"$BIN" check --config "$TMP/rules.toml"

say "start the daemon inside $VIC_NS"
# `ip netns exec` execs the daemon, so $! is the daemon's own pid (no subshell in between).
ip netns exec "$VIC_NS" "$BIN" run --config "$TMP/rules.toml" >"$TMP/stdout.jsonl" 2>"$TMP/daemon.log" &
DAEMON_PID=$!
for _ in $(seq 100); do
  [ -S "$TMP/run/autoblock.sock" ] && grep -q '"event":"started"' "$TMP/events.jsonl" 2>/dev/null && break
  kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$TMP/daemon.log" >&2; die "the daemon exited"; }
  sleep 0.1
done
[ -S "$TMP/run/autoblock.sock" ] || { cat "$TMP/daemon.log" >&2; die "no control socket after 10 s"; }
sleep 0.5   # let the capture start
"$BIN" status --socket "$TMP/run/autoblock.sock"

say "flood: hping3 -S -p 80 -c 5000 -i u200 $VIC_IP (from $ATK_NS)"
in_atk hping3 -q -S -p 80 -c 5000 -i u200 "$VIC_IP" 2>&1 | grep -E 'packets (transmitted|received)|tramsitted|transmitted' || true
sleep 1

say "events so far"
show_events "block|extend|applied"
grep -q '"event":"block"' "$TMP/events.jsonl" || { cat "$TMP/daemon.log" >&2; die "no block event"; }

say "autoblock list"
"$BIN" list --socket "$TMP/run/autoblock.sock"

say "the kernel rule (iptables -S inside $VIC_NS: our chain and its ban chains)"
in_vic iptables -S | grep -E '^-[NA] AUTOBLOCK[ .]'

say "a probe from the banned source gets no answer"
in_atk hping3 -S -p 80 -c 2 -i u300000 "$VIC_IP" 2>&1 | grep -E 'packets' || true

say "waiting for the ${BAN_SECS}s ban to expire"
for _ in $(seq 300); do
  grep -q '"event":"unblock"' "$TMP/events.jsonl" && break
  kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$TMP/daemon.log" >&2; die "the daemon exited"; }
  sleep 0.1
done
grep -q '"event":"unblock"' "$TMP/events.jsonl" || die "no unblock event within 30 s"
sleep 0.5
show_events "unblock"

say "autoblock list (after expiry)"
"$BIN" list --socket "$TMP/run/autoblock.sock"

say "the same probe is answered again (RST: nothing listens on port 80)"
in_atk hping3 -S -p 80 -c 2 -i u300000 "$VIC_IP" 2>&1 | grep -E 'packets' || true

say "stop the daemon (keep_on_exit = false: it removes its chain)"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || true
DAEMON_PID=""
show_events "stopped"
in_vic iptables-save | grep AUTOBLOCK || echo "no AUTOBLOCK chain or rule left in the victim's firewall"

say "clean up: delete both namespaces (and with them the veth pair) and $TMP"
