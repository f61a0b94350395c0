//! How the load suite measures each of its pairs, as data: the pairs and their variants are
//! the catalogue's (`study::pairs`), and [`LOAD_PAIRS`] says, for each group, which server
//! runs each variant with which settings under which protocol, and on which NATS broker a
//! side's queue lives. The baseline side is first.

use study::{
    cases::group,
    catalogue::TLS_LOAD_PAIRS,
    pairs::{self as catalogue},
    variant::Variant,
};
use system::{
    client::{ClientMode, HopProtocol},
    codec::Codec,
    config::names::{CLIENT_MODE, HOP_BATCH_HTTP, HOP_CODEC, HOP_PROTOCOL, QUEUE_TYPE},
    queue::QueueType,
};

use crate::load::Protocol;

/// What serves one side of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Server {
    /// The `system` binary (all roles in one process) with these settings on top of its
    /// defaults; built with mimalloc when `mimalloc`. With `tls`, every port serves TLS with
    /// a self-signed certificate (so the hop to the processor is TLS too) and the gateway
    /// also serves plaintext on a port of its own, where the load goes. With a `broker`,
    /// its queue is a stream on that broker (the settings ask for the NATS queue).
    System {
        mimalloc: bool,
        env: &'static [(&'static str, &'static str)],
        tls: bool,
        broker: Option<Broker>,
    },
    /// The harness's bare reference servers (`harness serve-bare`).
    Bare,
}

/// The NATS broker a side's queue lives on; each is started once per run, and only when a
/// side needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Broker {
    /// One `nats-server`; the stream has one replica.
    Single,
    /// A cluster of three `nats-server`s; the stream is replicated on all three, so a
    /// publish is confirmed once a majority stored it.
    Replicated,
}

impl Broker {
    /// The replicas of the streams a side creates on it (`NATS_REPLICAS`).
    pub(crate) fn replicas(self) -> usize {
        match self {
            Broker::Single => 1,
            Broker::Replicated => 3,
        }
    }

    /// What the name of every stream the suite creates on it carries after its purpose
    /// (`LOAD`, `PROBE`), so that the streams on the two brokers have different names.
    pub(crate) fn stream_tag(self) -> &'static str {
        match self {
            Broker::Single => "",
            Broker::Replicated => "_R3",
        }
    }
}

/// One side of one pair.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Side {
    pub(crate) variant: &'static str,
    pub(crate) server: Server,
    pub(crate) protocol: Protocol,
}

impl Side {
    /// The broker its queue lives on, if any.
    pub(crate) fn broker(&self) -> Option<Broker> {
        match self.server {
            Server::System { broker, .. } => broker,
            Server::Bare => None,
        }
    }
}

/// An A/B pair: `sides[0]` is the baseline; the latency rates are fractions of its
/// capacity, the same absolute rates for every side.
#[derive(Debug, Clone)]
pub(crate) struct Pair {
    pub(crate) group: &'static str,
    pub(crate) sides: Vec<Side>,
}

/// Settings of the `system` binary, as its environment variables.
type Env = &'static [(&'static str, &'static str)];

/// How the variants of a load pair differ, each in the catalogue's order of the pair's
/// variants (baseline, optimized, then those on neither side).
#[derive(Debug, Clone, Copy)]
enum Sides {
    /// Each variant is the protocol of its name, against the system with its defaults.
    Protocols,
    /// The bare servers, then the system, once per protocol.
    AgainstBare,
    /// Each variant runs the system with its settings, under HTTP/1.1.
    Settings(&'static [Env]),
    /// Each variant runs the system with its queue settings, under HTTP/1.1, its queue on
    /// a broker when one is named.
    Queues(&'static [(Env, Option<Broker>)]),
    /// The system with the system allocator, then built with mimalloc.
    Allocators,
    /// A plaintext hop, then TLS on the hop, both with these settings.
    HopTls(Env),
}

/// Every load pair, in the order they are run.
const LOAD_PAIRS: [(&str, Sides); 10] = [
    (group::LOAD_INGRESS, Sides::Protocols),
    (group::LOAD_VS_BARE, Sides::AgainstBare),
    // The nats queue, on one server and replicated on three, is measured only when a
    // nats-server is at hand.
    (
        group::LOAD_QUEUE,
        Sides::Queues(&[
            (&[(QUEUE_TYPE, QueueType::Memory.as_str())], None),
            (&[(QUEUE_TYPE, QueueType::Pooled.as_str())], None),
            (NATS, Some(Broker::Single)),
            (NATS, Some(Broker::Replicated)),
        ]),
    ),
    (
        group::LOAD_CLIENT,
        Sides::Settings(&[
            &[(CLIENT_MODE, ClientMode::Baseline.as_str())],
            &[(CLIENT_MODE, ClientMode::Pooled.as_str())],
        ]),
    ),
    (
        group::LOAD_HOP_PROTOCOL,
        Sides::Settings(&[
            &[(HOP_PROTOCOL, HopProtocol::Http1.as_str())],
            &[(HOP_PROTOCOL, HopProtocol::H2c.as_str())],
        ]),
    ),
    (
        group::LOAD_HOP_CODEC,
        Sides::Settings(&[
            &[(HOP_CODEC, Codec::Json.as_str())],
            &[(HOP_CODEC, Codec::Protobuf.as_str())],
        ]),
    ),
    (
        group::LOAD_HOP_BATCHING,
        Sides::Settings(&[&[(HOP_BATCH_HTTP, "false")], &[(HOP_BATCH_HTTP, "true")]]),
    ),
    (group::LOAD_ALLOCATOR, Sides::Allocators),
    (
        TLS_LOAD_PAIRS[0].0,
        Sides::HopTls(&[(CLIENT_MODE, ClientMode::Pooled.as_str())]),
    ),
    // A new connection, and so a handshake, for every hop request, and a hop request for
    // every message (not coalesced), so that the handshake is what dominates.
    (
        TLS_LOAD_PAIRS[1].0,
        Sides::HopTls(&[
            (CLIENT_MODE, ClientMode::Baseline.as_str()),
            (HOP_BATCH_HTTP, "false"),
        ]),
    ),
];

/// The NATS queue; where its broker is, and the stream's replicas, come from the broker.
const NATS: Env = &[(QUEUE_TYPE, QueueType::Nats.as_str())];

const DEFAULTS: Server = system(&[], false, false);

const fn system(env: Env, mimalloc: bool, tls: bool) -> Server {
    Server::System {
        mimalloc,
        env,
        tls,
        broker: None,
    }
}

/// Every pair, in the order they are run.
pub(crate) fn pairs() -> Vec<Pair> {
    let mut pairs = Vec::new();
    for (group, how) in LOAD_PAIRS {
        let variants: Vec<Variant> = catalogue::pair_of(group)
            .map(|p| p.variants().collect())
            .unwrap_or_default();
        match how {
            // One pair per protocol.
            Sides::AgainstBare => pairs.extend(Protocol::ALL.map(|protocol| Pair {
                group,
                sides: sides(&variants, [Server::Bare, DEFAULTS].map(|s| (s, protocol))),
            })),
            _ => pairs.push(Pair {
                group,
                sides: sides(&variants, servers(&variants, how)),
            }),
        }
    }
    pairs
}

/// What serves each variant of a pair that is not [`Sides::AgainstBare`], in order.
fn servers(variants: &[Variant], how: Sides) -> Vec<(Server, Protocol)> {
    let http1 = |server| (server, Protocol::Http1);
    match how {
        Sides::Protocols => variants
            .iter()
            .filter_map(|v| Some((DEFAULTS, v.protocol()?)))
            .collect(),
        Sides::Settings(envs) => envs
            .iter()
            .map(|env| http1(system(env, false, false)))
            .collect(),
        Sides::Queues(queues) => queues
            .iter()
            .map(|&(env, broker)| {
                http1(Server::System {
                    mimalloc: false,
                    env,
                    tls: false,
                    broker,
                })
            })
            .collect(),
        Sides::Allocators => vec![http1(DEFAULTS), http1(system(&[], true, false))],
        Sides::HopTls(env) => vec![
            http1(system(env, false, false)),
            http1(system(env, false, true)),
        ],
        Sides::AgainstBare => Vec::new(),
    }
}

fn sides(variants: &[Variant], servers: impl IntoIterator<Item = (Server, Protocol)>) -> Vec<Side> {
    variants
        .iter()
        .zip(servers)
        .map(|(variant, (server, protocol))| Side {
            variant: variant.as_str(),
            server,
            protocol,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use study::{
        cases::{Suite, group},
        variant::Variant,
    };
    use system::{
        client::ClientMode,
        config::names::{CLIENT_MODE, QUEUE_TYPE},
        queue::QueueType,
    };

    use super::{Broker, LOAD_PAIRS, Server, Sides, pairs};
    use crate::load::Protocol;

    /// Every load pair of the catalogue is measured, each of its variants by a server of
    /// its own, and nothing else is.
    #[test]
    fn every_variant_of_every_load_pair_has_its_server() {
        let catalogue: Vec<_> = study::pairs::PAIRS
            .iter()
            .filter(|p| p.suites.contains(&Suite::Load))
            .collect();
        assert_eq!(catalogue.len(), LOAD_PAIRS.len());
        let measured = pairs();
        for pair in catalogue {
            let runs: Vec<_> = measured.iter().filter(|p| p.group == pair.group).collect();
            assert!(!runs.is_empty(), "{} is not measured", pair.group);
            for run in runs {
                let variants: Vec<&str> = run.sides.iter().map(|s| s.variant).collect();
                assert_eq!(
                    variants,
                    pair.variants().map(Variant::as_str).collect::<Vec<_>>(),
                    "{}",
                    pair.group
                );
            }
        }
        for (group, how) in LOAD_PAIRS {
            if let Sides::Protocols = how {
                let pair = measured
                    .iter()
                    .find(|p| p.group == group)
                    .expect("measured");
                for side in &pair.sides {
                    assert_eq!(side.protocol.as_str(), side.variant);
                }
            }
        }
    }

    /// Both TLS pairs keep plaintext as their baseline and differ in nothing but TLS: the
    /// same client mode on both sides, the same HTTP/1.1 load.
    #[test]
    fn the_tls_pairs_differ_only_in_tls() {
        for (group, mode) in [
            (group::LOAD_HOP_TLS, ClientMode::Pooled.as_str()),
            (group::LOAD_HOP_TLS_BASELINE, ClientMode::Baseline.as_str()),
        ] {
            let pair = pairs().into_iter().find(|p| p.group == group);
            let pair = pair.unwrap_or_else(|| panic!("no pair {group}"));
            let [plain, tls] = pair.sides.as_slice() else {
                panic!("{group}: {:?}", pair.sides);
            };
            assert_eq!(
                (plain.variant, tls.variant),
                (Variant::Plain.as_str(), Variant::Tls.as_str()),
                "{group}"
            );
            assert_eq!(plain.protocol, Protocol::Http1, "{group}");
            assert_eq!(tls.protocol, Protocol::Http1, "{group}");
            let (
                Server::System {
                    mimalloc: false,
                    env: plain_env,
                    tls: false,
                    broker: None,
                },
                Server::System {
                    mimalloc: false,
                    env: tls_env,
                    tls: true,
                    broker: None,
                },
            ) = (plain.server, tls.server)
            else {
                panic!("{group}: {:?} / {:?}", plain.server, tls.server);
            };
            assert_eq!(plain_env, tls_env, "{group}");
            assert!(plain_env.contains(&(CLIENT_MODE, mode)), "{group}");
        }
    }

    /// The queue pair runs the NATS queue beside it twice: on one server and replicated on
    /// a cluster of three, the same queue setting on both, only the broker differs.
    #[test]
    fn the_queue_pair_runs_nats_on_one_server_and_on_a_cluster_of_three() {
        let pair = pairs().into_iter().find(|p| p.group == group::LOAD_QUEUE);
        let pair = pair.expect("the queue pair");
        let variants: Vec<&str> = pair.sides.iter().map(|s| s.variant).collect();
        assert_eq!(variants, ["memory", "pooled", "nats", "nats_r3"]);
        let brokers: Vec<Option<Broker>> = pair.sides.iter().map(|s| s.broker()).collect();
        assert_eq!(
            brokers,
            [None, None, Some(Broker::Single), Some(Broker::Replicated)]
        );
        let (nats, r3) = (&pair.sides[2], &pair.sides[3]);
        assert_eq!(env(nats.server), env(r3.server));
        assert_eq!(Broker::Single.replicas(), 1);
        assert_eq!(Broker::Replicated.replicas(), 3);
    }

    /// A side's queue is on a broker exactly when its settings ask for the NATS queue, so
    /// that no NATS side runs without its `NATS_URL` and no other side waits for a broker.
    #[test]
    fn exactly_the_nats_sides_have_a_broker() {
        for pair in pairs() {
            for side in &pair.sides {
                let nats = env(side.server).contains(&(QUEUE_TYPE, QueueType::Nats.as_str()));
                assert_eq!(
                    side.broker().is_some(),
                    nats,
                    "{} {}",
                    pair.group,
                    side.variant
                );
            }
        }
    }

    fn env(server: Server) -> &'static [(&'static str, &'static str)] {
        match server {
            Server::System { env, .. } => env,
            Server::Bare => &[],
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
                    pair.group.starts_with(group::LOAD_HOP_TLS)
                        && side.variant == Variant::Tls.as_str(),
                    "{} {}",
                    pair.group,
                    side.variant
                );
            }
        }
    }
}
