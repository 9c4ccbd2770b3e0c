#!/usr/bin/env python3
"""The variants `scripts/bench` measures, the requests it sends, and what each is held to.

    bench_variants.py cases [SELECTION]              what to measure: "run CASE VARIANT REQUEST" lines in
                                                     table order, and "skip VARIANT REASON" lines
    bench_variants.py server VARIANT                 envoy or nginx
    bench_variants.py bootstrap NAME LISTEN ADMIN SINK OUT   writes NAME's Envoy bootstrap (JSON); SINK: the
                                                     port of its second listener, where POSTs are proxied
    bench_variants.py nginx NAME LISTEN BACKEND DIR  writes NAME's nginx.conf (and ModSecurity's) in DIR
    bench_variants.py lua REQUEST OUT                writes the wrk script sending REQUEST
    bench_variants.py probe VARIANT PORT REQUEST...  one of each request must pass (and an attack be blocked)
    bench_variants.py harness [SELECTION] DIR        the harness subjects: "KEY FIXTURE CASE-NAME" lines
                                                     (fixtures for chains and waf-crs generated in DIR)
    bench_variants.py meta                           every variant's and request's description (JSON)
    bench_variants.py describe REQUEST               one line saying what REQUEST is (for the report)
    bench_variants.py module FILTER                  the path of FILTER's module (JSON string)

A variant is one server: an Envoy whose filter chain sits in front of a `direct_response` route on
127.0.0.1 (so Envoy variants differ only in their filters), or an nginx proxying to a second nginx
server on 127.0.0.1 (so ModSecurity inspects the arguments and body of every request). A case is a
variant loaded with one request: `api` (the API GET with a bearer token every filter variant
gets), `get` and `post` (the benign browser GET and 2 KB form POST of filters/waf/fixtures/bench.yaml,
which the WAF variants and nginx get). A case is named after its variant, with `@get` or `@post`.

Each Wasm variant's configuration is the one its fixtures/bench.yaml case uses, so the harness and
Envoy measure the same work. SELECTION is a comma-separated list of names (BENCH_VARIANTS);
`baseline`, `noop` and the variants a selected one is compared with are added. A variant whose
module, server or rule set is missing is skipped with its reason.
"""

import http.client
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WAF_FIXTURE = os.path.join(ROOT, "filters/waf/fixtures/bench.yaml")
# Debian's package libnginx-mod-http-modsecurity (ModSecurity v3 through its nginx connector).
MODSECURITY_MODULE = os.environ.get("NGINX_MODSECURITY_MODULE", "/usr/lib/nginx/modules/ngx_http_modsecurity_module.so")

# The five exact names of header-strip's default set (native header_mutation has no prefixes).
IDENTITY_HEADERS = ["x-user-email", "x-forwarded-groups", "x-tenant-id", "x-forwarded-user", "x-forwarded-email"]


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read().strip()


def crs_dir():
    """OWASP CRS v4 (never copied into the repository): $CRS_DIR, default ../shared/crs."""
    return os.path.abspath(os.environ.get("CRS_DIR") or os.path.join(ROOT, "..", "shared", "crs"))


def bench_token():
    """An RS256 token valid in real time (exp 2100), minted by filters/jwt-auth/testdata/mint.py."""
    return read("filters/jwt-auth/testdata/bench.token")


def bench_jwks():
    return read("filters/jwt-auth/testdata/bench.jwks.json")


# ---- requests -------------------------------------------------------------------------------


def api_request():
    """A typical API request (as in filters/*/fixtures/bench.yaml): a valid RS256 bearer token and
    one spoofable identity header."""
    return dict(method="GET", path="/api/orders?page=2", authority="api.example.com", body="", headers=[
        ("accept", "application/json"),
        ("accept-encoding", "gzip, br"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64)"),
        ("authorization", f"Bearer {bench_token()}"),
        ("x-user-email", "mallory@example.com"),
    ])


def waf_cases():
    try:
        import yaml
    except ImportError:
        sys.exit("bench: PyYAML is required to read filters/waf/fixtures/bench.yaml (apt-get install python3-yaml)")
    with open(WAF_FIXTURE) as f:
        return [c for c in yaml.safe_load_all(f) if c]


def waf_request(kind):
    """The request of filters/waf/fixtures/bench.yaml's first case of that kind: the harness and
    Envoy send the same bytes."""
    for case in waf_cases():
        first = next((s for s in case.get("steps", []) if "request" in s), None)
        if first is None:
            continue
        step = first["request"]
        method = step.get("method", "GET")
        body = step.get("body") or ""
        # An attack is a case whose request the filter answers itself (a block).
        attack = bool((first.get("expect") or {}).get("local_reply"))
        if (kind == "get" and method == "GET" and not attack) or (kind == "post" and method == "POST" and not attack) \
                or (kind == "attack" and attack):
            headers = step.get("headers") or {}
            pairs = headers.items() if isinstance(headers, dict) else [tuple(p) for p in headers]
            return dict(method=method, path=step.get("path", "/"), authority=step.get("authority", "example.com"),
                        headers=[(str(k), str(v)) for k, v in pairs], body=body if isinstance(body, str) else "".join(body),
                        case=case["name"])
    sys.exit(f"bench: {WAF_FIXTURE} has no {kind} case")


REQUESTS = {
    "api": dict(label="API GET with a bearer token", load=api_request),
    "get": dict(label="benign browser GET (5 query arguments, browser headers, a cookie)", load=lambda: waf_request("get")),
    "post": dict(label="benign 2 KB form POST (18 urlencoded fields)", load=lambda: waf_request("post")),
    "attack": dict(label="SQL injection GET (only sent once, to check a WAF blocks)", load=lambda: waf_request("attack")),
    "attack-post": dict(label="the form POST with an SQL injection in a field (sent once: a WAF must read bodies)",
                        load=lambda: attack_post()),
}


def attack_post():
    request = waf_request("post")
    field = "q=1%27%20UNION%20SELECT%20password%20FROM%20users--"
    return {**request, "body": f"{field}&{request['body']}"}


def describe(kind):
    request = REQUESTS[kind]["load"]()
    names = ", ".join(name for name, _ in request["headers"])
    body = f", a {len(request['body'].encode()):,}-byte body" if request["body"] else ""
    return f"`{request['method']} {request['path'][:80]}{'…' if len(request['path']) > 80 else ''}` ({names}{body})"


def lua_string(text):
    out = []
    for byte in text.encode():
        char = chr(byte)
        if char in '"\\' or byte < 0x20 or byte > 0x7e:
            out.append(f"\\{byte:03d}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def wrk_lua(kind):
    """A static request: wrk formats it once (no per-request Lua)."""
    request = REQUESTS[kind]["load"]()
    lines = [f"-- {REQUESTS[kind]['label']} (scripts/lib/bench_variants.py lua {kind})",
             f"wrk.method = {lua_string(request['method'])}",
             f"wrk.path = {lua_string(request['path'])}",
             f"wrk.headers[\"Host\"] = {lua_string(request['authority'])}"]
    lines += [f"wrk.headers[{lua_string(name)}] = {lua_string(value)}" for name, value in request["headers"]]
    if request["body"]:
        lines.append(f"wrk.body = {lua_string(request['body'])}")
    return "\n".join(lines) + "\n"


# ---- Envoy filters --------------------------------------------------------------------------


def wasm(name, module, configuration=None, vm_id=None):
    config = {"name": name, "vm_config": {
        "vm_id": vm_id or name,
        "runtime": "envoy.wasm.runtime.v8",
        "code": {"local": {"filename": os.path.abspath(os.path.join(ROOT, module))}}}}
    if configuration is not None:
        value = configuration if isinstance(configuration, str) else json.dumps(configuration)
        config["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": value}
    return {"name": name, "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", "config": config}}


def module_path(name):
    """A filter module: NAME.wasm in the first directory of $BENCH_MODULES (a developer's own
    builds, separated by `:`) that has it, else in target/filters."""
    for directory in [d for d in os.environ.get("BENCH_MODULES", "").split(":") if d]:
        path = os.path.join(directory, f"{name}.wasm")
        if os.path.exists(os.path.join(ROOT, path)):
            return path
    return f"target/filters/{name}.wasm"


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


WAF_CONFIG = {"mode": "block", "paranoia_level": 1}
# waf-crs: the same engine with OWASP CRS v4 embedded (scripts/build-filters, CRS_DIR), PL1, blocking
# (filters/waf/src/config.rs: `ruleset` defaults to crs in a CRS build; said here explicitly).
WAF_CRS_CONFIG = {"mode": "block", "paranoia_level": 1, "ruleset": "crs"}

# The chain of five modules, and the stages of `shield`: each stage is (filter, configuration), the
# configuration the single-filter variant uses (None: the filter's defaults).
CHAIN = [
    ("header-strip", None),
    ("request-id", None),
    ("jwt-auth", jwt_configuration(True)),
    ("rate-limit", rate_limit_configuration("local")),
    ("waf", WAF_CONFIG),
]
CHAIN_NO_WAF = CHAIN[:-1]
COUNTERS = {
    "header-strip": "wasmcustom.wasm_shield.header_strip.requests_stripped",
    "request-id": "wasmcustom.wasm_shield.request_id.generated",
    "jwt-auth": "wasmcustom.wasm_shield.jwt_auth.allowed",
    "rate-limit": "wasmcustom.wasm_shield.rate_limit.per-ip.allowed",
    "waf": "wasmcustom.wasm_shield.waf.requests_inspected",
}


def shield_configuration(stages):
    """filters/shield/README.md: the stages in order, each with the standalone filter's configuration."""
    return {"stages": [{"filter": name, **({"config": config} if config is not None else {})} for name, config in stages]}


def chain_filters(stages):
    return [wasm(name, module_path(name), config) for name, config in stages]


def native_chain():
    # Envoy's request-ID generation (generate_request_id) stands for request-id.
    return [native_header_mutation(), native_jwt(True), native_rate_limit()]


# name -> what it runs (chain), its Envoy filters (a function: built lazily) and the Wasm stages
# they are built from (for the harness fixtures and the module check), the requests it gets, the
# variant it is measured over (`base`, default baseline) and the one it competes with
# (`counterpart`), the counters proving the filter did its work on every request, the targets
# (checked in the report), and the floor: the variant doing the least any such filter must do.
# A target: {"request": kind (default api), "over": variant, "max_us": µs added over it} or
# {"rps_of": variant, "min_ratio": r} or {"cost_of": variant, "max_ratio": r}.
VARIANTS = {
    "baseline": dict(chain="router (`direct_response`)", filters=lambda: []),
    "noop": dict(chain="Wasm no-op → router", filters=lambda: [wasm("noop", "target/test-modules/noop.wasm")],
                 modules=["target/test-modules/noop.wasm"]),
    # The floor of any filter that looks at a request: the no-op plus one read of the headers.
    "noop-read-headers": dict(
        chain="Wasm no-op reading the request headers once → router",
        filters=lambda: [wasm("noop", "target/test-modules/noop.wasm", "read-request-headers")],
        modules=["target/test-modules/noop.wasm"]),
    "header-strip": dict(
        chain="Wasm header-strip → router", stages=[("header-strip", None)],
        work=[COUNTERS["header-strip"]], counterpart="native-mutation",
        targets=[{"over": "noop", "max_us": 0.5}], floor="noop-read-headers"),
    "native-mutation": dict(chain="native `header_mutation` → router", filters=lambda: [native_header_mutation()]),
    "request-id": dict(
        chain="Wasm request-id → router", stages=[("request-id", None)], sets_request_id=True,
        work=[COUNTERS["request-id"]], counterpart="native-request-id",
        targets=[{"over": "noop", "max_us": 0.5}], floor="noop-read-headers"),
    "native-request-id": dict(
        chain="Envoy's request-ID generation (`generate_request_id`) → router", filters=lambda: [],
        generate_request_id=True, sets_request_id=True),
    "jwt-auth": dict(
        chain="Wasm jwt-auth (RS256, token cache) → router", stages=[("jwt-auth", jwt_configuration(True))],
        work=[COUNTERS["jwt-auth"]], counterpart="native-jwt",
        targets=[{"rps_of": "native-jwt", "min_ratio": 0.9}]),
    "native-jwt": dict(
        chain="native `jwt_authn` (RS256, `jwt_cache_config`) → router", filters=lambda: [native_jwt(True)],
        work=["http.bench.jwt_authn.allowed"]),
    "jwt-auth-cold": dict(
        chain="Wasm jwt-auth (RS256, no cache: verified every time) → router",
        stages=[("jwt-auth", jwt_configuration(False))],
        work=[COUNTERS["jwt-auth"]], counterpart="native-jwt-cold",
        targets=[{"cost_of": "native-jwt-cold", "max_ratio": 1.5}]),
    "native-jwt-cold": dict(
        chain="native `jwt_authn` (RS256, no cache) → router", filters=lambda: [native_jwt(False)],
        work=["http.bench.jwt_authn.allowed"]),
    "rate-limit": dict(
        chain="Wasm rate-limit (local, per IP) → router", stages=[("rate-limit", rate_limit_configuration("local"))],
        work=[COUNTERS["rate-limit"]], counterpart="native-ratelimit",
        targets=[{"over": "noop", "max_us": 1.0}], floor="noop-read-headers"),
    "rate-limit-shared": dict(
        chain="Wasm rate-limit (shared data, per IP) → router",
        stages=[("rate-limit", rate_limit_configuration("shared"))],
        work=[COUNTERS["rate-limit"]], counterpart="native-ratelimit",
        targets=[{"over": "noop", "max_us": 2.0}], floor="noop-read-headers"),
    "native-ratelimit": dict(
        chain="native `local_ratelimit` → router", filters=lambda: [native_rate_limit()],
        work=["bench.http_local_rate_limit.ok"]),
    "waf": dict(
        chain="Wasm waf (built-in rules, block, PL1) → router", stages=[("waf", WAF_CONFIG)],
        requests=["api", "get", "post"], blocks=True, counterpart="modsecurity",
        work=[COUNTERS["waf"]],
        targets=[{"request": "get", "over": "baseline", "max_us": 20.0}]),
    "waf-crs": dict(
        chain="Wasm waf-crs (OWASP CRS v4.28, block, PL1) → router", stages=[("waf-crs", WAF_CRS_CONFIG)],
        requests=["get", "post"], blocks=True, counterpart="modsecurity",
        work=[COUNTERS["waf"]],
        targets=[{"request": "get", "over": "baseline", "max_us": 50.0},
                 {"request": "post", "over": "baseline", "max_us": 100.0}]),
    "chain-no-waf": dict(
        chain="Wasm header-strip → request-id → jwt-auth → rate-limit (4 modules) → router",
        stages=CHAIN_NO_WAF, sets_request_id=True, counterpart="native-chain",
        work=[COUNTERS[name] for name, _ in CHAIN_NO_WAF]),
    "shield-no-waf": dict(
        chain="Wasm shield: header-strip, request-id, jwt-auth, rate-limit (1 module) → router",
        filters=lambda: [wasm("shield", module_path("shield"), shield_configuration(CHAIN_NO_WAF))],
        modules=[module_path("shield")], harness_stages=CHAIN_NO_WAF, sets_request_id=True,
        counterpart="native-chain", work=[COUNTERS[name] for name, _ in CHAIN_NO_WAF],
        targets=[{"over": "baseline", "max_us": 6.0}]),
    "chain": dict(
        chain="Wasm header-strip → request-id → jwt-auth → rate-limit → waf (5 modules) → router",
        stages=CHAIN, sets_request_id=True, counterpart="native-chain",
        work=[COUNTERS[name] for name, _ in CHAIN]),
    "shield": dict(
        chain="Wasm shield: header-strip, request-id, jwt-auth, rate-limit, waf (1 module) → router",
        filters=lambda: [wasm("shield", module_path("shield"), shield_configuration(CHAIN))],
        modules=[module_path("shield")], harness_stages=CHAIN, sets_request_id=True,
        counterpart="native-chain", work=[COUNTERS[name] for name, _ in CHAIN],
        targets=[{"over": "baseline", "max_us": 15.0}]),
    "native-chain": dict(
        chain="native `header_mutation` → request-ID generation → `jwt_authn` (cache) → `local_ratelimit` → router",
        filters=native_chain, generate_request_id=True, sets_request_id=True,
        work=["http.bench.jwt_authn.allowed", "bench.http_local_rate_limit.ok"]),
    "nginx": dict(
        chain="nginx 1 worker → proxy to a second nginx server (`return 200`)", server="nginx",
        requests=["get", "post"], base=None),
    "modsecurity": dict(
        chain="nginx + ModSecurity v3 + OWASP CRS v4 (PL1, blocking) → proxy to a second nginx server",
        server="nginx", modsecurity=True, requests=["get", "post"], base="nginx", blocks=True),
}

for _name, _variant in VARIANTS.items():
    if "stages" in _variant:
        _variant["filters"] = (lambda stages: lambda: chain_filters(stages))(_variant["stages"])
        _variant.setdefault("modules", [module_path(name) for name, _ in _variant["stages"]])
    _variant.setdefault("requests", ["api"])
    _variant.setdefault("server", "envoy")
    _variant.setdefault("base", "baseline")


def case_name(variant, request):
    return variant if request == "api" else f"{variant}@{request}"


def missing(name):
    """Why a variant cannot run here, or None."""
    variant = VARIANTS[name]
    for module in variant.get("modules", []):
        if not os.path.exists(os.path.join(ROOT, module)):
            how = "scripts/build-filters builds it when CRS_DIR is set" if "crs" in module else "not built yet"
            return f"{module} is missing ({how})"
    if variant["server"] == "nginx":
        if not shutil.which("nginx"):
            return "nginx is not installed (apt-get install -y nginx libnginx-mod-http-modsecurity)"
        if variant.get("modsecurity"):
            if not os.path.exists(MODSECURITY_MODULE):
                return f"{MODSECURITY_MODULE} is missing (apt-get install -y libnginx-mod-http-modsecurity)"
            if not os.path.exists(os.path.join(crs_dir(), "rules", "REQUEST-901-INITIALIZATION.conf")):
                return f"no OWASP CRS at {crs_dir()} (set CRS_DIR)"
    return None


def selected(selection):
    if not selection:
        return list(VARIANTS)
    wanted = {"baseline", "noop"}
    for name in selection.split(","):
        name = name.strip()
        if not name:
            continue
        if name not in VARIANTS:
            sys.exit(f"bench: unknown variant {name!r}; known: {', '.join(VARIANTS)}")
        wanted.add(name)
        variant = VARIANTS[name]
        for target in variant.get("targets", []):
            wanted.update(v for k, v in target.items() if k in ("over", "rps_of", "cost_of"))
        for key in ("floor", "counterpart", "base"):
            if variant.get(key):
                wanted.add(variant[key])
        counterpart = VARIANTS.get(variant.get("counterpart"), {})
        if counterpart.get("base"):
            wanted.add(counterpart["base"])
    return [name for name in VARIANTS if name in wanted]


def cases(selection):
    """(case, variant, request) in table order, and (variant, reason) skipped."""
    runnable, skipped = [], []
    for name in selected(selection):
        reason = missing(name)
        if reason:
            skipped.append((name, reason))
        else:
            runnable.append(name)
    # A base serves every request its dependants get.
    requests = {name: list(VARIANTS[name]["requests"]) for name in runnable}
    for name in runnable:
        base = VARIANTS[name]["base"]
        if base in requests:
            requests[base] += [r for r in VARIANTS[name]["requests"] if r not in requests[base]]
    order = list(REQUESTS)
    out = []
    for name in runnable:
        for request in sorted(requests[name], key=order.index):
            out.append((case_name(name, request), name, request))
    return out, skipped


# ---- Envoy and nginx configurations ---------------------------------------------------------


def bootstrap(name, listen, admin, sink):
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
        # A direct response ends the stream at the request headers, before any filter has seen a
        # body: requests with one (POST) are proxied to a second listener of the same Envoy, which
        # answers 200, as nginx proxies to its second server.
        "route_config": {"virtual_hosts": [{"name": "api", "domains": ["*"], "routes": [
            {"match": {"prefix": "/", "headers": [{"name": ":method", "string_match": {"exact": "POST"}}]},
             "route": {"cluster": "body-sink"}},
            {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}]}]},
        "http_filters": variant["filters"]() + [router],
    }
    sink_hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "sink", "generate_request_id": False,
        "route_config": {"virtual_hosts": [{"name": "sink", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}]}]},
        # The whole body first, then the answer: answering at the headers would make Envoy close
        # the upstream connection to drop the rest of the body (a new connection per request).
        "http_filters": [{"name": "envoy.filters.http.buffer", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
            "max_request_bytes": 1048576}}, router],
    }
    return {
        "static_resources": {
            "listeners": [
                {"name": "public",
                 "address": {"socket_address": {"address": "127.0.0.1", "port_value": int(listen)}},
                 "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                  "typed_config": hcm}]}]},
                {"name": "body-sink",
                 "address": {"socket_address": {"address": "127.0.0.1", "port_value": int(sink)}},
                 "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                  "typed_config": sink_hcm}]}]}],
            "clusters": [{
                "name": "body-sink", "connect_timeout": "1s", "type": "STATIC",
                "load_assignment": {"cluster_name": "body-sink", "endpoints": [{"lb_endpoints": [{"endpoint": {
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": int(sink)}}}}]}]}}]},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": int(admin)}}},
    }


def modsecurity_rules(directory):
    """ModSecurity's recommended engine settings in blocking mode (SecRuleEngine On), then CRS as
    its INSTALL says: crs-setup.conf.example, paranoia level 1, rules/*.conf. Referenced by path."""
    crs = crs_dir()
    return f"""# Generated by scripts/lib/bench_variants.py: ModSecurity v3 + OWASP CRS from {crs}
SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit 13107200
SecRequestBodyNoFilesLimit 131072
SecRequestBodyLimitAction Reject
SecRequestBodyJsonDepthLimit 512
SecArgumentsLimit 1000
SecPcreMatchLimit 1000
SecPcreMatchLimitRecursion 1000
# The response side is out of the comparison (waf-crs inspects requests only).
SecResponseBodyAccess Off
SecAuditEngine RelevantOnly
SecAuditLogRelevantStatus "^(?:5|4(?!04))"
SecAuditLogParts ABIJDEFHZ
SecAuditLogType Serial
SecAuditLog {directory}/modsec_audit.log
SecTmpDir {directory}
SecDataDir {directory}
SecArgumentSeparator &
SecCookieFormat 0
SecStatusEngine Off
Include {crs}/crs-setup.conf.example
SecAction "id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level=1"
Include {crs}/rules/*.conf
"""


def nginx_conf(name, listen, backend, directory):
    """One worker (pinned by the caller), no access log; the front server proxies to a second
    server in the same worker that answers 200 `ok`, over kept-alive upstream connections."""
    variant = VARIANTS[name]
    directory = os.path.abspath(directory)
    modsecurity = ""
    load = ""
    if variant.get("modsecurity"):
        rules = os.path.join(directory, "modsecurity.conf")
        with open(rules, "w") as f:
            f.write(modsecurity_rules(directory))
        load = f"load_module {MODSECURITY_MODULE};"
        modsecurity = f"modsecurity on;\n      modsecurity_rules_file {rules};"
    # Run as root, nginx's workers would switch to `nobody`, who cannot write the temporary paths here.
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""# Generated by scripts/lib/bench_variants.py ({name})
daemon off;
worker_processes 1;
{user}
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
{load}
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {directory}/client_body;
  proxy_temp_path {directory}/proxy;
  fastcgi_temp_path {directory}/fastcgi;
  uwsgi_temp_path {directory}/uwsgi;
  scgi_temp_path {directory}/scgi;
  client_body_buffer_size 16k;
  keepalive_requests 1000000;
  upstream backend {{ server 127.0.0.1:{int(backend)}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{int(listen)};
    location / {{
      {modsecurity}
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
  server {{
    listen 127.0.0.1:{int(backend)};
    location / {{ return 200 "ok"; }}
  }}
}}
"""


# ---- start-up checks ------------------------------------------------------------------------


def send(port, kind):
    request = REQUESTS[kind]["load"]()
    connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
    try:
        headers = {"Host": request["authority"], **dict(request["headers"])}
        body = request["body"].encode() if request["body"] else None
        connection.request(request["method"], request["path"], body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def probe(name, port, kinds):
    """Each request the variant is measured with answers 200; a WAF blocks an attack with 403."""
    variant = VARIANTS[name]
    for kind in kinds:
        status, headers = send(port, kind)
        if status != 200:
            sys.exit(f"bench: {name} answered {status} to the {kind} request, not 200 (a Wasm module that failed "
                     "to load answers 503; a WAF blocking a benign request, 403)")
        if variant.get("sets_request_id") and "x-request-id" not in headers:
            sys.exit(f"bench: {name} did not set x-request-id on the response: the ID was not generated")
    if variant.get("blocks"):
        status, _ = send(port, "attack")
        if status != 403:
            sys.exit(f"bench: {name} answered {status} to an SQL injection, not 403: it is not blocking")
        if "post" in kinds:
            status, _ = send(port, "attack-post")
            if status != 403:
                sys.exit(f"bench: {name} answered {status} to an SQL injection in a form body, not 403: "
                         "the body is not inspected")


# ---- harness subjects -----------------------------------------------------------------------


def fixture(stages, kind):
    request = REQUESTS[kind]["load"]()
    return {
        "name": f"{kind} request through {', '.join(name for name, _ in stages)} (generated by scripts/lib/bench_variants.py)",
        "filters": [{"name": name, **({"config": config} if config is not None else {})} for name, config in stages],
        "workers": 1,
        "steps": [{"request": {"method": request["method"], "path": request["path"], "authority": request["authority"],
                               "source": "203.0.113.7:40000", "headers": [list(h) for h in request["headers"]],
                               **({"body": request["body"]} if request["body"] else {})},
                   "upstream": {"status": 200, "body": "ok"},
                   # The request passes every stage: the benchmark measures the benign path.
                   "expect": {"local_reply": False, "response": {"status": 200}}}],
    }


def harness(selection, directory):
    """Every case of each filter's fixtures/bench.yaml, then generated fixtures for the variants
    that have none (waf-crs, the chains and shield): the same requests and configurations as in Envoy."""
    import yaml
    names = set(selected(selection)) if selection else set(VARIANTS)
    subjects = []
    filters_dir = os.path.join(ROOT, "filters")
    for crate in sorted(os.listdir(filters_dir)):
        path = os.path.join("filters", crate, "fixtures", "bench.yaml")
        if crate not in names or not os.path.exists(os.path.join(ROOT, path)):
            continue
        with open(os.path.join(ROOT, path)) as f:
            bench_cases = [c for c in yaml.safe_load_all(f) if c]
        for index, case in enumerate(bench_cases):
            subjects.append((crate if index == 0 else f"{crate}#{index + 1}", path, case["name"]))
    generated = [("waf-crs@get", "waf-crs", "get"), ("waf-crs@post", "waf-crs", "post"),
                 ("chain-no-waf", "chain-no-waf", "api"), ("shield-no-waf", "shield-no-waf", "api"),
                 ("chain", "chain", "api"), ("shield", "shield", "api")]
    for key, name, kind in generated:
        if name not in names or missing(name):
            continue
        variant = VARIANTS[name]
        stages = variant.get("stages")
        if stages is None:  # shield: one module, its stages as one configuration
            stages = [("shield", shield_configuration(variant["harness_stages"]))]
        path = os.path.join(directory, f"fixture-{key.replace('@', '-')}.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(fixture(stages, kind), f, sort_keys=False, width=1 << 16)
        subjects.append((key, os.path.relpath(path, ROOT), fixture(stages, kind)["name"]))
    return subjects


def main(argv):
    command = argv[1] if len(argv) > 1 else ""
    if command == "cases" and len(argv) <= 3:
        runnable, skipped = cases(argv[2] if len(argv) > 2 else "")
        for case, variant, request in runnable:
            print(f"run {case} {variant} {request}")
        for variant, reason in skipped:
            print(f"skip {variant} {reason}")
    elif command == "server" and len(argv) == 3:
        print(VARIANTS[argv[2]]["server"])
    elif command == "bootstrap" and len(argv) == 7:
        name, listen, admin, sink, out = argv[2:]
        with open(out, "w") as f:
            json.dump(bootstrap(name, listen, admin, sink), f, indent=2)
    elif command == "nginx" and len(argv) == 6:
        name, listen, backend, directory = argv[2:]
        with open(os.path.join(directory, "nginx.conf"), "w") as f:
            f.write(nginx_conf(name, listen, backend, directory))
    elif command == "lua" and len(argv) == 4:
        with open(argv[3], "w") as f:
            f.write(wrk_lua(argv[2]))
    elif command == "probe" and len(argv) >= 4:
        try:
            probe(argv[2], argv[3], argv[4:])
        except OSError as e:
            sys.exit(f"bench: {argv[2]} did not answer: {e}")
    elif command == "harness" and len(argv) in (3, 4):
        selection, directory = (argv[2], argv[3]) if len(argv) == 4 else ("", argv[2])
        for key, path, name in harness(selection, directory):
            print(f"{key}\t{path}\t{name}")
    elif command == "meta":
        print(json.dumps({
            "variants": {name: {k: v for k, v in variant.items() if k not in ("filters", "stages", "harness_stages")}
                         for name, variant in VARIANTS.items()},
            "requests": {kind: request["label"] for kind, request in REQUESTS.items()},
            "crs_dir": crs_dir(),
        }, indent=2))
    elif command == "module" and len(argv) == 3:
        print(json.dumps(module_path(argv[2])))
    elif command == "describe" and len(argv) == 3:
        print(describe(argv[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
