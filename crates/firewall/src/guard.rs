//! Guard rails (pure): what [`Firewall::commit`](super::Firewall::commit) refuses to block, and
//! why ([`Refusal`]). A block is refused when its source covers too much (a prefix shorter than
//! the minimum), a special range ([`Special`]: loopback, unspecified, multicast, link-local)
//! unless allowed, or a protected net; when a prefix has host bits set (never widened
//! silently); when its reason cannot be stored verbatim; or when a typed rule is malformed.
//! Removals are never refused but for host bits.

use ipnet::IpNet;

use super::ban::{Family, canonical, reason_problem};
use super::rule::{Protocol, Rule, TcpFlags};

/// Address ranges a block must not touch unless allowed with
/// [`FirewallOptions::allow`](super::FirewallOptions::allow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Special {
    /// `127.0.0.0/8`, `::1`: the host talking to itself.
    Loopback,
    /// `0.0.0.0`, `::`: "no address yet" (DHCP, DAD).
    Unspecified,
    /// `224.0.0.0/4`, `ff00::/8`: never a real source; as a destination, routing and discovery.
    Multicast,
    /// `169.254.0.0/16`, `fe80::/10`: neighbours, routers and IPv6 neighbour discovery.
    LinkLocal,
}

impl Special {
    const ALL: [Special; 4] = [
        Special::Loopback,
        Special::Unspecified,
        Special::Multicast,
        Special::LinkLocal,
    ];

    fn ranges(self) -> [&'static str; 2] {
        match self {
            Special::Loopback => ["127.0.0.0/8", "::1/128"],
            Special::Unspecified => ["0.0.0.0/32", "::/128"],
            Special::Multicast => ["224.0.0.0/4", "ff00::/8"],
            Special::LinkLocal => ["169.254.0.0/16", "fe80::/10"],
        }
    }

    /// The range of this kind that `net` overlaps, if any.
    fn overlapped_by(self, net: &IpNet) -> Option<IpNet> {
        self.ranges()
            .iter()
            .filter_map(|r| r.parse::<IpNet>().ok())
            .find(|r| overlaps(r, net))
    }
}

impl std::fmt::Display for Special {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Special::Loopback => "loopback",
            Special::Unspecified => "unspecified",
            Special::Multicast => "multicast",
            Special::LinkLocal => "link-local",
        })
    }
}

/// Why one change of a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The prefix is shorter than the minimum
    /// ([`FirewallOptions::min_prefix`](super::FirewallOptions::min_prefix)).
    PrefixTooShort {
        /// The prefix asked for.
        net: IpNet,
        /// The shortest prefix length allowed for its family.
        min: u8,
    },
    /// The prefix has host bits set (`10.0.0.1/8`): refused rather than silently widened.
    HostBits {
        /// The prefix asked for.
        net: IpNet,
        /// The network it lies in (what you may have meant).
        network: IpNet,
    },
    /// The net overlaps a special range that is not allowed.
    Special {
        /// The net asked for.
        net: IpNet,
        /// Which kind of range.
        kind: Special,
        /// The range it overlaps.
        range: IpNet,
    },
    /// The net overlaps a protected net
    /// ([`FirewallOptions::protect`](super::FirewallOptions::protect),
    /// [`Firewall::set_protected`](super::Firewall::set_protected)).
    Protected {
        /// The net asked for.
        net: IpNet,
        /// The protected net it overlaps.
        protected: IpNet,
    },
    /// The reason cannot be stored verbatim (what is wrong with it).
    Reason(String),
    /// The typed rule is malformed (what is wrong with it).
    Rule(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::PrefixTooShort { net, min } => write!(
                f,
                "{net} is shorter than the minimum prefix /{min} (FirewallOptions::min_prefix)"
            ),
            Refusal::HostBits { net, network } => {
                write!(f, "{net} has host bits set (did you mean {network}?)")
            }
            Refusal::Special { net, kind, range } => write!(
                f,
                "{net} overlaps the {kind} range {range} (FirewallOptions::allow)"
            ),
            Refusal::Protected { net, protected } => {
                write!(f, "{net} overlaps the protected net {protected}")
            }
            Refusal::Reason(why) | Refusal::Rule(why) => f.write_str(why),
        }
    }
}

/// One refused change: what was asked, and why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refused {
    /// The rule (or plain ban) as given to the batch.
    pub rule: Rule,
    /// Why.
    pub refusal: Refusal,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.rule.is_source_ban(), self.rule.src) {
            (true, Some(net)) => write!(f, "refused {net}: {}", self.refusal),
            _ => write!(f, "refused `{}`: {}", self.rule, self.refusal),
        }
    }
}

/// The guard settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Guard {
    pub(crate) min_v4: u8,
    pub(crate) min_v6: u8,
    pub(crate) allowed: Vec<Special>,
    pub(crate) protected: Vec<IpNet>,
}

impl Default for Guard {
    fn default() -> Guard {
        Guard {
            min_v4: DEFAULT_MIN_V4,
            min_v6: DEFAULT_MIN_V6,
            allowed: Vec::new(),
            protected: Vec::new(),
        }
    }
}

/// Shortest IPv4 prefix blocked by default: a /8 is the largest block one holder ever got.
pub(crate) const DEFAULT_MIN_V4: u8 = 8;
/// Shortest IPv6 prefix blocked by default: a /16 already spans many providers' allocations.
pub(crate) const DEFAULT_MIN_V6: u8 = 16;

/// True when `a` and `b` share an address.
pub(crate) fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

/// Protected nets as the guard keeps them: canonical, host bits cleared, sorted, unique.
pub(crate) fn normalize_protected(nets: impl IntoIterator<Item = IpNet>) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = nets.into_iter().map(|n| canonical(n).trunc()).collect();
    out.sort();
    out.dedup();
    out
}

impl Guard {
    /// `rule` with its addresses canonical, or why it cannot be blocked. `reason` is checked
    /// too; `override_protected` skips the protected nets (never the other checks).
    pub(crate) fn check_block(
        &self,
        rule: &Rule,
        reason: &str,
        override_protected: bool,
    ) -> Result<Rule, Refusal> {
        let rule = canonical_rule(rule)?;
        check_shape(&rule).map_err(Refusal::Rule)?;
        if let Some(src) = &rule.src {
            self.check_net(src)?;
            if !override_protected && let Some(p) = self.protected.iter().find(|p| overlaps(p, src))
            {
                return Err(Refusal::Protected {
                    net: *src,
                    protected: *p,
                });
            }
        }
        if let Some(dst) = &rule.dst {
            self.check_net(dst)?;
        }
        if let Some(why) = reason_problem(reason) {
            return Err(Refusal::Reason(why));
        }
        Ok(rule)
    }

    fn check_net(&self, net: &IpNet) -> Result<(), Refusal> {
        let min = match Family::of(net) {
            Family::V4 => self.min_v4,
            Family::V6 => self.min_v6,
        };
        if net.prefix_len() < min {
            return Err(Refusal::PrefixTooShort { net: *net, min });
        }
        for kind in Special::ALL
            .into_iter()
            .filter(|k| !self.allowed.contains(k))
        {
            if let Some(range) = kind.overlapped_by(net) {
                return Err(Refusal::Special {
                    net: *net,
                    kind,
                    range,
                });
            }
        }
        Ok(())
    }
}

/// `rule` with IPv4-mapped addresses made IPv4; refused when a prefix has host bits set.
pub(crate) fn canonical_rule(rule: &Rule) -> Result<Rule, Refusal> {
    let fix = |net: Option<IpNet>| -> Result<Option<IpNet>, Refusal> {
        let Some(net) = net.map(canonical) else {
            return Ok(None);
        };
        if net.trunc() != net {
            return Err(Refusal::HostBits {
                net,
                network: net.trunc(),
            });
        }
        Ok(Some(net))
    };
    let mut out = *rule;
    out.src = fix(rule.src)?;
    out.dst = fix(rule.dst)?;
    Ok(out)
}

/// What is wrong with a typed rule's matches, if anything.
fn check_shape(rule: &Rule) -> Result<(), String> {
    if rule.src.is_none() && rule.dst.is_none() {
        return Err("a rule needs a source or a destination".into());
    }
    if rule.family().is_none() {
        return Err("source and destination are of different families".into());
    }
    let ports_ok = matches!(rule.protocol, Some(Protocol::Tcp | Protocol::Udp));
    if (rule.sport.is_some() || rule.dport.is_some()) && !ports_ok {
        return Err("ports need protocol TCP or UDP".into());
    }
    for p in [rule.sport, rule.dport].into_iter().flatten() {
        if p.first > p.last {
            return Err(format!("port range {}:{} is empty", p.first, p.last));
        }
    }
    if let Some(flags) = rule.tcp_flags {
        if rule.protocol != Some(Protocol::Tcp) {
            return Err("TCP flags need protocol TCP".into());
        }
        if flags.mask == 0 || flags.mask & !TcpFlags::ALL != 0 || flags.set & !flags.mask != 0 {
            return Err(format!(
                "TCP flags {:#04x}/{:#04x}: the mask must be non-empty, of FIN..URG, and hold the set flags",
                flags.mask, flags.set
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::{Action, Ports};
    use std::net::{IpAddr, Ipv4Addr};

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn block(g: &Guard, target: &str) -> Result<Rule, Refusal> {
        g.check_block(&Rule::from(net(target)), "test", false)
    }

    #[test]
    fn default_guard_refuses_what_would_lock_out_or_cover_too_much() {
        let g = Guard::default();
        for (target, want) in [
            ("0.0.0.0/0", "shorter than the minimum prefix /8"),
            ("::/0", "shorter than the minimum prefix /16"),
            ("10.0.0.0/7", "minimum prefix /8"),
            ("127.0.0.1/32", "loopback range 127.0.0.0/8"),
            ("127.0.0.0/8", "loopback"),
            ("::1/128", "loopback range ::1/128"),
            ("::/16", "loopback"),
            ("0.0.0.0/32", "unspecified"),
            ("::/128", "unspecified"),
            ("224.0.0.251/32", "multicast"),
            ("ff02::1/128", "multicast"),
            ("169.254.1.1/32", "link-local"),
            ("fe80::1/128", "link-local"),
            ("10.0.0.0/1", "host bits set (did you mean 0.0.0.0/1?)"),
            ("10.0.0.1/8", "host bits set (did you mean 10.0.0.0/8?)"),
            ("::ffff:127.0.0.1/128", "127.0.0.1/32 overlaps the loopback"),
        ] {
            let e = block(&g, target).unwrap_err().to_string();
            assert!(e.contains(want), "{target}: {e}");
        }
        for ok in ["10.0.0.0/8", "203.0.113.7/32", "2001:db8::/32", "2001::/16"] {
            assert!(block(&g, ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn mapped_sources_are_canonical() {
        let r = Guard::default()
            .check_block(
                &Rule::from("::ffff:203.0.113.7".parse::<IpAddr>().unwrap()),
                "r",
                false,
            )
            .unwrap();
        assert_eq!(r.src, Some(net("203.0.113.7/32")));
    }

    #[test]
    fn allowances_minimums_and_protected_nets() {
        let g = Guard {
            min_v4: 4,
            min_v6: 128,
            allowed: vec![Special::LinkLocal, Special::Loopback],
            protected: normalize_protected([net("192.0.2.10/24"), net("::ffff:198.51.100.1/128")]),
        };
        assert!(block(&g, "169.254.0.0/16").is_ok());
        assert!(block(&g, "127.0.0.1/32").is_ok());
        assert!(block(&g, "16.0.0.0/4").is_ok());
        assert!(block(&g, "2001:db8::/64").is_err());
        let e = block(&g, "192.0.2.7/32").unwrap_err();
        assert_eq!(
            e,
            Refusal::Protected {
                net: net("192.0.2.7/32"),
                protected: net("192.0.2.0/24")
            }
        );
        // Covering a protected net is refused as well.
        assert!(block(&g, "198.51.0.0/16").is_err());
        assert!(
            g.check_block(&Rule::from(net("198.51.0.0/16")), "r", true)
                .is_ok()
        );
    }

    #[test]
    fn typed_rules_are_checked() {
        let g = Guard::default();
        let server = Ipv4Addr::new(10, 10, 10, 10);
        let check = |r: Rule| g.check_block(&r, "r", false);
        assert!(check(Rule::new().dst(server).protocol(Protocol::Udp).sport(4500)).is_ok());
        for (rule, want) in [
            (
                Rule::new().protocol(Protocol::Udp),
                "source or a destination",
            ),
            (
                Rule::new().dst(server).src(net("2001:db8::/32")),
                "different families",
            ),
            (Rule::new().dst(server).dport(22), "ports need protocol"),
            (
                Rule::new()
                    .dst(server)
                    .protocol(Protocol::Tcp)
                    .dport(Ports { first: 9, last: 1 }),
                "empty",
            ),
            (
                Rule::new()
                    .dst(server)
                    .protocol(Protocol::Udp)
                    .tcp_flags(TcpFlags::syn()),
                "need protocol TCP",
            ),
            (
                Rule::new()
                    .dst(server)
                    .protocol(Protocol::Tcp)
                    .tcp_flags(TcpFlags::new(TcpFlags::SYN, TcpFlags::ACK)),
                "mask",
            ),
            (Rule::new().dst(Ipv4Addr::LOCALHOST), "loopback"),
            (
                Rule::new().dst(net("16.0.0.0/4")).action(Action::Reject),
                "minimum",
            ),
        ] {
            let e = check(rule).unwrap_err().to_string();
            assert!(e.contains(want), "{rule}: {e}");
        }
    }

    #[test]
    fn reasons_are_checked_and_refusals_read_well() {
        let g = Guard::default();
        let r = Rule::from(net("203.0.113.7/32"));
        let e = g.check_block(&r, "a \"b\"", false).unwrap_err();
        assert!(matches!(e, Refusal::Reason(_)), "{e}");
        let refused = Refused {
            rule: Rule::from(net("0.0.0.0/0")),
            refusal: block(&g, "0.0.0.0/0").unwrap_err(),
        };
        assert_eq!(
            refused.to_string(),
            "refused 0.0.0.0/0: 0.0.0.0/0 is shorter than the minimum prefix /8 (FirewallOptions::min_prefix)"
        );
    }
}
