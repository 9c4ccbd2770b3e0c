//! Compares what a step produced with what its fixture expects; every mismatch is one line
//! that says what was expected and what happened.

use crate::fixture::{Expect, ExpectLogs, ExpectMessage, Presence, TrapExpect, ValueMatch};
use crate::runner::{Message, StepOutcome};
use crate::world::LogLine;

fn values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
}

fn check_headers(
    what: &str,
    headers: &[(String, String)],
    expected: &std::collections::BTreeMap<String, ValueMatch>,
    out: &mut Vec<String>,
) {
    for (name, matcher) in expected {
        let found = values(headers, name);
        let ok = match matcher {
            ValueMatch::Exact(value) => found.contains(&value.0.as_str()),
            ValueMatch::Present { present } => found.is_empty() != *present,
            ValueMatch::Regex { regex } => match regex::Regex::new(regex) {
                Ok(re) => {
                    !found.is_empty()
                        && found.iter().any(|v| re.find(v).is_some_and(|m| m.start() == 0 && m.end() == v.len()))
                }
                Err(e) => {
                    out.push(format!("{what}.{name}: invalid regex: {e}"));
                    continue;
                }
            },
        };
        if !ok {
            let wanted = match matcher {
                ValueMatch::Exact(value) => format!("{:?}", value.0),
                ValueMatch::Present { present } => format!("present: {present}"),
                ValueMatch::Regex { regex } => format!("regex {regex:?}"),
            };
            let got = if found.is_empty() { "absent".to_string() } else { format!("{found:?}") };
            out.push(format!("{what}.{name}: expected {wanted}, got {got}"));
        }
    }
}

fn check_message(what: &str, message: &Message, status: Option<u16>, expected: &ExpectMessage, out: &mut Vec<String>) {
    if let Some(want) = expected.status
        && status != Some(want)
    {
        out.push(format!("{what}.status: expected {want}, got {}", status.map_or("none".into(), |s| s.to_string())));
    }
    check_headers(&format!("{what}.headers"), &message.headers, &expected.headers, out);
    for name in &expected.absent {
        let found = values(&message.headers, name);
        if !found.is_empty() {
            out.push(format!("{what}.absent: header {name} is present: {found:?}"));
        }
    }
    if let Some(body) = &expected.body
        && &message.body != body
    {
        out.push(format!("{what}.body: expected {body:?}, got {:?}", message.body));
    }
    if let Some(part) = &expected.body_contains
        && !message.body.contains(part.as_str())
    {
        out.push(format!("{what}.body_contains: {part:?} not in {:?}", message.body));
    }
    check_headers(&format!("{what}.trailers"), &message.trailers, &expected.trailers, out);
}

/// Checks log expectations against lines.
pub fn check_logs(what: &str, logs: &[LogLine], expected: &ExpectLogs, out: &mut Vec<String>) {
    for part in &expected.contains {
        if !logs.iter().any(|line| line.message.contains(part.as_str())) {
            out.push(format!("{what}.contains: no log line contains {part:?}"));
        }
    }
    for part in &expected.not_contains {
        if let Some(line) = logs.iter().find(|line| line.message.contains(part.as_str())) {
            out.push(format!("{what}.not_contains: {part:?} appears in: {}", line.message));
        }
    }
}

fn expects_failure_status(expect: &Expect) -> bool {
    let reply = matches!(&expect.local_reply, Some(Presence::Expected(m)) if m.status.is_some_and(|s| s >= 500));
    let response = expect.response.as_ref().is_some_and(|m| m.status.is_some_and(|s| s >= 500));
    reply || response
}

/// Every way `outcome` differs from `expect`; a trap nobody expected is always one.
pub fn check_step(outcome: &StepOutcome, expect: Option<&Expect>) -> Vec<String> {
    let mut out = Vec::new();
    let default = Expect::default();
    let expect = expect.unwrap_or(&default);

    // A trap is expected when the step says so, or (unless it says `trap: false`) when it
    // expects the 5xx a dead VM answers with.
    let trap_allowed = match &expect.trap {
        Some(TrapExpect::Any(allowed)) => *allowed,
        Some(TrapExpect::Contains(_)) => true,
        None => expects_failure_status(expect),
    };
    if !trap_allowed {
        for trap in &outcome.traps {
            out.push(format!("unexpected trap: {trap}"));
        }
    }
    match &expect.trap {
        Some(TrapExpect::Any(true)) if outcome.traps.is_empty() => {
            out.push("trap: expected a trap, none happened".into())
        }
        Some(TrapExpect::Contains(part)) if !outcome.traps.iter().any(|t| t.contains(part.as_str())) => {
            out.push(format!("trap: expected a trap containing {part:?}, got {:?}", outcome.traps));
        }
        _ => {}
    }

    match &expect.local_reply {
        Some(Presence::Absent(_)) => {
            if let Some(reply) = &outcome.local_reply {
                out.push(format!(
                    "local_reply: expected none, but {} answered {} {:?}",
                    reply.filter,
                    reply.reply.status,
                    String::from_utf8_lossy(&reply.reply.body)
                ));
            }
        }
        Some(Presence::Expected(expected)) => match &outcome.local_reply {
            None => out.push("local_reply: expected a local reply, none was sent".into()),
            Some(reply) => {
                let message = Message {
                    headers: reply.headers.clone(),
                    body: String::from_utf8_lossy(&reply.reply.body).into_owned(),
                    trailers: Vec::new(),
                };
                check_message("local_reply", &message, Some(reply.reply.status as u16), expected, &mut out);
                if let Some(details) = &expected.details
                    && &reply.reply.details != details
                {
                    out.push(format!("local_reply.details: expected {details:?}, got {:?}", reply.reply.details));
                }
            }
        },
        None => {}
    }

    match &expect.upstream_request {
        Some(Presence::Absent(_)) if outcome.upstream_request.is_some() => {
            out.push("upstream_request: expected the request not to reach the backend, but it did".into());
        }
        Some(Presence::Expected(expected)) => match &outcome.upstream_request {
            None => out.push(format!("upstream_request: the request never reached the backend{}", why_not(outcome))),
            Some(request) => check_message("upstream_request", request, None, expected, &mut out),
        },
        Some(Presence::Absent(_)) | None => {}
    }

    if let Some(expected) = &expect.response {
        match &outcome.response {
            None => out.push(format!("response: the client got no response{}", why_not(outcome))),
            Some(response) => check_message("response", response, response.status(), expected, &mut out),
        }
    }

    if let Some(logs) = &expect.logs {
        check_logs("logs", &outcome.logs, logs, &mut out);
    }
    for (name, want) in &expect.metrics {
        match outcome.metrics.get(name) {
            Some(got) if got == want => {}
            Some(got) => out.push(format!("metrics.{name}: expected {want}, got {got}")),
            None => out.push(format!("metrics.{name}: expected {want}, but no such metric was defined")),
        }
    }
    if let Some(calls) = &expect.http_calls {
        let matches = calls.len() == outcome.http_calls.len()
            && calls.iter().zip(&outcome.http_calls).all(|(m, c)| {
                m.cluster.as_deref().is_none_or(|x| x == c.cluster)
                    && m.path.as_deref().is_none_or(|x| x == c.path)
                    && m.method.as_deref().is_none_or(|x| x == c.method)
            });
        if !matches {
            let got: Vec<String> =
                outcome.http_calls.iter().map(|c| format!("{} {} {}", c.cluster, c.method, c.path)).collect();
            out.push(format!("http_calls: expected {} call(s) {:?}, got {got:?}", calls.len(), calls));
        }
    }
    if let Some(reset) = expect.reset
        && reset != outcome.reset
    {
        out.push(format!("reset: expected {reset}, got {}", outcome.reset));
    }
    out
}

fn why_not(outcome: &StepOutcome) -> String {
    if outcome.reset {
        " (the stream was reset)".into()
    } else if outcome.stalled {
        " (the stream stalled: a filter paused it and nothing continued it within max_wait)".into()
    } else if let Some(reply) = &outcome.local_reply {
        format!(" ({} sent a local reply {})", reply.filter, reply.reply.status)
    } else {
        String::new()
    }
}
