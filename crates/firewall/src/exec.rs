//! The only place that starts processes: argument vectors (never a shell), restore text on
//! stdin, optional `ip netns exec NAME` prefix. Failures become [`FirewallError`]s that keep the
//! command line, exit status and stderr.

use std::io::Write;
use std::process::{Command, ExitStatus, Stdio};

use super::FirewallError;
use super::error::failed_input_line;

/// Seconds `iptables-restore -w` waits for the xtables lock before failing (the enforcer
/// keeps the change and retries): never an unbounded wait, so a stop stays prompt.
pub(crate) const XTABLES_WAIT: &str = "5";

/// Runs one firewall tool. A trait so the engine can be driven by a recording fake in tests.
pub(crate) trait Exec: Send + Sync {
    /// Runs `argv` with `stdin` fed to it; returns its stdout on success.
    fn run(&self, argv: &[&str], stdin: Option<&str>) -> Result<String, FirewallError>;
}

/// Runs commands on this host, or inside network namespace `netns` via `ip netns exec`.
pub(crate) struct System {
    pub(crate) netns: Option<String>,
}

impl Exec for System {
    fn run(&self, argv: &[&str], stdin: Option<&str>) -> Result<String, FirewallError> {
        let mut full: Vec<&str> = Vec::with_capacity(argv.len() + 4);
        if let Some(ns) = &self.netns {
            full.extend(["ip", "netns", "exec", ns.as_str()]);
        }
        full.extend_from_slice(argv);
        let command = display(&full);
        let (program, args) = match full.split_first() {
            Some(split) => split,
            None => return Err(FirewallError::InvalidOption("empty command".into())),
        };
        let mut child = Command::new(program)
            .args(args)
            .env("LC_ALL", "C")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    FirewallError::BinaryMissing {
                        binary: (*program).to_string(),
                        command: command.clone(),
                    }
                } else {
                    FirewallError::Io {
                        command: command.clone(),
                        source,
                    }
                }
            })?;
        // Feed stdin from a second thread so a large restore text cannot deadlock against a
        // child that fills its stdout/stderr pipes first.
        let pipe = child.stdin.take();
        let output = std::thread::scope(|scope| {
            let writer = scope.spawn(move || match (pipe, stdin) {
                (Some(mut pipe), Some(text)) => pipe.write_all(text.as_bytes()),
                _ => Ok(()),
            });
            let output = child.wait_with_output();
            let written = writer
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("stdin writer panicked")));
            (output, written)
        });
        let output = match output {
            (Ok(output), _) if !output.status.success() => output,
            (Ok(output), Ok(())) => output,
            (Ok(_), Err(source)) | (Err(source), _) => {
                return Err(FirewallError::Io { command, source });
            }
        };
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        if !output.status.success() {
            let input = stdin.and_then(|text| failed_input_line(&stderr, text));
            return Err(classify(argv, command, output.status, stderr, input));
        }
        String::from_utf8(output.stdout).map_err(|e| FirewallError::Io {
            command,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    }
}

/// Turns a failed command into the most specific error its stderr allows.
fn classify(
    argv: &[&str],
    command: String,
    status: ExitStatus,
    stderr: String,
    input: Option<(usize, String)>,
) -> FirewallError {
    let tool = argv.first().copied().unwrap_or_default();
    // `ip netns exec` reports a missing program this way (exit 255).
    if stderr.contains("exec of") && stderr.contains("No such file or directory") {
        return FirewallError::BinaryMissing {
            binary: tool.to_string(),
            command,
        };
    }
    if tool == "ipset"
        && (stderr.contains("Cannot open session to kernel")
            || stderr.contains("ipset protocol error")
            || stderr.contains("Kernel support protocol versions"))
    {
        return FirewallError::IpsetUnsupported {
            command,
            status,
            stderr,
        };
    }
    if stderr.contains("Permission denied")
        || stderr.contains("Operation not permitted")
        || stderr.contains("must be root")
    {
        return FirewallError::PermissionDenied {
            command,
            status,
            stderr,
        };
    }
    FirewallError::CommandFailed {
        command,
        status,
        stderr,
        input,
    }
}

/// The command line for messages: arguments joined by spaces, quoted when they need it.
pub(crate) fn display(argv: &[&str]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty()
                || a.chars()
                    .any(|c| c.is_whitespace() || c == '"' || c == '\'')
            {
                format!("{a:?}")
            } else {
                (*a).to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn display_quotes_only_what_needs_it() {
        assert_eq!(
            display(&[
                "ip",
                "netns",
                "exec",
                "ns 1",
                "iptables-save",
                "-t",
                "filter"
            ]),
            r#"ip netns exec "ns 1" iptables-save -t filter"#
        );
    }

    #[test]
    fn missing_binary_is_named() {
        let e = System { netns: None }
            .run(&["autoblock-no-such-binary", "-x"], None)
            .unwrap_err();
        assert!(
            matches!(e, FirewallError::BinaryMissing { ref binary, ref command }
                if binary == "autoblock-no-such-binary" && command == "autoblock-no-such-binary -x"),
            "{e}"
        );
    }

    #[test]
    fn large_stdin_does_not_deadlock_and_failures_keep_stderr() {
        let text = "-A X -s 10.0.0.1/32 -j DROP\n".repeat(50_000);
        let out = System { netns: None }.run(&["cat"], Some(&text)).unwrap();
        assert_eq!(out.len(), text.len());
        let e = System { netns: None }
            .run(&["ls", "/autoblock/no/such/path"], None)
            .unwrap_err();
        match e {
            FirewallError::CommandFailed {
                command,
                status,
                stderr,
                ..
            } => {
                assert_eq!(command, "ls /autoblock/no/such/path");
                assert!(!status.success());
                assert!(stderr.contains("No such file"), "{stderr}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn classify_picks_specific_errors() {
        let st = ExitStatus::from_raw(1 << 8);
        let e = classify(&["iptables-restore"], "x".into(), st, "iptables-restore v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)".into(), None);
        assert!(matches!(e, FirewallError::PermissionDenied { .. }), "{e}");
        let e = classify(
            &["ipset"],
            "x".into(),
            st,
            "ipset v7.17: Cannot open session to kernel.".into(),
            None,
        );
        assert!(matches!(e, FirewallError::IpsetUnsupported { .. }), "{e}");
        let e = classify(
            &["ipset"],
            "ip netns exec a ipset".into(),
            ExitStatus::from_raw(255 << 8),
            "exec of \"ipset\" failed: No such file or directory".into(),
            None,
        );
        assert!(
            matches!(e, FirewallError::BinaryMissing { ref binary, .. } if binary == "ipset"),
            "{e}"
        );
        let e = classify(
            &["iptables-restore"],
            "iptables-restore -w".into(),
            st,
            "line 2 failed".into(),
            None,
        );
        assert_eq!(
            e.to_string(),
            "`iptables-restore -w` failed (exit status: 1): line 2 failed"
        );
    }
}
