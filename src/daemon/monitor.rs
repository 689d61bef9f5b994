//! Capture health: copies libpcap's counters into the metrics and warns with a
//! `capture_drops` event when more than 1% of packets were lost over the last minute
//! ("detection is partly blind").

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::DaemonState;
use crate::event::{Event, PARTLY_BLIND};
use crate::sys::live::LiveCapture;

const SPAN: Duration = Duration::from_secs(60);
/// Loss fraction that triggers the warning.
const LIMIT: f64 = 0.01;

/// (when, received, lost) samples per interface.
#[derive(Default)]
pub struct DropMonitor {
    samples: Vec<VecDeque<(Instant, u64, u64)>>,
    warned: Vec<Option<Instant>>,
}

impl DropMonitor {
    pub fn check(&mut self, captures: &Arc<Mutex<Vec<LiveCapture>>>, shared: &DaemonState) {
        let Ok(caps) = captures.lock() else { return };
        let now = Instant::now();
        self.samples.resize_with(caps.len(), VecDeque::new);
        self.warned.resize(caps.len(), None);
        for (i, c) in caps.iter().enumerate() {
            let st = c.stats();
            shared.metrics.set_capture_drops(
                i,
                st.pcap_dropped,
                st.pcap_if_dropped,
                st.packets_dropped,
            );
            let received = st.pcap_received.max(st.frames);
            let lost = st.pcap_dropped + st.pcap_if_dropped + st.packets_dropped;
            let q = &mut self.samples[i];
            q.push_back((now, received, lost));
            while q.front().is_some_and(|s| now.duration_since(s.0) > SPAN) {
                q.pop_front();
            }
            let (Some(first), Some(last)) = (q.front(), q.back()) else {
                continue;
            };
            let got = last.1.saturating_sub(first.1);
            let lost = last.2.saturating_sub(first.2);
            let fraction = loss_fraction(got, lost);
            let quiet = self.warned[i].is_some_and(|w| now.duration_since(w) < SPAN);
            if fraction > LIMIT && !quiet {
                self.warned[i] = Some(now);
                shared.events.emit_now(Event::CaptureDrops {
                    interface: c.iface().to_string(),
                    received: got,
                    lost,
                    loss_percent: (fraction * 1000.0).round() / 10.0,
                    window_secs: SPAN.as_secs(),
                    message: PARTLY_BLIND,
                });
            }
        }
    }
}

/// Lost / (received + lost), 0 when nothing was seen.
pub fn loss_fraction(received: u64, lost: u64) -> f64 {
    let total = received.saturating_add(lost);
    if total == 0 {
        0.0
    } else {
        lost as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::loss_fraction;

    #[test]
    fn loss_fraction_is_safe_and_right() {
        assert_eq!(loss_fraction(0, 0), 0.0);
        assert!((loss_fraction(99, 1) - 0.01).abs() < 1e-9);
        assert!(loss_fraction(1000, 20) > 0.01);
    }
}
