//! OpenAI request bodies: decoded, re-encoded in both formats, decoded again.
#![no_main]

libfuzzer_sys::fuzz_target!(|body: &[u8]| towerguard_fuzz::request(body, false));
