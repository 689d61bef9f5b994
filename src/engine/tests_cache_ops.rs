//! Differential tests of the ban cache against the engine's other inputs: two engines, one
//! with the cache and one without (`ban_cache.off`), get the same packets and the same calls
//! between them (our addresses, verified peers, reloads, bans from the fleet, manual bans and
//! unbans, adoption, ticks, clock resets); their decisions, the calls' results and their ban
//! tables must be the same at every step.

use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::admin::RefuseReason;
use super::remote::Remote;
use super::tests::{config, rule, syn};
use super::*;
use crate::cluster::{BanKind, BanMessage};
use crate::config::{Protocol, RuleMode, TcpFlagsFilter};
use crate::engine::bans::ActiveBan;
use crate::engine::sources::SourceKey;
use crate::trust::peers::PeerKind;

const MS: u64 = 1000;
const SEC: u64 = 1_000_000;

/// The flooders: two addresses of one /24, one in `192.0.2.0/24` (allowlisted at the start of
/// every random stream), one IPv6.
const SOURCES: [&str; 4] = ["203.0.113.1", "203.0.113.2", "192.0.2.5", "2001:db8::7"];

/// What manual bans, fleet bans and adoptions name: each flooder, and the prefixes around them
/// (what rule `b` bans when it counts per /24 and /64).
const TARGETS: [&str; 6] = [
    "203.0.113.1/32",
    "203.0.113.2/32",
    "192.0.2.5/32",
    "2001:db8::7/128",
    "203.0.113.0/24",
    "2001:db8::/64",
];

/// The rule names a ban may carry: ours, another node's, an operator's.
const RULES: [&str; 4] = ["a", "b", "syn-flood", "manual"];

/// Our own address (the flood's destination): always local.
const US: &str = "10.0.0.1/32";

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// What a configuration may change: two SYN rules on the same packets, their thresholds
/// and bans, rule `b`'s aggregation, mode and stance on peers, and `[enforce]`/`[allow]`.
#[derive(Clone, Debug)]
struct Knobs {
    threshold_a: u64,
    ban_a_ms: u64,
    threshold_b: u64,
    ban_b_ms: u64,
    /// Rule `b` counts per /24 (IPv6: /64) instead of per address.
    b_per_prefix: bool,
    /// Rule `b` has `ban_verified_peers`.
    b_bans_peers: bool,
    /// Rule `b` only logs.
    b_logs: bool,
    extend: bool,
    multiplier: f64,
    max_ban_ms: u64,
    /// Bit 0: `192.0.2.0/24`, bit 1: `203.0.113.2/32`, bit 2: `2001:db8::/64`.
    allow: u8,
    max_new_bans_per_sec: u32,
}

fn knobs() -> impl Strategy<Value = Knobs> {
    (
        (2..40u64, 100..40_000u64, 2..40u64, 100..40_000u64),
        (any::<bool>(), any::<bool>(), prop::bool::weighted(0.2)),
        (any::<bool>(), 1.0..3.0f64, 1_000..120_000u64),
        (0..8u8, prop_oneof![Just(2u32), Just(1000u32)]),
    )
        .prop_map(
            |(
                (threshold_a, ban_a_ms, threshold_b, ban_b_ms),
                (b_per_prefix, b_bans_peers, b_logs),
                (extend, multiplier, max_ban_ms),
                (allow, max_new_bans_per_sec),
            )| Knobs {
                threshold_a,
                ban_a_ms,
                threshold_b,
                ban_b_ms,
                b_per_prefix,
                b_bans_peers,
                b_logs,
                extend,
                multiplier,
                max_ban_ms,
                allow,
                max_new_bans_per_sec,
            },
        )
}

/// A rule counting SYNs over 1 s, banning for `ban_ms`.
fn syn_rule(name: &str, threshold: u64, ban_ms: u64) -> crate::config::Rule {
    let mut r = rule(name, Metric::Packets, threshold, 1000);
    r.protocol = Protocol::Tcp;
    r.tcp_flags = Some(TcpFlagsFilter::Syn);
    r.ban = Some(Duration::from_millis(ban_ms));
    r
}

fn config_of(k: &Knobs) -> Config {
    let a = syn_rule("a", k.threshold_a, k.ban_a_ms);
    let mut b = syn_rule("b", k.threshold_b, k.ban_b_ms);
    if k.b_per_prefix {
        b.aggregate_v4 = 24;
        b.aggregate_v6 = 64;
    }
    b.ban_verified_peers = k.b_bans_peers;
    if k.b_logs {
        b.mode = RuleMode::Log;
    }
    let mut c = config(vec![a, b]);
    c.allow.nets = ["192.0.2.0/24", "203.0.113.2/32", "2001:db8::/64"]
        .iter()
        .enumerate()
        .filter(|(i, _)| k.allow & (1 << i) != 0)
        .map(|(_, n)| net(n))
        .chain([net("127.0.0.0/8")])
        .collect();
    c.enforce.extend_while_active = k.extend;
    c.enforce.repeat_multiplier = k.multiplier;
    c.enforce.max_ban = Duration::from_millis(k.max_ban_ms.max(k.ban_a_ms).max(k.ban_b_ms));
    c.enforce.max_new_bans_per_sec = k.max_new_bans_per_sec;
    c
}

/// One step of a stream, applied alike to both engines. Gaps are in µs.
#[derive(Clone, Debug)]
enum Op {
    /// One SYN from `SOURCES[src]`, `gap` after the previous step.
    Syn {
        src: usize,
        gap: u32,
    },
    /// `n` SYNs from `SOURCES[src]`, `gap` apart, in one batch.
    Burst {
        src: usize,
        n: usize,
        gap: u32,
    },
    Tick {
        gap: u32,
    },
    /// The clock goes back `secs` (past a clock reset), then a tick.
    ClockBack {
        secs: u32,
    },
    /// Our addresses: `US` and the flooders of the bits of `mask`.
    SetLocal {
        mask: u8,
    },
    /// Verified peers: the flooders of the bits of `mask`, and `203.0.113.0/24` if `net`.
    SetPeers {
        mask: u8,
        net: bool,
        gateway: bool,
    },
    Reconfigure(Knobs),
    /// A message of node `a` or `b` (`kind`: block, extend, unblock) about `TARGETS[target]`,
    /// ending `secs` from now.
    Remote {
        kind: u8,
        target: usize,
        secs: u32,
        node_b: bool,
        rule: usize,
        offense: u32,
        manual: bool,
    },
    RetryFleet,
    BanManual {
        target: usize,
        ms: Option<u64>,
        force: bool,
        replace: bool,
    },
    Unban {
        target: usize,
        covering: bool,
    },
    /// Lifts every ban (`None`) or those of `RULES[rule]`.
    UnbanWhere {
        rule: Option<usize>,
    },
    /// Adopts a ban found in the kernel, then (if `lift`) lifts the protected ones as the
    /// daemon does at start.
    Adopt {
        target: usize,
        secs: u32,
        rule: usize,
        manual: bool,
        node_b: bool,
        lift: bool,
    },
}

fn gap() -> impl Strategy<Value = u32> {
    prop_oneof![9 => 0..3000u32, 1 => 100_000..3_000_000u32]
}

/// A set of flooders: none, one, or any.
fn mask() -> impl Strategy<Value = u8> {
    prop_oneof![Just(0u8), (0..4u8).prop_map(|i| 1 << i), 0..16u8]
}

fn op() -> impl Strategy<Value = Op> {
    let target = 0..TARGETS.len();
    prop_oneof![
        120 => (0..SOURCES.len(), gap()).prop_map(|(src, gap)| Op::Syn { src, gap }),
        50 => (0..SOURCES.len(), 1..64usize, 0..3000u32)
            .prop_map(|(src, n, gap)| Op::Burst { src, n, gap }),
        4 => (0..3_000_000u32).prop_map(|gap| Op::Tick { gap }),
        1 => (61..600u32).prop_map(|secs| Op::ClockBack { secs }),
        2 => mask().prop_map(|mask| Op::SetLocal { mask }),
        3 => (mask(), prop::bool::weighted(0.2), any::<bool>())
            .prop_map(|(mask, net, gateway)| Op::SetPeers { mask, net, gateway }),
        2 => knobs().prop_map(Op::Reconfigure),
        4 => (
            0..3u8,
            target.clone(),
            1..120u32,
            any::<bool>(),
            0..RULES.len(),
            1..4u32,
            prop::bool::weighted(0.2),
        )
            .prop_map(|(kind, target, secs, node_b, rule, offense, manual)| Op::Remote {
                kind,
                target,
                secs,
                node_b,
                rule,
                offense,
                manual,
            }),
        1 => Just(Op::RetryFleet),
        2 => (
            target.clone(),
            prop::option::of(100..60_000u64),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(target, ms, force, replace)| Op::BanManual {
                target,
                ms,
                force,
                replace,
            }),
        2 => (target.clone(), any::<bool>())
            .prop_map(|(target, covering)| Op::Unban { target, covering }),
        1 => prop::option::of(0..RULES.len()).prop_map(|rule| Op::UnbanWhere { rule }),
        // Mostly a prefix: a ban that may cover our addresses while a neighbour floods.
        2 => (
            prop_oneof![target, 4..TARGETS.len()],
            1..120u32,
            0..RULES.len(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(target, secs, rule, manual, node_b, lift)| Op::Adopt {
                target,
                secs,
                rule,
                manual,
                node_b,
                lift,
            }),
    ]
}

/// What a call returned besides its decisions.
#[derive(Debug, PartialEq)]
enum Outcome {
    Nothing,
    Remote(Remote),
    Manual(Result<ManualBan, RefuseReason>),
    Unbanned(Unbanned),
    Lifted(usize),
}

fn node(b: bool) -> &'static str {
    if b { "node-b" } else { "node-a" }
}

fn peers(mask: u8, prefix: bool, gateway: bool) -> Arc<PeerSet> {
    let kind = if gateway {
        PeerKind::Gateway
    } else {
        PeerKind::Established
    };
    let mut b = PeerSet::builder(16);
    for (i, s) in SOURCES.iter().enumerate() {
        if mask & (1 << i) != 0 {
            b.host(s.parse::<IpAddr>().unwrap(), kind);
        }
    }
    if prefix {
        b.net(net("203.0.113.0/24"), kind);
    }
    Arc::new(b.build())
}

fn locals(mask: u8) -> Vec<IpNet> {
    let hosts = SOURCES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, s)| IpNet::from(s.parse::<IpAddr>().unwrap()));
    std::iter::once(net(US)).chain(hosts).collect()
}

/// Applies `op` to `e` at `ts` (the stream's clock, already moved by the step's gap).
fn apply(e: &mut Engine, op: &Op, ts: u64, out: &mut Vec<Decision>) -> Outcome {
    let now = Timestamp(ts);
    match op {
        Op::Syn { src, .. } => e.observe(&syn(SOURCES[*src], "10.0.0.1", 80), now, out),
        Op::Burst { src, n, gap } => {
            // The batch ends at `ts`.
            let first = ts - (*n as u64 - 1) * u64::from(*gap);
            let items: Vec<_> = (0..*n as u64)
                .map(|i| {
                    let p = syn(SOURCES[*src], "10.0.0.1", 80);
                    (p, Timestamp(first + i * u64::from(*gap)))
                })
                .collect();
            e.observe_batch(&items, out);
        }
        Op::Tick { .. } | Op::ClockBack { .. } => e.tick(now, out),
        Op::SetLocal { mask } => e.set_local(locals(*mask), now, out),
        Op::SetPeers { mask, net, gateway } => e.set_peers(peers(*mask, *net, *gateway)),
        Op::Reconfigure(k) => e.reconfigure(&config_of(k), now, out),
        Op::Remote {
            kind,
            target,
            secs,
            node_b,
            rule,
            offense,
            manual,
        } => {
            let kind = [BanKind::Block, BanKind::Extend, BanKind::Unblock][usize::from(*kind)];
            let m = BanMessage::new(
                format!("{}-1-{ts}", node(*node_b)),
                node(*node_b).into(),
                kind,
                net(TARGETS[*target]),
                now.saturating_add(Duration::from_secs(u64::from(*secs))),
                now,
                RULES[*rule],
                *offense,
                *manual,
            );
            return Outcome::Remote(e.apply_remote(&m, now, out));
        }
        Op::RetryFleet => e.retry_fleet(now, out),
        Op::BanManual {
            target,
            ms,
            force,
            replace,
        } => {
            let d = ms.map(Duration::from_millis);
            let r = e.ban_manual(net(TARGETS[*target]), d, "test", *force, *replace, now);
            return Outcome::Manual(r);
        }
        Op::Unban { target, covering } => {
            return Outcome::Unbanned(e.unban(net(TARGETS[*target]), *covering, now));
        }
        Op::UnbanWhere { rule } => {
            return Outcome::Lifted(e.unban_where(rule.map(|r| RULES[r]), now, out));
        }
        Op::Adopt {
            target,
            secs,
            rule,
            manual,
            node_b,
            lift,
        } => {
            let d = Duration::from_secs(u64::from(*secs));
            e.adopt(ActiveBan {
                key: SourceKey::from_net(net(TARGETS[*target])),
                until: now.saturating_add(d),
                since: now,
                rule: Arc::from(RULES[*rule]),
                comment: None,
                offense: 1,
                duration: d,
                peak: 0,
                manual: *manual,
                origin: node_b.then(|| Arc::from(node(true))),
            });
            if *lift {
                e.lift_protected(now, out);
            }
        }
    }
    Outcome::Nothing
}

/// The stream's clock after `op`, from `ts`.
fn advance(ts: u64, op: &Op) -> u64 {
    match op {
        Op::Syn { gap, .. } | Op::Tick { gap } => ts + u64::from(*gap),
        Op::Burst { n, gap, .. } => ts + (*n as u64) * u64::from(*gap),
        Op::ClockBack { secs } => ts.saturating_sub(u64::from(*secs) * SEC),
        _ => ts,
    }
}

/// Every ban, in key order.
fn bans(e: &Engine) -> Vec<ActiveBan> {
    let mut v: Vec<ActiveBan> = e.bans().iter().cloned().collect();
    v.sort_by_key(|b| b.key);
    v
}

/// An engine with the ban cache and one without, fed alike.
struct Twins {
    cached: Engine,
    plain: Engine,
    x: Vec<Decision>,
    y: Vec<Decision>,
    ts: u64,
}

impl Twins {
    fn new(c: &Config) -> Twins {
        let cached = Engine::new(c, vec![net(US)]);
        let mut plain = Engine::new(c, vec![net(US)]);
        plain.ban_cache.off = true;
        Twins {
            cached,
            plain,
            x: Vec::new(),
            y: Vec::new(),
            ts: 100_000 * SEC,
        }
    }

    /// Applies `f` to both engines (each with its own decisions): the results must be equal.
    /// The plain engine's cache is turned off again (`set_local`, `set_peers` and
    /// `reconfigure` make a new one, on).
    fn both<R: PartialEq + Debug>(&mut self, f: impl Fn(&mut Engine, &mut Vec<Decision>) -> R) {
        let a = f(&mut self.cached, &mut self.x);
        let b = f(&mut self.plain, &mut self.y);
        self.plain.ban_cache.off = true;
        assert_eq!(a, b);
    }

    /// `n` SYNs from `src`, one every `step_us`.
    fn flood(&mut self, src: &str, n: usize, step_us: u64) {
        let p = syn(src, "10.0.0.1", 80);
        for _ in 0..n {
            self.ts += step_us;
            let t = Timestamp(self.ts);
            self.both(|e, out| e.observe(&p, t, out));
        }
    }

    /// Both engines decided alike so far and hold the same bans.
    fn check(&self) {
        assert_eq!(self.x, self.y);
        assert_eq!(bans(&self.cached), bans(&self.plain));
    }

    /// The cached engine's decisions from the `from`th on.
    fn since(&self, from: usize) -> &[Decision] {
        &self.x[from..]
    }
}

fn extends(d: &[Decision]) -> usize {
    d.iter()
        .filter(|d| matches!(d, Decision::Extend(_)))
        .count()
}

/// The offenses of the blocks in `d`.
fn blocks(d: &[Decision]) -> Vec<u32> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Block(v) => Some(v.offense),
            _ => None,
        })
        .collect()
}

fn expired(d: &[Decision]) -> usize {
    d.iter()
        .filter(|d| {
            matches!(
                d,
                Decision::Unblock {
                    reason: UnblockReason::Expired,
                    ..
                }
            )
        })
        .count()
}

/// A flooder banned and extended (its answer cached) becomes a verified peer mid-flood and
/// doubles its rate: its ban is neither extended nor its peak raised any more, it runs out,
/// and the flood is then reported as a peer's; once it is no peer again, it is banned again
/// (second offense). The same decisions and bans with and without the cache, phase by phase.
#[test]
fn a_banned_flooder_made_a_verified_peer_mid_flood_decides_alike() {
    let mut t = Twins::new(&config(vec![syn_rule("a", 5, 20_000)]));
    let flooder = "203.0.113.1";
    // 100 SYNs a second for 5 s: banned, then extended every 2 s.
    t.flood(flooder, 500, 10 * MS);
    t.check();
    assert_eq!(blocks(&t.x), [1]);
    assert!(extends(&t.x) >= 1);
    let key = SourceKey::new(flooder.parse().unwrap(), 32, 128);
    let before = t.cached.bans().get(&key).expect("banned").clone();

    let mark = t.x.len();
    t.both(|e, _| e.set_peers(peers(0b0001, false, false)));
    // 30 s more at 200 a second: the ban ends as it was; the flood is then reported.
    t.flood(flooder, 6_000, 5 * MS);
    t.check();
    let d = t.since(mark);
    assert_eq!(extends(d), 0, "{d:#?}");
    assert_eq!(blocks(d), Vec::<u32>::new());
    assert_eq!(expired(d), 1);
    let Some(Decision::Unblock { ban, .. }) =
        d.iter().find(|d| matches!(d, Decision::Unblock { .. }))
    else {
        panic!("{d:#?}");
    };
    assert_eq!(
        (ban.until, ban.peak),
        (before.until, before.peak),
        "neither extended nor its peak raised once a peer"
    );
    assert!(d.iter().any(|d| matches!(
        d,
        Decision::Suppressed {
            reason: SuppressReason::Peer(_),
            ..
        }
    )));

    // No longer a peer: banned again, and extended again.
    let mark = t.x.len();
    t.both(|e, _| e.set_peers(Arc::default()));
    t.flood(flooder, 500, 10 * MS);
    t.check();
    assert_eq!(blocks(t.since(mark)), [2]);
    assert!(extends(t.since(mark)) >= 1);
}

/// Reloads mid-flood, a banned flooder's answer cached: a longer ban for its rule upgrades
/// its ban at its next packet; a threshold above its rate leaves the ban to end; the old
/// threshold bans it again (second offense); without extensions that ban runs out although
/// the flood goes on (third offense). The same decisions and bans with and without the cache.
#[test]
fn reloads_mid_flood_decide_alike() {
    let low = config(vec![syn_rule("a", 5, 20_000)]);
    let longer = config(vec![syn_rule("a", 5, 60_000)]);
    let high = config(vec![syn_rule("a", 500, 60_000)]);
    let mut t = Twins::new(&low);
    let flooder = "2001:db8::7";
    t.flood(flooder, 500, 10 * MS);
    t.check();
    assert_eq!(blocks(&t.x), [1]);
    assert!(extends(&t.x) >= 1);

    let reload = |t: &mut Twins, c: &Config| {
        let at = Timestamp(t.ts);
        t.both(|e, out| e.reconfigure(c, at, out));
    };
    // A longer ban: upgraded at once (not at the next extension step).
    let mark = t.x.len();
    reload(&mut t, &longer);
    t.flood(flooder, 1, 10 * MS);
    t.check();
    let d = t.since(mark);
    assert!(
        matches!(d, [Decision::Extend(v)] if v.ban == Duration::from_secs(60) && v.at == Timestamp(t.ts)),
        "{d:#?}"
    );
    t.flood(flooder, 499, 10 * MS);
    t.check();

    // Over the threshold no more: the ban (60 s) ends.
    let mark = t.x.len();
    reload(&mut t, &high);
    t.flood(flooder, 7_000, 10 * MS);
    t.check();
    let d = t.since(mark);
    assert_eq!(
        (extends(d), blocks(d).len(), expired(d)),
        (0, 0, 1),
        "{d:#?}"
    );

    let mark = t.x.len();
    reload(&mut t, &low);
    t.flood(flooder, 500, 10 * MS);
    t.check();
    assert_eq!(blocks(t.since(mark)), [2]);
    assert!(extends(t.since(mark)) >= 1);

    // Extensions off: the ban (40 s for a second offense) ends although the flood goes on.
    let mut fixed = low.clone();
    fixed.enforce.extend_while_active = false;
    let mark = t.x.len();
    reload(&mut t, &fixed);
    t.flood(flooder, 9_000, 10 * MS);
    t.check();
    let d = t.since(mark);
    assert_eq!(extends(d), 0);
    assert_eq!(expired(d), 1);
    assert_eq!(blocks(d), [3]);
}

/// The decisions of one step, in the order to compare: as made, except for calls that lift
/// several bans at once (our addresses, a reload, a bulk unban, lifting protected bans), which
/// go through the ban table in its hash order (each engine's own): those are compared as a set.
fn in_order(op: &Op, d: &[Decision]) -> Vec<String> {
    let mut v: Vec<String> = d.iter().map(|d| format!("{d:?}")).collect();
    if matches!(
        op,
        Op::SetLocal { .. } | Op::Reconfigure(_) | Op::UnbanWhere { .. } | Op::Adopt { .. }
    ) {
        v.sort();
    }
    v
}

/// Applies `ops` to an engine with the cache and one without, from the configuration of
/// `start`; every call's result, every step's decisions and the ban tables must be the same.
fn run(start: &Knobs, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut t = Twins::new(&config_of(start));
    for (i, op) in ops.iter().enumerate() {
        t.ts = advance(t.ts, op);
        let (ts, from_x, from_y) = (t.ts, t.x.len(), t.y.len());
        let a = apply(&mut t.cached, op, ts, &mut t.x);
        let b = apply(&mut t.plain, op, ts, &mut t.y);
        // `set_local`, `set_peers` and `reconfigure` start a new cache: off again.
        t.plain.ban_cache.off = true;
        prop_assert_eq!(a, b, "step {}: {:?}", i, op);
        prop_assert_eq!(
            in_order(op, &t.x[from_x..]),
            in_order(op, &t.y[from_y..]),
            "step {}: {:?}",
            i,
            op
        );
        prop_assert_eq!(bans(&t.cached), bans(&t.plain), "step {}: {:?}", i, op);
    }
    prop_assert_eq!(t.cached.stats(), t.plain.stats());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// Floods from four sources (two in one /24, one allowlisted at first, one IPv6) with,
    /// at random points, changes to our addresses, the verified peers and the configuration,
    /// fleet messages, manual bans and unbans, adoptions, ticks and clock resets: the same
    /// results, decisions and bans with and without the cache, step by step.
    #[test]
    fn the_cache_changes_no_decision_when_other_inputs_change(
        mut start in knobs(),
        ops in prop::collection::vec(op(), 500..5000),
    ) {
        start.allow |= 1;
        run(&start, &ops)?;
    }
}
