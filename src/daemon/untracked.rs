//! Log lines for packets the engine could not count fully (pure): one per cause whose count
//! grew since the last lines, so an operator following the log learns that the source table
//! is full or the distinct-value set pool is spent without polling `status`. The caller
//! decides how often to ask (the engine loop: at most once a minute).

/// The counts as of the last lines returned.
#[derive(Debug, Default)]
pub(super) struct UntrackedWarnings {
    table_full: u64,
    distinct_sets_full: u64,
}

impl UntrackedWarnings {
    /// Lines for the causes whose totals (since start) grew since the last lines; totals
    /// lower than before (a new engine after a reload) only reset the baseline.
    pub(super) fn lines(&mut self, table_full: u64, distinct_sets_full: u64) -> Vec<String> {
        let mut lines = Vec::new();
        if table_full > self.table_full {
            lines.push(format!(
                "{} packets ({table_full} since start) came from sources the full source table \
                 could not track (limits.max_tracked_sources): no rule counted them",
                table_full - self.table_full
            ));
        }
        if distinct_sets_full > self.distinct_sets_full {
            lines.push(format!(
                "{} packets ({distinct_sets_full} since start) had a destination port or address \
                 that a dst_ports/dst_addrs window could not store (the distinct-value set pool \
                 is spent): those windows' counts may be low",
                distinct_sets_full - self.distinct_sets_full
            ));
        }
        self.table_full = table_full;
        self.distinct_sets_full = distinct_sets_full;
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_told_once_per_growth() {
        let mut w = UntrackedWarnings::default();
        assert!(w.lines(0, 0).is_empty());
        let l = w.lines(5, 0);
        assert_eq!(l.len(), 1);
        assert!(
            l[0].starts_with("5 packets (5 since start) came from sources the full source table")
        );
        assert!(w.lines(5, 0).is_empty(), "nothing new");
        let l = w.lines(7, 40);
        assert_eq!(l.len(), 2);
        assert!(l[0].starts_with("2 packets (7 since start)"), "{l:?}");
        assert!(
            l[1].starts_with("40 packets (40 since start) had a destination port"),
            "{l:?}"
        );
    }

    #[test]
    fn lower_totals_after_a_reload_reset_the_baseline() {
        let mut w = UntrackedWarnings::default();
        assert_eq!(w.lines(100, 100).len(), 2);
        assert!(w.lines(3, 0).is_empty(), "a new engine counts from 0");
        assert_eq!(w.lines(4, 0).len(), 1);
    }
}
