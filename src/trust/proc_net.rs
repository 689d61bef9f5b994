//! Parsers of the kernel's and the resolver's text (pure): established TCP connections and
//! listening sockets from `/proc/net/tcp`, `tcp6`, `udp` and `udp6`, established TCP flows
//! from `/proc/net/nf_conntrack`, default gateways from `/proc/net/route` and `ipv6_route`, and
//! nameservers from `resolv.conf`.
//!
//! Lines that do not parse are skipped (counted by the callers that care), never a panic: the
//! text comes from files a test or another kernel version may shape differently. Addresses are
//! canonical (an IPv4 peer of a dual-stack socket, `::ffff:a.b.c.d`, is `a.b.c.d`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// `/proc/net/tcp` state code of an established connection (`TCP_ESTABLISHED`).
const ESTABLISHED: &str = "01";

/// One established TCP connection: our end and the peer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    /// Our end.
    pub local: SocketAddr,
    /// The peer's end.
    pub remote: SocketAddr,
}

/// The established connections in `/proc/net/tcp` or `/proc/net/tcp6` text (either family:
/// the address width tells). Header, listening and closing sockets are left out.
pub fn established(text: &str) -> impl Iterator<Item = Connection> + '_ {
    text.lines().filter_map(|line| {
        let mut fields = line.split_ascii_whitespace();
        let (_slot, local, remote, state) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        if state != ESTABLISHED {
            return None;
        }
        Some(Connection {
            local: socket_hex(local)?,
            remote: socket_hex(remote)?,
        })
    })
}

/// `/proc/net/tcp` state code of a listening socket (`TCP_LISTEN`).
const LISTEN: &str = "0A";
/// `/proc/net/udp` state code of a bound, unconnected socket (`TCP_CLOSE`): a UDP service.
const UDP_UNCONNECTED: &str = "07";

/// The ports the host serves, from `/proc/net/tcp[6]` text (`udp` false: sockets in LISTEN)
/// or `/proc/net/udp[6]` text (`udp` true: bound and unconnected), in file order, repeats
/// kept. Sockets bound to a loopback address are left out: nothing from outside reaches them.
pub fn listening(text: &str, udp: bool) -> impl Iterator<Item = u16> + '_ {
    let state = if udp { UDP_UNCONNECTED } else { LISTEN };
    text.lines().filter_map(move |line| {
        let mut fields = line.split_ascii_whitespace();
        let (_slot, local, _remote, st) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        let local = socket_hex(local).filter(|_| st == state)?;
        (!local.ip().is_loopback()).then_some(local.port())
    })
}

/// What the host's socket tables say about its ports: what it serves, and the remote ports
/// of its established TCP connections (the services it talks to, and its clients' ports).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPorts {
    /// TCP ports listened on (not on loopback only), sorted.
    pub tcp_listening: Vec<u16>,
    /// UDP ports bound and unconnected (not on loopback only), sorted.
    pub udp_listening: Vec<u16>,
    /// Remote ports of established TCP connections, sorted.
    pub tcp_remote: Vec<u16>,
}

/// `0100007F:0CEA` (IPv4) or 32 hex digits + `:PORT` (IPv6): the address as the kernel prints
/// it (each 32-bit word in host byte order), the port in plain hex.
fn socket_hex(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(addr)?.to_ne_bytes())),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(addr.get(i * 8..i * 8 + 8)?)?.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes)).to_canonical()
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Eight hex digits as the kernel's `%08X` of a 32-bit word.
fn word(hex: &str) -> Option<u32> {
    if hex.len() != 8 {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// The peers of established TCP flows in `/proc/net/nf_conntrack` text: the original source
/// and the reply source of each (both ends completed a handshake through this host).
pub fn conntrack_established(text: &str) -> impl Iterator<Item = IpAddr> + '_ {
    text.lines()
        .filter(|line| {
            let mut words = line.split_ascii_whitespace();
            words.nth(2) == Some("tcp") && words.nth(2) == Some("ESTABLISHED")
        })
        .flat_map(|line| {
            let mut sources = line
                .split_ascii_whitespace()
                .filter_map(|w| w.strip_prefix("src="))
                .filter_map(|a| a.parse::<IpAddr>().ok().map(|a| a.to_canonical()));
            [sources.next(), sources.next()].into_iter().flatten()
        })
}

/// A default gateway and the interface it is reached through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// The gateway's address.
    pub addr: IpAddr,
    /// The interface it is reached through.
    pub iface: String,
}

/// `RTF_UP | RTF_GATEWAY`.
const UP_GATEWAY: u32 = 0x1 | 0x2;

/// Default routes (destination and mask 0, up, via a gateway) in `/proc/net/route` text.
pub fn gateways_v4(text: &str) -> Vec<Gateway> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            let (iface, dest, gw, flags, mask) =
                (f.first()?, f.get(1)?, f.get(2)?, f.get(3)?, f.get(7)?);
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let default = word(dest)? == 0 && word(mask)? == 0;
            let gw = word(gw)?;
            (default && gw != 0 && flags & UP_GATEWAY == UP_GATEWAY).then(|| Gateway {
                addr: IpAddr::V4(Ipv4Addr::from(gw.to_ne_bytes())),
                iface: (*iface).to_string(),
            })
        })
        .collect()
}

/// Default routes (`::/0`, up, via a next hop) in `/proc/net/ipv6_route` text; its addresses
/// are 32 hex digits in network order.
pub fn gateways_v6(text: &str) -> Vec<Gateway> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            let (dest, plen, hop, flags, iface) =
                (f.first()?, f.get(1)?, f.get(4)?, f.get(8)?, f.get(9)?);
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let hop = u128::from_str_radix(hop, 16)
                .ok()
                .filter(|_| hop.len() == 32)?;
            let default = u128::from_str_radix(dest, 16).ok()? == 0 && *plen == "00";
            (default && hop != 0 && flags & UP_GATEWAY == UP_GATEWAY).then(|| Gateway {
                addr: IpAddr::V6(Ipv6Addr::from(hop)).to_canonical(),
                iface: (*iface).to_string(),
            })
        })
        .collect()
}

/// The `nameserver` addresses of `resolv.conf` text, in order (a zone such as `%eth0` is
/// dropped; comments and other options are skipped).
pub fn nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next()?;
            let mut words = line.split_ascii_whitespace();
            if words.next()? != "nameserver" {
                return None;
            }
            let addr = words.next()?;
            let addr = addr.split('%').next()?;
            addr.parse::<IpAddr>().ok().map(|a| a.to_canonical())
        })
        .collect()
}

/// systemd-resolved's stub listener: `resolv.conf` pointing there means the real upstreams
/// are in `/run/systemd/resolve/resolv.conf`.
pub const RESOLVED_STUB: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53));
