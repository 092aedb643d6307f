//! Prometheus and Alertmanager beside a local fleet, when they are installed: generated configuration, the
//! project's own recording rules and alerts, and file-based discovery that follows the agents as they come and go.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::FleetError;

/// The project's rule files, as shipped in `monitoring/`: the same rules and alerts run locally and in a cluster.
const RULE_FILES: [(&str, &str); 7] = [
    (
        "rules-mcp.yaml",
        include_str!("../../../monitoring/rules/mcp.yaml"),
    ),
    (
        "rules-registry.yaml",
        include_str!("../../../monitoring/rules/registry.yaml"),
    ),
    (
        "alerts-mcp.yaml",
        include_str!("../../../monitoring/alerts/mcp.yaml"),
    ),
    (
        "alerts-registry.yaml",
        include_str!("../../../monitoring/alerts/registry.yaml"),
    ),
    (
        "alerts-autoscaler.yaml",
        include_str!("../../../monitoring/alerts/autoscaler.yaml"),
    ),
    (
        "alerts-meta.yaml",
        include_str!("../../../monitoring/alerts/meta.yaml"),
    ),
    (
        "alerts-resources.yaml",
        include_str!("../../../monitoring/alerts/resources.yaml"),
    ),
];

/// Labels every local target carries, so the rules' `by (namespace, job, service)` groupings work as in a cluster.
const NAMESPACE: &str = "local";
const AGENT_SERVICE: &str = "mcpulse-agent";

#[derive(Clone, Debug)]
pub struct MonitoringSettings {
    /// Where Prometheus listens; if the port is taken, a free one is used instead.
    pub prometheus: SocketAddr,
    /// Where Alertmanager listens; if the port is taken, a free one is used instead.
    pub alertmanager: SocketAddr,
    pub scrape_interval: Duration,
    /// Caps every alert's `for:` so a demo or a test sees alerts fire in seconds instead of minutes.
    pub pending_max: Option<Duration>,
}

/// One alert Alertmanager holds as active (neither silenced nor inhibited).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FiringAlert {
    pub name: String,
    pub severity: String,
    pub summary: String,
    pub labels: serde_json::Map<String, serde_json::Value>,
}

/// A scrape target of an agent, for file-based discovery.
pub struct AgentTarget {
    pub id: u32,
    pub metrics: SocketAddr,
}

pub struct Monitoring {
    prometheus: Child,
    alertmanager: Child,
    pub prometheus_addr: SocketAddr,
    pub alertmanager_addr: SocketAddr,
    agent_targets: PathBuf,
    written_targets: String,
}

/// The installed binaries, or `None` when either is missing (then the fleet runs without them).
pub fn find_binaries() -> Option<(PathBuf, PathBuf)> {
    let prometheus = find_in_path(&["prometheus"])?;
    let alertmanager = find_in_path(&["prometheus-alertmanager", "alertmanager"])?;
    Some((prometheus, alertmanager))
}

fn find_in_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// `wanted`, or a free port on the same address when `wanted` is taken or is port 0.
fn usable_addr(wanted: SocketAddr) -> Result<SocketAddr, FleetError> {
    if wanted.port() != 0 && TcpListener::bind(wanted).is_ok() {
        return Ok(wanted);
    }
    TcpListener::bind(SocketAddr::new(wanted.ip(), 0))
        .and_then(|l| l.local_addr())
        .map_err(|source| FleetError::Io {
            what: format!("find a free port near {wanted}"),
            source,
        })
}

impl Monitoring {
    /// Writes the configuration under `dir` and starts both programs; returns once Prometheus and Alertmanager
    /// answer their readiness checks.
    pub async fn start(
        binaries: (PathBuf, PathBuf),
        dir: &Path,
        logs: &Path,
        settings: &MonitoringSettings,
        registry_metrics: Option<SocketAddr>,
        gateway_metrics: SocketAddr,
    ) -> Result<Self, FleetError> {
        let io = |what: String| move |source| FleetError::Io { what, source };
        let rules_dir = dir.join("rules");
        std::fs::create_dir_all(&rules_dir)
            .map_err(io(format!("create {}", rules_dir.display())))?;
        for (name, text) in RULE_FILES {
            let text = match settings.pending_max {
                Some(cap) => cap_pending(text, cap).map_err(|message| FleetError::Config {
                    field: format!("monitoring/{name}"),
                    message,
                })?,
                None => text.to_owned(),
            };
            let path = rules_dir.join(name);
            std::fs::write(&path, text).map_err(io(format!("write {}", path.display())))?;
        }
        let prometheus_addr = usable_addr(settings.prometheus)?;
        let alertmanager_addr = usable_addr(settings.alertmanager)?;
        let agent_targets = dir.join("agents.json");
        std::fs::write(&agent_targets, "[]")
            .map_err(io(format!("write {}", agent_targets.display())))?;

        let config = prometheus_config(
            settings,
            prometheus_addr,
            alertmanager_addr,
            registry_metrics,
            gateway_metrics,
            &agent_targets,
            &rules_dir,
        );
        let prometheus_yaml = dir.join("prometheus.yml");
        // JSON is YAML: serde_json writes the configuration without a YAML emitter.
        std::fs::write(&prometheus_yaml, config.to_string())
            .map_err(io(format!("write {}", prometheus_yaml.display())))?;
        let alertmanager_yaml = dir.join("alertmanager.yml");
        let alertmanager_text = alertmanager_config().map_err(|message| FleetError::Config {
            field: "monitoring/alertmanager/alertmanager.yaml".into(),
            message,
        })?;
        std::fs::write(&alertmanager_yaml, alertmanager_text)
            .map_err(io(format!("write {}", alertmanager_yaml.display())))?;

        let (prometheus_bin, alertmanager_bin) = binaries;
        let alertmanager = spawn_logged(
            &alertmanager_bin,
            &[
                format!("--config.file={}", alertmanager_yaml.display()),
                format!("--storage.path={}", dir.join("alertmanager-data").display()),
                format!("--web.listen-address={alertmanager_addr}"),
                // A single local Alertmanager: no gossip port to collide with another one.
                "--cluster.listen-address=".to_owned(),
            ],
            &logs.join("alertmanager.log"),
        )?;
        let prometheus = spawn_logged(
            &prometheus_bin,
            &[
                format!("--config.file={}", prometheus_yaml.display()),
                format!("--storage.tsdb.path={}", dir.join("data").display()),
                "--storage.tsdb.retention.time=2d".to_owned(),
                format!("--web.listen-address={prometheus_addr}"),
            ],
            &logs.join("prometheus.log"),
        )?;
        let monitoring = Self {
            prometheus,
            alertmanager,
            prometheus_addr,
            alertmanager_addr,
            agent_targets,
            written_targets: "[]".to_owned(),
        };
        monitoring.wait_ready(logs).await?;
        Ok(monitoring)
    }

    async fn wait_ready(&self, logs: &Path) -> Result<(), FleetError> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        for (name, addr) in [
            ("prometheus", self.prometheus_addr),
            ("alertmanager", self.alertmanager_addr),
        ] {
            loop {
                let ready = http
                    .get(format!("http://{addr}/-/ready"))
                    .send()
                    .await
                    .is_ok_and(|answer| answer.status().is_success());
                if ready {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(FleetError::Io {
                        what: format!(
                            "{name} did not become ready on {addr} within 30 s; see {}",
                            logs.join(format!("{name}.log")).display()
                        ),
                        source: std::io::Error::from(std::io::ErrorKind::TimedOut),
                    });
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    /// Points Prometheus at exactly these agents. An agent waiting to be restarted after a crash stays listed,
    /// so its failing scrapes are what the agent-down alerts see; a stopped agent leaves.
    pub fn set_agents(&mut self, agents: &[AgentTarget]) -> Result<(), FleetError> {
        let groups: Vec<serde_json::Value> = agents
            .iter()
            .map(|agent| {
                json!({
                    "targets": [agent.metrics.to_string()],
                    "labels": {
                        "namespace": NAMESPACE,
                        "service": AGENT_SERVICE,
                        "pod": format!("agent-{}", agent.id),
                    }
                })
            })
            .collect();
        let text = serde_json::Value::Array(groups).to_string();
        if text == self.written_targets {
            return Ok(());
        }
        // Prometheus may read the file at any moment: write aside, then rename over it.
        let staging = self.agent_targets.with_extension("json.new");
        let io = |source| FleetError::Io {
            what: format!("write {}", self.agent_targets.display()),
            source,
        };
        std::fs::write(&staging, &text).map_err(io)?;
        std::fs::rename(&staging, &self.agent_targets).map_err(io)?;
        self.written_targets = text;
        Ok(())
    }

    /// The alerts firing now, as Alertmanager holds them; the always-firing watchdog (severity `none`) is left out.
    pub async fn firing(&self, http: &reqwest::Client) -> Option<Vec<FiringAlert>> {
        let url = format!(
            "http://{}/api/v2/alerts?active=true&silenced=false&inhibited=false",
            self.alertmanager_addr
        );
        let alerts: Vec<AlertmanagerAlert> = http.get(url).send().await.ok()?.json().await.ok()?;
        let mut firing: Vec<FiringAlert> = alerts
            .into_iter()
            .map(|alert| {
                let label = |key: &str| {
                    alert
                        .labels
                        .get(key)
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_owned()
                };
                FiringAlert {
                    name: label("alertname"),
                    severity: label("severity"),
                    summary: alert
                        .annotations
                        .get("summary")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_owned(),
                    labels: alert.labels.clone(),
                }
            })
            .filter(|alert| alert.severity != "none")
            .collect();
        firing.sort_by(|a, b| (&a.name, a.labels.len()).cmp(&(&b.name, b.labels.len())));
        Some(firing)
    }

    /// Stops both programs: SIGTERM lets Prometheus close its TSDB cleanly; SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        for child in [&mut self.prometheus, &mut self.alertmanager] {
            crate::agents::terminate_child(child);
        }
        let deadline = Instant::now() + grace;
        for child in [&mut self.prometheus, &mut self.alertmanager] {
            while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Monitoring {
    fn drop(&mut self) {
        for child in [&mut self.prometheus, &mut self.alertmanager] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Deserialize)]
struct AlertmanagerAlert {
    #[serde(default)]
    labels: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    annotations: serde_json::Map<String, serde_json::Value>,
}

fn spawn_logged(binary: &Path, args: &[String], log_path: &Path) -> Result<Child, FleetError> {
    let io = |what: String| move |source| FleetError::Io { what, source };
    let log =
        std::fs::File::create(log_path).map_err(io(format!("open {}", log_path.display())))?;
    let err_log = log
        .try_clone()
        .map_err(io(format!("open {}", log_path.display())))?;
    // Prometheus and Alertmanager take no parent-pid flag as our agents do, so `setpriv` (util-linux) asks
    // the kernel to send them SIGTERM when the thread that started them (the runtime's main thread, alive
    // as long as `up`) ends, even by SIGKILL. Without setpriv they are started directly and stopped only on
    // a clean shutdown.
    let mut command = match setpriv() {
        Some(setpriv) => {
            let mut command = Command::new(setpriv);
            command.args(["--pdeathsig", "TERM", "--"]).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .spawn()
        .map_err(io(format!("start {}", binary.display())))
}

fn setpriv() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("setpriv"))
        .find(|path| path.is_file())
}

fn prometheus_config(
    settings: &MonitoringSettings,
    prometheus: SocketAddr,
    alertmanager: SocketAddr,
    registry_metrics: Option<SocketAddr>,
    gateway_metrics: SocketAddr,
    agent_targets: &Path,
    rules_dir: &Path,
) -> serde_json::Value {
    let interval = format!("{}ms", settings.scrape_interval.as_millis().max(1));
    let static_job = |job: &str, service: &str, target: SocketAddr| {
        json!({
            "job_name": job,
            "static_configs": [{
                "targets": [target.to_string()],
                "labels": {"namespace": NAMESPACE, "service": service},
            }],
        })
    };
    let mut jobs = vec![
        static_job("mcpulse-meter", "mcpulse-gateway", gateway_metrics),
        json!({
            "job_name": "mcpulse-agent",
            "file_sd_configs": [{"files": [agent_targets.display().to_string()], "refresh_interval": "5s"}],
        }),
        static_job("prometheus", "prometheus", prometheus),
        static_job("alertmanager", "alertmanager", alertmanager),
    ];
    if let Some(registry) = registry_metrics {
        jobs.push(static_job("mcpulse-registry", "mcpulse-registry", registry));
    }
    json!({
        "global": {
            "scrape_interval": interval,
            "evaluation_interval": interval,
            "external_labels": {"cluster": "local"},
        },
        "rule_files": [rules_dir.join("*.yaml").display().to_string()],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.to_string()]}]}]},
        "scrape_configs": jobs,
    })
}

/// The project's Alertmanager configuration (`monitoring/alertmanager/`), routing and inhibition as shipped, with
/// every receiver stripped of its integrations: locally nobody is paged or mailed, and the console and
/// `mcpulse status` read the firing alerts from Alertmanager's API.
const SHIPPED_ALERTMANAGER: &str =
    include_str!("../../../monitoring/alertmanager/alertmanager.yaml");

fn alertmanager_config() -> Result<String, String> {
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(SHIPPED_ALERTMANAGER).map_err(|e| format!("not YAML: {e}"))?;
    let map = config.as_mapping_mut().ok_or("not a mapping")?;
    // SMTP settings point at the production relay and its secret files.
    map.remove("global");
    let receivers = map
        .get_mut("receivers")
        .and_then(serde_yaml::Value::as_sequence_mut)
        .ok_or("no `receivers` list")?;
    for receiver in receivers.iter_mut() {
        let name = receiver
            .get("name")
            .cloned()
            .ok_or("a receiver without a name")?;
        let mut bare = serde_yaml::Mapping::new();
        bare.insert("name".into(), name);
        *receiver = serde_yaml::Value::Mapping(bare);
    }
    serde_yaml::to_string(&config).map_err(|e| e.to_string())
}

/// Rewrites a rule file so that no alert waits longer than `cap` before firing.
fn cap_pending(text: &str, cap: Duration) -> Result<String, String> {
    let mut document: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let groups = document
        .get_mut("groups")
        .and_then(serde_yaml::Value::as_sequence_mut)
        .ok_or("no `groups` list")?;
    for group in groups {
        let Some(rules) = group
            .get_mut("rules")
            .and_then(serde_yaml::Value::as_sequence_mut)
        else {
            continue;
        };
        for rule in rules {
            let Some(pending) = rule.get_mut("for") else {
                continue;
            };
            let current = pending
                .as_str()
                .ok_or("a `for:` that is not a duration string")
                .and_then(|s| {
                    parse_prometheus_duration(s).ok_or("a `for:` that is not a duration")
                })?;
            if current > cap {
                *pending = serde_yaml::Value::String(format!("{}ms", cap.as_millis()));
            }
        }
    }
    serde_yaml::to_string(&document).map_err(|e| e.to_string())
}

/// A Prometheus duration such as `90s`, `5m` or `1h30m`.
fn parse_prometheus_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let value: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let millis_per_unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        total += Duration::from_millis(value.checked_mul(millis_per_unit)?);
        rest = &rest[unit_len..];
    }
    (!text.is_empty()).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_durations_parse_as_prometheus_reads_them() {
        for (text, expected) in [
            ("5m", Some(Duration::from_secs(300))),
            ("1h30m", Some(Duration::from_secs(5400))),
            ("250ms", Some(Duration::from_millis(250))),
            ("1d", Some(Duration::from_secs(86_400))),
            // Rejected: no unit, an unknown unit, nothing at all.
            ("15", None),
            ("5 minutes", None),
            ("", None),
        ] {
            assert_eq!(parse_prometheus_duration(text), expected, "{text:?}");
        }
    }

    #[test]
    fn capping_shortens_long_waits_only_and_keeps_every_rule() {
        let capped = cap_pending(RULE_FILES[2].1, Duration::from_secs(2)).unwrap();
        let before: serde_yaml::Value = serde_yaml::from_str(RULE_FILES[2].1).unwrap();
        let after: serde_yaml::Value = serde_yaml::from_str(&capped).unwrap();
        let rules =
            |doc: &serde_yaml::Value| doc["groups"][0]["rules"].as_sequence().unwrap().clone();
        assert_eq!(rules(&before).len(), rules(&after).len());
        let mut shortened = 0;
        for (old, new) in rules(&before).iter().zip(rules(&after).iter()) {
            assert_eq!(old["expr"], new["expr"], "expressions untouched");
            if let Some(pending) = old["for"].as_str() {
                let new_pending = parse_prometheus_duration(new["for"].as_str().unwrap()).unwrap();
                assert!(new_pending <= Duration::from_secs(2));
                if parse_prometheus_duration(pending).unwrap() > Duration::from_secs(2) {
                    shortened += 1;
                }
            }
        }
        assert!(shortened > 0, "the MCP alerts wait minutes before firing");
    }

    #[test]
    fn the_local_alertmanager_keeps_the_shipped_routing_but_delivers_nowhere() {
        let local: serde_yaml::Value =
            serde_yaml::from_str(&alertmanager_config().unwrap()).unwrap();
        let shipped: serde_yaml::Value = serde_yaml::from_str(SHIPPED_ALERTMANAGER).unwrap();
        assert_eq!(local["route"], shipped["route"]);
        assert_eq!(local["inhibit_rules"], shipped["inhibit_rules"]);
        assert!(local.get("global").is_none(), "no SMTP relay locally");
        let receivers = local["receivers"].as_sequence().unwrap();
        assert_eq!(
            receivers.len(),
            shipped["receivers"].as_sequence().unwrap().len()
        );
        for receiver in receivers {
            assert_eq!(
                receiver.as_mapping().unwrap().len(),
                1,
                "only a name: {receiver:?}"
            );
        }
    }

    #[test]
    fn every_shipped_rule_file_can_be_capped() {
        for (name, text) in RULE_FILES {
            cap_pending(text, Duration::from_secs(1)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
