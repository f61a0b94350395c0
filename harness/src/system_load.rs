//! The whole system under load, one A/B pair at a time, asking two questions separately.
//!
//! - Capacity: the most a saturated server sustains. The closed-loop concurrency is raised
//!   until the throughput stops rising; the best level, the server's CPU share (a capacity
//!   where the server was not saturated is only a lower bound, and the report says so) and
//!   its CPU per message are recorded.
//! - Latency: an open loop at the same absolute rates for every side of a pair (25%, 50% and
//!   75% of the smaller capacity of the pair in the same round: the baseline's when the
//!   optimization is faster, the system's against the bare server), each request timed from
//!   when it was due, so a stall shows in the tail instead of slowing the generator. The
//!   variants measured beside a pair (the NATS queue on one server and replicated on three)
//!   run at the same absolute rates as each other: fractions of the smaller capacity among
//!   them, so that a far slower queue does not set the pair's rates.
//!
//! Each side runs in a server process of its own (the `system` binary, or the bare
//! reference servers for `load/vs_bare`), pinned to one core when `taskset` exists, and the
//! rounds alternate the sides so that the machine's drift cancels out of the ratios. The
//! pairs are data, in `system_load/variants.rs`; the runs are in `system_load/measure.rs`.
//!
//! A NATS side's queue is a stream on its broker: one `nats-server` (`nats`) or a cluster of
//! three with the stream replicated on all three (`nats_r3`), each started once per run and
//! only when a side needs it. Every round gives each NATS side a new stream, since a
//! processor that stops leaves the messages it did not fetch in its stream, and the next
//! processor on that stream would process them during its own measurement. Before a round's
//! servers start, the broker's own publish-to-ack latency is probed, unloaded, on a stream
//! of the probe's own (`system_load/publish_ack.rs`).
//!
//! A side with TLS on the hop (`load/hop_tls*`) runs the binary with `TLS_SELF_SIGNED` (its
//! CA kept in [`Options::tls_dir`]) and `API_PLAIN_PORT`, and its load goes to the gateway's
//! plaintext port, so that the two sides differ only in the hop.
//!
//! Each latency run's whole distribution is kept as a `.hgrm` file beside the result file
//! (`hgrm/load/<group>/<variant>/<protocol>-<load>pct-r<round>.hgrm`, the group's `/` as
//! `_`), and its latency case names the files of its rounds in its `hgrm` param.

mod brokers;
mod measure;
mod publish_ack;
mod variants;

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    time::Duration,
};

use launch::servers;
use system::config::names;

pub use self::publish_ack::{Probe, PublishAck, publish_ack};
use self::{
    brokers::{Brokers, nats_settings, stream_name},
    measure::{Capacity, Timing},
    variants::{Pair, Server as Kind, Side as PairSide},
};
use crate::{
    load::{
        self, Protocol,
        hgrm::{SuiteHistograms, file_part},
    },
    pairs::side,
    peers::bare,
    process::{Server, pinned},
    results::{Case, Metric, ResultFile},
};

use study::cases::Suite;
pub use study::catalogue::{LOADS, saturated};

/// How a run of the suite is made.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `system` binary built with the system allocator.
    pub system: PathBuf,
    /// The same binary built with `--features mimalloc`, when available.
    pub system_mimalloc: Option<PathBuf>,
    /// A program that runs the bare reference servers as `PROGRAM serve-bare` (the harness
    /// itself); `load/vs_bare` is measured only with it.
    pub bare: Option<PathBuf>,
    /// `nats-server`, when available (the `nats` and `nats_r3` queues are measured only
    /// with it).
    pub nats_server: Option<PathBuf>,
    /// Rounds; each runs every side of every pair once.
    pub rounds: usize,
    /// Measured seconds of each run (after a warm-up of a third of it).
    pub seconds: f64,
    /// Core the server is pinned to (`taskset -c`), when pinning.
    pub server_core: Option<String>,
    /// Only the pairs of these groups (all when empty).
    pub only: Vec<String>,
    /// The results directory under which each latency run's `.hgrm` file is kept (in
    /// `hgrm/load/`, replaced as a whole when the run has finished); none are kept when
    /// absent.
    pub histograms: Option<PathBuf>,
    /// Where a side with TLS keeps its self-signed CA and certificate (`TLS_SELF_SIGNED`).
    pub tls_dir: PathBuf,
}

/// The default of [`Options::tls_dir`]: a directory under the workspace's `target/`.
pub fn default_tls_dir() -> PathBuf {
    crate::results::workspace_root().join("target/load-tls")
}

/// What one side measured in one round.
#[derive(Debug, Default)]
struct Rounds {
    capacity: Vec<Capacity>,
    /// One report per round for each of [`LOADS`].
    latency: [Vec<load::Report>; LOADS.len()],
    /// The `.hgrm` files of those runs (paths relative to the results directory).
    hgrm: [Vec<String>; LOADS.len()],
    reuse: Vec<f64>,
    /// The broker's publish-to-ack latency, one probe per round (NATS sides only).
    publish_ack: Vec<PublishAck>,
}

/// What every measurement of a run shares.
struct Bench<'a> {
    options: &'a Options,
    brokers: &'a Brokers,
    timing: Timing,
    histograms: Option<&'a SuiteHistograms>,
}

/// Runs every pair `rounds` times, alternating its sides; `log` hears about each run.
pub fn run(
    options: &Options,
    command: &str,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<ResultFile> {
    let pairs = available(options);
    let brokers = Brokers::start(options, &pairs)?;
    let histograms = options
        .histograms
        .as_deref()
        .map(|results| SuiteHistograms::new(results, Suite::Load.as_str()))
        .transpose()?;
    let bench = Bench {
        options,
        brokers: &brokers,
        timing: Timing {
            seconds: options.seconds,
            warmup: options.seconds / 3.0,
        },
        histograms: histograms.as_ref(),
    };
    let measured = rounds(&bench, &pairs, log)?;
    let file = result_file(options, command, &pairs, &measured);
    if let Some(histograms) = histograms {
        histograms.publish()?;
    }
    Ok(file)
}

/// Every round of every pair, alternating the sides; what each side measured, by pair.
fn rounds(
    bench: &Bench<'_>,
    pairs: &[Pair],
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<Vec<Rounds>>> {
    let mut measured: Vec<Vec<Rounds>> = pairs
        .iter()
        .map(|pair| pair.sides.iter().map(|_| Rounds::default()).collect())
        .collect();
    let count = bench.options.rounds;
    for round in 1..=count {
        for (pair, measured) in pairs.iter().zip(&mut measured) {
            log(&format!(
                "round {round}/{count}: {} ({})",
                pair.group,
                pair.sides[0].protocol.as_str()
            ));
            measure_pair(bench, pair, round, measured)?;
        }
    }
    Ok(measured)
}

/// The result file of the measured rounds.
fn result_file(
    options: &Options,
    command: &str,
    pairs: &[Pair],
    measured: &[Vec<Rounds>],
) -> ResultFile {
    let mut file = ResultFile::new(Suite::Load.as_str(), command);
    file.notes.insert("method".into(), format!(
        "each side in a server process of its own, our generator in this process; {} alternating rounds; capacity: closed loop, concurrency raised until the throughput rose less than 5%, {} s per level; latency: open loop at {} of the smaller capacity of the pair in the same round, every side at the same rates, timed from each request's due time",
        options.rounds,
        options.seconds,
        LOADS.map(percent).join(", ")
    ));
    file.notes.insert(
        "pinning".into(),
        match &options.server_core {
            Some(core) => format!("server: taskset -c {core}; generator: the other core"),
            None => "none (taskset not available)".to_owned(),
        },
    );
    for (pair, measured) in pairs.iter().zip(measured) {
        for (pair_side, rounds) in pair.sides.iter().zip(measured) {
            file.cases.extend(cases(pair.group, pair_side, rounds));
        }
    }
    file
}

/// The pairs whose sides can be run here, without the sides that cannot.
fn available(options: &Options) -> Vec<Pair> {
    let mut pairs = variants::pairs();
    for pair in &mut pairs {
        pair.sides.retain(|s| match s.server {
            Kind::Bare => options.bare.is_some(),
            Kind::System {
                mimalloc, broker, ..
            } => {
                (!mimalloc || options.system_mimalloc.is_some())
                    && (broker.is_none() || options.nats_server.is_some())
            }
        });
    }
    pairs.retain(|pair| {
        pair.sides.len() >= 2
            && (options.only.is_empty() || options.only.iter().any(|g| g == pair.group))
    });
    pairs
}

/// One round of one pair: the brokers' publish-to-ack latency, the capacity of every side,
/// then every side at the same rates: fractions of the smallest capacity of the pair (of
/// those beside the pair, for a side on neither side), so that every side can sustain them.
fn measure_pair(
    bench: &Bench<'_>,
    pair: &Pair,
    round: usize,
    measured: &mut [Rounds],
) -> anyhow::Result<()> {
    probes(bench, pair, round, measured)?;
    let mut servers = capacities(bench, pair, round, measured)?;
    let capacities: Vec<Option<f64>> = (measured.iter())
        .map(|rounds| rounds.capacity.last().map(|c| c.rate))
        .collect();
    let references = references(pair.group, &pair.sides, &capacities);
    for (((pair_side, rounds), (server, target)), reference) in (pair.sides.iter())
        .zip(measured.iter_mut())
        .zip(&mut servers)
        .zip(references)
    {
        for (index, load) in LOADS.iter().enumerate() {
            let rate = (reference * load).max(1.0);
            let run =
                measure::latency(pair_side.protocol, target, server.pid(), rate, bench.timing)?;
            if let Some(histograms) = bench.histograms
                && !run.latency_ns.is_empty()
            {
                let name = hgrm_name(pair.group, pair_side, *load, round);
                rounds.hgrm[index].push(histograms.write(&name, &run.latency_ns)?);
            }
            rounds.latency[index].push(run.report);
        }
        server.stop();
    }
    Ok(())
}

/// The rate each side's latency runs are fractions of, from the sides' capacities in this
/// round: the smallest among the pair's sides for a side of the pair, the smallest among
/// the variants beside the pair for one of those.
fn references(group: &str, sides: &[PairSide], capacities: &[Option<f64>]) -> Vec<f64> {
    let paired = |s: &PairSide| side(group, s.variant).is_some();
    sides
        .iter()
        .map(|this| {
            (sides.iter().zip(capacities))
                .filter(|(other, _)| paired(other) == paired(this))
                .filter_map(|(_, capacity)| *capacity)
                .fold(f64::INFINITY, f64::min)
        })
        .collect()
}

/// The publish-to-ack latency of the broker of every NATS side of `pair`, before any server
/// of the round runs, so that nothing else loads the broker.
fn probes(
    bench: &Bench<'_>,
    pair: &Pair,
    round: usize,
    measured: &mut [Rounds],
) -> anyhow::Result<()> {
    for (pair_side, rounds) in pair.sides.iter().zip(measured.iter_mut()) {
        if let Some(broker) = pair_side.broker() {
            let stream = stream_name("PROBE", broker, round);
            let probe = Probe::new(bench.brokers.url(broker)?, stream, broker.replicas());
            rounds.publish_ack.push(publish_ack(&probe)?);
        }
    }
    Ok(())
}

/// Starts every side's server and measures its capacity; the servers are left running
/// for the latency runs, each with the address its load goes to.
fn capacities(
    bench: &Bench<'_>,
    pair: &Pair,
    round: usize,
    measured: &mut [Rounds],
) -> anyhow::Result<Vec<(Server, String)>> {
    let mut servers = Vec::with_capacity(pair.sides.len());
    for (pair_side, rounds) in pair.sides.iter().zip(measured.iter_mut()) {
        let server = start(bench, pair_side, round)?;
        let target = target(&server, pair_side);
        let capacity = measure::capacity(pair_side.protocol, &target, server.pid(), bench.timing)?;
        rounds.capacity.push(capacity);
        // Only the gateway's own hop is reported on its status page.
        if matches!(pair_side.server, Kind::System { .. })
            && matches!(pair_side.protocol, Protocol::Http1 | Protocol::H2c)
            && let Some(ratio) = hop_reuse(&server.addr(http_role(pair_side)))
        {
            rounds.reuse.push(ratio);
        }
        servers.push((server, target));
    }
    Ok(servers)
}

/// The file of one latency run, inside the suite's histograms directory.
fn hgrm_name(group: &str, pair_side: &PairSide, load: f64, round: usize) -> String {
    format!(
        "{}/{}/{}-{:.0}pct-r{round}.hgrm",
        file_part(group),
        file_part(pair_side.variant),
        pair_side.protocol.as_str(),
        load * 100.0
    )
}

/// Starts the server of one side in `round`, pinned when asked.
fn start(bench: &Bench<'_>, pair_side: &PairSide, round: usize) -> anyhow::Result<Server> {
    let options = bench.options;
    let program = match pair_side.server {
        Kind::Bare => options.bare.as_deref().unwrap_or(Path::new("harness")),
        Kind::System { mimalloc: true, .. } => options
            .system_mimalloc
            .as_deref()
            .unwrap_or(&options.system),
        Kind::System { .. } => &options.system,
    };
    let mut command = pinned(options.server_core.as_deref(), &program.to_string_lossy());
    match pair_side.server {
        Kind::Bare => {
            command.args(bare::SERVE_ON_FREE_PORTS);
        }
        Kind::System {
            env, tls, broker, ..
        } => {
            command.envs([
                (names::API_PORT, "0"),
                (names::GRPC_PORT, "0"),
                (names::PROCESSOR_PORT, "0"),
                (names::RUST_LOG, "warn,system=info"),
                (names::QUEUE_SIZE, "10000"),
            ]);
            if let Some(broker) = broker {
                command.envs(nats_settings(broker, &bench.brokers.url(broker)?, round));
            }
            if tls {
                command.env(names::TLS_SELF_SIGNED, &options.tls_dir);
                command.env(names::API_PLAIN_PORT, "0");
            }
            command.envs(env.iter().copied());
        }
    }
    Ok(Server::start(command, &roles(pair_side))?)
}

/// The roles a side's server reports listening before it is measured.
fn roles(pair_side: &PairSide) -> Vec<&'static str> {
    match pair_side.server {
        Kind::Bare => vec![bare::HTTP_SERVER, bare::GRPC_SERVER],
        Kind::System { tls: false, .. } => {
            vec![servers::PROCESSOR, servers::GATEWAY, servers::GRPC]
        }
        Kind::System { tls: true, .. } => vec![
            servers::PROCESSOR,
            servers::GATEWAY,
            servers::GRPC,
            servers::GATEWAY_PLAIN,
        ],
    }
}

/// The role whose address a side's load goes to.
fn load_role(pair_side: &PairSide) -> &'static str {
    match (pair_side.server, pair_side.protocol) {
        (Kind::Bare, Protocol::GrpcUnary | Protocol::GrpcStream) => bare::GRPC_SERVER,
        (_, Protocol::GrpcUnary | Protocol::GrpcStream) => servers::GRPC,
        _ => http_role(pair_side),
    }
}

/// The role serving a side's plaintext HTTP: the gateway's plaintext port when TLS is on.
fn http_role(pair_side: &PairSide) -> &'static str {
    match pair_side.server {
        Kind::Bare => bare::HTTP_SERVER,
        Kind::System { tls: true, .. } => servers::GATEWAY_PLAIN,
        Kind::System { tls: false, .. } => servers::GATEWAY,
    }
}

/// The address the side's load goes to.
fn target(server: &Server, pair_side: &PairSide) -> String {
    server.addr(load_role(pair_side)).to_owned()
}

fn percent(load: f64) -> String {
    format!("{:.0}%", load * 100.0)
}

/// The cases of one side: its capacity, and its latency at each of [`LOADS`].
fn cases(group: &str, pair_side: &PairSide, rounds: &Rounds) -> Vec<Case> {
    let new = |measure: &str| {
        Case::new(group, pair_side.variant, side(group, pair_side.variant))
            .param("protocol", pair_side.protocol.as_str())
            .param("measure", measure)
    };
    let capacity = |f: &dyn Fn(&Capacity) -> Option<f64>| {
        rounds.capacity.iter().filter_map(f).collect::<Vec<f64>>()
    };
    let mut capacity_case = new("capacity")
        .metric(
            "capacity",
            Metric::from_samples("msg/s", capacity(&|c| Some(c.rate))),
        )
        .metric(
            "concurrency",
            Metric::from_samples("requests", capacity(&|c| Some(f64::from(c.concurrency)))),
        )
        .metric(
            "server_cpu_share",
            Metric::from_samples("cores", capacity(&|c| c.cpu_share)),
        )
        .metric(
            "server_cpu_per_msg",
            Metric::from_samples("µs", capacity(&|c| c.cpu_per_msg)),
        )
        .metric(
            "errors",
            Metric::from_samples("requests", capacity(&|c| Some(c.errors as f64))),
        );
    if let Some(rss) = rounds.capacity.iter().filter_map(|c| c.peak_rss).max() {
        capacity_case = capacity_case.metric("server_peak_rss", Metric::exact("bytes", rss as f64));
    }
    if !rounds.reuse.is_empty() {
        capacity_case = capacity_case.metric(
            "connection_reuse",
            Metric::from_samples("ratio", rounds.reuse.clone()),
        );
    }
    capacity_case = publish_ack::with_metrics(capacity_case, &rounds.publish_ack);
    let mut all = vec![capacity_case];
    for ((load, reports), hgrm) in LOADS.iter().zip(&rounds.latency).zip(&rounds.hgrm) {
        let series = |f: &dyn Fn(&load::Report) -> Option<f64>| {
            reports.iter().filter_map(f).collect::<Vec<f64>>()
        };
        let ms = |f: fn(&load::report::Latency) -> f64| {
            Metric::from_samples("ms", series(&|r| r.latency_us.map(|l| f(&l) / 1000.0)))
        };
        let mut case = new("latency").param("load", percent(*load));
        if !hgrm.is_empty() {
            case = case.param("hgrm", hgrm.join(","));
        }
        all.push(
            case.metric(
                "rate",
                Metric::from_samples("msg/s", series(&|r| Some(r.throughput.messages_per_sec))),
            )
            .metric("p50", ms(|l| l.p50))
            .metric("p99", ms(|l| l.p99))
            .metric("p999", ms(|l| l.p999))
            .metric(
                "errors",
                Metric::from_samples(
                    "requests",
                    series(&|r| Some((r.requests.errors + r.requests.rejected) as f64)),
                ),
            ),
        );
    }
    all
}

/// The hop's connection reuse as the gateway reports it on `/api/v1/status`.
fn hop_reuse(gateway: &str) -> Option<f64> {
    let status = get_json(gateway, "/api/v1/status", Duration::from_secs(5))?;
    status["gateway"]["forwarder"]["connectionReuse"].as_f64()
}

/// The JSON answer of `GET path` at `addr` (plain HTTP/1.1, one connection), or `None`
/// when there is no readable answer within `timeout`.
pub(crate) fn get_json(addr: &str, path: &str, timeout: Duration) -> Option<serde_json::Value> {
    serde_json::from_str(&get_text(addr, path, timeout)?).ok()
}

/// The body of the answer to `GET path` at `addr` (plain HTTP/1.1, one connection), or
/// `None` when no answer arrives within `timeout`.
pub(crate) fn get_text(addr: &str, path: &str, timeout: Duration) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text.split_once("\r\n\r\n")?.1.to_owned())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use hdrhistogram::Histogram;
    use launch::servers;

    use super::{
        Options, PublishAck, Rounds, available, cases, load_role, references, roles, variants,
    };

    /// The load of a TLS side goes to the gateway's plain port (so that only the hop is
    /// TLS), which its server must report; a plaintext side's to the gateway's own port.
    #[test]
    fn the_load_of_a_tls_side_goes_to_the_plain_gateway_port() {
        for (group, _) in study::catalogue::TLS_LOAD_PAIRS {
            let pair = variants::pairs().into_iter().find(|p| p.group == group);
            let pair = pair.unwrap_or_else(|| panic!("no pair {group}"));
            let (plain, tls) = (&pair.sides[0], &pair.sides[1]);
            assert_eq!(load_role(plain), servers::GATEWAY, "{group}");
            assert_eq!(load_role(tls), servers::GATEWAY_PLAIN, "{group}");
            assert!(roles(tls).contains(&servers::GATEWAY_PLAIN), "{group}");
            assert!(!roles(plain).contains(&servers::GATEWAY_PLAIN), "{group}");
        }
    }

    fn options(nats_server: Option<&str>) -> Options {
        Options {
            system: PathBuf::from("system"),
            system_mimalloc: None,
            bare: None,
            nats_server: nats_server.map(PathBuf::from),
            rounds: 1,
            seconds: 1.0,
            server_core: None,
            only: vec!["load/queue".to_owned()],
            histograms: None,
            tls_dir: PathBuf::from("tls"),
        }
    }

    fn queue_variants(options: &Options) -> Vec<&'static str> {
        let pairs = available(options);
        pairs
            .iter()
            .find(|p| p.group == "load/queue")
            .map(|p| p.sides.iter().map(|s| s.variant).collect())
            .unwrap_or_default()
    }

    /// Both NATS sides run only with a nats-server at hand; the queue pair runs without.
    #[test]
    fn the_nats_sides_run_only_with_a_nats_server() {
        assert_eq!(queue_variants(&options(None)), ["memory", "pooled"]);
        assert_eq!(
            queue_variants(&options(Some("nats-server"))),
            ["memory", "pooled", "nats", "nats_r3"]
        );
    }

    /// The latency rates of a pair's sides are fractions of the smaller capacity of the
    /// pair; the variants beside the pair run at fractions of the smaller capacity among
    /// them, so that a far slower NATS queue does not set the pair's rates.
    #[test]
    fn the_sides_beside_a_pair_run_at_rates_of_their_own() {
        let pair = variants::pairs()
            .into_iter()
            .find(|p| p.group == "load/queue");
        let pair = pair.expect("the queue pair");
        let capacities = [
            Some(60_000.0),
            Some(50_000.0),
            Some(12_000.0),
            Some(4_000.0),
        ];
        assert_eq!(
            references(pair.group, &pair.sides, &capacities),
            [50_000.0, 50_000.0, 4_000.0, 4_000.0]
        );
        let ingress = variants::pairs()
            .into_iter()
            .find(|p| p.group == "load/ingress");
        let ingress = ingress.expect("the ingress pair");
        let capacities = [
            Some(30_000.0),
            Some(40_000.0),
            Some(20_000.0),
            Some(90_000.0),
        ];
        assert_eq!(
            references(ingress.group, &ingress.sides, &capacities),
            [20_000.0; 4]
        );
    }

    /// A NATS side's capacity case carries the broker's publish-to-ack latency of each
    /// round; the other sides' do not.
    #[test]
    fn a_nats_capacity_case_carries_the_publish_to_ack_latency() {
        let pair = variants::pairs()
            .into_iter()
            .find(|p| p.group == "load/queue");
        let pair = pair.expect("the queue pair");
        let mut latency_ns = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for ns in [200_000, 300_000, 400_000] {
            latency_ns.record(ns).unwrap();
        }
        let probed = Rounds {
            publish_ack: vec![PublishAck {
                latency_ns,
                errors: 0,
            }],
            ..Rounds::default()
        };
        let capacity = |side, rounds: &Rounds| {
            let all = cases(pair.group, &pair.sides[side], rounds);
            all.into_iter()
                .find(|c| c.params.get("measure").map(String::as_str) == Some("capacity"))
                .expect("a capacity case")
        };
        let r3 = capacity(3, &probed);
        assert_eq!(r3.variant, "nats_r3");
        for metric in ["publish_ack_p50", "publish_ack_p99"] {
            let m = &r3.metrics[metric];
            assert_eq!(m.unit, "ms");
            assert!(m.median > 0.0, "{metric}: {m:?}");
        }
        assert_eq!(r3.metrics["publish_ack_messages"].median, 3.0);
        let memory = capacity(0, &Rounds::default());
        assert!(!memory.metrics.contains_key("publish_ack_p99"));
    }
}
