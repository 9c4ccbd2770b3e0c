//! What one VM (one filter on one worker) remembers across its contexts, the log helpers, and
//! how values are written into log lines.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

/// VM-wide state. A Proxy-Wasm VM is single-threaded, so a thread-local is the VM.
///
/// Envoy runs every filter of a chain that uses the same module, `vm_id` and VM configuration in
/// ONE VM (each plugin with its own root context), so what belongs to one plugin is kept per
/// root context: the log tag is the one of the context whose callback is running (set by
/// [`enter`] at the start of every callback), and the start-up lines are kept per root context.
#[derive(Default)]
pub struct Vm {
    /// Prefix of every log line: the `tag` of the plugin whose callback is running.
    pub tag: Option<String>,
    /// The root context of the plugin whose callback is running.
    pub root: u32,
    /// Root contexts that are serving: they had a stream context, tick or queue callback.
    pub serving: BTreeSet<u32>,
    /// What each root context's plugin logged while starting, for `startup_log`.
    pub startup: BTreeMap<u32, Vec<String>>,
    /// Metric ids by name, from `metric_define`.
    pub metrics: BTreeMap<String, u32>,
    /// Queue ids by name, from `queue_register`/`queue_resolve`.
    pub queues: BTreeMap<String, u32>,
    /// The CAS token of the last `shared_get` of each key.
    pub cas: BTreeMap<String, u32>,
    /// Ticks seen.
    pub ticks: u64,
    /// The bytes of the last `random` action.
    pub last_random: Option<Vec<u8>>,
}

thread_local! {
    static VM: RefCell<Vm> = RefCell::new(Vm::default());
}

/// Runs `f` with the VM state. Do not call the host from `f`.
pub fn with<T>(f: impl FnOnce(&mut Vm) -> T) -> T {
    VM.with_borrow_mut(f)
}

/// A callback of the plugin with root context `root` and log tag `tag` starts running. Until
/// the returned scope drops; then the previous plugin's tag is back, in case the host re-entered
/// the VM from inside another plugin's hostcall.
#[must_use]
pub fn enter(root: u32, tag: Option<&str>) -> Scope {
    with(|vm| {
        let previous = (vm.root, vm.tag.take());
        vm.root = root;
        vm.tag = tag.map(str::to_owned);
        Scope { previous: Some(previous) }
    })
}

/// Restores the running plugin of the enclosing callback when dropped.
pub struct Scope {
    previous: Option<(u32, Option<String>)>,
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some((root, tag)) = self.previous.take() {
            with(|vm| {
                vm.root = root;
                vm.tag = tag;
            });
        }
    }
}

/// The running plugin is serving: stop recording its startup lines.
pub fn started() {
    with(|vm| {
        let root = vm.root;
        vm.serving.insert(root);
    });
}

/// What the running plugin logged while starting.
pub fn startup_lines() -> Vec<String> {
    with(|vm| vm.startup.get(&vm.root).cloned().unwrap_or_default())
}

fn line(message: &str) -> String {
    with(|vm| {
        if !vm.serving.contains(&vm.root) {
            let root = vm.root;
            vm.startup.entry(root).or_default().push(message.to_owned());
        }
        format!("{}: {message}", vm.tag.as_deref().unwrap_or("probe"))
    })
}

/// Logs at info: `<tag>: <message>`.
pub fn say(message: impl AsRef<str>) {
    log::info!("{}", line(message.as_ref()));
}

/// Logs at warn; used when a hostcall answered something other than Ok.
pub fn warn(message: impl AsRef<str>) {
    log::warn!("{}", line(message.as_ref()));
}

/// Logs at error; used for the probe's own problems (bad configuration, unknown names).
pub fn error(message: impl AsRef<str>) {
    log::error!("{}", line(message.as_ref()));
}

/// The prefixed form of a message, for callers that log through `proxy_log` themselves.
pub fn prefixed(message: &str) -> String {
    line(message)
}

/// A value in a log line: quoted (Rust string escapes) when UTF-8, else `hex:…`.
pub fn quote(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("hex:{}", hex(bytes)),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A map in a log line: `[name="value", name="value"]`, in order.
pub fn pairs(pairs: &[(String, Vec<u8>)]) -> String {
    let items: Vec<String> = pairs.iter().map(|(name, value)| format!("{name}={}", quote(value))).collect();
    format!("[{}]", items.join(", "))
}
