//! The pure rules of a live capture thread: when a batch leaves for the engine, how libpcap's
//! wrapping 32-bit counters become 64-bit totals, and what the per-interface numbers add up to.
//! No clock, no I/O.

/// When a batch of frames is sent to the engine, and how long the thread naps between reads.
///
/// Reads never block: a read takes what the kernel ring holds (up to a batch). A batch leaves
/// when full, or when a read found the ring empty (it returned fewer frames than allowed);
/// then the thread naps before the next read, so the next batch gathers what arrived during
/// the nap. A frame therefore waits at most about one nap plus the time to handle what came
/// before it, and batches grow with the packet rate (~rate x nap, up to `max_frames`).
///
/// The nap adapts to the rate: long enough for `target_frames` at the rate of the last read,
/// between `nap_us` and `max_nap_us`. Each batch costs two wake-ups (this thread's after its
/// nap, the engine's on the batch), and on a virtual machine a wake-up costs ~10-30 µs of
/// CPU: at 250k packets/s, 1 ms naps made a quarter of the daemon's CPU context switches
/// (BENCHMARKS.md, "Live: naps sized by the rate"). Fast traffic fills a batch in the short
/// nap; slower traffic waits up to `max_nap_us`, the latency bound while packets flow.
///
/// Why not a blocking read with a timeout: libpcap 1.10 on Linux never returns from a blocking
/// read on its timeout (it polls again), so a quiet link cannot be noticed; and flushing every
/// time a blocking read drains the ring gave batches of ~5 frames at 340k packets/s (measured),
/// too many wakeups for the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Frames (parsed or not) per batch, and the most one read may deliver; at least 1.
    pub max_frames: usize,
    /// Shortest nap after a read that emptied the ring, in µs.
    pub nap_us: u64,
    /// Longest nap while traffic flows, in µs: the latency bound then.
    pub max_nap_us: u64,
    /// Frames a batch should gather: the nap is the time the last read's rate takes for them.
    pub target_frames: usize,
    /// Longer nap once the link has been quiet for `idle_after_us`: fewer wakeups when idle, at
    /// the price of this much delay for the first packet after a quiet spell.
    pub idle_nap_us: u64,
    /// Quiet time after which the longer nap applies, in µs.
    pub idle_after_us: u64,
}

/// What to do with the batch being filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// Keep filling it.
    Keep,
    /// It holds `max_frames`.
    Full,
    /// The last read emptied the ring: nothing else is waiting.
    Drained,
}

impl FlushPolicy {
    /// Frames one read may deliver.
    pub fn per_read(&self) -> usize {
        self.max_frames.max(1)
    }

    /// After one frame was added; `frames` now in the batch.
    pub fn after_frame(&self, frames: usize) -> Flush {
        if frames >= self.per_read() {
            Flush::Full
        } else {
            Flush::Keep
        }
    }

    /// After a read returned `got` frames; `frames` are in the batch.
    pub fn after_read(&self, frames: usize, got: usize) -> Flush {
        if frames == 0 {
            Flush::Keep
        } else if got < self.per_read() {
            Flush::Drained
        } else {
            // The read stopped at its limit: more frames are waiting; read again at once.
            Flush::Keep
        }
    }

    /// How long to nap (µs) after a read that returned `got` frames `since_us` after the read
    /// before it, the last frame having arrived `quiet_us` ago; 0: read again at once.
    pub fn nap_us(&self, got: usize, since_us: u64, quiet_us: u64) -> u64 {
        let longest = self.max_nap_us.max(self.nap_us);
        if got >= self.per_read() {
            0
        } else if quiet_us >= self.idle_after_us {
            self.idle_nap_us.max(longest)
        } else if got == 0 {
            longest
        } else {
            // The time `target_frames` take at `got` frames per `since_us`.
            let want = u128::from(since_us) * self.target_frames as u128 / got as u128;
            u64::try_from(want)
                .unwrap_or(u64::MAX)
                .clamp(self.nap_us, longest)
        }
    }
}

/// A 64-bit total of a 32-bit counter that wraps (libpcap's `pcap_stat` fields are `u_int`).
/// Readings must come at least once per wrap (2^32 packets: hours at line rate); a reading
/// below the last one is taken as a wrap, never as a loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wrapping32 {
    last: u32,
    total: u64,
}

impl Wrapping32 {
    /// Takes a new raw reading; returns the total so far.
    pub fn update(&mut self, raw: u32) -> u64 {
        self.total = self
            .total
            .saturating_add(u64::from(raw.wrapping_sub(self.last)));
        self.last = raw;
        self.total
    }

    /// The running total so far.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// One interface's numbers since its capture started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Frames libpcap handed us (after the BPF filter).
    pub frames: u64,
    /// Frames `packet::parse` rejected (not IP, headers cut short, ...): counted, not sent on.
    pub unparsed: u64,
    /// Batches handed to the engine.
    pub batches_sent: u64,
    /// Batches thrown away because the engine's channel was full: capture never waits for
    /// detection, so an overloaded engine loses whole batches here rather than stalling libpcap.
    pub batches_dropped: u64,
    /// Parsed packets inside those dropped batches.
    pub packets_dropped: u64,
    /// libpcap `ps_recv`: packets that passed the filter (on Linux this includes the ones the
    /// kernel then dropped).
    pub pcap_received: u64,
    /// libpcap `ps_drop`: dropped by the kernel because the capture buffer was full.
    pub pcap_dropped: u64,
    /// libpcap `ps_ifdrop`: dropped by the interface or its driver (0 where not reported).
    pub pcap_if_dropped: u64,
}

impl CaptureStats {
    /// Parsed packets the engine was given.
    pub fn delivered(&self) -> u64 {
        self.frames
            .saturating_sub(self.unparsed)
            .saturating_sub(self.packets_dropped)
    }

    /// Packets that never reached the engine: dropped by the kernel, the interface or us.
    pub fn lost(&self) -> u64 {
        self.pcap_dropped
            .saturating_add(self.pcap_if_dropped)
            .saturating_add(self.packets_dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: FlushPolicy = FlushPolicy {
        max_frames: 4,
        nap_us: 1_000,
        max_nap_us: 4_000,
        target_frames: 2,
        idle_nap_us: 10_000,
        idle_after_us: 1_000_000,
    };

    #[test]
    fn full_batch_leaves_at_once() {
        assert_eq!(P.after_frame(3), Flush::Keep);
        assert_eq!(P.after_frame(4), Flush::Full);
        assert_eq!(P.after_frame(5), Flush::Full);
    }

    #[test]
    fn zero_max_frames_means_one() {
        let p = FlushPolicy { max_frames: 0, ..P };
        assert_eq!(p.per_read(), 1);
        assert_eq!(p.after_frame(1), Flush::Full);
    }

    #[test]
    fn drained_ring_sends_partial_batch() {
        assert_eq!(P.after_read(1, 1), Flush::Drained);
        assert_eq!(P.after_read(3, 0), Flush::Drained);
        // Nothing to send with an empty batch.
        assert_eq!(P.after_read(0, 0), Flush::Keep);
    }

    #[test]
    fn read_at_its_limit_keeps_filling() {
        // 4 read, one full batch sent inside the read, 2 left over from before: keep.
        assert_eq!(P.after_read(2, 4), Flush::Keep);
    }

    #[test]
    fn naps_only_when_ring_is_empty_and_longer_when_quiet() {
        assert_eq!(P.nap_us(4, 1_000, 0), 0, "more waiting: no nap");
        assert_eq!(
            P.nap_us(0, 1_000, 999_999),
            4_000,
            "nothing came: the longest nap"
        );
        assert_eq!(P.nap_us(0, 1_000, 1_000_000), 10_000);
        assert_eq!(P.nap_us(3, 1_000, 1_000_000), 10_000);
        let odd = FlushPolicy {
            idle_nap_us: 10,
            ..P
        };
        assert_eq!(
            odd.nap_us(0, 0, u64::MAX),
            4_000,
            "idle nap is never shorter"
        );
    }

    #[test]
    fn nap_is_the_time_the_target_takes_at_the_last_rate() {
        // 2 frames wanted; 1 came in 1.5 ms: 3 ms. 3 came in 2.4 ms: 1.6 ms.
        assert_eq!(P.nap_us(1, 1_500, 0), 3_000);
        assert_eq!(P.nap_us(3, 2_400, 0), 1_600);
        // Faster than the target in the shortest nap: the shortest; slower: the longest.
        assert_eq!(P.nap_us(3, 100, 0), 1_000);
        assert_eq!(P.nap_us(1, 1_000_000, 0), 4_000);
        assert_eq!(P.nap_us(1, u64::MAX, 0), 4_000, "no overflow");
        // A longest nap below the shortest: the shortest bounds both.
        let flat = FlushPolicy {
            max_nap_us: 10,
            ..P
        };
        assert_eq!(flat.nap_us(1, 1_000_000, 0), 1_000);
        assert_eq!(flat.nap_us(0, 0, 0), 1_000);
    }

    #[test]
    fn wrapping_counter_extends_past_u32() {
        let mut c = Wrapping32::default();
        assert_eq!(c.update(10), 10);
        assert_eq!(c.update(u32::MAX), u64::from(u32::MAX));
        assert_eq!(c.update(4), u64::from(u32::MAX) + 5);
        assert_eq!(c.update(4), u64::from(u32::MAX) + 5);
        assert_eq!(c.total(), u64::from(u32::MAX) + 5);
    }

    #[test]
    fn stats_arithmetic_saturates() {
        let s = CaptureStats {
            frames: 100,
            unparsed: 7,
            packets_dropped: 20,
            pcap_dropped: 3,
            pcap_if_dropped: 1,
            ..CaptureStats::default()
        };
        assert_eq!(s.delivered(), 73);
        assert_eq!(s.lost(), 24);
        let odd = CaptureStats {
            frames: 1,
            unparsed: 5,
            pcap_dropped: u64::MAX,
            pcap_if_dropped: 1,
            ..CaptureStats::default()
        };
        assert_eq!(odd.delivered(), 0);
        assert_eq!(odd.lost(), u64::MAX);
    }
}
