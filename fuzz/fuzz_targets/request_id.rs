#![no_main]
// The body is `wasm_shield_fuzz::request_id` (fuzz/src): the stable corpus test runs it too.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wasm_shield_fuzz::request_id(data));
