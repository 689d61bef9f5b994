//! The capture thread's loop: read with a non-blocking `pcap_dispatch` (up to a batch of queued
//! frames per call), parse into the current batch, flush and nap by [`FlushPolicy`], refresh
//! libpcap's counters every `stats_every`. It owns the libpcap handle; other threads see only [`super::CaptureCounters`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use pcap::{Active, Capture};

use super::batching::{CaptureStats, Flush, FlushPolicy, Wrapping32};
use super::{CaptureCounters, Items, LiveBatch, LiveError, LiveOptions};
use crate::packet;
use crate::time::Timestamp;

pub(super) struct Worker {
    iface: String,
    iface_index: usize,
    linktype: i32,
    /// Timestamps carry ns in the `tv_usec` field (see the module docs of `live`).
    nanos: bool,
    policy: FlushPolicy,
    tx: SyncSender<LiveBatch>,
    recycle: Receiver<Items>,
    /// The batch being filled, and its frame count (parsed or not).
    items: Items,
    frames_in_batch: usize,
    unparsed_in_batch: u64,
    /// Monotonic clock for naps and the counters' refresh (µs since the thread started).
    clock: Instant,
    stats: CaptureStats,
    received: Wrapping32,
    dropped: Wrapping32,
    if_dropped: Wrapping32,
    stats_every_us: u64,
    shared: Arc<CaptureCounters>,
    /// The engine dropped its receiver: nothing left to capture for.
    gone: bool,
}

impl Worker {
    pub(super) fn new(
        iface: &str,
        iface_index: usize,
        linktype: i32,
        opts: &LiveOptions,
        tx: SyncSender<LiveBatch>,
        recycle: Receiver<Items>,
        shared: Arc<CaptureCounters>,
    ) -> Worker {
        let max_frames = opts.batch_frames.max(1);
        Worker {
            iface: iface.to_string(),
            iface_index,
            linktype,
            nanos: cfg!(target_os = "linux"),
            policy: FlushPolicy {
                max_frames,
                nap_us: micros(opts.nap),
                max_nap_us: micros(opts.max_nap),
                target_frames: opts.target_frames,
                idle_nap_us: micros(opts.idle_nap),
                idle_after_us: micros(opts.idle_after),
            },
            tx,
            recycle,
            items: Vec::with_capacity(max_frames),
            frames_in_batch: 0,
            unparsed_in_batch: 0,
            clock: Instant::now(),
            stats: CaptureStats::default(),
            received: Wrapping32::default(),
            dropped: Wrapping32::default(),
            if_dropped: Wrapping32::default(),
            stats_every_us: micros(opts.stats_every),
            shared,
            gone: false,
        }
    }

    /// Runs until stopped, until the engine is gone, or until libpcap fails.
    pub(super) fn run(mut self, mut cap: Capture<Active>) -> Result<(), LiveError> {
        let (mut next_stats, mut last_frame, mut last_read) = (0u64, 0u64, 0u64);
        // At most one batch per dispatch call, so the loop comes round (stop flag, stats) even
        // under a flood that never lets the ring drain.
        let per_read = Some(self.policy.per_read());
        let mut result = Ok(());
        while !self.shared.stop.load(Ordering::Acquire) && !self.gone {
            match cap.dispatch(per_read, |p| self.on_frame(p)) {
                Ok(got) => {
                    if self.policy.after_read(self.frames_in_batch, got) != Flush::Keep {
                        self.flush();
                    }
                    let now = self.now_us();
                    if got > 0 {
                        last_frame = now;
                    }
                    if now >= next_stats {
                        self.refresh_pcap_stats(&mut cap);
                        next_stats = now.saturating_add(self.stats_every_us);
                    }
                    let since = now.saturating_sub(last_read);
                    last_read = now;
                    let nap = self
                        .policy
                        .nap_us(got, since, now.saturating_sub(last_frame));
                    if nap > 0 {
                        std::thread::sleep(Duration::from_micros(nap));
                    }
                }
                // A real failure: interface gone, socket error.
                Err(e) => {
                    result = Err(LiveError::Read {
                        iface: self.iface.clone(),
                        frames: self.stats.frames,
                        msg: super::pcap_msg(&e),
                    });
                    break;
                }
            }
        }
        self.flush();
        self.refresh_pcap_stats(&mut cap);
        result
    }

    #[inline]
    fn on_frame(&mut self, p: pcap::Packet<'_>) {
        self.stats.frames += 1;
        self.frames_in_batch += 1;
        match packet::parse(self.linktype, p.data, p.header.len) {
            Ok(meta) => {
                let secs: i64 = p.header.ts.tv_sec;
                let frac: i64 = p.header.ts.tv_usec;
                let ts = Timestamp::from_parts(secs, frac, self.nanos);
                self.items.push((meta, ts));
            }
            Err(_) => {
                self.stats.unparsed += 1;
                self.unparsed_in_batch += 1;
            }
        }
        if self.policy.after_frame(self.frames_in_batch) == Flush::Full {
            self.flush();
        }
    }

    /// Hands the batch to the engine without ever waiting; a full channel drops it (counted).
    fn flush(&mut self) {
        if self.frames_in_batch == 0 {
            return;
        }
        let batch = LiveBatch {
            iface_index: self.iface_index,
            items: std::mem::take(&mut self.items),
            unparsed: self.unparsed_in_batch,
        };
        self.frames_in_batch = 0;
        self.unparsed_in_batch = 0;
        match self.tx.try_send(batch) {
            Ok(()) => {
                self.stats.batches_sent += 1;
                self.items = self
                    .recycle
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(self.policy.max_frames));
            }
            Err(TrySendError::Full(batch)) => {
                self.stats.batches_dropped += 1;
                self.stats.packets_dropped += batch.items.len() as u64;
                self.items = batch.items;
            }
            Err(TrySendError::Disconnected(batch)) => {
                self.gone = true;
                self.items = batch.items;
            }
        }
        self.items.clear();
        self.shared.store(&self.stats);
    }

    /// Copies libpcap's counters (readable only on this thread's handle) into the shared stats.
    fn refresh_pcap_stats(&mut self, cap: &mut Capture<Active>) {
        if let Ok(s) = cap.stats() {
            self.stats.pcap_received = self.received.update(s.received);
            self.stats.pcap_dropped = self.dropped.update(s.dropped);
            self.stats.pcap_if_dropped = self.if_dropped.update(s.if_dropped);
        }
        self.shared.store(&self.stats);
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
