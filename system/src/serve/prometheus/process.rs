//! The process's own families, under the names every Prometheus client uses
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`,
//! `process_max_fds`, `process_start_time_seconds`), read from `/proc/self` when `/metrics`
//! is scraped. Where `/proc` cannot be read (not Linux) they are left out.

use std::fs;

use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};

use super::Families;

/// Writes the process families at each scrape.
#[derive(Debug)]
pub(super) struct ProcessCollector {
    /// Clock ticks per second, the unit of CPU times and of the start time in `/proc`.
    ticks: f64,
    /// Seconds since the Unix epoch at which the process started (it does not change).
    start_time: Option<f64>,
}

impl ProcessCollector {
    pub(super) fn new() -> ProcessCollector {
        // SAFETY: `sysconf` only reads a configuration value.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
        ProcessCollector {
            ticks,
            start_time: start_time(ticks),
        }
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let mut out = Families::new(encoder);
        if let Some(stat) = Stat::read() {
            out.counter(
                "process_cpu_seconds",
                "User and system CPU time the process spent, in seconds.",
                (stat.utime + stat.stime) as f64 / self.ticks,
            )?;
        }
        if let Some(rss) = status_bytes("VmRSS:") {
            out.gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                rss,
            )?;
        }
        if let Ok(entries) = fs::read_dir("/proc/self/fd") {
            out.gauge(
                "process_open_fds",
                "Number of open file descriptors.",
                entries.count() as u64,
            )?;
        }
        if let Some(max) = max_fds() {
            out.gauge(
                "process_max_fds",
                "Most file descriptors the process may open.",
                max,
            )?;
        }
        if let Some(start_time) = self.start_time {
            out.gauge(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds.",
                start_time,
            )?;
        }
        Ok(())
    }
}

/// The fields of `/proc/self/stat` used here, in clock ticks.
struct Stat {
    utime: u64,
    stime: u64,
    /// Since boot.
    starttime: u64,
}

impl Stat {
    fn read() -> Option<Stat> {
        let text = fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) is in parentheses and may hold spaces or parentheses:
        // the fields after its last `)` start at field 3.
        let (_, rest) = text.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |number: usize| fields.get(number - 3)?.parse::<u64>().ok();
        Some(Stat {
            utime: field(14)?,
            stime: field(15)?,
            starttime: field(22)?,
        })
    }
}

/// The boot time (`btime` of `/proc/stat`) plus the process's start since boot.
fn start_time(ticks: f64) -> Option<f64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let boot: u64 = stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(boot as f64 + Stat::read()?.starttime as f64 / ticks)
}

/// A size line of `/proc/self/status` (`VmRSS:   1234 kB`), in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|line| line.strip_prefix(field))?;
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// The soft limit on open descriptors, from `/proc/self/limits`.
fn max_fds() -> Option<u64> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}
