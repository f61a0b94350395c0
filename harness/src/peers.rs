//! Peers side by side: the bare reference servers ([`bare`]) and the `peers` run, which
//! drives them with our generator and, where installed, with `wrk` (HTTP/1.1) and `h2load`
//! (h2c, gRPC frames), then drives the bare servers and the real system with our generator.
//! Every server and generator is a separate process, the servers pinned to one core and the
//! generators to another (`taskset -c`), and the pinning is recorded in the result file.
//!
//! The machine's speed drifts between runs minutes apart, so the two sides of each pair run
//! alternately (A B A B ...) in the same window, `rounds` times each; the result file keeps
//! every sample, and ratios are computed round by round. Nothing here asserts a speed.

pub mod bare;
mod measure;
pub mod tools;

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use launch::servers;
use study::variant::Variant;
use system::config::names;

use self::measure::{Generator, Sample, Side, measure, shape, summary};
use crate::{
    load::Protocol,
    process::{self, Server, pinned},
    results::{Case, Metric, ResultFile},
};

/// How a peers run is made.
#[derive(Debug, Clone)]
pub struct PeersOptions {
    /// Name of the result file (`<suite>.json`).
    pub suite: String,
    /// The command line, for the result file.
    pub command: String,
    /// Rounds of each pair (each side runs once per round).
    pub rounds: u32,
    /// Seconds each run measures (whole seconds: `wrk` takes no less).
    pub duration_secs: u64,
    /// Seconds of warm-up before our generator and `h2load` measure.
    pub warmup_secs: f64,
    /// HTTP/1.1 connections (each with one request in flight, as `wrk` does).
    pub http1_connections: u32,
    /// HTTP/2 connections.
    pub h2_connections: u32,
    /// Streams in flight per HTTP/2 connection.
    pub h2_streams: u32,
    /// Messages per `grpc-stream` call.
    pub messages_per_stream: u32,
    /// `grpc-stream` calls in flight per connection (few: each carries many messages, and
    /// the system's queue holds 1000 by default).
    pub stream_calls: u32,
    /// This program (for `serve-bare` and `load`).
    pub harness_bin: PathBuf,
    /// The `system` binary; without it the gateway comparison is skipped.
    pub system_bin: Option<PathBuf>,
    /// Whether to compare with `wrk` and `h2load` when they are installed.
    pub use_tools: bool,
    /// Our generator's `spin_us` when not its default.
    pub spin_us: Option<u64>,
}

impl PeersOptions {
    /// The defaults: a full run takes about two minutes, a quick one seconds.
    pub fn new(harness_bin: PathBuf, quick: bool) -> PeersOptions {
        PeersOptions {
            suite: if quick { "peers-quick" } else { "peers" }.to_owned(),
            command: String::new(),
            rounds: if quick { 1 } else { 5 },
            duration_secs: if quick { 1 } else { 2 },
            warmup_secs: if quick { 0.2 } else { 0.5 },
            http1_connections: 64,
            h2_connections: 4,
            h2_streams: 32,
            messages_per_stream: 100,
            stream_calls: 2,
            harness_bin,
            system_bin: None,
            use_tools: true,
            spin_us: None,
        }
    }
}

/// Why a peers run failed.
#[derive(Debug, thiserror::Error)]
pub enum PeersError {
    /// A server did not start.
    #[error(transparent)]
    Start(#[from] process::StartError),
    /// A generator could not be run or said something unreadable.
    #[error("{0}")]
    Generator(String),
    /// A temporary file could not be written.
    #[error("temporary files: {0}")]
    Io(#[from] std::io::Error),
}

/// A pair compared round by round.
#[derive(Debug, Clone)]
struct Pair {
    group: String,
    protocol: Protocol,
    a: Side,
    b: Side,
    /// Whether the ratio case is A/B (ours against a peer tool) rather than B/A (the
    /// gateway against the bare server): the ratio always says what the second-named
    /// side of the statement reaches of the first.
    a_over_b: bool,
}

/// What every step of a peers run shares.
struct Run<'a> {
    options: &'a PeersOptions,
    /// Where the generators' scenario, body and output files are written.
    dir: &'a Path,
    /// The core the servers are pinned to, when pinning.
    server_cores: Option<&'static str>,
    /// The core the generators are pinned to, when pinning.
    generator_cores: Option<&'static str>,
    have_wrk: bool,
    have_h2load: bool,
}

/// A pair to measure, and whether its second side runs (a missing tool's does not).
type Planned = (Pair, bool);

/// Makes the peers run; `log` hears progress. Returns the result file (not yet written).
pub fn run(options: &PeersOptions, log: &mut dyn FnMut(&str)) -> Result<ResultFile, PeersError> {
    let mut result = ResultFile::new(&options.suite, &options.command);
    let (server_cores, generator_cores) = pinning(&mut result);
    let wrk = options.use_tools.then(|| tools::version("wrk")).flatten();
    let h2load = options
        .use_tools
        .then(|| tools::version("h2load"))
        .flatten();
    describe(&mut result, options, &wrk, &h2load);
    let dir = std::env::temp_dir().join(format!("harness-peers-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let run = Run {
        options,
        dir: &dir,
        server_cores,
        generator_cores,
        have_wrk: wrk.is_some(),
        have_h2load: h2load.is_some(),
    };
    let outcome = run_pairs(&run, &mut result, log);
    let _ = fs::remove_dir_all(&dir);
    outcome.map(|()| result)
}

/// The cores of the servers and of the generators (when this machine has two and
/// `taskset`), noted in the result file.
fn pinning(result: &mut ResultFile) -> (Option<&'static str>, Option<&'static str>) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let taskset = Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let (server_cores, generator_cores) = if cores >= 2 && taskset {
        (Some("0"), Some("1"))
    } else {
        (None, None)
    };
    result.notes.insert(
        "pinning".to_owned(),
        match (server_cores, generator_cores) {
            (Some(s), Some(g)) => format!("servers: taskset -c {s}; generators: taskset -c {g}"),
            _ => format!("none ({cores} core(s), taskset available: {taskset})"),
        },
    );
    (server_cores, generator_cores)
}

/// The notes on the tools and the method.
fn describe(
    result: &mut ResultFile,
    options: &PeersOptions,
    wrk: &Option<String>,
    h2load: &Option<String>,
) {
    let describe = |v: &Option<String>| {
        v.clone()
            .unwrap_or_else(|| "not installed (skipped)".to_owned())
    };
    result.notes.insert("wrk".to_owned(), describe(wrk));
    result.notes.insert("h2load".to_owned(), describe(h2load));
    result.notes.insert(
        "method".to_owned(),
        format!(
            "each pair runs alternately A B A B ..., {} round(s); {} s measured per run; our generator and h2load warm up {} s first, wrk measures from its start; every generator runs one thread (ours: threads = 1, wrk and h2load: -t1); ratio cases (ours/tool, gateway/bare) divide the two sides' throughput round by round",
            options.rounds, options.duration_secs, options.warmup_secs
        ),
    );
    result.notes.insert(
        "harness_build".to_owned(),
        if cfg!(debug_assertions) {
            "debug (numbers of a debug build say little; use --release)"
        } else {
            "release"
        }
        .to_owned(),
    );
    result.notes.insert(
        "cpu".to_owned(),
        "generator_cpu and server_cpu are CPU seconds per wall second of the generator process's whole run (getrusage of the waited child; /proc/<pid>/stat of the server); *_cpu_per_request divides that by the generator's throughput. A saturated server shows server_cpu near 1; clearly less means it did not have its core to itself (other load on the machine) or was not the bottleneck".to_owned(),
    );
    result.notes.insert(
        "h2load_grpc".to_owned(),
        "h2load sends pre-encoded gRPC frames and counts HTTP 200 as success without reading grpc-status".to_owned(),
    );
}

/// Starts the servers, plans the pairs and measures each; the servers stop at the end.
fn run_pairs(
    run: &Run<'_>,
    result: &mut ResultFile,
    log: &mut dyn FnMut(&str),
) -> Result<(), PeersError> {
    let bare = start_bare(run, log)?;
    let mut pairs = tool_pairs(run, &bare, log);
    let system = start_system(run, result, log)?;
    if let Some(system) = &system {
        pairs.extend(gateway_pairs(&bare, system));
    }
    for (pair, run_b) in &pairs {
        measure_pair(run, pair, *run_b, result, log)?;
    }
    drop(system);
    drop(bare);
    Ok(())
}

/// The bare reference servers (`harness serve-bare`), pinned to the servers' core.
fn start_bare(run: &Run<'_>, log: &mut dyn FnMut(&str)) -> Result<Server, PeersError> {
    let mut command = pinned(
        run.server_cores,
        &run.options.harness_bin.display().to_string(),
    );
    command.args(bare::SERVE_ON_FREE_PORTS);
    let bare = Server::start(command, &[bare::HTTP_SERVER, bare::GRPC_SERVER])?;
    log(&format!(
        "bare servers: http {} grpc {} (pid {})",
        bare.addr(bare::HTTP_SERVER),
        bare.addr(bare::GRPC_SERVER),
        bare.pid()
    ));
    Ok(bare)
}

/// A side driven by our generator.
fn ours(variant: &'static str, target: &str, server_pid: u32) -> Side {
    Side {
        variant,
        generator: Generator::Ours,
        target: target.to_owned(),
        server_pid,
    }
}

/// Our generator against a peer tool, on the bare servers; a pair whose tool is missing
/// runs only our side.
fn tool_pairs(run: &Run<'_>, bare: &Server, log: &mut dyn FnMut(&str)) -> Vec<Planned> {
    let (http, grpc) = (&bare.addr(bare::HTTP_SERVER), &bare.addr(bare::GRPC_SERVER));
    let (wrk, h2load) = (run.have_wrk, run.have_h2load);
    let table = [
        ("peers/http1", Protocol::Http1, http, Generator::Wrk, wrk),
        ("peers/h2c", Protocol::H2c, http, Generator::H2load, h2load),
        (
            "peers/grpc_unary",
            Protocol::GrpcUnary,
            grpc,
            Generator::H2load,
            h2load,
        ),
        // h2load sends the pre-encoded frames of a whole stream as one request body: a
        // client-streaming call.
        (
            "peers/grpc_stream",
            Protocol::GrpcStream,
            grpc,
            Generator::H2load,
            h2load,
        ),
    ];
    let mut pairs = Vec::new();
    for (group, protocol, target, tool, have) in table {
        if !have {
            log(&format!(
                "{group}: {tool:?} is not installed; measuring only our generator"
            ));
        }
        let b = Side {
            variant: if tool == Generator::Wrk {
                Variant::Wrk.as_str()
            } else {
                Variant::H2load.as_str()
            },
            generator: tool,
            target: target.to_owned(),
            server_pid: bare.pid(),
        };
        let pair = Pair {
            group: group.to_owned(),
            protocol,
            a: ours(Variant::Ours.as_str(), target, bare.pid()),
            b,
            a_over_b: true,
        };
        pairs.push((pair, have));
    }
    pairs
}

/// The system with all roles in one process, pinned to the servers' core, when its binary
/// was given.
fn start_system(
    run: &Run<'_>,
    result: &mut ResultFile,
    log: &mut dyn FnMut(&str),
) -> Result<Option<Server>, PeersError> {
    let Some(bin) = &run.options.system_bin else {
        log("gateway_vs_bare: no system binary; skipped");
        result.notes.insert(
            "gateway".to_owned(),
            "not measured (no system binary)".to_owned(),
        );
        return Ok(None);
    };
    let mut command = pinned(run.server_cores, &bin.display().to_string());
    command
        .env(names::API_PORT, "0")
        .env(names::GRPC_PORT, "0")
        .env(names::PROCESSOR_PORT, "0")
        .env(names::BIND_ADDR, "127.0.0.1")
        .env(names::RUST_LOG, "info");
    let system = Server::start(
        command,
        &[servers::GATEWAY, servers::GRPC, servers::PROCESSOR],
    )?;
    log(&format!(
        "system: gateway {} grpc {} (pid {})",
        system.addr(servers::GATEWAY),
        system.addr(servers::GRPC),
        system.pid()
    ));
    result.notes.insert(
        "gateway".to_owned(),
        format!(
            "{} with all roles in one process, default settings, ports picked by the system",
            crate::results::shown_path(bin)
        ),
    );
    Ok(Some(system))
}

/// Our generator against the bare servers and against the system's front doors.
fn gateway_pairs(bare: &Server, system: &Server) -> Vec<Planned> {
    let (http, grpc) = (&bare.addr(bare::HTTP_SERVER), &bare.addr(bare::GRPC_SERVER));
    [
        (
            "gateway_vs_bare/http1",
            Protocol::Http1,
            http,
            servers::GATEWAY,
        ),
        ("gateway_vs_bare/h2c", Protocol::H2c, http, servers::GATEWAY),
        (
            "gateway_vs_bare/grpc_unary",
            Protocol::GrpcUnary,
            grpc,
            servers::GRPC,
        ),
        (
            "gateway_vs_bare/grpc_stream",
            Protocol::GrpcStream,
            grpc,
            servers::GRPC,
        ),
    ]
    .into_iter()
    .map(|(group, protocol, bare_target, role)| {
        let pair = Pair {
            group: group.to_owned(),
            protocol,
            a: ours(Variant::Bare.as_str(), bare_target, bare.pid()),
            b: ours(Variant::Gateway.as_str(), &system.addr(role), system.pid()),
            a_over_b: false,
        };
        (pair, true)
    })
    .collect()
}

/// The rounds of one pair, A B A B ..., and its cases: one per side and their ratio.
fn measure_pair(
    run: &Run<'_>,
    pair: &Pair,
    run_b: bool,
    result: &mut ResultFile,
    log: &mut dyn FnMut(&str),
) -> Result<(), PeersError> {
    let options = run.options;
    let mut a_samples = Vec::new();
    let mut b_samples = Vec::new();
    for round in 1..=options.rounds {
        let sides = [(&pair.a, &mut a_samples), (&pair.b, &mut b_samples)];
        for (side, samples) in sides.into_iter().take(if run_b { 2 } else { 1 }) {
            let sample = measure(run, side, pair.protocol)?;
            log(&format!(
                "{} round {round} {}: {}",
                pair.group,
                side.variant,
                summary(&sample)
            ));
            samples.push(sample);
        }
    }
    let params = params(options, pair);
    let side_case = |side: &Side, samples: &[Sample]| {
        case(
            options,
            &pair.group,
            side.variant,
            &params,
            samples,
            side.generator,
        )
    };
    result.cases.push(side_case(&pair.a, &a_samples));
    if run_b {
        result.cases.push(side_case(&pair.b, &b_samples));
        result
            .cases
            .extend(ratio_case(pair, &params, &a_samples, &b_samples));
    }
    Ok(())
}

/// The throughput ratio of a pair, round by round, named as "numerator/denominator";
/// none when no round measured both sides.
fn ratio_case(
    pair: &Pair,
    params: &BTreeMap<String, String>,
    a_samples: &[Sample],
    b_samples: &[Sample],
) -> Option<Case> {
    let ratios: Vec<f64> = a_samples
        .iter()
        .zip(b_samples)
        .filter_map(|(a, b)| {
            let (a, b) = (a.throughput?, b.throughput?);
            Some(if pair.a_over_b { a / b } else { b / a })
        })
        .filter(|r| r.is_finite())
        .collect();
    if ratios.is_empty() {
        return None;
    }
    let (numerator, denominator) = if pair.a_over_b {
        (pair.a.variant, pair.b.variant)
    } else {
        (pair.b.variant, pair.a.variant)
    };
    let mut ratio = Case::new(&pair.group, &format!("{numerator}/{denominator}"), None);
    ratio.params = params.clone();
    Some(ratio.metric("throughput_ratio", Metric::from_samples("ratio", ratios)))
}

fn params(options: &PeersOptions, pair: &Pair) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    params.insert("protocol".to_owned(), pair.protocol.as_str().to_owned());
    params.insert(
        "duration_secs".to_owned(),
        options.duration_secs.to_string(),
    );
    params.insert("rounds".to_owned(), options.rounds.to_string());
    let (connections, in_flight) = shape(options, pair.protocol);
    params.insert("connections".to_owned(), connections.to_string());
    params.insert("in_flight".to_owned(), in_flight.to_string());
    if pair.protocol == Protocol::GrpcStream {
        params.insert(
            "messages_per_stream".to_owned(),
            options.messages_per_stream.to_string(),
        );
    }
    params
}

fn case(
    options: &PeersOptions,
    group: &str,
    variant: &str,
    params: &BTreeMap<String, String>,
    samples: &[Sample],
    generator: Generator,
) -> Case {
    let mut case = Case::new(group, variant, None);
    case.params = params.clone();
    case.params.insert(
        "generator".to_owned(),
        match (generator, options.spin_us) {
            (Generator::Ours, Some(spin)) => format!("harness load --spin-us {spin}"),
            (Generator::Ours, None) => "harness load".to_owned(),
            (Generator::Wrk, _) => "wrk".to_owned(),
            (Generator::H2load, _) => "h2load".to_owned(),
        },
    );
    let mut add = |name: &str, unit: &str, pick: &dyn Fn(&Sample) -> Option<f64>| {
        let values: Vec<f64> = samples
            .iter()
            .filter_map(pick)
            .filter(|v| v.is_finite())
            .collect();
        if !values.is_empty() {
            case.metrics
                .insert(name.to_owned(), Metric::from_samples(unit, values));
        }
    };
    add("throughput", "req/s", &|s| s.throughput);
    add("messages_per_sec", "msg/s", &|s| s.messages_per_sec);
    add("latency_mean", "us", &|s| s.latency_mean_us);
    add("latency_p50", "us", &|s| s.latency_p50_us);
    add("latency_p99", "us", &|s| s.latency_p99_us);
    add("errors", "requests", &|s| s.errors);
    add("rejected", "requests", &|s| s.rejected);
    add("generator_cpu", "cpu s/s", &|s| Some(s.generator_cpu_share));
    add("server_cpu", "cpu s/s", &|s| s.server_cpu_share);
    add("generator_cpu_per_request", "us", &|s| {
        Some(s.generator_cpu_share / s.throughput? * 1e6)
    });
    add("server_cpu_per_request", "us", &|s| {
        Some(s.server_cpu_share? / s.throughput? * 1e6)
    });
    case
}
