#![no_main]
// The body is `wasm_shield_fuzz::harness::harness_shield` (fuzz/src): the stable corpus test runs it
// too. `init` compiles and starts the chain once, before the first input.
libfuzzer_sys::fuzz_target!(init: wasm_shield_fuzz::harness::warm_up(), |data: &[u8]| {
    wasm_shield_fuzz::harness::harness_shield(data)
});
