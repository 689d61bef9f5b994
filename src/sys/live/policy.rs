//! The pure rules of a live capture thread: when a batch leaves for the engine, how libpcap's
//! wrapping 32-bit counters become 64-bit totals, and what the per-interface numbers add up to.
//! No clock, no I/O.

/// When a batch of frames is sent to the engine: when it is full, or when a read left the
/// kernel ring empty (it returned fewer frames than it was allowed). A frame never waits for a
/// later one, so latency is the time to process what was already queued; batches grow by
/// themselves when frames arrive faster than they are handled.
///
/// (Why not "after 1 ms without packets": libpcap 1.10 on Linux never returns from a blocking
/// read on its timeout, it polls again, so a quiet link cannot be observed without a timer
/// thread; measured: a lone packet waited 200 ms for the next one.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Frames (parsed or not) per batch, and the most one read may deliver; at least 1.
    pub max_frames: usize,
}

/// What to do with the batch being filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
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
            // The read stopped at its limit: more frames are waiting; the next read returns
            // at once and fills this batch.
            Flush::Keep
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

    const P: FlushPolicy = FlushPolicy { max_frames: 4 };

    #[test]
    fn full_batch_leaves_at_once() {
        assert_eq!(P.after_frame(3), Flush::Keep);
        assert_eq!(P.after_frame(4), Flush::Full);
        assert_eq!(P.after_frame(5), Flush::Full);
    }

    #[test]
    fn zero_max_frames_means_one() {
        let p = FlushPolicy { max_frames: 0 };
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
