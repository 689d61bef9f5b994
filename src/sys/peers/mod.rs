//! Gathering the verified peers (I/O edge): reads the kernel's socket tables, conntrack and
//! routes of the daemon's network namespace (the socket tables over netlink, [`sock_diag`],
//! else `/proc/net/tcp*`; the rest from `/proc/net/*`, which is `/proc/self/net/*`) and the
//! resolver files, and builds a [`PeerSet`] with why each peer is protected.
//!
//! The reading sits behind [`PeerFacts`] ([`ProcFiles`] for real, [`RecordedFacts`] for tests of
//! callers); the parsing and the set are pure (`crate::trust`). A file that does not exist (no
//! conntrack module, no IPv6, no systemd-resolved) adds nothing; one that cannot be read is a
//! [`Gathered::problems`] entry, never a failure: the set holds what could be read.
//!
//! Insertion order is priority under the cap: the allowlist (uncapped), gateways, resolvers,
//! SSH peers, then established peers (socket table, then conntrack).
//!
//! SSH sessions are the established connections on a local SSH port ([`GatherOptions::ssh_ports`],
//! 22 by default). utmp is not read: every live SSH session has its TCP connection in the socket
//! table already, while utmp is a binary glibc record written only for sessions with a terminal
//! (not `ssh host cmd`, scp or sftp), and its entries outlive crashed sessions. Mosh (UDP) is
//! not covered.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::Mutex;

use ipnet::IpNet;

use crate::trust::peers::{PeerKind, PeerSet};
use crate::trust::proc_net::{self, HostPorts};

pub mod sock_diag;
mod tables;

pub use tables::{SocketTable, Sockets, Want, sockets_of_text};

/// One text the facts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// IPv4 TCP sockets of our network namespace.
    Tcp4,
    /// IPv6 TCP sockets of our network namespace.
    Tcp6,
    /// IPv4 UDP sockets of our network namespace (the services a flood signature keeps).
    Udp4,
    /// IPv6 UDP sockets of our network namespace.
    Udp6,
    /// The connection tracking table (forwarded flows too).
    Conntrack,
    /// The IPv4 routing table (default gateways).
    Route4,
    /// The IPv6 routing table (default gateways).
    Route6,
    /// The resolvers the host uses.
    ResolvConf,
    /// systemd-resolved's upstreams, read when `resolv.conf` names its stub (127.0.0.53).
    ResolvedUpstreams,
}

impl Source {
    /// Where it is read from (relative to the process's `/proc` and root).
    pub fn path(self) -> &'static str {
        match self {
            Source::Tcp4 => "/proc/net/tcp",
            Source::Tcp6 => "/proc/net/tcp6",
            Source::Udp4 => "/proc/net/udp",
            Source::Udp6 => "/proc/net/udp6",
            Source::Conntrack => "/proc/net/nf_conntrack",
            Source::Route4 => "/proc/net/route",
            Source::Route6 => "/proc/net/ipv6_route",
            Source::ResolvConf => "/etc/resolv.conf",
            Source::ResolvedUpstreams => "/run/systemd/resolve/resolv.conf",
        }
    }
}

/// Reads one source's text (`Ok(None)` when it does not exist), and the socket tables as
/// typed values.
pub trait PeerFacts: Send + Sync {
    /// The text of `source`, `Ok(None)` when it does not exist.
    fn read(&self, source: Source) -> io::Result<Option<String>>;

    /// What `table` holds: by default its text ([`SocketTable::source`]) through the
    /// `proc_net` parsers, read once.
    fn sockets(&self, table: SocketTable, want: Want) -> io::Result<Sockets> {
        sockets_from_text(self, table, want)
    }
}

/// What `table` holds read from its text through the `proc_net` parsers (the default of
/// [`PeerFacts::sockets`], and [`ProcFiles`]'s fallback when netlink fails); a table that does
/// not exist is empty.
fn sockets_from_text<F: PeerFacts + ?Sized>(
    facts: &F,
    table: SocketTable,
    want: Want,
) -> io::Result<Sockets> {
    let text = facts.read(table.source())?.unwrap_or_default();
    Ok(sockets_of_text(&text, table, want))
}

/// The real files: this process's network namespace and root, or another process's
/// (`/proc/PID/net/...`, `/proc/PID/root/etc/...`).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcFiles {
    pid: Option<u32>,
    /// The socket tables from `/proc` text even in our own namespace.
    text_only: bool,
}

impl ProcFiles {
    /// This process's namespace (what the daemon uses): the socket tables over netlink.
    pub fn own() -> ProcFiles {
        ProcFiles::default()
    }

    /// This process's namespace with the socket tables read from `/proc/net` text, as when
    /// netlink fails (benchmarks and tests compare the two).
    pub fn own_text() -> ProcFiles {
        ProcFiles {
            pid: None,
            text_only: true,
        }
    }

    /// The namespace and root of process `pid` (tests, tools).
    pub fn of_pid(pid: u32) -> ProcFiles {
        ProcFiles {
            pid: Some(pid),
            text_only: true,
        }
    }

    fn path(&self, source: Source) -> String {
        match (self.pid, source.path().strip_prefix("/proc/")) {
            (None, _) => source.path().to_owned(),
            (Some(pid), Some(rest)) => format!("/proc/{pid}/{rest}"),
            (Some(pid), None) => format!("/proc/{pid}/root{}", source.path()),
        }
    }
}

/// Bytes asked for per `read` of a `/proc` file. Each read of `/proc/net/tcp` walks the
/// kernel's connection hash from where it stopped, which costs ~2 ms on this kind of machine
/// whatever it returns: `std::fs::read` asks for a few hundred bytes at a time on a file whose
/// size is 0, so a file of a few KB took ~25 ms. With 1 MiB per read it is one read per MiB.
const READ_CHUNK: usize = 1 << 20;
/// The first read's size: a small file (routes, resolv.conf) is read whole by it. The buffer
/// then grows with what was read, by up to [`READ_CHUNK`] at a time, so a small file no longer
/// takes a zeroed 1 MiB buffer, grown to 2 MiB by the read that finds its end (3 MiB of the
/// daemon's resident memory at 1M tracked sources were these buffers).
const FIRST_READ: usize = 64 << 10;
/// A read asks for at least this much: less room left grows the buffer first.
const MIN_READ: usize = 4 << 10;

/// Everything `file` holds. The buffer grows by what was read so far (at least
/// [`FIRST_READ`], at most [`READ_CHUNK`] at a time) and each byte of it is zeroed once: the
/// kernel's `seq_file` text (`/proc/net/tcp`, `nf_conntrack`) comes ~4 KB per read however
/// much is asked, and zeroing the room left before every read cost ~1 MiB of writes per 4 KB.
fn read_all(file: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut filled = 0;
    loop {
        if bytes.len() - filled < MIN_READ {
            bytes.resize(filled + filled.clamp(FIRST_READ, READ_CHUNK), 0);
        }
        let n = file.read(&mut bytes[filled..])?;
        if n == 0 {
            bytes.truncate(filled);
            return Ok(bytes);
        }
        filled += n;
    }
}

impl PeerFacts for ProcFiles {
    fn read(&self, source: Source) -> io::Result<Option<String>> {
        let mut file = match std::fs::File::open(self.path(source)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let bytes = read_all(&mut file)?;
        // The kernel's text is ASCII: no copy unless something else is in it.
        Ok(Some(String::from_utf8(bytes).unwrap_or_else(|e| {
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        })))
    }

    /// Our own namespace: over netlink ([`sock_diag::dump`]), else (no netlink socket allowed,
    /// no `inet_diag` in the kernel) the `/proc/net` text; an error only when both fail.
    /// Another process's namespace ([`ProcFiles::of_pid`]: a dump asks our own) and
    /// [`ProcFiles::own_text`]: the `/proc` text.
    fn sockets(&self, table: SocketTable, want: Want) -> io::Result<Sockets> {
        if self.text_only {
            return sockets_from_text(self, table, want);
        }
        sock_diag::dump(table, want).or_else(|netlink| {
            sockets_from_text(self, table, want).map_err(|proc| {
                io::Error::new(proc.kind(), format!("{proc} (and over netlink: {netlink})"))
            })
        })
    }
}

/// Canned texts (absent: the source does not exist; an `Err` text: it cannot be read), and
/// every read, in order.
#[derive(Debug, Default)]
pub struct RecordedFacts {
    /// What each source reads as.
    pub texts: HashMap<Source, Result<String, String>>,
    /// Every read, in order.
    pub reads: Mutex<Vec<Source>>,
}

impl RecordedFacts {
    /// `source` reads as `text`.
    pub fn with(mut self, source: Source, text: &str) -> RecordedFacts {
        self.texts.insert(source, Ok(text.to_owned()));
        self
    }

    /// Reading `source` fails with `error`.
    pub fn failing(mut self, source: Source, error: &str) -> RecordedFacts {
        self.texts.insert(source, Err(error.to_owned()));
        self
    }

    /// The sources read so far, in order.
    pub fn read_so_far(&self) -> Vec<Source> {
        self.reads.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl PeerFacts for RecordedFacts {
    fn read(&self, source: Source) -> io::Result<Option<String>> {
        if let Ok(mut reads) = self.reads.lock() {
            reads.push(source);
        }
        match self.texts.get(&source) {
            None => Ok(None),
            Some(Ok(text)) => Ok(Some(text.clone())),
            Some(Err(e)) => Err(io::Error::other(e.clone())),
        }
    }
}

/// What to gather.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatherOptions {
    /// Most protected hosts held (the allowlist's prefixes are not counted).
    pub cap: usize,
    /// Local ports whose established peers are SSH sessions.
    pub ssh_ports: Vec<u16>,
    /// Read conntrack's established TCP flows too: for forwarded traffic (a router, Docker
    /// containers behind `FORWARD`/`DOCKER-USER` hooks), whose peers are not in our socket
    /// table. On by default (a forwarded peer is as real as a local one); at 100k flows it
    /// doubles the cost of a refresh (BENCHMARKS.md), paid on the refresh thread every 2 s.
    pub conntrack: bool,
    /// `[allow] nets`.
    pub allow: Vec<IpNet>,
}

impl Default for GatherOptions {
    fn default() -> GatherOptions {
        GatherOptions {
            cap: DEFAULT_CAP,
            ssh_ports: vec![22],
            conntrack: true,
            allow: Vec::new(),
        }
    }
}

/// Default cap on protected hosts: ~24 bytes each in the set, a few MB at most.
pub const DEFAULT_CAP: usize = 250_000;

/// The set, and the sources that could not be read (`(source, error)`).
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    /// The protected peers found.
    pub set: PeerSet,
    /// The sources that could not be read, with why.
    pub problems: Vec<(Source, String)>,
}

/// Reads every source and builds the set (see the module's notes on order and failures).
pub fn gather(facts: &dyn PeerFacts, opts: &GatherOptions) -> Gathered {
    let mut problems = Vec::new();
    let mut read = |source: Source| noted(facts.read(source), source, &mut problems);
    let mut b = PeerSet::builder(opts.cap);
    for net in &opts.allow {
        b.net(*net, PeerKind::Allowlist);
    }
    for source in [Source::Route4, Source::Route6] {
        let text = read(source).unwrap_or_default();
        let gateways = match source {
            Source::Route4 => proc_net::gateways_v4(&text),
            _ => proc_net::gateways_v6(&text),
        };
        for gw in gateways {
            b.host(gw.addr, PeerKind::Gateway);
        }
    }
    let resolv = read(Source::ResolvConf).unwrap_or_default();
    let mut resolvers = proc_net::nameservers(&resolv);
    if resolvers.contains(&proc_net::RESOLVED_STUB) {
        let upstreams = read(Source::ResolvedUpstreams).unwrap_or_default();
        resolvers.extend(proc_net::nameservers(&upstreams));
    }
    for r in resolvers {
        b.host(r, PeerKind::Resolver);
    }
    // One pass over the socket tables (the largest); SSH peers go in first.
    let mut peers = Vec::new();
    for table in [SocketTable::Tcp4, SocketTable::Tcp6] {
        let sockets = facts.sockets(table, Want::Established).map(Some);
        let sockets = noted(sockets, table.source(), &mut problems).unwrap_or_default();
        peers.extend(
            sockets
                .established
                .iter()
                .map(|c| (c.remote.ip(), opts.ssh_ports.contains(&c.local.port()))),
        );
    }
    let mut read = |source: Source| noted(facts.read(source), source, &mut problems);
    for (ip, _) in peers.iter().filter(|(_, ssh)| *ssh) {
        b.host(*ip, PeerKind::Ssh);
    }
    for (ip, _) in &peers {
        b.host(*ip, PeerKind::Established);
    }
    if opts.conntrack
        && let Some(text) = read(Source::Conntrack)
    {
        for peer in proc_net::conntrack_established(&text) {
            b.host(peer, PeerKind::Established);
        }
    }
    Gathered {
        set: b.build(),
        problems,
    }
}

/// `Some` value of what was read, or `None` with `(source, why)` noted in `problems`.
fn noted<T>(
    read: io::Result<Option<T>>,
    source: Source,
    problems: &mut Vec<(Source, String)>,
) -> Option<T> {
    read.unwrap_or_else(|e| {
        problems.push((source, e.to_string()));
        None
    })
}

/// The host's ports (listening TCP and UDP sockets, remote ports of established TCP
/// connections), for the flood detectors: a signature never drops what the host serves or
/// talks to without a dominant port telling the attack apart. A source that cannot be read
/// adds nothing (the detectors still learn from the traffic itself).
pub fn host_ports(facts: &dyn PeerFacts) -> HostPorts {
    let read = |table, want| facts.sockets(table, want).unwrap_or_default();
    let mut ports = HostPorts::default();
    for table in [SocketTable::Tcp4, SocketTable::Tcp6] {
        let sockets = read(table, Want::Both);
        ports.tcp_listening.extend(sockets.listening);
        ports
            .tcp_remote
            .extend(sockets.established.iter().map(|c| c.remote.port()));
    }
    for table in [SocketTable::Udp4, SocketTable::Udp6] {
        ports
            .udp_listening
            .extend(read(table, Want::Listening).listening);
    }
    for list in [
        &mut ports.tcp_listening,
        &mut ports.udp_listening,
        &mut ports.tcp_remote,
    ] {
        list.sort_unstable();
        list.dedup();
    }
    ports
}

#[cfg(test)]
mod tests;
