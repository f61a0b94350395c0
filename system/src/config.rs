//! Command line and environment: every setting is a flag with an environment variable of
//! the same meaning. A bad value stops the program at start-up with a message that names
//! the setting (clap's error names the flag and the variable's name).

use std::{net::IpAddr, path::PathBuf, sync::Arc, time::Duration};

use clap::{Args, Parser, Subcommand};
use http::Uri;

use crate::{
    auth::{self, Scope, Secret, TokenError, Tokens},
    budget::{Budget, DEFAULT_MEMORY_BUDGET, DEFAULT_QUEUE_BYTES},
    client::{ClientMode, ForwarderConfig, HopProtocol},
    codec::{Codec, MAX_BATCH_MESSAGES},
    gateway::GatewayConfig,
    grpc::GrpcConfig,
    processor::{DEFAULT_BODY_LIMIT, ProcessorConfig},
    queue::{DEFAULT_DEDUP_IDS, DEFAULT_DEDUP_WINDOW, NatsConfig, QueueType},
    server::HttpLimits,
    tls::{Tls, TlsError, TlsFiles},
    worker::{WorkerMode, seed_processing},
};

/// The command line of the `system` binary.
#[derive(Debug, Parser)]
#[command(
    name = "system",
    version,
    about = "Ingest system: gateway, gRPC ingest and processor"
)]
pub struct Cli {
    /// Which role to run; all of them when omitted.
    #[command(subcommand)]
    pub role: Option<Role>,
    /// Settings shared by the roles.
    #[command(flatten)]
    pub settings: Settings,
}

/// A role of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Role {
    /// The processor: `/enqueue`, the queue and the worker pool.
    Processor,
    /// The HTTP gateway (HTTP/1.1 and h2c), forwarding to `PROCESSOR_URL`.
    Gateway,
    /// The gRPC ingest server, forwarding to `PROCESSOR_URL`.
    Grpc,
}

/// Every setting, each with its environment variable.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address the servers listen on (unless a role's own address below is set).
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1", global = true)]
    pub bind_addr: IpAddr,

    /// Address the gateway listens on; `BIND_ADDR` when unset.
    #[arg(long, env = "GATEWAY_BIND_ADDR", global = true)]
    pub gateway_bind_addr: Option<IpAddr>,

    /// Address the gRPC server (and its `GRPC_METRICS_PORT`) listens on; `BIND_ADDR` when
    /// unset.
    #[arg(long, env = "GRPC_BIND_ADDR", global = true)]
    pub grpc_bind_addr: Option<IpAddr>,

    /// Address the processor listens on; `BIND_ADDR` when unset (so the gateway can listen
    /// publicly while the processor stays on loopback).
    #[arg(long, env = "PROCESSOR_BIND_ADDR", global = true)]
    pub processor_bind_addr: Option<IpAddr>,

    /// Port of the HTTP gateway (0 picks a free one).
    #[arg(long, env = "API_PORT", default_value_t = 8080, global = true)]
    pub api_port: u16,

    /// Port of the gRPC server (0 picks a free one).
    #[arg(long, env = "GRPC_PORT", default_value_t = 50051, global = true)]
    pub grpc_port: u16,

    /// Port of a plain HTTP `GET /metrics` for the gRPC role (0 picks a free one), whose own
    /// port speaks HTTP/2 only; unset: none. With all roles in one process the gateway's
    /// `/metrics` already shows the gRPC role's families, and this port answers the same.
    #[arg(long, env = "GRPC_METRICS_PORT", global = true)]
    pub grpc_metrics_port: Option<u16>,

    /// Where the gateway and the gRPC server find the processor (with all roles in one
    /// process, they use the processor of that process).
    #[arg(long, env = "PROCESSOR_URL", default_value = "http://127.0.0.1:8082", global = true,
          value_parser = parse_processor_url)]
    pub processor_url: Uri,

    /// Processor client: `pooled` (shared keep-alive connections, pooled buffers) or
    /// `baseline` (a new connection and buffer per request).
    #[arg(long, env = "CLIENT_MODE", value_enum, default_value_t = ClientMode::Pooled, global = true)]
    pub client_mode: ClientMode,

    /// Protocol to the processor: `http1` or `h2c` (HTTP/2 with prior knowledge).
    #[arg(long, env = "HOP_PROTOCOL", value_enum, default_value_t = HopProtocol::Http1, global = true)]
    pub hop_protocol: HopProtocol,

    /// Encoding to the processor: `json` or `protobuf`.
    #[arg(long, env = "HOP_CODEC", value_enum, default_value_t = Codec::Protobuf, global = true)]
    pub hop_codec: Codec,

    /// Most messages per request to the processor when batching (1 = no batching).
    #[arg(long, env = "HOP_BATCH", default_value_t = 64, global = true,
          value_parser = clap::value_parser!(u16).range(1..=MAX_BATCH_MESSAGES as i64))]
    pub hop_batch: u16,

    /// Microseconds a batch of single ingests waits for more once the hop has room (0: it
    /// leaves at once with whatever is ready).
    #[arg(long, env = "HOP_LINGER_US", default_value_t = 0, global = true,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub hop_linger_us: u32,

    /// Most batch requests of single ingests out to the processor at once; ingests that
    /// arrive while they are out form the next batch.
    #[arg(long, env = "HOP_IN_FLIGHT", default_value_t = 2, global = true,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub hop_in_flight: u16,

    /// Also batch concurrent HTTP and unary gRPC ingests (streams are always batched when
    /// `HOP_BATCH` > 1).
    #[arg(long, env = "HOP_BATCH_HTTP", default_value_t = true, global = true,
          action = clap::ArgAction::Set)]
    pub hop_batch_http: bool,

    /// Milliseconds allowed for one request to the processor.
    #[arg(long, env = "HOP_TIMEOUT_MS", default_value_t = 5000, global = true,
          value_parser = clap::value_parser!(u32).range(1..=600_000))]
    pub hop_timeout_ms: u32,

    /// Largest request body the gateway accepts, in bytes.
    #[arg(long, env = "BODY_LIMIT", default_value_t = 1024 * 1024, global = true,
          value_parser = clap::value_parser!(u32).range(1024..=1024 * 1024 * 1024))]
    pub body_limit: u32,

    /// Port of the processor (0 picks a free one).
    #[arg(long, env = "PROCESSOR_PORT", default_value_t = 8082, global = true)]
    pub processor_port: u16,

    /// Number of workers in the processor's pool.
    #[arg(long, env = "PROCESSOR_WORKERS", default_value_t = 4, global = true,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub processor_workers: u16,

    /// How workers take messages: `batched` (up to 32 ready messages at a time, results in
    /// recycled batches) or `baseline` (one at a time, a fresh result for each).
    #[arg(long, env = "WORKER_MODE", value_enum, default_value_t = WorkerMode::Batched, global = true)]
    pub worker_mode: WorkerMode,

    /// Serve `GET /debug/pprof/profile?seconds=N` on the gateway and processor ports: a CPU
    /// profile of the process, one at a time. Off by default.
    #[arg(long, env = "PROFILE_ENDPOINT", default_value_t = false, global = true,
          action = clap::ArgAction::Set)]
    pub profile_endpoint: bool,

    /// Most messages waiting in the processor's queue.
    #[arg(long, env = "QUEUE_SIZE", default_value_t = 1000, global = true,
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub queue_size: u32,

    /// Queue implementation: `memory` (baseline), `pooled`, or `nats` (a JetStream stream
    /// shared by several processors).
    #[arg(long, env = "QUEUE_TYPE", value_enum, default_value_t = QueueType::Pooled, global = true)]
    pub queue_type: QueueType,

    /// Where the NATS server listens (with `QUEUE_TYPE=nats`).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222", global = true,
          value_parser = parse_nats_url)]
    pub nats_url: String,

    /// Name of the JetStream stream the processors share.
    #[arg(long, env = "NATS_STREAM", default_value = "INGEST", global = true,
          value_parser = parse_nats_name)]
    pub nats_stream: String,

    /// Name of the durable consumer the processors share.
    #[arg(long, env = "NATS_CONSUMER", default_value = "processors", global = true,
          value_parser = parse_nats_name)]
    pub nats_consumer: String,

    /// Most publishes waiting for JetStream's confirmation at once; beyond it, 503.
    #[arg(long, env = "NATS_MAX_PENDING", default_value_t = 1024, global = true,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub nats_max_pending: u32,

    /// Milliseconds a publish (or another NATS call) may wait for an answer.
    #[arg(long, env = "NATS_TIMEOUT_MS", default_value_t = 2000, global = true,
          value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub nats_timeout_ms: u32,

    /// Milliseconds a delivered message may stay unacknowledged before it is delivered
    /// again (to any processor).
    #[arg(long, env = "NATS_ACK_WAIT_MS", default_value_t = 30_000, global = true,
          value_parser = clap::value_parser!(u32).range(100..=3_600_000))]
    pub nats_ack_wait_ms: u32,

    /// Deliveries of one message before it goes to the dead-letter stream instead.
    #[arg(long, env = "NATS_MAX_DELIVER", default_value_t = 5, global = true,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub nats_max_deliver: u32,

    /// Largest request body the processor accepts, in bytes (the front doors cut their
    /// batches to fit it).
    #[arg(long, env = "PROCESSOR_BODY_LIMIT", default_value_t = DEFAULT_BODY_LIMIT as u32, global = true,
          value_parser = clap::value_parser!(u32).range(1024..=1024 * 1024 * 1024))]
    pub processor_body_limit: u32,

    /// Most message ids the in-memory queues remember, to answer a message sent again under
    /// the same id as a duplicate (0: none). The oldest are forgotten first.
    #[arg(long, env = "DEDUP_IDS", default_value_t = DEFAULT_DEDUP_IDS as u32, global = true,
          value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    pub dedup_ids: u32,

    /// Seconds the in-memory queues remember an accepted id (the NATS queue uses the
    /// stream's duplicate window, two minutes by default).
    #[arg(long, env = "DEDUP_WINDOW_SECS", default_value_t = DEFAULT_DEDUP_WINDOW.as_secs() as u32,
          global = true, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub dedup_window_secs: u32,

    /// Bytes the process may hold in flight: request bodies, messages waiting for the
    /// processor's answer, queued messages. New work beyond it is refused with 503 /
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "MEMORY_BUDGET", default_value_t = DEFAULT_MEMORY_BUDGET as u64, global = true,
          value_parser = clap::value_parser!(u64).range(1024 * 1024..=1 << 40))]
    pub memory_budget: u64,

    /// Bytes of messages an in-memory queue may hold (within `MEMORY_BUDGET`).
    #[arg(long, env = "QUEUE_BYTES", default_value_t = DEFAULT_QUEUE_BYTES as u64, global = true,
          value_parser = clap::value_parser!(u64).range(1024..=1 << 40))]
    pub queue_bytes: u64,

    /// Most connections each server holds open at once.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000, global = true,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Seconds open connections get to finish after a shutdown signal.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value_t = 10, global = true,
          value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub shutdown_timeout: u32,

    // Access tokens (see `auth`): each unset by default, which leaves its routes open. A
    // token is given as a value or as a file, not both; `Settings::tokens` reads and
    // checks them. A value on the command line shows in the process list: prefer the
    // variable or the file.
    /// Bearer token the front doors want on ingest (`POST /api/v1/ingest`,
    /// `GET /api/v1/trace`, gRPC `Ingest` and `IngestStream`).
    #[arg(long, env = "INGEST_TOKEN", hide_env_values = true, global = true)]
    pub ingest_token: Option<Secret>,

    /// File holding `INGEST_TOKEN` (its trailing newline dropped).
    #[arg(long, env = "INGEST_TOKEN_FILE", global = true, value_name = "FILE")]
    pub ingest_token_file: Option<PathBuf>,

    /// Bearer token the processor wants on `/enqueue` and `/enqueue/batch`; the front doors
    /// send it.
    #[arg(long, env = "PROCESSOR_TOKEN", hide_env_values = true, global = true)]
    pub processor_token: Option<Secret>,

    /// File holding `PROCESSOR_TOKEN` (its trailing newline dropped).
    #[arg(long, env = "PROCESSOR_TOKEN_FILE", global = true, value_name = "FILE")]
    pub processor_token_file: Option<PathBuf>,

    /// Bearer token wanted on `/debug/*` (the profile endpoint).
    #[arg(long, env = "DEBUG_TOKEN", hide_env_values = true, global = true)]
    pub debug_token: Option<Secret>,

    /// File holding `DEBUG_TOKEN` (its trailing newline dropped).
    #[arg(long, env = "DEBUG_TOKEN_FILE", global = true, value_name = "FILE")]
    pub debug_token_file: Option<PathBuf>,

    /// Certificate chain (PEM) that every server of the process presents: TLS on the
    /// gateway's, the gRPC and the processor's ports. With `TLS_KEY`.
    #[arg(
        long,
        env = "TLS_CERT",
        global = true,
        value_name = "FILE",
        help_heading = "TLS"
    )]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of `TLS_CERT`.
    #[arg(
        long,
        env = "TLS_KEY",
        global = true,
        value_name = "FILE",
        help_heading = "TLS"
    )]
    pub tls_key: Option<PathBuf>,

    /// Serve TLS with a certificate for this machine's loopback names, signed by a local CA
    /// kept in DIR (`--tls-self-signed=DIR`; `tls` when given alone): point clients at
    /// DIR/ca.pem. Instead of `TLS_CERT`.
    #[arg(long, env = "TLS_SELF_SIGNED", global = true, value_name = "DIR", num_args = 0..=1,
          default_missing_value = "tls", require_equals = true,
          conflicts_with_all = ["tls_cert", "tls_key"],
          help_heading = "TLS")]
    pub tls_self_signed: Option<PathBuf>,

    /// CA (PEM) of the client certificates the processor requires (mutual TLS); unset:
    /// none is asked for.
    #[arg(
        long,
        env = "TLS_CLIENT_CA",
        global = true,
        value_name = "FILE",
        help_heading = "TLS"
    )]
    pub tls_client_ca: Option<PathBuf>,

    /// Port where the gateway also serves plain HTTP/1.1 and h2c while TLS is on (0 picks a
    /// free one); unset: none.
    #[arg(long, env = "API_PLAIN_PORT", global = true, help_heading = "TLS")]
    pub api_plain_port: Option<u16>,

    /// CA (PEM) the front doors trust for an `https` `PROCESSOR_URL`, besides the system's
    /// roots (and the self-signed CA, in that mode).
    #[arg(
        long,
        env = "PROCESSOR_CA",
        global = true,
        value_name = "FILE",
        help_heading = "TLS"
    )]
    pub processor_ca: Option<PathBuf>,

    /// Name expected in the processor's certificate, instead of the host of `PROCESSOR_URL`.
    #[arg(long, env = "PROCESSOR_TLS_NAME", global = true, help_heading = "TLS")]
    pub processor_tls_name: Option<String>,

    /// Certificate chain (PEM) the front doors present to a processor that asks for one
    /// (`TLS_CLIENT_CA` there). With `HOP_CLIENT_KEY`.
    #[arg(
        long,
        env = "HOP_CLIENT_CERT",
        global = true,
        value_name = "FILE",
        help_heading = "TLS"
    )]
    pub hop_client_cert: Option<PathBuf>,

    /// Private key (PEM) of `HOP_CLIENT_CERT`.
    #[arg(
        long,
        env = "HOP_CLIENT_KEY",
        global = true,
        value_name = "FILE",
        help_heading = "TLS"
    )]
    pub hop_client_key: Option<PathBuf>,
}

impl Settings {
    /// The address `role` listens on: its own, or `BIND_ADDR`.
    pub fn bind_addr_for(&self, role: Role) -> IpAddr {
        let own = match role {
            Role::Gateway => self.gateway_bind_addr,
            Role::Grpc => self.grpc_bind_addr,
            Role::Processor => self.processor_bind_addr,
        };
        own.unwrap_or(self.bind_addr)
    }

    /// The access tokens, each read from its value or its file and checked; an error names
    /// the setting (and never holds a token).
    pub fn tokens(&self) -> Result<Tokens, TokenError> {
        let load = |scope, value: &Option<Secret>, file: &Option<PathBuf>| {
            auth::load(scope, value.as_ref(), file.as_deref())
        };
        Ok(Tokens {
            ingest: load(Scope::Ingest, &self.ingest_token, &self.ingest_token_file)?,
            processor: load(
                Scope::Processor,
                &self.processor_token,
                &self.processor_token_file,
            )?,
            debug: load(Scope::Debug, &self.debug_token, &self.debug_token_file)?,
        })
    }

    /// The TLS files the settings name.
    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            self_signed: self.tls_self_signed.clone(),
            client_ca: self.tls_client_ca.clone(),
            processor_ca: self.processor_ca.clone(),
            hop_cert: self.hop_client_cert.clone(),
            hop_key: self.hop_client_key.clone(),
            processor_name: self.processor_tls_name.clone(),
        }
    }

    /// Reads the TLS files (once, at start-up); a bad one is an error naming its setting.
    /// A self-signed certificate also names the addresses the roles listen on.
    pub fn tls(&self) -> Result<Tls, TlsError> {
        let hosts =
            [Role::Gateway, Role::Grpc, Role::Processor].map(|role| self.bind_addr_for(role));
        self.tls_files().load(&hosts)
    }

    /// The shutdown drain timeout.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.shutdown_timeout))
    }

    /// The limits and the shutdown drain of the front doors' HTTP servers.
    pub(crate) fn http_limits(&self) -> HttpLimits {
        HttpLimits {
            drain_timeout: self.drain_timeout(),
            ..HttpLimits::default()
        }
    }

    /// The budget of bytes in flight that every role of the process shares.
    pub fn budget(&self) -> Arc<Budget> {
        Budget::new("MEMORY_BUDGET", self.memory_budget as usize)
    }

    /// The processor role's configuration, within `budget`, wanting `tokens`.
    pub fn processor(&self, budget: &Arc<Budget>, tokens: &Tokens) -> ProcessorConfig {
        let defaults = ProcessorConfig::default();
        ProcessorConfig {
            queue_type: self.queue_type,
            queue_size: self.queue_size as usize,
            workers: usize::from(self.processor_workers),
            worker_mode: self.worker_mode,
            profile_endpoint: self.profile_endpoint,
            body_limit: self.processor_body_limit as usize,
            max_connections: self.max_connections as usize,
            limits: HttpLimits {
                drain_timeout: self.drain_timeout(),
                ..defaults.limits
            },
            process: Arc::new(seed_processing),
            nats: self.nats(),
            dedup_ids: self.dedup_ids as usize,
            dedup_window: Duration::from_secs(u64::from(self.dedup_window_secs)),
            budget: Arc::clone(budget),
            queue_bytes: self.queue_bytes as usize,
            processor_token: tokens.processor.clone(),
            debug_token: tokens.debug.clone(),
            ..defaults
        }
    }

    /// Where and how the NATS queue lives.
    pub fn nats(&self) -> NatsConfig {
        NatsConfig {
            url: self.nats_url.clone(),
            stream: self.nats_stream.clone(),
            consumer: self.nats_consumer.clone(),
            max_pending_publishes: self.nats_max_pending as usize,
            request_timeout: Duration::from_millis(u64::from(self.nats_timeout_ms)),
            ack_wait: Duration::from_millis(u64::from(self.nats_ack_wait_ms)),
            max_deliver: self.nats_max_deliver,
            ..NatsConfig::default()
        }
    }

    /// The processor client's configuration, for a processor at `processor_url` (sending
    /// the processor token of `tokens`).
    pub fn forwarder(&self, processor_url: Uri, tokens: &Tokens) -> ForwarderConfig {
        ForwarderConfig {
            mode: self.client_mode,
            protocol: self.hop_protocol,
            codec: self.hop_codec,
            batch: usize::from(self.hop_batch),
            linger: Duration::from_micros(u64::from(self.hop_linger_us)),
            max_in_flight: usize::from(self.hop_in_flight),
            batch_unary: self.hop_batch_http,
            timeout: Duration::from_millis(u64::from(self.hop_timeout_ms)),
            max_request_bytes: self.processor_body_limit as usize,
            processor_token: tokens.processor.clone(),
            ..ForwarderConfig::new(processor_url)
        }
    }

    /// The gateway role's configuration, within `budget`, with `tokens`.
    pub fn gateway(
        &self,
        processor_url: Uri,
        budget: &Arc<Budget>,
        tokens: &Tokens,
    ) -> GatewayConfig {
        GatewayConfig {
            budget: Arc::clone(budget),
            body_limit: self.body_limit as usize,
            max_connections: self.max_connections as usize,
            limits: self.http_limits(),
            profile_endpoint: self.profile_endpoint,
            ingest_token: tokens.ingest.clone(),
            debug_token: tokens.debug.clone(),
            ..GatewayConfig::new(self.forwarder(processor_url, tokens))
        }
    }

    /// The gRPC role's configuration, within `budget`, with `tokens`.
    pub fn grpc(&self, processor_url: Uri, budget: &Arc<Budget>, tokens: &Tokens) -> GrpcConfig {
        GrpcConfig {
            budget: Arc::clone(budget),
            max_connections: self.max_connections as usize,
            limits: self.http_limits(),
            profile_endpoint: self.profile_endpoint,
            ingest_token: tokens.ingest.clone(),
            debug_token: tokens.debug.clone(),
            ..GrpcConfig::new(self.forwarder(processor_url, tokens))
        }
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

fn parse_nats_url(value: &str) -> Result<String, String> {
    let uri: Uri = value.parse().map_err(|err| format!("not a URL: {err}"))?;
    if !matches!(uri.scheme_str(), Some("nats" | "tls")) || uri.authority().is_none() {
        return Err("expected nats://host:port".to_owned());
    }
    Ok(value.to_owned())
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
