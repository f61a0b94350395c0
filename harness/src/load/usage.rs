//! CPU time and peak resident memory, of this process (`getrusage`) and of another process
//! by pid (`/proc/<pid>/stat` and `/proc/<pid>/status`), so that a report can say what the
//! load cost the generator and the server it measured.

use std::{fs, io};

/// CPU seconds (user + system) this process has used so far.
pub fn self_cpu_seconds() -> f64 {
    rusage_cpu(libc::RUSAGE_SELF)
}

/// CPU seconds (user + system) used by the children this process has waited for.
pub fn children_cpu_seconds() -> f64 {
    rusage_cpu(libc::RUSAGE_CHILDREN)
}

/// Peak resident memory of this process, in bytes.
pub fn self_peak_rss_bytes() -> io::Result<u64> {
    peak_rss_bytes_of("self")
}

/// CPU seconds (user + system, all threads) process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat_cpu_ticks(&stat)
        .map(|ticks| ticks as f64 / clock_ticks_per_second())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc stat format"))
}

/// Peak resident memory (`VmHWM`) of process `pid`, in bytes.
pub fn peak_rss_bytes(pid: u32) -> io::Result<u64> {
    peak_rss_bytes_of(&pid.to_string())
}

fn peak_rss_bytes_of(pid: &str) -> io::Result<u64> {
    status_bytes(pid, "VmHWM")
}

/// Resident memory (`VmRSS`) of process `pid` now, in bytes.
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    status_bytes(&pid.to_string(), "VmRSS")
}

/// A size field (`VmRSS`, `VmHWM`, ...) of `/proc/<pid>/status`, in bytes.
fn status_bytes(pid: &str, field: &str) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no {field} in /proc status"),
            )
        })
}

/// `utime + stime` in clock ticks from the text of `/proc/<pid>/stat`. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    // After the name come field 3 (state) onwards; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn rusage_cpu(who: libc::c_int) -> f64 {
    // SAFETY: `usage` is a plain C struct for which all zeroes is valid, and getrusage only
    // writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, exclusively borrowed rusage.
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return 0.0;
    }
    let seconds = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
