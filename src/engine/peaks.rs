//! Each rule's highest values over a whole run (pure), for tuning: the few sources whose
//! window value went highest, with the value and when it was first reached, so replay can say
//! "conn-burst peaked at 26 of 28, from 10.0.0.7". And, only when asked (replay's `--report`),
//! the values of chosen sources over time.
//!
//! Cost per counted packet: one comparison against the set's floor and one branch on the trace.
//! By default a set keeps one source, so its floor is the rule's peak so far and only a new
//! record goes further (a few thousand times in a flood, not once per packet). Replay's
//! `--report` keeps [`TOP`] sources (the ones it draws): then a kept source above the floor
//! scans the few entries on each packet, which a tuning run can afford. A window value only
//! changes when its source sends, so offering each new value sees every peak.

use std::sync::Arc;

use super::Engine;
use super::sources::SourceKey;
use crate::config::Metric;
use crate::time::Timestamp;

/// Sources kept per rule with `--report`: the highest peaks.
pub const TOP: usize = 5;
/// Points kept per traced source before they are thinned (every other one goes, the higher of
/// each pair stays).
const MAX_POINTS: usize = 20_000;

/// Distinct-value windows store at most this many values (twice the threshold and one, at most
/// 16384): a count stops there, so a peak equal to it means "at least".
pub fn distinct_cap(threshold: u64) -> u64 {
    threshold.saturating_mul(2).saturating_add(1).min(16_384)
}

/// The cap of `metric`'s window values, if it has one.
pub fn value_cap(metric: Metric, threshold: u64) -> Option<u64> {
    match metric {
        Metric::DstPorts | Metric::DstAddrs => Some(distinct_cap(threshold)),
        Metric::Packets | Metric::Bytes => None,
    }
}

/// `121+` when the value is a distinct metric's cap.
pub fn peak_text(value: u64, capped: bool) -> String {
    if capped {
        format!("{value}+")
    } else {
        value.to_string()
    }
}

/// The peak as a share of the threshold: `93%`, `≥202%` when capped, `-` for nothing counted.
pub fn margin(peak: u64, threshold: u64, capped: bool) -> String {
    if peak == 0 || threshold == 0 {
        return "-".to_string();
    }
    let pct = (peak as f64 * 100.0 / threshold as f64).round();
    format!("{}{pct:.0}%", if capped { "≥" } else { "" })
}

/// One rule's highest sources.
#[derive(Clone, Debug)]
pub struct PeakSet {
    /// At most `keep` (source, its highest value, when first reached), in no order.
    entries: Vec<(SourceKey, u64, Timestamp)>,
    /// The lowest value kept once the set is full, else 0.
    floor: u64,
    /// Sources kept (at least 1).
    keep: usize,
}

impl PeakSet {
    /// A set of the `keep` sources with the highest peaks.
    pub fn new(keep: usize) -> PeakSet {
        PeakSet {
            entries: Vec::new(),
            floor: 0,
            keep: keep.max(1),
        }
    }

    #[inline]
    pub fn offer(&mut self, key: SourceKey, value: u64, ts: Timestamp) {
        if value > self.floor {
            self.admit(key, value, ts);
        }
    }

    #[inline(never)]
    fn admit(&mut self, key: SourceKey, value: u64, ts: Timestamp) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.0 == key) {
            if value > e.1 {
                (e.1, e.2) = (value, ts);
            }
        } else if self.entries.len() < self.keep {
            self.entries.push((key, value, ts));
        } else if let Some(low) = self.entries.iter_mut().min_by_key(|e| e.1) {
            *low = (key, value, ts);
        }
        if self.entries.len() == self.keep {
            self.floor = self.entries.iter().map(|e| e.1).min().unwrap_or(0);
        }
    }

    /// Highest first; a tie goes to the source that got there first.
    pub fn top(&self) -> Vec<(SourceKey, u64, Timestamp)> {
        let mut v = self.entries.clone();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)).then(a.0.cmp(&b.0)));
        v
    }
}

/// One traced source's values: (time, window value) at each packet it sent.
pub type Series = Vec<(Timestamp, u64)>;

/// Every rule's peak set, and the optional trace.
#[derive(Clone, Debug, Default)]
pub struct Peaks {
    sets: Vec<PeakSet>,
    /// Per rule: the sources to trace and their series (`None`: no trace, the usual case).
    trace: Option<Vec<Vec<(SourceKey, Series)>>>,
}

impl Peaks {
    /// Sets of one source each (the peak and its source), for `rules` rules.
    pub fn new(rules: usize) -> Peaks {
        Peaks {
            sets: vec![PeakSet::new(1); rules],
            trace: None,
        }
    }

    /// Values at or below this cannot change rule `ri`'s set (0 while it has room).
    #[inline]
    pub fn floor(&self, ri: usize) -> u64 {
        self.sets.get(ri).map_or(0, |s| s.floor)
    }

    /// Whether values at or below a floor are wanted too (a source is traced).
    #[inline]
    pub fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    /// Rule `ri`'s window value for `key` is `value` at `ts`.
    #[inline]
    pub fn offer(&mut self, ri: usize, key: SourceKey, value: u64, ts: Timestamp) {
        if let Some(set) = self.sets.get_mut(ri) {
            set.offer(key, value, ts);
        }
        if let Some(trace) = &mut self.trace {
            record(trace, ri, key, value, ts);
        }
    }
}

#[inline(never)]
fn record(
    trace: &mut [Vec<(SourceKey, Series)>],
    ri: usize,
    key: SourceKey,
    value: u64,
    ts: Timestamp,
) {
    let Some(series) = trace
        .get_mut(ri)
        .and_then(|t| t.iter_mut().find(|s| s.0 == key))
    else {
        return;
    };
    let points = &mut series.1;
    if points.len() >= MAX_POINTS {
        let thinned: Series = points
            .chunks(2)
            .filter_map(|c| c.iter().max_by_key(|p| p.1).copied())
            .collect();
        *points = thinned;
    }
    points.push((ts, value));
}

/// One rule's peak over a run.
#[derive(Clone, Debug, PartialEq)]
pub struct RulePeak {
    pub rule: Arc<str>,
    pub metric: Metric,
    pub threshold: u64,
    /// Window values stop here (distinct metrics): a peak equal to it means "at least".
    pub cap: Option<u64>,
    /// The sources with the highest peaks, highest first (empty: nothing matched the rule).
    pub top: Vec<(SourceKey, u64, Timestamp)>,
}

impl RulePeak {
    /// The highest value any source reached (0 when none matched).
    pub fn peak(&self) -> u64 {
        self.top.first().map_or(0, |t| t.1)
    }

    /// True when the peak is the cap (the real count may be higher).
    pub fn capped(&self) -> bool {
        self.cap.is_some_and(|c| self.peak() >= c)
    }
}

impl Engine {
    /// Every rule's peak so far, in file order.
    pub fn peaks(&self) -> Vec<RulePeak> {
        self.rules
            .iter()
            .enumerate()
            .map(|(ri, r)| RulePeak {
                rule: r.name.clone(),
                metric: r.metric,
                threshold: r.threshold,
                cap: value_cap(r.metric, r.threshold),
                top: self
                    .peaks
                    .sets
                    .get(ri)
                    .map(PeakSet::top)
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Keeps the `keep` sources with the highest peaks per rule, not only the highest (replay
    /// with `--report` draws them). Call it before the first packet.
    pub fn keep_peak_sources(&mut self, keep: usize) {
        for set in &mut self.peaks.sets {
            *set = PeakSet::new(keep);
        }
        self.sync_reports();
    }

    /// From now on, records the values of `watch[ri]`'s sources for rule `ri` at each packet.
    pub fn trace_sources(&mut self, watch: Vec<Vec<SourceKey>>) {
        let trace = watch
            .into_iter()
            .map(|keys| keys.into_iter().map(|k| (k, Series::new())).collect())
            .collect();
        self.peaks.trace = Some(trace);
        // Every value must reach the trace, not only those above the leaders' floor.
        self.report_all = true;
        self.sync_reports();
    }

    /// The recorded series, per rule in file order (empty without [`Engine::trace_sources`]).
    pub fn take_trace(&mut self) -> Vec<Vec<(SourceKey, Series)>> {
        self.peaks.trace.take().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> SourceKey {
        SourceKey::new(std::net::IpAddr::from([10, 0, 0, i]), 32, 128)
    }

    #[test]
    fn keeps_each_sources_highest_value_and_the_highest_sources() {
        let mut s = PeakSet::new(TOP);
        // Windows slide: values go up and down; the peak stays, with when it was reached.
        for (t, v) in [(1, 3), (2, 9), (3, 4), (4, 9)] {
            s.offer(key(1), v, Timestamp(t));
        }
        assert_eq!(s.top(), [(key(1), 9, Timestamp(2))]);
        for i in 2..=10u8 {
            s.offer(key(i), u64::from(i), Timestamp(10));
        }
        let top = s.top();
        assert_eq!(top.len(), TOP);
        assert_eq!(top[0].0, key(10));
        assert_eq!(top[1], (key(1), 9, Timestamp(2)), "ties: first there wins");
        assert_eq!(top[TOP - 1].1, 7);
        // Below the floor: ignored.
        s.offer(key(20), 6, Timestamp(11));
        assert!(!s.top().iter().any(|e| e.0 == key(20)));
        // The default keeps the peak and its source only.
        let mut one = PeakSet::new(1);
        for (i, v) in [(1, 5), (2, 9), (3, 9), (1, 7)] {
            one.offer(key(i), v, Timestamp(u64::from(i)));
        }
        assert_eq!(one.top(), [(key(2), 9, Timestamp(2))]);
    }

    #[test]
    fn traces_only_the_watched_sources_and_thins_long_series() {
        let mut p = Peaks::new(2);
        p.trace = Some(vec![vec![(key(1), Series::new())], Vec::new()]);
        for t in 0..(MAX_POINTS as u64 + 10) {
            p.offer(0, key(1), t % 7, Timestamp(t));
            p.offer(0, key(2), 1, Timestamp(t));
            p.offer(1, key(1), 1, Timestamp(t));
        }
        let trace = p.trace.take().unwrap_or_default();
        let series = &trace[0][0].1;
        assert!(series.len() <= MAX_POINTS && series.len() > MAX_POINTS / 2);
        assert_eq!(series.iter().map(|p| p.1).max(), Some(6));
        assert!(trace[1].is_empty());
        assert_eq!(value_cap(Metric::DstPorts, 60), Some(121));
        assert_eq!(value_cap(Metric::Packets, 60), None);
    }

    #[test]
    fn margins_read_as_shares_of_the_threshold() {
        assert_eq!(margin(26, 28, false), "93%");
        assert_eq!(margin(121, 60, true), "≥202%");
        assert_eq!(margin(0, 60, false), "-");
        assert_eq!(peak_text(121, true), "121+");
    }
}
