//! The pairs the load suite measures, as data: each pair's group, its baseline side first,
//! and for each side which server runs with which settings under which load.

use study::catalogue::TLS_LOAD_PAIRS;

use crate::load::Protocol;

/// What serves one side of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Server {
    /// The `system` binary (all roles in one process) with these settings on top of its
    /// defaults; built with mimalloc when `mimalloc`. With `tls`, every port serves TLS with
    /// a self-signed certificate (so the hop to the processor is TLS too) and the gateway
    /// also serves plaintext on a port of its own, where the load goes.
    System {
        mimalloc: bool,
        env: &'static [(&'static str, &'static str)],
        tls: bool,
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
            tls: false,
        },
        protocol,
    }
}

/// A pair of the system with a plaintext hop (the baseline) and with TLS on the hop, both
/// with `env` and under HTTP/1.1 load on plaintext, so that only the hop differs.
fn hop_tls(group: &'static str, env: &'static [(&'static str, &'static str)]) -> Pair {
    Pair {
        group,
        sides: vec![
            system("plain", env, Protocol::Http1),
            Side {
                variant: "tls",
                server: Server::System {
                    mimalloc: false,
                    env,
                    tls: true,
                },
                protocol: Protocol::Http1,
            },
        ],
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
                        tls: false,
                    },
                    protocol: Protocol::Http1,
                },
            ],
        },
    ]);
    let [(pooled, _), (baseline, _)] = TLS_LOAD_PAIRS;
    pairs.extend([
        hop_tls(pooled, &[("CLIENT_MODE", "pooled")]),
        // A new connection, and so a handshake, for every hop request, and a hop request
        // for every message (not coalesced), so that the handshake is what dominates.
        hop_tls(
            baseline,
            &[("CLIENT_MODE", "baseline"), ("HOP_BATCH_HTTP", "false")],
        ),
    ]);
    pairs
}

#[cfg(test)]
mod tests {
    use super::{Server, pairs};
    use crate::load::Protocol;

    /// Both TLS pairs keep plaintext as their baseline and differ in nothing but TLS: the
    /// same client mode on both sides, the same HTTP/1.1 load.
    #[test]
    fn the_tls_pairs_differ_only_in_tls() {
        for (group, mode) in [
            ("load/hop_tls", "pooled"),
            ("load/hop_tls_baseline", "baseline"),
        ] {
            let pair = pairs().into_iter().find(|p| p.group == group);
            let pair = pair.unwrap_or_else(|| panic!("no pair {group}"));
            let [plain, tls] = pair.sides.as_slice() else {
                panic!("{group}: {:?}", pair.sides);
            };
            assert_eq!((plain.variant, tls.variant), ("plain", "tls"), "{group}");
            assert_eq!(plain.protocol, Protocol::Http1, "{group}");
            assert_eq!(tls.protocol, Protocol::Http1, "{group}");
            let (
                Server::System {
                    mimalloc: false,
                    env: plain_env,
                    tls: false,
                },
                Server::System {
                    mimalloc: false,
                    env: tls_env,
                    tls: true,
                },
            ) = (plain.server, tls.server)
            else {
                panic!("{group}: {:?} / {:?}", plain.server, tls.server);
            };
            assert_eq!(plain_env, tls_env, "{group}");
            assert!(plain_env.contains(&("CLIENT_MODE", mode)), "{group}");
        }
    }

    /// No other pair serves TLS.
    #[test]
    fn only_the_tls_pairs_serve_tls() {
        for pair in pairs() {
            for side in &pair.sides {
                let tls = matches!(side.server, Server::System { tls: true, .. });
                assert_eq!(
                    tls,
                    pair.group.starts_with("load/hop_tls") && side.variant == "tls",
                    "{} {}",
                    pair.group,
                    side.variant
                );
            }
        }
    }
}
