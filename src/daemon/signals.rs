//! Signals from the daemon's first instruction. [`Signals::install`] runs before anything else
//! in `autoblock run` (before the configuration is even read): it builds the async runtime and
//! registers SIGTERM, SIGINT and SIGHUP with it at once, so their default actions (death, for
//! SIGHUP with status 129 and no event) never apply. A signal that arrives while the daemon
//! starts (reading the config, adopting many bans) waits in its stream and is handled as soon
//! as the async edge runs: a reload once ready, a clean stop.

use anyhow::Context as _;
use tokio::runtime::Runtime;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// The async runtime and the daemon's signal streams, held for the whole run: signals that
/// come during the stop are absorbed too.
pub struct Signals {
    pub(super) rt: Runtime,
    pub(super) term: Signal,
    pub(super) int: Signal,
    pub(super) hup: Signal,
}

impl Signals {
    /// Builds the runtime and takes over SIGTERM, SIGINT and SIGHUP.
    pub fn install() -> anyhow::Result<Signals> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name("autoblock-io")
            .build()
            .context("cannot start the async runtime")?;
        let (term, int, hup) = {
            let _in_rt = rt.enter();
            (
                signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
                signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
                signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
            )
        };
        Ok(Signals { rt, term, int, hup })
    }
}
