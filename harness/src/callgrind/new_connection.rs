//! The handshake pair's fixture (`hop/new_connection`): a processor and its client (the
//! `Forwarder` in baseline mode, so that every hop request opens a connection of its own,
//! over HTTP/1.1) on one current-thread runtime, so that an operation's count is the whole
//! cost of a request on a new connection, client and server side: connect, the TLS
//! handshake when there is one, the request, the answer, the close.
//!
//! The TLS sides use the certificate the binary makes with `TLS_SELF_SIGNED` (a local CA
//! and a certificate it signs, made once in a temporary directory before anything is
//! counted) and the processor's TLS configuration as the binary loads it. The client
//! trusts that CA alone, not the system's roots as the binary's hop does, so that what a
//! handshake costs does not depend on how many roots the machine has.
//!
//! rustls' client keeps TLS 1.3 session tickets, so from its second connection on a client
//! resumes the session of the previous one: no certificate is sent or checked. Both are
//! measured: [`Transport::TlsFull`] keeps no session (a full handshake every time, as for
//! a client's first connection), [`Transport::TlsResumed`] keeps rustls' default session
//! cache (what the system's hop client does). The processor counts the sessions it resumed,
//! so that a test can tell which handshake a variant measures.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use rustls::{ClientConfig, RootCertStore, client::Resumption, server::StoresServerSessions};
use system::{
    client::{Accepted, ClientMode, Forwarder, ForwarderConfig},
    config::names,
    processor::ProcessorConfig,
    proto::DataMessage,
    queue::QueueType,
    tls::{HopTls, TlsFiles, read_certs},
};
use tempfile::TempDir;
use tokio::runtime::Runtime;

use crate::workloads::{Placement, Stack, distinct_copies, reference_forwarder, sample_message};

pub use study::catalogue::{NEW_CONNECTION, NEW_CONNECTIONS};

/// How the hop's connections are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain TCP (`http://`).
    Plain,
    /// TLS with a full handshake on every connection: the client keeps no session.
    TlsFull,
    /// TLS resuming, on every connection, the session of a ticket the processor sent on
    /// the previous one (rustls' default client session cache).
    TlsResumed,
}

impl Transport {
    /// Every transport, the baseline (plaintext) first.
    pub const ALL: [Transport; 3] = [Transport::Plain, Transport::TlsFull, Transport::TlsResumed];

    /// The variant's name in result files.
    pub fn variant(self) -> &'static str {
        let [plain, full, resumed] =
            study::catalogue::NEW_CONNECTION_VARIANTS.map(study::variant::Variant::as_str);
        match self {
            Transport::Plain => plain,
            Transport::TlsFull => full,
            Transport::TlsResumed => resumed,
        }
    }
}

/// Counters of the fixture, each counting since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Requests the client sent to the processor.
    pub requests: u64,
    /// Connections the client opened.
    pub opened: u64,
    /// Connections the processor accepted.
    pub accepted: u64,
    /// TLS handshakes that resumed a session (found by the processor).
    pub resumed: u64,
}

/// A processor and a client that opens a new connection for every request.
pub struct NewConnection {
    runtime: Runtime,
    forwarder: Forwarder,
    message: DataMessage,
    ids: AtomicU64,
    sessions: Option<Arc<CountingSessions>>,
    // Dropped after the client, then the certificates' directory goes.
    _stack: Stack,
    _certificates: Option<TempDir>,
}

impl NewConnection {
    /// Starts the processor (serving TLS unless `transport` is plain) and its client, and
    /// warms both up with [`NEW_CONNECTIONS`] requests (uncounted).
    pub fn start(transport: Transport) -> NewConnection {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let mut processor = ProcessorConfig {
            queue_type: QueueType::Pooled,
            queue_size: 100_000,
            ..ProcessorConfig::default()
        };
        let (certificates, hop_tls, sessions) = match transport {
            Transport::Plain => (None, None, None),
            Transport::TlsFull | Transport::TlsResumed => {
                let certificates = tempfile::tempdir().expect("a temporary directory");
                let (server, hop_tls) = tls(&certificates, transport);
                let sessions = Arc::new(CountingSessions::around(&server));
                let mut server = server;
                server.session_storage = Arc::clone(&sessions) as Arc<dyn StoresServerSessions>;
                processor.tls = Some(Arc::new(server));
                (Some(certificates), Some(hop_tls), Some(sessions))
            }
        };
        let scheme = if hop_tls.is_some() { "https" } else { "http" };
        let stack = Stack::start(Placement::Shared(&runtime), processor, None)
            .expect("an in-process processor");
        let url = format!("{scheme}://{}", stack.processor)
            .parse()
            .expect("the processor's URL");
        let forwarder = runtime.block_on(async {
            Forwarder::new(ForwarderConfig {
                mode: ClientMode::Baseline,
                tls: hop_tls,
                ..reference_forwarder(url)
            })
        });
        let mut fixture = NewConnection {
            runtime,
            forwarder,
            message: sample_message(),
            ids: AtomicU64::new(0),
            sessions,
            _stack: stack,
            _certificates: certificates,
        };
        fixture.run(NEW_CONNECTIONS);
        fixture
    }

    /// Sends `n` messages, one hop request each, every request on a new connection, and
    /// waits for each to be accepted.
    pub fn run(&mut self, n: usize) {
        let messages = distinct_copies(&self.message, n, &self.ids);
        let results = self
            .runtime
            .block_on(self.forwarder.forward_batch(messages));
        assert!(
            results.iter().all(|r| *r == Ok(Accepted::New)),
            "the processor refused a message or took it for a repeat: {results:?}"
        );
    }

    /// TLS sessions the processor resumed so far (none for plaintext); counted without a
    /// request.
    pub fn resumed(&self) -> u64 {
        self.sessions
            .as_ref()
            .map_or(0, |sessions| sessions.resumed.load(Ordering::Relaxed))
    }

    /// Every counter, the processor's read with a request of the client's, which is one
    /// more request, connection (and handshake) in the counts it returns.
    pub fn counts(&self) -> Counts {
        let processor = self
            .runtime
            .block_on(self.forwarder.processor_stats())
            .expect("the processor's counters");
        let client = self.forwarder.stats();
        Counts {
            requests: client.requests,
            opened: client.connections_opened,
            accepted: processor["connectionsAccepted"]
                .as_u64()
                .expect("connectionsAccepted in the processor's counters"),
            resumed: self.resumed(),
        }
    }
}

/// The processor's TLS configuration as the binary loads it with `TLS_SELF_SIGNED` (made
/// in `dir`), and a hop client trusting that CA alone, keeping sessions or not.
fn tls(dir: &TempDir, transport: Transport) -> (rustls::ServerConfig, HopTls) {
    let loaded = TlsFiles {
        self_signed: Some(dir.path().to_owned()),
        ..TlsFiles::default()
    }
    .load(&[])
    .expect("a self-signed certificate");
    let server = loaded.processor.expect("the processor's TLS configuration");
    let ca = loaded.self_signed_ca.expect("the self-signed CA");
    let mut roots = RootCertStore::empty();
    for cert in read_certs(names::PROCESSOR_CA, &ca).expect("the CA's certificate") {
        roots.add(cert).expect("a usable CA certificate");
    }
    let mut client = ClientConfig::builder_with_provider(system::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    if transport == Transport::TlsFull {
        client.resumption = Resumption::disabled();
    }
    let hop = HopTls {
        config: Arc::new(client),
        server_name: None,
    };
    ((*server).clone(), hop)
}

/// The processor's session store, counting the sessions taken from it: a TLS 1.3 server
/// takes a session from its store exactly when a client offers a ticket it issued, to
/// resume that session.
#[derive(Debug)]
struct CountingSessions {
    inner: Arc<dyn StoresServerSessions>,
    resumed: AtomicU64,
}

impl CountingSessions {
    /// Around the store `server` has.
    fn around(server: &rustls::ServerConfig) -> CountingSessions {
        CountingSessions {
            inner: Arc::clone(&server.session_storage),
            resumed: AtomicU64::new(0),
        }
    }
}

impl StoresServerSessions for CountingSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let session = self.inner.take(key);
        if session.is_some() {
            self.resumed.fetch_add(1, Ordering::Relaxed);
        }
        session
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}
