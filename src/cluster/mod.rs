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
//! # Daemon wiring (not done here; what it needs)
//!
//! - Start: inside the tokio runtime, when `config.cluster.enabled()`:
//!   `node = resolve_node(&config.cluster)?`, then
//!   `start(&config.cluster, &node, config.enforce.max_ban).await?` (errors: exit 1). Keep the
//!   handle in the control handler's context (status) and give a clone to the engine thread.
//! - Publish: in the engine thread, where decisions are dispatched, for each decision made
//!   here (not one that came from the fleet) and not in dry run:
//!   `if let Some(n) = notice_for(&d, config.cluster.share) { handle.publish(n) }`.
//! - Apply: a task forwards the receiver into the engine's message channel; the engine applies
//!   each [`BanMessage`] through the same path as a manual ban, tagged with its origin and
//!   never forced: allowlist, protected peers and own addresses refuse it; `max_active_bans`
//!   and the new-ban rate limit hold (rate-limited ones wait and are retried until their end,
//!   they were already acknowledged); the end is `min(until, now + max_ban)`; a ban already
//!   active with the same or a later end is not applied again; a remote unblock lifts only a
//!   ban whose origin is that node; remote bans are never published again.
//! - Stop: after the engine has stopped, `handle.close(Duration::from_secs(2)).await`.
//! - `status` and metrics: [`ClusterHandle::status`] ([`ClusterStatus`]).

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
