# autoblock: `make run` and `make test` do all the set-up on a fresh Debian machine, as root.

SHELL := /bin/bash
CARGO ?= cargo
# System packages: libpcap to build against, the firewall tools we drive, the tools the
# namespace tests use to make real traffic, tcpdump for the replay benchmark, debootstrap +
# systemd-nspawn for the test of the .deb in a Debian container booted by systemd, and for the
# engine benchmarks (issue 10): trafgen (netsniff-ng) for benches/live.sh, /usr/bin/time for
# benches/memory.sh, perf and valgrind for the profiles in BENCHMARKS.md; nats-server
# (JetStream) and openssl (a test CA) for the fleet tests and benches/fleet.sh (the
# nats-server package enables a system service: the tests start their own brokers inside
# namespaces and never use that one); python3 for the sockets of tests/it/peers_netlink.rs
# and benches/peers.sh.
APT_PACKAGES := pkg-config libpcap-dev iptables ipset nftables iproute2 kmod procps \
                hping3 nmap tcpdump iperf3 netcat-openbsd bc python3 \
                dpkg-dev systemd man-db jq logrotate \
                debootstrap systemd-container \
                netsniff-ng time linux-perf valgrind \
                nats-server openssl
# Packaging: `cargo deb` builds target/debian/autoblock_*.deb (metadata in Cargo.toml).
CARGO_DEB_VERSION := 3.8.0
ASSETS := target/assets
CONFIG ?= rules.toml
DEMO_PCAP := target/demo/generated.pcap

.PHONY: all deps build run replay-demo test lint bench bench-memory bench-live bench-reaction bench-fleet clean deb assets demo

all: build

deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "error: run as root to install:$$missing" >&2; exit 1; fi; \
	  apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq $$missing >/dev/null; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found; install a Rust toolchain (rustup) first" >&2; exit 1; }
	@$(CARGO) deb --version 2>/dev/null | grep -qx 'cargo-deb $(CARGO_DEB_VERSION)' || \
	  { echo "installing cargo-deb $(CARGO_DEB_VERSION)"; $(CARGO) install --locked --quiet cargo-deb --version $(CARGO_DEB_VERSION); }

build: deps
	$(CARGO) build --release --locked

# The main job: the daemon with the shipped rules, in the foreground (events on stdout;
# Ctrl-C stops it; bans stay in the kernel until they expire, see keep_on_exit).
# Try `make run ARGS=--dry-run` first to see what it would block without touching the firewall.
run: build
	./target/release/autoblock check --config $(CONFIG)
	./target/release/autoblock run --config $(CONFIG) $(ARGS)

# A replay of a capture the project generates itself: no root, no firewall.
replay-demo: build
	mkdir -p $(dir $(DEMO_PCAP))
	$(CARGO) run --release --locked --example gencap -- --out $(DEMO_PCAP) --packets 200000 --sources 5000 --attackers 3
	./target/release/autoblock replay --config $(CONFIG) $(DEMO_PCAP)

lint: deps
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --locked --no-deps --workspace --quiet

# The packaging tests inspect the .deb that `make deb` just built (cargo deb inside cargo test
# would fight over the build lock).
test: deps lint deb
	$(CARGO) test --locked -- --test-threads=2

# Man pages and completions from the CLI definition, and the packaged rules.toml: the repo's
# file with the events file switched on (the service keeps it under /var/log/autoblock, which
# logrotate rotates; a run from the checkout writes events to stdout only).
assets: deps
	rm -rf $(ASSETS)
	$(CARGO) run --locked --quiet --example gen-docs -- $(ASSETS)
	sed 's|^file = ""$$|file = "/var/log/autoblock/events.jsonl"|' rules.toml > $(ASSETS)/rules.toml
	grep -qx 'file = "/var/log/autoblock/events.jsonl"' $(ASSETS)/rules.toml
	$(CARGO) run --locked --quiet -- check --config $(ASSETS)/rules.toml >/dev/null

deb: assets
	$(CARGO) deb --locked --strip
	@ls -1 target/debian/*.deb

# Two network namespaces, a bounded SYN flood, a ban and its expiry; nothing is left behind.
demo: build
	bash packaging/demo.sh

# Replay vs tcpdump on every generated mix, shipped and six rules: BENCHMARKS.md "Engine baseline".
bench: build
	./benches/replay.sh 2000000 default 7 all

# Peak RSS of replay with up to 1M tracked sources.
bench-memory: build
	./benches/memory.sh

# CPU per packet and drops of a live capture under a trafgen flood, vs tcpdump (as root).
bench-live: build
	./benches/live.sh

# Flood -> DROP in the kernel, end to end in namespaces (as root): BENCHMARKS.md "Reaction time".
bench-reaction: build
	./benches/reaction.sh

# Ban propagation through nats-server (as root, in namespaces): two fleet nodes (the link),
# then three daemons end to end (release build). BENCHMARKS.md "Fleet".
bench-fleet: deps
	$(CARGO) build --release --locked
	E2E=1 ./benches/fleet.sh

clean:
	$(CARGO) clean
