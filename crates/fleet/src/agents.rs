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
}

pub struct Agent {
    pub id: u32,
    pub mcp: SocketAddr,
    pub metrics: SocketAddr,
    pub phase: Phase,
    pub started: Instant,
    child: Child,
}

impl Agent {
    /// The gateway's name for this agent (its upstream URL).
    pub fn upstream(&self) -> String {
        format!("http://{}", self.mcp)
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

    /// Agents counted as replicas: running or draining (a draining agent still serves its sessions).
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

    /// Notices exited agents: a running agent that exited crashed and is restarted on its ports; a stopping one
    /// is gone. Returns a line per event for the log.
    pub fn reap(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        let mut index = 0;
        while index < self.list.len() {
            let exited = self.list[index].child.try_wait().ok().flatten();
            let Some(status) = exited else {
                index += 1;
                continue;
            };
            let agent = &self.list[index];
            if agent.phase == Phase::Stopping {
                events.push(format!("agent {} stopped ({status})", agent.id));
                self.list.remove(index);
                continue;
            }
            let (id, mcp, metrics) = (agent.id, agent.mcp, agent.metrics);
            match self.start(id, mcp, metrics) {
                Ok(child) => {
                    self.restarts += 1;
                    events.push(format!(
                        "agent {id} exited unexpectedly ({status}); restarted"
                    ));
                    let agent = &mut self.list[index];
                    agent.child = child;
                    agent.started = Instant::now();
                    index += 1;
                }
                Err(error) => {
                    events.push(format!(
                        "agent {id} exited ({status}) and could not be restarted: {error}"
                    ));
                    self.list.remove(index);
                }
            }
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
            agent.phase = Phase::Stopping;
            if let Ok(pid) = i32::try_from(agent.child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
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
