//! Fuzz target for the configuration: TOML text -> validated `Config`, or problems with their
//! line, column and key. No input panics, including the error messages (their positions come
//! from byte offsets in the text). Seeds: `fuzz/seeds/config/`.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = autoblock::config::parse_str(&text, Path::new("rules.toml")) {
        let _ = e.to_string();
    }
});
