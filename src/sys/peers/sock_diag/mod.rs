//! The socket tables over netlink (I/O edge): one `NETLINK_SOCK_DIAG` dump per family and
//! protocol, filtered by state in the kernel, decoded into the values the `/proc/net` parsers
//! give (`trust::proc_net`): established connections and listening ports.
//!
//! Why: each read of `/proc/net/tcp` walks the kernel's whole connection hash (~5 ms here even
//! with no socket at all), while a dump asking only for ESTABLISHED (or only LISTEN) skips what
//! it was not asked for and sends 72-byte binary records instead of 150-byte text lines
//! (BENCHMARKS.md, "Over netlink"). The dump asks our own network namespace, so reading another
//! process's (`ProcFiles::of_pid`) stays on `/proc`.
//!
//! Semantics are those of the text parsers: TCP "listening" is state LISTEN, UDP "listening" is
//! a bound, unconnected socket (state CLOSE in the UDP table); sockets bound to loopback are
//! left out of the listening ports; addresses are canonical (`::ffff:a.b.c.d` is `a.b.c.d`).
//! The kernel's reply is decoded with `netlink-packet-core` (framing, `NLMSG_ERROR`) and
//! `netlink-packet-sock-diag` (the record header only: the attributes are not asked for and
//! not parsed); nothing in it can make this panic: a malformed reply is an `InvalidData` error.

use std::io;
use std::net::SocketAddr;

use netlink_packet_core::{
    ErrorBuffer, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NetlinkBuffer, NetlinkHeader,
    NetlinkMessage, Parseable,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{
    AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, SOCK_DIAG_BY_FAMILY, TCP_CLOSE, TCP_ESTABLISHED,
    TCP_LISTEN,
};
use netlink_packet_sock_diag::inet::{
    ExtensionFlags, InetRequest, InetResponseHeader, SocketId, StateFlags,
};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket, SocketAddr as KernelAddr};

use super::{SocketTable, Sockets, Want};
use crate::trust::proc_net::Connection;

/// Bytes per `recv`. The kernel fills one datagram of at most 32 KiB per dump step
/// (`netlink_recvmsg` caps its allocation there), so a datagram never exceeds this; one that
/// would is reported, not cut.
const RECV_BYTES: usize = 64 * 1024;

/// The sockets of `table` in the states `want` asks for, read from this process's network
/// namespace in one dump.
pub fn dump(table: SocketTable, want: Want) -> io::Result<Sockets> {
    let socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.connect(&KernelAddr::new(0, 0))?;
    socket.send(&request(table, want), 0)?;
    let mut sockets = Sockets::default();
    let mut datagram = Vec::with_capacity(RECV_BYTES);
    loop {
        datagram.clear();
        // With MSG_TRUNC the kernel says the datagram's whole length, whatever was copied.
        let n = socket.recv(&mut datagram, libc::MSG_TRUNC)?;
        if n > datagram.len() {
            return Err(invalid(format!(
                "sock_diag: a {n}-byte datagram, over {} bytes",
                datagram.len()
            )));
        }
        if n == 0 {
            return Err(invalid(
                "sock_diag: the dump ended without NLMSG_DONE".into(),
            ));
        }
        if decode(&datagram, table, want, &mut sockets)? == Step::Done {
            return Ok(sockets);
        }
    }
}

/// The dump request: `SOCK_DIAG_BY_FAMILY` for the table's family and protocol, the states
/// wanted, no extensions.
fn request(table: SocketTable, want: Want) -> Vec<u8> {
    let (family, protocol) = family_protocol(table);
    let listening = if table.is_udp() {
        StateFlags::CLOSE
    } else {
        StateFlags::LISTEN
    };
    let states = match want {
        Want::Established => StateFlags::ESTABLISHED,
        Want::Listening => listening,
        Want::Both => StateFlags::ESTABLISHED | listening,
    };
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = 1;
    let mut message = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol,
            extensions: ExtensionFlags::empty(),
            states,
            socket_id: if family == AF_INET {
                SocketId::new_v4()
            } else {
                SocketId::new_v6()
            },
        })
        .into(),
    );
    message.finalize();
    let mut bytes = vec![0; message.buffer_len()];
    message.serialize(&mut bytes);
    bytes
}

fn family_protocol(table: SocketTable) -> (u8, u8) {
    match table {
        SocketTable::Tcp4 => (AF_INET, IPPROTO_TCP),
        SocketTable::Tcp6 => (AF_INET6, IPPROTO_TCP),
        SocketTable::Udp4 => (AF_INET, IPPROTO_UDP),
        SocketTable::Udp6 => (AF_INET6, IPPROTO_UDP),
    }
}

/// Whether the dump goes on after a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    More,
    Done,
}

/// Adds the records of one datagram (several netlink messages) to `out`; `Step::Done` at
/// `NLMSG_DONE`, an error for `NLMSG_ERROR` with a code (the kernel's errno) or a malformed
/// message. Messages of other types (`NLMSG_NOOP`, an ACK) are skipped.
fn decode(datagram: &[u8], table: SocketTable, want: Want, out: &mut Sockets) -> io::Result<Step> {
    let mut rest = datagram;
    while !rest.is_empty() {
        let message = NetlinkBuffer::new_checked(rest).map_err(|e| invalid(e.to_string()))?;
        let payload = message.payload();
        match message.message_type() {
            NLMSG_DONE => return Ok(Step::Done),
            NLMSG_ERROR => {
                let error =
                    ErrorBuffer::new_checked(payload).map_err(|e| invalid(e.to_string()))?;
                if let Some(code) = error.code() {
                    return Err(io::Error::from_raw_os_error(code.get().saturating_neg()));
                }
            }
            SOCK_DIAG_BY_FAMILY => {
                let record =
                    InetResponseHeader::parse(payload).map_err(|e| invalid(e.to_string()))?;
                add(&record, table, want, out);
            }
            _ => {}
        }
        // Messages are 4-byte aligned; the length was checked against the datagram.
        let step = (message.length() as usize).next_multiple_of(4);
        rest = rest.get(step..).unwrap_or_default();
    }
    Ok(Step::More)
}

/// One socket into the connections or the ports, as the text parsers would have it.
fn add(record: &InetResponseHeader, table: SocketTable, want: Want, out: &mut Sockets) {
    let id = &record.socket_id;
    let local = SocketAddr::new(id.source_address.to_canonical(), id.source_port);
    let listening_state = if table.is_udp() {
        TCP_CLOSE
    } else {
        TCP_LISTEN
    };
    if record.state == TCP_ESTABLISHED && want != Want::Listening {
        out.established.push(Connection {
            local,
            remote: SocketAddr::new(id.destination_address.to_canonical(), id.destination_port),
        });
    } else if record.state == listening_state
        && want != Want::Established
        && !local.ip().is_loopback()
    {
        out.listening.push(local.port());
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests;
