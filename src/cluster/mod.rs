//! Fleet sharing (issue 16): the bans of one node reach every other node of its fleet through
//! NATS JetStream, and the bans of the others come back here to be applied.
//!
//! Pure parts: [`message`] (the versioned wire format and its only decoder), `share` (which
//! of our decisions are published), [`inbox`] (what to do with a payload from the fleet),
//! [`outbox`] (our publications waiting for the broker), and the names below.
//!
//! The edge: [`start`] returns a [`ClusterHandle`] (`publish` never blocks; `status`; `close`)
//! and a channel of [`BanMessage`]s from other nodes; `link.rs` owns the connection,
//! `publisher.rs` and `consumer.rs` are its two tasks, `status.rs` their counters.
//!
//! Layout in the broker, for fleet `F` and node `N`: one stream `AUTOBLOCK_F` on subjects
//! `autoblock.F.bans.>` (file storage, max age = `[enforce] max_ban`, so it holds exactly what
//! can still be active); node `N` publishes to `autoblock.F.bans.N` and reads the whole fleet
//! through its durable consumer `N` (its own messages are skipped by origin).
//!
//! # In the daemon
//!
//! `daemon/fleet.rs` starts the link in the runtime when `config.cluster.enabled()` (an error is
//! exit 1), forwards the receiver to the engine thread (`Engine::apply_remote`, in
//! `engine/remote.rs`: the same checks as a manual ban, never forced, origin kept), publishes
//! each decision made here (`share::notice_for`, never one from the fleet, never in dry run)
//! from the engine thread's dispatch, and closes the link after the engine has stopped;
//! `status` and the metrics read [`ClusterHandle::status`] ([`ClusterStatus`]).

mod consumer;
pub mod inbox;
mod link;
pub mod message;
pub mod outbox;
mod publisher;
pub(crate) mod share;
mod status;

pub use link::{ClusterError, ClusterHandle, resolve_node, start};
pub use message::{BanKind, BanMessage, BanNotice};
pub use status::ClusterStatus;

#[cfg(test)]
mod message_tests;

use crate::config::{NODE_NAME_MAX, is_cluster_name};

/// The broker-side names of one node in one fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetNames {
    /// The fleet's stream.
    pub stream: String,
    /// Every node's subject (the stream's subjects, the consumer's filter).
    pub all_subjects: String,
    /// Where this node publishes.
    pub own_subject: String,
    /// This node's durable consumer.
    pub consumer: String,
}

impl FleetNames {
    /// For a validated fleet name and node name (`config::is_cluster_name`).
    pub fn new(fleet: &str, node: &str) -> FleetNames {
        FleetNames {
            stream: format!("AUTOBLOCK_{fleet}"),
            all_subjects: format!("autoblock.{fleet}.bans.>"),
            own_subject: format!("autoblock.{fleet}.bans.{node}"),
            consumer: node.to_owned(),
        }
    }
}

/// A node name made from a host name: characters other than A-Z a-z 0-9 _ - become `_`, cut
/// to 64. `None` for an empty host name.
pub fn node_from_hostname(host: &str) -> Option<String> {
    let name: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(NODE_NAME_MAX)
        .collect();
    is_cluster_name(&name, NODE_NAME_MAX).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_the_broker() {
        let n = FleetNames::new("web", "web-1");
        assert_eq!(n.stream, "AUTOBLOCK_web");
        assert_eq!(n.all_subjects, "autoblock.web.bans.>");
        assert_eq!(n.own_subject, "autoblock.web.bans.web-1");
        assert_eq!(n.consumer, "web-1");
    }

    #[test]
    fn host_names_become_node_names() {
        assert_eq!(node_from_hostname("web1\n").as_deref(), Some("web1"));
        assert_eq!(
            node_from_hostname("web1.example.net").as_deref(),
            Some("web1_example_net")
        );
        assert_eq!(
            node_from_hostname(&"h".repeat(80)).map(|n| n.len()),
            Some(64)
        );
        assert_eq!(node_from_hostname(" \n"), None);
    }
}
