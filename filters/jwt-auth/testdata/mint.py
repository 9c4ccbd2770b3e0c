#!/usr/bin/env python3
"""Test keys and tokens for jwt-auth. TEST DATA ONLY: these keys protect nothing.

    python3 filters/jwt-auth/testdata/mint.py          # keys (if missing), JWKS files, unit-tokens.json
    python3 filters/jwt-auth/testdata/gen_fixtures.py  # then the fixture files that embed tokens

Needs the Python `cryptography` package. Keys are generated once into testdata/keys/ and kept
in the repository so the tokens in the fixtures stay verifiable; delete a key to rotate it
(then rerun both scripts).
"""

import base64
import hashlib
import hmac
import json
import os
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HERE = os.path.dirname(os.path.abspath(__file__))
KEYS = os.path.join(HERE, "keys")

# The harness clock default (2026-01-01T00:00:00Z) for unit tokens.
NOW = 1767225600
# Tokens that must also pass in real Envoy (real clock): issued 2025-01-01, expiring 2100-01-01.
ISSUED_2025 = 1735689600
EXP_2100 = 4102444800

ISSUER = "https://issuer.example"
# HMAC secret (test only): the `oct` key of the JWKS.
HMAC_SECRET = b"test-only-hmac-secret-not-for-production"

HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
HASHLIB = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def load_or_create(name, create):
    path = os.path.join(KEYS, name + ".pem")
    if os.path.exists(path):
        with open(path, "rb") as f:
            return serialization.load_pem_private_key(f.read(), password=None)
    key = create()
    os.makedirs(KEYS, exist_ok=True)
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return key


def keys():
    return {
        "rsa-a": load_or_create("rsa-a", lambda: rsa.generate_private_key(65537, 2048)),
        "rsa-b": load_or_create("rsa-b", lambda: rsa.generate_private_key(65537, 2048)),
        "ec256": load_or_create("ec256", lambda: ec.generate_private_key(ec.SECP256R1())),
        "ec384": load_or_create("ec384", lambda: ec.generate_private_key(ec.SECP384R1())),
        "ed25519": load_or_create("ed25519", ed25519.Ed25519PrivateKey.generate),
    }


def int_b64(value: int) -> str:
    return b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def rsa_jwk(key, kid, alg=None):
    numbers = key.public_key().public_numbers()
    jwk = {"kty": "RSA", "kid": kid, "use": "sig", "n": int_b64(numbers.n), "e": int_b64(numbers.e)}
    if alg:
        jwk["alg"] = alg
    return jwk


def ec_jwk(key, kid, crv, size, alg):
    numbers = key.public_key().public_numbers()
    return {"kty": "EC", "kid": kid, "crv": crv, "alg": alg,
            "x": b64(numbers.x.to_bytes(size, "big")), "y": b64(numbers.y.to_bytes(size, "big"))}


def ed_jwk(key, kid):
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "kid": kid, "crv": "Ed25519", "alg": "EdDSA", "x": b64(raw)}


def jwks_sets(k):
    main = {"keys": [
        rsa_jwk(k["rsa-a"], "rs256", "RS256"),
        rsa_jwk(k["rsa-a"], "rsa-any"),
        ec_jwk(k["ec256"], "es256", "P-256", 32, "ES256"),
        ec_jwk(k["ec384"], "es384", "P-384", 48, "ES384"),
        ed_jwk(k["ed25519"], "ed25519"),
        {"kty": "oct", "kid": "hs", "k": b64(HMAC_SECRET)},
        # Two keys with one kid: the first does not verify tokens signed with rsa-a.
        rsa_jwk(k["rsa-b"], "dup", "RS256"),
        rsa_jwk(k["rsa-a"], "dup", "RS256"),
    ]}
    rotated = {"keys": [rsa_jwk(k["rsa-a"], "rs256", "RS256"), rsa_jwk(k["rsa-b"], "k2", "RS256")]}
    remote_v1 = {"keys": [rsa_jwk(k["rsa-a"], "rs256", "RS256")]}
    remote_v2 = {"keys": [rsa_jwk(k["rsa-a"], "rs256", "RS256"), rsa_jwk(k["rsa-b"], "k2", "RS256")]}
    return main, rotated, remote_v1, remote_v2


def sign(k, alg, signing_input: bytes) -> bytes:
    bits = alg[2:]
    if alg.startswith("RS"):
        return k["rsa-a"].sign(signing_input, padding.PKCS1v15(), HASHES[bits]())
    if alg.startswith("PS"):
        pss = padding.PSS(mgf=padding.MGF1(HASHES[bits]()), salt_length=HASHES[bits].digest_size)
        return k["rsa-a"].sign(signing_input, pss, HASHES[bits]())
    if alg in ("ES256", "ES384"):
        key, size = (k["ec256"], 32) if alg == "ES256" else (k["ec384"], 48)
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(HASHES[bits]())))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg == "EdDSA":
        return k["ed25519"].sign(signing_input)
    if alg.startswith("HS"):
        return hmac.new(HMAC_SECRET, signing_input, HASHLIB[bits]).digest()
    raise ValueError(alg)


def mint(k, alg, claims, kid=None, header=None, signer=None, key_name=None):
    """A compact JWS. `header` replaces the default header; `signer` overrides the signature;
    `key_name` signs RS256 with another RSA key."""
    if header is None:
        header = {"alg": alg, "typ": "JWT"}
        if kid is not None:
            header["kid"] = kid
    payload = claims if isinstance(claims, str) else b64json(claims)
    signing_input = f"{b64json(header)}.{payload}".encode()
    if signer is not None:
        signature = signer(signing_input)
    elif key_name is not None:
        signature = k[key_name].sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = sign(k, alg, signing_input)
    return f"{signing_input.decode()}.{b64(signature)}"


KID_FOR = {"RS256": "rs256", "RS384": "rsa-any", "RS512": "rsa-any", "PS256": "rsa-any", "PS384": "rsa-any",
           "PS512": "rsa-any", "ES256": "es256", "ES384": "es384", "EdDSA": "ed25519", "HS256": "hs",
           "HS384": "hs", "HS512": "hs"}
ALGS = list(KID_FOR)


def claims(iat, exp, **extra):
    base = {"iss": ISSUER, "sub": "user-1", "aud": "api", "iat": iat, "exp": exp,
            "email": "user-1@example.com", "admin": True, "level": 3,
            "realm": {"roles": ["reader", "writer"]}}
    base.update(extra)
    return {key: value for key, value in base.items() if value is not None}


def hs256_with_rsa_public_key(k):
    """The classic confusion: HS256 keyed with the RSA public key's PEM bytes."""
    pem = k["rsa-a"].public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return lambda signing_input: hmac.new(pem, signing_input, hashlib.sha256).digest()


def unit_tokens(k):
    now_claims = claims(NOW, NOW + 3600)
    tokens = {f"valid_{alg}": mint(k, alg, now_claims, KID_FOR[alg]) for alg in ALGS}
    tokens.update({
        "no_kid_RS256": mint(k, "RS256", now_claims),
        "hs256_signed_with_rsa_public_key": mint(k, "HS256", now_claims, "rs256", signer=hs256_with_rsa_public_key(k)),
        "alg_none": mint(k, "none", now_claims, header={"alg": "none"}, signer=lambda _: b""),
        "rs256_kid_with_es256_alg": mint(k, "ES256", now_claims, "rs256"),
        "bad_signature": mint(k, "RS256", now_claims, "rs256", key_name="rsa-b"),
        "tampered_payload": tamper(mint(k, "RS256", now_claims, "rs256")),
        "unknown_kid": mint(k, "RS256", now_claims, "nope"),
        "kid_path_traversal": mint(k, "RS256", now_claims, "../../etc/passwd"),
        "exp_now": mint(k, "RS256", claims(NOW - 600, NOW), "rs256"),
        "nbf_in_2_minutes": mint(k, "RS256", claims(NOW, NOW + 3600, nbf=NOW + 120), "rs256"),
        "no_exp": mint(k, "RS256", claims(NOW, None), "rs256"),
        "wrong_issuer": mint(k, "RS256", claims(NOW, NOW + 3600, iss="https://evil.example"), "rs256"),
        "long_lived": mint(k, "RS256", claims(NOW, NOW + 86400), "rs256"),
        "expired": mint(k, "RS256", claims(NOW - 7200, NOW - 3600), "rs256"),
        "duplicate_kid_second_key": mint(k, "RS256", now_claims, "dup"),
        "valid_other_issuer": mint(k, "RS256", claims(NOW, NOW + 3600, iss="https://other.example"), "rs256"),
    })
    return tokens


def tamper(token):
    header, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["sub"] = "admin"
    return f"{header}.{b64json(data)}.{signature}"


def bench_files(k):
    """What scripts/bench (scripts/lib/bench_variants.py) and fixtures/bench.yaml use: the RS256 key
    alone as a JWKS, and a token for it valid in real time (issued 2025, expiring 2100)."""
    jwks = {"keys": [rsa_jwk(k["rsa-a"], "rs256", "RS256")]}
    token = mint(k, "RS256", claims(ISSUED_2025, EXP_2100, aud="api.example.com"), "rs256")
    return jwks, token


def write_text(name, text):
    with open(os.path.join(HERE, name), "w") as f:
        f.write(text + "\n")


def write_json(name, value):
    with open(os.path.join(HERE, name), "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


def main():
    k = keys()
    main_set, rotated, remote_v1, remote_v2 = jwks_sets(k)
    write_json("jwks.json", main_set)
    write_json("jwks-rotated.json", rotated)
    write_json("jwks-remote-v1.json", remote_v1)
    write_json("jwks-remote-v2.json", remote_v2)
    write_json("unit-tokens.json", unit_tokens(k))
    bench_jwks, bench_token = bench_files(k)
    write_text("bench.jwks.json", json.dumps(bench_jwks, separators=(",", ":")))
    write_text("bench.token", bench_token)
    print("wrote testdata/jwks*.json, unit-tokens.json, bench.jwks.json, bench.token", file=sys.stderr)


if __name__ == "__main__":
    main()
