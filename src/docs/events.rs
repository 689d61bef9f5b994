//! Every event kind with its fields, for the EVENTS section of autoblock(8) and the README's
//! events table (a test keeps the README's copy equal to [`markdown`]). [`doc_of`] matches
//! every variant of `Event` without a wildcard, so a new variant does not compile until it is
//! documented here.

use crate::event::Event;

/// One event kind, in Markdown (the man page drops the backticks).
pub struct EventDoc {
    /// The `event` field (several kinds of one shape share an entry).
    pub kind: &'static str,
    /// The fields after `ts` and `event`; brackets mark fields present only when they apply.
    pub fields: &'static str,
}

const fn e(kind: &'static str, fields: &'static str) -> EventDoc {
    EventDoc { kind, fields }
}

const DECISION: EventDoc = e(
    "`block`, `extend`, `suppressed`",
    "`ip`, `rule` (`manual` for a manual ban), [`reason`: `allowlist` `local` `peer` `link_local` `martian` `cap` `rate` `log`, suppressed only], [`peer`: why the target is a verified peer (`gateway, resolver, ssh, established`), reason `peer` only], [`metric`, `observed`, `threshold`, `window_secs`: absent for a manual ban], `ban_secs`, `offense`, `until`, [`manual`], [`comment`: the operator's `--reason`], [`origin`: the fleet node it came from], [`dry_run`]",
);
const UNBLOCK: EventDoc = e(
    "`unblock`",
    "`ip`, `rule`, `reason` (`expired`, `manual`, or `protected` when a reload or a start finds the target under the allowlist or our own addresses), `offense`, [`manual`], [`comment`], [`origin`: the fleet node whose ban it was], [`dry_run`]",
);
const SUPPRESSED_DROPPED: EventDoc = e(
    "`suppressed_dropped`",
    "`count`: suppressed events left out by their rate limit (20/s) since the last summary",
);
const EVENTS_DROPPED: EventDoc = e(
    "`events_dropped`",
    "`count`, `output` (`stdout` or `file`): event lines that output lost (it fell behind or a write failed) since the last such event; written to it once it works again",
);
const APPLIED: EventDoc = e(
    "`applied`",
    "`blocks`, `unblocks`, `commit_ms`, `reaction_ms` (`null` without blocks): when the kernel got it",
);
const STARTED: EventDoc = e(
    "`started`",
    "`version`, `pid`, `config`, `interfaces`, `backend` (the one in use), `chain`, `dry_run`, `adopted_bans`, `restored_bans` (saved bans the kernel had lost, put back), `local_addresses`, `rules`, `backend_config` (`auto` or the configured name), [`backend_skipped`: with `auto`, each better backend passed over and why, e.g. `\"nftables: ... nft not found\"`]",
);
const STOPPED: EventDoc = e("`stopped`", "`kept_bans`, `flushed`, `stop_secs`");
const RELOADED: EventDoc = e("`reloaded`", "`config`, `rules`");
const RELOAD_FAILED: EventDoc = e(
    "`reload_failed`",
    "`config`, `errors`, `message` (the previous configuration keeps running)",
);
const REPAIRED: EventDoc = e("`repaired`", "`repairs`");
const ENFORCER_ERROR: EventDoc = e(
    "`enforcer_error`",
    "`error`, then `pending`, `retry_in_secs` (a failed commit, kept and retried) or `during: \"commit\"` (a change the firewall's guard refused, not retried) or `during: \"check\"` (a failed kernel check) or nothing more (clean-up at exit)",
);
const CAPTURE_DROPS: EventDoc = e(
    "`capture_drops`",
    "`interface`, `received`, `lost`, `loss_percent`, `window_secs`, `message`: more than 1% lost over a minute, detection is partly blind",
);
const CAPTURE_ERROR: EventDoc = e(
    "`capture_error`",
    "`error`: a capture ended with an error when it was stopped",
);
const LOCAL_ADDRESSES: EventDoc = e(
    "`local_addresses`",
    "`addresses`: our own addresses changed (re-read every 30 s)",
);
const STATE_ERROR: EventDoc = e(
    "`state_error`",
    "`error`, [`saving`]: the state file could not be read (at start), or `[state] dir` cannot be written (checked at start and at every save)",
);
const FATAL: EventDoc = e(
    "`fatal`",
    "`error`: a capture or worker thread ended; the daemon stops cleanly and exits 1 so that systemd restarts it",
);
const CONTROL_ERROR: EventDoc = e(
    "`control_error`",
    "`error`: the control socket server stopped; the daemon exits 1",
);
const ATTACK: EventDoc = e(
    "`attack`",
    "`rule` (the `[[flood]]` detector), `target` (the protected address, or `total`), `observed`, `threshold`, `window_secs`, `sources` (distinct, estimated beyond a few thousand), `spoofed` (at least 32 sources, at most 1.25 packets each, and no sampled source completed a handshake; on an estimated count, up to ~1.7 each: its error is counted toward `true`, which refuses per-source bans, never toward banning random addresses), `fingerprint`: {`protocol`, `src_port`, `dst_port`, `tcp_flags` (`syn` `synack` `ack` `rst` `fin`), `fragments` (share), `length`: [min, max]} (`null` where no value carries 80% of the packets), `top_sources`: [{`ip`, `share`}], `action` (`signature` `sources` `alert`), [`refused`: why the configured action was not taken; `action` is then `alert`], [`dry_run`]: a flood from many sources crossed a detector's threshold",
);
const MITIGATE: EventDoc = e(
    "`mitigate`, `unmitigate`",
    "`rule`, `target`, `kernel_rule` (the signature in iptables words, e.g. `-d 10.10.10.10/32 -p udp --sport 4500 -j DROP`), `hold_secs` (how long it stays after the attack was last over threshold), [`dry_run`]: a flood signature went into, or left, the kernel",
);
const ATTACK_END: EventDoc = e(
    "`attack_end`",
    "`rule`, `target`, `duration_secs` (crossing to last time over threshold), `packets`, `bytes`, `peak_pps`, `peak_bps`, [`reason`: `file_ended` (replay: still going when the capture ended), `stopped` (the daemon stopped), `reload` (its detector changed); absent when the attack went quiet], [`dry_run`]",
);
const SUMMARY: EventDoc = e(
    "`summary` (replay)",
    "`file`, `packets`, `parsed`, `unparsed`, `sources`, [`sources_estimated`: true when `sources` is an estimate], `blocked`, `local_packets`, `untracked_packets`, [`untracked_distinct_packets`: of those, the packets whose destination port or address a distinct window could not store because the set pool was spent], `peak_table_bytes`, [`peak_rss_bytes`], `complete`, [`error`], [`top_talkers`: `ip`, `packets`, `bytes`, at most 10], [`bpf_filter`: `[capture] bpf_filter`, when set: only the frames it matches were read], [`spoofed`: when the sources look spoofed (a flood detector's attack said so, or about one packet per source): `sources`, `few_packet_sources` (at most 2 packets), `martian_sources`, `detectors`]",
);
const PEAKS: EventDoc = e(
    "`peaks` (replay)",
    "`file`, `rules`: per rule {`rule`, `peak` (the highest window value any source reached; 0 when nothing matched), `threshold`, `ip` (the source that reached it first; `null` when nothing matched), `metric`, `at` (when), [`capped`: the peak is a distinct metric's cap, 2×threshold+1: at least that]}; written after each file, before its `summary`",
);

/// Every event kind, in the README's order.
pub const EVENTS: &[&EventDoc] = &[
    &DECISION,
    &UNBLOCK,
    &SUPPRESSED_DROPPED,
    &EVENTS_DROPPED,
    &APPLIED,
    &STARTED,
    &STOPPED,
    &RELOADED,
    &RELOAD_FAILED,
    &REPAIRED,
    &ENFORCER_ERROR,
    &CAPTURE_DROPS,
    &CAPTURE_ERROR,
    &LOCAL_ADDRESSES,
    &STATE_ERROR,
    &FATAL,
    &CONTROL_ERROR,
    &ATTACK,
    &MITIGATE,
    &ATTACK_END,
    &PEAKS,
    &SUMMARY,
];

/// The documentation of `event`'s kind (no wildcard: every variant is named).
pub fn doc_of(event: &Event) -> &'static EventDoc {
    match event {
        Event::Block(_) | Event::Extend(_) | Event::Suppressed(_) => &DECISION,
        Event::Unblock(_) => &UNBLOCK,
        Event::SuppressedDropped { .. } => &SUPPRESSED_DROPPED,
        Event::EventsDropped { .. } => &EVENTS_DROPPED,
        Event::Applied { .. } => &APPLIED,
        Event::Started(_) => &STARTED,
        Event::Stopped { .. } => &STOPPED,
        Event::Reloaded { .. } => &RELOADED,
        Event::ReloadFailed { .. } => &RELOAD_FAILED,
        Event::Repaired { .. } => &REPAIRED,
        Event::CommitFailed { .. }
        | Event::CheckFailed { .. }
        | Event::Refused { .. }
        | Event::EnforcerError { .. } => &ENFORCER_ERROR,
        Event::CaptureDrops { .. } => &CAPTURE_DROPS,
        Event::CaptureError { .. } => &CAPTURE_ERROR,
        Event::LocalAddresses { .. } => &LOCAL_ADDRESSES,
        Event::StateLoadFailed { .. } | Event::StateSaveFailed { .. } => &STATE_ERROR,
        Event::Fatal { .. } => &FATAL,
        Event::ControlError { .. } => &CONTROL_ERROR,
        Event::Attack(_) => &ATTACK,
        Event::Mitigate(_) | Event::Unmitigate(_) => &MITIGATE,
        Event::AttackEnd(_) => &ATTACK_END,
        Event::Summary(_) => &SUMMARY,
        Event::Peaks(_) => &PEAKS,
    }
}

/// The README's events table.
pub fn markdown() -> String {
    let mut out = String::from("| kind | fields after `ts`, `event` |\n|---|---|\n");
    for d in EVENTS {
        out.push_str(&format!("| {} | {} |\n", d.kind, d.fields));
    }
    out
}
