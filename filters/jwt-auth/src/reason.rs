//! Why a request was refused: the reason in the log line, the metric and the reply body.

use std::fmt;

/// Why a token (or its absence) failed a requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// No token where the requirement needs one.
    Missing,
    /// More than one token for one provider (two headers, header and query, …).
    MultipleTokens,
    /// Longer than the filter accepts.
    TooLarge,
    /// Not three base64url parts, a header or payload that is not a JSON object, bad claim types.
    Malformed,
    /// `alg` is `none`, unknown, or no key of the provider verifies it.
    AlgNotAllowed,
    /// The token names a `kid` no key carries.
    UnknownKid,
    /// No key verified the signature.
    BadSignature,
    /// `exp` is past (clock skew allowed).
    Expired,
    /// `nbf` is in the future (clock skew allowed).
    NotYetValid,
    /// `exp` is required and missing.
    ExpirationMissing,
    /// `exp` minus `nbf`/`iat` is longer than `max_lifetime`.
    LifetimeTooLong,
    /// `iss` differs from the provider's `issuer`.
    Issuer,
    /// `sub` does not match `subjects`.
    Subject,
    /// No `aud` value is one of the allowed audiences.
    Audience,
    /// The provider's remote keys are not there yet and the wait timed out.
    JwksUnavailable,
}

impl Failure {
    /// Every reason, for metrics.
    pub const ALL: [Failure; 15] = [
        Self::Missing,
        Self::MultipleTokens,
        Self::TooLarge,
        Self::Malformed,
        Self::AlgNotAllowed,
        Self::UnknownKid,
        Self::BadSignature,
        Self::Expired,
        Self::NotYetValid,
        Self::ExpirationMissing,
        Self::LifetimeTooLong,
        Self::Issuer,
        Self::Subject,
        Self::Audience,
        Self::JwksUnavailable,
    ];

    /// The token used in logs, metrics and the reply body.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::MultipleTokens => "multiple_tokens",
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::AlgNotAllowed => "alg_not_allowed",
            Self::UnknownKid => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::ExpirationMissing => "expiration_missing",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::Issuer => "issuer",
            Self::Subject => "subject",
            Self::Audience => "audience",
            Self::JwksUnavailable => "jwks_unavailable",
        }
    }

    /// The HTTP status: 403 for an audience mismatch (authenticated, not for this API), 503 when
    /// keys are unavailable, 401 otherwise.
    pub fn status(self) -> u32 {
        match self {
            Self::Audience => 403,
            Self::JwksUnavailable => 503,
            _ => 401,
        }
    }

    /// Envoy `jwt_authn`'s wording for the reason, used as the reply's `message`.
    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => "Jwt is missing",
            Self::MultipleTokens => "Jwt is present more than once",
            Self::TooLarge => "Jwt is too large",
            Self::Malformed => "Jwt is not in the form of Header.Payload.Signature with JSON objects",
            Self::AlgNotAllowed => "Jwt algorithm is not allowed",
            Self::UnknownKid => "Jwks doesn't have key to match kid or alg from Jwt",
            Self::BadSignature => "Jwt verification fails",
            Self::Expired => "Jwt is expired",
            Self::NotYetValid => "Jwt not yet valid",
            Self::ExpirationMissing => "Jwt expiration is required",
            Self::LifetimeTooLong => "Jwt lifetime is longer than allowed",
            Self::Issuer => "Jwt issuer is not configured",
            Self::Subject => "Jwt subject is not allowed",
            Self::Audience => "Audiences in Jwt are not allowed",
            Self::JwksUnavailable => "Jwks remote fetch is failed",
        }
    }

    /// Rank when several providers failed (`requires_any`): the most telling reason wins, and
    /// "missing" only when every provider saw no token.
    pub fn rank(self) -> u8 {
        match self {
            Self::Missing => 0,
            Self::JwksUnavailable => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(Failure::Audience.status(), 403);
        assert_eq!(Failure::JwksUnavailable.status(), 503);
        for failure in Failure::ALL {
            if !matches!(failure, Failure::Audience | Failure::JwksUnavailable) {
                assert_eq!(failure.status(), 401, "{failure}");
            }
        }
    }

    #[test]
    fn names_are_unique_metric_safe_tokens() {
        let mut names: Vec<&str> = Failure::ALL.iter().map(|f| f.as_str()).collect();
        assert!(names.iter().all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Failure::ALL.len());
    }
}
