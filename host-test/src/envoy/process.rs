//! One Envoy process for one case: started with a generated bootstrap, its log collected line
//! by line, its admin interface read, and always stopped — when dropped, and (through
//! `PR_SET_PDEATHSIG`) when this process dies or is interrupted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::abi::LogLevel;

/// A free port on 127.0.0.1 (bound and released; Envoy or a mock binds it next).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running Envoy.
pub struct Envoy {
    /// The binary it runs.
    pub binary: std::path::PathBuf,
    child: Child,
    /// Every line Envoy logged so far.
    pub log: Arc<Mutex<Vec<String>>>,
    admin_port: u16,
}

impl Envoy {
    /// Starts `binary` with `bootstrap` and `concurrency` workers, its `wasm` logger at
    /// `wasm_log_level` (what `proxy_get_log_level` then reports to the modules).
    pub fn start(
        binary: &Path,
        bootstrap: &Path,
        concurrency: usize,
        admin_port: u16,
        wasm_log_level: LogLevel,
    ) -> Result<Envoy> {
        // Envoy spells `warn` as `warning` on its command line.
        let wasm_level = match wasm_log_level {
            LogLevel::Warn => "warning",
            other => other.name(),
        };
        let mut command = Command::new(binary);
        command
            .arg("-c")
            .arg(bootstrap)
            .args(["--concurrency", &concurrency.to_string(), "--disable-hot-restart", "--log-level", "info"])
            .args(["--component-log-level", &format!("wasm:{wasm_level}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill Envoy with us.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().with_context(|| format!("starting {}", binary.display()))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            let lines = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(mut lines) = lines.lock() {
                        lines.push(line);
                    }
                }
            });
        }
        Ok(Envoy { binary: binary.to_path_buf(), child, log, admin_port })
    }

    /// Waits until the admin interface says LIVE; an error if Envoy exits or `timeout` passes.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("envoy exited during start-up ({status})");
            }
            if let Ok((200, _)) = self.admin("/ready") {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("envoy was not ready after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits for Envoy to exit by itself (a refused configuration); its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Option<std::process::ExitStatus>> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Ok(None)
    }

    /// A GET on the admin interface: status and body.
    pub fn admin(&self, path: &str) -> Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.admin_port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(stream, "GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Ok((status, body))
    }

    /// The value of every counter and gauge, by name.
    pub fn stats(&self) -> Result<std::collections::BTreeMap<String, i64>> {
        let (_, body) = self.admin("/stats?format=json")?;
        let body = dechunk(&body);
        let parsed: serde_json::Value = serde_json::from_str(&body).context("parsing /stats?format=json")?;
        let mut out = std::collections::BTreeMap::new();
        for stat in parsed["stats"].as_array().into_iter().flatten() {
            if let (Some(name), Some(value)) = (stat["name"].as_str(), stat["value"].as_i64()) {
                out.insert(name.to_string(), value);
            }
        }
        Ok(out)
    }

    /// The log lines from `from` on.
    pub fn log_since(&self, from: usize) -> Vec<String> {
        self.log.lock().map(|l| l.get(from..).map(<[String]>::to_vec).unwrap_or_default()).unwrap_or_default()
    }

    /// How many lines were logged so far.
    pub fn log_len(&self) -> usize {
        self.log.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The admin interface answers with a chunked body: join the chunks.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else {
            return if out.is_empty() { body.to_string() } else { out };
        };
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            return if out.is_empty() { body.to_string() } else { out };
        };
        if size == 0 || after.len() < size {
            return out;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
}
