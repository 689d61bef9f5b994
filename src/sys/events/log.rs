//! The daemon's handle on its event outputs: every thread emits typed events through one
//! [`EventLog`], which renders each line once and queues it for every output (stdout, the
//! events file), each drained by its own writer thread. Emitting never waits on I/O: a stalled
//! journald or a full disk costs dropped lines (counted, and reported when the output works
//! again), never a stalled engine, control socket or signal.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::output::{Output, Stdout};
use super::queue::{LineQueue, Priority};
use super::{EventFile, EventsError, MAX_QUEUED_BYTES, MAX_QUEUED_LINES};
use crate::event::{Event, Stamped};
use crate::sys::clock::wall_now;
use crate::time::Timestamp;

/// Event lines `recent` keeps, for `status` and `autoblock top`.
pub const RECENT: usize = 32;

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// One output: its name, its queue, and the end of its writer thread.
struct Lane {
    name: &'static str,
    queue: Arc<LineQueue>,
    /// Disconnected when the writer thread has ended.
    done: Mutex<Option<Receiver<()>>>,
}

/// Shared by every thread of the daemon (`Arc` it or keep it in a shared struct). `C` is the
/// rate limiter's clock (a fake one in tests).
pub struct EventLog<C: Clock = DefaultClock> {
    lanes: Vec<Lane>,
    /// `None` when `suppressed_per_sec` is 0 (no limit).
    limiter: Option<Limiter<C>>,
    /// Suppressed events left out by the rate limit since the last `flush_dropped`.
    suppressed_pending: AtomicU64,
    /// Suppressed events left out by the rate limit since start.
    suppressed_total: AtomicU64,
    /// The newest [`RECENT`] lines (without their newline), oldest first.
    recent: Mutex<VecDeque<Arc<str>>>,
}

impl EventLog {
    /// Events to stdout and, when `file` is set, to that file; at most `suppressed_per_sec`
    /// suppressed events per second (0: no limit). Fails when the file cannot be opened.
    pub fn open(file: Option<PathBuf>, suppressed_per_sec: u32) -> Result<EventLog, EventsError> {
        let mut outputs: Vec<Box<dyn Output>> = Vec::new();
        match Stdout::open() {
            Some(s) => outputs.push(Box::new(s)),
            None => tracing::warn!("no stdout: events go to the events file only"),
        }
        if let Some(path) = file {
            outputs.push(Box::new(EventFile::open(path)?));
        }
        EventLog::with_outputs(outputs, suppressed_per_sec, DefaultClock::default())
    }
}

impl<C: Clock> EventLog<C> {
    /// One writer thread per output, each behind a queue of the default bounds.
    pub fn with_outputs(
        outputs: Vec<Box<dyn Output>>,
        suppressed_per_sec: u32,
        clock: C,
    ) -> Result<EventLog<C>, EventsError> {
        let lanes = outputs
            .into_iter()
            .map(|o| spawn_lane(o, MAX_QUEUED_LINES, MAX_QUEUED_BYTES))
            .collect::<Result<_, _>>()?;
        let limiter = NonZeroU32::new(suppressed_per_sec)
            .map(|n| RateLimiter::direct_with_clock(Quota::per_second(n), clock));
        Ok(EventLog {
            lanes,
            limiter,
            suppressed_pending: AtomicU64::new(0),
            suppressed_total: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
        })
    }

    /// Queues one event for every output (suppressed ones may be left out by the rate limit,
    /// and counted). Never waits on I/O.
    pub fn emit(&self, event: Stamped) {
        if let Event::Suppressed(_) = event.event
            && let Some(limiter) = &self.limiter
            && limiter.check().is_err()
        {
            self.suppressed_pending.fetch_add(1, Ordering::Relaxed);
            self.suppressed_total.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let priority = priority(&event.event);
        let line = event.line();
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(Arc::from(line.as_str()));
        }
        let mut line = line;
        line.push('\n');
        let line: Arc<str> = Arc::from(line);
        // Counted by the queue, never logged here: a log line could wait on a stalled stderr.
        for lane in &self.lanes {
            lane.queue.push(line.clone(), priority);
        }
    }

    /// The newest event lines, oldest first.
    pub fn recent(&self) -> Vec<String> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().map(|l| l.to_string()).collect()
    }

    /// Queues one event stamped with the wall clock now.
    pub fn emit_now(&self, event: Event) {
        self.emit(event.at(wall_now()));
    }

    /// When suppressed events were left out since the last call, emits a `suppressed_dropped`
    /// event with their count, at `now`. Call it periodically.
    pub fn flush_dropped(&self, now: Timestamp) {
        let count = self.suppressed_pending.swap(0, Ordering::Relaxed);
        if count > 0 {
            self.emit(Event::SuppressedDropped { count }.at(now));
        }
    }

    /// Reopens the events file before its next line (SIGHUP; failures are logged and retried).
    pub fn reopen(&self) {
        for lane in &self.lanes {
            lane.queue.request_reopen();
        }
    }

    /// Suppressed events left out by the rate limit since start.
    pub fn dropped_suppressed(&self) -> u64 {
        self.suppressed_total.load(Ordering::Relaxed)
    }

    /// Lines left out since start (a full queue or a failed write), per output.
    pub fn dropped_by_output(&self) -> Vec<(&'static str, u64)> {
        self.lanes
            .iter()
            .map(|l| (l.name, l.queue.dropped()))
            .collect()
    }

    /// Lines left out since start, all outputs together.
    pub fn dropped(&self) -> u64 {
        self.lanes.iter().map(|l| l.queue.dropped()).sum()
    }

    /// Accepts no more events and waits up to `within` for every writer to write what is
    /// queued. True when all did; a writer stuck on its output (nobody reads the pipe) is left
    /// behind, and ends with the process.
    pub fn close(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        for lane in &self.lanes {
            lane.queue.close();
        }
        let mut all = true;
        for lane in &self.lanes {
            let Some(done) = lane.done().take() else {
                continue;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(RecvTimeoutError::Timeout) = done.recv_timeout(left) {
                tracing::warn!(
                    output = lane.name,
                    queued = lane.queue.len(),
                    "events not written at exit: the output does not take them"
                );
                all = false;
            }
        }
        all
    }
}

impl Lane {
    fn done(&self) -> MutexGuard<'_, Option<Receiver<()>>> {
        self.done.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<C: Clock> Drop for EventLog<C> {
    /// Whatever is queued gets a short chance to be written (an error at start, a panic).
    fn drop(&mut self) {
        self.close(Duration::from_secs(1));
    }
}

/// A queue and the writer thread that drains it into `out`.
fn spawn_lane(
    mut out: Box<dyn Output>,
    max_lines: usize,
    max_bytes: usize,
) -> Result<Lane, EventsError> {
    let name = out.name();
    let queue = Arc::new(LineQueue::new(max_lines, max_bytes));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let q = queue.clone();
    std::thread::Builder::new()
        .name(format!("events-{name}"))
        .spawn(move || {
            super::writer::run(&q, out.as_mut());
            drop(done_tx);
        })
        .map_err(|error| EventsError::Writer {
            output: name,
            error,
        })?;
    Ok(Lane {
        name,
        queue,
        done: Mutex::new(Some(done_rx)),
    })
}

/// What may be left out first when an output falls behind: summaries and reports. Decisions,
/// lifecycle events and errors keep the last quarter of every queue to themselves.
fn priority(event: &Event) -> Priority {
    match event.kind() {
        "suppressed" | "suppressed_dropped" | "applied" | "capture_drops" | "local_addresses" => {
            Priority::Info
        }
        _ => Priority::Keep,
    }
}
