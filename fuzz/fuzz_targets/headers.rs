//! Retry-After, rate-limit headers and Go durations parsed.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| towerguard_fuzz::headers(input));
