//! A bounded queue of event lines between the threads that emit events and one output's writer
//! thread. Pushing never waits on I/O: it takes a mutex held only to append to a `VecDeque`,
//! and when the queue is full the line is dropped and counted instead.
//!
//! Invariants:
//! - At most `max_lines` lines and `max_bytes` bytes wait (plus one batch being written).
//! - Informational lines may fill only [`INFO_SHARE`] of either bound; the rest is kept for
//!   decisions and lifecycle events, so a burst of `applied` or `suppressed` lines never
//!   crowds out a `block` or an `unblock`. Nothing already queued is ever evicted (the order
//!   of what is written is the order of what was emitted).
//! - Every line left out, because the queue was full or because its write failed, is counted
//!   twice: in `dropped` (since start, for `status` and the metrics) and in `unreported`
//!   (since the writer last reported them with an `events_dropped` event).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Share of the queue informational lines may fill, as (numerator, denominator).
pub const INFO_SHARE: (usize, usize) = (3, 4);
/// Most lines one batch takes from the queue (bounds what is held outside it).
const BATCH: usize = 256;

/// Whether a line may be left out before the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Decisions (block, extend, unblock), lifecycle and errors.
    Keep,
    /// Summaries and reports (`applied`, `suppressed`, `capture_drops`, ...).
    Info,
}

/// What [`LineQueue::take`] found besides lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// The output should be reopened (SIGHUP) before the next write.
    pub reopen: bool,
    /// The queue is closed and now empty: the writer is done after this batch.
    pub closed: bool,
}

#[derive(Default)]
struct State {
    lines: VecDeque<std::sync::Arc<str>>,
    bytes: usize,
    closed: bool,
    reopen: bool,
}

/// One output's queue. Share it as `Arc<LineQueue>` between emitters and the writer.
pub struct LineQueue {
    state: Mutex<State>,
    wake: Condvar,
    max_lines: usize,
    max_bytes: usize,
    dropped: AtomicU64,
    unreported: AtomicU64,
}

impl LineQueue {
    /// A queue holding at most `max_lines` lines and `max_bytes` bytes.
    pub fn new(max_lines: usize, max_bytes: usize) -> LineQueue {
        LineQueue {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            max_lines: max_lines.max(1),
            max_bytes: max_bytes.max(1),
            dropped: AtomicU64::new(0),
            unreported: AtomicU64::new(0),
        }
    }

    /// Queues `line` (a whole line, newline included), or drops and counts it when the queue
    /// is full for its priority (or closed). Never waits on the writer.
    pub fn push(&self, line: std::sync::Arc<str>, priority: Priority) -> bool {
        let (lines, bytes) = match priority {
            Priority::Keep => (self.max_lines, self.max_bytes),
            Priority::Info => (share(self.max_lines), share(self.max_bytes)),
        };
        let mut s = self.lock();
        if s.closed || s.lines.len() >= lines || s.bytes.saturating_add(line.len()) > bytes {
            drop(s);
            self.count_dropped(1);
            return false;
        }
        s.bytes += line.len();
        s.lines.push_back(line);
        drop(s);
        self.wake.notify_one();
        true
    }

    /// Waits until there is something to do, then moves up to a batch of lines into `out`.
    pub fn take(&self, out: &mut Vec<std::sync::Arc<str>>) -> Taken {
        let mut s = self.lock();
        while s.lines.is_empty() && !s.closed && !s.reopen {
            s = self.wake.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        let n = s.lines.len().min(BATCH);
        for line in s.lines.drain(..n) {
            out.push(line);
        }
        s.bytes = s.lines.iter().map(|l| l.len()).sum();
        let reopen = std::mem::take(&mut s.reopen);
        Taken {
            reopen,
            closed: s.closed && s.lines.is_empty(),
        }
    }

    /// Asks the writer to reopen its output before its next write.
    pub fn request_reopen(&self) {
        self.lock().reopen = true;
        self.wake.notify_one();
    }

    /// No more lines are accepted; the writer ends once the queue is empty.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }

    /// Counts `n` lines left out (a full queue, or a write that failed).
    pub fn count_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        self.unreported.fetch_add(n, Ordering::Relaxed);
    }

    /// Lines left out since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Lines left out and not reported yet.
    pub fn unreported(&self) -> u64 {
        self.unreported.load(Ordering::Relaxed)
    }

    /// `n` of the unreported lines were reported.
    pub fn reported(&self, n: u64) {
        self.unreported.fetch_sub(n, Ordering::Relaxed);
    }

    /// Lines waiting now.
    pub fn len(&self) -> usize {
        self.lock().lines.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn share(n: usize) -> usize {
    (n / INFO_SHARE.1 * INFO_SHARE.0).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn line(s: &str) -> Arc<str> {
        Arc::from(format!("{s}\n"))
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let q = LineQueue::new(4, 1 << 20);
        for i in 0..6 {
            q.push(line(&format!("block {i}")), Priority::Keep);
        }
        assert_eq!((q.len(), q.dropped(), q.unreported()), (4, 2, 2));
        let mut out = Vec::new();
        let taken = q.take(&mut out);
        assert_eq!(taken, Taken::default());
        let got: Vec<&str> = out.iter().map(|l| l.trim_end()).collect();
        assert_eq!(got, ["block 0", "block 1", "block 2", "block 3"]);
        q.reported(2);
        assert_eq!((q.dropped(), q.unreported()), (2, 0));
    }

    #[test]
    fn informational_lines_never_take_the_room_kept_for_decisions() {
        let q = LineQueue::new(8, 1 << 20);
        for _ in 0..20 {
            q.push(line("applied"), Priority::Info);
        }
        assert_eq!(q.len(), 6, "3/4 of 8");
        for i in 0..2 {
            assert!(q.push(line(&format!("block {i}")), Priority::Keep));
        }
        assert!(!q.push(line("block 2"), Priority::Keep), "full");
        assert_eq!(q.dropped(), 15);
    }

    #[test]
    fn the_byte_bound_holds_too() {
        let q = LineQueue::new(1000, 100);
        let big: Arc<str> = Arc::from("x".repeat(60));
        assert!(q.push(big.clone(), Priority::Keep));
        assert!(!q.push(big.clone(), Priority::Keep));
        let mut out = Vec::new();
        q.take(&mut out);
        assert!(q.push(big, Priority::Keep), "room again once taken");
    }

    #[test]
    fn close_lets_the_writer_finish_what_is_queued_then_refuses_more() {
        let q = Arc::new(LineQueue::new(1000, 1 << 20));
        for i in 0..300 {
            q.push(line(&i.to_string()), Priority::Keep);
        }
        q.close();
        assert!(!q.push(line("late"), Priority::Keep));
        let mut out = Vec::new();
        assert!(!q.take(&mut out).closed, "a first batch, more to come");
        assert_eq!(out.len(), BATCH);
        out.clear();
        assert!(q.take(&mut out).closed);
        assert_eq!(out.len(), 300 - BATCH);
    }

    #[test]
    fn a_waiting_writer_wakes_for_lines_and_for_reopen() {
        let q = Arc::new(LineQueue::new(10, 1 << 20));
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = {
            let q = q.clone();
            std::thread::spawn(move || {
                for _ in 0..2 {
                    let mut out = Vec::new();
                    let taken = q.take(&mut out);
                    tx.send((taken, out.len())).unwrap();
                }
            })
        };
        q.request_reopen();
        let (taken, n) = rx.recv().unwrap();
        assert!(taken.reopen && n == 0, "{taken:?} {n}");
        q.push(line("block"), Priority::Keep);
        let (taken, n) = rx.recv().unwrap();
        assert!(!taken.reopen && n == 1, "{taken:?} {n}");
        writer.join().unwrap();
    }
}
