//! Decoding of the kernel's replies, on datagrams built here: records of both families, the
//! states kept for each `Want`, loopback listeners left out, dual-stack peers made canonical,
//! a dump over several datagrams, `NLMSG_ERROR` as the kernel's errno, and malformed input as
//! an error (never a panic); and the request's bytes.

use std::net::{IpAddr, SocketAddr};

use netlink_packet_core::{Emitable, NLMSG_NOOP};
use netlink_packet_sock_diag::inet::InetResponseHeader;

use super::*;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// One netlink message of type `kind` around `payload`, padded to 4 bytes.
fn message(kind: u16, payload: &[u8]) -> Vec<u8> {
    let len = 16 + payload.len();
    let mut bytes = vec![0; len.next_multiple_of(4)];
    let mut header = NetlinkBuffer::new(&mut bytes[..]);
    header.set_length(len as u32);
    header.set_message_type(kind);
    header.set_sequence_number(1);
    bytes[16..len].copy_from_slice(payload);
    bytes
}

/// A `SOCK_DIAG_BY_FAMILY` record (`inet_diag_msg`) and one attribute after it, as the kernel
/// sends even when no extension is asked for (`INET_DIAG_SHUTDOWN`, 5 bytes then padding).
fn record(state: u8, local: &str, remote: &str) -> Vec<u8> {
    let (local, remote) = (addr(local), addr(remote));
    let v6 = local.is_ipv6();
    let header = InetResponseHeader {
        family: if v6 { AF_INET6 } else { AF_INET },
        state,
        timer: None,
        socket_id: SocketId {
            source_port: local.port(),
            destination_port: remote.port(),
            source_address: local.ip(),
            destination_address: remote.ip(),
            interface_id: 0,
            cookie: [0; 8],
        },
        recv_queue: 0,
        send_queue: 0,
        uid: 0,
        inode: 7,
    };
    let mut payload = vec![0; header.buffer_len()];
    header.emit(&mut payload);
    payload.extend_from_slice(&[5, 0, 8, 0, 0, 0, 0, 0]);
    message(SOCK_DIAG_BY_FAMILY, &payload)
}

fn done() -> Vec<u8> {
    message(NLMSG_DONE, &0i32.to_ne_bytes())
}

fn error(code: i32) -> Vec<u8> {
    // The code, then the request's header (16 bytes).
    let mut payload = code.to_ne_bytes().to_vec();
    payload.extend_from_slice(&[0; 16]);
    message(NLMSG_ERROR, &payload)
}

fn decode_all(
    datagrams: &[Vec<u8>],
    table: SocketTable,
    want: Want,
) -> (io::Result<Step>, Sockets) {
    let mut out = Sockets::default();
    let mut step = Ok(Step::More);
    for d in datagrams {
        step = decode(d, table, want, &mut out);
        if !matches!(step, Ok(Step::More)) {
            break;
        }
    }
    (step, out)
}

const ESTABLISHED: u8 = TCP_ESTABLISHED;

#[test]
fn a_dump_over_several_datagrams_until_done() {
    let first = [
        record(ESTABLISHED, "10.0.0.2:22", "10.0.0.9:40000"),
        record(TCP_LISTEN, "0.0.0.0:8080", "0.0.0.0:0"),
        message(NLMSG_NOOP, &[]),
    ]
    .concat();
    let second = [
        record(TCP_LISTEN, "127.0.0.1:631", "0.0.0.0:0"),
        record(ESTABLISHED, "10.0.0.2:5000", "10.0.0.8:443"),
        done(),
        // Nothing after NLMSG_DONE is read.
        record(ESTABLISHED, "10.0.0.2:1", "10.0.0.7:1"),
    ]
    .concat();
    let (step, s) = decode_all(&[first, second], SocketTable::Tcp4, Want::Both);
    assert_eq!(step.unwrap(), Step::Done);
    assert_eq!(
        s.established,
        [
            Connection {
                local: addr("10.0.0.2:22"),
                remote: addr("10.0.0.9:40000")
            },
            Connection {
                local: addr("10.0.0.2:5000"),
                remote: addr("10.0.0.8:443")
            }
        ]
    );
    assert_eq!(s.listening, [8080], "loopback left out");
}

#[test]
fn without_done_the_dump_goes_on() {
    let d = record(ESTABLISHED, "10.0.0.2:22", "10.0.0.9:40000");
    let (step, s) = decode_all(&[d], SocketTable::Tcp4, Want::Established);
    assert_eq!(step.unwrap(), Step::More);
    assert_eq!(s.established.len(), 1);
}

#[test]
fn dual_stack_peers_are_canonical_and_v6_listeners_kept() {
    let d = [
        record(
            ESTABLISHED,
            "[::ffff:10.0.0.2]:22",
            "[::ffff:10.0.0.9]:40000",
        ),
        record(ESTABLISHED, "[fd00::2]:22", "[fd00::9]:40001"),
        record(TCP_LISTEN, "[::]:443", "[::]:0"),
        record(TCP_LISTEN, "[::1]:25", "[::]:0"),
        record(TCP_LISTEN, "[::ffff:127.0.0.1]:26", "[::]:0"),
        done(),
    ]
    .concat();
    let (step, s) = decode_all(&[d], SocketTable::Tcp6, Want::Both);
    assert_eq!(step.unwrap(), Step::Done);
    let remotes: Vec<IpAddr> = s.established.iter().map(|c| c.remote.ip()).collect();
    assert_eq!(
        remotes,
        [
            "10.0.0.9".parse::<IpAddr>().unwrap(),
            "fd00::9".parse().unwrap()
        ]
    );
    assert_eq!(s.established[0].local, addr("10.0.0.2:22"));
    assert_eq!(s.listening, [443]);
}

#[test]
fn udp_listening_is_bound_and_unconnected_and_each_want_keeps_its_part() {
    let d = [
        record(TCP_CLOSE, "0.0.0.0:53", "0.0.0.0:0"),
        record(ESTABLISHED, "10.0.0.2:5353", "10.0.0.1:53"),
        // State LISTEN means nothing for UDP.
        record(TCP_LISTEN, "0.0.0.0:54", "0.0.0.0:0"),
        done(),
    ]
    .concat();
    let (_, listening) = decode_all(std::slice::from_ref(&d), SocketTable::Udp4, Want::Listening);
    assert_eq!(listening.listening, [53]);
    assert!(listening.established.is_empty());
    let (_, connected) = decode_all(
        std::slice::from_ref(&d),
        SocketTable::Udp4,
        Want::Established,
    );
    assert_eq!(connected.established.len(), 1);
    assert!(connected.listening.is_empty());
    // For TCP, CLOSE is not listening.
    let (_, tcp) = decode_all(&[d], SocketTable::Tcp4, Want::Listening);
    assert_eq!(tcp.listening, [54]);
}

#[test]
fn an_error_message_is_the_kernels_errno_and_an_ack_is_skipped() {
    let d = [error(0), error(-libc::EPERM)].concat();
    let (step, _) = decode_all(&[d], SocketTable::Tcp4, Want::Both);
    assert_eq!(step.unwrap_err().raw_os_error(), Some(libc::EPERM));
    let (step, _) = decode_all(&[error(i32::MIN)], SocketTable::Tcp4, Want::Both);
    assert!(step.is_err(), "no overflow on the most negative code");
}

#[test]
fn malformed_replies_are_errors_never_panics() {
    let good = [
        record(ESTABLISHED, "[fd00::2]:22", "[fd00::9]:40001"),
        record(TCP_LISTEN, "0.0.0.0:8080", "0.0.0.0:0"),
        error(-libc::EPERM),
        done(),
    ]
    .concat();
    // Every truncation and every one-byte corruption: an answer or an error.
    for end in 0..good.len() {
        let _ = decode(
            &good[..end],
            SocketTable::Tcp6,
            Want::Both,
            &mut Sockets::default(),
        );
    }
    for at in 0..good.len() {
        for byte in [0x00, 0x01, 0x7f, 0xff] {
            let mut bad = good.clone();
            bad[at] = byte;
            let _ = decode(&bad, SocketTable::Tcp6, Want::Both, &mut Sockets::default());
        }
    }
    // A length past the datagram, a record too short for its header.
    let mut long = record(ESTABLISHED, "10.0.0.2:22", "10.0.0.9:40000");
    long[0] = 0xff;
    let short = message(SOCK_DIAG_BY_FAMILY, &[AF_INET, ESTABLISHED, 0, 0]);
    for bad in [long, short, vec![1, 2, 3]] {
        let (step, _) = decode_all(&[bad], SocketTable::Tcp4, Want::Both);
        assert_eq!(step.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}

#[test]
fn the_request_asks_for_one_family_protocol_and_the_states_wanted() {
    let r = request(SocketTable::Udp6, Want::Listening);
    let header = NetlinkBuffer::new_checked(&r[..]).unwrap();
    assert_eq!(header.message_type(), SOCK_DIAG_BY_FAMILY);
    assert_eq!(header.flags(), NLM_F_REQUEST | NLM_F_DUMP);
    assert_eq!(header.length() as usize, r.len());
    assert_eq!(&r[16..18], [AF_INET6, IPPROTO_UDP]);
    let states = |r: &[u8]| u32::from_ne_bytes([r[20], r[21], r[22], r[23]]);
    assert_eq!(states(&r), 1 << TCP_CLOSE);
    let r = request(SocketTable::Tcp4, Want::Both);
    assert_eq!(&r[16..18], [AF_INET, IPPROTO_TCP]);
    assert_eq!(states(&r), (1 << TCP_ESTABLISHED) | (1 << TCP_LISTEN));
    let r = request(SocketTable::Tcp6, Want::Established);
    assert_eq!(states(&r), 1 << TCP_ESTABLISHED);
}
