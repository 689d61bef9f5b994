//! What the engine's look-ahead learns from a packet alone (pure): whether the rules skip its
//! source (ours, or martian), its class byte, and its key's hash in each group's table that
//! counts its class. A [`Digester`] is a copy of the per-packet configuration the engine
//! holds, so replay's reader thread makes a batch's digests while the engine thread counts the
//! batch before.
//!
//! Invariants: a [`Digests`] holds one mark per packet and, group by group, one hash per packet
//! (packet `i` of group `g` at `g * len + i`; 0 for a skipped source, or a class the group
//! does not count); it carries the stamp of the digester that made it, and the engine takes it
//! only when that stamp is its own current one (a reload or new local addresses make a new
//! digester with a new stamp).

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use foldhash::fast::RandomState;

use crate::engine::nets::NetSet;
use crate::engine::sources::Prefixes;
use crate::engine::table::layout::classify;
use crate::packet::PacketMeta;
use crate::time::Timestamp;
use crate::trust::martian;

/// Mark bits above the class byte's five: the source is one of ours, or martian.
pub(crate) const LOCAL: u8 = 0x20;
pub(crate) const MARTIAN: u8 = 0x40;
/// The class bits of a mark.
pub(crate) const CLASS: u8 = 0x1f;

/// Digesters made so far in this process: each gets its own stamp.
static STAMPS: AtomicU64 = AtomicU64::new(1);

/// One group's part of a [`Digester`]: its prefixes, its table's hasher, and the classes
/// its windows count ([`crate::engine::table::SourceTable::counted_classes`]).
pub type DigestGroup = (Prefixes, RandomState, u32);

/// The per-packet configuration of an engine: our own nets, and each group's
/// [`DigestGroup`].
#[derive(Clone, Debug)]
pub struct Digester {
    local: NetSet,
    groups: Vec<DigestGroup>,
    stamp: u64,
}

/// A batch's digests (see the module's invariants); reusable from batch to batch.
#[derive(Clone, Debug, Default)]
pub struct Digests {
    stamp: u64,
    pub(crate) marks: Vec<u8>,
    pub(crate) hashes: Vec<u64>,
}

impl Digests {
    /// Whether `digester` made these (for `len` packets).
    pub(crate) fn made_by(&self, digester: &Digester, len: usize) -> bool {
        self.stamp == digester.stamp
            && self.marks.len() == len
            && self.hashes.len() == len * digester.groups.len()
    }
}

impl Digester {
    pub(crate) fn new(local: NetSet, groups: Vec<DigestGroup>) -> Digester {
        Digester {
            local,
            groups,
            stamp: STAMPS.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The mark of a packet: its class, and whether its source is ours or martian.
    #[inline]
    pub(crate) fn mark(&self, p: &PacketMeta) -> u8 {
        if self.local.contains(p.src) {
            LOCAL
        } else {
            mark_not_ours(p)
        }
    }

    /// Digests `items` into `out` (its vectors reused).
    pub fn digest(&self, items: &[(PacketMeta, Timestamp)], out: &mut Digests) {
        out.stamp = self.stamp;
        out.marks.clear();
        // Without addresses of ours (replay without `--local`) the search is left out.
        if self.local.is_empty() {
            out.marks
                .extend(items.iter().map(|(p, _)| mark_not_ours(p)));
        } else {
            out.marks.extend(items.iter().map(|(p, _)| self.mark(p)));
        }
        out.hashes.clear();
        for (prefixes, hasher, classes) in &self.groups {
            out.hashes
                .extend(items.iter().zip(&out.marks).map(|((p, _), &m)| {
                    if skipped(m) || classes >> (m & CLASS) & 1 == 0 {
                        0
                    } else {
                        hasher.hash_one(prefixes.key(p.src).words())
                    }
                }));
        }
    }
}

/// The mark of a packet whose source is not ours: martian, or its class.
#[inline]
fn mark_not_ours(p: &PacketMeta) -> u8 {
    if !martian::counted(p.src) {
        MARTIAN
    } else {
        classify(p)
    }
}

/// Whether a mark's source is one the rules never count.
#[inline]
pub(crate) fn skipped(mark: u8) -> bool {
    mark & (LOCAL | MARTIAN) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::table::layout::class;
    use crate::packet::{Proto, tcp_flag};
    use std::net::IpAddr;

    fn packet(src: &str) -> PacketMeta {
        PacketMeta {
            src: src.parse().unwrap(),
            dst: "192.0.2.1".parse().unwrap(),
            proto: Proto::Tcp,
            tcp_flags: tcp_flag::SYN,
            src_port: Some(40000),
            dst_port: Some(80),
            len: 60,
            fragment: false,
        }
    }

    fn digester() -> (Digester, RandomState) {
        let local = NetSet::new(&["10.0.0.0/8".parse().unwrap()]);
        let hasher = RandomState::default();
        let groups = vec![
            (Prefixes::new(32, 128), hasher.clone(), u32::MAX),
            (Prefixes::new(24, 64), hasher.clone(), u32::MAX),
        ];
        (Digester::new(local, groups), hasher)
    }

    #[test]
    fn marks_say_class_ours_and_martian() {
        let (d, _) = digester();
        let m = d.mark(&packet("198.51.100.7"));
        assert!(!skipped(m));
        assert_eq!(m & CLASS, class::TCP | class::SYN | class::HAS_PORT);
        assert_eq!(d.mark(&packet("10.1.2.3")), LOCAL);
        assert_eq!(d.mark(&packet("127.0.0.53")), MARTIAN);
        assert_eq!(d.mark(&packet("::1")), MARTIAN);
    }

    #[test]
    fn without_addresses_of_ours_marks_are_the_same_but_never_ours() {
        let hasher = RandomState::default();
        let groups = vec![(Prefixes::new(32, 128), hasher, u32::MAX)];
        let (with, _) = digester();
        let without = Digester::new(NetSet::new(&[]), groups);
        let srcs = [
            "198.51.100.7",
            "10.1.2.3",
            "127.0.0.53",
            "::1",
            "2001:db8::1",
            "0.0.0.0",
        ];
        let items: Vec<_> = srcs.iter().map(|s| (packet(s), Timestamp(0))).collect();
        let mut out = Digests::default();
        without.digest(&items, &mut out);
        for (i, s) in srcs.iter().enumerate() {
            let want = if *s == "10.1.2.3" {
                classify(&items[i].0)
            } else {
                with.mark(&items[i].0)
            };
            assert_eq!(out.marks[i], want, "{s}");
            assert_eq!(out.marks[i], without.mark(&items[i].0), "{s}");
        }
    }

    #[test]
    fn hashes_are_the_tables_hashes_group_by_group() {
        let (d, hasher) = digester();
        let srcs = ["198.51.100.7", "10.9.9.9", "2001:db8::1", "198.51.100.200"];
        let items: Vec<_> = srcs.iter().map(|s| (packet(s), Timestamp(0))).collect();
        let mut out = Digests::default();
        d.digest(&items, &mut out);
        assert!(out.made_by(&d, items.len()));
        assert!(!out.made_by(&d, items.len() + 1));
        assert!(!out.made_by(&digester().0, items.len()));
        for (g, prefixes) in [Prefixes::new(32, 128), Prefixes::new(24, 64)]
            .iter()
            .enumerate()
        {
            for (i, s) in srcs.iter().enumerate() {
                let a: IpAddr = s.parse().unwrap();
                let want = if i == 1 {
                    0
                } else {
                    hasher.hash_one(prefixes.key(a).words())
                };
                assert_eq!(out.hashes[g * srcs.len() + i], want, "group {g} packet {i}");
            }
        }
        // The /24 group: two sources of one /24 share a hash.
        assert_eq!(out.hashes[4], out.hashes[7]);
        assert_ne!(out.hashes[0], out.hashes[3]);
    }

    /// A group hashes only the packets of classes its windows count: the others get 0 (the
    /// engine gives them no slot there), while every group still hashes a counted class.
    #[test]
    fn a_group_hashes_only_the_classes_it_counts() {
        let hasher = RandomState::default();
        let syn = class::TCP | class::SYN | class::HAS_PORT;
        let groups = vec![
            (Prefixes::new(32, 128), hasher.clone(), u32::MAX),
            (Prefixes::new(24, 64), hasher.clone(), 1 << syn),
        ];
        let d = Digester::new(NetSet::default(), groups);
        let mut udp = packet("198.51.100.7");
        udp.proto = Proto::Udp;
        udp.tcp_flags = 0;
        let items = [(packet("198.51.100.7"), Timestamp(0)), (udp, Timestamp(0))];
        let mut out = Digests::default();
        d.digest(&items, &mut out);
        let a: IpAddr = "198.51.100.7".parse().unwrap();
        let all = hasher.hash_one(Prefixes::new(32, 128).key(a).words());
        let agg = hasher.hash_one(Prefixes::new(24, 64).key(a).words());
        assert_eq!(out.hashes, vec![all, all, agg, 0]);
    }
}
