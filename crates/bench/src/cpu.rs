//! CPU time of processes, read from `/proc`: what a proxy spends per request, measured next to its throughput.

use std::time::Duration;

/// CPU time of the two sides of a proxied exchange: the client with the upstream, and the proxy between them
/// (`None` on a direct connection).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSplit {
    pub client_and_upstream: Duration,
    pub proxy: Option<Duration>,
}

impl CpuSplit {
    /// What was spent between the reading `before` and this one.
    pub fn since(self, before: Self) -> Self {
        Self {
            client_and_upstream: self
                .client_and_upstream
                .saturating_sub(before.client_and_upstream),
            proxy: self
                .proxy
                .zip(before.proxy)
                .map(|(now, then)| now.saturating_sub(then)),
        }
    }
}

/// CPU time (user and system) spent so far by the live threads of process `pid`; zero for a process that is
/// gone. Read from each thread's `schedstat`, in nanoseconds, rather than the 10 ms ticks of `stat`.
pub fn process_cpu(pid: u32) -> Duration {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    threads
        .flatten()
        .filter_map(|thread| std::fs::read_to_string(thread.path().join("schedstat")).ok())
        .filter_map(|schedstat| schedstat_nanos(&schedstat))
        .map(Duration::from_nanos)
        .sum()
}

/// CPU time spent so far by process `pid` and every live descendant (nginx's workers are the master's
/// children).
pub fn tree_cpu(pid: u32) -> Duration {
    let parents = parents();
    let mut total = Duration::ZERO;
    let mut pending = vec![pid];
    while let Some(next) = pending.pop() {
        total += process_cpu(next);
        pending.extend(
            parents
                .iter()
                .filter(|(_, parent)| *parent == next)
                .map(|(child, _)| *child),
        );
    }
    total
}

/// Time on the CPU, the first field of a `schedstat` line.
fn schedstat_nanos(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().next()?.parse().ok()
}

/// (process, parent) for every process now running, from `/proc/<pid>/stat`.
fn parents() -> Vec<(u32, u32)> {
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    processes
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            Some((pid, stat_parent(&stat)?))
        })
        .collect()
}

/// The parent's pid from a `/proc/<pid>/stat` line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its closing parenthesis: state, then the parent.
fn stat_parent(stat: &str) -> Option<u32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;

    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;

    use super::*;

    #[test]
    fn lines_are_read_past_a_name_with_spaces_and_parentheses() {
        let stat =
            "4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 7";
        assert_eq!(stat_parent(stat), Some(17));
        assert_eq!(stat_parent("garbage"), None);
        assert_eq!(schedstat_nanos("123456 789 10\n"), Some(123_456));
        assert_eq!(schedstat_nanos(""), None);
    }

    #[test]
    fn a_busy_child_counts_towards_its_idle_parent() {
        // The outer shell only waits; its child loops (well over 100 ms of CPU), then sleeps so it is still
        // alive, and so still counted, when looked at. Both are in a process group of their own, which the
        // test ends as a whole.
        let mut parent = std::process::Command::new("sh")
            .args([
                "-c",
                "sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 5' & wait",
            ])
            .process_group(0)
            .spawn()
            .expect("sh runs");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut used = Duration::ZERO;
        while used < Duration::from_millis(100) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            used = tree_cpu(parent.id());
        }
        let own = process_cpu(parent.id());
        if let Ok(group) = i32::try_from(parent.id()) {
            let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
        }
        let _ = parent.wait();
        assert!(
            used >= Duration::from_millis(100),
            "the child's busy loop counts towards its waiting parent: {used:?}"
        );
        assert!(
            own < Duration::from_millis(50),
            "the waiting shell alone spends next to nothing: {own:?}"
        );
    }
}
