//! The whole system under load, one A/B pair at a time, asking two questions separately.
//!
//! - Capacity: the most a saturated server sustains. The closed-loop concurrency is raised
//!   until the throughput stops rising; the best level, the server's CPU share (a capacity
//!   where the server was not saturated is only a lower bound, and the report says so) and
//!   its CPU per message are recorded.
//! - Latency: an open loop at the same absolute rates for every side of a pair (25%, 50% and
//!   75% of the smaller capacity of the pair in the same round: the baseline's when the
//!   optimization is faster, the system's against the bare server), each request timed from
//!   when it was due, so a stall shows in the tail instead of slowing the generator.
//!
//! Each side runs in a server process of its own (the `system` binary, or the bare
//! reference servers for `load/vs_bare`), pinned to one core when `taskset` exists, and the
//! rounds alternate the sides so that the machine's drift cancels out of the ratios. The
//! pairs are data, in `system_load/variants.rs`; the runs are in `system_load/measure.rs`.
//!
//! A side with TLS on the hop (`load/hop_tls*`) runs the binary with `TLS_SELF_SIGNED` (its
//! CA kept in [`Options::tls_dir`]) and `API_PLAIN_PORT`, and its load goes to the gateway's
//! plaintext port, so that the two sides differ only in the hop.
//!
//! Each latency run's whole distribution is kept as a `.hgrm` file beside the result file
//! (`hgrm/load/<group>/<variant>/<protocol>-<load>pct-r<round>.hgrm`, the group's `/` as
//! `_`), and its latency case names the files of its rounds in its `hgrm` param.

mod measure;
mod variants;

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    time::Duration,
};

use self::{
    measure::{Capacity, Timing},
    variants::{Pair, Server as Kind, Side as PairSide},
};
use crate::{
    load::{
        self, Protocol,
        hgrm::{SuiteHistograms, file_part},
    },
    pairs::side,
    peers::process::{Server, pinned},
    results::{Case, Metric, ResultFile},
};
use launch::NatsServer;

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
    /// `nats-server`, when available (the `nats` queue is measured only with it).
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

/// The role (in the server's `listening on` lines) that serves the gateway's plaintext
/// port while TLS is on.
const PLAIN_GATEWAY: &str = "gateway (plain)";

/// What one side measured in one round.
#[derive(Debug, Default)]
struct Rounds {
    capacity: Vec<Capacity>,
    /// One report per round for each of [`LOADS`].
    latency: [Vec<load::Report>; LOADS.len()],
    /// The `.hgrm` files of those runs (paths relative to the results directory).
    hgrm: [Vec<String>; LOADS.len()],
    reuse: Vec<f64>,
}

/// What every measurement of a run shares.
struct Bench<'a> {
    options: &'a Options,
    nats: Option<&'a NatsServer>,
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
    let nats = options
        .nats_server
        .as_deref()
        .map(NatsServer::start)
        .transpose()?;
    let histograms = options
        .histograms
        .as_deref()
        .map(|results| SuiteHistograms::new(results, Suite::Load.as_str()))
        .transpose()?;
    let bench = Bench {
        options,
        nats: nats.as_ref(),
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
            Kind::System { mimalloc, env, .. } => {
                (!mimalloc || options.system_mimalloc.is_some())
                    && (options.nats_server.is_some() || !env.contains(&("QUEUE_TYPE", "nats")))
            }
        });
    }
    pairs.retain(|pair| {
        pair.sides.len() >= 2
            && (options.only.is_empty() || options.only.iter().any(|g| g == pair.group))
    });
    pairs
}

/// One round of one pair: the capacity of every side, then every side at the same rates:
/// fractions of the smallest capacity of the pair, so that every side can sustain them.
fn measure_pair(
    bench: &Bench<'_>,
    pair: &Pair,
    round: usize,
    measured: &mut [Rounds],
) -> anyhow::Result<()> {
    let mut servers = capacities(bench, pair, measured)?;
    let reference = measured
        .iter()
        .filter_map(|rounds| rounds.capacity.last().map(|c| c.rate))
        .fold(f64::INFINITY, f64::min);
    for ((pair_side, rounds), (server, target)) in
        pair.sides.iter().zip(measured.iter_mut()).zip(&mut servers)
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

/// Starts every side's server and measures its capacity; the servers are left running
/// for the latency runs, each with the address its load goes to.
fn capacities(
    bench: &Bench<'_>,
    pair: &Pair,
    measured: &mut [Rounds],
) -> anyhow::Result<Vec<(Server, String)>> {
    let mut servers = Vec::with_capacity(pair.sides.len());
    for (pair_side, rounds) in pair.sides.iter().zip(measured.iter_mut()) {
        let server = start(bench.options, bench.nats, pair_side)?;
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

/// Starts the server of one side, pinned when asked.
fn start(
    options: &Options,
    nats: Option<&NatsServer>,
    pair_side: &PairSide,
) -> anyhow::Result<Server> {
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
            command.args([
                "serve-bare",
                "--http",
                "127.0.0.1:0",
                "--grpc",
                "127.0.0.1:0",
            ]);
        }
        Kind::System { env, tls, .. } => {
            command.envs([
                ("API_PORT", "0"),
                ("GRPC_PORT", "0"),
                ("PROCESSOR_PORT", "0"),
                ("RUST_LOG", "warn,system=info"),
                ("QUEUE_SIZE", "10000"),
            ]);
            if let Some(nats) = nats {
                command.envs([
                    ("NATS_URL", nats.url().as_str()),
                    ("NATS_STREAM", "LOAD"),
                    ("NATS_MAX_PENDING", "4096"),
                ]);
            }
            if tls {
                command.env("TLS_SELF_SIGNED", &options.tls_dir);
                command.env("API_PLAIN_PORT", "0");
            }
            command.envs(env.iter().copied());
        }
    }
    Ok(Server::start(command, &roles(pair_side))?)
}

/// The roles a side's server reports listening before it is measured.
fn roles(pair_side: &PairSide) -> Vec<&'static str> {
    match pair_side.server {
        Kind::Bare => vec!["bare-http", "bare-grpc"],
        Kind::System { tls: false, .. } => vec!["processor", "gateway", "grpc"],
        Kind::System { tls: true, .. } => vec!["processor", "gateway", "grpc", PLAIN_GATEWAY],
    }
}

/// The role whose address a side's load goes to.
fn load_role(pair_side: &PairSide) -> &'static str {
    match (pair_side.server, pair_side.protocol) {
        (Kind::Bare, Protocol::GrpcUnary | Protocol::GrpcStream) => "bare-grpc",
        (_, Protocol::GrpcUnary | Protocol::GrpcStream) => "grpc",
        _ => http_role(pair_side),
    }
}

/// The role serving a side's plaintext HTTP: the gateway's plaintext port when TLS is on.
fn http_role(pair_side: &PairSide) -> &'static str {
    match pair_side.server {
        Kind::Bare => "bare-http",
        Kind::System { tls: true, .. } => PLAIN_GATEWAY,
        Kind::System { tls: false, .. } => "gateway",
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
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    serde_json::from_str(body).ok()
}

#[cfg(test)]
mod tests {
    use super::{load_role, roles, variants};

    /// The load of a TLS side goes to the gateway's plain port (so that only the hop is
    /// TLS), which its server must report; a plaintext side's to the gateway's own port.
    #[test]
    fn the_load_of_a_tls_side_goes_to_the_plain_gateway_port() {
        for (group, _) in study::catalogue::TLS_LOAD_PAIRS {
            let pair = variants::pairs().into_iter().find(|p| p.group == group);
            let pair = pair.unwrap_or_else(|| panic!("no pair {group}"));
            let (plain, tls) = (&pair.sides[0], &pair.sides[1]);
            assert_eq!(load_role(plain), "gateway", "{group}");
            assert_eq!(load_role(tls), "gateway (plain)", "{group}");
            assert!(roles(tls).contains(&"gateway (plain)"), "{group}");
            assert!(!roles(plain).contains(&"gateway (plain)"), "{group}");
        }
    }
}
