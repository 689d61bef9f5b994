//! `rules.toml` -> a validated [`Config`]: serde reads raw structs (unknown keys rejected),
//! then validation builds these typed values and reports every problem at once, each with its
//! file, line, column and TOML key.
//!
//! Files: `raw.rs` + `parse.rs` (stage one, serde), `validate.rs` + `rule.rs` (stage two,
//! defaults and checks), `duration.rs` ("10m" <-> `Duration`), `error.rs` ([`ConfigError`]).
//! The typed structs below are the contract the rest of the program relies on: once built,
//! every value is in range.

pub mod duration;
mod error;
mod parse;
mod raw;
mod rule;
mod validate;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

/// `enforce.backend`: the firewall library's own type (`iptables`, `ipset` or `nftables`).
pub use crate::firewall::Backend;
pub use error::{ConfigError, Problem};
pub use validate::{load, parse_str};

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
    pub capture: CaptureConfig,
    pub enforce: EnforceConfig,
    pub allow: AllowConfig,
    pub limits: LimitsConfig,
    pub events: EventsConfig,
    pub control: ControlConfig,
    pub state: StateConfig,
    pub metrics: MetricsConfig,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CaptureConfig {
    /// Interfaces captured live; empty means "the interface of the default route".
    pub interfaces: Vec<String>,
    /// Extra libpcap filter, ANDed with nothing: used as given. `None` when empty.
    pub bpf_filter: Option<String>,
    /// Bytes kept per packet; headers fit in 128.
    pub snaplen: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnforceConfig {
    /// One DROP rule per offender in the chain, or two hash:net sets with kernel timeouts.
    pub backend: Backend,
    /// Dedicated chain name (validated: 1-28 chars of [A-Za-z0-9_-]).
    pub chain: String,
    /// Hooks that jump to the chain: `INPUT`, `FORWARD`, or `raw:PREROUTING` style `table:CHAIN`.
    pub hooks: Vec<String>,
    pub ban: Duration,
    pub max_ban: Duration,
    pub repeat_window: Duration,
    pub repeat_multiplier: f64,
    pub max_active_bans: usize,
    pub max_new_bans_per_sec: u32,
    pub keep_on_exit: bool,
    pub dry_run: bool,
    /// A banned source still over its threshold gets its ban extended.
    pub extend_while_active: bool,
    /// How often the kernel state is checked for external changes.
    pub check_interval: Duration,
    /// nftables: base-chain priority relative to the hook's table (default -10).
    pub priority: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AllowConfig {
    /// Never flagged, never banned, and no ban on a prefix that overlaps one of these.
    pub nets: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    /// Upper bound on per-source state; beyond it new sources are not tracked (and reported).
    pub max_tracked_sources: usize,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventsConfig {
    /// Events are appended here (JSON lines) as well as written to stdout.
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ControlConfig {
    /// Unix socket of the running daemon.
    pub socket: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StateConfig {
    /// Offense history and manual bans, written atomically.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricsConfig {
    /// Prometheus endpoint; `None` disables it.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpFlagsFilter {
    /// SYN set, ACK clear: connection attempts.
    Syn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Packets,
    Bytes,
    /// Distinct destination ports (scans).
    DstPorts,
    /// Distinct destination addresses (sweeps).
    DstAddrs,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Packets => "packets",
            Metric::Bytes => "bytes",
            Metric::DstPorts => "dst_ports",
            Metric::DstAddrs => "dst_addrs",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Unique; appears in events and in the kernel rule comments.
    pub name: String,
    pub protocol: Protocol,
    pub tcp_flags: Option<TcpFlagsFilter>,
    /// Only packets to these destination ports count; `None` means all.
    pub dst_ports: Option<Vec<u16>>,
    pub metric: Metric,
    /// The rule fires when the count within `window` exceeds this.
    pub threshold: u64,
    pub window: Duration,
    /// Overrides `[enforce].ban`.
    pub ban: Option<Duration>,
    /// Prefix lengths that group sources into one offender.
    pub aggregate_v4: u8,
    pub aggregate_v6: u8,
    /// Packets from a service port (< 1024) to an ephemeral port (>= 1024) are replies (DNS
    /// answers, SYN-ACKs), not probes: they are not counted. Default: on for the distinct
    /// metrics (`dst_ports`, `dst_addrs`), off for `packets` and `bytes` (a reflection flood
    /// is made of replies).
    pub skip_replies: bool,
}
