//! Times RS256 verification (digest, `s^e mod n`, compare) with the benchmark fixture's
//! 2048-bit key and token, natively or in a Wasm engine:
//!
//! ```text
//! cargo run --release -p jwt-auth --example rs256_timing
//! cargo build --release --target wasm32-wasip1 -p jwt-auth --example rs256_timing
//! node --no-warnings filters/jwt-auth/examples/run_wasi.mjs $CARGO_TARGET_DIR/wasm32-wasip1/release/examples/rs256_timing.wasm
//! ```
//!
//! Prints the best of several batches: the machine is shared, the minimum is the least noisy.

use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use jwt_auth::rsa_pkcs1::{Digest, RsaPublicKey};

/// The `n` of the JWK in fixtures/bench.yaml (e = 65537).
const MODULUS: &str = "jdnxIpl7R02DZhpo-CU9j6w6YmO9sVZ0Cyph395XnHOimsKcedEJV3LG0x67Lc9CL8gkbIyOprAPNhExsGx0by7-8S9BIdmpDolnb68c7zt4JV3MLZMhfwh2XfEkAJRePcfiClAyVXb-s0-eN8bJIQGOoVtmPgpTGilkP7DDMt8q5fMWivCqfWCu4J9H8aRo8F2UFVMvAdVxjnaLpfhDSwknCEFR94Zjo0Pr_evVz-R1RzAM4y9vfB9hPg9iDowWoLPk-nuDO5yFyA2LsAapcH6G_PgZUYh0BdowRJN3wH3IaWmlkZ7r5Z-eppqaAZi2z2b-xMDRSlQ81IH9ShU2rw";
/// The bearer token of fixtures/bench.yaml.
const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzMjU2In0.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwic3ViIjoidXNlci0xIiwiYXVkIjoiYXBpLmV4YW1wbGUuY29tIiwiaWF0IjoxNzM1Njg5NjAwLCJleHAiOjQxMDI0NDQ4MDAsImVtYWlsIjoidXNlci0xQGV4YW1wbGUuY29tIiwiYWRtaW4iOnRydWUsImxldmVsIjozLCJyZWFsbSI6eyJyb2xlcyI6WyJyZWFkZXIiLCJ3cml0ZXIiXX19.eXXTREvd7wuc_rrIfdizWaJpX_Lp6b7fkzIGGw2gAgV3qxAHMk0MNRsZodCv34t_SxsfLUrICqeTigN-wJyN4iaJFaUiwedwK_yZolBsu4fPbSTREZm26cihNYBJWSQhj6GlXZg32GBFUXhEbVwvUqBulOKRwdJEdkBvlKtEPOrrTE0MPwQ_eb016dC5iMNOfvJ1imfearlSTpxGxUPbl7qCdZ9P3xke1hxmT1SNPPvb169KSdl4cUNtefIS2xysdHMu1_jj69btYi63N5SzZ1a1qBHInc7K7poHnqwSJEtx523orMmqKCZdpQ6tWYe_onhBOC7KV45JfnmCjz_U2g";

fn main() -> Result<(), String> {
    let decode = |text: &str| Base64UrlSafeNoPadding::decode_to_vec(text, None).map_err(|e| e.to_string());
    let key = RsaPublicKey::new(&decode(MODULUS)?, &[1, 0, 1])?;
    let (input, signature) = TOKEN.rsplit_once('.').ok_or("token without signature")?;
    let signature = decode(signature)?;
    let (batches, rounds) = (15, 200);
    let mut best = f64::INFINITY;
    for _ in 0..batches {
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            if !key.verify(Digest::Sha256, std::hint::black_box(input.as_bytes()), &signature) {
                return Err("the benchmark token does not verify".into());
            }
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds));
    }
    println!("RS256 verify: {best:.1} µs (best of {batches} batches of {rounds})");
    Ok(())
}
