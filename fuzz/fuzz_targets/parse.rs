//! Fuzz target for `packet::parse`: the first byte picks the link type, the rest is the
//! frame. The only property is "does not panic" (libFuzzer reports any panic as a crash).

#![no_main]

use autoblock::packet::{link, parse};
use libfuzzer_sys::fuzz_target;

const LINK_TYPES: [i32; 9] = link::ALL;

fuzz_target!(|data: &[u8]| {
    if let Some((&pick, frame)) = data.split_first() {
        let linktype = LINK_TYPES[usize::from(pick) % LINK_TYPES.len()];
        let wire_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let _ = parse(linktype, frame, wire_len);
    }
});
