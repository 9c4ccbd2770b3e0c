//! The Proxy-Wasm glue every module shares: it runs a list of [`Stage`]s the way Envoy runs a chain
//! of filters, in one VM and one pass per request.
//!
//! - Request headers: read once (the union of what the stages need), each stage in order sees the
//!   changes of the ones before it; the changes are written once when the headers go on. A local
//!   reply ends the pass. A stage that waits pauses the request; root-level events (ticks, HTTP
//!   call answers) ask it again and the pass goes on from there.
//! - Body: when stages asked for it, the body is held until the end of the stream or the largest
//!   limit, then handed to those stages in order.
//! - Response headers: the stages that ran (up to the one that replied) in reverse order, with one
//!   read and one write.
//! - Stream end: every stage's `on_log`.
//!
//! A standalone filter is this with one stage; `shield` with several (see `filters/shield`).

use crate::abi::{self, Buffer, Map};
use crate::config::ConfigError;
use crate::headers::{HeaderMap, HeaderNeeds};
use crate::stage::{Flow, LocalReply, Request, Stage, StageStream, now_ns};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// Builds a module's stages from its plugin configuration.
pub type PipelineBuilder = fn(&[u8]) -> Result<Vec<Box<dyn Stage>>, ConfigError>;

/// The module entry point for a module whose stages `$build` (a [`PipelineBuilder`] path) builds
/// from the plugin configuration (`shield`: the stages its configuration lists).
///
/// Behind the `module` feature in each filter crate, so that `shield` can link the filters'
/// stages without their entry points.
#[macro_export]
macro_rules! module_entry {
    ($build:path) => {
        proxy_wasm::main! {{
            proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Trace);
            proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
                Box::new($crate::pipeline::PipelineRoot::new($build))
            });
        }}
    };
}

/// The module entry point of a standalone filter: one stage, built by `$stage` (a
/// [`crate::stage::StageBuilder`] path) from the whole plugin configuration.
#[macro_export]
macro_rules! standalone_module {
    ($stage:path) => {
        fn standalone_stages(
            configuration: &[u8],
        ) -> Result<Vec<Box<dyn $crate::stage::Stage>>, $crate::config::ConfigError> {
            Ok(vec![$stage(configuration)?])
        }
        $crate::module_entry!(standalone_stages);
    };
}

/// The configured stages of one plugin on one worker and what their streams share.
struct Configured {
    stages: Vec<Box<dyn Stage>>,
    request_needs: HeaderNeeds,
    response_needs: HeaderNeeds,
    /// Requests paused on a stage, by context ID.
    waiting: BTreeMap<u32, Rc<RefCell<Run>>>,
}

/// One per plugin and worker.
pub struct PipelineRoot {
    build: PipelineBuilder,
    configured: Option<Rc<RefCell<Configured>>>,
    tick: Option<Duration>,
    /// Per stage: when its tick last ran (ns), when several stages tick at different periods.
    last_ticks: Vec<u64>,
}

impl PipelineRoot {
    /// A root that builds its stages with `build` in `on_configure`.
    pub fn new(build: PipelineBuilder) -> Self {
        Self { build, configured: None, tick: None, last_ticks: Vec::new() }
    }

    /// Sets the host tick to the shortest period a stage wants; only calls the host on a change.
    fn reschedule(&mut self) {
        let Some(configured) = &self.configured else { return };
        let Ok(configured) = configured.try_borrow() else { return };
        let waiting = !configured.waiting.is_empty();
        let wanted = configured.stages.iter().filter_map(|stage| stage.tick_period(waiting)).min();
        if wanted != self.tick {
            self.tick = wanted;
            let _ = proxy_wasm::hostcalls::set_tick_period(wanted.unwrap_or(Duration::ZERO));
        }
    }

    /// Asks every waiting request's stage again; with `expire`, waits past their deadline end.
    fn resume_waiting(&self, expire: bool) {
        let Some(configured) = &self.configured else { return };
        let waiting: Vec<(u32, Rc<RefCell<Run>>)> = match configured.try_borrow() {
            Ok(configured) => configured.waiting.iter().map(|(id, run)| (*id, Rc::clone(run))).collect(),
            Err(_) => return,
        };
        let now = now_ns();
        for (context_id, run) in waiting {
            let Ok(mut run) = run.try_borrow_mut() else { continue };
            let Some(deadline) = run.deadline_ns else { continue };
            let wait_over = expire && now >= deadline;
            if !abi::set_effective_context(context_id) {
                // The stream is gone.
                run.deadline_ns = None;
                if let Ok(mut configured) = configured.try_borrow_mut() {
                    configured.waiting.remove(&context_id);
                }
                continue;
            }
            let outcome = run.resume(wait_over);
            if !matches!(outcome, Outcome::Paused) {
                if let Ok(mut configured) = configured.try_borrow_mut() {
                    configured.waiting.remove(&context_id);
                }
                if matches!(outcome, Outcome::Continue) {
                    let _ = abi::continue_request();
                }
            }
        }
    }
}

impl Context for PipelineRoot {
    fn on_http_call_response(&mut self, token_id: u32, num_headers: usize, body_size: usize, _num_trailers: usize) {
        let Some(configured) = self.configured.clone() else { return };
        if let Ok(mut configured) = configured.try_borrow_mut() {
            for stage in &mut configured.stages {
                stage.on_http_call_response(token_id, num_headers, body_size);
            }
        }
        self.resume_waiting(false);
        self.reschedule();
    }
}

impl RootContext for PipelineRoot {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        crate::log_level::follow_host_log_level();
        let Some(mut stages) = crate::config::load(plugin_configuration_size, self.build) else {
            return false;
        };
        let mut request_needs = HeaderNeeds::None;
        let mut response_needs = HeaderNeeds::None;
        for stage in &stages {
            let needs = stage.needs();
            request_needs = request_needs.union(needs.request_headers);
            response_needs = response_needs.union(needs.response_headers);
        }
        for stage in &mut stages {
            stage.start();
        }
        self.last_ticks = vec![now_ns(); stages.len()];
        self.configured =
            Some(Rc::new(RefCell::new(Configured { stages, request_needs, response_needs, waiting: BTreeMap::new() })));
        self.tick = None;
        self.reschedule();
        true
    }

    fn on_tick(&mut self) {
        let Some(configured) = self.configured.clone() else { return };
        if let Ok(mut configured) = configured.try_borrow_mut() {
            let now = now_ns();
            let waiting = !configured.waiting.is_empty();
            let ticking = configured.stages.iter().filter(|stage| stage.tick_period(waiting).is_some()).count();
            for (stage, last) in configured.stages.iter_mut().zip(self.last_ticks.iter_mut()) {
                let Some(period) = stage.tick_period(waiting) else { continue };
                // One ticking stage runs on every host tick (its own period); with several, each
                // runs once its period has passed (a tenth early is close enough: timers jitter).
                let period_ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
                if ticking > 1 && now.saturating_sub(*last) < period_ns - period_ns / 10 {
                    continue;
                }
                *last = now;
                stage.on_tick();
            }
        }
        self.resume_waiting(true);
        self.reschedule();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let run = self.configured.as_ref().and_then(|configured| {
            let streams = configured.try_borrow().ok()?.stages.iter().map(|stage| stage.stream(context_id)).collect();
            Some(Rc::new(RefCell::new(Run::new(context_id, streams))))
        });
        Some(Box::new(PipelineStream { configured: self.configured.clone(), run }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// How a pass over the request headers ended.
enum Outcome {
    /// Every stage let it through: the headers go on.
    Continue,
    /// A stage replied locally.
    Replied,
    /// A stage waits.
    Paused,
}

/// One request's pass through the stages.
struct Run {
    streams: Vec<Box<dyn StageStream>>,
    request: Request,
    /// The stage to run next on the request headers.
    next: usize,
    /// Stages that ran on the request (the response runs through these, in reverse).
    ran: usize,
    end_of_stream: bool,
    deadline_ns: Option<u64>,
    /// Stages waiting for the body, with their limits.
    body_readers: Vec<(usize, usize)>,
}

impl Run {
    fn new(context_id: u32, streams: Vec<Box<dyn StageStream>>) -> Self {
        Self {
            streams,
            request: Request::new(context_id),
            next: 0,
            ran: 0,
            end_of_stream: false,
            deadline_ns: None,
            body_readers: Vec::new(),
        }
    }

    /// Runs the stages from `self.next` on; performs a reply; writes the headers on Continue.
    fn run_headers(&mut self) -> Outcome {
        while let Some(stream) = self.streams.get_mut(self.next) {
            let flow = stream.on_request_headers(&mut self.request, self.end_of_stream);
            self.ran = self.next + 1;
            if let Some(outcome) = self.apply(flow) {
                return outcome;
            }
        }
        self.request.headers.flush();
        Outcome::Continue
    }

    /// Applies a stage's answer to the headers; `None` when the pass goes on.
    fn apply(&mut self, flow: Flow) -> Option<Outcome> {
        match flow {
            Flow::Continue => {
                self.next += 1;
                None
            }
            Flow::ReadBody { limit } => {
                if !self.end_of_stream {
                    self.body_readers.push((self.next, limit));
                }
                self.next += 1;
                None
            }
            Flow::Reply(reply) => {
                self.next = self.streams.len();
                send_reply(&reply);
                Some(Outcome::Replied)
            }
            Flow::Wait { deadline_ns } => {
                self.deadline_ns = Some(deadline_ns);
                Some(Outcome::Paused)
            }
        }
    }

    /// The waiting stage is asked again; on an answer the pass goes on.
    fn resume(&mut self, wait_over: bool) -> Outcome {
        let Some(stream) = self.streams.get_mut(self.next) else { return Outcome::Continue };
        let flow = stream.on_resume(&mut self.request, wait_over);
        if let Flow::Wait { .. } = flow {
            return Outcome::Paused;
        }
        self.deadline_ns = None;
        match self.apply(flow) {
            Some(outcome) => outcome,
            None => self.run_headers(),
        }
    }

    /// The largest body limit a stage asked for.
    fn body_limit(&self) -> usize {
        self.body_readers.iter().map(|(_, limit)| *limit).max().unwrap_or(0)
    }

    /// Hands the body to the stages that asked for it, in order; true when one replied.
    fn deliver_body(&mut self, body: &[u8], body_size: usize, end_of_stream: bool) -> bool {
        for (index, limit) in std::mem::take(&mut self.body_readers) {
            let Some(stream) = self.streams.get_mut(index) else { continue };
            let part = body.get(..limit.min(body.len())).unwrap_or(body);
            if let Flow::Reply(reply) = stream.on_request_body(&mut self.request, part, body_size, end_of_stream) {
                send_reply(&reply);
                return true;
            }
        }
        false
    }
}

/// Sends a local reply; a refused reply is logged (the request still does not pass).
fn send_reply(reply: &LocalReply) {
    let headers: Vec<(&str, &[u8])> =
        reply.headers.iter().map(|(name, value)| (name.as_str(), value.as_bytes())).collect();
    let status = abi::send_local_response(reply.status, &headers, &reply.body, reply.details);
    if status != abi::OK {
        log::error!("local reply not sent status={} host_status={status}", reply.status);
    }
}

/// The answer while the plugin has no valid configuration.
fn not_configured_reply() -> LocalReply {
    LocalReply {
        status: 503,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: b"filter not configured\n".to_vec(),
        details: "wasm_shield_not_configured",
    }
}

/// One per request.
struct PipelineStream {
    configured: Option<Rc<RefCell<Configured>>>,
    /// `None` before a successful configuration: every request is refused (closed).
    run: Option<Rc<RefCell<Run>>>,
}

impl PipelineStream {
    fn forget_wait(&self, context_id: u32) {
        if let Some(configured) = &self.configured
            && let Ok(mut configured) = configured.try_borrow_mut()
        {
            configured.waiting.remove(&context_id);
        }
    }
}

impl Context for PipelineStream {}

impl HttpContext for PipelineStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let (Some(configured), Some(run_cell)) = (&self.configured, &self.run) else {
            send_reply(&not_configured_reply());
            return Action::Pause;
        };
        let Ok(mut run) = run_cell.try_borrow_mut() else {
            // Unreachable (one callback at a time); closed all the same.
            send_reply(&not_configured_reply());
            return Action::Pause;
        };
        run.end_of_stream = end_of_stream;
        if let Ok(configured) = configured.try_borrow() {
            run.request.headers.prefetch(&configured.request_needs);
        }
        match run.run_headers() {
            Outcome::Continue => Action::Continue,
            Outcome::Replied => Action::Pause,
            Outcome::Paused => {
                let context_id = run.request.context_id();
                drop(run);
                if let Ok(mut configured_mut) = configured.try_borrow_mut() {
                    configured_mut.waiting.insert(context_id, Rc::clone(run_cell));
                }
                Action::Pause
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(run_cell) = &self.run else { return Action::Continue };
        let Ok(mut run) = run_cell.try_borrow_mut() else { return Action::Continue };
        if run.body_readers.is_empty() {
            return Action::Continue;
        }
        let limit = run.body_limit();
        if !end_of_stream && body_size <= limit {
            // Held (buffered by Envoy) until the end or the limit.
            return Action::Pause;
        }
        let wanted = body_size.min(limit);
        let body = if wanted == 0 {
            Vec::new()
        } else {
            match abi::buffer_bytes(Buffer::RequestBody, 0, wanted) {
                Ok(bytes) => bytes.unwrap_or_default(),
                Err(status) => {
                    // Closed: a body the stages cannot read is not let through unread.
                    let request_id = run.request.request_id_for_log();
                    log::error!("cannot read the request body request_id={request_id} status={status}");
                    run.body_readers.clear();
                    send_reply(&LocalReply {
                        status: 500,
                        headers: vec![("content-type".into(), "text/plain".into())],
                        body: b"request body unreadable\n".to_vec(),
                        details: "wasm_shield_body_unreadable",
                    });
                    return Action::Pause;
                }
            }
        };
        if run.deliver_body(&body, body_size, end_of_stream) { Action::Pause } else { Action::Continue }
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let Some(run_cell) = &self.run else { return Action::Continue };
        let Ok(mut run) = run_cell.try_borrow_mut() else { return Action::Continue };
        if run.body_readers.is_empty() {
            return Action::Continue;
        }
        // The body ended without end_of_stream on data: what the host buffered is all of it.
        let limit = run.body_limit();
        let body = abi::buffer_bytes(Buffer::RequestBody, 0, limit).ok().flatten().unwrap_or_default();
        let size = body.len();
        if run.deliver_body(&body, size, true) { Action::Pause } else { Action::Continue }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let (Some(configured), Some(run_cell)) = (&self.configured, &self.run) else { return Action::Continue };
        let Ok(mut run) = run_cell.try_borrow_mut() else { return Action::Continue };
        let mut response = HeaderMap::new(Map::ResponseHeaders);
        if let Ok(configured) = configured.try_borrow() {
            response.prefetch(&configured.response_needs);
        }
        let run = &mut *run;
        let ran = run.ran.min(run.streams.len());
        for stream in run.streams.iter_mut().take(ran).rev() {
            stream.on_response_headers(&mut run.request, &mut response);
        }
        response.flush();
        Action::Continue
    }

    fn on_log(&mut self) {
        let Some(run_cell) = &self.run else { return };
        let Ok(mut run) = run_cell.try_borrow_mut() else { return };
        let run = &mut *run;
        for stream in &mut run.streams {
            stream.on_log(&mut run.request);
        }
    }
}

impl Drop for PipelineStream {
    fn drop(&mut self) {
        // A paused request whose client went away: forget it.
        if let Some(run) = &self.run
            && let Ok(run) = run.try_borrow()
            && run.deadline_ns.is_some()
        {
            self.forget_wait(run.request.context_id());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::HeaderMap;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// What the fake stages saw and did, in order.
    type Journal = Rc<RefCell<Vec<String>>>;

    /// A stage stream that records its calls and answers from a script.
    struct Scripted {
        name: &'static str,
        journal: Journal,
        on_headers: Vec<Flow>,
        on_body: Flow,
        set_header: Option<(&'static str, &'static str)>,
    }

    impl Scripted {
        fn boxed(name: &'static str, journal: &Journal, on_headers: Vec<Flow>) -> Box<dyn StageStream> {
            Box::new(Scripted {
                name,
                journal: Rc::clone(journal),
                on_headers,
                on_body: Flow::Continue,
                set_header: None,
            })
        }
        fn next_flow(&mut self) -> Flow {
            if self.on_headers.is_empty() { Flow::Continue } else { self.on_headers.remove(0) }
        }
    }

    impl StageStream for Scripted {
        fn on_request_headers(&mut self, request: &mut Request, _end_of_stream: bool) -> Flow {
            let seen = request.headers.get("x-seen").map(|v| String::from_utf8_lossy(v).into_owned());
            self.journal.borrow_mut().push(format!("{} headers x-seen={}", self.name, seen.unwrap_or_default()));
            if let Some((name, value)) = self.set_header {
                request.headers.set(name, value.as_bytes());
            }
            self.next_flow()
        }
        fn on_resume(&mut self, _request: &mut Request, wait_over: bool) -> Flow {
            self.journal.borrow_mut().push(format!("{} resume wait_over={wait_over}", self.name));
            self.next_flow()
        }
        fn on_request_body(&mut self, _request: &mut Request, body: &[u8], size: usize, end: bool) -> Flow {
            let text = String::from_utf8_lossy(body);
            self.journal.borrow_mut().push(format!("{} body {text} size={size} end={end}", self.name));
            self.on_body.clone()
        }
        fn on_response_headers(&mut self, _request: &mut Request, _response: &mut HeaderMap) {
            self.journal.borrow_mut().push(format!("{} response", self.name));
        }
    }

    fn run(streams: Vec<Box<dyn StageStream>>) -> Run {
        let mut run = Run::new(7, streams);
        run.request = Request::with_headers(7, HeaderMap::from_pairs(Map::RequestHeaders, &[(":path", b"/")]));
        run
    }

    fn reply(status: u16) -> Flow {
        Flow::Reply(LocalReply { status, headers: Vec::new(), body: Vec::new(), details: "test" })
    }

    fn responses(run: &mut Run) {
        let mut response = HeaderMap::from_pairs(Map::ResponseHeaders, &[]);
        let ran = run.ran;
        for stream in run.streams.iter_mut().take(ran).rev() {
            stream.on_response_headers(&mut run.request, &mut response);
        }
    }

    #[test]
    fn stages_run_in_order_and_see_earlier_changes() {
        let journal = Journal::default();
        let first = Box::new(Scripted {
            name: "a",
            journal: Rc::clone(&journal),
            on_headers: vec![],
            on_body: Flow::Continue,
            set_header: Some(("x-seen", "by-a")),
        });
        let mut run = run(vec![first, Scripted::boxed("b", &journal, vec![])]);
        assert!(matches!(run.run_headers(), Outcome::Continue));
        assert_eq!(*journal.borrow(), vec!["a headers x-seen=", "b headers x-seen=by-a"]);
        assert_eq!(run.ran, 2);
    }

    #[test]
    fn a_reply_ends_the_pass_and_only_earlier_stages_see_the_response() {
        let journal = Journal::default();
        let mut run = run(vec![
            Scripted::boxed("a", &journal, vec![]),
            Scripted::boxed("b", &journal, vec![reply(401)]),
            Scripted::boxed("c", &journal, vec![]),
        ]);
        assert!(matches!(run.run_headers(), Outcome::Replied));
        responses(&mut run);
        assert_eq!(*journal.borrow(), vec!["a headers x-seen=", "b headers x-seen=", "b response", "a response"]);
    }

    #[test]
    fn a_waiting_stage_is_asked_again_and_the_pass_goes_on_after_it() {
        let journal = Journal::default();
        let mut run = run(vec![
            Scripted::boxed("a", &journal, vec![]),
            Scripted::boxed("b", &journal, vec![Flow::Wait { deadline_ns: 5 }, Flow::Wait { deadline_ns: 5 }]),
            Scripted::boxed("c", &journal, vec![]),
        ]);
        assert!(matches!(run.run_headers(), Outcome::Paused));
        assert_eq!(run.deadline_ns, Some(5));
        assert!(matches!(run.resume(false), Outcome::Paused));
        assert!(matches!(run.resume(true), Outcome::Continue));
        assert_eq!(run.deadline_ns, None);
        assert_eq!(
            *journal.borrow(),
            vec![
                "a headers x-seen=",
                "b headers x-seen=",
                "b resume wait_over=false",
                "b resume wait_over=true",
                "c headers x-seen="
            ]
        );
    }

    #[test]
    fn body_readers_get_the_body_up_to_their_limit_in_order() {
        let journal = Journal::default();
        let mut run = run(vec![
            Scripted::boxed("a", &journal, vec![Flow::ReadBody { limit: 3 }]),
            Scripted::boxed("b", &journal, vec![]),
            Scripted::boxed("c", &journal, vec![Flow::ReadBody { limit: 10 }]),
        ]);
        assert!(matches!(run.run_headers(), Outcome::Continue));
        assert_eq!(run.body_limit(), 10);
        assert!(!run.deliver_body(b"abcdef", 6, true));
        assert!(run.body_readers.is_empty());
        let journal = journal.borrow();
        assert_eq!(journal[3], "a body abc size=6 end=true");
        assert_eq!(journal[4], "c body abcdef size=6 end=true");
    }

    #[test]
    fn a_request_without_a_body_asks_no_stage_for_one() {
        let journal = Journal::default();
        let mut run = run(vec![Scripted::boxed("a", &journal, vec![Flow::ReadBody { limit: 3 }])]);
        run.end_of_stream = true;
        assert!(matches!(run.run_headers(), Outcome::Continue));
        assert!(run.body_readers.is_empty());
    }

    #[test]
    fn a_body_reply_stops_later_readers() {
        let journal = Journal::default();
        let blocking = Box::new(Scripted {
            name: "a",
            journal: Rc::clone(&journal),
            on_headers: vec![Flow::ReadBody { limit: 8 }],
            on_body: reply(403),
            set_header: None,
        });
        let mut run = run(vec![blocking, Scripted::boxed("b", &journal, vec![Flow::ReadBody { limit: 8 }])]);
        assert!(matches!(run.run_headers(), Outcome::Continue));
        assert!(run.deliver_body(b"x", 1, true));
        assert_eq!(journal.borrow().last().map(String::as_str), Some("a body x size=1 end=true"));
    }
}
