//! The fuzz targets on stable: each target's body runs over its seeds (from the fixtures) and
//! over inputs mutated from them by a small deterministic mutator, so `scripts/test` catches a
//! target that no longer compiles or a regression on a known input without the nightly
//! toolchain. `FUZZ_SMOKE_INPUTS` sets the mutated inputs per target (default 2000; the targets
//! that compile rule sets run a tenth of that). A failing input is written to
//! `target/fuzz-failures/<target>-<n>` for `cargo fuzz run <target> <file>`.

use std::sync::OnceLock;

use wasm_shield_fuzz::seeds::{self, Seeds};

fn seeds() -> &'static Seeds {
    static SEEDS: OnceLock<Seeds> = OnceLock::new();
    SEEDS.get_or_init(|| seeds::collect(&seeds::repo_root()))
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

/// Bytes parsers tend to care about.
const INTERESTING: &[&[u8]] = &[
    b"%",
    b"%u",
    b"\\",
    b"\"",
    b"'",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b".",
    b"/",
    b";",
    b"=",
    b"&",
    b"\n",
    b"\r\n",
    b"\0",
    b"\xff",
    b"\xc3",
    b"\xe2\x80",
    b"--",
    b"/*",
    b"*/",
    b"<",
    b"&#",
    b"0x",
    b"::",
    b"/33",
    b"/129",
    b"-1",
    b"18446744073709551616",
    b"4294967296",
    b"\t",
    b" ",
    b"==",
    b"eyJ",
    b"e30",
];

fn mutate(rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(7) {
            0 if !data.is_empty() => {
                let index = at.min(data.len() - 1);
                data[index] ^= 1 << rng.below(8);
            }
            1 => data.insert(at, rng.next() as u8),
            2 if !data.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            3 => {
                let token = INTERESTING[rng.below(INTERESTING.len())];
                data.splice(at..at, token.iter().copied());
            }
            4 if !other.is_empty() => {
                let start = rng.below(other.len());
                let end = (start + 1 + rng.below(64)).min(other.len());
                data.splice(at..at, other[start..end].iter().copied());
            }
            5 if !data.is_empty() => {
                let end = (at + 1 + rng.below(32)).min(data.len());
                let piece = data[at.min(end)..end].to_vec();
                for _ in 0..1 + rng.below(8) {
                    data.splice(at..at, piece.iter().copied());
                }
            }
            _ => data.truncate(at),
        }
    }
    data
}

fn run_target(name: &str, body: fn(&[u8]), mutated_inputs: usize) {
    let seeds = seeds().get(name).cloned().unwrap_or_default();
    let mut inputs: Vec<Vec<u8>> = seeds.clone();
    inputs.push(Vec::new());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    for _ in 0..mutated_inputs {
        let empty = Vec::new();
        let base = seeds.get(rng.below(seeds.len())).unwrap_or(&empty);
        let other = seeds.get(rng.below(seeds.len())).unwrap_or(&empty);
        inputs.push(mutate(&mut rng, base, other));
    }
    let started = std::time::Instant::now();
    for (index, input) in inputs.iter().enumerate() {
        let outcome = std::panic::catch_unwind(|| body(input));
        if outcome.is_err() {
            let dir = seeds::repo_root().join("target/fuzz-failures");
            let file = dir.join(format!("{name}-{index}"));
            let _ = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, input));
            panic!(
                "{name}: input {index} failed (written to {}): {:?}",
                file.display(),
                String::from_utf8_lossy(input)
            );
        }
    }
    println!(
        "fuzz smoke {name}: {} seeds + {mutated_inputs} mutated inputs in {:.2}s",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
}

fn inputs_per_target() -> usize {
    std::env::var("FUZZ_SMOKE_INPUTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
}

macro_rules! smoke {
    ($($name:ident: $divisor:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            run_target(stringify!($name), wasm_shield_fuzz::$name, inputs_per_target() / $divisor);
        }
    )*};
}

smoke! {
    jwt_token: 1,
    jwks: 1,
    waf_transform: 1,
    waf_body: 1,
    forwarded_for: 1,
    cidr: 1,
    request_id: 1,
    config_header_strip: 1,
    config_request_id: 1,
    config_jwt_auth: 1,
    config_rate_limit: 1,
    config_waf: 1,
    config_shield: 1,
    kit_headers: 1,
    fixture: 1,
    waf_seclang: 1,
}

#[test]
fn every_target_is_smoked_and_has_seeds() {
    let names: Vec<&str> = wasm_shield_fuzz::TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(names.len(), 16, "a target was added to TARGETS: add it to the smoke! list too");
    for name in names {
        assert!(seeds().get(name).is_some_and(|s| !s.is_empty()), "no seeds for {name}");
        let source = seeds::repo_root().join(format!("fuzz/fuzz_targets/{name}.rs"));
        assert!(source.is_file(), "{} is missing", source.display());
    }
}

#[cfg(feature = "harness")]
#[test]
fn harness_shield() {
    if !wasm_shield_fuzz::harness::module_available() {
        println!("fuzz smoke harness_shield: SKIPPED, no shield.wasm (run scripts/build-filters)");
        return;
    }
    run_target("harness_shield", wasm_shield_fuzz::harness::harness_shield, inputs_per_target() / 10);
}

/// `fuzz/configs/*.json` are full-chain.yaml's configurations, kept as files so the targets embed
/// them: they must not drift from the bootstrap they stand for.
#[test]
fn the_fuzzed_configurations_are_the_full_chains() {
    let root = seeds::repo_root();
    let text = std::fs::read_to_string(root.join("envoy-configs/envoy/full-chain.yaml")).expect("full-chain.yaml");
    let bootstrap: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("full-chain.yaml is YAML");
    let filters =
        bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
            .as_sequence()
            .expect("http_filters")
            .clone();
    let mut compared = 0;
    for filter in &filters {
        let config = &filter["typed_config"]["config"];
        let (Some(name), Some(json)) = (config["name"].as_str(), config["configuration"]["value"].as_str()) else {
            continue;
        };
        let ours = std::fs::read_to_string(root.join(format!("fuzz/configs/{name}.json"))).expect("a fuzz config");
        let ours: serde_json::Value = serde_json::from_str(&ours).expect("fuzz config is JSON");
        let theirs: serde_json::Value = serde_json::from_str(json).expect("full-chain config is JSON");
        assert_eq!(ours, theirs, "fuzz/configs/{name}.json differs from full-chain.yaml's {name}");
        compared += 1;
    }
    assert_eq!(compared, 5, "full-chain.yaml has five Wasm filters");
}
