//! The one error path of the CLI: a subcommand returns [`CliError`] (its exit code, what went
//! wrong with its causes, and maybe a hint); `main` prints it once and exits with its code.

use std::fmt;

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: a runtime error (I/O, a capture that could not be read to the end, ...).
pub const EXIT_RUNTIME: i32 = 1;
/// Exit code: bad usage or an invalid configuration.
pub const EXIT_USAGE: i32 = 2;

/// What a subcommand returns.
pub type CliResult = Result<(), CliError>;

/// Why a subcommand failed, and the exit code that says so.
#[derive(Debug)]
pub struct CliError {
    code: i32,
    error: anyhow::Error,
    hint: Option<String>,
}

impl CliError {
    /// Bad usage or an invalid configuration (exit 2).
    pub fn usage(error: impl Into<anyhow::Error>) -> CliError {
        CliError {
            code: EXIT_USAGE,
            error: error.into(),
            hint: None,
        }
    }

    /// Something went wrong while running (exit 1).
    pub fn runtime(error: impl Into<anyhow::Error>) -> CliError {
        CliError {
            code: EXIT_RUNTIME,
            error: error.into(),
            hint: None,
        }
    }

    /// Adds a line telling the operator what to try.
    pub fn hint(mut self, hint: impl Into<String>) -> CliError {
        self.hint = Some(hint.into());
        self
    }

    /// The process exit code.
    pub fn code(&self) -> i32 {
        self.code
    }
}

/// `error: message: cause: cause`, then the hint on its own line. A cause whose text the
/// message already quotes is not repeated.
impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut said = self.error.to_string();
        write!(f, "error: {said}")?;
        for cause in self.error.chain().skip(1) {
            let text = cause.to_string();
            if !said.contains(&text) {
                write!(f, ": {text}")?;
                said.push_str(&text);
            }
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n{hint}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn causes_follow_the_message_once() {
        let io = std::io::Error::other("disk on fire");
        let e: anyhow::Result<()> = Err(io).context("cannot write state");
        let e = CliError::runtime(e.unwrap_err()).hint("(try another disk)");
        assert_eq!(e.code(), EXIT_RUNTIME);
        assert_eq!(
            e.to_string(),
            "error: cannot write state: disk on fire\n(try another disk)"
        );
    }

    #[test]
    fn a_cause_the_message_already_quotes_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot bind /run/x.sock: {source}")]
        struct Bind {
            source: std::io::Error,
        }
        let e = Bind {
            source: std::io::Error::other("address in use"),
        };
        let e = CliError::usage(e);
        assert_eq!(e.code(), EXIT_USAGE);
        assert_eq!(
            e.to_string(),
            "error: cannot bind /run/x.sock: address in use"
        );
    }
}
