//! Agent configuration: listeners, default tool cost, worker pool, registration and drain, with validation.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::AgentError;

/// Longest CPU burn one call may ask for: past this a single call pins a worker for minutes.
pub const MAX_CPU_MS: u64 = 60_000;
/// Longest sleep one call may ask for.
pub const MAX_SLEEP_MS: u64 = 300_000;
/// Largest response one call may ask for: 16 MiB, the top of the message-size histogram.
pub const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
/// Most workers the pool accepts.
pub const MAX_WORKERS: usize = 4096;
/// Most calls that may wait for a worker.
pub const MAX_QUEUE: usize = 1_000_000;
/// Most connection threads: one per core is the point, and past a few hundred threads only add
/// memory and scheduling.
pub const MAX_IO_THREADS: usize = 256;

/// What one `work` call costs when its arguments leave a field out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostDefaults {
    /// CPU to burn per call, in milliseconds.
    pub cpu_ms: u64,
    /// Time to sleep per call (simulated I/O), in milliseconds.
    pub sleep_ms: u64,
    /// Size of the response text, in bytes.
    pub response_bytes: u64,
    /// Probability in 0..=1 that a call fails with a tool error.
    pub error_rate: f64,
}

impl Default for CostDefaults {
    /// Zero cost: a load test opts in to realistic cost explicitly.
    fn default() -> Self {
        Self {
            cpu_ms: 0,
            sleep_ms: 0,
            response_bytes: 0,
            error_rate: 0.0,
        }
    }
}

/// How the agent announces itself to a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationConfig {
    /// Base URL of the registry, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Bearer token with the publisher role for `server_name`'s namespace.
    pub token: Option<String>,
    /// The URL clients should use for this agent's MCP endpoint; `None` derives
    /// `http://<bound listen address>/mcp`, which is wrong behind NAT or when listening on 0.0.0.0.
    pub advertise_url: Option<String>,
    /// Labels stored with the instance, e.g. `zone=a`.
    pub labels: BTreeMap<String, String>,
    /// Time between heartbeats; the registry's default marks an instance unhealthy after 30 s.
    pub heartbeat_interval: Duration,
    /// Per-request timeout for registry calls.
    pub request_timeout: Duration,
}

impl RegistrationConfig {
    /// Registration at `url` with a 10 s heartbeat and a 5 s request timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: None,
            advertise_url: None,
            labels: BTreeMap::new(),
            heartbeat_interval: Duration::from_secs(10),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// Everything `mcpulse agent` needs to run.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentConfig {
    /// Where MCP is served (at `/mcp`).
    pub listen: SocketAddr,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics_listen: SocketAddr,
    /// The server name reported to clients and the registry, in the registry's `namespace/name` form.
    pub server_name: String,
    /// The version reported to clients and the registry.
    pub version: String,
    /// Cost of a `work` call whose arguments leave a field out.
    pub defaults: CostDefaults,
    /// Seed for the error-rate draws, so a run's failure pattern can be replayed.
    pub seed: u64,
    /// Calls that may run their cost at once.
    pub workers: usize,
    /// Calls that may wait for a worker; one more fails fast with a saturation error.
    pub max_queue: usize,
    /// Threads serving MCP connections, each on a single-threaded runtime of its own: a connection
    /// and every task its requests spawn stay on one thread, with no cross-thread wake-ups per call.
    /// Each accepted connection goes to the thread with the fewest open connections.
    pub io_threads: usize,
    /// How long a connection thread keeps polling its sockets after the last read or write before it
    /// sleeps: the next request of a client that is waiting on an answer is then read without waking a
    /// sleeping CPU. Costs at most this much CPU after each burst of traffic; zero turns it off.
    pub busy_poll: Duration,
    /// `None` runs without a registry.
    pub registration: Option<RegistrationConfig>,
    /// How long shutdown waits for in-flight calls before it cuts them off.
    pub drain_timeout: Duration,
    /// Serve stateless Streamable HTTP: no `Mcp-Session-Id`, every POST answered on its own (plain
    /// JSON for a call that sends nothing before its result), GET and DELETE refused. Any replica
    /// can then answer any request without session affinity, but the server can never reach a
    /// client on its own (no server-initiated requests or notifications, no stream resumption).
    pub stateless: bool,
}

impl AgentConfig {
    /// Defaults: the CLI's addresses, zero cost, one worker and one connection thread per CPU, a
    /// queue of 64 per worker, no registry, a 30 s drain and stateful sessions.
    pub fn new(listen: SocketAddr, metrics_listen: SocketAddr) -> Self {
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            listen,
            metrics_listen,
            server_name: "io.mcpulse/agent".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            defaults: CostDefaults::default(),
            seed: 0,
            workers,
            max_queue: workers * 64,
            io_threads: workers,
            busy_poll: Duration::ZERO,
            registration: None,
            drain_timeout: Duration::from_secs(30),
            stateless: false,
        }
    }

    /// Checks every field, naming the first one out of range and its accepted range.
    pub fn validate(&self) -> Result<(), AgentError> {
        let d = &self.defaults;
        check_max("--cpu-ms", d.cpu_ms, MAX_CPU_MS)?;
        check_max("--sleep-ms", d.sleep_ms, MAX_SLEEP_MS)?;
        check_max("--response-bytes", d.response_bytes, MAX_RESPONSE_BYTES)?;
        if !(0.0..=1.0).contains(&d.error_rate) {
            return Err(AgentError::config(
                "--error-rate",
                format!("is {}; use a probability from 0 to 1", d.error_rate),
            ));
        }
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return Err(AgentError::config(
                "--workers",
                format!("is {}; use 1 to {MAX_WORKERS}", self.workers),
            ));
        }
        if !(1..=MAX_IO_THREADS).contains(&self.io_threads) {
            return Err(AgentError::config(
                "--io-threads",
                format!(
                    "is {}; use 1 to {MAX_IO_THREADS} (one per CPU core is plenty)",
                    self.io_threads
                ),
            ));
        }
        if let Err(too_long) = mcpulse_percore::check_busy_poll(self.busy_poll) {
            return Err(AgentError::config("--busy-poll", too_long.to_string()));
        }
        if self.max_queue > MAX_QUEUE {
            return Err(AgentError::config(
                "--max-queue",
                format!("is {}; use 0 to {MAX_QUEUE}", self.max_queue),
            ));
        }
        if self.listen == self.metrics_listen && self.listen.port() != 0 {
            return Err(AgentError::config(
                "--metrics-listen",
                format!(
                    "is the same address as --listen ({}); give each its own port",
                    self.listen
                ),
            ));
        }
        check_server_name(&self.server_name)?;
        if self.version.is_empty() || self.version.len() > 255 {
            return Err(AgentError::config(
                "--version",
                "must be 1 to 255 bytes, e.g. 1.2.3",
            ));
        }
        if let Some(registration) = &self.registration {
            registration.validate()?;
        }
        Ok(())
    }
}

impl RegistrationConfig {
    fn validate(&self) -> Result<(), AgentError> {
        let url = reqwest::Url::parse(&self.url).map_err(|e| {
            AgentError::config(
                "--registry",
                format!(
                    "'{}' is not a URL ({e}); use e.g. http://127.0.0.1:8080",
                    self.url
                ),
            )
        })?;
        // This build links no TLS stack, so an https registry would fail on every call.
        if url.scheme() != "http" || !url.has_host() {
            return Err(AgentError::config(
                "--registry",
                format!(
                    "'{}' must be an http:// URL with a host, e.g. http://127.0.0.1:8080",
                    self.url
                ),
            ));
        }
        if let Some(token) = &self.token
            && (token.is_empty()
                || token.len() > 4096
                || !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(AgentError::config(
                "--token",
                "must be 1 to 4096 printable ASCII characters without spaces, as printed by `mcpulse registry token create`",
            ));
        }
        if let Some(advertise) = &self.advertise_url {
            let ok = reqwest::Url::parse(advertise)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            if !ok || advertise.len() > 2048 {
                return Err(AgentError::config(
                    "--advertise-url",
                    format!(
                        "'{advertise}' must be an http(s) URL of at most 2048 bytes, e.g. http://10.0.0.7:3001/mcp"
                    ),
                ));
            }
        }
        if self.labels.len() > 64 {
            return Err(AgentError::config(
                "--label",
                format!(
                    "{} labels given; the registry keeps at most 64",
                    self.labels.len()
                ),
            ));
        }
        for (key, value) in &self.labels {
            let key_ok = (1..=63).contains(&key.len())
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'));
            if !key_ok || value.len() > 256 {
                return Err(AgentError::config(
                    "--label",
                    format!(
                        "'{key}={value}': keys are 1 to 63 letters, digits, '_', '-', '.' or '/'; values at most 256 bytes"
                    ),
                ));
            }
        }
        if self.heartbeat_interval < Duration::from_millis(10)
            || self.heartbeat_interval > Duration::from_secs(3600)
        {
            return Err(AgentError::config(
                "--heartbeat-interval",
                format!(
                    "is {:?}; use 10ms to 1h (the registry marks an instance unhealthy after 30 s by default)",
                    self.heartbeat_interval
                ),
            ));
        }
        if self.request_timeout.is_zero() || self.request_timeout > Duration::from_secs(300) {
            return Err(AgentError::config(
                "registry request timeout",
                format!(
                    "is {:?}; use more than 0 and at most 300 s",
                    self.request_timeout
                ),
            ));
        }
        Ok(())
    }
}

fn check_max(field: &'static str, value: u64, max: u64) -> Result<(), AgentError> {
    if value > max {
        return Err(AgentError::config(
            field,
            format!("is {value}; use 0 to {max}"),
        ));
    }
    Ok(())
}

/// The registry's rule: a reverse-DNS namespace, one slash, a name.
fn check_server_name(name: &str) -> Result<(), AgentError> {
    let valid = (3..=200).contains(&name.len())
        && name.split_once('/').is_some_and(|(namespace, rest)| {
            !namespace.is_empty()
                && !rest.is_empty()
                && namespace
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    if valid {
        Ok(())
    } else {
        Err(AgentError::config(
            "--server-name",
            format!(
                "'{name}' must be a reverse-DNS namespace, one slash and a name, like io.example/agent"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> AgentConfig {
        let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
        AgentConfig::new(addr, addr)
    }

    #[test]
    fn validation_names_the_field() {
        type Edit = fn(&mut AgentConfig);
        let cases: [(Edit, Option<&str>, &str); 16] = [
            (|_| {}, None, "defaults are valid"),
            (
                |c| c.defaults.cpu_ms = MAX_CPU_MS + 1,
                Some("--cpu-ms"),
                "a burn past a minute",
            ),
            (
                |c| c.defaults.sleep_ms = MAX_SLEEP_MS + 1,
                Some("--sleep-ms"),
                "a sleep past five minutes",
            ),
            (
                |c| c.defaults.response_bytes = MAX_RESPONSE_BYTES + 1,
                Some("--response-bytes"),
                "past 16 MiB",
            ),
            (
                |c| c.defaults.error_rate = 1.5,
                Some("--error-rate"),
                "not a probability",
            ),
            (
                |c| c.defaults.error_rate = f64::NAN,
                Some("--error-rate"),
                "NaN is no probability",
            ),
            (
                |c| c.workers = 0,
                Some("--workers"),
                "no worker could ever run a call",
            ),
            (
                |c| c.io_threads = 0,
                Some("--io-threads"),
                "no thread could ever serve a connection",
            ),
            (
                |c| c.io_threads = MAX_IO_THREADS + 1,
                Some("--io-threads"),
                "more threads than any machine has cores for",
            ),
            (
                |c| c.busy_poll = mcpulse_percore::MAX_BUSY_POLL + Duration::from_nanos(1),
                Some("--busy-poll"),
                "polling that long only burns CPU",
            ),
            (
                |c| c.busy_poll = mcpulse_percore::MAX_BUSY_POLL,
                None,
                "the longest window is allowed",
            ),
            (
                |c| c.max_queue = MAX_QUEUE + 1,
                Some("--max-queue"),
                "unbounded in practice",
            ),
            (
                |c| c.server_name = "agent".to_owned(),
                Some("--server-name"),
                "no namespace",
            ),
            (
                |c| c.registration = Some(RegistrationConfig::new("https://r:8080")),
                Some("--registry"),
                "no TLS in this build",
            ),
            (
                |c| c.registration = Some(RegistrationConfig::new("not a url")),
                Some("--registry"),
                "unparsable",
            ),
            (
                |c| {
                    let mut r = RegistrationConfig::new("http://r:8080");
                    r.labels.insert("bad key".to_owned(), "v".to_owned());
                    c.registration = Some(r);
                },
                Some("--label"),
                "the registry would reject the key",
            ),
        ];
        for (edit, field, why) in cases {
            let mut config = base();
            edit(&mut config);
            match (config.validate(), field) {
                (Ok(()), None) => {}
                (Err(AgentError::Config { field: got, .. }), Some(want)) => {
                    assert_eq!(got, want, "{why}")
                }
                (other, _) => panic!("{why}: unexpected {other:?}"),
            }
        }
    }
}
