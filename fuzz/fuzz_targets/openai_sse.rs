//! OpenAI event streams: decoded, written back in both formats, the writing decoded again.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| towerguard_fuzz::stream(bytes, false));
