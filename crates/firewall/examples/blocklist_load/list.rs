//! Blocklist text -> nets, with every bad line reported by number. Pure.
//!
//! One address or CIDR per line; `#` starts a comment (whole line or after the entry); blank
//! lines are ignored; duplicates collapse. A prefix with host bits set (`10.1.2.3/8`) is a bad
//! line that names the network it lies in: the list says something other than what it means.
//! What the firewall refuses to block (`0.0.0.0/0`, loopback, ...) is its business: the commit
//! reports it.

use std::collections::BTreeSet;

use autoblock_firewall::IpNet;

/// What a blocklist holds.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The nets to block, without duplicates.
    pub nets: BTreeSet<IpNet>,
    /// Lines that are not entries: (1-based line number, what is wrong).
    pub bad: Vec<(usize, String)>,
}

/// Parses the whole list.
pub fn parse(text: &str) -> Parsed {
    let mut out = Parsed::default();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or_default().trim();
        if entry.is_empty() {
            continue;
        }
        match parse_entry(entry) {
            Ok(net) => {
                out.nets.insert(net);
            }
            Err(why) => out.bad.push((i + 1, why)),
        }
    }
    out
}

fn parse_entry(entry: &str) -> Result<IpNet, String> {
    let net = match entry.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => entry
            .parse::<std::net::IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("`{entry}` is not an IP address or CIDR"))?,
    };
    if net.trunc() != net {
        return Err(format!(
            "`{entry}` has host bits set (did you mean {}?)",
            net.trunc()
        ));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_comments_and_bad_lines() {
        let p = parse(
            "# feed v1\n\n203.0.113.7\n198.51.100.0/24  # a whole net\n10.1.2.3/8\n\
             2001:db8:bad::/48\n2001:db8::5\n203.0.113.7/32\nexample.com\n1.2.3.4/33\n0.0.0.0/0\n",
        );
        let nets: Vec<String> = p.nets.iter().map(ToString::to_string).collect();
        assert_eq!(
            nets,
            [
                "0.0.0.0/0",
                "198.51.100.0/24",
                "203.0.113.7/32",
                "2001:db8::5/128",
                "2001:db8:bad::/48"
            ]
        );
        let lines: Vec<usize> = p.bad.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [5, 9, 10]);
        assert!(
            p.bad[0].1.contains("did you mean 10.0.0.0/8"),
            "{:?}",
            p.bad
        );
        assert!(p.bad[1].1.contains("example.com"));
    }
}
