#![no_main]
// The body is `wasm_shield_fuzz::waf_body` (fuzz/src): the stable corpus test runs it too.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wasm_shield_fuzz::waf_body(data));
