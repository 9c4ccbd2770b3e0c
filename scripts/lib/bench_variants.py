#!/usr/bin/env python3
"""The variants `scripts/bench` measures in Envoy, and what each is held to.

    bench_variants.py names [SELECTION]            variant names, one per line, in table order
    bench_variants.py bootstrap NAME LISTEN ADMIN OUT   writes NAME's Envoy bootstrap (JSON)
    bench_variants.py meta                          every variant's description and targets (JSON)
    bench_variants.py request                       the bench request's headers, one per line

A variant is a filter chain in front of a `direct_response` route on 127.0.0.1, so variants
differ only in their filters. Each Wasm variant's configuration is the one its fixtures/bench.yaml
case uses, so the harness and Envoy measure the same work. SELECTION is a comma-separated list of
names (BENCH_VARIANTS); `baseline` and the variants a selected one is compared with are added.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JWT_TESTDATA = os.path.join(ROOT, "filters/jwt-auth/testdata")

# The five exact names of header-strip's default set (native header_mutation has no prefixes).
IDENTITY_HEADERS = ["x-user-email", "x-forwarded-groups", "x-tenant-id", "x-forwarded-user", "x-forwarded-email"]


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read().strip()


def bench_token():
    """An RS256 token valid in real time (exp 2100), minted by filters/jwt-auth/testdata/mint.py."""
    return read("filters/jwt-auth/testdata/bench.token")


def bench_jwks():
    return read("filters/jwt-auth/testdata/bench.jwks.json")


def request_headers():
    return [
        "accept: application/json",
        "accept-encoding: gzip, br",
        "user-agent: Mozilla/5.0 (X11; Linux x86_64)",
        f"authorization: Bearer {bench_token()}",
        "x-user-email: mallory@example.com",
    ]


def wasm(name, module, configuration=None):
    config = {"name": name, "vm_config": {
        "vm_id": name,
        "runtime": "envoy.wasm.runtime.v8",
        "code": {"local": {"filename": os.path.join(ROOT, module)}}}}
    if configuration is not None:
        value = configuration if isinstance(configuration, str) else json.dumps(configuration)
        config["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": value}
    return {"name": name, "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", "config": config}}


def filter_module(name, configuration=None):
    return wasm(name, f"target/filters/{name}.wasm", configuration)


def jwt_configuration(cache):
    return {
        "providers": {"bench": {
            "issuer": "https://issuer.example",
            "audiences": ["api.example.com"],
            "local_jwks": {"inline_string": bench_jwks()},
            "claim_to_headers": [{"header_name": "x-user-id", "claim_name": "sub"}],
            "jwt_cache_config": {"jwt_cache_size": 100 if cache else 0},
        }},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
    }


def native_jwt(cache):
    provider = {
        "issuer": "https://issuer.example",
        "audiences": ["api.example.com"],
        "local_jwks": {"inline_string": bench_jwks()},
        "claim_to_headers": [{"header_name": "x-user-id", "claim_name": "sub"}],
    }
    if cache:
        provider["jwt_cache_config"] = {"jwt_cache_size": 100}
    return {"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {"bench": provider},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}]}}


# A bucket that never empties: every variant answers 200, so the cost measured is the check.
NEVER_EMPTY = {"max_tokens": 1_000_000_000, "tokens_per_fill": 1_000_000_000, "fill_interval": "1s"}


def rate_limit_configuration(mode):
    return {"mode": mode, "rules": [{"name": "per-ip", "key": ["remote_address"], **NEVER_EMPTY}]}


def native_rate_limit():
    percent = {"numerator": 100, "denominator": "HUNDRED"}
    return {"name": "envoy.filters.http.local_ratelimit", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "stat_prefix": "bench",
        "token_bucket": NEVER_EMPTY,
        "filter_enabled": {"runtime_key": "bench_rl_enabled", "default_value": percent},
        "filter_enforced": {"runtime_key": "bench_rl_enforced", "default_value": percent}}}


def native_header_mutation():
    return {"name": "envoy.filters.http.header_mutation", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
        "mutations": {"request_mutations": [{"remove": h} for h in IDENTITY_HEADERS]}}}


# name -> description, filters (a function: built lazily, so a missing test file only fails the
# variants that need it), Envoy's own request-ID generation, the counter proving the filter did
# its work on every request, the targets (checked in the report), and the floor: the variant
# doing the least any such filter must do (the report sets the target beside it).
VARIANTS = {
    "baseline": dict(chain="router (`direct_response`)", filters=lambda: []),
    "noop": dict(chain="Wasm no-op → router", filters=lambda: [wasm("noop", "target/test-modules/noop.wasm")]),
    # The floor of any filter that looks at a request: the no-op plus one read of the headers.
    "noop-read-headers": dict(
        chain="Wasm no-op reading the request headers once → router",
        filters=lambda: [wasm("noop", "target/test-modules/noop.wasm", "read-request-headers")]),
    "header-strip": dict(
        chain="Wasm header-strip → router", filters=lambda: [filter_module("header-strip")],
        work="wasmcustom.wasm_shield.header_strip.requests_stripped",
        targets=[{"over": "noop", "max_us": 0.5}], floor="noop-read-headers"),
    "native-mutation": dict(chain="native `header_mutation` → router", filters=lambda: [native_header_mutation()]),
    "request-id": dict(
        chain="Wasm request-id → router", filters=lambda: [filter_module("request-id")],
        work="wasmcustom.wasm_shield.request_id.generated",
        targets=[{"over": "noop", "max_us": 0.5}], floor="noop-read-headers"),
    "native-request-id": dict(
        chain="Envoy's request-ID generation (`generate_request_id`) → router", filters=lambda: [],
        generate_request_id=True),
    "jwt-auth": dict(
        chain="Wasm jwt-auth (RS256, token cache) → router", filters=lambda: [filter_module("jwt-auth", jwt_configuration(True))],
        work="wasmcustom.wasm_shield.jwt_auth.allowed",
        targets=[{"rps_of": "native-jwt", "min_ratio": 0.9}]),
    "native-jwt": dict(
        chain="native `jwt_authn` (RS256, `jwt_cache_config`) → router", filters=lambda: [native_jwt(True)],
        work="http.bench.jwt_authn.allowed"),
    "jwt-auth-cold": dict(
        chain="Wasm jwt-auth (RS256, no cache: verified every time) → router",
        filters=lambda: [filter_module("jwt-auth", jwt_configuration(False))],
        work="wasmcustom.wasm_shield.jwt_auth.allowed",
        targets=[{"cost_of": "native-jwt-cold", "max_ratio": 1.5}]),
    "native-jwt-cold": dict(
        chain="native `jwt_authn` (RS256, no cache) → router", filters=lambda: [native_jwt(False)],
        work="http.bench.jwt_authn.allowed"),
    "rate-limit": dict(
        chain="Wasm rate-limit (local, per IP) → router",
        filters=lambda: [filter_module("rate-limit", rate_limit_configuration("local"))],
        work="wasmcustom.wasm_shield.rate_limit.per-ip.allowed",
        targets=[{"over": "noop", "max_us": 1.0}], floor="noop-read-headers"),
    "rate-limit-shared": dict(
        chain="Wasm rate-limit (shared data, per IP) → router",
        filters=lambda: [filter_module("rate-limit", rate_limit_configuration("shared"))],
        work="wasmcustom.wasm_shield.rate_limit.per-ip.allowed",
        targets=[{"over": "noop", "max_us": 2.0}], floor="noop-read-headers"),
    "native-ratelimit": dict(
        chain="native `local_ratelimit` → router", filters=lambda: [native_rate_limit()],
        work="bench.http_local_rate_limit.ok"),
    "waf": dict(
        chain="Wasm waf (built-in rules, block, PL1) → router",
        filters=lambda: [filter_module("waf", {"mode": "block", "paranoia_level": 1})],
        work="wasmcustom.wasm_shield.waf.requests_inspected"),
}


def selected(selection):
    if not selection:
        return list(VARIANTS)
    wanted = {"baseline", "noop"}
    for name in selection.split(","):
        name = name.strip()
        if name not in VARIANTS:
            sys.exit(f"bench: unknown variant {name!r}; known: {', '.join(VARIANTS)}")
        wanted.add(name)
        for target in VARIANTS[name].get("targets", []):
            wanted.update(v for k, v in target.items() if k in ("over", "rps_of", "cost_of"))
        if "floor" in VARIANTS[name]:
            wanted.add(VARIANTS[name]["floor"])
    return [name for name in VARIANTS if name in wanted]


def bootstrap(name, listen, admin):
    variant = VARIANTS[name]
    router = {"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "bench",
        # Off unless the variant is Envoy's own generation: the request-id filter owns the ID.
        "generate_request_id": variant.get("generate_request_id", False),
        # Envoy's own ID is echoed to the client as request-id's is (its default).
        "always_set_request_id_in_response": variant.get("generate_request_id", False),
        "route_config": {"virtual_hosts": [{"name": "api", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}]}]},
        "http_filters": variant["filters"]() + [router],
    }
    return {
        "static_resources": {"listeners": [{
            "name": "public",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": int(listen)}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                             "typed_config": hcm}]}]}]},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": int(admin)}}},
    }


def main(argv):
    command = argv[1] if len(argv) > 1 else ""
    if command == "names":
        print("\n".join(selected(argv[2] if len(argv) > 2 else "")))
    elif command == "bootstrap" and len(argv) == 6:
        name, listen, admin, out = argv[2:]
        with open(out, "w") as f:
            json.dump(bootstrap(name, listen, admin), f, indent=2)
    elif command == "meta":
        print(json.dumps({name: {k: v for k, v in variant.items() if k != "filters"}
                          for name, variant in VARIANTS.items()}, indent=2))
    elif command == "request":
        print("\n".join(request_headers()))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
