//! Reading a growing log file, like `tail -F`: complete lines only, and reopening from the start
//! when the file is truncated (shrinks) or replaced (rotation: another inode at the path).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A line longer than this (without newline) is dropped: no sshd line is that long.
const MAX_LINE: usize = 64 * 1024;

/// An open log file and how far it has been read.
pub struct Tail {
    path: PathBuf,
    reader: BufReader<File>,
    /// (device, inode) of the open file, to notice rotation.
    id: (u64, u64),
    /// Bytes consumed so far (complete lines plus `partial`).
    pos: u64,
    /// The start of a line whose newline has not been written yet.
    partial: Vec<u8>,
}

impl Tail {
    /// Opens `path`, at its start or (`at_end`) at its current end.
    pub fn open(path: &Path, at_end: bool) -> io::Result<Tail> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let mut reader = BufReader::new(file);
        let pos = if at_end {
            reader.seek(SeekFrom::End(0))?
        } else {
            0
        };
        Ok(Tail {
            path: path.to_path_buf(),
            reader,
            id: (meta.dev(), meta.ino()),
            pos,
            partial: Vec::new(),
        })
    }

    /// Lines appended since the last call. Lines still in a replaced file are read before
    /// switching to the new one; a missing path (mid-rotation) keeps the old file until the
    /// new one appears.
    pub fn read_new(&mut self) -> io::Result<Vec<String>> {
        let mut lines = Vec::new();
        match std::fs::metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) != self.id => {
                self.read_lines(&mut lines)?;
                *self = Tail::open(&self.path, false)?;
            }
            Ok(meta) if meta.len() < self.pos => {
                self.reader.seek(SeekFrom::Start(0))?;
                self.pos = 0;
                self.partial.clear();
            }
            _ => {}
        }
        self.read_lines(&mut lines)?;
        Ok(lines)
    }

    /// The last line if the file does not end with a newline (for a one-shot read).
    pub fn take_partial(&mut self) -> Option<String> {
        (!self.partial.is_empty())
            .then(|| String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned())
    }

    fn read_lines(&mut self, out: &mut Vec<String>) -> io::Result<()> {
        loop {
            let n = self.reader.read_until(b'\n', &mut self.partial)?;
            if n == 0 {
                return Ok(());
            }
            self.pos += n as u64;
            if self.partial.ends_with(b"\n") {
                out.push(String::from_utf8_lossy(&self.partial).into_owned());
                self.partial.clear();
            } else if self.partial.len() > MAX_LINE {
                self.partial.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn follows_appends_truncation_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("auth.log");
        append(&log, "old\n");
        let mut t = Tail::open(&log, true).unwrap();
        assert!(t.read_new().unwrap().is_empty());
        append(&log, "a\nb");
        assert_eq!(t.read_new().unwrap(), ["a\n"]);
        append(&log, "c\n");
        assert_eq!(t.read_new().unwrap(), ["bc\n"]);
        // Truncated in place (copytruncate): start over.
        std::fs::write(&log, "d\n").unwrap();
        assert_eq!(t.read_new().unwrap(), ["d\n"]);
        // Rotated: the old file's last lines, then the new file from its start.
        append(&log, "e\n");
        std::fs::rename(&log, dir.path().join("auth.log.1")).unwrap();
        assert!(t.read_new().unwrap() == ["e\n"]);
        std::fs::write(&log, "f\n").unwrap();
        assert_eq!(t.read_new().unwrap(), ["f\n"]);
        append(&log, "g");
        assert!(t.read_new().unwrap().is_empty());
        assert_eq!(t.take_partial().as_deref(), Some("g"));
    }
}
