//! The local actuator: agents as child processes that can be started, drained and stopped, and are restarted
//! when they crash — what a Deployment and its ReplicaSet do for pods.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::FleetError;

/// How each agent process is started.
#[derive(Clone, Debug)]
pub struct AgentTemplate {
    /// The `mcpulse` binary to run as `mcpulse agent`.
    pub mcpulse: PathBuf,
    pub registry_url: String,
    pub token: String,
    /// Extra `mcpulse agent` flags, e.g. `--sleep-ms 50`.
    pub extra_args: Vec<String>,
    pub log_dir: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// Takes no new sessions; stopped once its sessions are gone or the drain time is up.
    Draining {
        since: Instant,
    },
    /// Asked to exit (SIGTERM); it deregisters and finishes in-flight calls.
    Stopping,
    /// Crashed; restarted on its ports at `until`. Like a pod in CrashLoopBackOff it is still a replica, and
    /// it stays a scrape target, so monitoring sees it down.
    CrashBackoff {
        until: Instant,
    },
}

/// Restart delays as the kubelet's: 10 s after the first crash, doubling up to 5 minutes, and forgotten once an
/// agent has run for 10 minutes.
const FIRST_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
const BACKOFF_RESET: Duration = Duration::from_secs(600);

fn backoff(consecutive_crashes: u32) -> Duration {
    let doublings = consecutive_crashes.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

pub struct Agent {
    pub id: u32,
    pub mcp: SocketAddr,
    pub metrics: SocketAddr,
    pub phase: Phase,
    pub started: Instant,
    /// Crashes since the agent last ran for `BACKOFF_RESET`.
    crashes: u32,
    child: Child,
}

impl Agent {
    /// The gateway's name for this agent (its upstream URL).
    pub fn upstream(&self) -> String {
        format!("http://{}", self.mcp)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Asks a child process to exit (SIGTERM), as Kubernetes does before it kills a container.
pub(crate) fn terminate_child(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
}

pub struct Agents {
    template: AgentTemplate,
    list: Vec<Agent>,
    next_id: u32,
    pub restarts: u64,
}

fn free_addr() -> Result<SocketAddr, FleetError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|source| FleetError::Io {
            what: "find a free port for an agent".into(),
            source,
        })
}

impl Agents {
    pub fn new(template: AgentTemplate) -> Self {
        Self {
            template,
            list: Vec::new(),
            next_id: 1,
            restarts: 0,
        }
    }

    pub fn all(&self) -> &[Agent] {
        &self.list
    }

    /// Agents counted as replicas: running, draining (it still serves its sessions) or waiting to restart.
    pub fn current(&self) -> usize {
        self.list
            .iter()
            .filter(|a| a.phase != Phase::Stopping)
            .count()
    }

    pub fn running(&self) -> impl Iterator<Item = &Agent> {
        self.list.iter().filter(|a| a.phase == Phase::Running)
    }

    /// Starts one more agent on fresh ports.
    pub fn spawn(&mut self) -> Result<u32, FleetError> {
        let id = self.next_id;
        self.next_id += 1;
        let (mcp, metrics) = (free_addr()?, free_addr()?);
        let child = self.start(id, mcp, metrics)?;
        self.list.push(Agent {
            id,
            mcp,
            metrics,
            phase: Phase::Running,
            started: Instant::now(),
            crashes: 0,
            child,
        });
        Ok(id)
    }

    fn start(&self, id: u32, mcp: SocketAddr, metrics: SocketAddr) -> Result<Child, FleetError> {
        let log_path = self.template.log_dir.join(format!("agent-{id}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| FleetError::Io {
                what: format!("open {}", log_path.display()),
                source,
            })?;
        let err_log = log.try_clone().map_err(|source| FleetError::Io {
            what: format!("open {}", log_path.display()),
            source,
        })?;
        Command::new(&self.template.mcpulse)
            .arg("agent")
            .args([
                "--listen",
                &mcp.to_string(),
                "--metrics-listen",
                &metrics.to_string(),
            ])
            .args([
                "--registry",
                &self.template.registry_url,
                "--token",
                &self.template.token,
            ])
            .args([
                "--heartbeat-interval",
                "1s",
                "--label",
                &format!("fleet-agent={id}"),
                // Agents leave with `up`, even when it is killed outright.
                "--parent-pid",
                &std::process::id().to_string(),
            ])
            .args(&self.template.extra_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(|source| FleetError::Io {
                what: format!("start {} agent", self.template.mcpulse.display()),
                source,
            })
    }

    /// Notices exited agents and restarts crashed ones once their back-off is over: a running agent that exited
    /// crashed; a draining or stopping one is gone. Returns a line per event for the log.
    pub fn reap(&mut self, now: Instant) -> Vec<String> {
        let mut events = Vec::new();
        let mut index = 0;
        while index < self.list.len() {
            let agent = &mut self.list[index];
            match agent.phase {
                Phase::CrashBackoff { until } if now >= until => {
                    let (id, mcp, metrics) = (agent.id, agent.mcp, agent.metrics);
                    match self.start(id, mcp, metrics) {
                        Ok(child) => {
                            self.restarts += 1;
                            events.push(format!("agent {id} restarted"));
                            let agent = &mut self.list[index];
                            agent.child = child;
                            agent.started = now;
                            agent.phase = Phase::Running;
                        }
                        Err(error) => {
                            events.push(format!("agent {id} could not be restarted: {error}"));
                            self.list.remove(index);
                            continue;
                        }
                    }
                }
                Phase::CrashBackoff { .. } => {}
                Phase::Stopping => {
                    if let Some(status) = agent.child.try_wait().ok().flatten() {
                        events.push(format!("agent {} stopped ({status})", agent.id));
                        self.list.remove(index);
                        continue;
                    }
                }
                Phase::Draining { .. } => {
                    // It was leaving anyway: no restart.
                    if let Some(status) = agent.child.try_wait().ok().flatten() {
                        events.push(format!(
                            "agent {} exited while draining ({status})",
                            agent.id
                        ));
                        self.list.remove(index);
                        continue;
                    }
                }
                Phase::Running => {
                    if let Some(status) = agent.child.try_wait().ok().flatten() {
                        if now.duration_since(agent.started) >= BACKOFF_RESET {
                            agent.crashes = 0;
                        }
                        agent.crashes += 1;
                        let delay = backoff(agent.crashes);
                        agent.phase = Phase::CrashBackoff { until: now + delay };
                        events.push(format!(
                            "agent {} exited unexpectedly ({status}); restarting in {} s",
                            agent.id,
                            delay.as_secs()
                        ));
                    }
                }
            }
            index += 1;
        }
        events
    }

    pub fn begin_drain(&mut self, id: u32, now: Instant) {
        if let Some(agent) = self
            .list
            .iter_mut()
            .find(|a| a.id == id && a.phase == Phase::Running)
        {
            agent.phase = Phase::Draining { since: now };
        }
    }

    /// Sends SIGTERM: the agent deregisters, refuses new sessions and finishes in-flight calls, then exits.
    pub fn terminate(&mut self, id: u32) {
        if let Some(agent) = self.list.iter_mut().find(|a| a.id == id) {
            // An agent waiting to restart has no process left: signalling its old pid could hit a stranger.
            if !matches!(agent.phase, Phase::CrashBackoff { .. }) {
                terminate_child(&agent.child);
            }
            agent.phase = Phase::Stopping;
        }
    }

    /// Stops every agent: SIGTERM, then SIGKILL for those still running after `grace`.
    pub fn stop_all(&mut self, grace: Duration) {
        let ids: Vec<u32> = self.list.iter().map(|a| a.id).collect();
        for id in ids {
            self.terminate(id);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline
            && self
                .list
                .iter_mut()
                .any(|a| a.child.try_wait().ok().flatten().is_none())
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        for agent in &mut self.list {
            let _ = agent.child.kill();
            let _ = agent.child.wait();
        }
        self.list.clear();
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        for agent in &mut self.list {
            let _ = agent.child.kill();
            let _ = agent.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_back_off_doubles_from_ten_seconds_up_to_five_minutes() {
        for (crashes, seconds) in [
            (1, 10),
            (2, 20),
            (3, 40),
            (5, 160),
            (6, 300),
            (u32::MAX, 300),
        ] {
            assert_eq!(
                backoff(crashes),
                Duration::from_secs(seconds),
                "after {crashes} crashes"
            );
        }
    }
}
