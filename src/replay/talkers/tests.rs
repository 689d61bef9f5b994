//! The talker summary's tests: exactness, the bound, batches against one packet at a time.

use super::*;

fn v4(i: u32) -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))
}

#[test]
fn exact_while_it_has_room() {
    let mut t = Talkers::new(100);
    for i in 0..1000u32 {
        t.add(v4(i % 50), 100, Timestamp(u64::from(i)));
    }
    assert_eq!(t.distinct(), (50, true));
    let top = t.top(3);
    assert_eq!(top.len(), 3);
    assert!(
        top.iter()
            .all(|e| e.packets == 20 && e.err == 0 && e.bytes == 2000)
    );
    assert_eq!(top[0].addr, v4(0));
    assert_eq!((top[0].first, top[0].last), (Timestamp(0), Timestamp(950)));
}

#[test]
fn bounded_whatever_the_stream_and_heavy_hitters_found() {
    let k = 64;
    let mut t = Talkers::new(k);
    let mut truth = std::collections::HashMap::new();
    let mut x: u64 = 1;
    for i in 0..200_000u32 {
        crate::test_rng::next(&mut x);
        // Three heavy hitters (10%, 5%, 2%), the rest spread over 100k sources.
        let r = (x >> 33) % 1000;
        let a = match r {
            0..100 => v4(1_000_001),
            100..150 => v4(1_000_002),
            150..170 => v4(1_000_003),
            _ => v4((x >> 13) as u32 % 100_000),
        };
        *truth.entry(a).or_insert(0u64) += 1;
        t.add(a, 60, Timestamp(u64::from(i)));
    }
    assert!(t.entries().count() <= k, "bound: {}", t.entries().count());
    assert!(t.memory_bytes() < 64 * 1024);
    let top = t.top(3);
    let heavy: Vec<IpAddr> = top.iter().map(|e| e.addr).collect();
    assert_eq!(heavy, [v4(1_000_001), v4(1_000_002), v4(1_000_003)]);
    for e in t.entries() {
        let real = truth[&e.addr];
        // The Space-Saving guarantee: count - err <= true <= count.
        assert!(
            e.packets - e.err <= real && real <= e.packets,
            "{e:?} real {real}"
        );
    }
    let (n, exact) = t.distinct();
    assert!(!exact);
    let real = truth.len() as f64;
    assert!(
        (n as f64 - real).abs() / real < 0.05,
        "estimate {n}, real {real}"
    );
}

#[test]
fn error_zero_entries_are_exact() {
    let mut t = Talkers::new(4);
    // a, b enter first (exact); then churn of one-shot sources through the other two.
    for i in 0..100u32 {
        t.add(v4(1), 10, Timestamp(u64::from(i)));
        t.add(v4(2), 10, Timestamp(u64::from(i)));
        t.add(v4(100 + i), 10, Timestamp(u64::from(i)));
    }
    let exact: Vec<Entry> = t.entries().filter(|e| e.err == 0).copied().collect();
    assert!(
        exact
            .iter()
            .any(|e| e.addr == v4(1) && e.packets == 100 && e.bytes == 1000)
    );
    assert!(exact.iter().any(|e| e.addr == v4(2) && e.packets == 100));
    assert!(t.replaced);
    assert_eq!(t.entries().count(), 4);
}

/// A churning stream: `n` packets over `sources` sources, a few of them heavy.
fn churn(n: u32, sources: u32) -> Vec<(IpAddr, u32, Timestamp)> {
    let mut x: u64 = 7;
    (0..n)
        .map(|i| {
            crate::test_rng::next(&mut x);
            let a = match (x >> 33) % 10 {
                0 => v4(1_000_000 + (x >> 40) as u32 % 3),
                _ => v4((x >> 13) as u32 % sources),
            };
            (a, 40 + i % 1000, Timestamp(u64::from(i)))
        })
        .collect()
}

fn sorted(t: &Talkers) -> Vec<Entry> {
    let mut all: Vec<Entry> = t.entries().copied().collect();
    all.sort_by_key(|e| e.addr);
    all
}

#[test]
fn batches_count_exactly_as_one_packet_at_a_time() {
    let stream = churn(50_000, 3_000);
    let mut one = Talkers::new(500);
    for &(a, len, ts) in &stream {
        one.add(a, len, ts);
    }
    let mut batched = Talkers::new(500);
    // Batches shorter than, as long as and longer than the look-ahead, and empty ones.
    let mut rest = &stream[..];
    for size in [0, 1, AHEAD - 1, AHEAD, AHEAD + 1, 4096].iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (batch, tail) = rest.split_at((*size).min(rest.len()));
        batched.add_batch(batch.iter().copied());
        rest = tail;
    }
    assert!(one.replaced && batched.replaced);
    assert_eq!(sorted(&one), sorted(&batched));
    assert_eq!(one.top(10), batched.top(10));
    assert_eq!(one.distinct(), batched.distinct());
    assert_eq!(batched.entries().count(), 500);
}

#[test]
fn rescan_lists_every_smallest_entry_in_slot_order() {
    let mut t = Talkers::new(300);
    for (a, len, ts) in churn(20_000, 2_000) {
        t.add(a, len, ts);
    }
    t.rescan();
    let min = t.entries().map(|e| e.packets).min().unwrap();
    let expected: Vec<u32> = (0..t.slots.len() as u32)
        .filter(|&s| t.slots[s as usize].packets == min)
        .collect();
    assert_eq!(t.min, min);
    assert!(!expected.is_empty());
    assert_eq!(t.candidates, expected);
}

/// A random stream of `n` packets over `sources` sources (every 5th IPv6), some heavy.
fn random_stream(seed: u64, n: u32, sources: u32) -> Vec<(IpAddr, u32, Timestamp)> {
    let mut x = seed;
    (0..n)
        .map(|i| {
            crate::test_rng::next(&mut x);
            let s = match (x >> 33) % 4 {
                0 => (x >> 40) as u32 % 4,
                _ => (x >> 13) as u32 % sources,
            };
            let a = if s % 5 == 0 {
                IpAddr::V6(std::net::Ipv6Addr::from(
                    0x2001_0db8_u128 << 96 | u128::from(s),
                ))
            } else {
                v4(s)
            };
            (a, 40 + (x >> 50) as u32 % 1500, Timestamp(u64::from(i)))
        })
        .collect()
}

/// Each source's (packets, bytes, first, last), counted the obvious way.
fn naive(stream: &[(IpAddr, u32, Timestamp)]) -> Vec<Entry> {
    let mut all = std::collections::BTreeMap::new();
    for &(addr, len, ts) in stream {
        let e = all.entry(addr).or_insert(Entry {
            addr,
            packets: 0,
            err: 0,
            bytes: 0,
            first: ts,
            last: ts,
        });
        e.packets += 1;
        e.bytes += u64::from(len);
        e.last = ts;
    }
    all.into_values().collect()
}

#[test]
fn exact_as_a_naive_counter_while_nothing_is_replaced() {
    for (seed, sources) in [(1, 10), (2, 1_000), (3, 20_000)] {
        let stream = random_stream(seed, 100_000, sources);
        let truth = naive(&stream);
        // Exactly room for every source: still nothing replaced.
        let mut t = Talkers::new(truth.len());
        for batch in stream.chunks(4096) {
            t.add_batch(batch.iter().copied());
        }
        assert!(!t.replaced);
        assert_eq!(sorted(&t), truth, "seed {seed}");
        assert_eq!(t.distinct(), (truth.len() as u64, true));
        let mut by_count = truth.clone();
        by_count.sort_by(|a, b| b.packets.cmp(&a.packets).then(a.addr.cmp(&b.addr)));
        assert_eq!(t.top(10), by_count[..10.min(by_count.len())]);
    }
}

#[test]
fn bounded_and_within_the_guarantee_under_many_sources() {
    let stream = random_stream(9, 300_000, 200_000);
    let truth: std::collections::HashMap<IpAddr, u64> =
        naive(&stream).iter().map(|e| (e.addr, e.packets)).collect();
    let k = 1_000;
    let mut t = Talkers::new(k);
    for batch in stream.chunks(4096) {
        t.add_batch(batch.iter().copied());
    }
    assert!(t.replaced);
    assert_eq!(t.entries().count(), k);
    assert_eq!(t.slots.capacity(), k, "the slots never grow past k");
    // Index: at most 16,384 entries of 6.4 bytes for 1,000 slots, however much churn.
    assert!(
        t.memory_bytes() <= k * 64 + 2048 * 64 + k * 4 + 4096,
        "{}",
        t.memory_bytes()
    );
    let total: u64 = t.entries().map(|e| e.packets).sum();
    assert_eq!(
        total,
        stream.len() as u64,
        "Space-Saving keeps the total count"
    );
    for e in t.entries() {
        let real = truth[&e.addr];
        assert!(
            e.packets - e.err <= real && real <= e.packets,
            "{e:?} real {real}"
        );
        // Each entry is found through the index, in its own slot.
        assert_eq!(
            t.find(e.addr, t.hash(e.addr), NO_GUESS)
                .map(|s| t.slots[s as usize]),
            Some(*e)
        );
    }
    // The four heavy sources (~1/16 of the packets each) are there, exact or nearly.
    let top: Vec<IpAddr> = t.top(4).iter().map(|e| e.addr).collect();
    let mut heavy: Vec<(u64, IpAddr)> = truth.iter().map(|(&a, &n)| (n, a)).collect();
    heavy.sort_by(|a, b| b.cmp(a));
    let mut expected: Vec<IpAddr> = heavy[..4].iter().map(|h| h.1).collect();
    let mut got = top.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
}

#[test]
fn ipv4_and_ipv6_are_kept_apart() {
    let mut t = Talkers::new(10);
    t.add("10.0.0.1".parse().unwrap(), 1, Timestamp(1));
    t.add("::a00:1".parse().unwrap(), 1, Timestamp(1));
    assert_eq!(t.distinct(), (2, true));
}
