//! `rules.toml` -> a validated [`Config`]: serde reads raw structs (unknown keys rejected),
//! then validation builds these typed values and reports every problem at once, each with its
//! file, line, column and TOML key.
//!
//! Files: `raw.rs` + `parse.rs` + `keys.rs` (stage one, serde; every unknown key),
//! `validate.rs` + `rule.rs` + `flood_validate.rs` + `cluster.rs` (stage two, defaults and
//! checks; `flood.rs`: the `[[flood]]` detector's types; `warnings.rs`:
//! what is valid but probably not meant), `duration.rs` ("10m" <-> `Duration`), `error.rs`
//! ([`ConfigError`]). The typed structs below are the contract the rest of the program relies
//! on: once built, every value is in range.

mod backend;
mod cluster;
mod diff;
pub mod duration;
mod error;
mod flood;
mod flood_validate;
pub mod keys;
mod parse;
mod raw;
mod rule;
mod validate;
mod warnings;

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod flood_tests;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

/// The firewall library's own backend type (`iptables`, `ipset` or `nftables`).
pub use crate::firewall::Backend;
pub use backend::{BackendChoice, auto_candidates, unfit};
pub use cluster::{FLEET_NAME_MAX, NODE_NAME_MAX, is_cluster_name};
pub use diff::diff;
pub use error::{ConfigError, Problem, locate};
pub use flood::{Flood, FloodAction, FloodFlags, FloodMetric, FloodScope, Fragments};
pub use validate::{load, parse_str};

/// `[control] socket` when the file does not set it.
pub const DEFAULT_SOCKET: &str = "/run/autoblock/autoblock.sock";

/// Where the daemon and `check` look without `--config`: `./rules.toml` if it exists, else
/// `/etc/autoblock/rules.toml`.
pub fn default_path() -> PathBuf {
    let local = Path::new("rules.toml");
    if local.exists() {
        local.to_owned()
    } else {
        PathBuf::from("/etc/autoblock/rules.toml")
    }
}

/// The whole, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[capture]`: what is captured, and where.
    pub capture: CaptureConfig,
    /// `[enforce]`: how bans are made, how long they last, and their guards.
    pub enforce: EnforceConfig,
    /// `[allow]`: what is never banned.
    pub allow: AllowConfig,
    /// `[limits]`: memory bounds.
    pub limits: LimitsConfig,
    /// `[events]`: where events go besides stdout.
    pub events: EventsConfig,
    /// `[control]`: the socket the CLI talks to.
    pub control: ControlConfig,
    /// `[state]`: what survives a restart.
    pub state: StateConfig,
    /// `[metrics]`: the Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// `[cluster]`: sharing bans with a fleet of nodes.
    pub cluster: ClusterConfig,
    /// `[[rule]]`: the detection rules, in file order.
    pub rules: Vec<Rule>,
    /// `[[flood]]`: detectors of floods from many sources, per protected destination (or in
    /// total), in file order.
    pub floods: Vec<Flood>,
    /// What is valid but probably not meant (an empty file, a rule another rule shadows, a
    /// very short aggregation prefix): `check` prints them, the daemon logs them.
    pub warnings: Vec<Problem>,
}

/// `[capture]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureConfig {
    /// Interfaces captured live; empty means "the interface of the default route".
    pub interfaces: Vec<String>,
    /// Extra libpcap filter, ANDed with nothing: used as given. `None` when empty.
    pub bpf_filter: Option<String>,
    /// Bytes kept per packet; headers fit in 128.
    pub snaplen: u32,
}

/// `[enforce]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EnforceConfig {
    /// One DROP rule per offender in the chain, two hash:net sets or an nftables table with
    /// kernel timeouts, or `auto`: the first of those that fits and works here, chosen at start.
    pub backend: BackendChoice,
    /// Dedicated chain name (validated: 1-28 chars of [A-Za-z0-9_-]).
    pub chain: String,
    /// Hooks that jump to the chain: `INPUT`, `FORWARD`, or `raw:PREROUTING` style `table:CHAIN`.
    pub hooks: Vec<String>,
    /// The ban of a first offense (a rule may set its own).
    pub ban: Duration,
    /// No ban lasts longer, however often a source offends.
    pub max_ban: Duration,
    /// An offense within this long of the previous one counts as a repeat.
    pub repeat_window: Duration,
    /// A repeat offender's ban is the previous one times this.
    pub repeat_multiplier: f64,
    /// Bans in force at most; beyond it verdicts are suppressed (`cap`).
    pub max_active_bans: usize,
    /// New bans per second at most; beyond it verdicts are suppressed (`rate`).
    pub max_new_bans_per_sec: u32,
    /// Bans stay in the kernel when the daemon stops (the next start adopts them).
    pub keep_on_exit: bool,
    /// Log every decision, never touch the kernel.
    pub dry_run: bool,
    /// A banned source still over its threshold gets its ban extended.
    pub extend_while_active: bool,
    /// How often the kernel state is checked for external changes.
    pub check_interval: Duration,
    /// nftables: base-chain priority relative to the hook's table (default -10).
    pub priority: i32,
}

/// `[allow]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowConfig {
    /// Never flagged, never banned, and no ban on a prefix that overlaps one of these.
    pub nets: Vec<IpNet>,
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    /// Upper bound on per-source state; beyond it new sources are not tracked (and reported).
    pub max_tracked_sources: usize,
}

/// `[events]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventsConfig {
    /// Events are appended here (JSON lines) as well as written to stdout.
    pub file: Option<PathBuf>,
}

/// `[control]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlConfig {
    /// Unix socket of the running daemon.
    pub socket: PathBuf,
}

/// `[state]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StateConfig {
    /// Offense history and manual bans, written atomically.
    pub dir: PathBuf,
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricsConfig {
    /// Prometheus endpoint; `None` disables it.
    pub listen: Option<SocketAddr>,
}

/// `[cluster]`: sharing bans with a fleet through NATS JetStream (see `crate::cluster`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// NATS servers, `nats://` or `tls://` URLs (all members of a NATS cluster); empty: this
    /// node shares nothing and applies nothing.
    pub servers: Vec<String>,
    /// The fleet (1-32 of A-Z a-z 0-9 _ -): its stream and subjects are derived from it.
    pub name: String,
    /// This node's name (1-64 of A-Z a-z 0-9 _ -); `None`: the host name, resolved at start
    /// (`cluster::resolve_node`), not here.
    pub node: Option<String>,
    /// Which of our own bans are published.
    pub share: ShareKinds,
    /// Bans published by other nodes are applied here.
    pub accept: bool,
    /// A NATS `.creds` file (JWT + NKey seed); `None`: no credentials.
    pub credentials: Option<PathBuf>,
}

impl ClusterConfig {
    /// True when at least one server is configured.
    pub fn enabled(&self) -> bool {
        !self.servers.is_empty()
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            servers: Vec::new(),
            name: "default".to_owned(),
            node: None,
            share: ShareKinds {
                rules: true,
                manual: true,
            },
            accept: true,
            credentials: None,
        }
    }
}

/// `[cluster] share`: the kinds of our own bans that go to the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareKinds {
    /// `"rules"`: bans (and their extensions and unbans) made by a rule.
    pub rules: bool,
    /// `"manual"`: bans made by an operator (`autoblock ban`).
    pub manual: bool,
}

/// `protocol` of a rule: which packets it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP only.
    Tcp,
    /// UDP only.
    Udp,
    /// ICMP and ICMPv6.
    Icmp,
    /// Every IP packet.
    Any,
}

/// `tcp_flags` of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpFlagsFilter {
    /// SYN set, ACK clear: connection attempts.
    Syn,
}

/// What a rule counts per source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Packets.
    Packets,
    /// Bytes on the wire.
    Bytes,
    /// Distinct destination ports (scans).
    DstPorts,
    /// Distinct destination addresses (sweeps).
    DstAddrs,
}

impl Metric {
    /// The name used in `rules.toml` and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Packets => "packets",
            Metric::Bytes => "bytes",
            Metric::DstPorts => "dst_ports",
            Metric::DstAddrs => "dst_addrs",
        }
    }
}

/// One validated `[[rule]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Unique; appears in events and in the kernel rule comments.
    pub name: String,
    /// Which packets count.
    pub protocol: Protocol,
    /// Only TCP packets with these flags count; `None` means all.
    pub tcp_flags: Option<TcpFlagsFilter>,
    /// Only packets to these destination ports count; `None` means all.
    pub dst_ports: Option<Vec<u16>>,
    /// What is counted.
    pub metric: Metric,
    /// The rule fires when the count within `window` exceeds this.
    pub threshold: u64,
    /// The sliding window the count covers.
    pub window: Duration,
    /// Overrides `[enforce].ban`.
    pub ban: Option<Duration>,
    /// Prefix lengths that group sources into one offender.
    pub aggregate_v4: u8,
    /// Like `aggregate_v4`, for IPv6 (64 makes a /64 one offender).
    pub aggregate_v6: u8,
    /// Packets from a service port (< 1024) to an ephemeral port (>= 1024) are replies (DNS
    /// answers, SYN-ACKs), not probes: they are not counted. Default: on for the distinct
    /// metrics (`dst_ports`, `dst_addrs`), off for `packets` and `bytes` (a reflection flood
    /// is made of replies).
    pub skip_replies: bool,
    /// Evidence from this rule may ban a verified peer (an established TCP peer, an SSH
    /// session, a gateway, a resolver). Off by default: SYN, UDP and ICMP counts can be forged
    /// with a peer's address, so a verified peer that fires is reported (`suppressed` with
    /// reason `peer`), never banned.
    pub ban_verified_peers: bool,
    /// `enforce` bans; `log` decides and reports (`suppressed` with reason `log`) but never
    /// bans: a trial run of a new rule on live traffic.
    pub mode: RuleMode,
    /// Sources in these nets are not counted by this rule (other rules still count them).
    pub exempt: Vec<IpNet>,
}

/// `mode` of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuleMode {
    /// Fire, ban, extend.
    #[default]
    Enforce,
    /// Fire and report, never ban or extend.
    Log,
}

impl RuleMode {
    /// The name used in `rules.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleMode::Enforce => "enforce",
            RuleMode::Log => "log",
        }
    }
}
