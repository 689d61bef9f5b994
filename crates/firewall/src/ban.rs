//! [`Ban`] (one blocked net as the kernel holds it), [`Family`], and the reason rule: reasons
//! are reduced to `[A-Za-z0-9_.:-]`, at most 64 characters, so nothing can inject into restore
//! text.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

/// Longest reason kept; longer ones are cut.
pub(crate) const MAX_REASON_LEN: usize = 64;

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
    /// Why it was set (sanitized, see [`Batch::block`](super::Batch::block)).
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

/// A reason reduced to `[A-Za-z0-9_.:-]{1,64}`: other characters become `_`, longer ones are
/// cut, an empty one becomes `-`.
pub(crate) fn sanitize_reason(reason: &str) -> String {
    let mut out: String = reason
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.:-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(MAX_REASON_LEN)
        .collect();
    if out.is_empty() {
        out.push('-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_cannot_inject() {
        assert_eq!(sanitize_reason("syn-flood"), "syn-flood");
        assert_eq!(
            sanitize_reason("a\" -j ACCEPT\nCOMMIT"),
            "a__-j_ACCEPT_COMMIT"
        );
        assert_eq!(sanitize_reason(""), "-");
        assert_eq!(sanitize_reason("é"), "_");
        assert_eq!(sanitize_reason(&"x".repeat(100)).len(), MAX_REASON_LEN);
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
