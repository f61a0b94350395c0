//! The processes of a soak: `system` roles started (pinned when asked) and watched, their
//! log read for the whole run (the addresses they listen on, the id of every message a
//! NATS processor acknowledges, the counts a processor logs as it stops), their resident
//! memory and open descriptors read from `/proc`; and a `nats-server` of the soak's own.
//! Each is stopped (SIGTERM, then SIGKILL after a bound) when its guard drops.

use std::{
    collections::{BTreeMap, VecDeque},
    io::{BufRead, BufReader, Read},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::ledger::Processed;
use crate::peers::process::listening_addr;

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

#[derive(Debug, Default)]
struct Log {
    tail: VecDeque<String>,
    stopped: Option<Stopped>,
}

/// A running `system` process.
#[derive(Debug)]
pub(crate) struct Watched {
    child: Child,
    /// Addresses by role, from its `<role> listening on <addr>` lines.
    pub(crate) addrs: BTreeMap<String, String>,
    log: Arc<Mutex<Log>>,
    reader: Option<JoinHandle<()>>,
    exit: Option<ExitStatus>,
}

impl Watched {
    /// Starts `command` and waits until it has logged an address for every role in
    /// `roles`; the ids of the messages it acknowledges go to `acks` when given.
    pub(crate) fn start(
        mut command: Command,
        roles: &[&str],
        acks: Option<Arc<Mutex<Processed>>>,
    ) -> anyhow::Result<Watched> {
        let shown = format!("{command:?}");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {shown}"))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let log = Arc::new(Mutex::new(Log::default()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let sink = Arc::clone(&log);
        let wanted: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        let reader = thread::spawn(move || read_log(stderr, &wanted, &addr_tx, &sink, acks));
        let mut watched = Watched {
            child,
            addrs: BTreeMap::new(),
            log,
            reader: Some(reader),
            exit: None,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while watched.addrs.len() < roles.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match addr_rx.recv_timeout(left) {
                Ok((role, addr)) => {
                    watched.addrs.insert(role, addr);
                }
                Err(_) => {
                    watched.kill();
                    bail!(
                        "{shown} did not report {} listening within {START_TIMEOUT:?}; its log:\n{}",
                        roles.join(", "),
                        watched.tail()
                    );
                }
            }
        }
        Ok(watched)
    }

    /// Its pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its address for `role`.
    pub(crate) fn addr(&self, role: &str) -> &str {
        self.addrs.get(role).map_or("", String::as_str)
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub(crate) fn kill(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            self.exit = self.child.wait().ok();
        }
        self.finish_reading();
    }

    /// Asks it to stop (SIGTERM) and waits, bounded, for it to exit; kills it after the
    /// bound. Its exit status.
    pub(crate) fn stop(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
                // SAFETY: kill only sends a signal to our own child, which has not been
                // waited for yet (`exit` is unset), so the pid cannot have been reused.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(status)) = self.child.try_wait() {
                    self.exit = Some(status);
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
            if self.exit.is_none() {
                let _ = self.child.kill();
                self.exit = self.child.wait().ok();
            }
        }
        self.finish_reading();
        self.exit
    }

    /// The counts it logged as it stopped, once it has.
    pub(crate) fn stopped(&self) -> Option<Stopped> {
        self.log.lock().ok().and_then(|log| log.stopped)
    }

    /// Its last log lines.
    pub(crate) fn tail(&self) -> String {
        self.log
            .lock()
            .map(|log| log.tail.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// Waits for the log reader, which ends when the process's stderr closes.
    fn finish_reading(&mut self) {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_log(
    stderr: impl Read,
    roles: &[String],
    addrs: &mpsc::Sender<(String, String)>,
    log: &Mutex<Log>,
    acks: Option<Arc<Mutex<Processed>>>,
) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if line.contains("nats ack") {
            if let (Some(acks), Some((_, rest))) = (&acks, line.split_once("message_id=")) {
                let id = rest.split_whitespace().next().unwrap_or_default();
                if let Ok(mut acks) = acks.lock() {
                    acks.record(id);
                }
            }
            continue;
        }
        for role in roles {
            if let Some(addr) = listening_addr(&line, role) {
                let _ = addrs.send((role.clone(), addr));
            }
        }
        let Ok(mut log) = log.lock() else { break };
        if line.contains("processor stopped") {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(name))
                    .and_then(|v| v.parse().ok())
            };
            if let (Some(accepted), Some(processed)) = (field("accepted="), field("processed=")) {
                log.stopped = Some(Stopped {
                    accepted,
                    processed,
                });
            }
        }
        if log.tail.len() == TAIL_LINES {
            log.tail.pop_front();
        }
        log.tail.push_back(line);
    }
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

/// A `nats-server -js` on a free loopback port with a store of its own, removed with it.
#[derive(Debug)]
pub(crate) struct NatsServer {
    child: Child,
    pub(crate) url: String,
    store: PathBuf,
}

impl NatsServer {
    /// Starts `program` and waits until it accepts connections.
    pub(crate) fn start(program: &Path) -> anyhow::Result<NatsServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let store = std::env::temp_dir().join(format!("soak-nats-{}-{port}", std::process::id()));
        let child = Command::new(program)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let server = NatsServer {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            store,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            thread::sleep(Duration::from_millis(50));
        }
        bail!("nats-server did not start listening within 10 s")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}
