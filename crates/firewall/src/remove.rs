//! Removing what a firewall created, and saying exactly what was there: [`Firewall::remove`]
//! takes the chain's lock and removes what the kernel holds of ours *without opening first*
//! (opening creates the chain, jumps and sets, so a clean-up after it would report removals
//! that never were); [`Firewall::flush`] uses the same counting removal.

use super::ban::Family;
use super::exec::{System, XTABLES_WAIT};
use super::mirror::Mirror;
use super::{Firewall, FirewallError, FirewallOptions, lock, render};

use super::engine::State;

/// What a removal found in the kernel and removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// Where our chain was, as `filter (ipv4)`: removed, or emptied of ours and kept when it
    /// holds rules that are not ours.
    pub chains: Vec<String>,
    /// Jumps to our chain removed from the hooks.
    pub jumps: usize,
    /// Bans removed (rules in the chain, or set entries).
    pub bans: usize,
    /// Typed rules removed.
    pub rules: usize,
    /// Sets destroyed.
    pub sets: Vec<String>,
    /// Rules that are not ours, left in our chain (which then stays).
    pub foreign_kept: usize,
}

impl Removed {
    /// True when nothing of ours was in the kernel.
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty() && self.jumps == 0 && self.sets.is_empty()
    }
}

impl Firewall {
    /// Removes our jumps, rules, sets and chain from the kernel, like [`Firewall::flush`], but
    /// without opening (which would first create whatever is missing): what is reported was
    /// really there. Fails with [`FirewallError::ChainInUse`] while a handle on the chain is
    /// open (a running program owns it).
    ///
    /// ```no_run
    /// use autoblock_firewall::{Backend, Firewall, FirewallOptions};
    /// let removed = Firewall::remove(FirewallOptions::new(Backend::Ipset, "MYAPP"))?;
    /// if removed.is_empty() {
    ///     println!("nothing to remove");
    /// }
    /// # Ok::<(), autoblock_firewall::FirewallError>(())
    /// ```
    pub fn remove(options: FirewallOptions) -> Result<Removed, FirewallError> {
        let settings = options.validate()?;
        let lock = lock::acquire(
            &settings.lock_dir,
            settings.netns.as_deref(),
            &settings.chain,
        )?;
        let exec = Box::new(System {
            netns: settings.netns.clone(),
        });
        let fw = Firewall::unopened(settings, exec, Some(lock));
        let mut state = fw.lock_state();
        fw.remove_counted(&mut state)
    }

    /// Reads every table and set of ours, removes them, and counts what was there.
    pub(crate) fn remove_counted(&self, state: &mut State) -> Result<Removed, FirewallError> {
        if self.nft() {
            return self.nft_remove_counted(state);
        }
        let mut found = Removed::default();
        for family in Family::BOTH {
            let mut tables: Vec<render::Removal> = Vec::new();
            for table in &self.settings.tables {
                let st = self.read_table(family, table)?;
                if !st.chain_exists {
                    continue;
                }
                let jumps: Vec<(String, usize)> = self
                    .settings
                    .hooks
                    .iter()
                    .filter(|h| &h.table == table)
                    .map(|h| (h.chain.clone(), st.jump_positions(&h.chain).len()))
                    .collect();
                found.chains.push(format!("{table} ({family})"));
                found.jumps += jumps.iter().map(|j| j.1).sum::<usize>();
                found.bans += st.bans.len();
                found.rules += st.rules.len();
                found.foreign_kept += st.foreign.len();
                tables.push((table.clone(), jumps, st.foreign));
            }
            if !tables.is_empty() {
                let text = render::remove(&self.settings.chain, &tables);
                self.exec.run(
                    &[family.restore_cmd(), "-w", XTABLES_WAIT, "--noflush"],
                    Some(&text),
                )?;
            }
        }
        if self.ipset() {
            let names = self.ipset_names()?;
            let mut text = String::new();
            for family in Family::BOTH {
                let name = self.set_name(family);
                if names.contains(&name) {
                    found.bans += self.read_set(family).map_or(0, |e| e.len());
                    text.push_str(&format!("destroy {name}\n"));
                    found.sets.push(name);
                }
            }
            self.ipset_restore(&text)?;
        }
        state.mirror = Mirror::default();
        state.rules = Mirror::default();
        state.foreign.clear();
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::Backend;
    use crate::tests_support::{Fake, Shared};

    fn remove(fake: &Arc<Fake>, opts: FirewallOptions) -> Removed {
        let settings = opts.validate().unwrap();
        let fw = Firewall::unopened(settings, Box::new(Shared(fake.clone())), None);
        let mut state = fw.lock_state();
        fw.remove_counted(&mut state).unwrap()
    }

    #[test]
    fn nothing_there_is_nothing_removed_and_nothing_run() {
        let fake = Arc::new(Fake::default());
        let found = remove(&fake, FirewallOptions::new(Backend::Iptables, "AB"));
        assert!(found.is_empty(), "{found:?}");
        assert!(fake.take_changes().is_empty());
    }

    #[test]
    fn what_was_there_is_counted_and_removed() {
        let fake = Arc::new(Fake::default());
        fake.set(
            "iptables-save -t filter",
            "*filter\n:INPUT ACCEPT [0:0]\n:AB - [0:0]\n-A INPUT -j AB\n\
             -A AB -s 203.0.113.7/32 -m comment --comment \"autoblock until=4000000000 rule=x\" -j DROP\n\
             -A AB -s 203.0.113.8/32 -m comment --comment \"autoblock until=4000000000 rule=x\" -j DROP\nCOMMIT\n",
        );
        let found = remove(&fake, FirewallOptions::new(Backend::Iptables, "AB"));
        assert_eq!(found.chains, ["filter (ipv4)"]);
        assert_eq!((found.jumps, found.bans, found.rules), (1, 2, 0));
        let changes = fake.take_changes();
        assert_eq!(changes.len(), 1, "{changes:?}");
        let input = changes[0].1.as_deref().unwrap_or("");
        assert!(
            input.contains("-D INPUT -j AB") && input.contains("-X AB"),
            "{input}"
        );
    }
}
