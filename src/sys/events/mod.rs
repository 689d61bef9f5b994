//! The event sink: JSON event lines to stdout and, optionally, appended to a file.
//!
//! Invariants:
//! - Every line goes to stdout first, flushed at once (log watchers follow it live); a problem
//!   with the file never keeps a line from stdout, and no I/O error ever panics.
//! - The file is opened append+create, mode 0640. When logrotate moves it away, the next
//!   write notices the path no longer names the open inode and reopens it; `reopen` (SIGHUP)
//!   does the same on demand. A failing write is warned about once, then retried on every
//!   event until it works again.
//! - Only `suppressed` events are rate limited (an attack from an allowlisted network would
//!   otherwise flood the log); the drops are counted and summed up by `flush_dropped`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::num::NonZeroU32;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::Serialize;

/// The kind whose events may be dropped when they come too fast.
const LIMITED_KIND: &str = "suppressed";
const FILE_MODE: u32 = 0o640;

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    // `error` is not a `source`: its text is already in the message.
    #[error("cannot open event file {}: {error}", path.display())]
    Open { path: PathBuf, error: io::Error },
}

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Where event lines go. `W` is stdout in the daemon, a buffer in tests; `C` is the rate
/// limiter's clock (a fake one in tests).
pub struct EventSink<W: Write = io::Stdout, C: Clock = DefaultClock> {
    out: W,
    /// Set after a failed stdout write was warned about; cleared by the next success.
    out_failing: bool,
    file: Option<EventFile>,
    /// `None` when `suppressed_per_sec` is 0 (no limit).
    limiter: Option<Limiter<C>>,
    /// Suppressed events dropped since the last `flush_dropped`.
    pending_dropped: u64,
    /// Suppressed events dropped since start.
    dropped_total: u64,
    /// One line plus its newline, reused so every write is a single `write` call.
    buf: Vec<u8>,
}

impl EventSink {
    /// Lines to stdout and, when `file` is set, to that file. At most `suppressed_per_sec`
    /// suppressed events per second (0: no limit). Fails when the file cannot be opened.
    pub fn new(file: Option<PathBuf>, suppressed_per_sec: u32) -> Result<EventSink, EventsError> {
        EventSink::with_writer(io::stdout(), file, suppressed_per_sec)
    }
}

impl<W: Write> EventSink<W> {
    /// Like [`EventSink::new`], writing to `out` instead of stdout.
    pub fn with_writer(
        out: W,
        file: Option<PathBuf>,
        suppressed_per_sec: u32,
    ) -> Result<EventSink<W>, EventsError> {
        EventSink::with_writer_and_clock(out, file, suppressed_per_sec, DefaultClock::default())
    }
}

impl<W: Write, C: Clock> EventSink<W, C> {
    /// Like [`EventSink::with_writer`], with the rate limiter reading `clock`.
    pub fn with_writer_and_clock(
        out: W,
        file: Option<PathBuf>,
        suppressed_per_sec: u32,
        clock: C,
    ) -> Result<EventSink<W, C>, EventsError> {
        let file = file.map(EventFile::open).transpose()?;
        let limiter = NonZeroU32::new(suppressed_per_sec)
            .map(|n| RateLimiter::direct_with_clock(Quota::per_second(n), clock));
        Ok(EventSink {
            out,
            out_failing: false,
            file,
            limiter,
            pending_dropped: 0,
            dropped_total: 0,
            buf: Vec::with_capacity(512),
        })
    }

    /// Write one event line (`line` without its newline). `kind` is the event's `event` field;
    /// `suppressed` lines beyond the quota are counted and dropped, all others always written.
    pub fn emit(&mut self, kind: &str, line: &str) {
        if kind == LIMITED_KIND
            && let Some(limiter) = &self.limiter
            && limiter.check().is_err()
        {
            self.pending_dropped += 1;
            self.dropped_total += 1;
            return;
        }
        self.write_line(line);
    }

    /// When suppressed events were dropped since the last call, write
    /// `{"ts":now,"event":"suppressed_dropped","count":K}`. Call it periodically.
    pub fn flush_dropped(&mut self, now_str: &str) {
        if self.pending_dropped == 0 {
            return;
        }
        #[derive(Serialize)]
        struct Dropped<'a> {
            ts: &'a str,
            event: &'static str,
            count: u64,
        }
        let summary = Dropped {
            ts: now_str,
            event: "suppressed_dropped",
            count: self.pending_dropped,
        };
        // Serializing a plain struct of strings and numbers cannot fail.
        if let Ok(line) = serde_json::to_string(&summary) {
            self.write_line(&line);
        }
        self.pending_dropped = 0;
    }

    /// Suppressed events dropped by the rate limit since start.
    pub fn dropped_suppressed(&self) -> u64 {
        self.dropped_total
    }

    /// Close and reopen the event file (after SIGHUP). On failure the sink keeps going on
    /// stdout and tries again on the next event.
    pub fn reopen(&mut self) -> Result<(), EventsError> {
        match &mut self.file {
            Some(f) => f.reopen(),
            None => Ok(()),
        }
    }

    /// The writer standing in for stdout (tests read what was written).
    #[cfg(test)]
    pub fn writer(&self) -> &W {
        &self.out
    }

    fn write_line(&mut self, line: &str) {
        self.buf.clear();
        self.buf.extend_from_slice(line.as_bytes());
        self.buf.push(b'\n');
        match self
            .out
            .write_all(&self.buf)
            .and_then(|()| self.out.flush())
        {
            Ok(()) => self.out_failing = false,
            Err(e) => {
                if !self.out_failing {
                    tracing::warn!(error = %e, "cannot write events to stdout");
                }
                self.out_failing = true;
            }
        }
        if let Some(f) = &mut self.file {
            f.write(&self.buf);
        }
    }
}

/// The event file, following its path across rotations.
struct EventFile {
    path: PathBuf,
    /// The open file and its (device, inode); `None` after a failure, until a reopen works.
    handle: Option<(File, (u64, u64))>,
    /// Set after a failure was warned about; cleared by the next successful write.
    failing: bool,
}

impl EventFile {
    fn open(path: PathBuf) -> Result<EventFile, EventsError> {
        let handle = open_append(&path).map_err(|error| EventsError::Open {
            path: path.clone(),
            error,
        })?;
        Ok(EventFile {
            path,
            handle: Some(handle),
            failing: false,
        })
    }

    fn reopen(&mut self) -> Result<(), EventsError> {
        self.handle = None;
        let handle = open_append(&self.path).map_err(|error| EventsError::Open {
            path: self.path.clone(),
            error,
        })?;
        self.handle = Some(handle);
        Ok(())
    }

    /// Append `bytes`, reopening first when the path names another file (or none) now.
    fn write(&mut self, bytes: &[u8]) {
        match self.try_write(bytes) {
            Ok(()) => {
                if self.failing {
                    tracing::info!(path = %self.path.display(), "event file writable again");
                }
                self.failing = false;
            }
            Err(e) => {
                self.handle = None;
                if !self.failing {
                    tracing::warn!(
                        path = %self.path.display(),
                        error = %e,
                        "cannot write event file; will retry on the next event"
                    );
                }
                self.failing = true;
            }
        }
    }

    fn try_write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let current = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        let stale = match &self.handle {
            Some((_, id)) => current != Some(*id),
            None => true,
        };
        if stale {
            self.handle = None;
            self.handle = Some(open_append(&self.path)?);
        }
        match &mut self.handle {
            Some((file, _)) => file.write_all(bytes),
            None => Err(io::Error::other("event file not open")),
        }
    }
}

fn open_append(path: &Path) -> io::Result<(File, (u64, u64))> {
    // Never through a symbolic link planted where the file goes (we write as root).
    let file = crate::sys::files::open_nofollow(
        OpenOptions::new().append(true).create(true).mode(FILE_MODE),
        path,
    )?;
    let meta = file.metadata()?;
    Ok((file, (meta.dev(), meta.ino())))
}

#[cfg(test)]
mod tests;
