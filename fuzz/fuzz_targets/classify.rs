//! Error answers (any status, headers and body) classified.
#![no_main]

libfuzzer_sys::fuzz_target!(|answer: &[u8]| towerguard_fuzz::classify(answer));
