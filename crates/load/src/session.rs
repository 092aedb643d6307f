//! MCP sessions the calls are spread over: opened before the schedule starts, reopened when one is lost.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{ClientConfig, Implementation};
use rmcp::service::{Peer, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::lock;
use crate::report::Recorder;

type Client = RunningService<RoleClient, ClientConfig>;

/// The name this client gives in `initialize`, so server-side metrics can tell load from real traffic.
pub const CLIENT_NAME: &str = "mcpulse-load";
/// Least time between two attempts to open the same session, so a dead server is not hammered.
const REOPEN_BACKOFF: Duration = Duration::from_secs(1);
/// How long closing a session (HTTP DELETE) may take at the end of a run.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest failure text kept from a server, which may answer with a whole HTML page.
const MAX_CAUSE_CHARS: usize = 300;

/// An open session and the tools it lists.
pub(crate) struct Opened {
    client: Client,
    pub(crate) tools: Vec<String>,
}

/// How to open a session.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) timeout: Duration,
    /// POSTs one session may have in progress; rmcp's default of 16 would make the client closed-loop.
    pub(crate) max_posts: usize,
    /// Sessions older than this are replaced by new ones.
    pub(crate) lifetime: Option<Duration>,
}

/// Opens one session as a real client does: `initialize`, then `tools/list`, within the timeout.
pub(crate) async fn open(target: &Target) -> Result<Opened, String> {
    let config = StreamableHttpClientTransportConfig::with_uri(target.url.clone())
        .max_concurrent_requests(target.max_posts);
    let transport = StreamableHttpClientTransport::from_config(config);
    let mut info = ClientConfig::default();
    info.client_info = Implementation::new(CLIENT_NAME, env!("CARGO_PKG_VERSION"));
    let attempt = async {
        let client = info
            .serve(transport)
            .await
            .map_err(|e| cause("initialize", &e))?;
        let tools = client
            .list_all_tools()
            .await
            .map_err(|e| cause("tools/list", &e))?
            .into_iter()
            .map(|t| t.name.into_owned())
            .collect();
        Ok(Opened { client, tools })
    };
    tokio::time::timeout(target.timeout, attempt)
        .await
        .map_err(|_| format!("no answer within {:?} (--timeout)", target.timeout))?
}

fn cause(step: &str, error: &dyn std::fmt::Display) -> String {
    let text: String = error.to_string().chars().take(MAX_CAUSE_CHARS).collect();
    format!("{step} failed: {text}")
}

#[derive(Default)]
struct Slot {
    client: Option<Client>,
    last_attempt: Option<Instant>,
    opened_at: Option<Instant>,
}

/// The run's sessions; call `k` goes to slot `k mod n`.
pub(crate) struct Sessions {
    // An async lock per slot: a call that finds its session lost reopens it while later calls of the same slot
    // wait for that one reopening instead of starting their own.
    slots: Vec<tokio::sync::Mutex<Slot>>,
    target: Target,
    recorder: Arc<Mutex<Recorder>>,
    stop: CancellationToken,
}

impl Sessions {
    /// Slots for `opened`, where `None` marks a session that failed to open and will be retried on use.
    pub(crate) fn new(
        opened: Vec<Option<Opened>>,
        target: Target,
        recorder: Arc<Mutex<Recorder>>,
    ) -> Arc<Self> {
        let now = Instant::now();
        let slots = opened
            .into_iter()
            .map(|o| {
                tokio::sync::Mutex::new(Slot {
                    client: o.map(|o| o.client),
                    last_attempt: Some(now),
                    opened_at: Some(now),
                })
            })
            .collect();
        Arc::new(Self {
            slots,
            target,
            recorder,
            stop: CancellationToken::new(),
        })
    }

    /// The live session for call `k`. A lost session (the server answered 404, or its transport closed) is
    /// reopened first, as the MCP spec asks of clients, at most once per [`REOPEN_BACKOFF`]; `None` when it
    /// cannot be, and the call then counts as a `session` error.
    pub(crate) async fn peer(&self, k: u64) -> Option<Peer<RoleClient>> {
        let index = usize::try_from(k % self.slots.len().max(1) as u64).unwrap_or(0);
        let mut slot = self.slots.get(index)?.lock().await;
        let expired = self
            .target
            .lifetime
            .zip(slot.opened_at)
            .is_some_and(|(lifetime, opened)| opened.elapsed() >= lifetime);
        if expired && let Some(old) = slot.client.take() {
            // Ends the old session (HTTP DELETE) once calls already sent on it have had their full timeout to be
            // answered, without making this call wait.
            let grace = self.target.timeout;
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, old.cancel()).await;
            });
            slot.last_attempt = None;
        }
        if let Some(client) = &slot.client {
            if !client.is_transport_closed() {
                return Some(client.peer().clone());
            }
            slot.client = None;
        }
        let due = slot
            .last_attempt
            .is_none_or(|at| at.elapsed() >= REOPEN_BACKOFF);
        if !due || self.stop.is_cancelled() {
            return None;
        }
        slot.last_attempt = Some(Instant::now());
        let opened = tokio::select! {
            opened = open(&self.target) => opened,
            () = self.stop.cancelled() => return None,
        };
        let mut recorder = lock(&self.recorder);
        match opened {
            Ok(opened) => {
                recorder.sessions_opened += 1;
                recorder.sessions_reopened += 1;
                let peer = opened.client.peer().clone();
                slot.client = Some(opened.client);
                slot.opened_at = Some(Instant::now());
                Some(peer)
            }
            Err(_) => {
                recorder.sessions_failed += 1;
                None
            }
        }
    }

    /// Marks the session of call `k` lost when its transport has closed, so the next use reopens it.
    pub(crate) async fn lost(&self, k: u64) -> bool {
        let index = usize::try_from(k % self.slots.len().max(1) as u64).unwrap_or(0);
        let Some(slot) = self.slots.get(index) else {
            return false;
        };
        let slot = slot.lock().await;
        slot.client.as_ref().is_none_or(|c| c.is_transport_closed())
    }

    /// Stops reopening, then ends every session (HTTP DELETE), each within [`CLOSE_TIMEOUT`].
    pub(crate) async fn close(&self) {
        self.stop.cancel();
        let mut closing = JoinSet::new();
        for slot in &self.slots {
            if let Some(client) = slot.lock().await.client.take() {
                closing.spawn(tokio::time::timeout(CLOSE_TIMEOUT, client.cancel()));
            }
        }
        // A session the server already forgot cannot be closed; that is not the run's failure.
        while closing.join_next().await.is_some() {}
    }
}

/// Opens `count` sessions at once; returns them (`None` for each failure) with the first failure's cause.
pub(crate) async fn open_all(
    target: &Target,
    count: usize,
) -> (Vec<Option<Opened>>, Option<String>) {
    let mut opening = JoinSet::new();
    for index in 0..count {
        let target = target.clone();
        opening.spawn(async move { (index, open(&target).await) });
    }
    let mut opened: Vec<Option<Opened>> = (0..count).map(|_| None).collect();
    let mut first_cause = None;
    while let Some(joined) = opening.join_next().await {
        match joined {
            Ok((index, Ok(session))) => {
                if let Some(place) = opened.get_mut(index) {
                    *place = Some(session);
                }
            }
            Ok((_, Err(cause))) => {
                first_cause.get_or_insert(cause);
            }
            Err(e) => {
                first_cause.get_or_insert(format!("opening a session stopped: {e}"));
            }
        }
    }
    (opened, first_cause)
}
