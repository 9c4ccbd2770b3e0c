//! What all VMs of one case share, as all workers of one Envoy process do: the virtual clock,
//! shared data (with compare-and-swap), shared queues, metrics and the collected log.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::abi::{LogLevel, Status, metric};

/// Identifies one VM: the worker it runs on and its position in the filter chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VmId {
    /// The worker (Envoy `--concurrency` index).
    pub worker: usize,
    /// The filter's position in the chain.
    pub filter: usize,
}

/// One line a filter logged, through `proxy_log` or WASI stdout/stderr.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LogLine {
    /// The worker whose VM logged it.
    pub worker: usize,
    /// The plugin name of the filter.
    pub filter: String,
    /// The level it was logged at.
    pub level: LogLevel,
    /// The message, as the module wrote it (lossily decoded as UTF-8).
    pub message: String,
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Envoy prints Wasm log lines as "wasm log <plugin>: <message>".
        write!(f, "[{}][worker {}] wasm log {}: {}", self.level.name(), self.worker, self.filter, self.message)
    }
}

/// A metric's kind, as `proxy_define_metric` declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug)]
struct Metric {
    name: String,
    kind: MetricKind,
    value: i64,
    samples: Vec<u64>,
}

/// The metric store: one value per name, whichever VM defined it (as in Envoy's stats scope).
#[derive(Debug, Default)]
pub struct Metrics {
    by_id: Vec<Metric>,
    id_by_name: HashMap<String, usize>,
}

impl Metrics {
    /// Defines (or finds) a metric and returns its ABI id, whose low bits carry its type.
    pub fn define(&mut self, kind: i32, name: &str) -> Result<u32, Status> {
        let kind = match kind {
            metric::COUNTER => MetricKind::Counter,
            metric::GAUGE => MetricKind::Gauge,
            metric::HISTOGRAM => MetricKind::Histogram,
            _ => return Err(Status::BadArgument),
        };
        let index = match self.id_by_name.get(name) {
            Some(index) => *index,
            None => {
                self.by_id.push(Metric { name: name.to_string(), kind, value: 0, samples: Vec::new() });
                self.id_by_name.insert(name.to_string(), self.by_id.len() - 1);
                self.by_id.len() - 1
            }
        };
        let type_bits = match self.by_id[index].kind {
            MetricKind::Counter => metric::COUNTER,
            MetricKind::Gauge => metric::GAUGE,
            MetricKind::Histogram => metric::HISTOGRAM,
        } as u32;
        Ok(((index as u32) << 2) | type_bits)
    }

    fn get_mut(&mut self, id: u32) -> Option<&mut Metric> {
        self.by_id.get_mut((id >> 2) as usize)
    }

    /// `proxy_increment_metric`: counters only go up; gauges go either way.
    pub fn increment(&mut self, id: u32, offset: i64) -> Status {
        match self.get_mut(id) {
            None => Status::NotFound,
            Some(m) => match m.kind {
                MetricKind::Counter if offset > 0 => {
                    m.value = m.value.saturating_add(offset);
                    Status::Ok
                }
                MetricKind::Counter | MetricKind::Histogram => Status::BadArgument,
                MetricKind::Gauge => {
                    m.value = m.value.saturating_add(offset);
                    Status::Ok
                }
            },
        }
    }

    /// `proxy_record_metric`: adds to a counter, sets a gauge, records a histogram sample.
    pub fn record(&mut self, id: u32, value: u64) -> Status {
        match self.get_mut(id) {
            None => Status::NotFound,
            Some(m) => {
                match m.kind {
                    MetricKind::Counter => m.value = m.value.saturating_add(value as i64),
                    MetricKind::Gauge => m.value = value as i64,
                    MetricKind::Histogram => {
                        m.samples.push(value);
                        m.value += 1;
                    }
                }
                Status::Ok
            }
        }
    }

    /// `proxy_get_metric`: histograms have no single value to read.
    pub fn get(&self, id: u32) -> Result<u64, Status> {
        let metric = self.by_id.get((id >> 2) as usize).ok_or(Status::NotFound)?;
        match metric.kind {
            MetricKind::Histogram => Err(Status::BadArgument),
            _ => Ok(metric.value as u64),
        }
    }

    /// The value of a metric by name: counters and gauges their value, histograms their sample count.
    pub fn value_of(&self, name: &str) -> Option<i64> {
        self.id_by_name.get(name).map(|index| self.by_id[*index].value)
    }

    /// Every metric by name, for reports.
    pub fn snapshot(&self) -> BTreeMap<String, i64> {
        self.by_id.iter().map(|m| (m.name.clone(), m.value)).collect()
    }
}

/// A shared queue, owned by the root context that registered it.
#[derive(Debug)]
struct Queue {
    vm_id: String,
    name: String,
    owner: VmId,
    items: VecDeque<Vec<u8>>,
}

/// State shared by every VM of a case.
#[derive(Debug)]
pub struct World {
    /// The virtual clock: nanoseconds since the Unix epoch.
    pub now_ns: u64,
    /// Filter log lines, in order.
    pub logs: Vec<LogLine>,
    /// Whether to keep log lines (the benchmark turns this off).
    pub keep_logs: bool,
    /// Metrics by name.
    pub metrics: Metrics,
    shared_data: HashMap<(String, Vec<u8>), (Vec<u8>, u32)>,
    next_cas: u32,
    queues: Vec<Queue>,
    /// Queues that received an item, to wake their owners after the current callback.
    pub ready_queues: Vec<(VmId, u32)>,
    /// The Envoy clusters that exist: an http call to any other is refused (`BadArgument`).
    pub clusters: std::collections::HashSet<String>,
}

impl World {
    /// A world whose clock starts at `start_ns`.
    pub fn new(start_ns: u64) -> World {
        World {
            now_ns: start_ns,
            logs: Vec::new(),
            keep_logs: true,
            metrics: Metrics::default(),
            shared_data: HashMap::new(),
            next_cas: 1,
            queues: Vec::new(),
            ready_queues: Vec::new(),
            clusters: Default::default(),
        }
    }

    /// `proxy_get_shared_data`: the value and its CAS token.
    pub fn get_shared(&self, vm_id: &str, key: &[u8]) -> Option<(Vec<u8>, u32)> {
        self.shared_data.get(&(vm_id.to_string(), key.to_vec())).cloned()
    }

    /// `proxy_set_shared_data`: a CAS token of 0 writes unconditionally; any other token must be
    /// the one the current value carries, or the write fails with `CasMismatch`.
    pub fn set_shared(&mut self, vm_id: &str, key: &[u8], value: &[u8], cas: u32) -> Status {
        let slot = (vm_id.to_string(), key.to_vec());
        if cas != 0 {
            match self.shared_data.get(&slot) {
                Some((_, current)) if *current == cas => {}
                _ => return Status::CasMismatch,
            }
        }
        let token = self.next_cas;
        self.next_cas = self.next_cas.wrapping_add(1).max(1);
        self.shared_data.insert(slot, (value.to_vec(), token));
        Status::Ok
    }

    /// How many shared-data keys hold a non-empty value (an empty value is how filters delete).
    pub fn shared_data_len(&self) -> usize {
        self.shared_data.values().filter(|(value, _)| !value.is_empty()).count()
    }

    /// `proxy_register_shared_queue`: registering again returns the same id and moves ownership.
    pub fn register_queue(&mut self, vm_id: &str, name: &str, owner: VmId) -> u32 {
        if let Some(index) = self.queues.iter().position(|q| q.vm_id == vm_id && q.name == name) {
            self.queues[index].owner = owner;
            return index as u32 + 1;
        }
        self.queues.push(Queue { vm_id: vm_id.to_string(), name: name.to_string(), owner, items: VecDeque::new() });
        self.queues.len() as u32
    }

    /// `proxy_resolve_shared_queue`.
    pub fn resolve_queue(&self, vm_id: &str, name: &str) -> Option<u32> {
        self.queues.iter().position(|q| q.vm_id == vm_id && q.name == name).map(|index| index as u32 + 1)
    }

    /// `proxy_enqueue_shared_queue`: the owner is woken with `proxy_on_queue_ready` later.
    pub fn enqueue(&mut self, queue_id: u32, value: &[u8]) -> Status {
        let Some(queue) = queue_id.checked_sub(1).and_then(|index| self.queues.get_mut(index as usize)) else {
            return Status::NotFound;
        };
        queue.items.push_back(value.to_vec());
        let owner = queue.owner;
        self.ready_queues.push((owner, queue_id));
        Status::Ok
    }

    /// `proxy_dequeue_shared_queue`: `Empty` when nothing is queued.
    pub fn dequeue(&mut self, queue_id: u32) -> Result<Vec<u8>, Status> {
        let queue =
            queue_id.checked_sub(1).and_then(|index| self.queues.get_mut(index as usize)).ok_or(Status::NotFound)?;
        queue.items.pop_front().ok_or(Status::Empty)
    }
}

/// A deterministic generator for WASI `random_get` (SplitMix64), so that replays repeat.
#[derive(Clone, Debug)]
pub struct SeededRandom(u64);

impl SeededRandom {
    /// A generator for one VM, from the case seed and the VM's identity.
    pub fn new(seed: u64, vm: VmId) -> SeededRandom {
        SeededRandom(seed ^ ((vm.worker as u64) << 32) ^ ((vm.filter as u64) << 16) ^ 0x5EED)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fills `out` with the next bytes of the sequence.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_cas_token_fails_and_fresh_one_succeeds() {
        let mut world = World::new(0);
        assert_eq!(world.set_shared("", b"k", b"1", 0), Status::Ok);
        let (_, token) = world.get_shared("", b"k").expect("value was set");
        assert_eq!(world.set_shared("", b"k", b"2", token), Status::Ok);
        assert_eq!(world.set_shared("", b"k", b"3", token), Status::CasMismatch);
        let (value, fresh) = world.get_shared("", b"k").expect("value was set");
        assert_eq!(value, b"2");
        assert_eq!(world.set_shared("", b"k", b"3", fresh), Status::Ok);
        assert_eq!(world.set_shared("", b"missing", b"x", 7), Status::CasMismatch);
        assert!(world.get_shared("other-vm", b"k").is_none(), "shared data is scoped by vm_id");
    }

    #[test]
    fn counters_reject_non_positive_increments_and_histograms_have_no_value() {
        let mut metrics = Metrics::default();
        let counter = metrics.define(metric::COUNTER, "c").expect("valid kind");
        assert_eq!(metrics.define(metric::COUNTER, "c"), Ok(counter));
        assert_eq!(metrics.increment(counter, 2), Status::Ok);
        assert_eq!(metrics.increment(counter, 0), Status::BadArgument);
        assert_eq!(metrics.get(counter), Ok(2));
        let gauge = metrics.define(metric::GAUGE, "g").expect("valid kind");
        assert_eq!(metrics.increment(gauge, -3), Status::Ok);
        assert_eq!(metrics.value_of("g"), Some(-3));
        let histogram = metrics.define(metric::HISTOGRAM, "h").expect("valid kind");
        assert_eq!(metrics.record(histogram, 9), Status::Ok);
        assert_eq!(metrics.get(histogram), Err(Status::BadArgument));
        assert_eq!(metrics.define(7, "bad"), Err(Status::BadArgument));
        assert_eq!(metrics.increment(4000, 1), Status::NotFound);
    }

    #[test]
    fn queues_wake_their_owner() {
        let mut world = World::new(0);
        let owner = VmId { worker: 1, filter: 0 };
        let id = world.register_queue("", "q", owner);
        assert_eq!(world.resolve_queue("", "q"), Some(id));
        assert_eq!(world.resolve_queue("", "other"), None);
        assert_eq!(world.dequeue(id), Err(Status::Empty));
        assert_eq!(world.enqueue(id, b"x"), Status::Ok);
        assert_eq!(world.ready_queues, vec![(owner, id)]);
        assert_eq!(world.dequeue(id), Ok(b"x".to_vec()));
        assert_eq!(world.enqueue(99, b"x"), Status::NotFound);
    }

    #[test]
    fn random_is_deterministic_per_seed() {
        let vm = VmId { worker: 0, filter: 0 };
        let (mut a, mut b, mut c) = (SeededRandom::new(1, vm), SeededRandom::new(1, vm), SeededRandom::new(2, vm));
        let (mut x, mut y, mut z) = ([0u8; 13], [0u8; 13], [0u8; 13]);
        a.fill(&mut x);
        b.fill(&mut y);
        c.fill(&mut z);
        assert_eq!(x, y);
        assert_ne!(x, z);
    }
}
