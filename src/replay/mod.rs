//! Replay: a capture file through exactly the parse -> count -> evaluate code that runs live,
//! on capture time. Two threads: one reads and parses frames ([`crate::sys::capture`] +
//! [`crate::packet`]), keeps the report's top talkers (`talkers.rs`: bounded, whatever the
//! file holds), counts the flood detectors ([`FloodStage`]: their decisions go with the
//! batch, and the engine hands them out at their packet) and digests each batch for the
//! engine ([`Digester`]: which sources the rules skip, each packet's class and key hashes);
//! one owns the engine. Batches of parsed packets go between them and come back for reuse, so nothing is allocated per packet and no table is shared. Memory is bounded by
//! `max_tracked_sources` (engine tables, the talker summary) however many sources the file has.

mod offenders;
mod talkers;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;
use ipnet::IpNet;

use crate::config::{Config, Metric};
use crate::engine::digest::{Digester, Digests};
use crate::engine::flood::EndReason;
use crate::engine::flood_stage::{FloodStage, Tagged};
use crate::engine::peaks::{RulePeak, Series};
use crate::engine::sources::SourceKey;
use crate::engine::{Decision, Engine};
use crate::event::Summary;
use crate::packet::{self, PacketMeta};
use crate::replay_attacks::{AttackLog, AttackReport};
use crate::sys::capture::{CaptureError, CaptureFile};
use crate::time::Timestamp;
use offenders::{finish_offenders, note_offender};
use talkers::Talkers;

/// Packets per batch between the reader and the engine.
const BATCH: usize = 4096;
/// Most sources the talker summary keeps (fewer when `max_tracked_sources` is lower): up to
/// this many distinct sources, the report's sources and talkers are exact. 7/8 of 2^16 (it was
/// sized for a hashbrown table's 2^16 buckets): 3.5 MiB of entries, and an index of 0.5 MiB
/// that grows to 1 MiB once replacements leave tombstones in it.
const MAX_TALKERS: usize = 57_344;
/// Top talkers in the report.
const TOP_TALKERS: usize = 10;
/// Memory is sampled every this many batches.
const SAMPLE_EVERY: u64 = 16;

pub struct ReplayOptions {
    /// Our own addresses: traffic from them is never counted or blocked.
    pub local: Vec<IpNet>,
    /// Print progress to stderr about once a second.
    pub progress: bool,
    /// Per rule (file order), sources whose values to record at each packet (`--report`).
    pub trace: Option<Vec<Vec<SourceKey>>>,
    /// Sources with the highest peaks kept per rule (1: the peak and its source; `--report`
    /// keeps more, to draw them).
    pub peak_sources: usize,
}

/// Per-source totals for the report: the talker summary's own entries.
pub use talkers::Entry as Talker;

/// What replay would have done to one target.
#[derive(Clone, Debug, PartialEq)]
pub struct Offender {
    pub key: SourceKey,
    pub rule: Arc<str>,
    /// `None` for a manual ban.
    pub metric: Option<Metric>,
    /// The rule's window value when it first blocked (or was suppressed): the `observed` of
    /// that event.
    pub observed: u64,
    /// The highest window value seen while it fired or was banned (a distinct metric's stops
    /// at its cap).
    pub peak: u64,
    pub threshold: u64,
    /// When it was first blocked (or suppressed).
    pub first_decision: Timestamp,
    pub blocks: u32,
    /// `Some(reason)` when never blocked, only suppressed.
    pub suppressed: Option<&'static str>,
    /// Traffic from the target (all addresses inside a prefix target). A lower bound when
    /// `approx` (the talker summary could not keep every source of the file).
    pub packets: u64,
    pub approx: bool,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

pub struct ReplayReport {
    pub summary: Summary,
    /// Blocked first, then suppressed; each by first decision time.
    pub offenders: Vec<Offender>,
    /// The top talkers, most packets first.
    pub talkers: Vec<Talker>,
    /// Flood detectors' attacks, by start time.
    pub attacks: Vec<AttackReport>,
    /// Packets toward destinations the flood detectors could not track (their table full).
    pub flood_untracked: u64,
    /// Per rule, the highest values any source reached (the `peaks` event).
    pub peaks: Vec<RulePeak>,
    /// Per rule, the traced sources' values over time (only with [`ReplayOptions::trace`]).
    pub trace: Vec<Vec<(SourceKey, Series)>>,
    /// The first packet's time.
    pub first_ts: Timestamp,
}

/// Open failure: nothing was read.
pub type OpenError = CaptureError;

/// Parsed packets from the reader, with what the reader counted of them.
struct Batch {
    items: Vec<(PacketMeta, Timestamp)>,
    /// The items' digests, made by the engine's digester.
    digests: Digests,
    frames: u64,
    unparsed: u64,
    bytes: u64,
    /// The flood detectors' decisions for this batch.
    floods: Vec<Tagged>,
    /// The flood detectors' memory, sampled every [`SAMPLE_EVERY`] batches.
    flood_bytes: u64,
}

/// A counted batch's vectors, back to the reader for reuse.
type Spent = (Vec<(PacketMeta, Timestamp)>, Digests);

enum Msg {
    Batch(Batch),
    Done(Result<(), CaptureError>),
}

/// The engine thread's side of a replay: the engine and what its decisions add up to.
struct EngineSide {
    engine: Engine,
    summary: Summary,
    offenders: HashMap<SourceKey, Offender, RandomState>,
    attacks: AttackLog,
    decisions: Vec<Decision>,
    first_ts: Option<Timestamp>,
    last_ts: Timestamp,
    bytes_read: u64,
    batches: u64,
}

impl EngineSide {
    fn new(engine: Engine, summary: Summary) -> EngineSide {
        EngineSide {
            engine,
            summary,
            offenders: HashMap::default(),
            attacks: AttackLog::default(),
            decisions: Vec::new(),
            first_ts: None,
            last_ts: Timestamp(0),
            bytes_read: 0,
            batches: 0,
        }
    }

    /// The file is read: its attacks end, and the report is made.
    fn finish(
        mut self,
        mut stage: Option<&mut FloodStage>,
        talkers: Talkers,
        on_decision: &mut dyn FnMut(&Decision),
    ) -> ReplayReport {
        let last_ts = self.last_ts;
        let attacks = end_attacks(
            &mut self.engine,
            stage.as_deref_mut(),
            last_ts,
            self.attacks,
            on_decision,
        );
        self.summary.ts = last_ts;
        let mut report = report(
            &self.engine,
            stage.as_deref(),
            self.summary,
            self.offenders,
            talkers,
            attacks,
        );
        report.trace = self.engine.take_trace();
        report.first_ts = self.first_ts.unwrap_or(last_ts);
        report
    }

    /// Counts one batch; every decision goes to `on_decision`. Returns the batch's vectors
    /// for reuse.
    fn batch(&mut self, b: Batch, on_decision: &mut dyn FnMut(&Decision)) -> Spent {
        let Batch {
            items,
            digests,
            frames,
            unparsed,
            bytes,
            floods,
            flood_bytes,
        } = b;
        self.summary.packets += frames;
        self.summary.unparsed += unparsed;
        self.summary.parsed += items.len() as u64;
        self.bytes_read += bytes;
        self.engine.feed_floods(floods);
        self.engine
            .observe_digested(&items, &digests, &mut self.decisions);
        if let Some((_, ts)) = items.last() {
            self.last_ts = *ts;
        }
        if let Some((_, ts)) = items.first() {
            self.first_ts.get_or_insert(*ts);
        }
        for d in self.decisions.drain(..) {
            note_offender(&mut self.offenders, &d);
            self.attacks.note(&d);
            on_decision(&d);
        }
        self.batches += 1;
        if self.batches.is_multiple_of(SAMPLE_EVERY) {
            let m = self.engine.memory_bytes() as u64 + flood_bytes;
            self.summary.peak_table_bytes = self.summary.peak_table_bytes.max(m);
        }
        (items, digests)
    }
}

/// Replays one file; every decision is passed to `on_decision` as it is made.
pub fn replay_file(
    config: &Config,
    path: &Path,
    opts: &ReplayOptions,
    on_decision: &mut dyn FnMut(&Decision),
) -> Result<ReplayReport, OpenError> {
    let (mut file, mut engine, summary) = open(config, path, opts)?;
    let k = config.limits.max_tracked_sources.clamp(1, MAX_TALKERS);
    let file_size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let started = Instant::now();
    let mut last_progress = started;

    let stage = engine.detach_floods();
    let digester = engine.digester();
    let mut run = EngineSide::new(engine, summary);
    let (talkers, mut stage) = std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<Msg>(4);
        let (back_tx, back_rx) = mpsc::channel::<Spent>();
        let reader = scope.spawn(move || {
            let mut side = ReaderSide {
                talkers: Talkers::new(k),
                stage,
                digester,
            };
            read_loop(&mut file, &mut side, tx, back_rx);
            side
        });
        for msg in rx {
            match msg {
                Msg::Batch(b) => {
                    let spent = run.batch(b, on_decision);
                    // The reader may be gone already; then the batch is simply dropped.
                    let _ = back_tx.send(spent);
                    if opts.progress && last_progress.elapsed() >= Duration::from_secs(1) {
                        last_progress = Instant::now();
                        show_progress(path, run.summary.packets, run.bytes_read, file_size);
                    }
                }
                Msg::Done(Err(e)) => {
                    run.summary.complete = false;
                    run.summary.error = Some(e.to_string());
                }
                Msg::Done(Ok(())) => {}
            }
        }
        // The reader ends by itself once it has sent `Done`; a panic there is a bug.
        match reader.join() {
            Ok(side) => (side.talkers, side.stage),
            Err(_) => (Talkers::new(1), None),
        }
    });
    if opts.progress && started.elapsed() >= Duration::from_secs(1) {
        eprintln!();
    }
    Ok(run.finish(stage.as_mut(), talkers, on_decision))
}

/// One progress line on stderr, over the last one.
fn show_progress(path: &Path, packets: u64, bytes_read: u64, file_size: u64) {
    eprint!(
        "\r{}: {packets} packets, {} of {} MB",
        path.display(),
        bytes_read >> 20,
        file_size >> 20
    );
}

/// The file (filtered as live capture would be), an engine for it, an empty summary.
fn open(
    config: &Config,
    path: &Path,
    opts: &ReplayOptions,
) -> Result<(CaptureFile, Engine, Summary), OpenError> {
    let mut file = CaptureFile::open(path)?;
    // Replay reads what the live capture would: only frames `[capture] bpf_filter` matches.
    if let Some(filter) = &config.capture.bpf_filter {
        file.set_filter(filter)?;
    }
    let mut engine = Engine::new(config, opts.local.clone());
    engine.without_leaders();
    engine.keep_peak_sources(opts.peak_sources);
    if let Some(watch) = &opts.trace {
        engine.trace_sources(watch.clone());
    }
    let mut summary = Summary::new(path.display().to_string(), Timestamp(0));
    summary.bpf_filter = config.capture.bpf_filter.clone();
    Ok((file, engine, summary))
}

/// Ends the flood attacks still going when the file ends (their `attack_end` says so), and
/// returns every attack of the file.
fn end_attacks(
    engine: &mut Engine,
    stage: Option<&mut FloodStage>,
    at: Timestamp,
    mut log: AttackLog,
    on_decision: &mut dyn FnMut(&Decision),
) -> Vec<AttackReport> {
    let mut decisions = Vec::new();
    match stage {
        Some(stage) => {
            let ended = stage.end_all(at, EndReason::FileEnded);
            engine.apply_floods(at, ended, &mut decisions);
        }
        None => engine.end_floods(at, EndReason::FileEnded, &mut decisions),
    }
    for d in &decisions {
        log.note(d);
        on_decision(d);
    }
    log.finish()
}

/// The report once the file is read: the summary's totals, offenders with their traffic and
/// peak values, talkers by packets, the flood attacks.
fn report(
    engine: &Engine,
    stage: Option<&FloodStage>,
    mut summary: Summary,
    mut offenders: HashMap<SourceKey, Offender, RandomState>,
    talkers: Talkers,
    attacks: Vec<AttackReport>,
) -> ReplayReport {
    let stats = engine.stats();
    let (sources, exact) = talkers.distinct();
    summary.sources = sources;
    summary.sources_estimated = !exact;
    summary.local_packets = stats.local_packets;
    summary.untracked_packets = stats.untracked + stats.untracked_distinct;
    summary.untracked_distinct_packets = stats.untracked_distinct;
    summary.peak_table_bytes = summary
        .peak_table_bytes
        .max((engine.memory_bytes() + flood_bytes(stage) + talkers.memory_bytes()) as u64);
    for ban in engine.bans().iter() {
        if let Some(o) = offenders.get_mut(&ban.key) {
            o.peak = o.peak.max(ban.peak);
        }
    }
    summary.blocked = offenders
        .values()
        .filter(|o| o.suppressed.is_none())
        .count() as u64;
    // Over the summary's own entries: a copy of them (3.5 MiB when full) was the largest
    // thing allocated at replay's peak, when every table is at its largest.
    summary.spoofed =
        crate::replay_spoof::assess(talkers.entries(), summary.sources, summary.parsed, &attacks);
    let offenders = finish_offenders(offenders, &talkers);
    let talkers = talkers.top(TOP_TALKERS);
    ReplayReport {
        summary,
        offenders,
        talkers,
        attacks,
        flood_untracked: stage
            .map_or(engine.floods(), FloodStage::floods)
            .untracked(),
        peaks: engine.peaks(),
        trace: Vec::new(),
        first_ts: Timestamp(0),
    }
}

fn flood_bytes(stage: Option<&FloodStage>) -> usize {
    stage.map_or(0, |s| s.floods().memory_bytes())
}

/// What the reader thread keeps besides reading: the talker summary, the flood detectors,
/// and the engine's digester.
struct ReaderSide {
    talkers: Talkers,
    stage: Option<FloodStage>,
    digester: Digester,
}

/// The reader thread: frames -> parsed batches, until the end of the file or an error.
fn read_loop(
    file: &mut CaptureFile,
    side: &mut ReaderSide,
    tx: mpsc::SyncSender<Msg>,
    back: mpsc::Receiver<Spent>,
) {
    let linktype = file.linktype();
    let mut batches = 0u64;
    let mut flood_bytes = 0u64;
    loop {
        let (mut items, mut digests) = back
            .try_recv()
            .unwrap_or_else(|_| (Vec::with_capacity(BATCH), Digests::default()));
        items.clear();
        let (mut frames, mut unparsed, mut bytes) = (0u64, 0u64, 0u64);
        let end = loop {
            match file.next_frame() {
                Ok(Some(f)) => {
                    frames += 1;
                    bytes += f.data.len() as u64 + 16;
                    match packet::parse(linktype, f.data, f.wire_len) {
                        Ok(p) => {
                            items.push((p, f.ts));
                        }
                        Err(_) => unparsed += 1,
                    }
                    if frames as usize >= BATCH {
                        break None;
                    }
                }
                Ok(None) => break Some(Ok(())),
                Err(e) => break Some(Err(e)),
            }
        };
        side.talkers
            .add_batch(items.iter().map(|(p, ts)| (p.src, p.len, *ts)));
        let mut floods = Vec::new();
        if let Some(stage) = &mut side.stage {
            stage.observe_batch(&items, &mut floods);
        }
        side.digester.digest(&items, &mut digests);
        batches += 1;
        if batches.is_multiple_of(SAMPLE_EVERY) {
            flood_bytes = self::flood_bytes(side.stage.as_ref()) as u64;
        }
        let batch = Msg::Batch(Batch {
            items,
            digests,
            frames,
            unparsed,
            bytes,
            floods,
            flood_bytes,
        });
        if tx.send(batch).is_err() {
            return;
        }
        if let Some(result) = end {
            let _ = tx.send(Msg::Done(result));
            return;
        }
    }
}
