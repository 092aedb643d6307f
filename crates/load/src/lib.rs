//! An open-loop MCP load generator: real streamable-HTTP sessions, calls issued on a schedule, bounded memory.
//!
//! [`run`] opens [`LoadPlan::sessions`] MCP sessions (`initialize`, `tools/list`), then sends `tools/call`
//! at the times the [`Schedule`] sets, whether or not earlier calls have been answered. Latency is measured
//! from each call's scheduled time, so a slow server cannot slow the client down and hide its own queueing
//! (coordinated omission). Outcomes go into HDR histograms and counters, never a list of samples.
#![forbid(unsafe_code)]

mod error;
mod plan;
mod report;
mod schedule;
mod session;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rmcp::model::CallToolRequestParams;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

pub use error::LoadError;
pub use plan::{
    Arrivals, LoadPlan, MAX_ARGUMENTS_BYTES, MAX_DURATION, MAX_IN_FLIGHT, MAX_RATE, MAX_SESSIONS,
    MAX_TIMEOUT, MAX_TOOL_NAME, MAX_URL, RateShape,
};
pub use report::{
    ErrorSummary, LagSummary, LatencySummary, LoadReport, OVERLOAD_CLIENT, SESSION, SessionSummary,
    TIMEOUT, TOOL_ERROR, TRANSPORT,
};
pub use schedule::Schedule;
pub use session::CLIENT_NAME;

use crate::report::{Recorder, ReportContext, error_type};
use crate::session::{Sessions, Target, open_all};

/// How often `run` reports progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// A snapshot handed to the progress callback while a run goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Time since the schedule started.
    pub elapsed: Duration,
    /// Time over which calls are scheduled.
    pub duration: Duration,
    /// Calls made due so far.
    pub due: u64,
    /// Calls the whole schedule is expected to make due.
    pub expected: u64,
    pub ok: u64,
    pub errors: u64,
    pub in_flight: usize,
    /// The schedule is over and the run waits for the last replies.
    pub draining: bool,
}

/// Runs `plan` and reports what happened. Individual call failures are counted in the report; an error
/// means the run could not start (bad plan, no session could be opened, the tool does not exist).
pub async fn run(
    plan: LoadPlan,
    progress: impl FnMut(Progress) + Send,
) -> Result<LoadReport, LoadError> {
    plan.validate()?;
    let url = plan.url.trim().to_owned();
    let target = Target {
        url: url.clone(),
        timeout: plan.timeout,
        max_posts: plan.max_in_flight.div_ceil(plan.sessions),
        lifetime: plan.session_lifetime,
    };
    let recorder = Arc::new(Mutex::new(Recorder::new()));
    let (opened, cause) = open_all(&target, plan.sessions).await;
    let count = opened.iter().flatten().count();
    let tools = opened.iter().flatten().next().map(|o| o.tools.clone());
    {
        let mut recorder = lock(&recorder);
        recorder.sessions_opened = count as u64;
        recorder.sessions_failed = (plan.sessions - count) as u64;
    }
    let sessions = Sessions::new(opened, target, Arc::clone(&recorder));
    let Some(tools) = tools else {
        return Err(LoadError::NoSession {
            url,
            sessions: plan.sessions,
            cause: cause.unwrap_or_else(|| "unknown".to_owned()),
        });
    };
    if !tools.contains(&plan.tool) {
        sessions.close().await;
        return Err(LoadError::UnknownTool {
            url,
            tool: plan.tool,
            available: tools,
        });
    }

    let schedule = Schedule::new(&plan.shape, plan.duration, plan.arrivals, plan.seed);
    let mut runner = Runner {
        expected: schedule.expected_calls().round() as u64,
        params: CallToolRequestParams::new(plan.tool.clone())
            .with_arguments(plan.arguments.clone()),
        recorder: Arc::clone(&recorder),
        in_flight: Arc::new(AtomicUsize::new(0)),
        peak_in_flight: Arc::new(AtomicUsize::new(0)),
        calls: TaskTracker::new(),
        start: Instant::now(),
        next_progress: Instant::now(),
        draining: false,
        plan: &plan,
        progress,
    };
    for (k, offset) in schedule.enumerate() {
        let due = runner.start + offset;
        runner.wait_until(due).await;
        runner.dispatch(&sessions, k as u64, due);
    }
    runner.wait_until(runner.start + plan.duration).await;
    runner.drain().await;
    sessions.close().await;
    runner.emit();

    let report = lock(&recorder).report(ReportContext {
        url,
        tool: plan.tool.clone(),
        schedule: plan.shape.describe(),
        arrivals: plan.arrivals,
        duration: plan.duration,
        elapsed: runner.start.elapsed(),
        sessions: plan.sessions,
        peak_in_flight: runner.peak_in_flight.load(Ordering::Relaxed),
    });
    Ok(report)
}

/// The scheduling loop's state.
struct Runner<'a, F> {
    plan: &'a LoadPlan,
    expected: u64,
    params: CallToolRequestParams,
    recorder: Arc<Mutex<Recorder>>,
    in_flight: Arc<AtomicUsize>,
    peak_in_flight: Arc<AtomicUsize>,
    calls: TaskTracker,
    start: Instant,
    next_progress: Instant,
    draining: bool,
    progress: F,
}

impl<F: FnMut(Progress)> Runner<'_, F> {
    /// Sleeps until `due`, reporting progress on the way; returns at once when `due` has passed, so a late
    /// scheduler catches up by sending the overdue calls back to back instead of dropping them.
    async fn wait_until(&mut self, due: Instant) {
        loop {
            let now = Instant::now();
            if now >= self.next_progress {
                self.emit();
                self.next_progress = now + PROGRESS_EVERY;
            }
            if now >= due {
                return;
            }
            tokio::time::sleep_until(due.min(self.next_progress)).await;
        }
    }

    /// Sends call `k`, due at `due`, without waiting for its reply.
    fn dispatch(&mut self, sessions: &Arc<Sessions>, k: u64, due: Instant) {
        lock(&self.recorder).due += 1;
        if self.in_flight.load(Ordering::Relaxed) >= self.plan.max_in_flight {
            lock(&self.recorder).error(OVERLOAD_CLIENT);
            return;
        }
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::Relaxed);
        lock(&self.recorder).sent(Instant::now().saturating_duration_since(due));
        let params = self.params.clone();
        let timeout = self.plan.timeout;
        let recorder = Arc::clone(&self.recorder);
        let in_flight = Arc::clone(&self.in_flight);
        let sessions = Arc::clone(sessions);
        self.calls.spawn(async move {
            // Dropping the call on timeout cancels it on the server too (rmcp sends notifications/cancelled).
            let attempt = async {
                let Some(peer) = sessions.peer(k).await else {
                    return Some(SESSION);
                };
                let error = error_type(&peer.call_tool(params.clone()).await);
                // A call that failed because its session was lost (the server or gateway answered 404) is sent
                // once more on a fresh session, as a spec-following client would.
                if error == Some(TRANSPORT) && sessions.lost(k).await {
                    let Some(peer) = sessions.peer(k).await else {
                        return Some(SESSION);
                    };
                    return error_type(&peer.call_tool(params).await);
                }
                error
            };
            let error = tokio::time::timeout(timeout, attempt)
                .await
                .unwrap_or(Some(TIMEOUT));
            lock(&recorder).outcome(error, due.elapsed());
            in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// Waits for the calls still in flight; each ends within the timeout on its own.
    async fn drain(&mut self) {
        self.draining = true;
        self.calls.close();
        loop {
            self.emit();
            if tokio::time::timeout(PROGRESS_EVERY, self.calls.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
    }

    fn emit(&mut self) {
        let snapshot = {
            let recorder = lock(&self.recorder);
            Progress {
                elapsed: self.start.elapsed(),
                duration: self.plan.duration,
                due: recorder.due,
                expected: self.expected,
                ok: recorder.ok,
                errors: recorder.errors_total(),
                in_flight: self.in_flight.load(Ordering::Relaxed),
                draining: self.draining,
            }
        };
        (self.progress)(snapshot);
    }
}

/// Locks `mutex`, also after a panic elsewhere: the counters it guards stay meaningful.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
