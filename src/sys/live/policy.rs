//! The pure rules of a live capture thread: when a batch leaves for the engine, how libpcap's
//! wrapping 32-bit counters become 64-bit totals, and what the per-interface numbers add up to.
//! Time is passed in (µs on a monotonic clock the capture thread reads); nothing here reads it.

/// When a batch of frames is sent to the engine.
///
/// Full batches leave at once. A partial batch leaves when the link went quiet (a read returned
/// nothing within the read timeout) or when its oldest frame has waited `max_hold_us` while
/// traffic kept arriving. So a frame waits at most about `max_hold_us` + the read timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Frames (parsed or not) per batch; at least 1.
    pub max_frames: usize,
    /// Longest a frame sits in a partial batch while more traffic keeps arriving, in µs.
    pub max_hold_us: u64,
}

/// What to do with the batch being filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    Keep,
    /// It holds `max_frames`.
    Full,
    /// The last read found nothing: the link is quiet.
    Idle,
    /// Its oldest frame has waited `max_hold_us`.
    Aged,
}

impl FlushPolicy {
    /// After one frame was added; `frames` now in the batch.
    pub fn after_frame(&self, frames: usize) -> Flush {
        if frames >= self.max_frames.max(1) {
            Flush::Full
        } else {
            Flush::Keep
        }
    }

    /// After a read returned with `got` frames (0: the read timeout ran out). `frames` are in
    /// the batch, the oldest added at `oldest_us`; it is `now_us`.
    pub fn after_read(&self, frames: usize, got: usize, oldest_us: u64, now_us: u64) -> Flush {
        if frames == 0 {
            Flush::Keep
        } else if got == 0 {
            Flush::Idle
        } else if now_us.saturating_sub(oldest_us) >= self.max_hold_us {
            Flush::Aged
        } else {
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

    const P: FlushPolicy = FlushPolicy {
        max_frames: 4,
        max_hold_us: 1000,
    };

    #[test]
    fn full_batch_leaves_at_once() {
        assert_eq!(P.after_frame(3), Flush::Keep);
        assert_eq!(P.after_frame(4), Flush::Full);
        assert_eq!(P.after_frame(5), Flush::Full);
    }

    #[test]
    fn zero_max_frames_means_one() {
        let p = FlushPolicy {
            max_frames: 0,
            max_hold_us: 0,
        };
        assert_eq!(p.after_frame(1), Flush::Full);
    }

    #[test]
    fn quiet_link_sends_partial_batch() {
        assert_eq!(P.after_read(1, 0, 10, 11), Flush::Idle);
        // Nothing to send on a quiet link with an empty batch.
        assert_eq!(P.after_read(0, 0, 0, 5_000_000), Flush::Keep);
    }

    #[test]
    fn steady_trickle_cannot_hold_a_frame_forever() {
        assert_eq!(P.after_read(2, 1, 1_000, 1_999), Flush::Keep);
        assert_eq!(P.after_read(2, 1, 1_000, 2_000), Flush::Aged);
        // A clock that went backwards (it cannot, but) keeps, never panics.
        assert_eq!(P.after_read(2, 1, 5_000, 1_000), Flush::Keep);
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
