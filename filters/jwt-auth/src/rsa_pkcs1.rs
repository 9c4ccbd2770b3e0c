//! RSASSA-PKCS1-v1_5 verification (RS256/384/512) with 32-bit Montgomery arithmetic.
//!
//! Why not jwt-simple's RSA here: its pure-Rust backend (the `rsa` crate on `num-bigint-dig`
//! with 64-bit digits) needs 128-bit multiplications that Wasm emulates, and a windowed
//! exponentiation meant for private keys: about 1.2 ms per RS256 verification in Envoy's V8.
//! Verification only needs `s^e mod n` with a small public `e` (16 Montgomery squarings and 1
//! multiplication for 65537, see [`crate::montgomery`]), and 32×32→64-bit products are native
//! Wasm instructions.
//!
//! The check is "encode and compare" (RFC 8017 §8.2.2): the expected encoded message is built
//! from the digest and compared byte for byte with `s^e mod n`, so nothing in the signature is
//! parsed. Only public data is involved: no constant-time requirement.

use hmac_sha256::Hash as Sha256;
use hmac_sha512::Hash as Sha512;
use hmac_sha512::sha384::Hash as Sha384;

use crate::montgomery::{LIMB_BITS, Modulus};

/// Smallest modulus accepted, in bits (as jwt-simple's policy).
pub const MIN_MODULUS_BITS: usize = 2048;
/// Largest modulus accepted, in bits.
pub const MAX_MODULUS_BITS: usize = 8192;

/// The digest of an RS* algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    /// RS256.
    Sha256,
    /// RS384.
    Sha384,
    /// RS512.
    Sha512,
}

impl Digest {
    /// DER `DigestInfo` prefix (RFC 8017 §9.2 note 1) and the digest of `message`.
    fn digest_info(self, message: &[u8]) -> (&'static [u8], Vec<u8>) {
        match self {
            Self::Sha256 => (
                &[
                    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
                    0x00, 0x04, 0x20,
                ],
                Sha256::hash(message).to_vec(),
            ),
            Self::Sha384 => (
                &[
                    0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05,
                    0x00, 0x04, 0x30,
                ],
                Sha384::hash(message).to_vec(),
            ),
            Self::Sha512 => (
                &[
                    0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05,
                    0x00, 0x04, 0x40,
                ],
                Sha512::hash(message).to_vec(),
            ),
        }
    }
}

/// An RSA public key prepared for Montgomery exponentiation.
#[derive(Clone, PartialEq, Eq)]
pub struct RsaPublicKey {
    /// Modulus with its Montgomery constants (computed once per key, at JWKS load).
    modulus: Modulus,
    /// Modulus, big-endian without leading zeros: `s < n` is checked on the signature's bytes.
    n_bytes: Vec<u8>,
    /// Public exponent.
    e: u32,
    /// Modulus length in bytes (the signature length).
    size: usize,
}

impl std::fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaPublicKey({} bits, e={})", self.size * 8, self.e)
    }
}

impl RsaPublicKey {
    /// From the big-endian modulus and exponent (JWK `n`, `e`).
    pub fn new(n: &[u8], e: &[u8]) -> Result<Self, String> {
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        let bits = n.len() * 8 - n.first().map_or(8, |top| top.leading_zeros() as usize);
        if !(MIN_MODULUS_BITS..=MAX_MODULUS_BITS).contains(&bits) {
            return Err(format!("RSA modulus of {bits} bits: {MIN_MODULUS_BITS} to {MAX_MODULUS_BITS} accepted"));
        }
        if n.last().is_none_or(|low| low & 1 == 0) {
            return Err("RSA modulus is even".into());
        }
        if e.is_empty() || e.len() > 4 {
            return Err("RSA exponent must be 3 to 2^32-1".into());
        }
        let e = e.iter().fold(0u32, |acc, byte| (acc << 8) | u32::from(*byte));
        if e < 3 || e & 1 == 0 {
            return Err("RSA exponent must be odd and at least 3".into());
        }
        // Leading zeros stripped and odd: the top limb is non-zero, as `Modulus` requires.
        let limbs = bits.div_ceil(LIMB_BITS as usize);
        let modulus = Modulus::new(from_be_bytes(n, limbs)).ok_or("RSA modulus is malformed")?;
        Ok(Self { modulus, n_bytes: n.to_vec(), e, size: n.len() })
    }

    /// Whether `signature` is a valid RSASSA-PKCS1-v1_5 signature of `message` with `digest`.
    pub fn verify(&self, digest: Digest, message: &[u8], signature: &[u8]) -> bool {
        if signature.len() != self.size {
            return false;
        }
        // Same length, big-endian: byte order is numeric order. Below n, s fits the modulus' limbs.
        if signature >= self.n_bytes.as_slice() {
            return false;
        }
        let s = from_be_bytes(signature, self.modulus.limbs());
        let m = self.public_op(&s);
        let em = to_be_bytes(&m, self.size);
        let (prefix, hash) = digest.digest_info(message);
        let t_len = prefix.len() + hash.len();
        let Some(padding) = self.size.checked_sub(t_len + 3) else { return false };
        if padding < 8 {
            return false;
        }
        let mut expected = Vec::with_capacity(self.size);
        expected.extend_from_slice(&[0x00, 0x01]);
        expected.resize(2 + padding, 0xff);
        expected.push(0x00);
        expected.extend_from_slice(prefix);
        expected.extend_from_slice(&hash);
        em == expected
    }

    /// `s^e mod n` for `s < n` by left-to-right square and multiply in Montgomery form. The
    /// exponent is odd (checked in [`Self::new`]), so the last step is a multiplication: by `s`
    /// itself rather than its Montgomery form, which leaves the result out of Montgomery form
    /// without a separate conversion (x·R · s · R⁻¹ = x·s).
    fn public_op(&self, s: &[u64]) -> Vec<u64> {
        let modulus = &self.modulus;
        let k = modulus.limbs();
        let mut scratch = modulus.scratch();
        let mut s_mont = vec![0u64; k];
        modulus.to_montgomery(&mut s_mont, s, &mut scratch);
        let mut acc = s_mont.clone();
        let mut next = vec![0u64; k];
        let top = 31 - self.e.leading_zeros();
        for bit in (1..top).rev() {
            modulus.square_into(&mut next, &acc, &mut scratch);
            std::mem::swap(&mut acc, &mut next);
            if (self.e >> bit) & 1 == 1 {
                modulus.mul_into(&mut next, &acc, &s_mont, &mut scratch);
                std::mem::swap(&mut acc, &mut next);
            }
        }
        // Bit 0, set: square, then multiply by `s` in normal form.
        modulus.square_into(&mut next, &acc, &mut scratch);
        modulus.mul_into(&mut acc, &next, s, &mut scratch);
        acc
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

/// Big-endian bytes → `limbs` little-endian limbs of [`LIMB_BITS`] bits (zero-extended; bits
/// beyond `limbs` limbs are dropped, callers pass values that fit).
fn from_be_bytes(bytes: &[u8], limbs: usize) -> Vec<u64> {
    let mut out = vec![0u64; limbs];
    let mut slots = out.iter_mut();
    // Bits read but not yet stored in a limb, and how many.
    let (mut pending, mut pending_bits) = (0u64, 0u32);
    for byte in bytes.iter().rev() {
        pending |= u64::from(*byte) << pending_bits;
        pending_bits += 8;
        if pending_bits >= LIMB_BITS {
            if let Some(limb) = slots.next() {
                *limb = pending & ((1 << LIMB_BITS) - 1);
            }
            pending >>= LIMB_BITS;
            pending_bits -= LIMB_BITS;
        }
    }
    if let Some(limb) = slots.next() {
        *limb = pending;
    }
    out
}

/// Little-endian limbs of [`LIMB_BITS`] bits → `size` big-endian bytes (higher bits dropped).
fn to_be_bytes(limbs: &[u64], size: usize) -> Vec<u8> {
    let mut out = vec![0u8; size];
    let mut limbs = limbs.iter();
    let (mut pending, mut pending_bits) = (0u64, 0u32);
    for byte in out.iter_mut().rev() {
        if pending_bits < 8 {
            pending |= limbs.next().copied().unwrap_or(0) << pending_bits;
            pending_bits += LIMB_BITS;
        }
        *byte = pending as u8;
        pending >>= 8;
        pending_bits -= 8;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::tests::TEST_JWKS;
    use crate::verify::tests::unit_token;
    use ct_codecs::{Base64UrlSafeNoPadding, Decoder};

    fn b64(text: &str) -> Vec<u8> {
        Base64UrlSafeNoPadding::decode_to_vec(text, None).unwrap()
    }

    fn test_key() -> RsaPublicKey {
        let jwks: serde_json::Value = serde_json::from_str(TEST_JWKS).unwrap();
        let key = &jwks["keys"][0];
        assert_eq!(key["kid"], "rs256");
        RsaPublicKey::new(&b64(key["n"].as_str().unwrap()), &b64(key["e"].as_str().unwrap())).unwrap()
    }

    fn split(token: &str) -> (&str, Vec<u8>) {
        let dot = token.rfind('.').unwrap();
        (&token[..dot], b64(&token[dot + 1..]))
    }

    #[test]
    fn verifies_rs256_384_512() {
        let key = test_key();
        for (name, digest) in
            [("valid_RS256", Digest::Sha256), ("valid_RS384", Digest::Sha384), ("valid_RS512", Digest::Sha512)]
        {
            let token = unit_token(name);
            let (input, signature) = split(&token);
            assert!(key.verify(digest, input.as_bytes(), &signature), "{name}");
            // The wrong digest, a changed message, a changed signature: refused.
            let other = if digest == Digest::Sha256 { Digest::Sha512 } else { Digest::Sha256 };
            assert!(!key.verify(other, input.as_bytes(), &signature), "{name}");
            assert!(!key.verify(digest, format!("{input}x").as_bytes(), &signature), "{name}");
            let mut flipped = signature.clone();
            flipped[10] ^= 1;
            assert!(!key.verify(digest, input.as_bytes(), &flipped), "{name}");
        }
    }

    #[test]
    fn refuses_other_keys_signatures_and_bad_lengths() {
        let key = test_key();
        let other = unit_token("bad_signature");
        let (input, signature) = split(&other);
        assert!(!key.verify(Digest::Sha256, input.as_bytes(), &signature));
        assert!(!key.verify(Digest::Sha256, input.as_bytes(), &signature[1..]));
        assert!(!key.verify(Digest::Sha256, input.as_bytes(), &[]));
        // s >= n is refused before any arithmetic.
        assert!(!key.verify(Digest::Sha256, input.as_bytes(), &vec![0xff; signature.len()]));
        // PSS signatures are not PKCS#1 v1.5 signatures.
        let pss = unit_token("valid_PS256");
        let (input, signature) = split(&pss);
        assert!(!key.verify(Digest::Sha256, input.as_bytes(), &signature));
    }

    #[test]
    fn key_policy() {
        let small = [0xc1u8; 128]; // 1024 bits
        assert!(RsaPublicKey::new(&small, &[1, 0, 1]).unwrap_err().contains("1024 bits"));
        let mut even = [0xc1u8; 256];
        even[255] = 0x02;
        assert!(RsaPublicKey::new(&even, &[1, 0, 1]).unwrap_err().contains("even"));
        let odd = [0xc1u8; 256];
        assert!(RsaPublicKey::new(&odd, &[2]).is_err());
        assert!(RsaPublicKey::new(&odd, &[1]).is_err());
        assert!(RsaPublicKey::new(&odd, &[1, 0, 0, 0, 1]).is_err());
        assert!(RsaPublicKey::new(&odd, &[0, 0, 1, 0, 1]).is_ok(), "leading zeros are ignored");
    }

    #[test]
    fn byte_conversions() {
        assert_eq!(to_be_bytes(&from_be_bytes(&[1, 2, 3, 4, 5], 2), 5), vec![1, 2, 3, 4, 5]);
        assert_eq!(from_be_bytes(&[1, 2, 3, 4, 5], 2), vec![0x0203_0405 & 0x7ff_ffff, 0x0102 >> 3]);
        let bytes: Vec<u8> = (1..=255).collect();
        assert_eq!(to_be_bytes(&from_be_bytes(&bytes, 76), 255), bytes);
    }

    /// The fast verifier and jwt-simple's must agree on every signature: originals of both test
    /// keys and all three digests accepted, and every mutant (a bit flipped at positions spread
    /// over the signature, a truncated or extended signature, another message's signature)
    /// judged the same way by both.
    #[test]
    fn agrees_with_jwt_simple_on_originals_and_mutants() {
        use ct_codecs::Encoder;
        use jwt_simple::prelude::*;

        fn check<K: RSAKeyPairLike, P: RSAPublicKeyLike>(pair: &K, public: &P, digest: Digest) {
            let components = public.public_key().to_components();
            let ours = RsaPublicKey::new(&components.n, &components.e).unwrap();
            let tokens: Vec<String> = (0..3)
                .map(|i| pair.sign(Claims::create(Duration::from_hours(1)).with_subject(format!("user-{i}"))).unwrap())
                .collect();
            let mut judged = 0;
            for (index, token) in tokens.iter().enumerate() {
                let (input, signature) = split(token);
                let mut candidates = vec![(signature.clone(), true)];
                for position in (0..signature.len()).step_by(7) {
                    let mut flipped = signature.clone();
                    flipped[position] ^= 1 << (position % 8);
                    candidates.push((flipped, false));
                }
                candidates.push((signature[..signature.len() - 1].to_vec(), false));
                candidates.push(([signature.as_slice(), &[0]].concat(), false));
                candidates.push((split(&tokens[(index + 1) % tokens.len()]).1, false));
                for (candidate, expected) in candidates {
                    let rebuilt = format!("{input}.{}", Base64UrlSafeNoPadding::encode_to_string(&candidate).unwrap());
                    let theirs = public.verify_token::<NoCustomClaims>(&rebuilt, None).is_ok();
                    let mine = ours.verify(digest, input.as_bytes(), &candidate);
                    assert_eq!(mine, theirs, "{digest:?}: ours and jwt-simple disagree");
                    assert_eq!(mine, expected, "{digest:?}: unexpected verdict");
                    judged += 1;
                }
            }
            assert!(judged > 100);
        }

        for pem in ["rsa-a.pem", "rsa-b.pem"] {
            let path = format!("{}/testdata/keys/{pem}", env!("CARGO_MANIFEST_DIR"));
            let pem = std::fs::read_to_string(path).unwrap();
            let pair = RS256KeyPair::from_pem(&pem).unwrap();
            check(&pair, &pair.public_key(), Digest::Sha256);
            let pair = RS384KeyPair::from_pem(&pem).unwrap();
            check(&pair, &pair.public_key(), Digest::Sha384);
            let pair = RS512KeyPair::from_pem(&pem).unwrap();
            check(&pair, &pair.public_key(), Digest::Sha512);
        }
    }
}
