//! The kernel's socket tables as typed values (I/O edge): which table ([`SocketTable`]), what
//! to take from it ([`Want`]) and what it holds ([`Sockets`]), whether read over netlink
//! (`sock_diag`) or from `/proc/net` text ([`sockets_of_text`], through `trust::proc_net`).

use super::Source;
use crate::trust::proc_net::{self, Connection};

/// One of the kernel's socket tables (a family and a protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketTable {
    /// IPv4 TCP.
    Tcp4,
    /// IPv6 TCP (dual-stack sockets' IPv4 peers too, as `::ffff:a.b.c.d`).
    Tcp6,
    /// IPv4 UDP.
    Udp4,
    /// IPv6 UDP.
    Udp6,
}

impl SocketTable {
    /// The text it is also read from.
    pub fn source(self) -> Source {
        match self {
            SocketTable::Tcp4 => Source::Tcp4,
            SocketTable::Tcp6 => Source::Tcp6,
            SocketTable::Udp4 => Source::Udp4,
            SocketTable::Udp6 => Source::Udp6,
        }
    }

    /// A UDP table (listening: bound and unconnected; TCP: state LISTEN).
    pub fn is_udp(self) -> bool {
        matches!(self, SocketTable::Udp4 | SocketTable::Udp6)
    }
}

/// What to take from a socket table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Established connections only.
    Established,
    /// Listening ports only.
    Listening,
    /// Both.
    Both,
}

/// What a socket table holds (what [`Want`] asked for; the rest stays empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sockets {
    /// Established connections, in table order.
    pub established: Vec<Connection>,
    /// Listening ports not on loopback only, in table order, repeats kept
    /// (`proc_net::listening`).
    pub listening: Vec<u16>,
}

/// What `want` asks for in a socket table's `/proc/net` text.
pub fn sockets_of_text(text: &str, table: SocketTable, want: Want) -> Sockets {
    let mut sockets = Sockets::default();
    if want != Want::Listening {
        sockets.established = proc_net::established(text).collect();
    }
    if want != Want::Established {
        sockets.listening = proc_net::listening(text, table.is_udp()).collect();
    }
    sockets
}
