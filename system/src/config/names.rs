//! The name of every environment variable the `system` binary reads, one constant each, and
//! nothing else: the values a caller picks among are the `as_str` of their enums
//! (`QueueType`, `ClientMode`, `HopProtocol`, `Codec`). The flags of `config/args.rs` take their
//! variables from here, and so do the programs that start the binary (the harness): a name
//! has this one spelling. What each setting does is documented on its flag (`system --help`).

// Network and the process (`CommonArgs`).
/// Address the servers listen on (unless a role's own address is set).
pub const BIND_ADDR: &str = "BIND_ADDR";
/// Most connections each server holds open at once.
pub const MAX_CONNECTIONS: &str = "MAX_CONNECTIONS";
/// Seconds open connections get to finish after a shutdown signal.
pub const SHUTDOWN_TIMEOUT: &str = "SHUTDOWN_TIMEOUT";
/// Bytes the process may hold in flight.
pub const MEMORY_BUDGET: &str = "MEMORY_BUDGET";
/// Largest request body the processor accepts, in bytes.
pub const PROCESSOR_BODY_LIMIT: &str = "PROCESSOR_BODY_LIMIT";
/// Whether the role serves the CPU profile endpoint.
pub const PROFILE_ENDPOINT: &str = "PROFILE_ENDPOINT";

// The servers' certificate (`ServerTlsArgs`).
/// Certificate chain (PEM) every server of the process presents.
pub const TLS_CERT: &str = "TLS_CERT";
/// Private key (PEM) of `TLS_CERT`.
pub const TLS_KEY: &str = "TLS_KEY";
/// Directory of a local CA signing a certificate for the loopback names.
pub const TLS_SELF_SIGNED: &str = "TLS_SELF_SIGNED";

// Tokens (`AccessArgs`, `IngestAccessArgs`).
/// Bearer token the processor wants on `/enqueue`.
pub const PROCESSOR_TOKEN: &str = "PROCESSOR_TOKEN";
/// File holding `PROCESSOR_TOKEN`.
pub const PROCESSOR_TOKEN_FILE: &str = "PROCESSOR_TOKEN_FILE";
/// Bearer token wanted on `/debug/*`.
pub const DEBUG_TOKEN: &str = "DEBUG_TOKEN";
/// File holding `DEBUG_TOKEN`.
pub const DEBUG_TOKEN_FILE: &str = "DEBUG_TOKEN_FILE";
/// Bearer token the front doors want on ingest.
pub const INGEST_TOKEN: &str = "INGEST_TOKEN";
/// File holding `INGEST_TOKEN`.
pub const INGEST_TOKEN_FILE: &str = "INGEST_TOKEN_FILE";

// The front doors' client of the processor (`HopArgs`).
/// Where the front doors find the processor.
pub const PROCESSOR_URL: &str = "PROCESSOR_URL";
/// The processor client's management (values: `ClientMode::as_str`).
pub const CLIENT_MODE: &str = "CLIENT_MODE";
/// The protocol of the hop (values: `HopProtocol::as_str`).
pub const HOP_PROTOCOL: &str = "HOP_PROTOCOL";
/// The encoding of the hop (values: `Codec::as_str`).
pub const HOP_CODEC: &str = "HOP_CODEC";
/// Most messages per request to the processor when batching.
pub const HOP_BATCH: &str = "HOP_BATCH";
/// Microseconds a batch of single ingests waits for more.
pub(crate) const HOP_LINGER_US: &str = "HOP_LINGER_US";
/// Most batch requests of single ingests out to the processor at once.
pub(crate) const HOP_IN_FLIGHT: &str = "HOP_IN_FLIGHT";
/// Whether HTTP and unary gRPC ingests are batched too (`true` or `false`).
pub const HOP_BATCH_HTTP: &str = "HOP_BATCH_HTTP";
/// Milliseconds allowed for one request to the processor.
pub(crate) const HOP_TIMEOUT_MS: &str = "HOP_TIMEOUT_MS";
/// CA (PEM) the front doors trust for an `https` `PROCESSOR_URL`.
pub const PROCESSOR_CA: &str = "PROCESSOR_CA";
/// Name expected in the processor's certificate.
pub(crate) const PROCESSOR_TLS_NAME: &str = "PROCESSOR_TLS_NAME";
/// Certificate chain (PEM) the front doors present to the processor.
pub(crate) const HOP_CLIENT_CERT: &str = "HOP_CLIENT_CERT";
/// Private key (PEM) of `HOP_CLIENT_CERT`.
pub(crate) const HOP_CLIENT_KEY: &str = "HOP_CLIENT_KEY";

// The gateway (`GatewayArgs`).
/// Address the gateway listens on.
pub(crate) const GATEWAY_BIND_ADDR: &str = "GATEWAY_BIND_ADDR";
/// Port of the HTTP gateway (0 picks a free one).
pub const API_PORT: &str = "API_PORT";
/// Largest request body the gateway accepts, in bytes.
pub const BODY_LIMIT: &str = "BODY_LIMIT";
/// Port of the gateway's plain HTTP while TLS is on (0 picks a free one).
pub const API_PLAIN_PORT: &str = "API_PLAIN_PORT";

// The gRPC server (`GrpcArgs`).
/// Address the gRPC server listens on.
pub const GRPC_BIND_ADDR: &str = "GRPC_BIND_ADDR";
/// Port of the gRPC server (0 picks a free one).
pub const GRPC_PORT: &str = "GRPC_PORT";
/// Port of the gRPC role's plain `GET /metrics` (0 picks a free one).
pub const GRPC_METRICS_PORT: &str = "GRPC_METRICS_PORT";

// The processor (`ProcessorArgs`).
/// Address the processor listens on.
pub const PROCESSOR_BIND_ADDR: &str = "PROCESSOR_BIND_ADDR";
/// Port of the processor (0 picks a free one).
pub const PROCESSOR_PORT: &str = "PROCESSOR_PORT";
/// Number of workers in the processor's pool.
pub const PROCESSOR_WORKERS: &str = "PROCESSOR_WORKERS";
/// How workers take messages.
pub const WORKER_MODE: &str = "WORKER_MODE";
/// CA (PEM) of the client certificates the processor requires.
pub(crate) const TLS_CLIENT_CA: &str = "TLS_CLIENT_CA";

// The queue (`QueueArgs`).
/// Queue implementation (values in [`queue_type`]).
pub const QUEUE_TYPE: &str = "QUEUE_TYPE";
/// Most messages waiting in the processor's queue.
pub const QUEUE_SIZE: &str = "QUEUE_SIZE";
/// Bytes of messages an in-memory queue may hold.
pub(crate) const QUEUE_BYTES: &str = "QUEUE_BYTES";
/// Most client message ids the in-memory queues remember.
pub const DEDUP_IDS: &str = "DEDUP_IDS";
/// Seconds the in-memory queues remember an accepted id.
pub const DEDUP_WINDOW_SECS: &str = "DEDUP_WINDOW_SECS";

// The NATS queue (`NatsArgs`).
/// Where the NATS server (or the servers of a cluster) listens.
pub const NATS_URL: &str = "NATS_URL";
/// NATS credentials file the processor authenticates with.
pub const NATS_CREDS_FILE: &str = "NATS_CREDS_FILE";
/// User the processor authenticates to NATS as.
pub const NATS_USER: &str = "NATS_USER";
/// File holding the password of `NATS_USER`.
pub const NATS_PASSWORD_FILE: &str = "NATS_PASSWORD_FILE";
/// File holding a token the processor authenticates to NATS with.
pub const NATS_TOKEN_FILE: &str = "NATS_TOKEN_FILE";
/// Copies JetStream keeps of the streams it creates.
pub const NATS_REPLICAS: &str = "NATS_REPLICAS";
/// Name of the JetStream stream the processors share.
pub const NATS_STREAM: &str = "NATS_STREAM";
/// Name of the durable consumer the processors share.
pub const NATS_CONSUMER: &str = "NATS_CONSUMER";
/// Most publishes waiting for JetStream's confirmation at once.
pub const NATS_MAX_PENDING: &str = "NATS_MAX_PENDING";
/// Milliseconds a publish (or another NATS call) may wait for an answer.
pub const NATS_TIMEOUT_MS: &str = "NATS_TIMEOUT_MS";
/// Milliseconds a delivered message may stay unacknowledged.
pub const NATS_ACK_WAIT_MS: &str = "NATS_ACK_WAIT_MS";
/// Deliveries of one message before it goes to the dead-letter stream.
pub const NATS_MAX_DELIVER: &str = "NATS_MAX_DELIVER";

// What one client of the front doors may hold (`ClientArgs`).
/// Most connections one client address keeps open at the front doors.
pub const MAX_CONNECTIONS_PER_CLIENT: &str = "MAX_CONNECTIONS_PER_CLIENT";
/// Bytes one client address may hold in flight at the front doors.
pub const MEMORY_PER_CLIENT: &str = "MEMORY_PER_CLIENT";

// Read outside the flags.
/// The log filter (`tracing_subscriber`'s `EnvFilter`; `info` when unset).
pub const RUST_LOG: &str = "RUST_LOG";

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use clap::{CommandFactory, ValueEnum};

    use super::*;
    use crate::{
        config::Cli,
        domain::{codec::Codec, queue::QueueType},
        hop::client::{ClientMode, HopProtocol},
    };

    /// Every variable named here that a flag reads: all but `RUST_LOG`.
    const FLAGS: [&str; 59] = [
        BIND_ADDR,
        MAX_CONNECTIONS,
        SHUTDOWN_TIMEOUT,
        MEMORY_BUDGET,
        PROCESSOR_BODY_LIMIT,
        PROFILE_ENDPOINT,
        TLS_CERT,
        TLS_KEY,
        TLS_SELF_SIGNED,
        PROCESSOR_TOKEN,
        PROCESSOR_TOKEN_FILE,
        DEBUG_TOKEN,
        DEBUG_TOKEN_FILE,
        INGEST_TOKEN,
        INGEST_TOKEN_FILE,
        PROCESSOR_URL,
        CLIENT_MODE,
        HOP_PROTOCOL,
        HOP_CODEC,
        HOP_BATCH,
        HOP_LINGER_US,
        HOP_IN_FLIGHT,
        HOP_BATCH_HTTP,
        HOP_TIMEOUT_MS,
        PROCESSOR_CA,
        PROCESSOR_TLS_NAME,
        HOP_CLIENT_CERT,
        HOP_CLIENT_KEY,
        GATEWAY_BIND_ADDR,
        API_PORT,
        BODY_LIMIT,
        API_PLAIN_PORT,
        GRPC_BIND_ADDR,
        GRPC_PORT,
        GRPC_METRICS_PORT,
        PROCESSOR_BIND_ADDR,
        PROCESSOR_PORT,
        PROCESSOR_WORKERS,
        WORKER_MODE,
        TLS_CLIENT_CA,
        QUEUE_TYPE,
        QUEUE_SIZE,
        QUEUE_BYTES,
        DEDUP_IDS,
        DEDUP_WINDOW_SECS,
        NATS_URL,
        NATS_CREDS_FILE,
        NATS_USER,
        NATS_PASSWORD_FILE,
        NATS_TOKEN_FILE,
        NATS_REPLICAS,
        NATS_STREAM,
        NATS_CONSUMER,
        NATS_MAX_PENDING,
        NATS_TIMEOUT_MS,
        NATS_ACK_WAIT_MS,
        NATS_MAX_DELIVER,
        MAX_CONNECTIONS_PER_CLIENT,
        MEMORY_PER_CLIENT,
    ];

    /// The variables of the flags, those of each role's command line included.
    fn read_by_flags() -> BTreeSet<String> {
        let command = Cli::command();
        let mut names = BTreeSet::new();
        for command in std::iter::once(&command).chain(command.get_subcommands()) {
            for arg in command.get_arguments() {
                if let Some(env) = arg.get_env() {
                    names.insert(env.to_string_lossy().into_owned());
                }
            }
        }
        names
    }

    /// Each flag's variable is one named here, and each name here but `RUST_LOG` is a
    /// flag's variable: no setting is read under a name the harness cannot spell.
    #[test]
    fn every_flag_reads_a_variable_named_here() {
        let ours: BTreeSet<String> = FLAGS.iter().map(|name| (*name).to_owned()).collect();
        assert_eq!(ours.len(), FLAGS.len(), "a name listed twice");
        assert_eq!(read_by_flags(), ours);
        assert!(!ours.contains(RUST_LOG));
    }

    /// The values the enums name are those the flag of their variable accepts.
    #[test]
    fn the_enums_spell_the_flags_values() {
        let command = Cli::command();
        let values = |env: &str| -> BTreeSet<String> {
            let arg = command
                .get_arguments()
                .find(|arg| arg.get_env().is_some_and(|e| e == env))
                .expect("a flag of the variable");
            arg.get_possible_values()
                .iter()
                .map(|value| value.get_name().to_owned())
                .collect()
        };
        // Each enum's spellings, over all its variants.
        fn spelled<T: ValueEnum + Copy>(as_str: fn(T) -> &'static str) -> BTreeSet<String> {
            T::value_variants()
                .iter()
                .map(|v| as_str(*v).to_owned())
                .collect()
        }
        assert_eq!(values(QUEUE_TYPE), spelled(QueueType::as_str));
        assert_eq!(values(CLIENT_MODE), spelled(ClientMode::as_str));
        assert_eq!(values(HOP_PROTOCOL), spelled(HopProtocol::as_str));
        assert_eq!(values(HOP_CODEC), spelled(Codec::as_str));
    }
}
