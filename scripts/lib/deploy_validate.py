"""Checks Kubernetes manifests offline (run by scripts/validate-manifests):

1. Every document of a kind with a CRD in the CRD directory validates against that CRD's
   `spec.versions[].schema.openAPIV3Schema` with the `jsonschema` package (Draft 4, the JSON-Schema
   dialect OpenAPI 3.0 schemas are written in), after translating the OpenAPI extensions:
   `nullable: true` admits null, `x-kubernetes-int-or-string` admits an integer or a string,
   `x-kubernetes-preserve-unknown-fields` keeps an object open, other `x-kubernetes-*` keys
   (CEL rules included) are not checked. Unknown fields are errors, as with kubectl's default
   strict field validation, so a misspelt field does not pass silently.
   Core kinds (and Envoy Gateway kinds whose CRD is not in the directory) have no schema here:
   only apiVersion, kind and metadata.name are checked, and the output says "basic".
2. The filter configuration embedded in every EnvoyExtensionPolicy (`spec.wasm[].config`) and
   WasmPlugin (`spec.pluginConfig`) is loaded by the filter itself: one host-test case per
   configuration, expecting the plugin to start (`expect_start: {fails: false}`). The module is
   the last path segment of the image / URL (`.../waf:0.1.0`, `.../request-id.wasm`).
3. `sha256` fields hold the right digest (the image's manifest digest for images, the module's
   digest for HTTP / file URLs), and a policy with several filters lists them in the chain order.

Placeholders `IMAGE_DIGEST_<NAME>` and `MODULE_SHA256_<NAME>` are filled from
target/oci/digests.json (scripts/package) before anything is checked, as kind-lab/up does with
target/oci/render.sed.

    python deploy_validate.py --crds DIR --host-test BIN --oci target/oci --modules target/filters PATH...
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import contextlib
import io

import jsonschema
import yaml

# libyaml's loader when the wheel has it: the Envoy Gateway CRD alone is 1.5 MB of YAML.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

CHAIN_ORDER = ["header-strip", "request-id", "jwt-auth", "rate-limit", "waf"]
ISTIO_PHASES = ["AUTHN", "AUTHZ", "STATS", "UNSPECIFIED_PHASE"]
# Kinds without a CRD in the directory: only apiVersion, kind and metadata are checked.
BASIC_KINDS = {
    ("v1", "ConfigMap"), ("v1", "Service"), ("v1", "Namespace"), ("v1", "Secret"),
    ("apps/v1", "Deployment"),
    ("gateway.envoyproxy.io/v1alpha1", "ClientTrafficPolicy"),
    ("gateway.envoyproxy.io/v1alpha1", "EnvoyProxy"),
}
DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
PLACEHOLDER = re.compile(r"\b(IMAGE_DIGEST|MODULE_SHA256)_([A-Z0-9_]+)\b")


def openapi_to_jsonschema(node):
    """A JSON-Schema (Draft 4) equivalent of a structural OpenAPI v3 schema, strict on unknown fields."""
    if isinstance(node, list):
        return [openapi_to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "description", "example", "externalDocs"):
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {name: openapi_to_jsonschema(sub) for name, sub in value.items()}
        elif isinstance(value, (dict, list)):
            out[key] = openapi_to_jsonschema(value)
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = out.get("anyOf", []) + [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def with_object_envelope(schema):
    """Every object may carry apiVersion, kind and metadata, whether its CRD schema lists them or not
    (Istio's do not); metadata itself is checked separately (name)."""
    schema = dict(schema)
    properties = dict(schema.get("properties", {}))
    properties.setdefault("apiVersion", {"type": "string"})
    properties.setdefault("kind", {"type": "string"})
    properties.setdefault("metadata", {"type": "object"})
    schema["properties"] = properties
    return schema


def load_crds(directory):
    schemas = {}
    for root, _, files in os.walk(directory):
        for file in sorted(files):
            if not file.endswith((".yaml", ".yml")):
                continue
            with open(os.path.join(root, file)) as f:
                for doc in yaml.load_all(f, Loader=LOADER):
                    if not doc or doc.get("kind") != "CustomResourceDefinition":
                        continue
                    spec = doc["spec"]
                    for version in spec.get("versions", []):
                        schema = version.get("schema", {}).get("openAPIV3Schema")
                        if schema:
                            key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                            schemas[key] = with_object_envelope(openapi_to_jsonschema(schema))
    return schemas


def module_of(url):
    """`kind-registry:5000/wasm-shield/waf:0.1.0`, `oci://.../waf@sha256:...`, `http://h/waf.wasm` -> `waf`."""
    last = url.rstrip("/").rsplit("/", 1)[-1]
    last = last.split("@", 1)[0].split(":", 1)[0]
    return last[: -len(".wasm")] if last.endswith(".wasm") else last


def clusters_in(value):
    """Envoy cluster names a configuration calls (jwt-auth's remote_jwks.http_uri.cluster)."""
    found = []
    if isinstance(value, dict):
        for key, sub in value.items():
            if key == "cluster" and isinstance(sub, str):
                found.append(sub)
            else:
                found.extend(clusters_in(sub))
    elif isinstance(value, list):
        for sub in value:
            found.extend(clusters_in(sub))
    return found


class Validator:
    def __init__(self, crds, digests, modules_dir):
        self.crds = crds
        self.digests = digests
        self.modules_dir = modules_dir
        self.failures = 0
        self.configs = []  # (label, module, config) for host-test

    def report(self, label, problems, note=""):
        if problems:
            self.failures += 1
            for problem in problems:
                print(f"FAIL {label}: {problem}")
        else:
            print(f"PASS {label}{note}")

    def render(self, text):
        def substitute(match):
            kind, name = match.group(1), match.group(2).lower().replace("_", "-")
            digests = self.digests.get(name)
            if digests is None:
                return match.group(0)  # left as is: reported as an unknown module below
            return digests["manifest_digest" if kind == "IMAGE_DIGEST" else "module_sha256"]

        return PLACEHOLDER.sub(substitute, text)

    def check_file(self, path):
        with open(path) as f:
            text = self.render(f.read())
        try:
            docs = [doc for doc in yaml.load_all(text, Loader=LOADER) if doc is not None]
        except yaml.YAMLError as error:
            self.report(path, [f"not YAML: {error}"])
            return
        for index, doc in enumerate(docs):
            self.check_doc(path, index, doc)
        self.check_istio_order(path, docs)

    def check_doc(self, path, index, doc):
        kind, api = doc.get("kind", "?"), doc.get("apiVersion", "?")
        name = (doc.get("metadata") or {}).get("name", "?")
        label = f"{path} [{index}] {kind}/{name}"
        problems = []
        leftover = PLACEHOLDER.findall(json.dumps(doc))
        if leftover:
            problems.append(f"placeholder for an unknown module: {'_'.join(leftover[0])}")
        metadata = doc.get("metadata")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) \
                or not DNS_NAME.match(metadata["name"]) or len(metadata["name"]) > 253:
            problems.append("metadata.name missing or not a DNS subdomain name")
        schema = self.crds.get((api, kind))
        note = ""
        if schema is not None:
            validator = jsonschema.Draft4Validator(schema)
            for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
                where = ".".join(str(p) for p in error.absolute_path) or "(root)"
                problems.append(f"schema: {where}: {error.message}")
            note = f" (CRD schema {api})"
        elif (api, kind) in BASIC_KINDS:
            note = " (basic: apiVersion, kind, metadata.name; no schema here)"
        else:
            problems.append(f"unknown kind {api} {kind}: no CRD in the CRD directory and not a known core kind")
        if not problems:
            problems += self.collect_configs(label, api, kind, doc)
        self.report(label, problems, note)

    def module_path(self, module):
        return os.path.join(self.modules_dir, module + ".wasm")

    def digest_problem(self, where, module, sha, image):
        if sha in (None, ""):
            return None
        expected = self.digests[module]["manifest_digest" if image else "module_sha256"]
        if sha != expected:
            what = "the image's manifest digest" if image else "the module's sha256"
            return f"{where}.sha256 is not {what} ({expected}) of target/oci/{module}"
        return None

    def collect_configs(self, label, api, kind, doc):
        problems = []
        spec = doc.get("spec") or {}
        if kind == "EnvoyExtensionPolicy":
            order = []
            for i, wasm in enumerate(spec.get("wasm") or []):
                code = wasm.get("code", {})
                source = code.get("image") if code.get("type") == "Image" else code.get("http")
                url = (source or {}).get("url", "")
                module = module_of(url)
                if module not in self.digests or not os.path.exists(self.module_path(module)):
                    problems.append(f"spec.wasm[{i}]: {url!r} names no module in target/filters")
                    continue
                problem = self.digest_problem(f"spec.wasm[{i}].code.{code.get('type', '').lower()}", module,
                                              (source or {}).get("sha256"), code.get("type") == "Image")
                if problem:
                    problems.append(problem)
                order.append(module)
                self.configs.append((f"{label} spec.wasm[{i}] ({module})", module, wasm.get("config")))
            problems += chain_order_problems(order, "spec.wasm")
        elif kind == "WasmPlugin":
            url = spec.get("url", "")
            module = module_of(url)
            if module not in self.digests or not os.path.exists(self.module_path(module)):
                problems.append(f"spec.url: {url!r} names no module in target/filters")
            else:
                problem = self.digest_problem("spec", module, spec.get("sha256"), url.startswith("oci://"))
                if problem:
                    problems.append(problem)
                self.configs.append((f"{label} spec.pluginConfig ({module})", module, spec.get("pluginConfig")))
        return problems

    def check_istio_order(self, path, docs):
        """WasmPlugins of one file and selector run by phase, then priority (highest first)."""
        groups = {}
        for doc in docs:
            if doc.get("kind") != "WasmPlugin":
                continue
            spec = doc.get("spec") or {}
            key = json.dumps(spec.get("selector"), sort_keys=True)
            phase = spec.get("phase", "UNSPECIFIED_PHASE")
            rank = (ISTIO_PHASES.index(phase) if phase in ISTIO_PHASES else 9, -(spec.get("priority") or 0))
            groups.setdefault(key, []).append((rank, module_of(spec.get("url", ""))))
        for selector, plugins in groups.items():
            if len(plugins) < 2:
                continue
            order = [module for _, module in sorted(plugins)]
            problems = chain_order_problems(order, "phase/priority")
            ranks = [rank for rank, _ in plugins]
            if len(set(ranks)) != len(ranks):
                problems.append("two WasmPlugins share a phase and priority: their order is undefined")
            self.report(f"{path} WasmPlugin order for selector {selector}: {' -> '.join(order)}", problems)

    def run_filters(self, host_test):
        """Each configuration through the filter itself: the plugin must start."""
        if not self.configs:
            return
        # One case per distinct (module, configuration): the chain policy repeats the per-filter ones.
        case_of = {}
        cases = []
        for label, module, config in self.configs:
            key = json.dumps([module, config], sort_keys=True)
            if key not in case_of:
                case_of[key] = f"config {len(cases) + 1} ({module})"
                case = {"name": case_of[key], "filters": [{"name": module, "config": config}],
                        "expect_start": {"fails": False}}
                clusters = sorted(set(clusters_in(config)))
                if clusters:
                    case["clusters"] = clusters
                cases.append(case)
        with tempfile.TemporaryDirectory() as tmp:
            fixture = os.path.join(tmp, "manifest-configs.yaml")
            with open(fixture, "w") as f:
                yaml.safe_dump_all(cases, f, sort_keys=False)
            results_path = os.path.join(tmp, "results.json")
            run = subprocess.run([host_test, "replay", "--quiet", "--modules", self.modules_dir, "--json",
                                  results_path, fixture], capture_output=True, text=True)
            try:
                with open(results_path) as f:
                    results = {r["name"]: r for r in json.load(f)}
            except (OSError, ValueError):
                self.report("host-test replay of the configurations", [f"no results (exit {run.returncode}): "
                                                                       f"{run.stderr.strip()[-2000:]}"])
                return
        for label, module, config in self.configs:
            result = results.get(case_of[json.dumps([module, config], sort_keys=True)])
            if result is None:
                self.report(f"{label}: loaded by the filter", ["host-test reported no result"])
            elif result["passed"]:
                self.report(f"{label}: loaded by the filter", [])
            else:
                refusal = [line for line in result.get("logs", []) if "invalid configuration" in line]
                self.report(f"{label}: loaded by the filter",
                            [f"the {module} filter refuses it: " + (refusal[0] if refusal else result.get("error"))])


def without_key_source(module, config):
    """jwt-auth's providers without where their keys come from (inline here, fetched in a cluster)."""
    config = json.loads(json.dumps(config))
    if module == "jwt-auth":
        for provider in (config.get("providers") or {}).values():
            provider.pop("local_jwks", None)
            provider.pop("remote_jwks", None)
    return config


def bootstrap_chain(path):
    """(name, fail_open, configuration) of every Wasm filter of an Envoy bootstrap, in order."""
    with open(path) as f:
        bootstrap = yaml.load(f, Loader=LOADER)
    chain = []
    for listener in bootstrap["static_resources"]["listeners"]:
        for filter_chain in listener["filter_chains"]:
            for network_filter in filter_chain["filters"]:
                for http_filter in network_filter["typed_config"].get("http_filters", []):
                    config = http_filter["typed_config"].get("config")
                    if config is None:
                        continue
                    chain.append((config["name"], config.get("failure_policy") == "FAIL_OPEN",
                                  json.loads(config["configuration"]["value"])))
    return chain


def same_chain_problems(bootstrap_path, policy_path):
    """The local full chain (what kind-lab/local-smoke tests) and the lab's chain policy must run the
    same filters, in the same order, with the same failure policy and configuration (jwt-auth's
    key source aside)."""
    local = [(name, fail_open, without_key_source(name, config))
             for name, fail_open, config in bootstrap_chain(bootstrap_path)]
    with open(policy_path) as f:
        policy = yaml.load(f, Loader=LOADER)
    lab = [(wasm["name"], wasm.get("failOpen", False), without_key_source(wasm["name"], wasm.get("config")))
           for wasm in policy["spec"]["wasm"]]
    problems = []
    if [entry[0] for entry in local] != [entry[0] for entry in lab]:
        problems.append(f"filters {[e[0] for e in local]} in {bootstrap_path}, {[e[0] for e in lab]} in {policy_path}")
    for (name, local_open, local_config), (_, lab_open, lab_config) in zip(local, lab):
        if local_open != lab_open:
            problems.append(f"{name}: fail open {local_open} in {bootstrap_path}, {lab_open} in {policy_path}")
        if local_config != lab_config:
            problems.append(f"{name}: configurations differ: {json.dumps(local_config, sort_keys=True)} "
                            f"vs {json.dumps(lab_config, sort_keys=True)}")
    return problems


def same_jwks_problems(bootstrap_path, configmap_path):
    """The keys jwt-auth has inline in the local chain are the ones the lab's JWKS server serves, so
    the one test token passes in both."""
    inline = [json.loads(provider["local_jwks"]["inline_string"])
              for name, _, config in bootstrap_chain(bootstrap_path) if name == "jwt-auth"
              for provider in config["providers"].values() if "local_jwks" in provider]
    with open(configmap_path) as f:
        served = [json.loads(doc["data"]["jwks.json"]) for doc in yaml.load_all(f, Loader=LOADER)
                  if doc and doc.get("kind") == "ConfigMap" and "jwks.json" in (doc.get("data") or {})]
    if not inline or not served:
        return [f"no inline JWKS in {bootstrap_path} or no jwks.json ConfigMap in {configmap_path}"]
    return [] if inline[0] == served[0] else ["the JWKS differ"]


def chain_order_problems(order, where):
    known = [module for module in order if module in CHAIN_ORDER]
    if known != sorted(known, key=CHAIN_ORDER.index):
        return [f"{where}: filters in the order {', '.join(order)}; the chain order is {', '.join(CHAIN_ORDER)}"]
    return []


def manifest_files(paths):
    for path in paths:
        if os.path.isdir(path):
            for root, _, files in sorted(os.walk(path)):
                for file in sorted(files):
                    if file.endswith((".yaml", ".yml")):
                        yield os.path.join(root, file)
        else:
            yield path


def self_test(crds, digests, args, directory):
    """Every manifest in `directory` is broken on purpose: each must be refused, for the reason its
    `# expect: ...` line names (a substring of one FAIL line)."""
    failures = 0
    for path in manifest_files([directory]):
        with open(path) as f:
            expect = next((line[len("# expect: "):].rstrip("\n") for line in f if line.startswith("# expect: ")), None)
        validator = Validator(crds, digests, args.modules)
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            validator.check_file(path)
            validator.run_filters(args.host_test)
        refusals = [line for line in output.getvalue().splitlines() if line.startswith("FAIL ")]
        matching = [line for line in refusals if expect and expect in line]
        if not expect:
            print(f"FAIL {path}: no '# expect: ' line")
        elif not refusals:
            print(f"FAIL {path} was accepted (expected: {expect})")
        elif not matching:
            print(f"FAIL {path} was refused, but not for: {expect}")
            for line in refusals:
                print(f"    {line}")
        else:
            print(f"PASS {path} refused: {matching[0][:300]}")
            continue
        failures += 1
    return failures


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--crds", required=True)
    parser.add_argument("--host-test", required=True)
    parser.add_argument("--oci", required=True, help="scripts/package's output (digests.json)")
    parser.add_argument("--modules", required=True, help="directory of <filter>.wasm")
    parser.add_argument("--self-test", metavar="DIR", help="also check that every manifest in DIR is refused")
    parser.add_argument("--same-chain", nargs=2, action="append", metavar=("BOOTSTRAP", "POLICY"),
                        help="an Envoy bootstrap whose Wasm chain must equal an EnvoyExtensionPolicy's")
    parser.add_argument("--same-jwks", nargs=2, action="append", metavar=("BOOTSTRAP", "CONFIGMAP"),
                        help="an Envoy bootstrap whose inline JWKS must be the one a ConfigMap serves")
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    crds = load_crds(args.crds)
    if not crds:
        print(f"FAIL no CRDs found in {args.crds}")
        return 1
    with open(os.path.join(args.oci, "digests.json")) as f:
        digests = json.load(f)
    print(f"CRD schemas: {', '.join(sorted(f'{kind} ({api})' for api, kind in crds))}")
    validator = Validator(crds, digests, args.modules)
    files = list(manifest_files(args.paths))
    for path in files:
        validator.check_file(path)
    validator.run_filters(args.host_test)
    for bootstrap, policy in args.same_chain or []:
        validator.report(f"{bootstrap} runs the chain of {policy} (what kind-lab/local-smoke tests is what the lab runs)",
                         same_chain_problems(bootstrap, policy))
    for bootstrap, configmap in args.same_jwks or []:
        validator.report(f"{bootstrap} verifies tokens with the keys {configmap} serves",
                         same_jwks_problems(bootstrap, configmap))
    print(f"validate-manifests: {len(files)} files, {len(validator.configs)} filter configurations, "
          f"{validator.failures} failure(s)")
    failures = validator.failures
    if args.self_test:
        print(f"== self-test: every manifest in {args.self_test} is broken and must be refused")
        failures += self_test(crds, digests, args, args.self_test)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
