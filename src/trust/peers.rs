//! The protected peers (pure): every address a spoofer cannot have forged, or that we must keep
//! reaching, with why, as one bounded set the engine consults before it bans.
//!
//! Built whole on each refresh ([`PeerSetBuilder`], in priority order: what is inserted first
//! survives the cap; duplicates merge their kinds) and then read-only: hosts sorted for binary
//! search, so a lookup is
//! O(log n) and "would a ban on this prefix cover a protected host" is one range search. The
//! allowlist's prefixes sit beside them (few). Addresses are canonical (IPv4-mapped is IPv4);
//! unspecified and loopback addresses are left out (never banned anyway).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use foldhash::fast::RandomState;
use ipnet::IpNet;

/// Why a peer is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerKind {
    /// `[allow] nets` of the configuration.
    Allowlist,
    /// A default gateway (`/proc/net/route`, `ipv6_route`).
    Gateway,
    /// A nameserver of `/etc/resolv.conf` (or systemd-resolved's upstreams).
    Resolver,
    /// The peer of an established TCP connection on an SSH port.
    Ssh,
    /// The peer of an established TCP connection (socket table or conntrack): it completed a
    /// handshake, so its address is not forged.
    Established,
}

impl PeerKind {
    /// Every kind, in priority order.
    pub const ALL: [PeerKind; 5] = [
        PeerKind::Allowlist,
        PeerKind::Gateway,
        PeerKind::Resolver,
        PeerKind::Ssh,
        PeerKind::Established,
    ];

    /// The name `explain` and events use.
    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Allowlist => "allowlist",
            PeerKind::Gateway => "gateway",
            PeerKind::Resolver => "resolver",
            PeerKind::Ssh => "ssh",
            PeerKind::Established => "established",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of [`PeerKind`]s (one peer can be a gateway with an established connection).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Kinds(u8);

impl Kinds {
    /// Just `kind`.
    pub fn of(kind: PeerKind) -> Kinds {
        Kinds(kind.bit())
    }

    /// True when `kind` is in the set.
    pub fn contains(self, kind: PeerKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Both sets.
    pub fn with(self, other: Kinds) -> Kinds {
        Kinds(self.0 | other.0)
    }

    /// True when no kind is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds held, in priority order.
    pub fn iter(self) -> impl Iterator<Item = PeerKind> {
        PeerKind::ALL.into_iter().filter(move |k| self.contains(*k))
    }
}

/// `gateway, established`.
impl fmt::Display for Kinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(PeerKind::name).collect();
        f.write_str(&names.join(", "))
    }
}

/// Why an address (or a prefix) is protected: the net that matched and its kinds. For an
/// address both allowlisted and a peer, `net` is the address and `kinds` holds both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protection {
    /// The protected net that matched.
    pub net: IpNet,
    /// Why it is protected.
    pub kinds: Kinds,
}

/// The protected nets, read-only once built.
#[derive(Debug, Clone, Default)]
pub struct PeerSet {
    /// Protected hosts, sorted, one entry each.
    hosts: Vec<(IpAddr, Kinds)>,
    /// Protected prefixes (the allowlist), as given.
    nets: Vec<(IpNet, Kinds)>,
    /// Hosts left out because the cap was reached.
    dropped: usize,
}

impl PeerSet {
    /// A builder holding at most `cap` hosts (prefixes are not capped: they come from the
    /// configuration).
    pub fn builder(cap: usize) -> PeerSetBuilder {
        PeerSetBuilder {
            hosts: HashMap::default(),
            nets: Vec::new(),
            cap,
            dropped: 0,
        }
    }

    /// Why `addr` is protected, if it is.
    pub fn protection(&self, addr: IpAddr) -> Option<Protection> {
        let addr = addr.to_canonical();
        let host = self
            .hosts
            .binary_search_by_key(&addr, |(a, _)| *a)
            .ok()
            .map(|i| self.hosts[i].1);
        let net = self.nets.iter().find(|(n, _)| n.contains(&addr));
        match (host, net) {
            (Some(h), Some((_, n))) => Some(Protection {
                net: IpNet::from(addr),
                kinds: h.with(*n),
            }),
            (Some(kinds), None) => Some(Protection {
                net: IpNet::from(addr),
                kinds,
            }),
            (None, Some((net, kinds))) => Some(Protection {
                net: *net,
                kinds: *kinds,
            }),
            (None, None) => None,
        }
    }

    /// The first protected net a ban on `target` would cover or fall inside (a host inside
    /// the prefix, or an allowlisted net overlapping it), if any.
    pub fn covered_by(&self, target: IpNet) -> Option<Protection> {
        if let Some((net, kinds)) = self
            .nets
            .iter()
            .find(|(n, _)| n.contains(&target) || target.contains(n))
        {
            return Some(Protection {
                net: *net,
                kinds: *kinds,
            });
        }
        let (first, last) = (target.network(), target.broadcast());
        let start = self.hosts.partition_point(|(a, _)| *a < first);
        self.hosts
            .get(start)
            .filter(|(a, _)| *a <= last)
            .map(|(a, kinds)| Protection {
                net: IpNet::from(*a),
                kinds: *kinds,
            })
    }

    /// Protected hosts held.
    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    /// Hosts left out because the cap was reached (the lowest-priority kinds go first).
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// How many hosts and prefixes hold each kind (a host with two kinds counts for both).
    pub fn count(&self, kind: PeerKind) -> usize {
        let hosts = self.hosts.iter().filter(|(_, k)| k.contains(kind)).count();
        hosts + self.nets.iter().filter(|(_, k)| k.contains(kind)).count()
    }

    /// Every protected host and prefix with its kinds (hosts sorted, then prefixes).
    pub fn iter(&self) -> impl Iterator<Item = Protection> + '_ {
        let hosts = self.hosts.iter().map(|(a, kinds)| Protection {
            net: IpNet::from(*a),
            kinds: *kinds,
        });
        let nets = self.nets.iter().map(|(net, kinds)| Protection {
            net: *net,
            kinds: *kinds,
        });
        hosts.chain(nets)
    }
}

/// Collects protected nets in priority order, then [`build`](Self::build)s the set.
#[derive(Debug)]
pub struct PeerSetBuilder {
    hosts: HashMap<IpAddr, Kinds, RandomState>,
    nets: Vec<(IpNet, Kinds)>,
    cap: usize,
    dropped: usize,
}

impl PeerSetBuilder {
    /// Adds a protected address (a host). Unspecified and loopback addresses are left out.
    /// Once `cap` distinct hosts are held, a new one is counted as dropped (a held one just
    /// gains the kind): insert the most important kinds first.
    pub fn host(&mut self, addr: IpAddr, kind: PeerKind) -> &mut Self {
        let addr = addr.to_canonical();
        if addr.is_unspecified() || addr.is_loopback() {
            return self;
        }
        let cap = self.cap;
        let held = self.hosts.len();
        match self.hosts.get_mut(&addr) {
            Some(kinds) => *kinds = kinds.with(Kinds::of(kind)),
            None if held < cap => {
                self.hosts.insert(addr, Kinds::of(kind));
            }
            None => self.dropped += 1,
        }
        self
    }

    /// Adds a protected prefix (an allowlisted net; not capped: it comes from the
    /// configuration).
    pub fn net(&mut self, net: IpNet, kind: PeerKind) -> &mut Self {
        let net = net.trunc();
        match self.nets.iter_mut().find(|(n, _)| *n == net) {
            Some((_, kinds)) => *kinds = kinds.with(Kinds::of(kind)),
            None => self.nets.push((net, Kinds::of(kind))),
        }
        self
    }

    /// Sorts the hosts for lookups.
    pub fn build(self) -> PeerSet {
        let mut hosts: Vec<(IpAddr, Kinds)> = self.hosts.into_iter().collect();
        hosts.sort_unstable_by_key(|(a, _)| *a);
        PeerSet {
            hosts,
            nets: self.nets,
            dropped: self.dropped,
        }
    }
}
