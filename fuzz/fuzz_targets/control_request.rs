//! Fuzz target for the control protocol's decoders (what the daemon reads from its socket, and
//! what the CLI reads back): no line panics, and a request that decodes encodes to a line that
//! decodes to the same request. Seeds: `fuzz/seeds/control_request/`.

#![no_main]

use autoblock::sys::control::protocol::{
    decode_request, decode_response, encode_request, encode_response,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode_request(data) {
        let line = encode_request(&req);
        assert_eq!(decode_request(line.as_bytes()).ok(), Some(req), "{line}");
    }
    if let Ok(resp) = decode_response(data) {
        let _ = encode_response(&resp);
    }
});
