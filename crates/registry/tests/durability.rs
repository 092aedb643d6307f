//! Acknowledged writes survive kill -9: a child process publishes and acknowledges, then is killed.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use mcpulse_registry::storage::{SqliteStorage, Storage, VersionSelector};
use serde_json::json;
use time::OffsetDateTime;

const DIR_VAR: &str = "MCPULSE_REGISTRY_DURABILITY_DIR";
const NAME: &str = "io.example/durable";

/// The child half: run only by `acknowledged_writes_survive_kill_9`, which re-executes this binary.
#[tokio::test]
#[ignore = "child process of acknowledged_writes_survive_kill_9"]
async fn durability_child() {
    let dir =
        std::env::var(DIR_VAR).expect("run by the parent test, which sets the data directory");
    let storage = SqliteStorage::open(std::path::Path::new(&dir))
        .await
        .unwrap();
    let mut out = std::io::stdout();
    // Publish until killed; each line is printed only after the commit returned.
    for i in 0u64.. {
        let version = format!("1.0.{i}");
        let doc = json!({"name": NAME, "description": "d", "version": version});
        storage
            .publish(NAME, &version, &doc, OffsetDateTime::now_utc())
            .await
            .unwrap();
        writeln!(out, "ACK {version}").unwrap();
        out.flush().unwrap();
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "durability_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_VAR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines {
        let line = line.unwrap();
        if let Some(version) = line.strip_prefix("ACK ") {
            acked.push(version.to_owned());
            if acked.len() == 25 {
                break;
            }
        }
    }
    // SIGKILL mid-stream: the child may be inside its next transaction.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        acked.len(),
        25,
        "the child acknowledged writes before being killed"
    );

    let storage = SqliteStorage::open(dir.path()).await.unwrap();
    for version in &acked {
        let found = storage
            .server_version(NAME, VersionSelector::Exact(version))
            .await
            .unwrap();
        assert!(found.is_some(), "acknowledged {version} was lost");
    }
    let latest = storage
        .server_version(NAME, VersionSelector::Latest)
        .await
        .unwrap()
        .unwrap();
    let newest = semver::Version::parse(&latest.version).unwrap();
    let last_acked = semver::Version::parse(acked.last().unwrap()).unwrap();
    assert!(
        newest >= last_acked,
        "latest {newest} predates acknowledged {last_acked}"
    );
}
