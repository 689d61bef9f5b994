//! Fuzz target for the firewall library's readers of `iptables-save`, `ipset save` and
//! `ipset list -t` output: no input panics, and every entry read back renders and reads back
//! as the same entry. Seeds: `fuzz/seeds/firewall_output/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        autoblock::firewall::fuzzing::parse_tool_output(text);
    }
});
