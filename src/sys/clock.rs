//! The wall clock, read here and nowhere in the pure core (which is handed a [`Timestamp`]).

use std::time::SystemTime;

use crate::time::Timestamp;

/// Now, on the wall clock (the Unix epoch when the clock is set before it).
pub fn wall_now() -> Timestamp {
    Timestamp::from_unix(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    )
}
