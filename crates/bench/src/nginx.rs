//! nginx as a plain reverse proxy, the peer the meter's overhead is compared with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::BenchError;
use crate::pin::{launched, pinned};

pub struct Nginx {
    pub addr: SocketAddr,
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx (Debian's `/usr/sbin/nginx` or the one on PATH) proxying `listen` to `upstream` with
    /// upstream keep-alive and no buffering, the settings one would use in front of an MCP server. Pinned to
    /// `cpus` it runs one worker per CPU; otherwise two workers.
    pub fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        cpus: Option<&[usize]>,
    ) -> Result<Self, BenchError> {
        let dir = std::env::temp_dir().join(format!("mcpulse-bench-nginx-{}", std::process::id()));
        let workers = cpus.map_or(2, <[usize]>::len);
        let args = prepare(&dir, listen, upstream, Processes::MasterAndWorkers(workers))?;
        let binary = binary();
        let child = pinned(binary, cpus)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| BenchError::Io {
                what: format!("start {} (apt-get install nginx)", launched(binary, cpus)),
                source,
            })?;
        Ok(Self {
            addr: listen,
            child,
            dir,
        })
    }

    /// The master's process id; its workers are its children.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers; SIGKILL would orphan them, still serving and using CPU.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How nginx runs: as deployed (a master and two workers), or as one process so a profiler sees every instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Processes {
    MasterAndWorkers(usize),
    Single,
}

/// Debian's `/usr/sbin/nginx`, else the one on PATH.
pub(crate) fn binary() -> &'static str {
    ["/usr/sbin/nginx", "nginx"]
        .into_iter()
        .find(|b| Path::new(b).is_file())
        .unwrap_or("nginx")
}

/// Writes the configuration into `dir` and returns the arguments that start nginx with it.
pub(crate) fn prepare(
    dir: &Path,
    listen: SocketAddr,
    upstream: SocketAddr,
    processes: Processes,
) -> Result<Vec<PathBuf>, BenchError> {
    std::fs::create_dir_all(dir).map_err(|source| BenchError::Io {
        what: format!("create {}", dir.display()),
        source,
    })?;
    let config = dir.join("nginx.conf");
    std::fs::write(&config, config_text(dir, listen, upstream, processes)).map_err(|source| {
        BenchError::Io {
            what: format!("write {}", config.display()),
            source,
        }
    })?;
    Ok(vec![
        "-c".into(),
        config,
        "-e".into(),
        dir.join("error.log"),
    ])
}

fn config_text(
    dir: &Path,
    listen: SocketAddr,
    upstream: SocketAddr,
    processes: Processes,
) -> String {
    let d = dir.display();
    let (workers, master) = match processes {
        Processes::MasterAndWorkers(workers) => (workers, "on"),
        Processes::Single => (1, "off"),
    };
    format!(
        "worker_processes {workers};\ndaemon off;\nmaster_process {master};\npid {d}/nginx.pid;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           upstream mcp {{ server {upstream}; keepalive 256; }}\n\
           server {{\n    listen {listen};\n    location / {{\n      proxy_pass http://mcp;\n\
               proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_buffering off;\n    }}\n  }}\n}}\n"
    )
}
