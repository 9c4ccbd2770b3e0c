//! Properties of the verified-token cache, over generated tokens (HS256, signed here with the
//! crate's own HMAC dependency) with arbitrary subjects, claims and lifetimes:
//! - a token that verifies still verifies when it comes back (from the cache), with the same
//!   claim headers, at any later moment inside its validity;
//! - the cache never extends a token: past `exp` + skew it is refused even though cached;
//! - a token whose signature was altered is refused the first time and every time after.

use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use jwt_auth::config::Policy;
use jwt_auth::decision::{Authenticator, Decision, Moment, Pass};
use proptest::prelude::*;

const SECRET: &[u8] = b"property-test-secret-of-32-bytes";
const SKEW: i64 = 60;
const NOW: i64 = 1_767_225_600;

fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).expect("base64url of a small input")
}

fn policy() -> Policy {
    let jwks = serde_json::json!({"keys": [{"kty": "oct", "kid": "h", "alg": "HS256", "k": b64(SECRET)}]});
    let config = serde_json::json!({
        "providers": {"p": {
            "issuer": "https://issuer.example",
            "audiences": ["api"],
            "local_jwks": {"inline_string": jwks.to_string()},
            "claim_to_headers": [
                {"header_name": "x-sub", "claim_name": "sub"},
                {"header_name": "x-extra", "claim_name": "extra"}
            ]
        }},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "p"}}]
    });
    Policy::from_json(config.to_string().as_bytes()).expect("a valid configuration")
}

fn mint(claims: &serde_json::Value) -> String {
    let header = b64(br#"{"alg":"HS256","typ":"JWT","kid":"h"}"#);
    let payload = b64(claims.to_string().as_bytes());
    let input = format!("{header}.{payload}");
    let signature = hmac_sha256::HMAC::mac(input.as_bytes(), SECRET);
    format!("{input}.{}", b64(&signature))
}

fn decide(authenticator: &mut Authenticator, token: &str, now: i64) -> Decision {
    let authorization = format!("Bearer {token}");
    let headers: [(&str, &[u8]); 3] =
        [(":path", b"/api"), (":method", b"GET"), ("authorization", authorization.as_bytes())];
    let now_ns = u64::try_from(now).expect("a positive clock") * 1_000_000_000;
    authenticator.decide(&headers, Moment { now_ns, wait_over: false })
}

fn verified_headers(decision: &Decision) -> Option<Vec<(String, String)>> {
    match decision {
        Decision::Allow(allow) if allow.pass == Pass::Verified => {
            Some(allow.verified.iter().flat_map(|v| v.headers.clone()).collect())
        }
        _ => None,
    }
}

#[derive(Debug, Clone)]
struct Token {
    sub: String,
    extra: String,
    issued_ago: i64,
    lifetime: i64,
}

fn token() -> impl Strategy<Value = Token> {
    ("\\PC{1,40}", "[ -~]{0,40}", 0i64..3600, 1i64..1_000_000).prop_map(|(sub, extra, issued_ago, lifetime)| Token {
        sub,
        extra,
        issued_ago,
        lifetime,
    })
}

impl Token {
    fn claims(&self) -> serde_json::Value {
        let iat = NOW - self.issued_ago;
        serde_json::json!({
            "iss": "https://issuer.example", "aud": "api", "sub": self.sub, "extra": self.extra,
            "iat": iat, "exp": iat + self.lifetime,
        })
    }

    fn exp(&self) -> i64 {
        NOW - self.issued_ago + self.lifetime
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_verified_token_still_verifies_from_the_cache(token in token(), later in 0.0f64..1.0) {
        prop_assume!(token.exp() + SKEW >= NOW);
        let minted = mint(&token.claims());
        let mut authenticator = Authenticator::new(policy());
        let first = decide(&mut authenticator, &minted, NOW);
        let first_headers = verified_headers(&first);
        prop_assert!(first_headers.is_some(), "a valid token was refused: {first:?}");
        // Any moment up to exp + skew: still verified, same claim headers.
        let until = token.exp() + SKEW - NOW;
        let again_at = NOW + (later * until as f64) as i64;
        let again = decide(&mut authenticator, &minted, again_at);
        prop_assert_eq!(verified_headers(&again), first_headers);
        // Past exp + skew the cached entry does not help.
        let expired = decide(&mut authenticator, &minted, token.exp() + SKEW + 1);
        prop_assert!(matches!(expired, Decision::Deny(_)), "an expired cached token passed: {expired:?}");
    }

    #[test]
    fn a_forged_signature_is_refused_every_time(token in token(), flip in 0usize..43, bit in 0u8..6) {
        prop_assume!(token.exp() + SKEW >= NOW);
        let minted = mint(&token.claims());
        let mut authenticator = Authenticator::new(policy());
        // The genuine token first, so the cache holds a verified entry for its claims.
        prop_assert!(verified_headers(&decide(&mut authenticator, &minted, NOW)).is_some());
        let (input, signature) = minted.rsplit_once('.').expect("three segments");
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut forged_signature = signature.as_bytes().to_vec();
        let position = flip % forged_signature.len();
        let index = alphabet.iter().position(|c| *c == forged_signature[position]).expect("base64url");
        forged_signature[position] = alphabet[index ^ (1 << bit)];
        // The last character carries 2 padding bits of a 32-byte MAC: a change there may decode
        // to the same bytes; skip those.
        let forged = format!("{input}.{}", String::from_utf8(forged_signature).expect("ASCII"));
        prop_assume!(position + 1 < signature.len() || bit >= 2);
        for _ in 0..2 {
            let decision = decide(&mut authenticator, &forged, NOW);
            prop_assert!(matches!(decision, Decision::Deny(_)), "a forged token passed: {decision:?}");
        }
    }
}
