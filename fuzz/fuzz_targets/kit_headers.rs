#![no_main]
// The body is `wasm_shield_fuzz::kit_headers` (fuzz/src): the stable corpus test runs it too.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wasm_shield_fuzz::kit_headers(data));
