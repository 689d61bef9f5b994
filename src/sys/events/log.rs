//! The daemon's handle on the event sink: every thread emits typed events through one
//! [`EventLog`]. Callers hand over a whole [`Stamped`] event, so the mutex inside can become a
//! bounded queue with a writer thread without changing a caller.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use super::{EventSink, EventsError};
use crate::event::{Event, Stamped};
use crate::sys::clock::wall_now;
use crate::time::Timestamp;

/// Event lines `recent` keeps, for `status` and `autoblock top`.
pub const RECENT: usize = 32;

/// Shared by every thread of the daemon (`Arc` it or keep it in a shared struct).
pub struct EventLog {
    sink: Mutex<EventSink>,
    /// The newest [`RECENT`] lines, oldest first (rate-limited ones included).
    recent: Mutex<VecDeque<String>>,
}

impl EventLog {
    /// Events go to `sink`.
    pub fn new(sink: EventSink) -> EventLog {
        EventLog {
            sink: Mutex::new(sink),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
        }
    }

    /// Writes one event (suppressed ones may be left out by the rate limit, and counted).
    pub fn emit(&self, event: Stamped) {
        let line = event.line();
        self.sink().emit(event.event.kind(), &line);
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(line);
    }

    /// The newest event lines, oldest first.
    pub fn recent(&self) -> Vec<String> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().cloned().collect()
    }

    /// Writes one event stamped with the wall clock now.
    pub fn emit_now(&self, event: Event) {
        self.emit(event.at(wall_now()));
    }

    /// Sums up the suppressed events left out since the last call (see
    /// [`EventSink::flush_dropped`]).
    pub fn flush_dropped(&self, now: Timestamp) {
        self.sink().flush_dropped(now);
    }

    /// Reopens the events file (SIGHUP).
    pub fn reopen(&self) -> Result<(), EventsError> {
        self.sink().reopen()
    }

    /// Suppressed events left out by the rate limit since start.
    pub fn dropped_suppressed(&self) -> u64 {
        self.sink().dropped_suppressed()
    }

    /// The sink; a thread that panicked while writing leaves it usable.
    fn sink(&self) -> MutexGuard<'_, EventSink> {
        self.sink.lock().unwrap_or_else(|p| p.into_inner())
    }
}
