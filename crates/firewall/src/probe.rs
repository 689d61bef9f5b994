//! [`Backend::probe`]: can this backend work here? One harmless command per backend, so a
//! program can pick the best usable one (nftables, else ipset, else iptables) before opening.

use super::exec::{Exec, System};
use super::{Backend, FirewallError};

/// A throwaway table with everything the nftables backend uses (timeout set with comments, a
/// masked lookup, a base chain, counters), checked by the kernel and never committed (`-c`).
const NFT_PROBE: &str = "add table inet autoblock_probe\n\
add set inet autoblock_probe s { type ipv4_addr; flags timeout; }\n\
add chain inet autoblock_probe c { type filter hook input priority -10; policy accept; }\n\
add rule inet autoblock_probe c ip saddr & 255.255.255.0 @s counter drop\n\
add element inet autoblock_probe s { 192.0.2.0 timeout 1s comment \"probe\" }\n";

impl Backend {
    /// Checks that this backend is usable in the current network namespace (or `netns`)
    /// without changing anything: for [`Backend::Nftables`], `nft -c -f -` of a table like
    /// ours (the binary exists, we may talk to nf_tables, and the kernel accepts timeout sets,
    /// comments, masked lookups and a base chain; nothing is committed); for
    /// [`Backend::Ipset`], `ipset list -n`; for [`Backend::Iptables`], `iptables-save -t
    /// filter`. The error says what failed, with the command and its stderr.
    ///
    /// ```no_run
    /// use autoblock_firewall::Backend;
    /// let usable = [Backend::Nftables, Backend::Ipset, Backend::Iptables]
    ///     .into_iter()
    ///     .find(|b| b.probe(None).is_ok());
    /// println!("using {usable:?}");
    /// ```
    pub fn probe(self, netns: Option<&str>) -> Result<(), FirewallError> {
        let exec = System {
            netns: netns.map(str::to_string),
        };
        probe_with(self, &exec)
    }
}

pub(crate) fn probe_with(backend: Backend, exec: &dyn Exec) -> Result<(), FirewallError> {
    match backend {
        Backend::Nftables => exec.run(&["nft", "-c", "-f", "-"], Some(NFT_PROBE)),
        Backend::Ipset => exec.run(&["ipset", "list", "-n"], None),
        Backend::Iptables => exec.run(&["iptables-save", "-t", "filter"], None),
    }
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_support::{Fake, Shared};
    use std::sync::Arc;

    #[test]
    fn each_backend_runs_one_harmless_command() {
        let fake = Arc::new(Fake::default());
        let exec = Shared(fake.clone());
        for b in [Backend::Nftables, Backend::Ipset, Backend::Iptables] {
            probe_with(b, &exec).unwrap();
        }
        let calls = fake.take();
        let cmds: Vec<&str> = calls.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(
            cmds,
            ["nft -c -f -", "ipset list -n", "iptables-save -t filter"]
        );
        assert!(
            calls[0]
                .1
                .as_deref()
                .is_some_and(|s| s.contains("flags timeout"))
        );
    }
}
