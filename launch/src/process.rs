//! A child process started by [`Launch`] and held by [`Running`]: its stdout and stderr are
//! read line by line for its whole life (so it never blocks on a full pipe), the lines are
//! kept up to a bound, and its readiness lines are looked for in them. Dropping a
//! [`Running`] stops the child (SIGTERM, then SIGKILL after a grace) and reaps it, also
//! while a panic unwinds.

use std::{
    collections::{BTreeMap, VecDeque},
    fmt,
    io::{self, BufRead, BufReader, Read},
    net::SocketAddr,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread,
    time::{Duration, Instant},
};

use crate::ready::parse_ready;

/// How long [`Launch::start`] waits for the readiness lines unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a child gets to exit after SIGTERM before it is killed, unless told otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// How many of its latest output lines a child keeps unless told otherwise.
pub const DEFAULT_KEEP_LINES: usize = 100_000;
/// Lines of output an error shows (the latest ones).
const SHOWN_LINES: usize = 200;
/// How long the readers get to take the last lines once the child has exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a wait looks whether the child has exited.
const POLL: Duration = Duration::from_millis(20);

/// Called with every line the child prints; a line it answers `false` for is not kept.
type Hook = Box<dyn FnMut(&str) -> bool + Send>;

/// How to start a child and when to call it ready.
pub struct Launch {
    command: Command,
    roles: Vec<String>,
    texts: Vec<String>,
    timeout: Duration,
    grace: Duration,
    keep_lines: usize,
    hook: Option<Hook>,
}

impl fmt::Debug for Launch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Launch")
            .field("command", &self.command)
            .field("roles", &self.roles)
            .field("texts", &self.texts)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Launch {
    /// Starts `command` (its stdin closed, stdout and stderr piped to us) with the defaults.
    pub fn new(command: Command) -> Launch {
        Launch {
            command,
            roles: Vec::new(),
            texts: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            grace: DEFAULT_GRACE,
            keep_lines: DEFAULT_KEEP_LINES,
            hook: None,
        }
    }

    /// Ready once each of `roles` has logged its [`ready_line`](crate::ready_line).
    pub fn roles(mut self, roles: &[&str]) -> Launch {
        self.roles.extend(roles.iter().map(|r| (*r).to_owned()));
        self
    }

    /// Ready only once a line containing `text` has been printed too.
    pub fn ready_text(mut self, text: &str) -> Launch {
        self.texts.push(text.to_owned());
        self
    }

    /// The bound on the wait for readiness.
    pub fn timeout(mut self, timeout: Duration) -> Launch {
        self.timeout = timeout;
        self
    }

    /// How long [`Running::stop`] (and so the drop) waits after SIGTERM before SIGKILL.
    pub fn grace(mut self, grace: Duration) -> Launch {
        self.grace = grace;
        self
    }

    /// Keeps only the latest `lines` lines of output.
    pub fn keep_lines(mut self, lines: usize) -> Launch {
        self.keep_lines = lines;
        self
    }

    /// Calls `hook` with every line, from the reader threads; a line it answers `false` for
    /// is not kept.
    pub fn on_line(mut self, hook: impl FnMut(&str) -> bool + Send + 'static) -> Launch {
        self.hook = Some(Box::new(hook));
        self
    }

    /// Starts the child and waits, within the timeout, until it is ready. On failure the
    /// child is killed and reaped, and the error names what was missing and shows the
    /// output so far.
    pub fn start(mut self) -> Result<Running, LaunchError> {
        let program = format!("{:?}", self.command);
        let mut child = self
            .command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| LaunchError::Spawn {
                program: program.clone(),
                source,
            })?;
        let pipes: Vec<Box<dyn Read + Send>> = [
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
        .collect();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                lines: VecDeque::new(),
                keep: self.keep_lines.max(1),
                roles: self.roles,
                texts: self.texts.into_iter().map(|t| (t, false)).collect(),
                addrs: BTreeMap::new(),
                open_pipes: pipes.len(),
                hook: self.hook,
            }),
            changed: Condvar::new(),
        });
        for pipe in pipes {
            let shared = Arc::clone(&shared);
            thread::spawn(move || shared.read(pipe));
        }
        let mut running = Running {
            child,
            program,
            addrs: BTreeMap::new(),
            shared,
            grace: self.grace,
            exit: None,
        };
        match running.wait_ready(self.timeout) {
            Ok(addrs) => {
                running.addrs = addrs;
                Ok(running)
            }
            Err(exited) => {
                if exited.is_none() {
                    running.kill();
                }
                let missing = running.shared.lock().missing();
                Err(LaunchError::NotReady {
                    program: running.program.clone(),
                    missing,
                    timeout: self.timeout,
                    exited,
                    output: running.tail(SHOWN_LINES),
                })
            }
        }
    }
}

/// Why a child could not be started.
#[derive(Debug)]
pub enum LaunchError {
    /// The program could not be run.
    Spawn {
        /// What was run.
        program: String,
        /// Why not.
        source: io::Error,
    },
    /// It did not log every readiness line in time, or exited first.
    NotReady {
        /// What was run.
        program: String,
        /// The roles (and quoted texts) never seen.
        missing: Vec<String>,
        /// The bound waited.
        timeout: Duration,
        /// Its exit status when it exited by itself before it was ready.
        exited: Option<ExitStatus>,
        /// The latest lines it printed.
        output: String,
    },
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchError::Spawn { program, source } => write!(f, "cannot start {program}: {source}"),
            LaunchError::NotReady {
                program,
                missing,
                timeout,
                exited,
                output,
            } => {
                let missing = missing.join(", ");
                match exited {
                    Some(status) => write!(
                        f,
                        "{program} exited ({status}) before it reported {missing} ready"
                    )?,
                    None => write!(
                        f,
                        "{program} did not report {missing} ready within {timeout:?}"
                    )?,
                }
                write!(f, "; its output:\n{output}")
            }
        }
    }
}

impl std::error::Error for LaunchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LaunchError::Spawn { source, .. } => Some(source),
            LaunchError::NotReady { .. } => None,
        }
    }
}

/// A started child; stopped (SIGTERM, SIGKILL after the grace) and reaped when dropped.
pub struct Running {
    child: Child,
    program: String,
    addrs: BTreeMap<String, SocketAddr>,
    shared: Arc<Shared>,
    grace: Duration,
    exit: Option<ExitStatus>,
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("pid", &self.child.id())
            .field("program", &self.program)
            .field("addrs", &self.addrs)
            .field("exit", &self.exit)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address `role` reported (for the roles it was started with).
    pub fn addr(&self, role: &str) -> Option<SocketAddr> {
        self.addrs.get(role).copied()
    }

    /// The addresses of the roles it was started with.
    pub fn addrs(&self) -> &BTreeMap<String, SocketAddr> {
        &self.addrs
    }

    /// Sends signal `name` (`TERM`, `STOP`, `KILL`, ...) with `kill(1)`; an error once
    /// the child has been reaped, since its pid may belong to another process by then.
    pub fn signal(&self, name: &str) -> io::Result<()> {
        if self.exit.is_some() {
            return Err(io::Error::other("the process has already exited"));
        }
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill -{name} failed: {status}")))
        }
    }

    /// Its exit status if it has exited (reaping it), without waiting.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.exit = Some(status);
            self.shared.drained(DRAIN_TIMEOUT);
        }
        self.exit
    }

    /// Waits up to `timeout` for it to exit by itself; its status, or `None` when it is
    /// still running.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL);
        }
    }

    /// Asks it to stop (SIGTERM), waits up to the grace, then kills it; its exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if self.try_status().is_none() && self.signal("TERM").is_ok() {
            self.wait(self.grace);
        }
        self.kill()
    }

    /// Kills it at once (SIGKILL), as a crash would, and reaps it; its exit status.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            self.exit = self.child.wait().ok();
            self.shared.drained(DRAIN_TIMEOUT);
        }
        self.exit
    }

    /// Every kept line of its output, stdout and stderr interleaved as they came.
    pub fn lines(&self) -> Vec<String> {
        self.shared.lock().lines.iter().cloned().collect()
    }

    /// The kept output as one text.
    pub fn output(&self) -> String {
        self.tail(usize::MAX)
    }

    /// Its latest `count` lines as one text.
    pub fn tail(&self, count: usize) -> String {
        let state = self.shared.lock();
        let skip = state.lines.len().saturating_sub(count);
        let kept: Vec<&str> = state.lines.iter().skip(skip).map(String::as_str).collect();
        kept.join("\n")
    }

    /// Waits for every role and text; the addresses, or (as the error) the exit status
    /// when the child exited first.
    fn wait_ready(
        &mut self,
        timeout: Duration,
    ) -> Result<BTreeMap<String, SocketAddr>, Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let state = self.shared.lock();
                if state.missing().is_empty() {
                    return Ok(state.addrs.clone());
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(None);
                }
                // Woken by every line; the poll bound notices an exit that prints nothing.
                let _ = self.shared.changed.wait_timeout(state, left.min(POLL));
            }
            if let Some(status) = self.try_status() {
                if self.shared.lock().missing().is_empty() {
                    return Ok(self.shared.lock().addrs.clone());
                }
                return Err(Some(status));
            }
        }
    }
}

impl Drop for Running {
    /// A failed test or an early return leaves no process behind.
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the reader threads and the owner share.
struct Shared {
    state: Mutex<State>,
    /// Notified on every line and when a pipe closes.
    changed: Condvar,
}

struct State {
    lines: VecDeque<String>,
    keep: usize,
    roles: Vec<String>,
    texts: Vec<(String, bool)>,
    addrs: BTreeMap<String, SocketAddr>,
    open_pipes: usize,
    hook: Option<Hook>,
}

impl State {
    /// The roles, and the quoted texts, not seen yet.
    fn missing(&self) -> Vec<String> {
        let roles = self
            .roles
            .iter()
            .filter(|r| !self.addrs.contains_key(*r))
            .cloned();
        let texts = self
            .texts
            .iter()
            .filter(|(_, seen)| !seen)
            .map(|(text, _)| format!("{text:?}"));
        roles.chain(texts).collect()
    }

    fn take(&mut self, line: String) {
        for role in &self.roles {
            if !self.addrs.contains_key(role)
                && let Some(addr) = parse_ready(&line, role)
            {
                self.addrs.insert(role.clone(), addr);
            }
        }
        for (text, seen) in &mut self.texts {
            *seen |= line.contains(text.as_str());
        }
        if let Some(hook) = &mut self.hook
            && !hook(&line)
        {
            return;
        }
        if self.lines.len() >= self.keep {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }
}

impl Shared {
    /// A poisoned lock only means a hook panicked; the lines are still good.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads `pipe` to its end, keeping its lines.
    fn read(&self, pipe: Box<dyn Read + Send>) {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            self.lock().take(line);
            self.changed.notify_all();
        }
        self.lock().open_pipes -= 1;
        self.changed.notify_all();
    }

    /// Waits (bounded) for the readers to reach the end of the pipes, so that the last
    /// lines of an exited child are kept. A grandchild that holds a pipe open only costs
    /// the bound.
    fn drained(&self, timeout: Duration) {
        let state = self.lock();
        let _ = self
            .changed
            .wait_timeout_while(state, timeout, |state| state.open_pipes > 0);
    }
}

#[cfg(test)]
mod tests;
