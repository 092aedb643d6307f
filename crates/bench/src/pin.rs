//! CPU placement for `--pin`: the proxy on a core of its own, the client and the upstream on the others, as a
//! sidecar with its own CPU request runs next to its server and apart from its clients.

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

use crate::BenchError;

/// Which CPUs the proxy gets and which the client and upstream keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub proxy: Vec<usize>,
    pub ends: Vec<usize>,
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
            [ends @ .., proxy] if !ends.is_empty() => Ok(Self {
                proxy: vec![*proxy],
                ends: ends.to_vec(),
            }),
            _ => Err(BenchError::Invalid(format!(
                "--pin needs at least two CPUs to give the proxy one of its own; this process may use {cpus:?}"
            ))),
        }
    }

    /// The proxy's CPUs as `taskset -c` takes them.
    pub fn proxy_list(&self) -> String {
        self.proxy
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Moves every thread of this process (and so every process it starts afterwards) onto the ends' CPUs.
    pub fn pin_this_process_to_ends(&self) -> Result<(), BenchError> {
        let mut set = CpuSet::new();
        for &cpu in &self.ends {
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
            sched_setaffinity(Pid::from_raw(tid), &set).map_err(|errno| BenchError::Io {
                what: format!("pin thread {tid} to CPUs {:?}", self.ends),
                source: errno.into(),
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_cpu_goes_to_the_proxy() {
        let placement = Placement::split(&[0, 2, 3]).expect("three CPUs split");
        assert_eq!(placement.proxy, [3]);
        assert_eq!(placement.ends, [0, 2]);
        assert_eq!(placement.proxy_list(), "3");
        assert!(
            Placement::split(&[5]).is_err(),
            "one CPU cannot be split between the proxy and the rest"
        );
    }
}
