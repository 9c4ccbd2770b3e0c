//! Verifying one token for one provider: key selection, signature (jwt-simple), then the
//! provider's claim checks. Audiences are checked separately ([`audience_allowed`]) because a
//! rule may override them.

use crate::cache::Verified;
use crate::claims::header_value;
use crate::config::Provider;
use crate::jwks::{Key, KeyMaterial, KeySet};
use crate::reason::Failure;
use crate::token::{self, Decoded};
use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use jwt_simple::JWTError;
use jwt_simple::prelude::*;

/// Most keys tried for one token (a token without `kid` against a large key set).
pub const MAX_KEYS_TRIED: usize = 8;

/// Why verification failed, with a detail for the log line (never token content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The reason.
    pub failure: Failure,
    /// What exactly.
    pub detail: &'static str,
}

fn reject(failure: Failure, detail: &'static str) -> Rejection {
    Rejection { failure, detail }
}

/// Verifies `token` for `provider` with `keys` at `now` (seconds). On success, the cacheable
/// result (claim headers computed, payload segment kept).
pub fn verify(
    provider: &Provider,
    keys: &KeySet,
    generation: u64,
    token: &str,
    now: i64,
) -> Result<Verified, Rejection> {
    let decoded = token::decode(token).map_err(|e| reject(e.failure, e.detail))?;
    check_signature(keys, &decoded)?;
    let claims = &decoded.claims;
    if let Some(issuer) = &provider.issuer
        && claims.iss.as_deref() != Some(issuer.as_str())
    {
        return Err(reject(Failure::Issuer, "iss differs from the provider's issuer"));
    }
    let skew = provider.clock_skew;
    if let Some(exp) = claims.exp
        && now > exp.saturating_add(skew)
    {
        return Err(reject(Failure::Expired, "exp is past"));
    }
    if let Some(nbf) = claims.nbf
        && now.saturating_add(skew) < nbf
    {
        return Err(reject(Failure::NotYetValid, "nbf is in the future"));
    }
    if provider.require_expiration && claims.exp.is_none() {
        return Err(reject(Failure::ExpirationMissing, "exp is required"));
    }
    if let Some(max_lifetime) = provider.max_lifetime {
        let start = claims.nbf.or(claims.iat);
        match (claims.exp, start) {
            (Some(exp), Some(start)) if exp.saturating_sub(start) <= max_lifetime => {}
            (Some(_), None) => return Err(reject(Failure::LifetimeTooLong, "no nbf or iat to measure the lifetime")),
            _ => return Err(reject(Failure::LifetimeTooLong, "exp minus nbf/iat exceeds max_lifetime")),
        }
    }
    if let Some(subjects) = &provider.subjects
        && !claims.sub.as_deref().is_some_and(|sub| subjects.matches(sub))
    {
        return Err(reject(Failure::Subject, "sub does not match subjects"));
    }
    Ok(verified(provider, &decoded, generation))
}

/// Whether `aud` satisfies the allowed audiences (none configured: any, even none).
pub fn audience_allowed(allowed: &[String], audiences: &[String]) -> bool {
    allowed.is_empty() || audiences.iter().any(|aud| allowed.contains(aud))
}

/// Selects the keys for the token's `alg` and `kid` and checks the signature with each until
/// one verifies.
fn check_signature(keys: &KeySet, decoded: &Decoded<'_>) -> Result<(), Rejection> {
    let kid = decoded.kid.as_deref();
    if let Some(kid) = kid
        && !keys.has_kid(kid)
    {
        return Err(reject(Failure::UnknownKid, "no key has the token's kid"));
    }
    let mut tried = 0;
    let mut outcome = Err(reject(Failure::AlgNotAllowed, "no key of the provider verifies the token's alg"));
    for key in keys.candidates(decoded.alg, kid).take(MAX_KEYS_TRIED) {
        tried += 1;
        match verify_with(key, decoded.token) {
            Ok(()) => return Ok(()),
            Err(rejection) => outcome = Err(rejection),
        }
    }
    debug_assert!(tried > 0 || outcome.is_err());
    outcome
}

/// Options that make jwt-simple check the signature only: the filter checks the claims
/// itself, against the host clock and with Envoy's semantics.
fn signature_only() -> VerificationOptions {
    VerificationOptions {
        accept_future: true,
        time_tolerance: Some(Duration::from_secs(0)),
        artificial_time: Some(UnixTimeStamp::from_secs(0)),
        max_token_length: None,
        max_header_length: Some(token::MAX_TOKEN_LENGTH),
        ..VerificationOptions::default()
    }
}

fn verify_with(key: &Key, token: &str) -> Result<(), Rejection> {
    let options = Some(signature_only());
    let result = match &key.material {
        KeyMaterial::RsaPkcs1(k, digest) => {
            // `decode` checked the three parts and the signature's alphabet.
            let (input, signature) = token.rsplit_once('.').unwrap_or((token, ""));
            let signature = Base64UrlSafeNoPadding::decode_to_vec(signature, None).unwrap_or_default();
            return if k.verify(*digest, input.as_bytes(), &signature) {
                Ok(())
            } else {
                Err(reject(Failure::BadSignature, "signature does not verify"))
            };
        }
        KeyMaterial::PS256(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
        KeyMaterial::PS384(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
        KeyMaterial::PS512(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
        KeyMaterial::ES256(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
        KeyMaterial::ES384(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
        KeyMaterial::EdDSA(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
        KeyMaterial::HS256(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
        KeyMaterial::HS384(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
        KeyMaterial::HS512(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
    };
    result.map_err(|error| {
        if error.downcast_ref::<serde_json::Error>().is_some()
            || matches!(error.downcast_ref::<JWTError>(), Some(JWTError::NotJWT | JWTError::UnknownCriticalExtension))
        {
            reject(Failure::Malformed, "claims or header refused by the verifier")
        } else {
            reject(Failure::BadSignature, "signature does not verify")
        }
    })
}

fn verified(provider: &Provider, decoded: &Decoded<'_>, generation: u64) -> Verified {
    let skew = provider.clock_skew;
    let claims = &decoded.claims;
    let headers = provider
        .claim_to_headers
        .iter()
        .filter_map(|entry| {
            let value = entry.claim.lookup(&decoded.payload).and_then(header_value)?;
            Some((entry.header.clone(), value))
        })
        .collect();
    Verified {
        valid_until: claims.exp.map_or(i64::MAX, |exp| exp.saturating_add(skew)),
        valid_from: claims.nbf.map_or(i64::MIN, |nbf| nbf.saturating_sub(skew)),
        audiences: claims.aud.clone(),
        headers,
        payload_header: provider
            .forward_payload_header
            .as_ref()
            .map(|header| (header.clone(), decoded.payload_segment.to_owned())),
        generation,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{KeySource, Policy};
    use crate::jwks::tests::TEST_JWKS;

    /// Tokens minted by `testdata/mint.py` for the unit tests (`testdata/unit-tokens.json`).
    pub fn unit_token(name: &str) -> String {
        let tokens: serde_json::Value = serde_json::from_str(include_str!("../testdata/unit-tokens.json")).unwrap();
        tokens[name].as_str().unwrap_or_else(|| panic!("no unit token {name}")).to_string()
    }

    /// 2026-01-01T00:00:00Z, the clock the tokens are minted around.
    pub const NOW: i64 = 1_767_225_600;

    pub fn policy(extra: &str) -> Policy {
        let json = format!(
            r#"{{"providers":{{"main":{{"issuer":"https://issuer.example","local_jwks":{{"inline_string":{}}}{extra}}}}}}}"#,
            serde_json::to_string(TEST_JWKS).unwrap()
        );
        Policy::from_json(json.as_bytes()).unwrap()
    }

    fn check(policy: &Policy, name: &str, now: i64) -> Result<Verified, Failure> {
        let provider = &policy.providers[0];
        let KeySource::Local(keys) = &provider.keys else { panic!("local keys") };
        verify(provider, keys, 1, &unit_token(name), now).map_err(|r| r.failure)
    }

    #[test]
    fn every_algorithm_verifies() {
        let policy = policy("");
        for alg in
            ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256", "HS384", "HS512"]
        {
            let result = check(&policy, &format!("valid_{alg}"), NOW);
            assert!(result.is_ok(), "{alg}: {result:?}");
        }
    }

    #[test]
    fn confusion_and_none_are_refused() {
        let policy = policy("");
        assert_eq!(check(&policy, "hs256_signed_with_rsa_public_key", NOW).unwrap_err(), Failure::AlgNotAllowed);
        assert_eq!(check(&policy, "alg_none", NOW).unwrap_err(), Failure::AlgNotAllowed);
        assert_eq!(check(&policy, "rs256_kid_with_es256_alg", NOW).unwrap_err(), Failure::AlgNotAllowed);
    }

    #[test]
    fn signature_and_kid_failures() {
        let policy = policy("");
        assert_eq!(check(&policy, "bad_signature", NOW).unwrap_err(), Failure::BadSignature);
        assert_eq!(check(&policy, "tampered_payload", NOW).unwrap_err(), Failure::BadSignature);
        assert_eq!(check(&policy, "unknown_kid", NOW).unwrap_err(), Failure::UnknownKid);
        assert_eq!(check(&policy, "kid_path_traversal", NOW).unwrap_err(), Failure::UnknownKid);
        assert!(check(&policy, "no_kid_RS256", NOW).is_ok(), "without kid every RS256 key is tried");
    }

    #[test]
    fn time_edges_with_skew() {
        let policy = policy("");
        // exp = NOW; skew 60: valid through NOW + 60.
        assert!(check(&policy, "exp_now", NOW + 60).is_ok());
        assert_eq!(check(&policy, "exp_now", NOW + 61).unwrap_err(), Failure::Expired);
        // nbf = NOW + 120: valid from NOW + 60.
        assert_eq!(check(&policy, "nbf_in_2_minutes", NOW + 59).unwrap_err(), Failure::NotYetValid);
        assert!(check(&policy, "nbf_in_2_minutes", NOW + 60).is_ok());
        let strict = super::tests::policy(r#","clock_skew_seconds":0"#);
        assert!(check(&strict, "exp_now", NOW).is_ok());
        assert_eq!(check(&strict, "exp_now", NOW + 1).unwrap_err(), Failure::Expired);
    }

    #[test]
    fn provider_checks() {
        let policy = policy(r#","require_expiration":true"#);
        assert_eq!(check(&policy, "no_exp", NOW).unwrap_err(), Failure::ExpirationMissing);
        let policy = super::tests::policy("");
        assert_eq!(check(&policy, "wrong_issuer", NOW).unwrap_err(), Failure::Issuer);
        assert!(check(&policy, "no_exp", NOW).is_ok());
        let policy = super::tests::policy(r#","max_lifetime":"3600s""#);
        assert!(check(&policy, "valid_RS256", NOW).is_ok());
        assert_eq!(check(&policy, "long_lived", NOW).unwrap_err(), Failure::LifetimeTooLong);
        let policy = super::tests::policy(r#","subjects":{"prefix":"svc-"}"#);
        assert_eq!(check(&policy, "valid_RS256", NOW).unwrap_err(), Failure::Subject);
    }

    #[test]
    fn claims_become_headers_and_window() {
        let policy = policy(
            r#","claim_to_headers":[{"header_name":"x-user","claim_name":"sub"},
                {"header_name":"x-roles","claim_name":"realm.roles"},{"header_name":"x-none","claim_name":"absent"}],
                "forward_payload_header":"x-payload""#,
        );
        let token = unit_token("valid_RS256");
        let verified = check(&policy, "valid_RS256", NOW).unwrap();
        assert_eq!(
            verified.headers,
            vec![("x-user".to_string(), "user-1".to_string()), ("x-roles".to_string(), "reader,writer".to_string())]
        );
        let (name, payload) = verified.payload_header.unwrap();
        assert_eq!(name, "x-payload");
        assert_eq!(payload, token.split('.').nth(1).unwrap());
        assert_eq!(verified.valid_until, NOW + 3600 + 60);
        assert_eq!(verified.audiences, vec!["api".to_string()]);
    }

    #[test]
    fn audiences() {
        let allowed = vec!["api".to_string(), "web".to_string()];
        assert!(audience_allowed(&allowed, &["web".to_string()]));
        assert!(!audience_allowed(&allowed, &["other".to_string()]));
        assert!(!audience_allowed(&allowed, &[]));
        assert!(audience_allowed(&[], &[]));
    }

    #[test]
    fn duplicate_kids_try_each_key() {
        let policy = policy("");
        assert!(check(&policy, "duplicate_kid_second_key", NOW).is_ok());
    }
}
