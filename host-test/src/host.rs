//! The wasmtime engine, the linker with every host function, and the module cache: modules are
//! compiled once per run and instantiated per case.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use wasmtime::{Config, Engine, InstancePre, Linker, Module};

use crate::vm::VmState;

/// The ABI markers a module may export; one of them makes it a Proxy-Wasm module.
const ABI_MARKERS: [&str; 2] = ["proxy_abi_version_0_2_1", "proxy_abi_version_0_2_0"];

/// Compiles and caches modules, and instantiates them with the host functions.
pub struct Host {
    engine: Engine,
    linker: Linker<VmState>,
    modules: HashMap<PathBuf, InstancePre<VmState>>,
    /// Directories searched for `<name>.wasm`, in order.
    pub module_path: Vec<PathBuf>,
}

impl Host {
    /// A host searching `module_path` for filters named by fixtures.
    pub fn new(module_path: Vec<PathBuf>) -> Result<Host> {
        let engine = shared_engine()?.clone();
        let mut linker = Linker::new(&engine);
        linker.allow_shadowing(true);
        crate::hostcalls::add_to_linker(&mut linker)?;
        crate::wasi::add_to_linker(&mut linker)?;
        Ok(Host { engine, linker, modules: HashMap::new(), module_path })
    }

    /// Where the module of a filter named `name` is.
    pub fn resolve(&self, name: &str, explicit: Option<&Path>, fixture_dir: &Path) -> Result<PathBuf> {
        if let Some(path) = explicit {
            let path = fixture_dir.join(path);
            if !path.is_file() {
                bail!("module {} not found", path.display());
            }
            return Ok(path);
        }
        let file = format!("{name}.wasm");
        for dir in &self.module_path {
            let candidate = dir.join(&file);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        let searched: Vec<String> = self.module_path.iter().map(|d| d.display().to_string()).collect();
        bail!("module {file} not found in {} (run scripts/build-filters, or give `wasm: PATH`)", searched.join(", "))
    }

    /// The compiled module at `path`, ready to instantiate.
    pub fn module(&mut self, path: &Path) -> Result<InstancePre<VmState>> {
        if let Some(pre) = self.modules.get(path) {
            return Ok(pre.clone());
        }
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let module = Module::new(&self.engine, &bytes)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{}: not a valid Wasm module", path.display()))?;
        if !module.exports().any(|e| ABI_MARKERS.contains(&e.name())) {
            bail!("{}: not a Proxy-Wasm module (it exports none of {})", path.display(), ABI_MARKERS.join(", "));
        }
        crate::wasi::stub_unimplemented(&mut self.linker, &module)?;
        // Imports this host does not know (an ABI the module expects but we lack) trap if called.
        self.linker.define_unknown_imports_as_traps(&module)?;
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{}: linking", path.display()))?;
        self.modules.insert(path.to_path_buf(), pre.clone());
        Ok(pre)
    }
}

/// The process's one engine. Its epoch advances every 10 ms on a background thread, so that
/// `vm::CALLBACK_DEADLINE_TICKS` bounds a callback to about 5 s instead of hanging the run.
fn shared_engine() -> Result<&'static Engine> {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    if let Some(engine) = ENGINE.get() {
        return Ok(engine);
    }
    let mut config = Config::new();
    config.strategy(wasmtime::Strategy::Cranelift);
    config.epoch_interruption(true);
    let engine = ENGINE.get_or_init(|| Engine::new(&config).unwrap_or_else(|e| panic!("wasmtime engine: {e}")));
    let ticking = engine.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(10));
            ticking.increment_epoch();
        }
    });
    Ok(engine)
}
