//! Fuzz target for the verified peers' readers of kernel text (`/proc/net/tcp`, `tcp6`,
//! `nf_conntrack`, `route`, `ipv6_route`) and `resolv.conf`, and the set built from them: no
//! input panics. Seeds: `fuzz/seeds/proc_net/`.

#![no_main]

use autoblock::trust::peers::{PeerKind, PeerSet};
use autoblock::trust::proc_net;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut b = PeerSet::builder(64);
    for c in proc_net::established(&text) {
        b.host(c.remote.ip(), PeerKind::Established);
    }
    for a in proc_net::conntrack_established(&text) {
        b.host(a, PeerKind::Established);
    }
    for g in proc_net::gateways_v4(&text)
        .into_iter()
        .chain(proc_net::gateways_v6(&text))
    {
        b.host(g.addr, PeerKind::Gateway);
    }
    for r in proc_net::nameservers(&text) {
        b.host(r, PeerKind::Resolver);
        b.net(r.into(), PeerKind::Allowlist);
    }
    let set = b.build();
    for p in set.iter() {
        assert!(set.protection(p.net.addr()).is_some());
        assert!(set.covered_by(p.net).is_some());
    }
});
