//! `gather` against recorded facts: which sources are read, what each adds and why, priority
//! under the cap, and unreadable sources reported without losing the rest.

use std::net::IpAddr;

use super::*;

const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   1: 0100630A:1B58 0200630A:95CA 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0 20 0 0 10 -1
   2: 0100630A:0016 0300630A:D431 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 0 0 10 -1
   3: 0100630A:1B58 0900630A:95CB 03 00000000:00000000 00:00000000 00000000     0        0 0 1 0 20 0 0 10 -1
";
const ROUTE: &str =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
va\t00000000\t0100630A\t0003\t0\t0\t0\t00000000\t0\t0\t0
";
const CONNTRACK: &str = "ipv4     2 tcp      6 431999 ESTABLISHED src=10.98.0.5 dst=10.98.0.1 sport=1 dport=2 src=10.98.0.1 dst=10.98.0.5 sport=2 dport=1 [ASSURED] mark=0 zone=0 use=2\n";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn kinds(g: &Gathered, addr: &str) -> String {
    g.set
        .protection(ip(addr))
        .map(|p| p.kinds.to_string())
        .unwrap_or_default()
}

fn facts() -> RecordedFacts {
    RecordedFacts::default()
        .with(Source::Tcp4, TCP)
        .with(Source::Route4, ROUTE)
        .with(Source::ResolvConf, "nameserver 127.0.0.53\n")
        .with(Source::ResolvedUpstreams, "nameserver 10.255.255.53\n")
        .with(Source::Conntrack, CONNTRACK)
}

#[test]
#[cfg(target_endian = "little")]
fn every_kind_with_why() {
    let opts = GatherOptions {
        allow: vec!["192.0.2.0/24".parse().unwrap()],
        conntrack: true,
        ..GatherOptions::default()
    };
    let f = facts();
    let g = gather(&f, &opts);
    assert!(g.problems.is_empty(), "{:?}", g.problems);
    assert_eq!(kinds(&g, "10.99.0.1"), "gateway");
    assert_eq!(kinds(&g, "10.255.255.53"), "resolver");
    assert_eq!(kinds(&g, "10.99.0.3"), "ssh, established");
    assert_eq!(kinds(&g, "10.99.0.2"), "established");
    assert_eq!(kinds(&g, "10.98.0.5"), "established");
    assert_eq!(kinds(&g, "192.0.2.9"), "allowlist");
    assert_eq!(
        kinds(&g, "10.99.0.9"),
        "",
        "a half-open connection proves nothing"
    );
    // The stub is loopback: not held, its upstreams are.
    assert!(g.set.protection(ip("127.0.0.53")).is_none());
    assert_eq!(
        f.read_so_far(),
        [
            Source::Route4,
            Source::Route6,
            Source::ResolvConf,
            Source::ResolvedUpstreams,
            Source::Tcp4,
            Source::Tcp6,
            Source::Conntrack
        ]
    );
}

#[test]
#[cfg(target_endian = "little")]
fn without_conntrack_or_stub_those_are_not_read() {
    let f = facts().with(Source::ResolvConf, "nameserver 10.0.0.53\n");
    let opts = GatherOptions {
        conntrack: false,
        ..GatherOptions::default()
    };
    let g = gather(&f, &opts);
    let read = f.read_so_far();
    assert!(!read.contains(&Source::Conntrack) && !read.contains(&Source::ResolvedUpstreams));
    assert_eq!(kinds(&g, "10.0.0.53"), "resolver");
    assert_eq!(kinds(&g, "10.98.0.5"), "");
}

#[test]
#[cfg(target_endian = "little")]
fn under_the_cap_gateways_resolvers_and_ssh_come_first() {
    let opts = GatherOptions {
        cap: 3,
        conntrack: true,
        ..GatherOptions::default()
    };
    let g = gather(&facts(), &opts);
    assert_eq!(g.set.hosts(), 3);
    assert_eq!(kinds(&g, "10.99.0.1"), "gateway");
    assert_eq!(kinds(&g, "10.255.255.53"), "resolver");
    assert_eq!(kinds(&g, "10.99.0.3"), "ssh, established");
    // 10.99.0.2 (socket table), 10.98.0.5 and our own 10.98.0.1 (conntrack) left out.
    assert_eq!(g.set.dropped(), 3);
}

#[test]
#[cfg(target_endian = "little")]
fn an_unreadable_source_is_reported_and_the_rest_kept() {
    let f = facts().failing(Source::Tcp4, "permission denied");
    let g = gather(&f, &GatherOptions::default());
    assert_eq!(
        g.problems,
        [(Source::Tcp4, "permission denied".to_string())]
    );
    assert_eq!(kinds(&g, "10.99.0.1"), "gateway");
    assert_eq!(kinds(&g, "10.99.0.3"), "");
}

#[test]
fn another_process_is_read_through_its_proc_entries() {
    let p = ProcFiles::of_pid(42);
    assert_eq!(p.path(Source::Tcp6), "/proc/42/net/tcp6");
    assert_eq!(p.path(Source::ResolvConf), "/proc/42/root/etc/resolv.conf");
    assert_eq!(ProcFiles::own().path(Source::Route4), "/proc/net/route");
}

#[test]
fn host_ports_are_listening_sockets_and_remote_ports_of_established_connections() {
    let listen = "  sl  local_address rem_address   st\n 0: 00000000:1F90 00000000:0000 0A 0\n 1: 0100007F:0277 00000000:0000 0A 0\n";
    let facts = RecordedFacts::default()
        .with(Source::Tcp4, &format!("{TCP}{}", &listen[listen.find('\n').unwrap_or(0)..]))
        .with(
            Source::Udp6,
            "  sl  local_address rem_address st\n 0: 00000000000000000000000000000000:007B 00000000000000000000000000000000:0000 07 0\n",
        )
        .failing(Source::Udp4, "permission denied");
    let p = host_ports(&facts);
    assert_eq!(p.tcp_listening, [8080], "loopback left out");
    assert_eq!(p.udp_listening, [123]);
    assert_eq!(p.tcp_remote, [38346, 54321], "established only, sorted");
}

/// Hands out at most `per_read` bytes of `data` per read (as a `/proc` file stops at a line)
/// and counts the reads.
struct Trickle<'a> {
    data: &'a [u8],
    per_read: usize,
    reads: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        let n = buf.len().min(self.per_read).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn a_file_is_read_whole_in_a_buffer_sized_by_what_it_holds() {
    // A small file: one read and the one that finds the end, in FIRST_READ bytes (was a
    // zeroed 1 MiB buffer grown to 2 MiB by the last read).
    let small = b"nameserver 10.0.0.1\n".repeat(10);
    let mut file = Trickle {
        data: &small,
        per_read: usize::MAX,
        reads: 0,
    };
    let bytes = read_all(&mut file).unwrap();
    assert_eq!(bytes, small);
    assert_eq!(bytes.capacity(), FIRST_READ);
    assert_eq!(file.reads, 2);
    // A large one, whole reads: reads grow to READ_CHUNK and more, the buffer stays within
    // twice the file.
    let large: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut file = Trickle {
        data: &large,
        per_read: usize::MAX,
        reads: 0,
    };
    let bytes = read_all(&mut file).unwrap();
    assert_eq!(bytes, large);
    assert!(bytes.capacity() <= 2 * large.len(), "{}", bytes.capacity());
    assert!(file.reads <= 12, "{} reads", file.reads);
    // Short reads (a /proc file stops at a line): still all of it, the same bound.
    let mut file = Trickle {
        data: &large,
        per_read: 3000,
        reads: 0,
    };
    let bytes = read_all(&mut file).unwrap();
    assert_eq!(bytes, large);
    assert!(bytes.capacity() <= 2 * large.len() + FIRST_READ);
}
