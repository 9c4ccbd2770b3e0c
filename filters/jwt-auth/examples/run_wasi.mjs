// Runs a wasm32-wasip1 command module in Node's V8 (the engine Envoy embeds), to time code
// built for the filters' target outside Envoy: `node --no-warnings run_wasi.mjs module.wasm`.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import process from "node:process";

const wasi = new WASI({ version: "preview1", args: process.argv.slice(2), env: {} });
const module = await WebAssembly.compile(await readFile(process.argv[2]));
// The crate links the Proxy-Wasm glue, whose host functions (module "env") a timing run never
// calls: stubs that fail loudly if one is.
const imports = wasi.getImportObject();
for (const { module: from, name } of WebAssembly.Module.imports(module)) {
  if (from !== "wasi_snapshot_preview1") {
    imports[from] ??= {};
    imports[from][name] = () => {
      throw new Error(`host function ${from}.${name} called`);
    };
  }
}
const instance = await WebAssembly.instantiate(module, imports);
// A command module starts at `_start`; the crate's cdylib glue also exports `_initialize`, which
// WASI.start refuses to see next to it.
const { _start, memory } = instance.exports;
process.exitCode = wasi.start({ exports: { _start, memory } });
