//! The event outputs: JSON event lines to stdout and, optionally, appended to a file, each
//! through a bounded queue drained by its own writer thread ([`EventLog`]).
//!
//! Invariants:
//! - Emitting an event never waits on I/O. An output that falls behind (a stalled journald, a
//!   slow disk) loses lines, informational ones first; each output counts what it lost and,
//!   once it takes lines again, says how many with an `events_dropped` event.
//! - The outputs are independent: a stalled stdout never keeps a line from the file, a failing
//!   file never keeps one from stdout. Lines reach each output in the order they were emitted.
//! - A line is written whole or not at all (see [`output`]); a line that failed counts as
//!   dropped. No I/O error ever panics.
//! - The file is opened append+create, mode 0640. When logrotate moves it away, the next
//!   write notices the path no longer names the open inode and reopens it; `reopen` (SIGHUP)
//!   does the same on demand.
//! - Only `suppressed` events are rate limited (an attack from an allowlisted network would
//!   otherwise flood the log); the drops are counted and summed up by `flush_dropped`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

mod log;
pub mod output;
pub mod queue;
mod writer;

pub use log::EventLog;
use output::{Output, warn_once, write_whole};

/// Most lines waiting for one output: a burst of 10,000 manual bans fits.
pub const MAX_QUEUED_LINES: usize = 16_384;
/// Most bytes waiting for one output.
pub const MAX_QUEUED_BYTES: usize = 8 << 20;
const FILE_MODE: u32 = 0o640;

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    // `error` is not a `source`: its text is already in the message.
    #[error("cannot open event file {}: {error}", path.display())]
    Open { path: PathBuf, error: io::Error },
    #[error("cannot start the {output} event writer: {error}")]
    Writer {
        output: &'static str,
        error: io::Error,
    },
}

/// The events file, following its path across rotations: when logrotate moves it away, the
/// next write notices the path no longer names the open inode and reopens it. Appended to,
/// created mode 0640.
pub struct EventFile {
    path: PathBuf,
    /// The open file and its (device, inode); `None` after a failure, until a reopen works.
    handle: Option<(File, (u64, u64))>,
    /// The (device, inode) opened last: a fragment left there is still there after a reopen.
    last_id: (u64, u64),
    torn: bool,
    failing: bool,
}

impl EventFile {
    /// Opens (creates) `path` for appending; an error names the path.
    pub fn open(path: PathBuf) -> Result<EventFile, EventsError> {
        let handle = open_append(&path).map_err(|error| EventsError::Open {
            path: path.clone(),
            error,
        })?;
        Ok(EventFile {
            path,
            last_id: handle.1,
            handle: Some(handle),
            torn: false,
            failing: false,
        })
    }

    /// Takes `h` as the open file; a new file (rotated) starts without a fragment.
    fn opened(&mut self, h: (File, (u64, u64))) {
        if h.1 != self.last_id {
            self.torn = false;
            self.last_id = h.1;
        }
        self.handle = Some(h);
    }

    fn try_write(&mut self, line: &[u8]) -> io::Result<()> {
        let current = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        let stale = match &self.handle {
            Some((_, id)) => current != Some(*id),
            None => true,
        };
        if stale {
            self.handle = None;
            self.opened(open_append(&self.path)?);
        }
        match &mut self.handle {
            Some((file, _)) => write_whole(file, &mut self.torn, line),
            None => Err(io::Error::other("event file not open")),
        }
    }
}

impl Output for EventFile {
    fn name(&self) -> &'static str {
        "file"
    }

    fn write_line(&mut self, line: &[u8]) -> bool {
        let res = self.try_write(line);
        if res.is_err() {
            self.handle = None;
        }
        let path = &self.path;
        warn_once(&mut self.failing, res, || path.display().to_string())
    }

    fn reopen(&mut self) {
        self.handle = None;
        match open_append(&self.path) {
            Ok(h) => self.opened(h),
            Err(e) => tracing::warn!(
                path = %self.path.display(),
                error = %e,
                "cannot reopen the event file; will retry on the next event"
            ),
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
