//! Validated settings of one meter process, independent of how they were given (flags, env, TOML).

use std::net::SocketAddr;
use std::time::Duration;

use http::Uri;

use crate::MeterError;

/// Most worker threads: past the core count more threads only add switching.
pub const MAX_WORKERS: usize = 256;

/// One worker per CPU the process may use (the cgroup quota counts, so a pod limited to one core gets one).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Where the meter sends traffic: HTTP upstreams (sidecar or gateway) or a stdio child process.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Reverse proxy for MCP streamable HTTP; one upstream is a sidecar, several make a gateway.
    Http {
        listen: SocketAddr,
        upstreams: Vec<Upstream>,
    },
    /// Runs `command` with `args` as a child and meters its newline-delimited JSON-RPC on stdin/stdout.
    Stdio { command: String, args: Vec<String> },
}

/// An upstream MCP server, reached at `base` with the client's path appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    pub base: Uri,
}

impl Upstream {
    /// Parses an upstream base URL such as `http://127.0.0.1:3001` or `http://10.0.0.7:8080/prefix`.
    pub fn parse(text: &str) -> Result<Self, MeterError> {
        let invalid = |why: &str| MeterError::Config {
            field: "upstream".into(),
            message: format!(
                "{text:?} is not a usable upstream URL: {why}; expected e.g. http://127.0.0.1:3001"
            ),
        };
        let base: Uri = text
            .parse()
            .map_err(|_| invalid("it does not parse as a URL"))?;
        match base.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(invalid(&format!(
                    "scheme {other:?} is not supported, use http"
                )));
            }
            None => return Err(invalid("it has no scheme")),
        }
        if base.authority().is_none() {
            return Err(invalid("it has no host"));
        }
        if base.query().is_some() {
            return Err(invalid("it must not have a query string"));
        }
        Ok(Self { base })
    }

    /// The base URL's path without its trailing slash: put before every client path.
    pub fn prefix(&self) -> &str {
        self.base.path().trim_end_matches('/')
    }

    /// The label value that names this upstream in metrics: operator-configured, so bounded.
    pub fn label(&self) -> String {
        self.base.to_string().trim_end_matches('/').to_string()
    }
}

/// Where the gateway finds more upstreams: the registry's healthy instances, refreshed periodically.
#[derive(Clone, Debug)]
pub struct Discovery {
    /// Base URL of the registry, e.g. `http://127.0.0.1:8080`.
    pub registry: Uri,
    /// Only instances of this server name (all instances when `None`).
    pub server_name: Option<String>,
    pub interval: Duration,
    /// Bearer token, for registries that require one for reads.
    pub token: Option<String>,
}

/// Admission control: how many requests an upstream serves at once and how many may wait.
#[derive(Clone, Copy, Debug)]
pub struct Admission {
    /// `None` admits everything immediately (the queue is then always empty).
    pub max_concurrency: Option<usize>,
    pub max_queue: usize,
    pub queue_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct MeterConfig {
    pub mode: Mode,
    pub discovery: Option<Discovery>,
    pub metrics_listen: SocketAddr,
    pub admission: Admission,
    /// Request bodies above this get 413; response bodies above it are relayed but not classified.
    pub max_body: usize,
    /// Time allowed for an upstream to send response headers.
    pub upstream_timeout: Duration,
    /// Time allowed for a client to send request headers and body.
    pub client_timeout: Duration,
    /// Time in-flight requests get to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Bound on requests awaiting a response; the oldest are evicted past it.
    pub max_pending: usize,
    /// Requests unanswered for this long are forgotten.
    pub pending_ttl: Duration,
    /// Sessions without traffic for this long are considered ended.
    pub session_idle_timeout: Duration,
    /// Distinct client-supplied values kept per label before overflowing to `_other`.
    pub label_limit: usize,
    /// Largest SSE event observed in full; larger ones are relayed but only counted.
    pub max_sse_event_bytes: usize,
    /// Threads serving client connections, each owning its connections from accept to close.
    pub workers: usize,
    /// How long a worker keeps polling its sockets after the last read or write before it sleeps; zero
    /// sleeps at once. Trades CPU for the wake-ups of a request/response exchange.
    pub busy_poll: Duration,
}

impl MeterConfig {
    /// Settings for an HTTP meter with every limit at its documented default.
    pub fn http(listen: SocketAddr, metrics_listen: SocketAddr, upstreams: Vec<Upstream>) -> Self {
        Self {
            mode: Mode::Http { listen, upstreams },
            discovery: None,
            metrics_listen,
            admission: Admission {
                max_concurrency: None,
                max_queue: 1024,
                queue_timeout: Duration::from_secs(10),
            },
            max_body: 4 * 1024 * 1024,
            upstream_timeout: Duration::from_secs(120),
            client_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            max_pending: 100_000,
            pending_ttl: Duration::from_secs(600),
            session_idle_timeout: Duration::from_secs(3600),
            label_limit: 100,
            max_sse_event_bytes: 1024 * 1024,
            workers: default_workers(),
            busy_poll: Duration::ZERO,
        }
    }

    /// Rejects combinations that cannot work, naming the setting to change.
    pub fn validate(&self) -> Result<(), MeterError> {
        let bad = |field: &str, message: &str| {
            Err(MeterError::Config {
                field: field.into(),
                message: message.into(),
            })
        };
        match &self.mode {
            Mode::Http { upstreams, .. } if upstreams.is_empty() && self.discovery.is_none() => {
                return bad(
                    "upstream",
                    "at least one --upstream (e.g. --upstream http://127.0.0.1:3001) or a --registry to discover upstreams from is required",
                );
            }
            Mode::Stdio { command, .. } if command.is_empty() => {
                return bad(
                    "command",
                    "--stdio needs a command after `--`, e.g. mcpulse meter --stdio -- python server.py",
                );
            }
            _ => {}
        }
        if self.admission.max_concurrency == Some(0) {
            return bad(
                "max-concurrency",
                "must be at least 1 (leave it unset for no limit)",
            );
        }
        if self.max_body == 0 {
            return bad("max-body", "must be at least 1 byte");
        }
        if self.max_pending == 0 {
            return bad("max-pending", "must be at least 1");
        }
        if self.label_limit == 0 {
            return bad("label-limit", "must be at least 1");
        }
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return bad(
                "workers",
                &format!(
                    "must be within 1..={MAX_WORKERS}, got {}; one per CPU core the meter may use is plenty",
                    self.workers
                ),
            );
        }
        if let Err(too_long) = mcpulse_percore::check_busy_poll(self.busy_poll) {
            return bad("busy-poll", &too_long.to_string());
        }
        for (field, value) in [
            ("upstream-timeout", self.upstream_timeout),
            ("client-timeout", self.client_timeout),
            ("pending-ttl", self.pending_ttl),
            ("session-idle-timeout", self.session_idle_timeout),
        ] {
            if value.is_zero() {
                return bad(field, "must be longer than zero");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls() {
        // (input, accepted, reason)
        let cases = [
            ("http://127.0.0.1:3001", true, "plain sidecar upstream"),
            ("http://10.0.0.7:8080/prefix", true, "a path prefix is kept"),
            (
                "https://example.com",
                false,
                "TLS upstreams are not supported yet",
            ),
            ("127.0.0.1:3001", false, "no scheme"),
            (
                "http://h/x?y=1",
                false,
                "query strings would be ambiguous when joined",
            ),
            ("not a url", false, "garbage"),
        ];
        for (input, accepted, reason) in cases {
            assert_eq!(
                Upstream::parse(input).is_ok(),
                accepted,
                "{input}: {reason}"
            );
        }
    }

    #[test]
    fn upstream_label_has_no_trailing_slash() {
        assert_eq!(
            Upstream::parse("http://127.0.0.1:3001/").unwrap().label(),
            "http://127.0.0.1:3001"
        );
    }

    #[test]
    fn validation_names_the_field() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut config = MeterConfig::http(addr, addr, vec![]);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("upstream"), "{err}");
        config.mode = Mode::Http {
            listen: addr,
            upstreams: vec![Upstream::parse("http://127.0.0.1:1").unwrap()],
        };
        config.admission.max_concurrency = Some(0);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("max-concurrency"), "{err}");
    }
}
