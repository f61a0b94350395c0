//! Names and constants the suites, the gate and the report share (the case names are in
//! [`crate::cases`], the pairs in [`crate::pairs`]): how many operations a
//! deterministic benchmark performs, the components profiled, the stages a message passes,
//! the open-loop loads, when a server counts as saturated, and the TLS pairs.

/// Operations per benchmark of the queue, codec and worker-pool groups.
pub const OPS: usize = 1000;
/// Requests (or stream messages) per round-trip benchmark.
pub const ROUND_TRIPS: usize = 100;
/// Hop requests, each on a new connection, per benchmark of [`NEW_CONNECTION`]: fewer than
/// the round trips, as a TLS handshake costs many times a request.
pub const NEW_CONNECTIONS: usize = 20;

/// The handshake pair: one hop request on a new connection (the baseline client, HTTP/1.1),
/// plaintext against TLS with a full handshake and TLS resuming a session.
pub const NEW_CONNECTION: &str = crate::cases::group::HOP_NEW_CONNECTION;
/// The variants of [`NEW_CONNECTION`]: plaintext (the baseline), TLS with a full handshake
/// on every connection (the client keeps no session), TLS resuming the session of a ticket
/// from the previous connection (what a client keeping rustls' session cache does).
pub const NEW_CONNECTION_VARIANTS: [crate::variant::Variant; 3] = {
    use crate::variant::Variant::{Plain, TlsFull, TlsResumed};
    [Plain, TlsFull, TlsResumed]
};

/// The load pairs of TLS on the hop (plaintext the baseline, the load on plaintext HTTP/1.1
/// so that only the hop differs), each with the hop client it runs.
pub const TLS_LOAD_PAIRS: [(&str, &str); 2] = [
    (crate::cases::group::LOAD_HOP_TLS, "pooled"),
    (
        crate::cases::group::LOAD_HOP_TLS_BASELINE,
        "baseline, unbatched (a new connection per message)",
    ),
];

/// Every component `cargo xtask profile` profiles.
pub const COMPONENTS: [&str; 9] = [
    "queue_memory",
    "queue_pooled",
    "worker_pool",
    "client_baseline",
    "client_pooled",
    "gateway_http1",
    "gateway_h2c",
    "grpc_unary",
    "grpc_stream",
];

/// The stages of a message's way, in order, each with the key of its metric.
pub const STAGES: [(&str, &str); 6] = [
    ("front_door", "front-door protocol"),
    ("decode_validate", "decode and validate"),
    ("hop_client", "hop client"),
    ("processor_server", "processor server"),
    ("queue", "queue"),
    ("worker", "worker"),
];

/// The metric of the CPU time per message the sampler could not see (libc and the kernel).
pub const UNSAMPLED: &str = "unsampled";

/// The open-loop rates of the load suite, as fractions of the smaller capacity of a pair.
pub const LOADS: [f64; 3] = [0.25, 0.5, 0.75];

/// The CPU share (of one core) above which a server counts as saturated.
pub const SATURATED: f64 = 0.9;

/// Whether a capacity was measured on a saturated server (median CPU share).
pub fn saturated(cpu_share: f64) -> bool {
    cpu_share >= SATURATED
}

/// Which way a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Less is better (times, latencies, counts of work, memory).
    SmallerIsBetter,
    /// More is better (capacity, throughput, connection reuse).
    BiggerIsBetter,
}

/// Which way the metric `name` is better, or `None` for a quantity that describes a run
/// rather than judges it (errors, offered rate, concurrency, sample counts, verdicts).
pub fn direction(name: &str) -> Option<Direction> {
    use Direction::{BiggerIsBetter, SmallerIsBetter};
    if STAGES.iter().any(|(stage, _)| *stage == name) || name == UNSAMPLED {
        return Some(SmallerIsBetter);
    }
    match name {
        "time_per_op"
        | "instructions_per_op"
        | "instructions_total"
        | "allocs_per_op"
        | "bytes_per_op"
        | "p50"
        | "p99"
        | "p999"
        | "latency_mean"
        | "latency_p50"
        | "latency_p99"
        | "publish_ack_p50"
        | "publish_ack_p99"
        | "victim_p50"
        | "victim_p99"
        | "victim_max"
        | "rss_peak"
        | "server_cpu_per_msg"
        | "server_peak_rss"
        | "server_cpu_per_request"
        | "generator_cpu_per_request"
        | "total" => Some(SmallerIsBetter),
        "capacity" | "throughput" | "messages_per_sec" | "connection_reuse"
        | "throughput_ratio" => Some(BiggerIsBetter),
        // What kind of handshake a TLS case measured describes it; it does not judge it.
        "resumed_share" => None,
        _ => None,
    }
}
