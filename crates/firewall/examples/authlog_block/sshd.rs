//! sshd log lines -> the address of a failed login, or `None`. Pure.
//!
//! Recognized (syslog, RFC 3339 or journal prefixes alike; the program is `sshd`, `sshd[PID]`
//! or `sshd-session[PID]`):
//! `Failed password for [invalid user ]USER from ADDR port N ssh2`,
//! `Failed publickey for USER from ADDR port N ssh2: KEY`, `Invalid user USER from ADDR port N`.
//! The address is taken from the *end* of the message (`from ADDR port N[ ssh2| [preauth]]`),
//! so a user name such as `x from 10.0.0.1 port 22` cannot point the ban at someone else.

use std::net::IpAddr;

/// The client address of a failed sshd login in `line`, if it is one.
pub fn failed_login(line: &str) -> Option<IpAddr> {
    let msg = sshd_message(line)?;
    if !(msg.starts_with("Failed ") || msg.starts_with("Invalid user ")) {
        return None;
    }
    // `... port N ssh2` or `... port N ssh2: KEYTYPE FINGERPRINT` (publickey).
    let msg = match msg.rfind(" ssh2") {
        Some(i) if msg[i + 5..].is_empty() || msg[i + 5..].starts_with(':') => &msg[..i],
        _ => msg,
    };
    let mut words = msg.split(' ').rev().peekable();
    if words.peek() == Some(&"[preauth]") {
        words.next();
    }
    let port = words.next()?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if words.next()? != "port" {
        return None;
    }
    let addr = words.next()?.parse().ok()?;
    (words.next()? == "from").then_some(addr)
}

/// The message after `sshd[PID]: ` (or `sshd: `, `sshd-session[PID]: `), trimmed.
fn sshd_message(line: &str) -> Option<&str> {
    let line = line.trim_end_matches(['\n', '\r']);
    for prog in [" sshd", " sshd-session"] {
        let mut from = 0;
        while let Some(i) = line[from..].find(prog) {
            let rest = &line[from + i + prog.len()..];
            if let Some(msg) = after_pid(rest) {
                return Some(msg.trim_end());
            }
            from += i + prog.len();
        }
    }
    None
}

/// `[123]: msg` or `: msg` -> `msg`.
fn after_pid(rest: &str) -> Option<&str> {
    if let Some(msg) = rest.strip_prefix(": ") {
        return Some(msg);
    }
    let inner = rest.strip_prefix('[')?;
    let end = inner.find("]: ")?;
    inner[..end]
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| &inner[end + 3..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn failures_are_recognized() {
        for (line, want) in [
            (
                "Nov 25 01:31:36 host sshd[1234]: Failed password for invalid user admin from 203.0.113.7 port 52311 ssh2",
                "203.0.113.7",
            ),
            (
                "Nov 25 01:31:37 host sshd[1234]: Failed password for root from 198.51.100.2 port 22 ssh2",
                "198.51.100.2",
            ),
            (
                "Nov 25 01:31:38 host sshd[77]: Invalid user x from 2001:db8::5 port 4242",
                "2001:db8::5",
            ),
            (
                "2024-11-25T01:31:36.123456+01:00 web1 sshd-session[9]: Failed publickey for git from 192.0.2.1 port 1 ssh2: ED25519 SHA256:abc",
                "192.0.2.1",
            ),
            (
                "2024-11-25T01:31:36+01:00 web1 sshd[9]: Invalid user oracle from 192.0.2.9 port 3 [preauth]",
                "192.0.2.9",
            ),
        ] {
            assert_eq!(failed_login(line), addr(want), "{line}");
        }
    }

    #[test]
    fn user_names_cannot_redirect_the_ban() {
        let line = "Nov 25 01:31:36 host sshd[1]: Failed password for invalid user x from 10.0.0.1 port 22 from 203.0.113.7 port 5555 ssh2";
        assert_eq!(failed_login(line), addr("203.0.113.7"));
        let line = "Nov 25 01:31:36 host sshd[1]: Invalid user a from 10.0.0.1 port 22";
        assert_eq!(failed_login(line), addr("10.0.0.1"));
    }

    #[test]
    fn other_lines_are_ignored() {
        for line in [
            "",
            "garbage",
            "Nov 25 01:31:36 host sshd[1234]: Accepted publickey for me from 203.0.113.7 port 1 ssh2",
            "Nov 25 01:31:36 host sshd[1234]: Connection closed by 203.0.113.7 port 1 [preauth]",
            "Nov 25 01:31:36 host sudo[1]: Failed password for root from 203.0.113.7 port 1 ssh2",
            "Nov 25 01:31:36 host sshd[12x]: Failed password for root from 203.0.113.7 port 1 ssh2",
            "Nov 25 01:31:36 host sshd[1]: Failed password for root from 999.1.1.1 port 1 ssh2",
            "Nov 25 01:31:36 host sshd[1]: Failed password for root from 203.0.113.7 port x ssh2",
            "Nov 25 01:31:36 host sshd[1]: Failed password for root 203.0.113.7 port 1 ssh2",
        ] {
            assert_eq!(failed_login(line), None, "{line}");
        }
    }
}
