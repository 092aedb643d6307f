//! CPU placement for `--pin`: the proxy on a core of its own, the client and the upstream on the others, as a
//! sidecar with its own CPU request runs next to its server and apart from its clients.

use std::process::Command;

use nix::errno::Errno;
use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

use crate::BenchError;

/// Which CPUs the proxy gets and which the client and upstream keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// CPUs the proxies run on, and nothing else of the benchmark.
    pub proxy: Vec<usize>,
    /// CPUs of this process (the client, the echo upstream) and of the agent it starts as upstream.
    pub client_and_upstream: Vec<usize>,
}

impl Placement {
    /// The last CPU this process may use for the proxy, the rest for the client and the upstream.
    pub fn split_last() -> Result<Self, BenchError> {
        let allowed = sched_getaffinity(Pid::from_raw(0)).map_err(|errno| BenchError::Io {
            what: "read this process's CPU affinity".to_owned(),
            source: errno.into(),
        })?;
        let cpus: Vec<usize> = (0..CpuSet::count())
            .filter(|&cpu| allowed.is_set(cpu).unwrap_or(false))
            .collect();
        Self::split(&cpus)
    }

    fn split(cpus: &[usize]) -> Result<Self, BenchError> {
        match cpus {
            [rest @ .., proxy] if !rest.is_empty() => Ok(Self {
                proxy: vec![*proxy],
                client_and_upstream: rest.to_vec(),
            }),
            _ => Err(BenchError::Invalid(format!(
                "--pin needs at least two CPUs to give the proxy one of its own; this process may use {cpus:?}"
            ))),
        }
    }

    /// Moves every thread of this process (and so every process it starts afterwards) onto the client's and
    /// upstream's CPUs, for good.
    pub fn pin_this_process_to_client_and_upstream(&self) -> Result<(), BenchError> {
        let mut set = CpuSet::new();
        for &cpu in &self.client_and_upstream {
            set.set(cpu).map_err(|errno| BenchError::Io {
                what: format!("select CPU {cpu}"),
                source: errno.into(),
            })?;
        }
        let tasks = std::fs::read_dir("/proc/self/task").map_err(|source| BenchError::Io {
            what: "list this process's threads".to_owned(),
            source,
        })?;
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            match sched_setaffinity(Pid::from_raw(tid), &set) {
                // The thread ended since the listing (an idle blocking-pool thread, say): nothing to pin.
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(errno) => {
                    return Err(BenchError::Io {
                        what: format!("pin thread {tid} to CPUs {:?}", self.client_and_upstream),
                        source: errno.into(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// A command running `program`, on `cpus` when given: through `taskset`, which execs the program, so the
/// child's pid is the program's.
pub(crate) fn pinned(program: impl AsRef<std::ffi::OsStr>, cpus: Option<&[usize]>) -> Command {
    match cpus {
        Some(cpus) => {
            let mut command = Command::new("taskset");
            command.args(["-c", &cpu_list(cpus)]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// What [`pinned`] starts, as an error message should name it.
pub(crate) fn launched(program: impl std::fmt::Display, cpus: Option<&[usize]>) -> String {
    match cpus {
        Some(cpus) => format!(
            "taskset -c {} {program} (taskset is in util-linux)",
            cpu_list(cpus)
        ),
        None => program.to_string(),
    }
}

/// CPUs as `taskset -c` takes them: `0,2,3`.
fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_cpu_goes_to_the_proxy() {
        let placement = Placement::split(&[0, 2, 3]).expect("three CPUs split");
        assert_eq!(placement.proxy, [3]);
        assert_eq!(placement.client_and_upstream, [0, 2]);
        assert!(
            Placement::split(&[5]).is_err(),
            "one CPU cannot be split between the proxy and the rest"
        );
    }
}
