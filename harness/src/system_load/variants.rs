//! The pairs the load suite measures, as data: each pair's group, its baseline side first,
//! and for each side which server runs with which settings under which load.

use crate::load::Protocol;

/// What serves one side of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Server {
    /// The `system` binary (all roles in one process) with these settings on top of its
    /// defaults; built with mimalloc when `mimalloc`.
    System {
        mimalloc: bool,
        env: &'static [(&'static str, &'static str)],
    },
    /// The harness's bare reference servers (`harness serve-bare`).
    Bare,
}

/// One side of one pair.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Side {
    pub(crate) variant: &'static str,
    pub(crate) server: Server,
    pub(crate) protocol: Protocol,
}

/// An A/B pair: `sides[0]` is the baseline; the latency rates are fractions of its
/// capacity, the same absolute rates for every side.
#[derive(Debug, Clone)]
pub(crate) struct Pair {
    pub(crate) group: &'static str,
    pub(crate) sides: Vec<Side>,
}

const fn system(
    variant: &'static str,
    env: &'static [(&'static str, &'static str)],
    protocol: Protocol,
) -> Side {
    Side {
        variant,
        server: Server::System {
            mimalloc: false,
            env,
        },
        protocol,
    }
}

/// A pair of two settings of the system under HTTP/1.1 load.
fn setting(
    group: &'static str,
    baseline: (&'static str, &'static [(&'static str, &'static str)]),
    optimized: (&'static str, &'static [(&'static str, &'static str)]),
) -> Pair {
    Pair {
        group,
        sides: vec![
            system(baseline.0, baseline.1, Protocol::Http1),
            system(optimized.0, optimized.1, Protocol::Http1),
        ],
    }
}

/// Every pair, in the order they are run.
pub(crate) fn pairs() -> Vec<Pair> {
    let mut pairs = vec![Pair {
        group: "load/ingress",
        sides: vec![
            system("http1", &[], Protocol::Http1),
            system("h2c", &[], Protocol::H2c),
            system("grpc_unary", &[], Protocol::GrpcUnary),
            system("grpc_stream", &[], Protocol::GrpcStream),
        ],
    }];
    for protocol in [
        Protocol::Http1,
        Protocol::H2c,
        Protocol::GrpcUnary,
        Protocol::GrpcStream,
    ] {
        pairs.push(Pair {
            group: "load/vs_bare",
            sides: vec![
                Side {
                    variant: "bare",
                    server: Server::Bare,
                    protocol,
                },
                system("system", &[], protocol),
            ],
        });
    }
    pairs.extend([
        Pair {
            group: "load/queue",
            sides: vec![
                system("memory", &[("QUEUE_TYPE", "memory")], Protocol::Http1),
                system("pooled", &[("QUEUE_TYPE", "pooled")], Protocol::Http1),
                // Measured only when a nats-server is at hand.
                system("nats", &[("QUEUE_TYPE", "nats")], Protocol::Http1),
            ],
        },
        setting(
            "load/client",
            ("baseline", &[("CLIENT_MODE", "baseline")]),
            ("pooled", &[("CLIENT_MODE", "pooled")]),
        ),
        setting(
            "load/hop_protocol",
            ("http1", &[("HOP_PROTOCOL", "http1")]),
            ("h2c", &[("HOP_PROTOCOL", "h2c")]),
        ),
        setting(
            "load/hop_codec",
            ("json", &[("HOP_CODEC", "json")]),
            ("protobuf", &[("HOP_CODEC", "protobuf")]),
        ),
        setting(
            "load/hop_batching",
            ("unbatched", &[("HOP_BATCH_HTTP", "false")]),
            ("batched", &[("HOP_BATCH_HTTP", "true")]),
        ),
        Pair {
            group: "load/allocator",
            sides: vec![
                system("glibc", &[], Protocol::Http1),
                Side {
                    variant: "mimalloc",
                    server: Server::System {
                        mimalloc: true,
                        env: &[],
                    },
                    protocol: Protocol::Http1,
                },
            ],
        },
    ]);
    pairs
}
