//! Servers run as child processes for a measurement (by the peers, load, stages and abuse
//! suites, and pinned by the soak): started (optionally pinned with `taskset -c`) by
//! [`launch::Launch`], found ready by the `<role> listening on <addr>`
//! lines they log, and stopped with SIGTERM (SIGKILL after [`STOP_TIMEOUT`]) when their
//! guard drops, so no server outlives the run that started it.

use std::{process::Command, time::Duration};

use launch::{Launch, Running};

/// Why a server could not be started.
pub use launch::LaunchError as StartError;

/// How long a server may take to say it is listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server gets to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Lines of a server's log kept: only shown when it fails to start.
const KEEP_LINES: usize = 200;

/// A server process; stopped when dropped.
#[derive(Debug)]
pub struct Server {
    process: Running,
}

/// `command` prefixed with `taskset -c <cores>` when `cores` is given.
pub fn pinned(cores: Option<&str>, program: &str) -> Command {
    match cores {
        Some(cores) => {
            let mut command = Command::new("taskset");
            command.args(["-c", cores, program]);
            command
        }
        None => Command::new(program),
    }
}

impl Server {
    /// Starts `command` and waits until it has logged `<role> listening on <addr>` for every
    /// role in `roles` (on stdout or stderr).
    pub fn start(command: Command, roles: &[&str]) -> Result<Server, StartError> {
        let process = Launch::new(command)
            .roles(roles)
            .timeout(START_TIMEOUT)
            .grace(STOP_TIMEOUT)
            .keep_lines(KEEP_LINES)
            .start()?;
        Ok(Server { process })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Its address for `role`, from its `<role> listening on <addr>` line (empty for a
    /// role it was not started for).
    pub fn addr(&self, role: &str) -> String {
        self.process
            .addr(role)
            .map_or_else(String::new, |addr| addr.to_string())
    }

    /// Sends SIGTERM and waits (bounded) for it to exit; kills it after the bound.
    pub fn stop(&mut self) {
        self.process.stop();
    }
}
