//! Why a configuration could not be loaded: the file could not be read (a runtime problem), or
//! it was read and is invalid (every problem, each with file, line, column and TOML key).

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Loading failed: the file could not be read, or it is invalid. See [`ConfigError::is_usage`]
/// for which is whose fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Missing, unreadable (permissions), a directory, ...
    // `error` is not a `source`: the message already says it, in plain words.
    #[error("cannot read {}: {}", path.display(), describe_io(error))]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// Read, but not a valid configuration. Never empty.
    #[error("{}", Problems(problems))]
    Invalid {
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// True for a file that was read and is wrong (as opposed to one that could not be read).
    pub fn is_invalid(&self) -> bool {
        matches!(self, ConfigError::Invalid { .. })
    }

    /// The operator named the wrong thing (an invalid file, no file, a directory): exit 2. A
    /// file that exists and cannot be read (permissions, I/O) is the environment's: exit 1.
    pub fn is_usage(&self) -> bool {
        match self {
            ConfigError::Invalid { .. } => true,
            ConfigError::Read { error, .. } => matches!(
                error.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::IsADirectory
            ),
        }
    }

    /// The problems of an invalid file; empty for a read error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems } => problems,
            ConfigError::Read { .. } => &[],
        }
    }
}

/// One thing wrong in the file, displayed as `rules.toml:12:13: rule[1].threshold: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line and column (in characters) of the offending text; `None` when the problem
    /// has no single place in the file.
    pub position: Option<(usize, usize)>,
    /// Dotted TOML key such as `rule[1].threshold` (rules are counted from 0, as in TOML arrays).
    pub key: String,
    /// What is wrong and, where it helps, what was expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file)?;
        if let Some((line, column)) = self.position {
            write!(f, "{line}:{column}:")?;
        }
        if !self.key.is_empty() {
            write!(f, " {}:", self.key)?;
        }
        write!(f, " {}", self.message)
    }
}

/// One problem per line.
struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Says what an operator should know, without Rust's debug wording.
fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".to_owned(),
        io::ErrorKind::PermissionDenied => {
            "permission denied (run as a user that may read it, or fix its mode)".to_owned()
        }
        io::ErrorKind::IsADirectory => "it is a directory, not a file".to_owned(),
        _ => e.to_string(),
    }
}

/// Line and column of the value of `key` in `[section]` of `text` (a scan of `key = value`
/// lines, for a problem found after validation, such as a filter libpcap refuses).
pub fn locate(text: &str, section: &str, key: &str) -> Option<(usize, usize)> {
    let mut current = String::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            current = name.trim_start_matches('[').trim().to_owned();
        } else if current == section
            && let Some((k, _)) = line.split_once('=')
            && k.trim() == key
        {
            let value =
                k.len() + 1 + (line[k.len() + 1..].len() - line[k.len() + 1..].trim_start().len());
            return Some(line_col(text, offset + value));
        }
        offset += line.len();
    }
    None
}

/// Maps a byte offset in `text` to a 1-based (line, column), the column counted in characters.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one_in_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 10), (2, 4));
        assert_eq!(line_col(text, 999), (3, 1));
    }

    #[test]
    fn locate_finds_a_key_in_its_section() {
        let text = "bpf_filter = 1\n[capture]\nsnaplen = 9\nbpf_filter =  \"x\"\n";
        assert_eq!(locate(text, "capture", "bpf_filter"), Some((4, 15)));
        assert_eq!(locate(text, "enforce", "bpf_filter"), None);
    }

    #[test]
    fn problem_display() {
        let p = Problem {
            file: "rules.toml".into(),
            position: Some((12, 13)),
            key: "rule[1].threshold".into(),
            message: "must be greater than 0".into(),
        };
        assert_eq!(
            p.to_string(),
            "rules.toml:12:13: rule[1].threshold: must be greater than 0"
        );
    }

    #[test]
    fn read_errors_say_why() {
        let e = ConfigError::Read {
            path: "/x/rules.toml".into(),
            error: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert!(!e.is_invalid());
        assert!(
            e.to_string()
                .starts_with("cannot read /x/rules.toml: permission denied")
        );
    }
}
