//! The per-request decision: which rule applies, which tokens satisfy it, what to write to the
//! upstream request, or why to refuse. Pure: headers and the clock come in, a [`Decision`]
//! comes out; the stage performs it.

use crate::cache::{TokenCache, Verified};
use crate::config::{KeySource, Policy, Requirement};
use crate::jwks::KeySet;
use crate::matcher::path_without_query;
use crate::reason::Failure;
use crate::remote::RemoteState;
use crate::token::{self, Found, Source};
use crate::verify::{audience_allowed, verify};
use shield_kit::headers::Header;
use std::rc::Rc;

/// The keys of one provider.
#[derive(Debug)]
pub enum ProviderKeys {
    /// From configuration; never change.
    Local(Rc<KeySet>),
    /// Fetched.
    Remote(Box<RemoteState>),
}

/// The request fields the decision reads, found in one pass over the headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestView<'a> {
    /// All request headers (pseudo-headers included), as the host hands them.
    pub headers: &'a [Header<'a>],
    /// `:path` without query.
    pub path: &'a str,
    /// The query string (after `?`), or empty.
    pub query: &'a str,
    /// `:method`.
    pub method: &'a str,
}

impl<'a> RequestView<'a> {
    /// Reads `:path` and `:method` from `headers`.
    pub fn new(headers: &'a [Header<'a>]) -> Self {
        let mut view = Self { headers, ..Self::default() };
        for (name, value) in headers {
            match *name {
                ":path" => {
                    let full = std::str::from_utf8(value).unwrap_or("");
                    view.path = path_without_query(full);
                    view.query = full.split_once('?').map_or("", |(_, query)| query);
                    if let Some((query, _fragment)) = view.query.split_once('#') {
                        view.query = query;
                    }
                }
                ":method" => view.method = std::str::from_utf8(value).unwrap_or(""),
                _ => {}
            }
        }
        view
    }

    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }

    fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

/// Why a request passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Every token its requirement needs verified.
    Verified,
    /// No rule matched, or the rule requires nothing.
    NoRequirement,
    /// A CORS preflight with `bypass_cors_preflight`.
    CorsPreflight,
    /// `allow_missing` / `allow_missing_or_failed` without a valid token (the failure, if any).
    Unverified(Option<Failure>),
    /// Remote keys never arrived and the provider fails open.
    FailOpen,
}

/// What the stage writes before letting the request through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    /// Why it passes.
    pub pass: Pass,
    /// Headers to remove (every occurrence): spoofed output headers the tokens do not set, and
    /// token headers of providers with `forward: false`.
    pub remove: Vec<String>,
    /// Verified tokens whose headers are set (replacing any occurrence).
    pub verified: Vec<Rc<Verified>>,
}

/// A refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// Why.
    pub failure: Failure,
    /// Detail for the log line.
    pub detail: &'static str,
    /// The provider that reported it, if one did.
    pub provider: Option<usize>,
}

/// The outcome for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Continue upstream after these writes.
    Allow(Allow),
    /// Answer locally.
    Deny(Denial),
    /// A provider's remote keys are not there yet: pause until they are (or the wait times out).
    Wait,
}

/// A token that satisfied a provider.
struct Success {
    verified: Rc<Verified>,
    /// A token header to remove (`forward: false`).
    remove: Option<String>,
}

enum ProviderResult {
    Ok(Success),
    Fail(Failure, &'static str),
    Wait,
    FailOpen,
}

enum Eval {
    Ok(Vec<Success>, Pass),
    Fail(Failure, &'static str, Option<usize>),
    Wait,
}

/// The policy, the keys and the token caches of one plugin instance.
#[derive(Debug)]
pub struct Authenticator {
    /// The configuration.
    pub policy: Policy,
    /// Keys per provider (same order as `policy.providers`).
    pub keys: Vec<ProviderKeys>,
    caches: Vec<TokenCache>,
}

/// Inputs that change per call: the clock, and whether a paused request's wait is over.
#[derive(Debug, Clone, Copy)]
pub struct Moment {
    /// Host clock, nanoseconds since the epoch.
    pub now_ns: u64,
    /// The request waited for remote keys and the wait is over: decide without them.
    pub wait_over: bool,
}

impl Moment {
    fn seconds(self) -> i64 {
        i64::try_from(self.now_ns / 1_000_000_000).unwrap_or(i64::MAX)
    }
}

impl Authenticator {
    /// Builds the runtime state for `policy`.
    pub fn new(policy: Policy) -> Self {
        let keys = policy
            .providers
            .iter()
            .map(|provider| match &provider.keys {
                KeySource::Local(set) => ProviderKeys::Local(Rc::clone(set)),
                KeySource::Remote(remote) => ProviderKeys::Remote(Box::new(RemoteState::new(remote.clone()))),
            })
            .collect();
        let caches = policy.providers.iter().map(|provider| TokenCache::new(provider.cache_size)).collect();
        Self { policy, keys, caches }
    }

    /// Decides what happens to the request with these headers.
    pub fn decide(&mut self, headers: &[Header<'_>], moment: Moment) -> Decision {
        let view = RequestView::new(headers);
        let eval = if self.policy.bypass_cors_preflight && is_cors_preflight(&view) {
            Eval::Ok(Vec::new(), Pass::CorsPreflight)
        } else {
            let requirement = self
                .policy
                .rules
                .iter()
                .find(|rule| rule.route.matches(view.path, view.method))
                .and_then(|rule| rule.requirement.clone());
            match requirement {
                None => Eval::Ok(Vec::new(), Pass::NoRequirement),
                Some(requirement) => self.evaluate(&requirement, &view, moment),
            }
        };
        match eval {
            Eval::Wait => Decision::Wait,
            Eval::Fail(failure, detail, provider) => Decision::Deny(Denial { failure, detail, provider }),
            Eval::Ok(successes, pass) => Decision::Allow(self.allow(&view, successes, pass)),
        }
    }

    /// The remote providers, with their index.
    pub fn remotes(&mut self) -> impl Iterator<Item = (usize, &mut RemoteState)> {
        self.keys.iter_mut().enumerate().filter_map(|(index, keys)| match keys {
            ProviderKeys::Remote(remote) => Some((index, &mut **remote)),
            ProviderKeys::Local(_) => None,
        })
    }

    /// The remote state of provider `index`.
    pub fn remote(&mut self, index: usize) -> Option<&mut RemoteState> {
        match self.keys.get_mut(index) {
            Some(ProviderKeys::Remote(remote)) => Some(&mut **remote),
            _ => None,
        }
    }

    /// How long a request may wait for remote keys (the longest `wait_timeout`), in nanoseconds.
    pub fn wait_timeout(&self) -> u64 {
        self.keys
            .iter()
            .filter_map(|keys| match keys {
                ProviderKeys::Remote(remote) => u64::try_from(remote.config.wait_timeout.as_nanos()).ok(),
                ProviderKeys::Local(_) => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Whether some remote provider still has no keys.
    pub fn awaiting_keys(&self) -> bool {
        self.keys.iter().any(|keys| matches!(keys, ProviderKeys::Remote(remote) if remote.keys.is_none()))
    }

    fn allow(&self, view: &RequestView<'_>, successes: Vec<Success>, pass: Pass) -> Allow {
        let mut remove = Vec::new();
        let mut verified = Vec::with_capacity(successes.len());
        for success in successes {
            if let Some(header) = success.remove
                && !remove.contains(&header)
            {
                remove.push(header);
            }
            verified.push(success.verified);
        }
        // Output headers a client sent and no verified token sets: removed. Those a token sets
        // are replaced (every occurrence) by the stage.
        for name in &self.policy.output_headers {
            if !view.has_header(name) || remove.contains(name) {
                continue;
            }
            let set_by_token = verified.iter().any(|v: &Rc<Verified>| {
                v.headers.iter().any(|(header, _)| header == name)
                    || v.payload_header.as_ref().is_some_and(|(header, _)| header == name)
            });
            if !set_by_token {
                remove.push(name.clone());
            }
        }
        Allow { pass, remove, verified }
    }

    fn evaluate(&mut self, requirement: &Requirement, view: &RequestView<'_>, moment: Moment) -> Eval {
        match requirement {
            Requirement::Provider { index, audiences } => {
                match self.check_provider(*index, audiences.as_deref(), view, moment) {
                    ProviderResult::Ok(success) => Eval::Ok(vec![success], Pass::Verified),
                    ProviderResult::FailOpen => Eval::Ok(Vec::new(), Pass::FailOpen),
                    ProviderResult::Fail(failure, detail) => Eval::Fail(failure, detail, Some(*index)),
                    ProviderResult::Wait => Eval::Wait,
                }
            }
            Requirement::Any(requirements) => {
                let mut worst: Option<Eval> = None;
                let mut wait = false;
                for requirement in requirements {
                    match self.evaluate(requirement, view, moment) {
                        ok @ Eval::Ok(..) => return ok,
                        Eval::Wait => wait = true,
                        fail @ Eval::Fail(..) => {
                            let replace = match (&worst, &fail) {
                                (Some(Eval::Fail(old, ..)), Eval::Fail(new, ..)) => new.rank() > old.rank(),
                                _ => true,
                            };
                            if replace {
                                worst = Some(fail);
                            }
                        }
                    }
                }
                if wait { Eval::Wait } else { worst.unwrap_or(Eval::Fail(Failure::Missing, "no requirement", None)) }
            }
            Requirement::All(requirements) => {
                let mut all = Vec::new();
                let mut pass = Pass::Verified;
                for requirement in requirements {
                    match self.evaluate(requirement, view, moment) {
                        Eval::Ok(successes, this_pass) => {
                            all.extend(successes);
                            if this_pass != Pass::Verified {
                                pass = this_pass;
                            }
                        }
                        other => return other,
                    }
                }
                Eval::Ok(all, pass)
            }
            Requirement::AllowMissing | Requirement::AllowMissingOrFailed => {
                let mut failure: Option<(Failure, &'static str, usize)> = None;
                for index in 0..self.policy.providers.len() {
                    match self.check_provider(index, None, view, moment) {
                        ProviderResult::Ok(success) => return Eval::Ok(vec![success], Pass::Verified),
                        ProviderResult::Wait => return Eval::Wait,
                        ProviderResult::FailOpen => return Eval::Ok(Vec::new(), Pass::FailOpen),
                        ProviderResult::Fail(Failure::Missing, _) => {}
                        ProviderResult::Fail(found, detail) => {
                            if failure.is_none() {
                                failure = Some((found, detail, index));
                            }
                        }
                    }
                }
                match (requirement, failure) {
                    (Requirement::AllowMissing, Some((failure, detail, index))) => {
                        Eval::Fail(failure, detail, Some(index))
                    }
                    (_, failure) => Eval::Ok(Vec::new(), Pass::Unverified(failure.map(|(f, ..)| f))),
                }
            }
        }
    }

    fn check_provider(
        &mut self,
        index: usize,
        audiences: Option<&[String]>,
        view: &RequestView<'_>,
        moment: Moment,
    ) -> ProviderResult {
        let (Some(provider), Some(keys), Some(cache)) =
            (self.policy.providers.get(index), self.keys.get_mut(index), self.caches.get_mut(index))
        else {
            return ProviderResult::Fail(Failure::Missing, "no such provider");
        };
        let (token, source) = match token::find(&provider.locations, view.headers, view.query) {
            Found::Nothing => return ProviderResult::Fail(Failure::Missing, "no token"),
            Found::Several => return ProviderResult::Fail(Failure::MultipleTokens, "more than one token"),
            Found::One(token, source) => (token, source),
        };
        let (set, generation) = match keys {
            ProviderKeys::Local(set) => (Rc::clone(set), 0),
            ProviderKeys::Remote(remote) => match &remote.keys {
                Some(set) => (Rc::clone(set), remote.generation),
                None if !moment.wait_over => return ProviderResult::Wait,
                None if remote.config.fail_open => return ProviderResult::FailOpen,
                None => return ProviderResult::Fail(Failure::JwksUnavailable, "remote JWKS not fetched yet"),
            },
        };
        let now = moment.seconds();
        let allowed_audiences = audiences.unwrap_or(&provider.audiences);
        let cached = cache.get(token).filter(|hit| hit.generation == generation && hit.is_current(now)).cloned();
        let verified = match cached {
            Some(hit) => hit,
            None => match verify(provider, &set, generation, token, now) {
                Ok(verified) => {
                    let verified = Rc::new(verified);
                    cache.insert(token, Rc::clone(&verified), now);
                    verified
                }
                Err(rejection) => {
                    cache.remove(token);
                    if rejection.failure == Failure::UnknownKid
                        && let ProviderKeys::Remote(remote) = keys
                    {
                        remote.request_refetch(moment.now_ns);
                    }
                    return ProviderResult::Fail(rejection.failure, rejection.detail);
                }
            },
        };
        if !audience_allowed(allowed_audiences, &verified.audiences) {
            return ProviderResult::Fail(Failure::Audience, "no aud is allowed");
        }
        let remove = match source {
            Source::Header(location) if !provider.forward => {
                provider.locations.headers.get(location).map(|l| l.name.as_str().to_owned())
            }
            _ => None,
        };
        ProviderResult::Ok(Success { verified, remove })
    }
}

/// `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
fn is_cors_preflight(view: &RequestView<'_>) -> bool {
    view.method == "OPTIONS" && view.has_header("origin") && view.has_header("access-control-request-method")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::tests::TEST_JWKS;
    use crate::verify::tests::{NOW, unit_token};

    const SECOND: u64 = 1_000_000_000;

    fn moment(seconds: i64) -> Moment {
        Moment { now_ns: seconds as u64 * SECOND, wait_over: false }
    }

    fn authenticator(providers: &str, rules: &str, extra: &str) -> Authenticator {
        let jwks = serde_json::to_string(TEST_JWKS).unwrap();
        let providers = providers.replace("JWKS", &jwks);
        let json = format!(r#"{{"providers":{{{providers}}},"rules":{rules}{extra}}}"#);
        Authenticator::new(Policy::from_json(json.as_bytes()).unwrap())
    }

    fn main_provider(extra: &str) -> String {
        format!(
            r#""main":{{"issuer":"https://issuer.example","local_jwks":{{"inline_string":JWKS}},
               "claim_to_headers":[{{"header_name":"x-user","claim_name":"sub"}}]{extra}}}"#
        )
    }

    fn request(method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        let mut headers = vec![
            (":authority".to_string(), b"api.example.com".to_vec()),
            (":path".to_string(), path.as_bytes().to_vec()),
            (":method".to_string(), method.as_bytes().to_vec()),
        ];
        headers.extend(extra.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())));
        headers
    }

    fn bearer(name: &str) -> String {
        format!("Bearer {}", unit_token(name))
    }

    fn decide(auth: &mut Authenticator, headers: &[(String, Vec<u8>)], moment: Moment) -> Decision {
        let pairs: Vec<Header<'_>> = headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
        auth.decide(&pairs, moment)
    }

    fn denied(decision: &Decision) -> Failure {
        match decision {
            Decision::Deny(denial) => denial.failure,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    fn allowed(decision: Decision) -> Allow {
        match decision {
            Decision::Allow(allow) => allow,
            other => panic!("expected allow, got {other:?}"),
        }
    }

    const API_RULE: &str =
        r#"[{"match":{"path":"/healthz"}},{"match":{"prefix":"/api"},"requires":{"provider_name":"main"}}]"#;

    #[test]
    fn valid_token_sets_claims_and_drops_the_token() {
        let mut auth = authenticator(&main_provider(""), API_RULE, "");
        let headers = request("GET", "/api/x?y=1", &[("authorization", &bearer("valid_RS256")), ("x-user", "spoof")]);
        let allow = allowed(decide(&mut auth, &headers, moment(NOW)));
        assert_eq!(allow.pass, Pass::Verified);
        assert_eq!(allow.remove, vec!["authorization".to_string()]);
        assert_eq!(allow.verified[0].headers, vec![("x-user".to_string(), "user-1".to_string())]);
    }

    #[test]
    fn missing_and_invalid_tokens_are_denied() {
        let mut auth = authenticator(&main_provider(""), API_RULE, "");
        assert_eq!(denied(&decide(&mut auth, &request("GET", "/api", &[]), moment(NOW))), Failure::Missing);
        let headers = request("GET", "/api", &[("authorization", &bearer("bad_signature"))]);
        assert_eq!(denied(&decide(&mut auth, &headers, moment(NOW))), Failure::BadSignature);
    }

    #[test]
    fn unmatched_paths_pass_but_lose_spoofed_headers() {
        let mut auth = authenticator(&main_provider(""), API_RULE, "");
        let allow = allowed(decide(&mut auth, &request("GET", "/healthz", &[("x-user", "admin")]), moment(NOW)));
        assert_eq!(allow.pass, Pass::NoRequirement);
        assert_eq!(allow.remove, vec!["x-user".to_string()]);
        let allow = allowed(decide(&mut auth, &request("GET", "/other", &[]), moment(NOW)));
        assert!(allow.remove.is_empty());
    }

    #[test]
    fn cache_hit_still_checks_expiry() {
        let mut auth = authenticator(&main_provider(""), API_RULE, "");
        let headers = request("GET", "/api", &[("authorization", &bearer("exp_now"))]);
        assert!(matches!(decide(&mut auth, &headers, moment(NOW)), Decision::Allow(_)));
        assert_eq!(auth.caches[0].len(), 1);
        assert!(matches!(decide(&mut auth, &headers, moment(NOW + 60)), Decision::Allow(_)));
        assert_eq!(denied(&decide(&mut auth, &headers, moment(NOW + 61))), Failure::Expired);
        assert_eq!(auth.caches[0].len(), 0, "the expired entry is dropped");
    }

    #[test]
    fn audience_override_per_rule_and_403() {
        let rules = r#"[{"match":{"prefix":"/admin"},"requires":{"provider_and_audiences":{"provider_name":"main","audiences":["admin"]}}},
                        {"match":{"prefix":"/"},"requires":{"provider_name":"main"}}]"#;
        let mut auth = authenticator(&main_provider(r#","audiences":["api"]"#), rules, "");
        let token = bearer("valid_RS256");
        assert!(matches!(
            decide(&mut auth, &request("GET", "/x", &[("authorization", &token)]), moment(NOW)),
            Decision::Allow(_)
        ));
        let decision = decide(&mut auth, &request("GET", "/admin", &[("authorization", &token)]), moment(NOW));
        assert_eq!(denied(&decision), Failure::Audience);
        assert_eq!(Failure::Audience.status(), 403);
    }

    #[test]
    fn methods_and_cors_preflight() {
        let rules = r#"[{"match":{"prefix":"/","methods":["POST"]},"requires":{"provider_name":"main"}}]"#;
        let mut auth = authenticator(&main_provider(""), rules, r#","bypass_cors_preflight":true"#);
        assert_eq!(denied(&decide(&mut auth, &request("POST", "/a", &[]), moment(NOW))), Failure::Missing);
        assert!(matches!(decide(&mut auth, &request("GET", "/a", &[]), moment(NOW)), Decision::Allow(_)));
        let rules = r#"[{"match":{"prefix":"/"},"requires":{"provider_name":"main"}}]"#;
        let mut auth = authenticator(&main_provider(""), rules, r#","bypass_cors_preflight":true"#);
        let preflight =
            request("OPTIONS", "/a", &[("origin", "https://app.example"), ("access-control-request-method", "POST")]);
        assert_eq!(allowed(decide(&mut auth, &preflight, moment(NOW))).pass, Pass::CorsPreflight);
        let not_preflight = request("OPTIONS", "/a", &[("origin", "https://app.example")]);
        assert_eq!(denied(&decide(&mut auth, &not_preflight, moment(NOW))), Failure::Missing);
    }

    #[test]
    fn allow_missing_variants() {
        let rules = r#"[{"match":{"prefix":"/opt"},"requires":{"allow_missing":{}}},
                        {"match":{"prefix":"/any"},"requires":{"allow_missing_or_failed":{}}}]"#;
        let mut auth = authenticator(&main_provider(""), rules, "");
        assert_eq!(allowed(decide(&mut auth, &request("GET", "/opt", &[]), moment(NOW))).pass, Pass::Unverified(None));
        let bad = bearer("expired");
        assert_eq!(
            denied(&decide(&mut auth, &request("GET", "/opt", &[("authorization", &bad)]), moment(NOW))),
            Failure::Expired
        );
        let allow = allowed(decide(&mut auth, &request("GET", "/any", &[("authorization", &bad)]), moment(NOW)));
        assert_eq!(allow.pass, Pass::Unverified(Some(Failure::Expired)));
        assert!(allow.remove.is_empty(), "a failed token is not removed");
        let good = bearer("valid_RS256");
        let allow = allowed(decide(&mut auth, &request("GET", "/any", &[("authorization", &good)]), moment(NOW)));
        assert_eq!(allow.pass, Pass::Verified);
    }

    #[test]
    fn requires_any_and_all() {
        let providers = format!(
            r#"{},"other":{{"issuer":"https://other.example","local_jwks":{{"inline_string":JWKS}},
                 "from_headers":[{{"name":"x-other-jwt"}}]}}"#,
            main_provider("")
        );
        let rules = r#"[{"match":{"prefix":"/any"},"requires":{"requires_any":{"requirements":[{"provider_name":"other"},{"provider_name":"main"}]}}},
                        {"match":{"prefix":"/all"},"requires":{"requires_all":{"requirements":[{"provider_name":"main"},{"provider_name":"other"}]}}}]"#;
        let mut auth = authenticator(&providers, rules, "");
        let main = bearer("valid_RS256");
        assert!(matches!(
            decide(&mut auth, &request("GET", "/any", &[("authorization", &main)]), moment(NOW)),
            Decision::Allow(_)
        ));
        // Neither: missing. A bad one beats missing.
        assert_eq!(denied(&decide(&mut auth, &request("GET", "/any", &[]), moment(NOW))), Failure::Missing);
        let bad = bearer("bad_signature");
        assert_eq!(
            denied(&decide(&mut auth, &request("GET", "/any", &[("authorization", &bad)]), moment(NOW))),
            Failure::BadSignature
        );
        assert_eq!(
            denied(&decide(&mut auth, &request("GET", "/all", &[("authorization", &main)]), moment(NOW))),
            Failure::Missing
        );
        let other = unit_token("valid_other_issuer");
        let both = request("GET", "/all", &[("authorization", &main), ("x-other-jwt", &other)]);
        assert_eq!(allowed(decide(&mut auth, &both, moment(NOW))).verified.len(), 2);
    }

    #[test]
    fn remote_provider_waits_then_fails_closed_or_open() {
        let remote = |fail_open: bool| {
            format!(
                r#""idp":{{"remote_jwks":{{"http_uri":{{"uri":"https://idp.example/keys","cluster":"idp"}},"fail_open":{fail_open}}}}}"#
            )
        };
        let rules = r#"[{"match":{"prefix":"/"},"requires":{"provider_name":"idp"}}]"#;
        let headers = request("GET", "/", &[("authorization", &bearer("valid_RS256"))]);
        let mut auth = authenticator(&remote(false), rules, "");
        assert!(auth.awaiting_keys());
        assert_eq!(decide(&mut auth, &headers, moment(NOW)), Decision::Wait);
        // A request without a token does not wait.
        assert_eq!(denied(&decide(&mut auth, &request("GET", "/", &[]), moment(NOW))), Failure::Missing);
        let over = Moment { now_ns: NOW as u64 * SECOND, wait_over: true };
        assert_eq!(denied(&decide(&mut auth, &headers, over)), Failure::JwksUnavailable);
        let mut open = authenticator(&remote(true), rules, "");
        assert_eq!(allowed(decide(&mut open, &headers, over)).pass, Pass::FailOpen);
        // Keys arrive: verified.
        let state = auth.remote(0).unwrap();
        state.started(0);
        state.finished(0, Ok(TEST_JWKS.as_bytes()));
        assert!(!auth.awaiting_keys());
        assert_eq!(allowed(decide(&mut auth, &headers, moment(NOW))).pass, Pass::Verified);
    }

    #[test]
    fn unknown_kid_asks_for_a_refetch() {
        let provider = r#""idp":{"remote_jwks":{"http_uri":{"uri":"https://idp.example/keys","cluster":"idp"}}}"#;
        let rules = r#"[{"match":{"prefix":"/"},"requires":{"provider_name":"idp"}}]"#;
        let mut auth = authenticator(provider, rules, "");
        let start = NOW as u64 * SECOND;
        let state = auth.remote(0).unwrap();
        state.started(start);
        state.finished(start, Ok(TEST_JWKS.as_bytes()));
        let headers = request("GET", "/", &[("authorization", &bearer("unknown_kid"))]);
        let later = Moment { now_ns: start + 31 * SECOND, wait_over: false };
        assert_eq!(denied(&decide(&mut auth, &headers, later)), Failure::UnknownKid);
        assert!(auth.remote(0).unwrap().is_due(start + 31 * SECOND));
    }

    #[test]
    fn key_rotation_invalidates_cached_tokens() {
        let provider = r#""idp":{"remote_jwks":{"http_uri":{"uri":"https://idp.example/keys","cluster":"idp"}}}"#;
        let rules = r#"[{"match":{"prefix":"/"},"requires":{"provider_name":"idp"}}]"#;
        let mut auth = authenticator(provider, rules, "");
        let state = auth.remote(0).unwrap();
        state.started(0);
        state.finished(0, Ok(TEST_JWKS.as_bytes()));
        let headers = request("GET", "/", &[("authorization", &bearer("valid_ES256"))]);
        assert!(matches!(decide(&mut auth, &headers, moment(NOW)), Decision::Allow(_)));
        // New key set without the es256 key.
        let rotated = include_str!("../testdata/jwks-rotated.json");
        let state = auth.remote(0).unwrap();
        state.started(SECOND);
        state.finished(SECOND, Ok(rotated.as_bytes()));
        assert_eq!(denied(&decide(&mut auth, &headers, moment(NOW))), Failure::UnknownKid);
    }

    #[test]
    fn repeated_tokens_are_refused() {
        let mut auth = authenticator(&main_provider(""), API_RULE, "");
        let token = bearer("valid_RS256");
        let headers = request("GET", "/api", &[("authorization", &token), ("authorization", &token)]);
        assert_eq!(denied(&decide(&mut auth, &headers, moment(NOW))), Failure::MultipleTokens);
    }
}
