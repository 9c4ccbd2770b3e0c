"""Wasm OCI images in the "compat" variant, written as OCI image layouts (no registry, no tools).

The compat variant (https://github.com/solo-io/wasm/blob/master/spec/spec-compat.md) is what both
Istio and Envoy Gateway pull: an ordinary OCI image manifest whose single layer is
`application/vnd.oci.image.layer.v1.tar+gzip` holding `plugin.wasm`, with the manifest annotation
`module.wasm.image/variant: compat`. Their fetchers take the last layer, gunzip it and read the
tar entry whose base name is `plugin.wasm`.

Everything is reproducible: tar entry with mtime 0, uid/gid 0, no user names, mode 0644; gzip
with mtime 0 and no file name; JSON with sorted keys and no timestamps. The same module always
gives the same manifest digest, so that digest can pin the image (`sha256` in WasmPlugin and
EnvoyExtensionPolicy `code.image`).

    package(module_path, out_dir, name, tag) -> dict with the digests
    check(layout_dir, module_path, tag) -> list of problems (empty: the layout is right)
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import zlib

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
VARIANT_ANNOTATION = "module.wasm.image/variant"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
PLUGIN_FILE = "plugin.wasm"


def canonical_json(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def layer_tar(module: bytes) -> bytes:
    """An uncompressed tar with one regular file, plugin.wasm, and no varying metadata."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(PLUGIN_FILE)
        info.size = len(module)
        info.mode = 0o644
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(module))
    return buffer.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    buffer = io.BytesIO()
    # mtime=0 and an empty file name keep the gzip header free of the build time and path.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buffer.getvalue()


def descriptor(media_type: str, blob: bytes, annotations=None) -> dict:
    result = {"mediaType": media_type, "digest": "sha256:" + sha256_hex(blob), "size": len(blob)}
    if annotations:
        result["annotations"] = annotations
    return result


def build(module: bytes, name: str, tag: str):
    """The blobs of the image and its index: (blobs by digest, index.json bytes, digests)."""
    tar = layer_tar(module)
    layer = gzip_bytes(tar)
    config = canonical_json({
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha256_hex(tar)]},
    })
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": descriptor(CONFIG_MEDIA_TYPE, config),
        "layers": [descriptor(LAYER_MEDIA_TYPE, layer)],
        "annotations": {
            VARIANT_ANNOTATION: "compat",
            "org.opencontainers.image.title": name,
            "org.opencontainers.image.version": tag,
        },
    })
    index = canonical_json({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [descriptor(MANIFEST_MEDIA_TYPE, manifest, {REF_NAME_ANNOTATION: tag})],
    })
    blobs = {sha256_hex(blob): blob for blob in (layer, config, manifest)}
    digests = {
        "module_sha256": sha256_hex(module),
        "manifest_digest": sha256_hex(manifest),
        "layer_digest": sha256_hex(layer),
        "tag": tag,
    }
    return blobs, index, digests


def package(module_path: str, out_dir: str, name: str, tag: str) -> dict:
    with open(module_path, "rb") as f:
        module = f.read()
    blobs, index, digests = build(module, name, tag)
    # Start from an empty directory: a stale blob of an earlier build must not linger.
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(os.path.join(out_dir, "blobs", "sha256"))
    for digest, blob in sorted(blobs.items()):
        with open(os.path.join(out_dir, "blobs", "sha256", digest), "wb") as f:
            f.write(blob)
    with open(os.path.join(out_dir, "index.json"), "wb") as f:
        f.write(index)
    with open(os.path.join(out_dir, "oci-layout"), "wb") as f:
        f.write(canonical_json({"imageLayoutVersion": "1.0.0"}))
    with open(os.path.join(out_dir, "module.sha256"), "w") as f:
        f.write(digests["module_sha256"] + "\n")
    with open(os.path.join(out_dir, "manifest.sha256"), "w") as f:
        f.write(digests["manifest_digest"] + "\n")
    return digests


def check(layout_dir: str, module_path: str, tag: str) -> list:
    """Walks the layout from index.json as a registry client would and returns what is wrong."""
    problems = []

    def blob(desc, what):
        digest = desc.get("digest", "")
        if not digest.startswith("sha256:"):
            problems.append(f"{what}: digest {digest!r} is not sha256")
            return None
        path = os.path.join(layout_dir, "blobs", "sha256", digest[len("sha256:"):])
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as error:
            problems.append(f"{what}: blob missing: {error}")
            return None
        if "sha256:" + sha256_hex(data) != digest:
            problems.append(f"{what}: blob content does not hash to {digest}")
        if len(data) != desc.get("size"):
            problems.append(f"{what}: size {desc.get('size')} but the blob has {len(data)} bytes")
        return data

    try:
        with open(os.path.join(layout_dir, "oci-layout")) as f:
            if json.load(f).get("imageLayoutVersion") != "1.0.0":
                problems.append("oci-layout: imageLayoutVersion is not 1.0.0")
        with open(os.path.join(layout_dir, "index.json")) as f:
            index = json.load(f)
    except (OSError, ValueError) as error:
        return [f"layout unreadable: {error}"]
    manifests = index.get("manifests", [])
    if len(manifests) != 1:
        return problems + [f"index.json: {len(manifests)} manifests, expected 1"]
    entry = manifests[0]
    if entry.get("mediaType") != MANIFEST_MEDIA_TYPE:
        problems.append(f"index.json: manifest media type {entry.get('mediaType')!r}")
    if entry.get("annotations", {}).get(REF_NAME_ANNOTATION) != tag:
        problems.append(f"index.json: ref name is not the tag {tag!r}")
    manifest_bytes = blob(entry, "manifest")
    if manifest_bytes is None:
        return problems
    manifest = json.loads(manifest_bytes)
    if manifest.get("schemaVersion") != 2:
        problems.append("manifest: schemaVersion is not 2")
    if manifest.get("annotations", {}).get(VARIANT_ANNOTATION) != "compat":
        problems.append(f"manifest: annotation {VARIANT_ANNOTATION}=compat missing")
    if manifest.get("config", {}).get("mediaType") != CONFIG_MEDIA_TYPE:
        problems.append(f"manifest: config media type {manifest.get('config', {}).get('mediaType')!r}")
    config_bytes = blob(manifest.get("config", {}), "config")
    layers = manifest.get("layers", [])
    if len(layers) != 1:
        return problems + [f"manifest: {len(layers)} layers, the compat variant has exactly 1"]
    if layers[0].get("mediaType") != LAYER_MEDIA_TYPE:
        problems.append(f"layer: media type {layers[0].get('mediaType')!r}, expected {LAYER_MEDIA_TYPE}")
    layer = blob(layers[0], "layer")
    if layer is None:
        return problems
    try:
        tar_bytes = gzip.decompress(layer)
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            members = tar.getmembers()
            names = [member.name for member in members]
            if names != [PLUGIN_FILE]:
                problems.append(f"layer: entries {names}, expected exactly [{PLUGIN_FILE!r}]")
            wasm = next((m for m in members if m.name == PLUGIN_FILE and m.isfile()), None)
            content = tar.extractfile(wasm).read() if wasm else None
    except (OSError, EOFError, zlib.error, tarfile.TarError) as error:
        return problems + [f"layer: not a gzip tar: {error}"]
    with open(module_path, "rb") as f:
        module = f.read()
    if content != module:
        problems.append(f"layer: {PLUGIN_FILE} differs from {module_path}")
    if config_bytes is not None:
        diff_ids = json.loads(config_bytes).get("rootfs", {}).get("diff_ids")
        if diff_ids != ["sha256:" + sha256_hex(tar_bytes)]:
            problems.append("config: rootfs.diff_ids is not the digest of the uncompressed layer")
    return problems


def placeholder(kind: str, name: str) -> str:
    """`MODULE_SHA256_RATE_LIMIT`, `IMAGE_DIGEST_WAF`: the tokens manifests carry for digests."""
    return f"{kind}_{name.upper().replace('-', '_')}"


def main(argv) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="scripts/package")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("package", "check"):
        p = sub.add_parser(command)
        p.add_argument("--out", required=True, help="directory of the layouts: OUT/<name>/")
        p.add_argument("--tag", required=True)
        p.add_argument("modules", nargs="+")
    args = parser.parse_args(argv)
    failures = 0
    summary = {}
    for module in sorted(args.modules):
        name = os.path.basename(module)[: -len(".wasm")]
        layout = os.path.join(args.out, name)
        if args.command == "package":
            digests = package(module, layout, name, args.tag)
            summary[name] = digests
            print(f"{layout}  {name}:{args.tag}  manifest sha256:{digests['manifest_digest']}  "
                  f"module sha256:{digests['module_sha256']}")
        else:
            problems = check(layout, module, args.tag)
            for problem in problems:
                print(f"FAIL {layout}: {problem}")
            if not problems:
                print(f"PASS {layout}: digests, sizes, media types, compat annotation, plugin.wasm == {module}")
            failures += bool(problems)
    if args.command == "package":
        with open(os.path.join(args.out, "digests.json"), "w") as f:
            json.dump(summary, f, indent=2, sort_keys=True)
            f.write("\n")
        # One sed script that fills every digest placeholder of envoy-configs/ and kind-lab/.
        with open(os.path.join(args.out, "render.sed"), "w") as f:
            for name, digests in sorted(summary.items()):
                f.write(f"s/{placeholder('MODULE_SHA256', name)}/{digests['module_sha256']}/g\n")
                f.write(f"s/{placeholder('IMAGE_DIGEST', name)}/{digests['manifest_digest']}/g\n")
    return 1 if failures else 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
