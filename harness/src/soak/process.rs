//! The processes of a soak: `system` roles started (pinned when asked) and watched, their
//! log read for the whole run (the addresses they listen on, the id of every message a
//! NATS processor acknowledges, the counts a processor logs as it stops), their resident
//! memory and open descriptors read from `/proc`; and a `nats-server` of the soak's own
//! ([`launch::NatsServer`]). Each is stopped (SIGTERM, then SIGKILL after a bound) when its
//! guard drops.

use std::{
    process::{Command, ExitStatus},
    sync::{Arc, Mutex},
    time::Duration,
};

pub(crate) use launch::NatsServer;
use launch::{Launch, Running};

use super::ledger::Processed;

/// How long a process may take to say it is listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a process gets to exit after SIGTERM (the processor drains its queue first).
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Log lines kept to show when something goes wrong.
const TAIL_LINES: usize = 40;

/// The counts a processor logs as it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stopped {
    /// Messages its queue accepted.
    pub(crate) accepted: u64,
    /// Messages its workers processed.
    pub(crate) processed: u64,
}

/// A running `system` process.
#[derive(Debug)]
pub(crate) struct Watched {
    process: Running,
    stopped: Arc<Mutex<Option<Stopped>>>,
}

impl Watched {
    /// Starts `command` and waits until it has logged an address for every role in
    /// `roles`; the ids of the messages it acknowledges go to `acks` when given.
    pub(crate) fn start(
        command: Command,
        roles: &[&str],
        acks: Option<Arc<Mutex<Processed>>>,
    ) -> anyhow::Result<Watched> {
        let stopped = Arc::default();
        let sink = Arc::clone(&stopped);
        let process = Launch::new(command)
            .roles(roles)
            .timeout(START_TIMEOUT)
            .grace(STOP_TIMEOUT)
            .keep_lines(TAIL_LINES)
            .on_line(move |line| read_line(line, acks.as_deref(), &sink))
            .start()?;
        Ok(Watched { process, stopped })
    }

    /// Its pid.
    pub(crate) fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Its address for `role`, from its `<role> listening on <addr>` line (empty for a
    /// role it was not started for).
    pub(crate) fn addr(&self, role: &str) -> String {
        self.process
            .addr(role)
            .map_or_else(String::new, |addr| addr.to_string())
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub(crate) fn kill(&mut self) {
        self.process.kill();
    }

    /// Asks it to stop (SIGTERM) and waits, bounded, for it to exit; kills it after the
    /// bound. Its exit status.
    pub(crate) fn stop(&mut self) -> Option<ExitStatus> {
        self.process.stop()
    }

    /// The counts it logged as it stopped, once it has.
    pub(crate) fn stopped(&self) -> Option<Stopped> {
        self.stopped.lock().ok().and_then(|stopped| *stopped)
    }

    /// Its last log lines.
    pub(crate) fn tail(&self) -> String {
        self.process.output()
    }
}

/// Takes what the soak needs from one log line: an acknowledged id (recorded in `acks`, the
/// line not kept) or the counts of a stopping processor. Whether the line is kept.
fn read_line(
    line: &str,
    acks: Option<&Mutex<Processed>>,
    stopped: &Mutex<Option<Stopped>>,
) -> bool {
    if line.contains("nats ack") {
        if let (Some(acks), Some((_, rest))) = (acks, line.split_once("message_id=")) {
            let id = rest.split_whitespace().next().unwrap_or_default();
            if let Ok(mut acks) = acks.lock() {
                acks.record(id);
            }
        }
        return false;
    }
    if line.contains("processor stopped") {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|v| v.parse().ok())
        };
        if let (Some(accepted), Some(processed), Ok(mut stopped)) =
            (field("accepted="), field("processed="), stopped.lock())
        {
            *stopped = Some(Stopped {
                accepted,
                processed,
            });
        }
    }
    true
}

/// Resident memory (`VmRSS`) of process `pid`, in bytes.
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    crate::load::usage::rss_bytes(pid).ok()
}

/// Open file descriptors of process `pid`.
pub(crate) fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// `workers.processed` from a processor's `/stats`.
pub(crate) fn processed(processor: &str) -> Option<u64> {
    let stats = crate::system_load::get_json(processor, "/stats", Duration::from_secs(2))?;
    stats["workers"]["processed"].as_u64()
}
