//! Allocations per operation of every A/B pair, counted exactly by a counting global
//! allocator while everything runs on this one thread (a current-thread runtime for the
//! network cases, so client, servers and workers are all counted). Writes
//! `reports/results/allocations.json`.
//!
//! Usage: `cargo run -p harness --release --bin allocs [-- --out DIR] [--only GROUP]...`
//! (`--only` keeps the cases of those groups, e.g. `hop/new_connection`, in the file it
//! writes: point `--out` elsewhere than the committed results with it).

use std::{path::PathBuf, process::ExitCode};

use harness::{
    alloc::{self, Counting},
    callgrind::{NewConnection, Protocol, RoundTrip, Transport},
    pairs::side,
    results::{Case, Metric, ResultFile, default_dir},
    workloads::{
        CLIENT_PAIRS, Placement, RunningPool, Stack, decode, encode, forward_accepted,
        publish_consume, reference_forwarder, sample_message, warm_queue,
    },
};
use study::{
    cases::{Suite, group},
    variant::Variant,
};
use system::{codec::Codec, processor::ProcessorConfig, queue::QueueType, worker::WorkerMode};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Operations per measurement, after a warm-up of the same size.
const OPS: usize = 2000;
/// Requests per measurement of the network cases.
const REQUESTS: usize = 256;
/// New connections per measurement of the handshake cases.
const CONNECTIONS: usize = 64;

/// Measures the cases of some groups.
type Cases = fn() -> Vec<Case>;

fn main() -> ExitCode {
    let mut out = default_dir();
    let mut only = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--out", Some(dir)) => out = PathBuf::from(dir),
            ("--only", Some(group)) => only.push(group),
            _ => {
                eprintln!("usage: allocs [--out DIR] [--only GROUP]...");
                return ExitCode::from(2);
            }
        }
    }
    let wants = |group: &str| only.is_empty() || only.iter().any(|g| g == group);
    let mut file = ResultFile::new(
        Suite::Allocations.as_str(),
        "cargo run -p harness --release --bin allocs",
    );
    file.notes.insert(
        "method".into(),
        "counting global allocator, one thread, after a warm-up".into(),
    );
    let suites: [(&[&str], Cases); 6] = [
        (&[group::QUEUE_PUBLISH_CONSUME], queue_cases),
        (&[group::CODEC_ENCODE, group::CODEC_DECODE], codec_cases),
        (&[group::WORKER_POOL, group::WORKER_POOL_MODE], pool_cases),
        (
            &[
                group::CLIENT_MODE,
                group::CLIENT_PROTOCOL,
                group::CLIENT_CODEC,
                group::CLIENT_BATCHING,
            ],
            client_cases,
        ),
        (&[group::PROTOCOL_ROUND_TRIP], protocol_cases),
        (&[group::HOP_NEW_CONNECTION], new_connection_cases),
    ];
    for (groups, cases) in suites {
        if groups.iter().any(|g| wants(g)) {
            file.cases
                .extend(cases().into_iter().filter(|case| wants(&case.group)));
        }
    }
    if file.cases.is_empty() {
        eprintln!("allocs: no case in the groups {only:?}");
        return ExitCode::from(2);
    }
    match file.write(&out) {
        Ok(path) => {
            for case in &file.cases {
                let per_op = &case.metrics["allocs_per_op"];
                let bytes = &case.metrics["bytes_per_op"];
                println!(
                    "{:<28} {:<12} {:>10.2} allocs/op {:>12.1} bytes/op",
                    case.group, case.variant, per_op.median, bytes.median
                );
            }
            println!("wrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("allocs: cannot write results: {err}");
            ExitCode::FAILURE
        }
    }
}

fn case(group: &str, variant: &str, ops: usize, counts: alloc::Counts) -> Case {
    Case::new(group, variant, side(group, variant))
        .param("operations", ops)
        .metric(
            "allocs_per_op",
            Metric::exact("allocations", counts.allocations as f64 / ops as f64),
        )
        .metric(
            "bytes_per_op",
            Metric::exact("bytes", counts.bytes as f64 / ops as f64),
        )
}

fn queue_cases() -> Vec<Case> {
    let msg = sample_message();
    [QueueType::Memory, QueueType::Pooled]
        .into_iter()
        .map(|kind| {
            let queue = warm_queue(kind, 1024, &msg);
            publish_consume(&queue, &msg, OPS);
            let (counts, ()) = alloc::during(|| publish_consume(&queue, &msg, OPS));
            case(group::QUEUE_PUBLISH_CONSUME, kind.as_str(), OPS, counts)
        })
        .collect()
}

fn codec_cases() -> Vec<Case> {
    let msg = sample_message();
    let mut cases = Vec::new();
    for codec in [Codec::Json, Codec::Protobuf] {
        let mut buf = Vec::new();
        encode(codec, &msg, &mut buf);
        let (counts, ()) = alloc::during(|| {
            for _ in 0..OPS {
                encode(codec, &msg, &mut buf);
            }
        });
        cases.push(case(group::CODEC_ENCODE, codec.as_str(), OPS, counts));
        let (counts, ()) = alloc::during(|| {
            for _ in 0..OPS {
                std::hint::black_box(decode(codec, &buf));
            }
        });
        cases.push(case(group::CODEC_DECODE, codec.as_str(), OPS, counts));
    }
    cases
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn pool_cases() -> Vec<Case> {
    let msg = sample_message();
    let variants = [
        (
            group::WORKER_POOL,
            Variant::Memory,
            QueueType::Memory,
            WorkerMode::Batched,
        ),
        (
            group::WORKER_POOL,
            Variant::Pooled,
            QueueType::Pooled,
            WorkerMode::Batched,
        ),
        (
            group::WORKER_POOL_MODE,
            Variant::Baseline,
            QueueType::Pooled,
            WorkerMode::Baseline,
        ),
        (
            group::WORKER_POOL_MODE,
            Variant::Batched,
            QueueType::Pooled,
            WorkerMode::Batched,
        ),
    ];
    variants
        .into_iter()
        .map(|(group, variant, kind, mode)| {
            let mut pool = RunningPool::start(kind, mode, OPS, &msg);
            pool.fill(OPS, &msg);
            let (counts, ()) = alloc::during(|| pool.drain(OPS));
            case(group, variant.as_str(), OPS, counts)
        })
        .collect()
}

fn client_cases() -> Vec<Case> {
    let msg = sample_message();
    let ids = std::sync::atomic::AtomicU64::new(0);
    CLIENT_PAIRS
        .into_iter()
        .flat_map(|(group, sides)| sides.map(|(variant, adjust)| (group, variant, adjust)))
        .map(|(group, variant, adjust)| {
            let runtime = current_thread();
            let stack = Stack::start(
                Placement::Shared(&runtime),
                ProcessorConfig {
                    queue_type: QueueType::Pooled,
                    queue_size: 1 << 16,
                    ..ProcessorConfig::default()
                },
                None,
            )
            .expect("an in-process processor");
            let forwarder =
                runtime.block_on(async { stack.forwarder(|url| adjust(reference_forwarder(url))) });
            let send = || {
                runtime.block_on(async {
                    for _ in 0..REQUESTS / 64 {
                        forward_accepted(&forwarder, &msg, 64, &ids).await;
                    }
                })
            };
            send();
            let before = forwarder.stats();
            let (counts, ()) = alloc::during(send);
            let after = forwarder.stats();
            drop(forwarder);
            drop(stack);
            // Reuse during the measured requests only: 1 - connections opened / requests.
            let requests = after.requests - before.requests;
            let opened = after.connections_opened - before.connections_opened;
            let reuse = 1.0 - opened as f64 / requests.max(1) as f64;
            case(group, variant.as_str(), REQUESTS, counts)
                .metric("connection_reuse", Metric::exact("ratio", reuse))
        })
        .collect()
}

fn protocol_cases() -> Vec<Case> {
    Protocol::ALL
        .into_iter()
        .map(|protocol| {
            let mut fixture = RoundTrip::start(protocol);
            let (counts, ()) = alloc::during(|| fixture.run(REQUESTS));
            case(
                group::PROTOCOL_ROUND_TRIP,
                protocol.as_str(),
                REQUESTS,
                counts,
            )
        })
        .collect()
}

/// One hop request on a new connection per operation, plaintext against TLS (a full
/// handshake each time, and a resumed session); the TLS cases also say which share of
/// their handshakes resumed a session, as the processor counted them.
fn new_connection_cases() -> Vec<Case> {
    Transport::ALL
        .into_iter()
        .map(|transport| {
            let mut fixture = NewConnection::start(transport);
            let resumed = fixture.resumed();
            let (counts, ()) = alloc::during(|| fixture.run(CONNECTIONS));
            let resumed = fixture.resumed() - resumed;
            let case = case(
                group::HOP_NEW_CONNECTION,
                transport.variant(),
                CONNECTIONS,
                counts,
            );
            if transport == Transport::Plain {
                return case;
            }
            case.metric(
                "resumed_share",
                Metric::exact("ratio", resumed as f64 / CONNECTIONS as f64),
            )
        })
        .collect()
}
