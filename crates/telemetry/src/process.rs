//! Process collector: CPU, memory, file descriptors, threads, start time and pod network bytes, read from /proc at scrape time.

use std::path::PathBuf;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second for /proc CPU times. Linux fixes USER_HZ at 100 on every mainstream
/// architecture (x86, arm, arm64, riscv, s390, ppc), whatever CONFIG_HZ the kernel runs at, and
/// asking sysconf would take `unsafe` FFI, which this workspace forbids.
pub const USER_HZ: f64 = 100.0;

/// A metric the collector exposes: exposition name, type and help. The single source for both
/// the collector and the generated docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessMetric {
    /// Full series name (counters include `_total`).
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: MetricType,
    /// Help text.
    pub help: &'static str,
}

const CPU: ProcessMetric = ProcessMetric {
    name: "process_cpu_seconds_total",
    kind: MetricType::Counter,
    help: "Total user and system CPU time spent in seconds.",
};
const RESIDENT: ProcessMetric = ProcessMetric {
    name: "process_resident_memory_bytes",
    kind: MetricType::Gauge,
    help: "Resident memory size in bytes.",
};
const VIRTUAL: ProcessMetric = ProcessMetric {
    name: "process_virtual_memory_bytes",
    kind: MetricType::Gauge,
    help: "Virtual memory size in bytes.",
};
const OPEN_FDS: ProcessMetric = ProcessMetric {
    name: "process_open_fds",
    kind: MetricType::Gauge,
    help: "Number of open file descriptors.",
};
const MAX_FDS: ProcessMetric = ProcessMetric {
    name: "process_max_fds",
    kind: MetricType::Gauge,
    help: "Maximum number of open file descriptors (soft limit).",
};
const THREADS: ProcessMetric = ProcessMetric {
    name: "process_threads",
    kind: MetricType::Gauge,
    help: "Number of OS threads in the process.",
};
const START: ProcessMetric = ProcessMetric {
    name: "process_start_time_seconds",
    kind: MetricType::Gauge,
    help: "Start time of the process since unix epoch in seconds.",
};
const NET_RX: ProcessMetric = ProcessMetric {
    name: "process_network_receive_bytes_total",
    kind: MetricType::Counter,
    help: "Bytes received on the non-loopback interfaces of the process's network namespace (the pod's).",
};
const NET_TX: ProcessMetric = ProcessMetric {
    name: "process_network_transmit_bytes_total",
    kind: MetricType::Counter,
    help: "Bytes sent on the non-loopback interfaces of the process's network namespace (the pod's).",
};

/// Every metric [`ProcessCollector`] may expose, in exposition order.
pub const PROCESS_METRICS: [ProcessMetric; 9] = [
    CPU, RESIDENT, VIRTUAL, OPEN_FDS, MAX_FDS, THREADS, START, NET_RX, NET_TX,
];

/// Reads /proc on every scrape. A file that is missing or does not parse drops only the metrics
/// it feeds; the scrape goes on.
#[derive(Debug)]
pub struct ProcessCollector {
    proc_root: PathBuf,
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessCollector {
    /// Collects for the calling process from `/proc`.
    pub fn new() -> Self {
        Self {
            proc_root: PathBuf::from("/proc"),
        }
    }

    /// Collects from a /proc-shaped directory (with `self/` and `stat` inside), for tests.
    pub fn with_proc_root(proc_root: impl Into<PathBuf>) -> Self {
        Self {
            proc_root: proc_root.into(),
        }
    }

    fn read(&self, relative: &str) -> Option<String> {
        std::fs::read_to_string(self.proc_root.join(relative)).ok()
    }

    /// Current values, one per metric whose sources were readable.
    pub fn sample(&self) -> Vec<(ProcessMetric, f64)> {
        let mut values = Vec::with_capacity(PROCESS_METRICS.len());
        let stat = self.read("self/stat").and_then(|text| parse_stat(&text));
        if let Some(stat) = &stat {
            values.push((CPU, (stat.utime_ticks + stat.stime_ticks) as f64 / USER_HZ));
        }
        if let Some(rss) = self
            .read("self/status")
            .and_then(|text| parse_status_kib(&text, "VmRSS"))
        {
            values.push((RESIDENT, rss.saturating_mul(1024) as f64));
        }
        if let Some(stat) = &stat {
            values.push((VIRTUAL, stat.vsize_bytes as f64));
        }
        if let Ok(entries) = std::fs::read_dir(self.proc_root.join("self/fd")) {
            values.push((OPEN_FDS, entries.count() as f64));
        }
        if let Some(max) = self
            .read("self/limits")
            .and_then(|text| parse_max_open_files(&text))
        {
            values.push((MAX_FDS, max as f64));
        }
        if let Some(stat) = &stat {
            values.push((THREADS, stat.num_threads as f64));
        }
        if let (Some(stat), Some(boot)) = (
            &stat,
            self.read("stat").and_then(|text| parse_boot_time(&text)),
        ) {
            values.push((START, boot as f64 + stat.start_ticks as f64 / USER_HZ));
        }
        if let Some(net) = self
            .read("self/net/dev")
            .and_then(|text| parse_net_dev(&text))
        {
            values.push((NET_RX, net.receive_bytes as f64));
            values.push((NET_TX, net.transmit_bytes as f64));
        }
        values
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (metric, value) in self.sample() {
            // The encoder appends `_total` to counters itself.
            let name = metric.name.strip_suffix("_total").unwrap_or(metric.name);
            let help = metric.help.strip_suffix('.').unwrap_or(metric.help);
            let help = format!("{help}.");
            match metric.kind {
                MetricType::Counter => {
                    let counter = ConstCounter::new(value);
                    counter.encode(encoder.encode_descriptor(
                        name,
                        &help,
                        None,
                        counter.metric_type(),
                    )?)?;
                }
                _ => {
                    let gauge = ConstGauge::new(value);
                    gauge.encode(encoder.encode_descriptor(
                        name,
                        &help,
                        None,
                        gauge.metric_type(),
                    )?)?;
                }
            }
        }
        Ok(())
    }
}

/// The fields of `/proc/<pid>/stat` this collector uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// User-mode CPU time, in clock ticks.
    pub utime_ticks: u64,
    /// Kernel-mode CPU time, in clock ticks.
    pub stime_ticks: u64,
    /// Threads in the process.
    pub num_threads: u64,
    /// Start time after boot, in clock ticks.
    pub start_ticks: u64,
    /// Virtual memory size, in bytes.
    pub vsize_bytes: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may itself hold
/// spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let after_comm = &text[text.rfind(')')? + 1..];
    // Fields after the command name start at field 3 (state); field N is at index N - 3.
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(ProcStat {
        utime_ticks: field(14)?,
        stime_ticks: field(15)?,
        num_threads: field(20)?,
        start_ticks: field(22)?,
        vsize_bytes: field(23)?,
    })
}

/// A `kB` value from `/proc/<pid>/status`, e.g. `VmRSS`.
pub fn parse_status_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        let mut parts = value.split_whitespace();
        let number = parts.next()?.parse().ok()?;
        (parts.next() == Some("kB")).then_some(number)
    })
}

/// The soft `Max open files` limit from `/proc/<pid>/limits`; `None` when unlimited.
pub fn parse_max_open_files(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Boot time (`btime`, seconds since the epoch) from `/proc/stat`.
pub fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok())
}

/// Byte totals over the non-loopback interfaces of `/proc/<pid>/net/dev`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NetTotals {
    /// Bytes received.
    pub receive_bytes: u64,
    /// Bytes transmitted.
    pub transmit_bytes: u64,
}

/// Parses `/proc/<pid>/net/dev`. Loopback is left out: in a pod it carries the proxy-to-server hop
/// and would count every byte twice. Any malformed interface line makes the whole file unusable,
/// since a partial sum would look like a counter reset.
pub fn parse_net_dev(text: &str) -> Option<NetTotals> {
    let mut lines = text.lines();
    // Two header lines: "Inter-|   Receive ..." and " face |bytes ...".
    if !lines.next()?.contains('|') || !lines.next()?.contains('|') {
        return None;
    }
    let mut totals = NetTotals::default();
    for line in lines.filter(|line| !line.trim().is_empty()) {
        let (interface, counters) = line.split_once(':')?;
        let counters: Vec<u64> = counters
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        // 8 receive columns then 8 transmit columns; bytes lead each group.
        if counters.len() != 16 {
            return None;
        }
        if interface.trim() == "lo" {
            continue;
        }
        totals.receive_bytes = totals.receive_bytes.saturating_add(counters[0]);
        totals.transmit_bytes = totals.transmit_bytes.saturating_add(counters[8]);
    }
    Some(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 2393 0 0 0 150 75 0 0 20 0 7 0 123456 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 4096 17095 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn stat_counts_fields_after_the_last_paren() {
        let stat = parse_stat(STAT).unwrap();
        assert_eq!(
            stat,
            ProcStat {
                utime_ticks: 150,
                stime_ticks: 75,
                num_threads: 7,
                start_ticks: 123456,
                vsize_bytes: 104857600
            }
        );
    }

    #[test]
    fn stat_rejects_garbage() {
        let cases = [
            ("", "empty file"),
            ("4242 no parens at all", "no command name"),
            ("4242 (x) S 1 2 3", "truncated"),
            (
                "4242 (x) S 1 2 3 4 5 6 7 8 9 10 x 12 13 14 15 16 17 18 19 20 21",
                "non-numeric utime",
            ),
        ];
        for (text, why) in cases {
            assert_eq!(parse_stat(text), None, "{why}");
        }
    }

    #[test]
    fn status_reads_kib_values() {
        let status = "Name:\tmcpulse\nVmSize:\t  102400 kB\nVmRSS:\t   10240 kB\nThreads:\t7\n";
        let cases = [
            ("VmRSS", Some(10240), "present"),
            ("VmSize", Some(102400), "another key"),
            ("VmSwap", None, "absent key"),
            ("Threads", None, "no kB unit: not a size"),
            ("Vm", None, "a prefix of a key is not the key"),
        ];
        for (key, want, why) in cases {
            assert_eq!(parse_status_kib(status, key), want, "{why}");
        }
    }

    #[test]
    fn limits_reads_soft_open_files() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax cpu time              unlimited            unlimited            seconds   \nMax open files            1024                 1048576              files     \n";
        assert_eq!(parse_max_open_files(limits), Some(1024));
        assert_eq!(
            parse_max_open_files(&limits.replace(" 1024 ", " unlimited ")),
            None,
            "unlimited has no number"
        );
        assert_eq!(
            parse_max_open_files("Limit Soft Hard\n"),
            None,
            "line missing"
        );
    }

    #[test]
    fn boot_time_from_proc_stat() {
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_boot_time("cpu  1 2 3\n"), None);
        assert_eq!(parse_boot_time("btime soon\n"), None);
    }

    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:  999999     100    0    0    0     0          0         0   999999     100    0    0    0     0       0          0\n  eth0: 1000     10    0    0    0     0          0         0     2000      20    0    0    0     0       0          0\n  eth1:   30      1    0    0    0     0          0         0       40       1    0    0    0     0       0          0\n";

    #[test]
    fn net_dev_sums_non_loopback() {
        assert_eq!(
            parse_net_dev(NET_DEV),
            Some(NetTotals {
                receive_bytes: 1030,
                transmit_bytes: 2040
            })
        );
    }

    #[test]
    fn net_dev_rejects_garbage() {
        let cases = [
            (String::new(), "empty file"),
            ("eth0: 1 2 3\n".to_owned(), "no header"),
            (
                NET_DEV.replace("eth1:   30", "eth1:   x"),
                "non-numeric counter",
            ),
            (
                NET_DEV.replace("  eth1:", "  eth1"),
                "interface line without colon",
            ),
            (
                NET_DEV.replace("       40       1", "       40"),
                "missing column",
            ),
        ];
        for (text, why) in cases {
            assert_eq!(parse_net_dev(&text), None, "{why}");
        }
    }

    #[test]
    fn collector_reads_the_real_proc() {
        let names: Vec<&str> = ProcessCollector::new()
            .sample()
            .iter()
            .map(|(metric, _)| metric.name)
            .collect();
        // Everything but network bytes is always there on Linux; a sandbox may hide net/dev.
        for metric in &PROCESS_METRICS[..7] {
            assert!(
                names.contains(&metric.name),
                "{} missing from {names:?}",
                metric.name
            );
        }
    }

    #[test]
    fn collector_skips_what_it_cannot_read() {
        let root =
            std::env::temp_dir().join(format!("mcpulse-telemetry-proc-{}", std::process::id()));
        std::fs::create_dir_all(root.join("self")).unwrap();
        std::fs::write(root.join("self/stat"), STAT).unwrap();
        std::fs::write(root.join("self/status"), "VmRSS: garbage\n").unwrap();
        std::fs::write(root.join("stat"), "btime 1700000000\n").unwrap();
        let sample = ProcessCollector::with_proc_root(&root).sample();
        std::fs::remove_dir_all(&root).unwrap();
        let got: Vec<(&str, f64)> = sample
            .iter()
            .map(|(metric, value)| (metric.name, *value))
            .collect();
        assert_eq!(
            got,
            vec![
                ("process_cpu_seconds_total", 2.25),
                ("process_virtual_memory_bytes", 104857600.0),
                ("process_threads", 7.0),
                ("process_start_time_seconds", 1_700_000_000.0 + 1234.56),
            ]
        );
    }
}
