//! Fuzz target: `cluster::message::decode` on arbitrary bytes (what another fleet node, or
//! anyone who can publish to the fleet's subjects, may send). Never panics; whatever it accepts
//! encodes back to the same message.
#![no_main]

use autoblock::cluster::message::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = decode(data) {
        assert_eq!(decode(&m.encode()).ok(), Some(m));
    }
});
