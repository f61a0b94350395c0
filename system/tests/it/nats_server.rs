//! A real `nats-server -js` for the tests: on a free loopback port, with its store in a
//! temporary directory; killed (and the directory removed) on drop. When the command is
//! missing the project's `scripts/ensure-tools` is asked to install it; a test that still
//! cannot get one says so and is skipped.

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

/// How long a server gets to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
}

impl NatsServer {
    /// A running server, or `None` (after saying why) when `nats-server` is not available.
    pub fn start(test: &str) -> Option<NatsServer> {
        if !crate::support::tool_available("nats-server", "nats-server") {
            eprintln!(
                "skipping {test}: `nats-server` is not installed and `scripts/ensure-tools \
                 nats-server` could not install it"
            );
            return None;
        }
        let port = free_port();
        let store = tempfile::tempdir().expect("a temporary directory for the JetStream store");
        let mut server = NatsServer {
            child: None,
            port,
            store,
        };
        server.restart();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (no goodbye to its clients); the store stays.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store, and waits until it
    /// is ready.
    pub fn restart(&mut self) {
        self.kill();
        let mut child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-server starts");
        let stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        self.child = Some(child);
        let (ready_tx, ready_rx) = mpsc::channel();
        // The reader keeps draining the log so the server never blocks on a full pipe.
        thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if line.contains("Server is ready") {
                    let _ = ready_tx.send(());
                }
            }
        });
        if ready_rx.recv_timeout(READY_TIMEOUT).is_err() {
            self.kill();
            panic!("nats-server on port {} did not become ready", self.port);
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nobody listens on right now (the OS does not hand it out again at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}
