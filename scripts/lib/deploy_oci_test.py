"""Tests of scripts/package's OCI layouts (run by scripts/test): every layout in target/oci checks
out (deploy_oci.check walks index -> manifest -> config/layer and verifies each digest and size),
the layer unpacked by the system's own tar gives plugin.wasm byte for byte equal to the module,
packaging twice gives the same manifest digest, and a corrupted layout is detected.

    python3 scripts/lib/deploy_oci_test.py TAG target/filters/*.wasm
"""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_oci  # noqa: E402

failures = 0


def report(name, problem):
    global failures
    if problem:
        failures += 1
        print(f"FAIL {name}: {problem}")
    else:
        print(f"PASS {name}")


def main(tag, modules):
    for module in modules:
        name = os.path.basename(module)[: -len(".wasm")]
        layout = os.path.join("target", "oci", name)
        problems = deploy_oci.check(layout, module, tag)
        report(f"{layout}: layout, digests, sizes, media types, compat annotation", "; ".join(problems))
        with open(os.path.join(layout, "manifest.sha256")) as f:
            manifest_digest = f.read().strip()
        with open(module, "rb") as f:
            module_bytes = f.read()
        with open(module + ".sha256") as f:
            expected_module_sha = f.read().split()[0]
        with open(os.path.join(layout, "module.sha256")) as f:
            report(f"{layout}: module.sha256 equals {module}.sha256",
                   None if f.read().strip() == expected_module_sha else "differs")
        with tempfile.TemporaryDirectory() as tmp:
            # An independent reader: GNU tar unpacks the layer blob the manifest names.
            with open(os.path.join(layout, "blobs", "sha256", manifest_digest)) as f:
                layer_digest = json.load(f)["layers"][0]["digest"].split(":", 1)[1]
            blob = os.path.join(layout, "blobs", "sha256", layer_digest)
            listing = subprocess.run(["tar", "-tzf", blob], capture_output=True, text=True, check=True).stdout.split()
            subprocess.run(["tar", "-xzf", os.path.abspath(blob)], cwd=tmp, check=True)
            with open(os.path.join(tmp, "plugin.wasm"), "rb") as f:
                same = f.read() == module_bytes
            report(f"{layout}: tar -xzf gives exactly plugin.wasm, identical to the module",
                   None if listing == ["plugin.wasm"] and same else f"entries {listing}, identical={same}")
            again = deploy_oci.package(module, os.path.join(tmp, "again"), name, tag)
            report(f"{layout}: reproducible (packaging again gives the same manifest digest)",
                   None if again["manifest_digest"] == manifest_digest else
                   f"{again['manifest_digest']} != {manifest_digest}")
    # The check must catch a corrupt layout: a layer whose plugin.wasm is another module.
    with tempfile.TemporaryDirectory() as tmp:
        first, second = modules[0], modules[-1]
        deploy_oci.package(second, os.path.join(tmp, "x"), "x", tag)
        problems = deploy_oci.check(os.path.join(tmp, "x"), first, tag)
        report("a layer holding another module is refused",
               None if any("differs" in p for p in problems) else f"not detected: {problems}")
        layout = os.path.join(tmp, "y")
        deploy_oci.package(first, layout, "y", tag)
        blobs = os.path.join(layout, "blobs", "sha256")
        victim = max(os.listdir(blobs), key=lambda d: os.path.getsize(os.path.join(blobs, d)))
        with open(os.path.join(blobs, victim), "r+b") as f:
            f.seek(100)
            byte = f.read(1)
            f.seek(100)
            f.write(bytes([byte[0] ^ 0xFF]))
        problems = deploy_oci.check(layout, first, tag)
        report("a blob whose content no longer matches its digest is refused",
               None if any("does not hash" in p for p in problems) else f"not detected: {problems}")
    print(f"oci: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
