//! Handshake evidence (pure): do the sources of a SYN flood complete their handshakes? Real
//! clients (a flash crowd, a botnet on its own addresses) answer our SYN-ACK with an ACK;
//! spoofed sources never see it. A target whose SYN detector is over half its threshold gets a
//! [`Watch`]: a sample of its SYN sources (one in 8 by hash, at most 32), and every bare ACK
//! toward it from a sampled source marks that source as having completed one. Bounded: at most
//! 8 watches; an ACK costs one hash and one compare while no watch exists.

use std::net::IpAddr;

use super::cell::addr_key;
use super::hll::hash128;

/// Watches at once (targets under a SYN flood being judged).
const MAX_WATCHES: usize = 8;
/// Sources sampled per watch.
const SAMPLE: usize = 32;
/// One source in this many (by hash) is sampled: the same ones on the SYN and the ACK side.
const ONE_IN: u64 = 8;
/// At least this many sampled sources before the sample says anything.
const MIN_SAMPLED: usize = 4;

/// The sampled SYN sources of one target, and which completed a handshake.
#[derive(Clone, Debug, PartialEq)]
struct Watch {
    /// The detector's slot of the target.
    slot: usize,
    /// The target.
    dst: IpAddr,
    srcs: [u128; SAMPLE],
    n: usize,
    /// Bit `i`: `srcs[i]` sent a bare ACK.
    done: u32,
    /// A filter of `srcs` ([`filter_bit`]): an ACK from a source whose bit is clear is from
    /// none of them, and is not looked up (most ACKs toward a watched target). Emptied once
    /// the sample is full and a quarter of it completed: no ACK can change the verdict then.
    filter: [u64; FILTER_WORDS],
}

/// Words of a watch's filter: 1024 bits, so that a sample of 32 sets at most one in 32.
const FILTER_WORDS: usize = 16;

/// The bit of source `src` in a [`Watch`]'s filter (a multiplicative hash: cheaper than the
/// sampling hash, which the ACK side need not compute: only sampled sources are in `srcs`).
#[inline]
fn filter_bit(src: u128) -> (usize, u64) {
    let x = ((src as u64) ^ ((src >> 64) as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54;
    ((x >> 6) as usize % FILTER_WORDS, 1 << (x & 63))
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Handshakes {
    watches: Vec<Watch>,
}

impl Watch {
    /// A bare ACK from `src` toward this watch's target (out of line: inlined, the compiler
    /// made the source's key and filter bit for every ACK, before looking for a watch).
    #[inline(never)]
    fn ack(&mut self, src: IpAddr) {
        let src = addr_key(src);
        let (word, bit) = filter_bit(src);
        if self.filter[word] & bit == 0 {
            return;
        }
        if let Some(i) = self.srcs[..self.n].iter().position(|s| *s == src) {
            self.done |= 1 << i;
            if self.n == SAMPLE && self.done.count_ones() as usize * 4 >= SAMPLE {
                self.filter = [0; FILTER_WORDS];
            }
        }
    }
}

fn sampled(src: u128) -> bool {
    hash128(src).is_multiple_of(ONE_IN)
}

impl Handshakes {
    pub fn is_empty(&self) -> bool {
        self.watches.is_empty()
    }

    /// A SYN from `src` toward `dst`, the target of `slot`, whose detector is over half its
    /// threshold. True once its sample is full (the caller need not call again).
    #[cold]
    #[inline(never)]
    pub fn syn(&mut self, slot: usize, dst: IpAddr, src: u128) -> bool {
        let i = match self.watches.iter().position(|w| w.slot == slot) {
            Some(i) => i,
            None if self.watches.len() < MAX_WATCHES => {
                self.watches.push(Watch {
                    slot,
                    dst,
                    srcs: [0; SAMPLE],
                    n: 0,
                    done: 0,
                    filter: [0; FILTER_WORDS],
                });
                self.watches.len() - 1
            }
            None => return true,
        };
        let w = &mut self.watches[i];
        if w.n < SAMPLE && sampled(src) && !w.srcs[..w.n].contains(&src) {
            w.srcs[w.n] = src;
            w.n += 1;
            let (word, bit) = filter_bit(src);
            w.filter[word] |= bit;
        }
        w.n == SAMPLE
    }

    /// A bare ACK (no SYN, RST or FIN) from `src` toward `dst`: the source is looked up only
    /// when `dst` is watched and the watch's filter may hold it.
    #[inline]
    pub fn ack(&mut self, dst: IpAddr, src: IpAddr) {
        for w in self.watches.iter_mut().filter(|w| w.dst == dst) {
            w.ack(src);
        }
    }

    /// `Some(true)` when at least a quarter of the sampled sources of `slot` completed a
    /// handshake, `Some(false)` when fewer did, `None` without enough of a sample.
    pub fn completed(&self, slot: usize) -> Option<bool> {
        let w = self.watches.iter().find(|w| w.slot == slot)?;
        (w.n >= MIN_SAMPLED).then(|| w.done.count_ones() as usize * 4 >= w.n)
    }

    /// Keeps the watches of the slots `keep` says.
    pub fn retain(&mut self, keep: impl Fn(usize) -> bool) {
        self.watches.retain(|w| keep(w.slot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4 sources the sample takes (one in 8 by hash).
    fn sampled_sources(n: usize) -> Vec<IpAddr> {
        (1u32..)
            .map(|i| IpAddr::V4(i.into()))
            .filter(|a| sampled(addr_key(*a)))
            .take(n)
            .collect()
    }

    fn ip(i: u32) -> IpAddr {
        IpAddr::V4(i.into())
    }

    #[test]
    fn real_clients_complete_spoofed_ones_do_not() {
        let mut h = Handshakes::default();
        let srcs = sampled_sources(40);
        for s in &srcs {
            h.syn(3, ip(10), addr_key(*s));
        }
        assert_eq!(h.completed(3), Some(false), "no ACK yet");
        // ACKs from sources outside the sample (some pass its filter) mark none.
        for i in 100_000..110_000 {
            h.ack(ip(10), ip(i));
        }
        assert_eq!(h.watches[0].done, 0);
        // A quarter of the sample (8 of 32) answers: real.
        for s in &srcs[..8] {
            h.ack(ip(10), *s);
        }
        assert_eq!(h.completed(3), Some(true));
        // Full and a quarter completed: nothing can change that, ACKs are not looked up.
        assert_eq!(h.watches[0].filter, [0; FILTER_WORDS]);
        for s in &srcs {
            h.ack(ip(10), *s);
        }
        assert_eq!(h.completed(3), Some(true));
        // ACKs toward another target do not count.
        let mut g = Handshakes::default();
        for s in &srcs {
            g.syn(3, ip(10), addr_key(*s));
            g.ack(ip(11), *s);
        }
        assert_eq!(g.completed(3), Some(false));
    }

    #[test]
    fn bounded_and_silent_without_a_sample() {
        let mut h = Handshakes::default();
        assert_eq!(h.completed(0), None);
        for slot in 0..20 {
            h.syn(slot, ip(10), 1);
        }
        assert_eq!(h.watches.len(), MAX_WATCHES);
        assert_eq!(h.completed(0), None, "one source is no sample");
        h.retain(|slot| slot == 2);
        assert_eq!(h.watches.len(), 1);
    }
}
