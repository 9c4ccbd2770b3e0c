//! The differential check: the harness and Envoy must agree on each step's status, local reply,
//! what the backend received and the response headers — apart from headers Envoy itself adds
//! (`IGNORED`) and values that depend on randomness or time (they differ between two harness
//! runs with another seed and clock, or the case lists them as clock-dependent, and are compared
//! by presence only).

use crate::runner::{Message, StepOutcome};

/// Headers only one side has by construction: Envoy adds these (or the HTTP/1.1 codec does).
pub const IGNORED: &[&str] = &["date", "server", "content-length", "transfer-encoding", "connection", "keep-alive"];
/// Header prefixes Envoy adds.
pub const IGNORED_PREFIXES: &[&str] = &["x-envoy-"];

fn ignored(name: &str) -> bool {
    IGNORED.contains(&name) || IGNORED_PREFIXES.iter().any(|p| name.starts_with(p)) || name == ":scheme"
}

fn values<'a>(message: &'a Message, name: &str) -> Vec<&'a str> {
    message.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
}

/// Headers that differ between `harness` and `envoy`, given a `variant` harness run.
fn header_differences(
    what: &str,
    harness: &Message,
    variant: Option<&Message>,
    envoy: &Message,
    clock_dependent: &[String],
    out: &mut Vec<String>,
) {
    let mut names: Vec<String> = harness
        .headers
        .iter()
        .chain(&envoy.headers)
        .map(|(k, _)| k.to_ascii_lowercase())
        .filter(|k| !ignored(k))
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let mut ours = values(harness, &name);
        let mut theirs = values(envoy, &name);
        let volatile = variant.is_some_and(|v| values(v, &name) != ours)
            || clock_dependent.iter().any(|h| h.eq_ignore_ascii_case(&name));
        if volatile {
            if ours.len() != theirs.len() {
                out.push(format!(
                    "{what} header {name}: the harness has {} value(s), Envoy {} (values vary by seed/clock)",
                    ours.len(),
                    theirs.len()
                ));
            }
            continue;
        }
        ours.sort_unstable();
        theirs.sort_unstable();
        if ours != theirs {
            out.push(format!("{what} header {name}: harness {ours:?}, envoy {theirs:?}"));
        }
    }
}

/// Every disagreement between the harness and Envoy in one step; `clock_dependent` names the
/// headers the case declares as counting real time (compared by presence only).
pub fn differences(
    harness: &StepOutcome,
    variant: &StepOutcome,
    envoy: &StepOutcome,
    clock_dependent: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    match (&harness.local_reply, &envoy.local_reply) {
        (Some(h), None) => {
            out.push(format!("the harness got a local reply {} from {}, Envoy did not", h.reply.status, h.filter))
        }
        (None, Some(e)) => {
            out.push(format!("Envoy answered {} without reaching the backend, the harness did not", e.reply.status))
        }
        _ => {}
    }
    match (&harness.upstream_request, &envoy.upstream_request) {
        (Some(h), Some(e)) => {
            header_differences("upstream request", h, variant.upstream_request.as_ref(), e, clock_dependent, &mut out)
        }
        (Some(_), None) => out.push("the harness reached the backend, Envoy did not".into()),
        (None, Some(_)) => out.push("Envoy reached the backend, the harness did not".into()),
        (None, None) => {}
    }
    match (&harness.response, &envoy.response) {
        (Some(h), Some(e)) => {
            if h.status() != e.status() {
                out.push(format!("status: harness {:?}, envoy {:?}", h.status(), e.status()));
            }
            header_differences("response", h, variant.response.as_ref(), e, clock_dependent, &mut out);
        }
        (Some(h), None) => out.push(format!("the harness answered {:?}, Envoy sent no response (reset)", h.status())),
        (None, Some(e)) => out.push(format!("Envoy answered {:?}, the harness sent no response", e.status())),
        (None, None) => {}
    }
    out
}
