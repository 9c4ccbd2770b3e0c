//! The servers behind Envoy in an end-to-end run, all on 127.0.0.1: the upstream (backend) that
//! records every request and answers with the fixture's `upstream` response, and one server per
//! cluster that `http_calls` answers name.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Result;

use super::http1::{Http1Message, read_message, reader, write_message};
use crate::fixture::{HeaderList, HttpCallAnswer};

/// What a mock server answers.
#[derive(Clone, Debug, Default)]
pub enum Behaviour {
    /// The backend: one response for every request of the current step.
    Upstream { status: u16, headers: HeaderList, body: Vec<u8>, trailers: HeaderList },
    /// A cluster for http calls: answers by path (and method), unanswered calls hang up.
    Cluster { name: String, answers: Vec<HttpCallAnswer> },
    /// Before a step sets one.
    #[default]
    Closed,
}

#[derive(Default)]
struct State {
    behaviour: Behaviour,
    received: Vec<Http1Message>,
}

/// A running mock server.
pub struct MockServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Binds a free port on 127.0.0.1 and serves until dropped.
    pub fn start() -> Result<MockServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_state, thread_stop) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for connection in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(connection) = connection else { continue };
                let state = thread_state.clone();
                std::thread::spawn(move || serve(connection, state));
            }
        });
        Ok(MockServer { port, state, stop, thread: Some(thread) })
    }

    /// Sets what it answers from now on.
    pub fn set(&self, behaviour: Behaviour) {
        if let Ok(mut state) = self.state.lock() {
            state.behaviour = behaviour;
        }
    }

    /// Takes the requests received so far.
    pub fn take_received(&self) -> Vec<Http1Message> {
        self.state.lock().map(|mut s| std::mem::take(&mut s.received)).unwrap_or_default()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves requests on one (keep-alive) connection until the peer closes it.
fn serve(connection: TcpStream, state: Arc<Mutex<State>>) {
    let _ = connection.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut input) = reader(&connection) else {
        return;
    };
    let mut output = connection;
    while let Ok(Some(request)) = read_message(&mut input, false, false) {
        let behaviour = match state.lock() {
            Ok(mut state) => {
                state.received.push(request.clone());
                state.behaviour.clone()
            }
            Err(_) => return,
        };
        let answered = match behaviour {
            Behaviour::Upstream { status, headers, body, trailers } => write_message(
                &mut output,
                &format!("HTTP/1.1 {status} {}", reason(status)),
                &headers.0,
                &body,
                &trailers.0,
            )
            .is_ok(),
            Behaviour::Cluster { name, answers } => match answer_call(&mut output, &name, &answers, &request) {
                Some(answered) => answered,
                // Nothing answers this call: say nothing, so that its timeout passes in Envoy.
                None => continue,
            },
            Behaviour::Closed => false,
        };
        if !answered {
            let _ = output.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Answers a call as the fixture says: `Some(true)` answered, `Some(false)` hang up (`fail`),
/// `None` no answer at all.
fn answer_call(
    output: &mut TcpStream,
    cluster: &str,
    answers: &[HttpCallAnswer],
    request: &Http1Message,
) -> Option<bool> {
    let mut parts = request.start_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let found = answers.iter().find(|answer| {
        let m = &answer.matcher;
        m.cluster.as_deref().is_none_or(|c| c == cluster)
            && m.path.as_deref().is_none_or(|p| p == path)
            && m.method.as_deref().is_none_or(|x| x == method)
    });
    let answer = found?;
    if let Some(delay) = answer.delay {
        std::thread::sleep(delay.0);
    }
    if answer.fail {
        return Some(false);
    }
    let (status, headers, body, trailers) = match &answer.response {
        Some(r) => (r.status, r.headers.0.clone(), r.body.clone().into_bytes(), r.trailers.0.clone()),
        None => (200, Vec::new(), Vec::new(), Vec::new()),
    };
    Some(write_message(output, &format!("HTTP/1.1 {status} {}", reason(status)), &headers, &body, &trailers).is_ok())
}

/// A reason phrase (HTTP/1.1 wants one; Envoy ignores it).
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
