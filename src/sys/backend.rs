//! `backend = "auto"` made concrete on this host: the first of nftables, ipset, iptables that
//! fits the configuration (`config::auto_candidates`) and passes its probe
//! ([`Backend::probe`]: one harmless command that changes nothing). A fixed backend is taken
//! as configured, unprobed (opening the firewall reports its problems). The probe is an
//! argument, so the choice is unit-tested with a fake.

use crate::config::{BackendChoice, EnforceConfig, auto_candidates};
use crate::firewall::Backend;

/// The backend in use and, with `auto`, why the better ones were passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    /// The backend the firewall is opened with.
    pub backend: Backend,
    /// `nftables: <why>` for each backend `auto` tried before it (empty for a fixed backend).
    pub skipped: Vec<String>,
}

/// Picks the backend for `e` (probing with `probe` for `auto`); an error lists why each
/// candidate was passed over.
pub fn choose(
    e: &EnforceConfig,
    probe: &dyn Fn(Backend) -> Result<(), String>,
) -> Result<Chosen, String> {
    let BackendChoice::Fixed(backend) = e.backend else {
        let mut skipped = Vec::new();
        for (backend, unfit) in auto_candidates(&e.chain, &e.hooks, e.max_ban) {
            let why = match unfit {
                Some(why) => why,
                None => match probe(backend) {
                    Ok(()) => return Ok(Chosen { backend, skipped }),
                    Err(why) => why,
                },
            };
            skipped.push(format!("{backend}: {why}"));
        }
        return Err(format!(
            "backend = \"auto\": no firewall backend is usable here ({})",
            skipped.join("; ")
        ));
    };
    Ok(Chosen {
        backend,
        skipped: Vec::new(),
    })
}

/// The real probe, in the current network namespace.
pub fn probe(backend: Backend) -> Result<(), String> {
    backend.probe(None).map_err(|e| e.to_string())
}

/// True when this process may change the firewall (`CAP_NET_ADMIN` in its effective set,
/// from `/proc/self/status`): without it every probe fails, and says nothing of the host.
pub fn can_probe() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
            u64::from_str_radix(hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    fn enforce(toml: &str) -> EnforceConfig {
        parse_str(toml, std::path::Path::new("t.toml"))
            .unwrap()
            .enforce
    }

    #[test]
    fn auto_takes_the_first_usable_backend() {
        let e = enforce("[enforce]\nbackend = \"auto\"\n");
        let all = |_: Backend| Ok(());
        assert_eq!(choose(&e, &all).unwrap().backend, Backend::Nftables);
        let no_nft = |b: Backend| match b {
            Backend::Nftables => Err("`nft`: not found".to_string()),
            _ => Ok(()),
        };
        let chosen = choose(&e, &no_nft).unwrap();
        assert_eq!(chosen.backend, Backend::Ipset);
        assert_eq!(chosen.skipped, ["nftables: `nft`: not found"]);
        let only_iptables = |b: Backend| match b {
            Backend::Iptables => Ok(()),
            other => Err(format!("{other} broken")),
        };
        assert_eq!(
            choose(&e, &only_iptables).unwrap().skipped,
            ["nftables: nftables broken", "ipset: ipset broken"]
        );
        let none = |b: Backend| Err(format!("{b} broken"));
        let err = choose(&e, &none).unwrap_err();
        assert!(err.contains("no firewall backend is usable here (nftables: nftables broken; ipset: ipset broken; iptables: iptables broken)"), "{err}");
    }

    #[test]
    fn auto_passes_over_a_backend_the_config_does_not_fit_without_probing_it() {
        let e = enforce("[enforce]\nhooks = [\"INPUT\", \"filter:MY_INPUT\"]\n");
        assert_eq!(e.backend, BackendChoice::Auto, "auto is the default");
        let probed = std::cell::RefCell::new(Vec::new());
        let probe = |b: Backend| {
            probed.borrow_mut().push(b);
            Ok(())
        };
        let chosen = choose(&e, &probe).unwrap();
        assert_eq!(chosen.backend, Backend::Ipset);
        assert_eq!(
            chosen.skipped,
            ["nftables: hook `filter:MY_INPUT` is not an nftables hook"]
        );
        assert_eq!(*probed.borrow(), [Backend::Ipset]);
    }

    #[test]
    fn a_fixed_backend_is_not_probed() {
        let e = enforce("[enforce]\nbackend = \"iptables\"\n");
        let never = |_: Backend| -> Result<(), String> { panic!("probed") };
        assert_eq!(
            choose(&e, &never).unwrap(),
            Chosen {
                backend: Backend::Iptables,
                skipped: vec![]
            }
        );
    }
}
