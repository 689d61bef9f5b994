//! The publisher task: our messages -> the fleet's stream, in order, each confirmed by the
//! broker (JetStream PubAck). Up to [`WINDOW`] are in flight at once. While disconnected,
//! messages wait in the [`Outbox`]; on a failure or a disconnect every unconfirmed message goes
//! back to its front and is sent again, in order (the broker drops the copies it already has:
//! each carries its id as `Nats-Msg-Id`).

use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};

use super::link::{LinkCtx, now};
use super::message::BanMessage;
use super::outbox::Outbox;
use super::status::Stats;

/// Publications in flight (sent, PubAck not yet received).
const WINDOW: usize = 1024;
/// Publications waiting for the broker; beyond, new ones are dropped (and counted).
const OUTBOX: usize = 100_000;
/// Pause after a failure before sending again.
const RETRY: Duration = Duration::from_millis(200);
/// Checks the connection this often even without an event.
const TICK: Duration = Duration::from_millis(250);
/// After a stop (or when every handle is gone), how long queued messages may still wait for
/// the broker (`ClusterHandle::close` may end it sooner).
const STOP_GRACE: Duration = Duration::from_secs(5);

type AckFuture = Pin<Box<dyn Future<Output = Result<PublishAck, PublishError>> + Send>>;

struct Publisher {
    ctx: Arc<LinkCtx>,
    outbox: Outbox,
    in_flight: VecDeque<(BanMessage, AckFuture)>,
    stream_ready: bool,
    retry_at: Option<Instant>,
}

pub(super) async fn run(
    ctx: Arc<LinkCtx>,
    mut rx: mpsc::Receiver<BanMessage>,
    mut state: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut p = Publisher {
        ctx,
        outbox: Outbox::new(OUTBOX),
        in_flight: VecDeque::new(),
        stream_ready: false,
        retry_at: None,
    };
    let mut open = true;
    let mut stopping = *shutdown.borrow();
    let mut give_up: Option<Instant> = None;
    loop {
        p.send_what_we_can().await;
        let queued = p.outbox.len() + p.in_flight.len() + rx.len();
        p.ctx.stats.queued.store(queued as u64, Relaxed);
        if stopping || !open {
            let deadline = *give_up.get_or_insert_with(|| Instant::now() + STOP_GRACE);
            if queued == 0 || Instant::now() >= deadline {
                return;
            }
        }
        let retry_at = p.retry_at.unwrap_or_else(|| Instant::now() + TICK);
        tokio::select! {
            ack = front_ack(&mut p.in_flight) => p.on_ack(ack),
            m = rx.recv(), if open => match m {
                Some(m) => {
                    p.queue(m);
                    while let Ok(m) = rx.try_recv() {
                        p.queue(m);
                    }
                }
                None => open = false,
            },
            _ = state.changed() => {
                if !*state.borrow() {
                    p.take_back("disconnected");
                }
            }
            _ = shutdown.changed(), if !stopping => stopping = true,
            _ = sleep_until(retry_at) => {
                if p.retry_at.is_some_and(|r| r <= Instant::now()) {
                    p.retry_at = None;
                }
            }
        }
    }
}

/// The PubAck of the oldest message in flight; never resolves when none is.
async fn front_ack(
    in_flight: &mut VecDeque<(BanMessage, AckFuture)>,
) -> Result<PublishAck, PublishError> {
    match in_flight.front_mut() {
        Some((_, ack)) => ack.as_mut().await,
        None => std::future::pending().await,
    }
}

impl Publisher {
    fn queue(&mut self, m: BanMessage) {
        if !self.outbox.push(m) {
            Stats::add(&self.ctx.stats.dropped, 1);
        }
    }

    /// Sends from the outbox while connected, not pausing after a failure, and the window
    /// has room.
    async fn send_what_we_can(&mut self) {
        if self.retry_at.is_some() || self.outbox.is_empty() || !self.ctx.connected() {
            return;
        }
        if !self.stream_ready {
            match self.ctx.ensure_stream().await {
                Ok(_) => self.stream_ready = true,
                Err(e) => return self.fail(e),
            }
        }
        while self.in_flight.len() < WINDOW {
            let (next, stale) = self.outbox.next_due(now());
            Stats::add(&self.ctx.stats.stale, stale);
            let Some(m) = next else { break };
            let publish = PublishMessage::build()
                .payload(m.encode().into())
                .message_id(&m.id);
            match self
                .ctx
                .js
                .send_publish(self.ctx.names.own_subject.clone(), publish)
                .await
            {
                Ok(ack) => self.in_flight.push_back((m, ack.into_future())),
                Err(e) => {
                    self.outbox.requeue_front(std::iter::once(m));
                    self.take_back("send failed");
                    return self.fail(format!("publish: {e}"));
                }
            }
        }
    }

    fn on_ack(&mut self, ack: Result<PublishAck, PublishError>) {
        match ack {
            Ok(_) => {
                self.in_flight.pop_front();
                Stats::add(&self.ctx.stats.published, 1);
            }
            Err(e) => {
                if e.kind() == PublishErrorKind::StreamNotFound {
                    self.stream_ready = false;
                }
                self.take_back("not confirmed");
                self.fail(format!("publish not confirmed: {e}"));
            }
        }
    }

    /// Every message in flight goes back to the front of the outbox, in order.
    fn take_back(&mut self, why: &str) {
        if self.in_flight.is_empty() {
            return;
        }
        tracing::debug!(target: "autoblock::cluster", n = self.in_flight.len(), "{why}: sending again");
        let unconfirmed: Vec<BanMessage> = self.in_flight.drain(..).map(|(m, _)| m).collect();
        self.outbox.requeue_front(unconfirmed.into_iter());
    }

    fn fail(&mut self, what: String) {
        self.ctx.stats.error(now(), what);
        self.retry_at = Some(Instant::now() + RETRY);
    }
}
