//! Servers run as child processes: started (optionally pinned with `taskset -c`), found
//! ready by the `listening on <addr>` lines they log, and stopped with SIGTERM (SIGKILL
//! after a bound) when their guard drops, so no server outlives the run that started it.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

/// How long a server may take to say it is listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server gets to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A server process; stopped when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// Addresses by role, from its `<role> listening on <addr>` lines.
    pub addrs: BTreeMap<String, String>,
}

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The program could not be run.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// What was run.
        program: String,
        /// Why not.
        source: std::io::Error,
    },
    /// It did not report every role listening in time, or exited.
    #[error(
        "{program} did not report {missing} listening within {timeout:?}; its output:\n{output}"
    )]
    NotReady {
        /// What was run.
        program: String,
        /// The roles still missing.
        missing: String,
        /// The bound waited.
        timeout: Duration,
        /// What it printed.
        output: String,
    },
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
    pub fn start(mut command: Command, roles: &[&str]) -> Result<Server, StartError> {
        let program = format!("{command:?}");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| StartError::Spawn {
                program: program.clone(),
                source,
            })?;
        let (lines_tx, lines_rx) = mpsc::sync_channel::<String>(1024);
        // Reader threads forward lines until the pipe closes (when the child exits), and
        // drop them once nobody listens, so a chatty server never blocks on a full pipe.
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = lines_tx.clone();
            thread::spawn(move || {
                let mut listening = true;
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if listening && tx.send(line).is_err() {
                        listening = false;
                    }
                }
            });
        }
        drop(lines_tx);
        let mut addrs = BTreeMap::new();
        let mut output = String::new();
        let deadline = Instant::now() + START_TIMEOUT;
        while addrs.len() < roles.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = lines_rx.recv_timeout(left) else {
                break;
            };
            for role in roles {
                if let Some(addr) = listening_addr(&line, role) {
                    addrs.insert((*role).to_owned(), addr);
                }
            }
            output.push_str(&line);
            output.push('\n');
        }
        let server = Server { child, addrs };
        let missing: Vec<&str> = roles
            .iter()
            .copied()
            .filter(|role| !server.addrs.contains_key(*role))
            .collect();
        if !missing.is_empty() {
            return Err(StartError::NotReady {
                program,
                missing: missing.join(", "),
                timeout: START_TIMEOUT,
                output,
            });
        }
        Ok(server)
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its address for `role`.
    pub fn addr(&self, role: &str) -> &str {
        self.addrs.get(role).map_or("", String::as_str)
    }

    /// Sends SIGTERM and waits (bounded) for it to exit; kills it after the bound.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return;
        };
        // SAFETY: kill only sends a signal to our own child, which has not been reaped yet
        // (try_wait above), so the pid cannot have been reused.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The address in a `... <role> listening on <addr>` log line.
pub fn listening_addr(line: &str, role: &str) -> Option<String> {
    let marker = format!("{role} listening on ");
    let at = line.find(&marker)?;
    let addr = line[at + marker.len()..].split_whitespace().next()?;
    Some(addr.trim_end_matches(',').to_owned())
}
