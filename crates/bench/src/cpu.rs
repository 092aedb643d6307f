//! CPU time of processes, read from `/proc`: what a proxy spends per request, measured next to its throughput.

use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat`'s times: `USER_HZ`, 100 on every Linux architecture that
/// exposes it to user space.
const USER_HZ: u64 = 100;

/// CPU time (user and system) used so far by process `pid` alone; zero for a process that is gone.
pub fn process_cpu(pid: u32) -> Duration {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat_ticks(&stat))
        .map_or(Duration::ZERO, |ticks| {
            Duration::from_millis(ticks * 1000 / USER_HZ)
        })
}

/// CPU time used so far by process `pid` and every live descendant (nginx's workers are the master's children).
pub fn tree_cpu(pid: u32) -> Duration {
    process_cpu(pid) + children(pid).into_iter().map(tree_cpu).sum::<Duration>()
}

/// `utime + stime` from one `/proc/<pid>/stat` line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its closing parenthesis.
fn stat_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name: state (3), ppid (4), ... utime is field 14 and stime 15 of the whole line.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Direct children of `pid`, from every thread's `children` list.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|child| child.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_counted_after_a_name_with_spaces_and_parentheses() {
        let stat =
            "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 7 0 0";
        assert_eq!(stat_ticks(stat), Some(325));
        assert_eq!(stat_ticks("garbage"), None);
    }

    #[test]
    fn a_busy_child_counts_towards_its_idle_parent() {
        // The outer shell only waits; its child loops (well over 100 ms of CPU), then sleeps so it is still
        // alive, and so still counted, when looked at.
        let mut parent = std::process::Command::new("sh")
            .args([
                "-c",
                "sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 5' & wait",
            ])
            .spawn()
            .expect("sh runs");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut used = Duration::ZERO;
        while used < Duration::from_millis(100) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            used = tree_cpu(parent.id());
        }
        let _ = parent.kill();
        let _ = parent.wait();
        assert!(
            used >= Duration::from_millis(100),
            "the child's busy loop counts towards its waiting parent: {used:?}"
        );
    }
}
