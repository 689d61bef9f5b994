//! The consumer task: the fleet's stream -> current bans of other nodes, through this node's
//! durable pull consumer (created with "deliver all" the first time, so a new node starts with
//! every ban the stream still holds; afterwards the broker remembers what we acknowledged, so a
//! restart or an outage resumes where we stopped).
//!
//! Each delivery is judged by the [`Inbox`]: applied ones are handed to the engine's channel
//! (waiting there when the engine is busy: backpressure, not loss) and acknowledged after the
//! hand-off; our own, ended, repeated and malformed ones are counted and acknowledged (a
//! malformed one is terminated, so the broker never redelivers it). Any error of the message
//! stream rebuilds it once connected again.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::inbox::{Inbox, Incoming};
use super::link::{LinkCtx, now};
use super::message::BanMessage;
use super::status::Stats;

/// Messages asked for per pull request (a catch-up of 10,000 bans takes ten).
const BATCH: usize = 1000;
/// Deliveries not yet acknowledged, at most (broker side).
const MAX_ACK_PENDING: i64 = 20_000;
/// Applied events remembered against redeliveries.
const REMEMBERED: usize = 65_536;
/// Pause before setting the stream up again after an error.
const RETRY: Duration = Duration::from_millis(200);

pub(super) async fn run(
    ctx: Arc<LinkCtx>,
    out: mpsc::Sender<BanMessage>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut inbox = Inbox::new(&ctx.node, &ctx.own_ids, ctx.started, REMEMBERED);
    while !*shutdown.borrow() {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = out.closed() => return,
            more = consume(&ctx, &mut inbox, &out) => {
                if !more {
                    return;
                }
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Sets up the consumer and reads until an error (true: set up again) or until the engine's
/// channel is closed (false).
async fn consume(ctx: &LinkCtx, inbox: &mut Inbox, out: &mpsc::Sender<BanMessage>) -> bool {
    while !ctx.connected() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let consumer = match ensure_consumer(ctx).await {
        Ok(c) => c,
        Err(e) => {
            ctx.stats.error(now(), e);
            return true;
        }
    };
    let stream = consumer
        .stream()
        .max_messages_per_batch(BATCH)
        .expires(Duration::from_secs(10))
        .heartbeat(Duration::from_secs(2))
        .messages()
        .await;
    let mut messages = match stream {
        Ok(m) => m,
        Err(e) => {
            ctx.stats
                .error(now(), format!("consumer {}: {e}", ctx.names.consumer));
            return true;
        }
    };
    while let Some(next) = messages.next().await {
        let msg = match next {
            Ok(msg) => msg,
            Err(e) => {
                ctx.stats
                    .error(now(), format!("consumer {}: {e}", ctx.names.consumer));
                return true;
            }
        };
        if !deliver(ctx, inbox, out, &msg).await {
            return false;
        }
    }
    true
}

/// Judges and acknowledges one delivery; false when the engine's channel is closed.
async fn deliver(
    ctx: &LinkCtx,
    inbox: &mut Inbox,
    out: &mpsc::Sender<BanMessage>,
    msg: &async_nats::jetstream::Message,
) -> bool {
    let stats = &ctx.stats;
    let seq = match msg.info() {
        Ok(info) => {
            stats.pending.store(info.pending, Relaxed);
            info.stream_sequence
        }
        Err(_) => 0,
    };
    let at = now();
    let ack = match inbox.judge(&msg.subject, &msg.payload, at) {
        Incoming::Apply(m) => {
            let delay = at.since(m.at).as_micros();
            stats
                .last_delay_us
                .store(delay.try_into().unwrap_or(u64::MAX), Relaxed);
            if out.send(m).await.is_err() {
                return false;
            }
            Stats::add(&stats.received, 1);
            AckKind::Ack
        }
        Incoming::Own => counted(&stats.own),
        Incoming::NameClash => {
            let why = format!(
                "another process publishes as node `{}`: node names must be unique in the fleet ([cluster] node)",
                ctx.node
            );
            stats.error(at, why);
            counted(&stats.name_clashes)
        }
        Incoming::Expired => counted(&stats.expired),
        Incoming::Repeat => counted(&stats.repeats),
        Incoming::Malformed(e) => {
            Stats::add(&stats.malformed, 1);
            stats.error(
                at,
                format!("malformed message #{seq} on {}: {e}", msg.subject),
            );
            AckKind::Term
        }
    };
    if let Err(e) = msg.ack_with(ack).await {
        // Not fatal: the broker redelivers it, and the inbox knows it as a repeat.
        stats.error(now(), format!("ack #{seq}: {e}"));
    }
    true
}

fn counted(counter: &std::sync::atomic::AtomicU64) -> AckKind {
    Stats::add(counter, 1);
    AckKind::Ack
}

async fn ensure_consumer(ctx: &LinkCtx) -> Result<PullConsumer, String> {
    let stream = ctx.ensure_stream().await?;
    let config = pull::Config {
        durable_name: Some(ctx.names.consumer.clone()),
        description: Some(format!("autoblock node {}", ctx.node)),
        filter_subject: ctx.names.all_subjects.clone(),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        max_ack_pending: MAX_ACK_PENDING,
        ..Default::default()
    };
    stream
        .get_or_create_consumer(&ctx.names.consumer, config)
        .await
        .map_err(|e| format!("consumer {}: {e}", ctx.names.consumer))
}
