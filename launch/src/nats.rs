//! A `nats-server -js` as a child: on a free loopback port, its JetStream store in a
//! directory of its own (removed with it), ready once it logs "Server is ready". It can be
//! killed and started again on the same port with the same store, as a crash and a restart
//! would; it may be given more arguments (a user and password, a token, a configuration
//! file). Three of them, each a node with a name, form a [`NatsCluster`].

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use crate::{Launch, LaunchError, Running, free_port};

mod cluster;
mod healthz;

pub use cluster::{NatsCluster, NatsClusterOptions};

/// What nats-server logs once it accepts clients (JetStream included).
const READY_TEXT: &str = "Server is ready";
/// How long a server gets to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// nats-server exits at once on SIGTERM; this only bounds a stuck one.
const GRACE: Duration = Duration::from_secs(5);
/// Lines of its log kept: only shown when it fails to start.
const KEEP_LINES: usize = 200;

/// The `nats-server` command when it runs here, installing it with the project's
/// `scripts/ensure-tools` when it is missing (asked once per process); `None` when it
/// still cannot be had.
pub fn ensure_nats_server() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let runs = || {
                Command::new("nats-server")
                    .arg("--version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|status| status.success())
            };
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/ensure-tools");
            let available = runs() || {
                let _ = Command::new(script).arg("nats-server").status();
                runs()
            };
            available.then(|| PathBuf::from("nats-server"))
        })
        .clone()
}

/// For a test: what `start` makes of the `nats-server` program, or `None` after saying (on
/// stderr) that `test` is skipped because `nats-server` cannot be had. Panics when it is
/// there but `start` fails.
pub(crate) fn for_test<T>(
    test: &str,
    start: impl FnOnce(&Path) -> Result<T, LaunchError>,
) -> Option<T> {
    let Some(program) = ensure_nats_server() else {
        eprintln!(
            "skipping {test}: `nats-server` is not installed and `scripts/ensure-tools \
             nats-server` could not install it"
        );
        return None;
    };
    match start(&program) {
        Ok(started) => Some(started),
        Err(err) => panic!("{test}: {err}"),
    }
}

/// A running `nats-server -js`, alone or a node of a [`NatsCluster`]; killed, and its
/// store removed (unless the cluster was given a directory to keep), when dropped.
#[derive(Debug)]
pub struct NatsServer {
    program: PathBuf,
    port: u16,
    store: PathBuf,
    /// A store the user named outlives us, so that a restart finds its streams.
    keep_store: bool,
    /// Its name, routes and monitoring port when it is a node of a cluster.
    node: Option<cluster::Node>,
    /// Arguments given after the ones every server gets (`--user`, `-c FILE`, ...).
    extra: Vec<String>,
    process: Option<Running>,
}

impl NatsServer {
    /// Starts `program` on a free port with a new store and waits until it is ready.
    pub fn start(program: &Path) -> Result<NatsServer, LaunchError> {
        NatsServer::start_with(program, &[])
    }

    /// [`NatsServer::start`] with `extra` arguments after the usual ones, e.g. `--user U
    /// --pass P`, `--auth TOKEN` or `-c FILE`; a restart gives them again.
    pub fn start_with(program: &Path, extra: &[&str]) -> Result<NatsServer, LaunchError> {
        static STORES: AtomicU32 = AtomicU32::new(0);
        let spawn_error = |source| LaunchError::Spawn {
            program: program.display().to_string(),
            source,
        };
        let port = free_port().map_err(spawn_error)?;
        let store = std::env::temp_dir().join(format!(
            "nats-store-{}-{}-{port}",
            std::process::id(),
            STORES.fetch_add(1, Ordering::Relaxed)
        ));
        let mut server = NatsServer {
            program: program.to_owned(),
            port,
            store,
            keep_store: false,
            node: None,
            extra: extra.iter().map(|arg| (*arg).to_owned()).collect(),
            process: None,
        };
        server.restart()?;
        Ok(server)
    }

    /// For a test: a running server, or `None` after saying (on stderr) that `test` is
    /// skipped because `nats-server` cannot be had. Panics when it is there but does not
    /// start.
    pub fn for_test(test: &str) -> Option<NatsServer> {
        for_test(test, NatsServer::start)
    }

    /// [`NatsServer::for_test`] with `extra` arguments (see [`NatsServer::start_with`]).
    pub fn for_test_with(test: &str, extra: &[&str]) -> Option<NatsServer> {
        for_test(test, |program| NatsServer::start_with(program, extra))
    }

    /// Its client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Its client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its node name in a cluster (`n1`, `n2`, `n3`); `None` for a server alone.
    pub fn name(&self) -> Option<&str> {
        self.node.as_ref().map(|node| node.name)
    }

    /// Its HTTP monitoring port (`/healthz`, `/jsz`, ...) as a node of a cluster; a server
    /// alone has none.
    pub fn monitor_port(&self) -> Option<u16> {
        self.node.as_ref().map(|node| node.monitor_port)
    }

    /// Its process, while it runs.
    pub fn process(&self) -> Option<&Running> {
        self.process.as_ref()
    }

    /// Its exit status when its process ended by itself (reaping it); `None` while it
    /// runs and after [`NatsServer::kill`].
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.process.as_mut().and_then(Running::try_status)
    }

    /// Stops it cleanly (SIGTERM, SIGKILL only after a bound) and reaps it; the store stays.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
    }

    /// Kills it at once (no goodbye to its clients); the store stays.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts it (again, after [`NatsServer::kill`]) on the same port with the same store
    /// and waits until it is ready. A node of a cluster keeps its name and routes, and is
    /// ready once its `/healthz` says it is current with JetStream's meta leader, so it
    /// has rejoined; with no majority of the nodes running there is no meta leader, and
    /// [`NatsCluster::restart_stopped`] is the way to bring them back together.
    pub fn restart(&mut self) -> Result<(), LaunchError> {
        self.spawn()?;
        if self.node.is_some() {
            let result = healthz::wait_healthy(&mut [self], READY_TIMEOUT);
            if result.is_err() {
                self.kill();
            }
            result?;
        }
        Ok(())
    }

    /// Starts its process and waits until it logs that it accepts clients.
    fn spawn(&mut self) -> Result<(), LaunchError> {
        self.kill();
        let mut command = Command::new(&self.program);
        command
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store);
        if let Some(node) = &self.node {
            command.args(node.args());
        }
        command.args(&self.extra);
        let mut launch = Launch::new(command)
            .ready_text(READY_TEXT)
            .timeout(READY_TIMEOUT)
            .grace(GRACE)
            .keep_lines(KEEP_LINES);
        if self.node.is_some() {
            launch = launch.on_line(healthz::worth_keeping);
        }
        let process = launch.start()?;
        self.process = Some(process);
        Ok(())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        if !self.keep_store {
            let _ = std::fs::remove_dir_all(&self.store);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream;

    use super::NatsServer;

    #[test]
    fn a_server_is_killed_and_restarted_on_its_port_and_gone_when_dropped() {
        let Some(mut server) = NatsServer::for_test("nats tests of launch") else {
            return;
        };
        let reach = |port| TcpStream::connect(("127.0.0.1", port)).is_ok();
        assert!(reach(server.port()), "{}", server.url());
        let store = server.store.clone();
        server.kill();
        assert!(!reach(server.port()));
        server.restart().unwrap();
        assert!(reach(server.port()));
        let pid = server.process().map(|p| p.pid()).unwrap();
        drop(server);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        assert!(!store.exists());
    }
}
