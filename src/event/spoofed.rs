//! The summary's `spoofed` (pure): what replay says about a file whose sources look spoofed
//! (decided in `replay_spoof.rs`), and its line in the table.

use std::sync::Arc;

use serde::Serialize;

/// Sources that sent at most this many packets count as "a packet or two".
pub const FEW_PACKETS: u64 = 2;

/// What replay says about a file whose sources look spoofed (the summary's `spoofed`).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Spoofed {
    /// Distinct sources in the file.
    pub sources: u64,
    /// Of them, those that sent at most two packets.
    pub few_packet_sources: u64,
    /// Of them, those in martian ranges (`trust::martian`): never a real sender.
    pub martian_sources: u64,
    /// The flood detectors whose attack found its sources spoofed.
    pub detectors: Vec<Arc<str>>,
}

impl Spoofed {
    /// The table's line, without indent.
    pub fn line(&self) -> String {
        let pct = |n: u64| (n * 100).checked_div(self.sources).unwrap_or(0);
        let by = if self.detectors.is_empty() {
            String::new()
        } else {
            format!(" (as the attack by {} found)", self.detectors.join(", "))
        };
        format!(
            "the sources look spoofed{by}: {} sources, {}% sent at most {FEW_PACKETS} packets, {} ({}%) martian (no real host sends from those); spoofed sources (or reflectors answering forged requests) cannot be stopped per source, so no rule bans them: a [[flood]] detector's signature can",
            self.sources,
            pct(self.few_packet_sources),
            self.martian_sources,
            pct(self.martian_sources),
        )
    }
}
