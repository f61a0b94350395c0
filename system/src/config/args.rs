//! The settings in groups, one per concern, each a set of flags under one help heading (a
//! few flags of [`CommonArgs`] have headings of their own). A role's command line is the
//! groups it uses; the command line without a role has them all.
//!
//! Every default here is a component's constant: the component's own `Default` (or `new`)
//! reads the same one, and a test in `config.rs` checks that the two agree.

use std::{ffi::OsStr, net::IpAddr, path::PathBuf};

use clap::{Args, builder::TypedValueParser, error::ErrorKind};
use http::Uri;

use crate::{
    config::names,
    domain::budget::{DEFAULT_MEMORY_BUDGET, DEFAULT_QUEUE_BYTES},
    domain::codec::{Codec, MAX_BATCH_MESSAGES},
    domain::queue::{
        DEFAULT_DEDUP_IDS, DEFAULT_DEDUP_WINDOW, DEFAULT_NATS_ACK_WAIT, DEFAULT_NATS_CONSUMER,
        DEFAULT_NATS_MAX_DELIVER, DEFAULT_NATS_MAX_PENDING, DEFAULT_NATS_REPLICAS,
        DEFAULT_NATS_STREAM, DEFAULT_NATS_TIMEOUT, DEFAULT_NATS_URL, QueueType,
    },
    domain::redact,
    domain::worker::{DEFAULT_WORKER_MODE, WorkerMode},
    hop::client::{self, ClientMode, HopProtocol},
    roles::gateway,
    roles::grpc,
    roles::processor::{self, DEFAULT_BODY_LIMIT},
    serve::auth::Secret,
    serve::clients::DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
    serve::debug::DEFAULT_PROFILE_ENDPOINT,
    serve::server::{DEFAULT_BIND_ADDR, DEFAULT_DRAIN_TIMEOUT, DEFAULT_MAX_CONNECTIONS},
};

/// What every role uses: where and how its servers listen, the process's budget, the
/// processor's body limit (which the front doors cut their batches to fit) and the
/// profile endpoint.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Network")]
pub struct CommonArgs {
    /// Address the servers listen on (unless a role's own address is set).
    #[arg(long, env = names::BIND_ADDR, default_value_t = DEFAULT_BIND_ADDR)]
    pub bind_addr: IpAddr,

    /// Most connections each server holds open at once.
    #[arg(long, env = names::MAX_CONNECTIONS, default_value_t = DEFAULT_MAX_CONNECTIONS as u32,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Seconds open connections get to finish after a shutdown signal.
    #[arg(long, env = names::SHUTDOWN_TIMEOUT,
          default_value_t = DEFAULT_DRAIN_TIMEOUT.as_secs() as u32,
          value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub shutdown_timeout: u32,

    /// Bytes the process may hold in flight: request bodies, messages waiting for the
    /// processor's answer, queued messages. New work beyond it is refused with 503 /
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = names::MEMORY_BUDGET, default_value_t = DEFAULT_MEMORY_BUDGET as u64,
          help_heading = "Limits",
          value_parser = clap::value_parser!(u64).range(1024 * 1024..=1 << 40))]
    pub memory_budget: u64,

    /// Largest request body the processor accepts, in bytes (the front doors cut their
    /// batches to fit it).
    #[arg(long, env = names::PROCESSOR_BODY_LIMIT, default_value_t = DEFAULT_BODY_LIMIT as u32,
          help_heading = "Limits",
          value_parser = clap::value_parser!(u32).range(1024..=1024 * 1024 * 1024))]
    pub processor_body_limit: u32,

    /// Serve `GET /debug/pprof/profile?seconds=N` on the role's port (over h2c on the gRPC
    /// port): a CPU profile of the process, one at a time.
    #[arg(long, env = names::PROFILE_ENDPOINT, default_value_t = DEFAULT_PROFILE_ENDPOINT,
          help_heading = "Debug", action = clap::ArgAction::Set)]
    pub profile_endpoint: bool,
}

/// The certificate every server of the process presents.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "TLS")]
pub struct ServerTlsArgs {
    /// Certificate chain (PEM) that every server of the process presents: TLS on the
    /// gateway's, the gRPC and the processor's ports. With `TLS_KEY`.
    #[arg(long, env = names::TLS_CERT, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of `TLS_CERT`.
    #[arg(long, env = names::TLS_KEY, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Serve TLS with a certificate for this machine's loopback names, signed by a local CA
    /// kept in DIR (`--tls-self-signed=DIR`; `tls` when given alone): point clients at
    /// DIR/ca.pem. Instead of `TLS_CERT`.
    #[arg(long, env = names::TLS_SELF_SIGNED, value_name = "DIR", num_args = 0..=1,
          default_missing_value = "tls", require_equals = true,
          conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls_self_signed: Option<PathBuf>,
}

// Access tokens (see `auth`): each unset by default, which leaves its routes open. A token
// is given as a value or as a file, not both; `Settings::tokens` reads and checks them. A
// value on the command line shows in the process list: prefer the variable or the file.

/// The tokens every role uses: the processor's (wanted there, sent by the front doors) and
/// the debug endpoint's.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Access")]
pub struct AccessArgs {
    /// Bearer token the processor wants on `/enqueue` and `/enqueue/batch`; the front doors
    /// send it.
    #[arg(long, env = names::PROCESSOR_TOKEN, hide_env_values = true)]
    pub processor_token: Option<Secret>,

    /// File holding `PROCESSOR_TOKEN` (its trailing newline dropped).
    #[arg(long, env = names::PROCESSOR_TOKEN_FILE, value_name = "FILE")]
    pub processor_token_file: Option<PathBuf>,

    /// Bearer token wanted on `/debug/*` (the profile endpoint).
    #[arg(long, env = names::DEBUG_TOKEN, hide_env_values = true)]
    pub debug_token: Option<Secret>,

    /// File holding `DEBUG_TOKEN` (its trailing newline dropped).
    #[arg(long, env = names::DEBUG_TOKEN_FILE, value_name = "FILE")]
    pub debug_token_file: Option<PathBuf>,
}

/// The token the front doors want on ingest.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Access")]
pub struct IngestAccessArgs {
    /// Bearer token the front doors want on ingest (`POST /api/v1/ingest`,
    /// `GET /api/v1/trace`, gRPC `Ingest` and `IngestStream`).
    #[arg(long, env = names::INGEST_TOKEN, hide_env_values = true)]
    pub ingest_token: Option<Secret>,

    /// File holding `INGEST_TOKEN` (its trailing newline dropped).
    #[arg(long, env = names::INGEST_TOKEN_FILE, value_name = "FILE")]
    pub ingest_token_file: Option<PathBuf>,
}

/// How the front doors reach the processor: the hop's client.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Hop client")]
pub struct HopArgs {
    /// Where the gateway and the gRPC server find the processor (with all roles in one
    /// process, they use the processor of that process).
    #[arg(long, env = names::PROCESSOR_URL, default_value = client::DEFAULT_PROCESSOR_URL,
          value_parser = UrlParser(parse_processor_url))]
    pub processor_url: Uri,

    /// Processor client: `pooled` (shared keep-alive connections, pooled buffers) or
    /// `baseline` (a new connection and buffer per request).
    #[arg(long, env = names::CLIENT_MODE, value_enum,
          default_value_t = client::DEFAULT_CLIENT_MODE)]
    pub client_mode: ClientMode,

    /// Protocol to the processor: `http1` or `h2c` (HTTP/2 with prior knowledge).
    #[arg(long, env = names::HOP_PROTOCOL, value_enum,
          default_value_t = client::DEFAULT_HOP_PROTOCOL)]
    pub hop_protocol: HopProtocol,

    /// Encoding to the processor: `json` or `protobuf`.
    #[arg(long, env = names::HOP_CODEC, value_enum, default_value_t = client::DEFAULT_HOP_CODEC)]
    pub hop_codec: Codec,

    /// Most messages per request to the processor when batching (1 = no batching).
    #[arg(long, env = names::HOP_BATCH, default_value_t = client::DEFAULT_HOP_BATCH as u16,
          value_parser = clap::value_parser!(u16).range(1..=MAX_BATCH_MESSAGES as i64))]
    pub hop_batch: u16,

    /// Microseconds a batch of single ingests waits for more once the hop has room (0: it
    /// leaves at once with whatever is ready).
    #[arg(long, env = names::HOP_LINGER_US,
          default_value_t = client::DEFAULT_HOP_LINGER.as_micros() as u32,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub hop_linger_us: u32,

    /// Most batch requests of single ingests out to the processor at once; ingests that
    /// arrive while they are out form the next batch.
    #[arg(long, env = names::HOP_IN_FLIGHT, default_value_t = client::DEFAULT_HOP_IN_FLIGHT as u16,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub hop_in_flight: u16,

    /// Also batch concurrent HTTP and unary gRPC ingests (streams are always batched when
    /// `HOP_BATCH` > 1).
    #[arg(long, env = names::HOP_BATCH_HTTP, default_value_t = client::DEFAULT_BATCH_UNARY,
          action = clap::ArgAction::Set)]
    pub hop_batch_http: bool,

    /// Milliseconds allowed for one request to the processor.
    #[arg(long, env = names::HOP_TIMEOUT_MS,
          default_value_t = client::DEFAULT_HOP_TIMEOUT.as_millis() as u32,
          value_parser = clap::value_parser!(u32).range(1..=600_000))]
    pub hop_timeout_ms: u32,

    /// CA (PEM) the front doors trust for an `https` `PROCESSOR_URL`, besides the system's
    /// roots (and the self-signed CA, in that mode).
    #[arg(long, env = names::PROCESSOR_CA, value_name = "FILE")]
    pub processor_ca: Option<PathBuf>,

    /// Name expected in the processor's certificate, instead of the host of `PROCESSOR_URL`.
    #[arg(long, env = names::PROCESSOR_TLS_NAME)]
    pub processor_tls_name: Option<String>,

    /// Certificate chain (PEM) the front doors present to a processor that asks for one
    /// (`TLS_CLIENT_CA` there). With `HOP_CLIENT_KEY`.
    #[arg(long, env = names::HOP_CLIENT_CERT, value_name = "FILE")]
    pub hop_client_cert: Option<PathBuf>,

    /// Private key (PEM) of `HOP_CLIENT_CERT`.
    #[arg(long, env = names::HOP_CLIENT_KEY, value_name = "FILE")]
    pub hop_client_key: Option<PathBuf>,
}

/// The gateway's own settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Gateway")]
pub struct GatewayArgs {
    /// Address the gateway listens on; `BIND_ADDR` when unset.
    #[arg(long, env = names::GATEWAY_BIND_ADDR)]
    pub gateway_bind_addr: Option<IpAddr>,

    /// Port of the HTTP gateway (0 picks a free one).
    #[arg(long, env = names::API_PORT, default_value_t = gateway::DEFAULT_PORT)]
    pub api_port: u16,

    /// Largest request body the gateway accepts, in bytes.
    #[arg(long, env = names::BODY_LIMIT, default_value_t = gateway::DEFAULT_BODY_LIMIT as u32,
          value_parser = clap::value_parser!(u32).range(1024..=1024 * 1024 * 1024))]
    pub body_limit: u32,

    /// Port where the gateway also serves plain HTTP/1.1 and h2c while TLS is on (0 picks a
    /// free one); unset: none.
    #[arg(long, env = names::API_PLAIN_PORT)]
    pub api_plain_port: Option<u16>,
}

/// The gRPC role's own settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "gRPC")]
pub struct GrpcArgs {
    /// Address the gRPC server (and its `GRPC_METRICS_PORT`) listens on; `BIND_ADDR` when
    /// unset.
    #[arg(long, env = names::GRPC_BIND_ADDR)]
    pub grpc_bind_addr: Option<IpAddr>,

    /// Port of the gRPC server (0 picks a free one).
    #[arg(long, env = names::GRPC_PORT, default_value_t = grpc::DEFAULT_PORT)]
    pub grpc_port: u16,

    /// Port of a plain HTTP `GET /metrics` for the gRPC role (0 picks a free one), whose own
    /// port speaks HTTP/2 only; unset: none. With all roles in one process the gateway's
    /// `/metrics` already shows the gRPC role's families, and this port answers the same.
    #[arg(long, env = names::GRPC_METRICS_PORT)]
    pub grpc_metrics_port: Option<u16>,
}

/// The processor's own settings: its port and its worker pool.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Processor")]
pub struct ProcessorArgs {
    /// Address the processor listens on; `BIND_ADDR` when unset (so the gateway can listen
    /// publicly while the processor stays on loopback).
    #[arg(long, env = names::PROCESSOR_BIND_ADDR)]
    pub processor_bind_addr: Option<IpAddr>,

    /// Port of the processor (0 picks a free one).
    #[arg(long, env = names::PROCESSOR_PORT, default_value_t = processor::DEFAULT_PORT)]
    pub processor_port: u16,

    /// Number of workers in the processor's pool.
    #[arg(long, env = names::PROCESSOR_WORKERS, default_value_t = processor::DEFAULT_WORKERS as u16,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub processor_workers: u16,

    /// How workers take messages: `batched` (up to 32 ready messages at a time, results in
    /// recycled batches) or `baseline` (one at a time, a fresh result for each).
    #[arg(long, env = names::WORKER_MODE, value_enum, default_value_t = DEFAULT_WORKER_MODE)]
    pub worker_mode: WorkerMode,

    /// CA (PEM) of the client certificates the processor requires (mutual TLS); unset:
    /// none is asked for.
    #[arg(long, env = names::TLS_CLIENT_CA, value_name = "FILE", help_heading = "TLS")]
    pub tls_client_ca: Option<PathBuf>,
}

/// The processor's queue.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Queue")]
pub struct QueueArgs {
    /// Queue implementation: `memory` (baseline), `pooled`, or `nats` (a JetStream stream
    /// shared by several processors).
    #[arg(long, env = names::QUEUE_TYPE, value_enum,
          default_value_t = processor::DEFAULT_QUEUE_TYPE)]
    pub queue_type: QueueType,

    /// Most messages waiting in the processor's queue.
    #[arg(long, env = names::QUEUE_SIZE, default_value_t = processor::DEFAULT_QUEUE_SIZE as u32,
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub queue_size: u32,

    /// Bytes of messages an in-memory queue may hold (within `MEMORY_BUDGET`).
    #[arg(long, env = names::QUEUE_BYTES, default_value_t = DEFAULT_QUEUE_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(1024..=1 << 40))]
    pub queue_bytes: u64,

    /// Most message ids clients gave that the in-memory queues remember for the window, to
    /// answer a message sent again under the same id as a duplicate (0: none). When full,
    /// a message with an id of its own is refused (503) until ids expire; none is
    /// forgotten early. Their memory counts against `MEMORY_BUDGET`.
    #[arg(long, env = names::DEDUP_IDS, default_value_t = DEFAULT_DEDUP_IDS as u32,
          value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    pub dedup_ids: u32,

    /// Seconds the in-memory queues remember an accepted id (the NATS queue uses the
    /// stream's duplicate window, two minutes by default).
    #[arg(long, env = names::DEDUP_WINDOW_SECS,
          default_value_t = DEFAULT_DEDUP_WINDOW.as_secs() as u32,
          value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub dedup_window_secs: u32,
}

/// The NATS queue (with `QUEUE_TYPE=nats`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "NATS")]
pub struct NatsArgs {
    /// Where the NATS server listens (with `QUEUE_TYPE=nats`); a comma-separated list of
    /// the servers of a cluster, between which the client fails over.
    #[arg(long, env = names::NATS_URL, default_value = DEFAULT_NATS_URL,
          value_parser = UrlParser(parse_nats_url))]
    pub nats_url: String,

    /// NATS credentials file (a user JWT and its NKEY seed, as `nsc` writes it) the
    /// processor authenticates with. One way only: this, `NATS_USER`, `NATS_TOKEN_FILE` or
    /// a user in `NATS_URL`.
    #[arg(long, env = names::NATS_CREDS_FILE, value_name = "FILE")]
    pub nats_creds_file: Option<PathBuf>,

    /// User the processor authenticates to NATS as, with `NATS_PASSWORD_FILE`.
    #[arg(long, env = names::NATS_USER)]
    pub nats_user: Option<String>,

    /// File holding the password of `NATS_USER` (its trailing newline dropped).
    #[arg(long, env = names::NATS_PASSWORD_FILE, value_name = "FILE")]
    pub nats_password_file: Option<PathBuf>,

    /// File holding a token the processor authenticates to NATS with (its trailing newline
    /// dropped).
    #[arg(long, env = names::NATS_TOKEN_FILE, value_name = "FILE")]
    pub nats_token_file: Option<PathBuf>,

    /// Copies JetStream keeps of the stream and the dead-letter stream when the first
    /// processor creates them: 1, or 3 or 5 on a cluster of at least that many servers.
    /// A stream that exists with another number stops the processor at start-up.
    #[arg(long, env = names::NATS_REPLICAS, default_value_t = DEFAULT_NATS_REPLICAS as u8,
          value_parser = parse_nats_replicas)]
    pub nats_replicas: u8,

    /// Name of the JetStream stream the processors share.
    #[arg(long, env = names::NATS_STREAM, default_value = DEFAULT_NATS_STREAM,
          value_parser = parse_nats_name)]
    pub nats_stream: String,

    /// Name of the durable consumer the processors share.
    #[arg(long, env = names::NATS_CONSUMER, default_value = DEFAULT_NATS_CONSUMER,
          value_parser = parse_nats_name)]
    pub nats_consumer: String,

    /// Most publishes waiting for JetStream's confirmation at once; beyond it, 503.
    #[arg(long, env = names::NATS_MAX_PENDING, default_value_t = DEFAULT_NATS_MAX_PENDING as u32,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub nats_max_pending: u32,

    /// Milliseconds a publish (or another NATS call) may wait for an answer.
    #[arg(long, env = names::NATS_TIMEOUT_MS,
          default_value_t = DEFAULT_NATS_TIMEOUT.as_millis() as u32,
          value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub nats_timeout_ms: u32,

    /// Milliseconds a delivered message may stay unacknowledged before it is delivered
    /// again (to any processor).
    #[arg(long, env = names::NATS_ACK_WAIT_MS,
          default_value_t = DEFAULT_NATS_ACK_WAIT.as_millis() as u32,
          value_parser = clap::value_parser!(u32).range(100..=3_600_000))]
    pub nats_ack_wait_ms: u32,

    /// Deliveries of one message before it goes to the dead-letter stream instead.
    #[arg(long, env = names::NATS_MAX_DELIVER, default_value_t = DEFAULT_NATS_MAX_DELIVER,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub nats_max_deliver: u32,
}

/// The parser of a URL setting (`f` checks the value): a refusal quotes the value with its
/// userinfo hidden, where clap would quote it as given, password and all.
#[derive(Clone, Copy)]
struct UrlParser<T>(fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> TypedValueParser for UrlParser<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let problem = match value.to_str() {
            Some(text) => match (self.0)(text) {
                Ok(parsed) => return Ok(parsed),
                Err(problem) => problem,
            },
            None => "not UTF-8".to_owned(),
        };
        let arg = arg.map_or_else(|| "the URL".to_owned(), ToString::to_string);
        let message = format!(
            "invalid value '{}' for '{arg}': {problem}",
            redact::userinfo(&value.to_string_lossy())
        );
        Err(clap::Error::raw(ErrorKind::ValueValidation, message).format(&mut cmd.clone()))
    }
}

fn parse_processor_url(value: &str) -> Result<Uri, String> {
    let uri: Uri = value.parse().map_err(|err| format!("not a URL: {err}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err("expected http://host:port or https://host:port".to_owned());
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err("expected no path, only http(s)://host:port".to_owned());
    }
    Ok(uri)
}

/// One server or a comma-separated list of them, each `nats://host:port` (or `tls://`).
fn parse_nats_url(value: &str) -> Result<String, String> {
    for server in value.split(',').map(str::trim) {
        let shown = redact::userinfo(server);
        let uri: Uri = server
            .parse()
            .map_err(|err| format!("`{shown}` is not a URL: {err}"))?;
        if !matches!(uri.scheme_str(), Some("nats" | "tls")) || uri.authority().is_none() {
            return Err(format!(
                "expected nats://host:port, or several separated by commas; got `{shown}`"
            ));
        }
    }
    Ok(value.to_owned())
}

/// A JetStream replica count worth having: a majority of an odd number of copies survives
/// the loss of the others (an even number tolerates no more losses than one fewer).
fn parse_nats_replicas(value: &str) -> Result<u8, String> {
    match value.parse::<u8>() {
        Ok(replicas @ (1 | 3 | 5)) => Ok(replicas),
        _ => Err("expected 1, 3 or 5".to_owned()),
    }
}

/// JetStream names become parts of subjects, so they may not hold `.`, `*`, `>` or spaces.
fn parse_nats_name(value: &str) -> Result<String, String> {
    let valid = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err("expected 1 to 64 letters, digits, `-` or `_`".to_owned());
    }
    Ok(value.to_owned())
}

/// What one client of the front doors may hold: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Limits")]
pub struct ClientArgs {
    /// Most connections one client address keeps open at the front doors (the gateway's
    /// ports and the gRPC port together); one more is closed at once, before TLS.
    #[arg(long, env = names::MAX_CONNECTIONS_PER_CLIENT,
          default_value_t = DEFAULT_MAX_CONNECTIONS_PER_CLIENT as u32,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections_per_client: u32,

    /// Bytes one client address may hold in flight at the front doors, within
    /// `MEMORY_BUDGET`; beyond it its requests are refused with 503 / RESOURCE_EXHAUSTED
    /// while other clients are served. Default: a quarter of `MEMORY_BUDGET`.
    #[arg(long, env = names::MEMORY_PER_CLIENT,
          value_parser = clap::value_parser!(u64).range(64 * 1024..=1 << 40))]
    pub memory_per_client: Option<u64>,
}
