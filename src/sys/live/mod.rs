//! Live capture on one interface: a dedicated OS thread reads libpcap, parses every frame with
//! [`crate::packet::parse`] and sends batches of `(PacketMeta, Timestamp)` to the engine over a
//! bounded channel; the engine sends the emptied vectors back on a recycle channel, so nothing
//! is allocated per packet once warm.
//!
//! Invariants:
//! - The thread waits on nothing but libpcap. It never blocks on the channel: when the engine
//!   falls behind and the channel is full, the batch is dropped and counted
//!   ([`CaptureStats::batches_dropped`]). Detection may lose packets under overload; capture
//!   never stalls (a stalled reader would make the kernel drop instead, uncounted by us).
//! - Reads never block (libpcap non-blocking mode): the thread reads what the kernel ring holds,
//!   sends the batch, and naps when the ring is empty: 1-4 ms while traffic flows (long enough
//!   for ~4,096 frames at the last read's rate), 10 ms after 1 s of quiet. A frame waits about
//!   one nap at most, and batches grow with the rate ([`FlushPolicy`]).
//! - [`LiveCapture::stop`] returns within about one nap, idle link or not: the thread checks a
//!   stop flag after every read. (A blocking read cannot do this: libpcap 1.10 on Linux never
//!   returns from one on its timeout, it polls again; without immediate mode TPACKET_V3 never
//!   even wakes on an idle link.)
//! - Timestamps are nanosecond precision on Linux (libpcap >= 1.5 offers it on every device
//!   there); microseconds elsewhere.

mod batching;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use pcap::{Active, Capture, Precision};

pub use batching::{CaptureStats, Flush, FlushPolicy, Wrapping32};

use crate::packet::PacketMeta;
use crate::time::Timestamp;

/// Parsed packets with their capture time, in arrival order.
pub type Items = Vec<(PacketMeta, Timestamp)>;

/// What the capture thread sends to the engine.
#[derive(Debug)]
pub struct LiveBatch {
    /// Which interface: the `iface_index` given to [`LiveCapture::start`], so the engine knows
    /// where to send the vector back.
    pub iface_index: usize,
    /// The parsed packets.
    pub items: Items,
    /// Frames in this batch that did not parse (not IP, cut short, ...).
    pub unparsed: u64,
}

/// How to open and run a live capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveOptions {
    /// Bytes kept per frame (config `capture.snaplen`); headers fit in 128.
    pub snaplen: u32,
    /// libpcap filter in tcpdump syntax (config `capture.bpf_filter`), used as given.
    pub filter: Option<String>,
    /// Kernel capture buffer: what absorbs a burst while the thread is busy. Each frame takes
    /// at most about snaplen + 64 bytes of it, so 8 MiB holds ~42k frames at snaplen 128, more
    /// of short ones (~140 ms at 300k packets/s at least; tcpdump's default is 2 MiB; the
    /// capture thread naps 1-10 ms). It is mapped into the process and counts in its resident
    /// memory once the ring has wrapped: with 1M tracked sources the daemon peaked at 137.6 MB
    /// with 32 MiB, ~127 with 16 and ~114 with 8 (BENCHMARKS.md).
    pub buffer_bytes: usize,
    /// Frames per batch (and the most one read delivers).
    pub batch_frames: usize,
    /// Shortest nap when the ring is empty (traffic fast enough to fill `target_frames` in it).
    pub nap: Duration,
    /// Longest nap while traffic flows: the latency bound. Between `nap` and this, the nap is
    /// the time the last read's rate takes to bring `target_frames`.
    pub max_nap: Duration,
    /// Frames a batch should gather: every batch costs two thread wake-ups (the nap's end, the
    /// engine's), ~10-30 µs of CPU each on this kind of host, so small batches at a few
    /// hundred thousand packets a second cost more than the packets (BENCHMARKS.md).
    pub target_frames: usize,
    /// Nap once the link has been quiet for `idle_after`: the delay of the first packet after a
    /// quiet spell, and how often an idle interface wakes the thread.
    pub idle_nap: Duration,
    /// Quiet time after which the longer nap applies.
    pub idle_after: Duration,
    /// How often libpcap's own counters are copied into [`CaptureStats`].
    pub stats_every: Duration,
}

impl Default for LiveOptions {
    fn default() -> LiveOptions {
        LiveOptions {
            snaplen: 128,
            filter: None,
            buffer_bytes: 8 << 20,
            batch_frames: 4096,
            nap: Duration::from_millis(1),
            max_nap: Duration::from_millis(4),
            target_frames: 4096,
            idle_nap: Duration::from_millis(10),
            idle_after: Duration::from_secs(1),
            stats_every: Duration::from_secs(1),
        }
    }
}

/// Why a live capture could not start or ended. Every variant names the interface; `msg` is
/// libpcap's own text.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The interface does not exist.
    #[error("interface {iface}: no such interface ({msg})")]
    NoSuchInterface {
        /// The interface.
        iface: String,
        /// libpcap's message.
        msg: String,
    },
    /// Capturing needs root or CAP_NET_RAW.
    #[error("interface {iface}: permission denied: live capture needs root or CAP_NET_RAW ({msg})")]
    PermissionDenied {
        /// The interface.
        iface: String,
        /// libpcap's message.
        msg: String,
    },
    /// The BPF filter does not compile.
    #[error("interface {iface}: bad capture filter {filter:?}: {msg}")]
    BadFilter {
        /// The interface.
        iface: String,
        /// The filter as given.
        filter: String,
        /// libpcap's message.
        msg: String,
    },
    /// libpcap could not open or set up the capture.
    #[error("interface {iface}: cannot open a live capture: {msg}")]
    Open {
        /// The interface.
        iface: String,
        /// libpcap's message.
        msg: String,
    },
    /// The capture thread could not be started.
    #[error("interface {iface}: cannot start the capture thread: {source}")]
    Spawn {
        /// The interface.
        iface: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Reading failed after the capture ran for a while (interface gone, ...).
    #[error("interface {iface}: capture failed after {frames} frames: {msg}")]
    Read {
        /// The interface.
        iface: String,
        /// Frames read before it failed.
        frames: u64,
        /// libpcap's message.
        msg: String,
    },
    /// The capture thread panicked (a bug).
    #[error("interface {iface}: the capture thread panicked")]
    Panicked {
        /// The interface.
        iface: String,
    },
}

/// A running capture on one interface. Dropping it stops it too (without the final stats).
pub struct LiveCapture {
    iface: String,
    shared: Arc<CaptureCounters>,
    thread: Option<JoinHandle<Result<(), LiveError>>>,
}

impl LiveCapture {
    /// Opens `iface` (errors name it: missing, no permission, bad filter) and starts its thread.
    /// Batches go to `tx` tagged with `iface_index`; emptied vectors come back on `recycle`
    /// (when it runs dry the thread allocates).
    pub fn start(
        iface: &str,
        iface_index: usize,
        opts: &LiveOptions,
        tx: SyncSender<LiveBatch>,
        recycle: Receiver<Items>,
    ) -> Result<LiveCapture, LiveError> {
        LiveCapture::start_watched(iface, iface_index, opts, tx, recycle, || {})
    }

    /// Like [`LiveCapture::start`]; `on_end` runs on the capture thread as it ends, however it
    /// ends (stopped, engine gone, read error, panic), so a watcher learns of it at once.
    pub fn start_watched(
        iface: &str,
        iface_index: usize,
        opts: &LiveOptions,
        tx: SyncSender<LiveBatch>,
        recycle: Receiver<Items>,
        on_end: impl FnOnce() + Send + 'static,
    ) -> Result<LiveCapture, LiveError> {
        let cap = open(iface, opts)?;
        let shared = Arc::new(CaptureCounters::default());
        let worker = worker::Worker::new(
            iface,
            iface_index,
            cap.get_datalink().0,
            opts,
            tx,
            recycle,
            shared.clone(),
        );
        let thread = std::thread::Builder::new()
            .name(format!("cap-{iface}"))
            .spawn(move || {
                let _end = OnDrop(Some(on_end));
                worker.run(cap)
            })
            .map_err(|source| LiveError::Spawn {
                iface: iface.to_string(),
                source,
            })?;
        Ok(LiveCapture {
            iface: iface.to_string(),
            shared,
            thread: Some(thread),
        })
    }

    /// The interface captured.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Numbers so far; libpcap's own counters are at most `stats_every` old.
    pub fn stats(&self) -> CaptureStats {
        self.shared.load()
    }

    /// True once the thread has ended: after [`LiveCapture::stop`], when the engine's receiver
    /// was dropped, or on a read error (which `stop` then returns).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the thread (within about one nap, even on an idle link), sends the last partial batch if the
    /// channel has room, and returns the final numbers, or the error that ended it earlier.
    pub fn stop(mut self) -> Result<CaptureStats, LiveError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<CaptureStats, LiveError> {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(result) => result?,
                Err(_) => {
                    return Err(LiveError::Panicked {
                        iface: self.iface.clone(),
                    });
                }
            }
        }
        Ok(self.stats())
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.shutdown();
        }
    }
}

/// Runs its closure when dropped.
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// Creates, configures and activates the capture, then installs the filter.
fn open(iface: &str, opts: &LiveOptions) -> Result<Capture<Active>, LiveError> {
    let precision = if cfg!(target_os = "linux") {
        Precision::Nano
    } else {
        Precision::Micro
    };
    let inactive = Capture::from_device(iface).map_err(|e| LiveError::Open {
        iface: iface.to_string(),
        msg: pcap_msg(&e),
    })?;
    let mut cap = inactive
        .immediate_mode(true)
        .snaplen(i32::try_from(opts.snaplen).unwrap_or(i32::MAX))
        .buffer_size(i32::try_from(opts.buffer_bytes).unwrap_or(i32::MAX))
        .promisc(false)
        .precision(precision)
        .open()
        .map_err(|e| classify_open(iface, &e))?;
    if let Some(filter) = &opts.filter {
        cap.filter(filter, true).map_err(|e| LiveError::BadFilter {
            iface: iface.to_string(),
            filter: filter.clone(),
            msg: pcap_msg(&e),
        })?;
    }
    cap.setnonblock().map_err(|e| LiveError::Open {
        iface: iface.to_string(),
        msg: pcap_msg(&e),
    })
}

/// libpcap's activation error, sorted by what the operator has to do about it.
fn classify_open(iface: &str, e: &pcap::Error) -> LiveError {
    let msg = pcap_msg(e);
    let lower = msg.to_ascii_lowercase();
    let iface = iface.to_string();
    if lower.contains("no such device") {
        LiveError::NoSuchInterface { iface, msg }
    } else if lower.contains("permission") || lower.contains("not permitted") {
        LiveError::PermissionDenied { iface, msg }
    } else {
        LiveError::Open { iface, msg }
    }
}

/// The message without the crate's "libpcap error: " prefix.
fn pcap_msg(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Counters the capture thread publishes and any thread reads, and the flag that stops it.
#[derive(Default)]
struct CaptureCounters {
    stop: AtomicBool,
    frames: AtomicU64,
    unparsed: AtomicU64,
    batches_sent: AtomicU64,
    batches_dropped: AtomicU64,
    packets_dropped: AtomicU64,
    pcap_received: AtomicU64,
    pcap_dropped: AtomicU64,
    pcap_if_dropped: AtomicU64,
}

impl CaptureCounters {
    fn store(&self, s: &CaptureStats) {
        let r = Ordering::Relaxed;
        self.frames.store(s.frames, r);
        self.unparsed.store(s.unparsed, r);
        self.batches_sent.store(s.batches_sent, r);
        self.batches_dropped.store(s.batches_dropped, r);
        self.packets_dropped.store(s.packets_dropped, r);
        self.pcap_received.store(s.pcap_received, r);
        self.pcap_dropped.store(s.pcap_dropped, r);
        self.pcap_if_dropped.store(s.pcap_if_dropped, r);
    }

    fn load(&self) -> CaptureStats {
        let r = Ordering::Relaxed;
        CaptureStats {
            frames: self.frames.load(r),
            unparsed: self.unparsed.load(r),
            batches_sent: self.batches_sent.load(r),
            batches_dropped: self.batches_dropped.load(r),
            packets_dropped: self.packets_dropped.load(r),
            pcap_received: self.pcap_received.load(r),
            pcap_dropped: self.pcap_dropped.load(r),
            pcap_if_dropped: self.pcap_if_dropped.load(r),
        }
    }
}
