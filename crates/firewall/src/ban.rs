//! [`Ban`] (one blocked net as the kernel holds it), [`RuleEntry`] (one typed rule), [`Family`],
//! and the two input rules every entry passes: reasons are kept verbatim or refused (never
//! rewritten), and IPv4-mapped IPv6 addresses become IPv4.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use super::rule::Rule;

/// Longest reason accepted, in bytes (an iptables comment holds 255, with our prefix).
pub(crate) const MAX_REASON_LEN: usize = 128;

/// IPv4 or IPv6: each has its own tool (`iptables` / `ip6tables`) and its own set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4 (`iptables`, set `<chain>4`).
    V4,
    /// IPv6 (`ip6tables`, set `<chain>6`).
    V6,
}

impl Family {
    pub(crate) const BOTH: [Family; 2] = [Family::V4, Family::V6];

    pub(crate) fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }

    pub(crate) fn save_cmd(self) -> &'static str {
        match self {
            Family::V4 => "iptables-save",
            Family::V6 => "ip6tables-save",
        }
    }

    pub(crate) fn restore_cmd(self) -> &'static str {
        match self {
            Family::V4 => "iptables-restore",
            Family::V6 => "ip6tables-restore",
        }
    }

    pub(crate) fn inet(self) -> &'static str {
        match self {
            Family::V4 => "inet",
            Family::V6 => "inet6",
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        })
    }
}

/// One active ban, as read back from the kernel or the in-memory mirror.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Ban {
    /// The blocked source address or prefix (normalized: host bits cleared).
    pub net: IpNet,
    /// When the ban ends, in whole seconds since the Unix epoch.
    pub until: u64,
    /// Why it was set, as given to [`Batch::block`](super::Batch::block).
    pub reason: String,
}

impl Ban {
    /// [`Ban::until`] as a [`SystemTime`].
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.until)
    }

    /// Time left at `now` (zero once expired).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.expires_at().duration_since(now).unwrap_or_default()
    }
}

/// Whole Unix seconds at `t` (0 before the epoch).
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why `reason` cannot be stored verbatim (in an iptables comment and an ipset comment alike),
/// or `None` when it can: 1-128 bytes, no `"` (ipset refuses it), no control characters.
pub(crate) fn reason_problem(reason: &str) -> Option<String> {
    if reason.is_empty() {
        Some("the reason is empty".to_string())
    } else if reason.len() > MAX_REASON_LEN {
        Some(format!(
            "the reason is {} bytes long (at most {MAX_REASON_LEN})",
            reason.len()
        ))
    } else if reason.contains('"') {
        Some("the reason contains `\"` (ipset comments cannot hold it)".to_string())
    } else if reason.chars().any(char::is_control) {
        Some("the reason contains a control character".to_string())
    } else {
        None
    }
}

/// `net` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, prefix 96 or longer) turned into
/// the IPv4 net it stands for; anything else unchanged. Host bits are kept (and checked later).
pub(crate) fn canonical(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

/// One active typed rule (anything but a plain ban), as read back from the kernel or memory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RuleEntry {
    /// What it matches and does.
    pub rule: Rule,
    /// When it ends, in whole seconds since the Unix epoch.
    pub until: u64,
    /// Why it was set, as given to [`Batch::block`](super::Batch::block).
    pub reason: String,
}

impl RuleEntry {
    /// [`RuleEntry::until`] as a [`SystemTime`].
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.until)
    }
}

/// What [`Firewall::expire_due`](super::Firewall::expire_due) ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Expired {
    /// Plain bans that ended, earliest first.
    pub bans: Vec<Ban>,
    /// Typed rules that ended, earliest first.
    pub rules: Vec<RuleEntry>,
}

impl Expired {
    /// True when nothing ended.
    pub fn is_empty(&self) -> bool {
        self.bans.is_empty() && self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_kept_or_refused() {
        for ok in [
            "syn-flood",
            "abuse feed #42",
            "é à 'x' \\ $(id)",
            &"x".repeat(128),
        ] {
            assert_eq!(reason_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "a\" -j ACCEPT",
            "a\nCOMMIT",
            "tab\there",
            &"x".repeat(129),
        ] {
            assert!(reason_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn mapped_addresses_become_ipv4() {
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        assert_eq!(canonical(n("::ffff:203.0.113.7/128")), n("203.0.113.7/32"));
        assert_eq!(
            canonical(n("::ffff:198.51.100.0/120")),
            n("198.51.100.0/24")
        );
        assert_eq!(canonical(n("::ffff:0.0.0.0/96")), n("0.0.0.0/0"));
        assert_eq!(canonical(n("::ffff:0:0/95")), n("::ffff:0:0/95"));
        assert_eq!(canonical(n("2001:db8::1/128")), n("2001:db8::1/128"));
        assert_eq!(canonical(n("10.0.0.1/32")), n("10.0.0.1/32"));
    }

    #[test]
    fn ban_times() {
        let b = Ban {
            net: "10.0.0.0/8".parse().unwrap(),
            until: 100,
            reason: "r".into(),
        };
        assert_eq!(unix_secs(b.expires_at()), 100);
        assert_eq!(
            b.remaining(UNIX_EPOCH + Duration::from_secs(40)),
            Duration::from_secs(60)
        );
        assert_eq!(
            b.remaining(UNIX_EPOCH + Duration::from_secs(400)),
            Duration::ZERO
        );
    }
}
