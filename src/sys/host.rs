//! Facts about this host that the daemon needs at start: which interface to capture on when
//! the config names none (the default route's), and the host's own addresses, which are never
//! counted or banned. Read in the caller's network namespace; the parsers are pure and tested
//! on fixed text.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use ipnet::IpNet;

/// A host fact that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A file under `/proc` could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// No default route to take an interface from.
    #[error("no default route (neither in /proc/net/route nor in /proc/net/ipv6_route)")]
    NoDefaultRoute,
    /// libpcap could not list the interfaces.
    #[error("cannot list the interfaces' addresses: {0}")]
    Devices(String),
}

/// The interface of the IPv4 default route (the lowest metric wins), else of the IPv6 one.
pub fn default_route_interface() -> Result<String, HostError> {
    let v4 = read_optional(Path::new("/proc/net/route"))?;
    if let Some(iface) = v4.as_deref().and_then(default_route_v4) {
        return Ok(iface);
    }
    let v6 = read_optional(Path::new("/proc/net/ipv6_route"))?;
    v6.as_deref()
        .and_then(default_route_v6)
        .ok_or(HostError::NoDefaultRoute)
}

/// The host's own addresses as /32 and /128, sorted and without duplicates: of the interfaces
/// named in `only`, or of all when `None` (loopback and link-local included: a packet from any
/// of them is ours).
pub fn local_addresses(only: Option<&[String]>) -> Result<Vec<IpNet>, HostError> {
    let devices = pcap::Device::list().map_err(|e| HostError::Devices(e.to_string()))?;
    let pairs = devices
        .iter()
        .flat_map(|d| d.addresses.iter().map(move |a| (d.name.as_str(), a.addr)));
    Ok(host_nets(pairs, only))
}

/// Host networks of the addresses of the selected interfaces (pure part of
/// [`local_addresses`]).
pub fn host_nets<'a>(
    pairs: impl Iterator<Item = (&'a str, IpAddr)>,
    only: Option<&[String]>,
) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = pairs
        .filter(|(name, _)| only.is_none_or(|o| o.iter().any(|n| n == name)))
        .map(|(_, addr)| IpNet::from(addr))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `None` when the file does not exist (no IPv6, or not Linux).
fn read_optional(path: &Path) -> Result<Option<String>, HostError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(HostError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

const RTF_UP: u32 = 0x0001;
const RTF_REJECT: u32 = 0x0200;

/// `/proc/net/route`: `Iface Destination Gateway Flags RefCnt Use Metric Mask ...`, hex
/// fields; the default route has destination and mask 0 and is up.
pub fn default_route_v4(text: &str) -> Option<String> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, flags, metric, mask) =
                (f.first()?, f.get(1)?, f.get(3)?, f.get(6)?, f.get(7)?);
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let default = u32::from_str_radix(dest, 16).ok()? == 0
                && u32::from_str_radix(mask, 16).ok()? == 0
                && flags & RTF_UP != 0
                && flags & RTF_REJECT == 0;
            default.then_some((metric.parse::<u32>().ok()?, iface.to_string()))
        })
        .min()
        .map(|(_, iface)| iface)
}

/// `/proc/net/ipv6_route`: `dest plen src plen next_hop metric refcnt use flags iface`, hex
/// fields; the default route is ::/0, up, not a reject route (the kernel keeps an unreachable
/// ::/0 on `lo`).
pub fn default_route_v6(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dest, plen, metric, flags, iface) =
                (f.first()?, f.get(1)?, f.get(5)?, f.get(8)?, f.get(9)?);
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let default = u128::from_str_radix(dest, 16).ok()? == 0
                && u8::from_str_radix(plen, 16).ok()? == 0
                && flags & RTF_UP != 0
                && flags & RTF_REJECT == 0
                && *iface != "lo";
            default.then_some((u32::from_str_radix(metric, 16).ok()?, iface.to_string()))
        })
        .min()
        .map(|(_, iface)| iface)
}

/// Loopback addresses, always local even when no device lists them.
pub fn loopback() -> [IpNet; 2] {
    [
        IpNet::from(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpNet::from(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0000000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
down0\t00000000\t0100000A\t0002\t0\t0\t1\t00000000\t0\t0\t0
";

    const ROUTE6: &str = "\
fd000200000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     vs
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000200000000000000000000000001 00000400 00000001 00000000 00000003     vs
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";

    #[test]
    fn v4_default_lowest_metric_up() {
        assert_eq!(default_route_v4(ROUTE).as_deref(), Some("eth0"));
    }

    #[test]
    fn v4_none_without_default() {
        let only_subnet = ROUTE
            .lines()
            .filter(|l| !l.contains("\t00000000\t0"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(default_route_v4(&only_subnet), None);
        assert_eq!(default_route_v4(""), None);
        assert_eq!(default_route_v4("garbage\nx y z\n"), None);
    }

    #[test]
    fn v6_default_skips_lo_reject_route() {
        assert_eq!(default_route_v6(ROUTE6).as_deref(), Some("vs"));
        let no_default = ROUTE6
            .lines()
            .filter(|l| !l.contains(" 00000003 "))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(default_route_v6(&no_default), None);
    }

    #[test]
    fn host_nets_filters_sorts_dedups() {
        let a: IpAddr = "10.0.0.2".parse().expect("addr");
        let b: IpAddr = "fe80::1".parse().expect("addr");
        let c: IpAddr = "127.0.0.1".parse().expect("addr");
        let pairs = [("eth0", a), ("eth0", b), ("lo", c), ("eth1", a)];
        let all = host_nets(pairs.iter().copied(), None);
        let strs: Vec<String> = all.iter().map(|n| n.to_string()).collect();
        assert_eq!(strs, ["10.0.0.2/32", "127.0.0.1/32", "fe80::1/128"]);
        let only = ["eth0".to_string()];
        let eth0 = host_nets(pairs.iter().copied(), Some(&only));
        let strs: Vec<String> = eth0.iter().map(|n| n.to_string()).collect();
        assert_eq!(strs, ["10.0.0.2/32", "fe80::1/128"]);
    }
}
