//! Where a writer thread puts event lines ([`Output`]: stdout here, the events file in the
//! parent module), each line whole or not at all.
//!
//! Invariants:
//! - A line that fails part-way (a full disk) is cut off again: a regular file is truncated
//!   back to where the line began. Where that is impossible (a pipe: only lines over
//!   `PIPE_BUF` can tear there), the next line starts with a newline, so the fragment stands
//!   alone and every later line is whole. Either way the writer counts the line as dropped.
//! - A failure is warned about once (logs on stderr), then retried on every line until a write
//!   works again.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::fd::AsFd;

/// One output of event lines.
pub trait Output: Send {
    /// The output's name in `events_dropped` and the metrics (`stdout`, `file`).
    fn name(&self) -> &'static str;
    /// Writes `line` (newline included) whole, or nothing; false when it was not written.
    fn write_line(&mut self, line: &[u8]) -> bool;
    /// Closes and reopens the output (SIGHUP, for the events file).
    fn reopen(&mut self) {}
}

/// Something a line can be written to and, after a failure, cut back.
pub trait Target: Write {
    /// Where the next byte will go, when a failed line can be cut off again.
    fn mark(&mut self) -> Option<u64>;
    /// Cuts everything after `mark` off.
    fn rollback(&mut self, mark: u64) -> io::Result<()>;
}

impl Target for File {
    fn mark(&mut self) -> Option<u64> {
        let meta = self.metadata().ok()?;
        meta.is_file().then_some(meta.len())
    }

    fn rollback(&mut self, mark: u64) -> io::Result<()> {
        self.set_len(mark)?;
        // Without O_APPEND (a shell's `>`) the offset decides where the next line goes.
        self.seek(SeekFrom::Start(mark)).map(|_| ())
    }
}

/// Writes `line` whole or not at all. `torn` is set when a fragment could not be cut off
/// (the next line then starts on a fresh line) and cleared once that is done.
pub fn write_whole<T: Target>(t: &mut T, torn: &mut bool, line: &[u8]) -> io::Result<()> {
    let mark = t.mark();
    let was_torn = *torn;
    let result = if was_torn {
        t.write_all(b"\n").and_then(|()| t.write_all(line))
    } else {
        t.write_all(line)
    };
    let result = result.and_then(|()| t.flush());
    *torn = match (&result, mark) {
        (Ok(()), _) => false,
        // Cut back to where this try began: as it was before.
        (Err(_), Some(m)) if t.rollback(m).is_ok() => was_torn,
        (Err(_), _) => true,
    };
    result
}

/// The daemon's stdout (journald, a pipe, a file), through its own descriptor: no lock is
/// shared with anything else that prints.
pub struct Stdout {
    out: File,
    torn: bool,
    failing: bool,
}

impl Stdout {
    /// A duplicate of file descriptor 1; `None` when there is no stdout.
    pub fn open() -> Option<Stdout> {
        let fd = io::stdout().as_fd().try_clone_to_owned().ok()?;
        Some(Stdout {
            out: File::from(fd),
            torn: false,
            failing: false,
        })
    }
}

impl Output for Stdout {
    fn name(&self) -> &'static str {
        "stdout"
    }

    fn write_line(&mut self, line: &[u8]) -> bool {
        let res = write_whole(&mut self.out, &mut self.torn, line);
        warn_once(&mut self.failing, res, || "stdout".to_string())
    }
}

/// Logs the first failure of a streak and the recovery; true when `res` is a success.
pub fn warn_once(failing: &mut bool, res: io::Result<()>, what: impl Fn() -> String) -> bool {
    match res {
        Ok(()) => {
            if *failing {
                tracing::info!(output = %what(), "events are written again");
            }
            *failing = false;
            true
        }
        Err(e) => {
            if !*failing {
                tracing::warn!(
                    output = %what(),
                    error = %e,
                    "cannot write events; each line is counted as dropped until it works again"
                );
            }
            *failing = true;
            false
        }
    }
}
