//! JSON Web Key Sets → verification keys, each bound to ONE algorithm chosen from the key.
//!
//! The algorithm a key verifies comes from the JWK: its `alg` when present, else every algorithm
//! of its type (`RSA` → RS*/PS*, `EC` P-256 → ES256, P-384 → ES384, `OKP` Ed25519 → EdDSA,
//! `oct` → HS*). A token's `alg` only selects among those, so an HMAC token can never be checked
//! with an RSA public key as the secret, and `none` matches no key at all.

use crate::rsa_pkcs1::{Digest, RsaPublicKey};
use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use jwt_simple::prelude::*;
use serde::Deserialize;
use std::fmt;
use std::rc::Rc;

/// Most keys read from one JWKS; the rest are ignored (a key set is a handful of keys).
pub const MAX_KEYS: usize = 64;

/// Shortest HMAC secret accepted (jwt-simple refuses to verify with a shorter one).
pub const MIN_HMAC_KEY_BYTES: usize = 12;

/// The signature algorithms the filter verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

impl Algorithm {
    /// All of them.
    pub const ALL: [Algorithm; 12] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
        Self::HS256,
        Self::HS384,
        Self::HS512,
    ];
    const RSA: [Algorithm; 6] = [Self::RS256, Self::RS384, Self::RS512, Self::PS256, Self::PS384, Self::PS512];
    const HMAC: [Algorithm; 3] = [Self::HS256, Self::HS384, Self::HS512];

    /// The JOSE name (`RS256`, …, `EdDSA`).
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
        }
    }

    /// The algorithm named `name` (exact, case-sensitive, as JOSE requires); `none` and anything
    /// unknown give `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A key ready to verify one algorithm.
pub enum KeyMaterial {
    /// RS256/384/512: checked by [`crate::rsa_pkcs1`] (see there why not jwt-simple).
    RsaPkcs1(Rc<RsaPublicKey>, Digest),
    PS256(PS256PublicKey),
    PS384(PS384PublicKey),
    PS512(PS512PublicKey),
    ES256(ES256PublicKey),
    ES384(ES384PublicKey),
    EdDSA(Ed25519PublicKey),
    HS256(HS256Key),
    HS384(HS384Key),
    HS512(HS512Key),
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key bytes (an `oct` key is a secret).
        f.write_str("KeyMaterial(..)")
    }
}

/// One verification key: the JWK's `kid` and the one algorithm this entry verifies.
#[derive(Debug)]
pub struct Key {
    /// `kid` of the JWK, if it had one.
    pub kid: Option<String>,
    /// The algorithm this entry verifies.
    pub alg: Algorithm,
    /// The key itself.
    pub material: KeyMaterial,
}

/// The usable keys of a JWKS (a JWK without `alg` contributes one entry per algorithm of its
/// type).
#[derive(Debug, Default)]
pub struct KeySet {
    /// In JWKS order.
    pub keys: Vec<Key>,
    /// JWKs that were skipped (unsupported type/curve, `use: enc`, bad material), with why.
    pub skipped: Vec<String>,
}

impl KeySet {
    /// Parses a JWKS document (`{"keys": [...]}`); a single JWK object is accepted too.
    ///
    /// Unusable JWKs are skipped and listed in `skipped`; an error means the document itself is
    /// unusable (not JSON, no `keys`, or no usable key at all).
    pub fn parse(text: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_slice(text).map_err(|e| format!("JWKS is not JSON: {e}"))?;
        let jwks: Vec<serde_json::Value> = match value {
            serde_json::Value::Object(mut object) => match object.remove("keys") {
                Some(serde_json::Value::Array(keys)) => keys,
                Some(_) => return Err("JWKS `keys` is not an array".into()),
                None if object.contains_key("kty") => vec![serde_json::Value::Object(object)],
                None => return Err("JWKS has no `keys`".into()),
            },
            _ => return Err("JWKS is not a JSON object".into()),
        };
        let mut set = KeySet::default();
        for (index, jwk) in jwks.into_iter().take(MAX_KEYS).enumerate() {
            match parse_jwk(jwk) {
                Ok(keys) => set.keys.extend(keys),
                Err(why) => set.skipped.push(format!("keys[{index}]: {why}")),
            }
        }
        if set.keys.is_empty() {
            let why = set.skipped.first().map_or("the key set is empty".to_string(), |first| first.clone());
            return Err(format!("JWKS has no usable key ({why})"));
        }
        Ok(set)
    }

    /// Keys for a token with this `alg` and `kid`: same algorithm, and same `kid` when the token
    /// names one. A token without `kid` may be checked with every key of its algorithm.
    pub fn candidates<'a>(&'a self, alg: Algorithm, kid: Option<&'a str>) -> impl Iterator<Item = &'a Key> + 'a {
        self.keys.iter().filter(move |key| key.alg == alg && (kid.is_none() || key.kid.as_deref() == kid))
    }

    /// Whether any key carries this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|key| key.kid.as_deref() == Some(kid))
    }

    /// Whether any key (of any `kid`) verifies this algorithm.
    pub fn has_alg(&self, alg: Algorithm) -> bool {
        self.keys.iter().any(|key| key.alg == alg)
    }
}

/// The JWK members the filter reads; others (`x5c`, `key_ops`, private members) are ignored.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    k: Option<String>,
}

fn parse_jwk(value: serde_json::Value) -> Result<Vec<Key>, String> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| format!("not a JWK: {e}"))?;
    if let Some(usage) = &jwk.usage
        && usage != "sig"
    {
        return Err(format!("use {usage:?} is not \"sig\""));
    }
    // Which algorithms the key type allows; the JWK's `alg` narrows it to one.
    let family: &[Algorithm] = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => &Algorithm::RSA,
        ("EC", Some("P-256")) => &[Algorithm::ES256],
        ("EC", Some("P-384")) => &[Algorithm::ES384],
        ("OKP", Some("Ed25519")) => &[Algorithm::EdDSA],
        ("oct", _) => &Algorithm::HMAC,
        ("EC" | "OKP", crv) => return Err(format!("unsupported curve {:?}", crv.unwrap_or("(none)"))),
        (kty, _) => return Err(format!("unsupported key type {kty:?}")),
    };
    let algorithms: Vec<Algorithm> = match jwk.alg.as_deref() {
        None => family.to_vec(),
        Some(name) => match Algorithm::from_name(name) {
            Some(alg) if family.contains(&alg) => vec![alg],
            _ => return Err(format!("alg {name:?} does not fit key type {:?}", jwk.kty)),
        },
    };
    let field = |value: &Option<String>, name: &str| -> Result<Vec<u8>, String> {
        let text = value.as_deref().ok_or_else(|| format!("missing `{name}`"))?;
        let bytes = Base64UrlSafeNoPadding::decode_to_vec(text.trim_end_matches('='), None)
            .map_err(|_| format!("`{name}` is not base64url"))?;
        if bytes.is_empty() {
            return Err(format!("`{name}` is empty"));
        }
        Ok(bytes)
    };
    let kid = jwk.kid.clone();
    let mut keys = Vec::with_capacity(algorithms.len());
    match jwk.kty.as_str() {
        "RSA" => {
            let (n, e) = (field(&jwk.n, "n")?, field(&jwk.e, "e")?);
            // One prepared key for RS256/384/512 of this JWK (preparing it costs R² mod n).
            let mut pkcs1: Option<Rc<RsaPublicKey>> = None;
            for alg in algorithms {
                let material = match alg {
                    Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
                        let key = match &pkcs1 {
                            Some(key) => Rc::clone(key),
                            None => Rc::clone(pkcs1.insert(Rc::new(RsaPublicKey::new(&n, &e)?))),
                        };
                        let digest = match alg {
                            Algorithm::RS256 => Digest::Sha256,
                            Algorithm::RS384 => Digest::Sha384,
                            _ => Digest::Sha512,
                        };
                        KeyMaterial::RsaPkcs1(key, digest)
                    }
                    _ => pss_material(alg, &n, &e)?,
                };
                keys.push(Key { kid: kid.clone(), alg, material });
            }
        }
        "EC" => {
            let (x, y) = (field(&jwk.x, "x")?, field(&jwk.y, "y")?);
            let size = if algorithms.contains(&Algorithm::ES256) { 32 } else { 48 };
            if x.len() != size || y.len() != size {
                return Err("`x`/`y` have the wrong length for the curve".into());
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            for alg in algorithms {
                let material = match alg {
                    Algorithm::ES256 => KeyMaterial::ES256(ES256PublicKey::from_bytes(&point).map_err(invalid_key)?),
                    _ => KeyMaterial::ES384(ES384PublicKey::from_bytes(&point).map_err(invalid_key)?),
                };
                keys.push(Key { kid: kid.clone(), alg, material });
            }
        }
        "OKP" => {
            let x = field(&jwk.x, "x")?;
            let material = KeyMaterial::EdDSA(Ed25519PublicKey::from_bytes(&x).map_err(invalid_key)?);
            keys.push(Key { kid, alg: Algorithm::EdDSA, material });
        }
        _ => {
            let secret = field(&jwk.k, "k")?;
            if secret.len() < MIN_HMAC_KEY_BYTES {
                return Err(format!("`k` is shorter than {MIN_HMAC_KEY_BYTES} bytes"));
            }
            for alg in algorithms {
                let material = match alg {
                    Algorithm::HS256 => KeyMaterial::HS256(HS256Key::from_bytes(&secret)),
                    Algorithm::HS384 => KeyMaterial::HS384(HS384Key::from_bytes(&secret)),
                    _ => KeyMaterial::HS512(HS512Key::from_bytes(&secret)),
                };
                keys.push(Key { kid: kid.clone(), alg, material });
            }
        }
    }
    Ok(keys)
}

fn pss_material(alg: Algorithm, n: &[u8], e: &[u8]) -> Result<KeyMaterial, String> {
    let material = match alg {
        Algorithm::PS256 => KeyMaterial::PS256(PS256PublicKey::from_components(n, e).map_err(invalid_key)?),
        Algorithm::PS384 => KeyMaterial::PS384(PS384PublicKey::from_components(n, e).map_err(invalid_key)?),
        _ => KeyMaterial::PS512(PS512PublicKey::from_components(n, e).map_err(invalid_key)?),
    };
    Ok(material)
}

fn invalid_key(error: jwt_simple::Error) -> String {
    format!("invalid key: {error}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Test keys from `testdata/` (generated for the tests; never used anywhere else).
    pub const TEST_JWKS: &str = include_str!("../testdata/jwks.json");

    #[test]
    fn algorithm_names_round_trip() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
        }
        assert_eq!(Algorithm::from_name("none"), None);
        assert_eq!(Algorithm::from_name("rs256"), None);
        assert_eq!(Algorithm::from_name("ES512"), None);
    }

    #[test]
    fn test_jwks_gives_one_entry_per_algorithm() {
        let set = KeySet::parse(TEST_JWKS.as_bytes()).unwrap();
        assert!(set.skipped.is_empty(), "{:?}", set.skipped);
        for alg in Algorithm::ALL {
            assert!(set.has_alg(alg), "{alg}");
        }
        // rsa-any has no alg: all six RSA algorithms.
        let rsa_any: Vec<Algorithm> =
            set.keys.iter().filter(|k| k.kid.as_deref() == Some("rsa-any")).map(|k| k.alg).collect();
        assert_eq!(rsa_any, Algorithm::RSA.to_vec());
        // rs256 has alg RS256: only that.
        assert_eq!(set.candidates(Algorithm::RS256, Some("rs256")).count(), 1);
        assert_eq!(set.candidates(Algorithm::PS256, Some("rs256")).count(), 0);
    }

    #[test]
    fn rsa_key_never_verifies_hmac() {
        let set = KeySet::parse(TEST_JWKS.as_bytes()).unwrap();
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            assert_eq!(set.candidates(alg, Some("rs256")).count(), 0);
            assert_eq!(set.candidates(alg, Some("rsa-any")).count(), 0);
        }
    }

    #[test]
    fn kid_selection() {
        let set = KeySet::parse(TEST_JWKS.as_bytes()).unwrap();
        assert!(set.has_kid("es256"));
        assert!(!set.has_kid("../../etc/passwd"));
        assert_eq!(set.candidates(Algorithm::ES256, Some("es256")).count(), 1);
        assert_eq!(set.candidates(Algorithm::ES256, Some("other")).count(), 0);
        // Without kid: every ES256 key.
        assert!(set.candidates(Algorithm::ES256, None).count() >= 1);
    }

    #[test]
    fn unusable_keys_are_skipped_with_reasons() {
        let jwks = br#"{"keys":[
            {"kty":"EC","crv":"secp256k1","x":"AA","y":"AA"},
            {"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","alg":"HS256","n":"AQAB","e":"AQAB"},
            {"kty":"oct","alg":"RS256","k":"c2VjcmV0"},
            {"kty":"oct","k":"!!"},
            {"kty":"oct","k":"c2VjcmV0"},
            {"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"},
            {"kty":"XYZ"},
            {"kid":"no-kty"},
            {"kty":"oct","kid":"hs","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}
        ]}"#;
        let set = KeySet::parse(jwks).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.keys[0].alg, Algorithm::HS256);
        assert_eq!(set.skipped.len(), 9, "{:?}", set.skipped);
        assert!(set.skipped[0].contains("unsupported curve"));
        assert!(set.skipped[1].contains("use"));
        assert!(set.skipped[2].contains("does not fit"));
        assert!(set.skipped[3].contains("does not fit"));
        assert!(set.skipped[4].contains("base64url"));
        assert!(set.skipped[5].contains("shorter than 12 bytes"));
        assert!(set.skipped[6].contains("wrong length"));
        assert!(set.skipped[7].contains("unsupported key type"));
        assert!(set.skipped[8].contains("not a JWK"));
    }

    #[test]
    fn document_errors() {
        assert!(KeySet::parse(b"nope").unwrap_err().contains("not JSON"));
        assert!(KeySet::parse(b"[]").unwrap_err().contains("not a JSON object"));
        assert!(KeySet::parse(b"{}").unwrap_err().contains("no `keys`"));
        assert!(KeySet::parse(br#"{"keys":{}}"#).unwrap_err().contains("not an array"));
        assert!(KeySet::parse(br#"{"keys":[]}"#).unwrap_err().contains("no usable key"));
    }

    #[test]
    fn single_jwk_is_accepted() {
        let set = KeySet::parse(br#"{"kty":"oct","kid":"a","alg":"HS384","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQ"}"#).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.keys[0].alg, Algorithm::HS384);
    }

    #[test]
    fn duplicate_kids_are_all_kept() {
        let jwks = br#"{"keys":[
            {"kty":"oct","kid":"dup","alg":"HS256","k":"b25lLW9uZS1vbmUtb25l"},
            {"kty":"oct","kid":"dup","alg":"HS256","k":"dHdvLXR3by10d28tdHdv"}
        ]}"#;
        let set = KeySet::parse(jwks).unwrap();
        assert_eq!(set.candidates(Algorithm::HS256, Some("dup")).count(), 2);
    }
}
