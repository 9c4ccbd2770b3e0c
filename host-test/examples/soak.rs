//! Soak: many requests through the full chain in the harness, checking that nothing traps, every
//! request ends with an intended status, each VM's linear memory stops growing after warm-up,
//! and shared data stays within the rate limiter's bounds (issue 12).
//!
//!   cargo run --release -p host-test --example soak -- [--requests N] [--chain|--shield|--both]
//!
//! The chain is envoy-configs/envoy/full-chain.yaml's (header-strip, request-id, jwt-auth with
//! the local test JWKS, rate-limit in shared mode, waf), as five modules or as the `shield`
//! module with the same five configurations as stages. Two workers take requests in turn (they
//! share the rate limiter's shared data). The mix, by request number: valid tokens
//! (filters/jwt-auth/testdata/bench.token), tokens with a flipped signature byte, garbage, none;
//! forged identity headers; SQL injection, XSS and path traversal; JSON and form bodies; health
//! checks without a token; 100,000 distinct client addresses. The virtual clock advances 50 ms
//! per request (the rate limiter's ticks run, its per-user bucket refills).
//!
//! Prints one line per checkpoint (linear memory per VM and worker, shared-data entries) and a
//! summary; exits non-zero on a trap, an unintended status, memory growth after warm-up, or
//! shared data over its bound.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use host_test::Host;
use host_test::fixture::{Body, Case, HeaderList, Request};
use host_test::runner::{Runner, StepOutcome};
use serde_yaml_ng::Value;

const FILTERS: [&str; 5] = ["header-strip", "request-id", "jwt-auth", "rate-limit", "waf"];
const DISTINCT_CLIENTS: u64 = 100_000;
/// Below this many requests the WAF's lazy-DFA caches and the allocator are still filling (a
/// 20,000-request run saw one more 64 KiB page between 10,000 and 20,000): such a run checks
/// traps, statuses and the shared-data bound, and only longer runs judge memory growth.
const MIN_REQUESTS_FOR_MEMORY_VERDICT: u64 = 200_000;
const CLOCK_STEP: Duration = Duration::from_millis(50);
const WORKERS: usize = 2;

/// The five filters' JSON configurations from full-chain.yaml, in chain order.
fn full_chain_configs(root: &Path) -> Result<Vec<(String, serde_json::Value, Option<String>)>> {
    let path = root.join("envoy-configs/envoy/full-chain.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let bootstrap: Value = serde_yaml_ng::from_str(&text)?;
    let filters =
        bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
            .as_sequence()
            .ok_or_else(|| anyhow!("{}: no http_filters", path.display()))?;
    let mut configs = Vec::new();
    for filter in filters {
        let config = &filter["typed_config"]["config"];
        let Some(name) = config["name"].as_str() else { continue };
        let json = config["configuration"]["value"].as_str().ok_or_else(|| anyhow!("{name}: no configuration"))?;
        let vm_id = config["vm_config"]["vm_id"].as_str().map(str::to_owned);
        configs.push((name.to_owned(), serde_json::from_str(json)?, vm_id));
    }
    let names: Vec<&str> = configs.iter().map(|(n, _, _)| n.as_str()).collect();
    if names != FILTERS {
        bail!("{}: expected the chain {FILTERS:?}, found {names:?}", path.display());
    }
    Ok(configs)
}

fn case_for(configs: &[(String, serde_json::Value, Option<String>)], shield: bool) -> Result<Case> {
    let filters: Vec<serde_json::Value> = if shield {
        let stages: Vec<serde_json::Value> =
            configs.iter().map(|(name, config, _)| serde_json::json!({"filter": name, "config": config})).collect();
        vec![serde_json::json!({"name": "shield", "config": {"stages": stages}})]
    } else {
        configs
            .iter()
            .map(|(name, config, vm_id)| match vm_id {
                Some(vm_id) => serde_json::json!({"name": name, "config": config, "vm_id": vm_id}),
                None => serde_json::json!({"name": name, "config": config}),
            })
            .collect()
    };
    let case = serde_json::json!({
        "name": if shield { "soak (shield)" } else { "soak (chain)" },
        "filters": filters,
        "workers": WORKERS,
        "steps": [{"request": {}}],
    });
    Ok(serde_yaml_ng::from_str(&case.to_string())?)
}

/// The rate limiter's shared-data bound: `max_keys` slots per shared rule.
fn shared_bound(configs: &[(String, serde_json::Value, Option<String>)]) -> usize {
    let Some((_, config, _)) = configs.iter().find(|(name, _, _)| name == "rate-limit") else { return 0 };
    let shared = config["mode"].as_str() == Some("shared");
    let rules = config["rules"].as_array().cloned().unwrap_or_default();
    if !shared {
        return 0;
    }
    rules.iter().map(|rule| rule["max_keys"].as_u64().unwrap_or(10_000) as usize).sum()
}

/// A deterministic pseudo-random stream (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The kinds of request in the mix, and the statuses each may end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Valid,
    ForgedSignature,
    Garbage,
    NoToken,
    Attack,
    Body,
    Health,
}

impl Kind {
    fn intended(self, status: u16) -> bool {
        match self {
            // 429: the per-user bucket (600, +10/s) is shared by every valid token's `sub`.
            Kind::Valid => matches!(status, 200 | 429),
            Kind::ForgedSignature | Kind::Garbage | Kind::NoToken => status == 401,
            // Blocked by the WAF, or limited first.
            Kind::Attack => matches!(status, 403 | 429),
            Kind::Body => matches!(status, 200 | 403 | 429),
            Kind::Health => matches!(status, 200 | 403 | 429),
        }
    }
}

const ATTACK_PATHS: &[&str] = &[
    "/api/items?id=1%27%20OR%20%271%27%3D%271",
    "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "/files?name=..%2F..%2F..%2Fetc%2Fpasswd",
    "/api/items?id=1%20UNION%20SELECT%20password%20FROM%20users--",
];

fn request_for(index: u64, valid_token: &str) -> (Kind, Request) {
    let random = mix(index);
    let mut request: Request = serde_yaml_ng::from_str("{}").unwrap_or_else(|e| panic!("an empty request: {e}"));
    let client = index % DISTINCT_CLIENTS;
    request.source =
        Some(format!("10.{}.{}.{}:{}", client >> 16, (client >> 8) & 255, client & 255, 1024 + random % 60000));
    let mut headers = vec![("user-agent".to_owned(), "soak/1.0".to_owned())];
    let bearer = |token: &str| ("authorization".to_owned(), format!("Bearer {token}"));
    let kind = match random % 100 {
        0..=54 => Kind::Valid,
        55..=64 => Kind::ForgedSignature,
        65..=69 => Kind::Garbage,
        70..=79 => Kind::NoToken,
        80..=89 => Kind::Attack,
        90..=96 => Kind::Body,
        _ => Kind::Health,
    };
    request.path = format!("/api/items/{}", random % 1000);
    match kind {
        Kind::Valid => headers.push(bearer(valid_token)),
        Kind::ForgedSignature => {
            let mut bytes = valid_token.as_bytes().to_vec();
            let at = bytes.len() - 1 - (random >> 8) as usize % 40;
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            headers.push(bearer(&String::from_utf8_lossy(&bytes)));
        }
        Kind::Garbage => headers.push(bearer(&format!("not.a.{:x}", random))),
        Kind::NoToken => {}
        Kind::Attack => {
            headers.push(bearer(valid_token));
            request.path = ATTACK_PATHS[(random >> 8) as usize % ATTACK_PATHS.len()].to_owned();
        }
        Kind::Body => {
            headers.push(bearer(valid_token));
            request.method = "POST".into();
            let (content_type, body) = if random & 256 == 0 {
                ("application/json", format!(r#"{{"item": {}, "note": "hello {}"}}"#, random % 97, random % 13))
            } else {
                ("application/x-www-form-urlencoded", format!("item={}&comment=1%27%20OR%201%3D1--", random % 97))
            };
            headers.push(("content-type".into(), content_type.into()));
            // One or several chunks.
            let chunk = 1 + (random >> 16) as usize % body.len();
            request.body =
                Body::Chunks(body.as_bytes().chunks(chunk).map(|c| String::from_utf8_lossy(c).into()).collect());
        }
        Kind::Health => request.path = "/healthz".into(),
    }
    // Forged identity headers on a third of the requests: header-strip removes them.
    if random & 0x3000 == 0 {
        headers.push(("x-user-id".into(), "admin".into()));
        headers.push(("x-jwt-claim-role".into(), "root".into()));
    }
    request.headers = HeaderList(headers);
    (kind, request)
}

struct Checkpoint {
    requests: u64,
    memory: Vec<Vec<usize>>,
    shared: usize,
}

fn soak(host: &mut Host, case: &Case, requests: u64, bound: usize, valid_token: &str) -> Result<bool> {
    let mut runner = Runner::new(host, case, Path::new("soak.yaml"))?;
    runner.start().map_err(|reason| anyhow!("the chain failed to start: {reason}"))?;
    runner.world.borrow_mut().keep_logs = false;
    let checkpoints_at = [requests / 10, requests / 2, requests];
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    let mut statuses: BTreeMap<(Kind, u16), u64> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    let started = Instant::now();
    for index in 0..requests {
        let target = runner.world.borrow().now_ns + CLOCK_STEP.as_nanos() as u64;
        runner.advance_to(target);
        let (kind, request) = request_for(index, valid_token);
        let mut outcome = StepOutcome::default();
        runner.run_request((index % WORKERS as u64) as usize, &request, None, Duration::from_secs(10), &mut outcome);
        let status = outcome.response.as_ref().and_then(|r| r.status()).unwrap_or(0);
        *statuses.entry((kind, status)).or_default() += 1;
        if !outcome.traps.is_empty() || outcome.stalled || !kind.intended(status) {
            if failures.len() < 10 {
                failures.push(format!(
                    "request {index} ({kind:?} {} {}): status {status}, traps {:?}, stalled {}",
                    request.method, request.path, outcome.traps, outcome.stalled
                ));
            }
            if !outcome.traps.is_empty() {
                break;
            }
        }
        if checkpoints_at.contains(&(index + 1)) {
            let memory = (0..WORKERS).map(|w| runner.memory_bytes(w)).collect();
            let shared = runner.world.borrow().shared_data_len();
            let checkpoint = Checkpoint { requests: index + 1, memory, shared };
            println!(
                "  {:>9} requests  {:>6.1}s  linear memory (KiB) per worker {}  shared-data entries {} (bound {bound})",
                checkpoint.requests,
                started.elapsed().as_secs_f64(),
                checkpoint
                    .memory
                    .iter()
                    .map(|m| format!("{:?}", m.iter().map(|b| b / 1024).collect::<Vec<_>>()))
                    .collect::<Vec<_>>()
                    .join(" "),
                checkpoint.shared
            );
            checkpoints.push(checkpoint);
        }
    }
    let elapsed = started.elapsed();
    println!("  statuses by kind: {}", format_statuses(&statuses));
    println!("  {:.1} µs per request (harness, {} workers)", elapsed.as_secs_f64() * 1e6 / requests as f64, WORKERS);
    let mut ok = failures.is_empty();
    for failure in &failures {
        println!("  FAIL {failure}");
    }
    if let (Some(warm), Some(last)) = (checkpoints.first(), checkpoints.last()) {
        if requests < MIN_REQUESTS_FOR_MEMORY_VERDICT {
            println!("  memory not judged: a run under {MIN_REQUESTS_FOR_MEMORY_VERDICT} requests is still warming up");
        } else if last.memory != warm.memory {
            println!("  FAIL linear memory grew after warm-up ({} requests → {})", warm.requests, last.requests);
            ok = false;
        }
        if checkpoints.iter().any(|c| c.shared > bound) {
            println!("  FAIL shared data above its bound {bound}");
            ok = false;
        }
    } else {
        ok = false;
    }
    Ok(ok)
}

fn format_statuses(statuses: &BTreeMap<(Kind, u16), u64>) -> String {
    statuses.iter().map(|((kind, status), count)| format!("{kind:?}/{status}={count}")).collect::<Vec<_>>().join(" ")
}

fn main() -> Result<()> {
    let mut requests: u64 = 1_000_000;
    let (mut chain, mut shield) = (true, true);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--requests" => {
                requests = args.next().and_then(|v| v.parse().ok()).ok_or_else(|| anyhow!("--requests N"))?
            }
            "--chain" => (chain, shield) = (true, false),
            "--shield" => (chain, shield) = (false, true),
            "--both" => (chain, shield) = (true, true),
            other => bail!("unknown argument {other:?} (--requests N, --chain, --shield, --both)"),
        }
    }
    if requests < 10 {
        bail!("--requests: at least 10");
    }
    let root: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default();
    let configs = full_chain_configs(&root)?;
    let bound = shared_bound(&configs);
    let token_path = root.join("filters/jwt-auth/testdata/bench.token");
    let valid_token = std::fs::read_to_string(&token_path)?.trim().to_owned();
    let module_path: Vec<PathBuf> = match std::env::var_os("HOST_TEST_MODULE_PATH") {
        Some(paths) => std::env::split_paths(&paths).collect(),
        None => vec![root.join("target/filters")],
    };
    let mut host = Host::new(module_path)?;
    let mut all_ok = true;
    for (run, shield) in [(chain, false), (shield, true)] {
        if !run {
            continue;
        }
        println!(
            "soak: {requests} requests through {}",
            if shield { "shield (one module)" } else { "the chain of five modules" }
        );
        let case = case_for(&configs, shield)?;
        all_ok &= soak(&mut host, &case, requests, bound, &valid_token)?;
    }
    if !all_ok {
        bail!("soak failed");
    }
    println!("soak: ok");
    Ok(())
}
