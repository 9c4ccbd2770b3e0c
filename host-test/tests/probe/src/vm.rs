//! What one VM (one filter on one worker) remembers across its contexts, the log helpers, and
//! how values are written into log lines.

use std::cell::RefCell;
use std::collections::BTreeMap;

/// VM-wide state. A Proxy-Wasm VM is single-threaded, so a thread-local is the VM.
#[derive(Default)]
pub struct Vm {
    /// Prefix of every log line; set from the configuration.
    pub tag: Option<String>,
    /// Still starting: no stream context, tick or queue callback yet.
    pub starting: bool,
    /// What this VM logged while starting, for `startup_log`.
    pub startup: Vec<String>,
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
    static VM: RefCell<Vm> = RefCell::new(Vm { starting: true, ..Vm::default() });
}

/// Runs `f` with the VM state. Do not call the host from `f`.
pub fn with<T>(f: impl FnOnce(&mut Vm) -> T) -> T {
    VM.with_borrow_mut(f)
}

/// The VM is serving: stop recording startup lines.
pub fn started() {
    with(|vm| vm.starting = false);
}

fn line(message: &str) -> String {
    with(|vm| {
        if vm.starting {
            vm.startup.push(message.to_owned());
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
