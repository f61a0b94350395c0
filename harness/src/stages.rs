//! Where the time goes: for each front door, the server's CPU time per message split by
//! stage, from CPU profiles of a run at capacity.
//!
//! The front door (`system gateway` or `system grpc`) and the processor (`system
//! processor`) run as two processes of the `system` binary, pinned to the same core as the
//! whole system is in the load suite; the hop between them is the same loopback HTTP as
//! with every role in one process. A closed loop at the highest concurrency of the capacity
//! sweep drives the front door; meanwhile both processes are profiled
//! (`PROFILE_ENDPOINT`) for the same seconds and their CPU time is read from `/proc`. Each
//! sample is charged to one stage by the frames on its stack ([`front_stage`],
//! [`processor_stage`]); a stage's CPU per message is its process's CPU time per message
//! times the stage's share of that process's samples.
//!
//! The sampler drops samples taken inside libc and the kernel (unwinding from there in a
//! signal handler is not safe), so a process that spends most of its time in system calls
//! keeps fewer samples than its CPU time should give. Each case records the share each
//! profile kept, and the CPU time the samples do not cover is charged as [`UNSAMPLED`]
//! (libc and the kernel), so the stages and it add up to the whole CPU per message.

use std::{
    collections::HashMap,
    path::PathBuf,
    thread,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use launch::servers;
use pprof::protos::{Message as _, Profile};
use system::config::names;

use crate::{
    load::{self, Protocol, Report, RunOptions, Scenario, scenario::Payload, usage},
    process::{Server, pinned},
    results::{Case, Metric, ResultFile},
};

pub use study::catalogue::{STAGES, UNSAMPLED};

/// The protocols profiled, in the report's order.
pub const PROTOCOLS: [Protocol; 4] = [
    Protocol::Http1,
    Protocol::H2c,
    Protocol::GrpcUnary,
    Protocol::GrpcStream,
];

/// Samples per second of CPU time the profile endpoint takes (its sampling rate).
const SAMPLES_PER_CPU_SECOND: f64 = 99.0;

/// Messages per gRPC stream, as in the load suite.
const MESSAGES_PER_STREAM: u32 = 64;

/// How a run is made.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `system` binary.
    pub system: PathBuf,
    /// Seconds each process is profiled.
    pub seconds: u64,
    /// Seconds of load before the profiles start.
    pub warmup: f64,
    /// Core both server processes are pinned to (`taskset -c`), when pinning.
    pub server_core: Option<String>,
    /// The front doors to profile.
    pub protocols: Vec<Protocol>,
}

/// Profiles every front door of `options` in turn; `log` hears about each.
pub fn run(
    options: &Options,
    command: &str,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<ResultFile> {
    let mut file = ResultFile::new("stages", command);
    file.notes.insert(
        "method".to_owned(),
        format!(
            "front door and processor as two processes on one core{}, a closed loop at the \
             capacity sweep's highest level, both profiled for {} s at 99 Hz; a stage's CPU per \
             message = its process's CPU per message × the stage's share of its samples",
            options
                .server_core
                .as_deref()
                .map(|c| format!(" (core {c})"))
                .unwrap_or_default(),
            options.seconds
        ),
    );
    for &protocol in &options.protocols {
        log(&format!("{}: profiling under load", protocol.as_str()));
        let case = measure(options, protocol)?;
        let kept = |name: &str| {
            case.metrics
                .get(&format!("{name}_samples_kept"))
                .map_or(0.0, |m| m.median * 100.0)
        };
        log(&format!(
            "{}: {:.0} msg/s; profiles kept {:.0}% (front door) and {:.0}% (processor) of \
             their samples",
            protocol.as_str(),
            case.metrics["rate"].median,
            kept("front"),
            kept("processor"),
        ));
        file.cases.push(case);
    }
    Ok(file)
}

/// The closed-loop level of a run at capacity: the capacity sweep's highest.
fn level(protocol: Protocol) -> (u32, u32) {
    match protocol {
        Protocol::Http1 => (256, 1),
        Protocol::H2c | Protocol::GrpcUnary => (4, 64),
        Protocol::GrpcStream => (2, 8),
    }
}

/// One process's profile over the window, with its CPU time.
struct Profiled {
    profile: Profile,
    cpu_seconds: f64,
}

/// Runs the front door of `protocol` at capacity, profiles it and the processor, and
/// charges their CPU time per message to the stages.
fn measure(options: &Options, protocol: Protocol) -> anyhow::Result<Case> {
    let mut pair = Pair::start(options, protocol)?;
    let scenario = scenario(options, protocol, &pair.front.addr(pair.front_role));
    let observed = observe(options, &scenario, &pair);
    pair.front.stop();
    pair.processor.stop();
    let report = observed.report?;
    let (front, processor) = (observed.front?, observed.processor?);
    let rate = report.throughput.messages_per_sec;
    anyhow::ensure!(rate > 0.0, "{}: no message went through", protocol.as_str());
    Ok(stage_case(
        &scenario,
        &report,
        &front,
        &processor,
        options.seconds as f64,
    ))
}

/// The two processes of a run: a front door and the processor it forwards to.
struct Pair {
    front: Server,
    /// `gateway` or `grpc`.
    front_role: &'static str,
    processor: Server,
}

impl Pair {
    /// Starts the processor, then the front door that serves `protocol` in front of it.
    fn start(options: &Options, protocol: Protocol) -> anyhow::Result<Pair> {
        let processor = start(options, "processor", None)?;
        let processor_url = format!("http://{}", processor.addr(servers::PROCESSOR));
        let front_role = match protocol {
            Protocol::GrpcUnary | Protocol::GrpcStream => "grpc",
            Protocol::Http1 | Protocol::H2c => "gateway",
        };
        let front = start(options, front_role, Some(&processor_url))?;
        Ok(Pair {
            front,
            front_role,
            processor,
        })
    }
}

/// The closed loop at capacity on `target`, long enough to cover the warm-up and the
/// profiles.
fn scenario(options: &Options, protocol: Protocol, target: &str) -> Scenario {
    let (connections, in_flight) = level(protocol);
    Scenario {
        connections,
        in_flight,
        duration_secs: options.seconds as f64 + 1.5,
        warmup_secs: options.warmup,
        timeout_ms: 5000,
        payload: Payload {
            messages_per_stream: MESSAGES_PER_STREAM,
            ..Payload::default()
        },
        ..Scenario::closed("stages", protocol, target)
    }
}

/// What a run observed; each part may have failed on its own.
struct Observed {
    report: anyhow::Result<Report>,
    front: anyhow::Result<Profiled>,
    processor: anyhow::Result<Profiled>,
}

/// Runs `scenario` against the pair's front door and, once the load is warm, profiles
/// both processes for the same seconds.
fn observe(options: &Options, scenario: &Scenario, pair: &Pair) -> Observed {
    let (front_pid, processor_pid) = (pair.front.pid(), pair.processor.pid());
    let front_addr = scenario.target.as_str();
    let processor_addr = pair.processor.addr(servers::PROCESSOR);
    let front_h2 = pair.front_role == "grpc";
    let seconds = options.seconds;
    thread::scope(|scope| {
        let load = scope.spawn(|| {
            load::run(
                scenario,
                &RunOptions {
                    target_pid: Some(front_pid),
                },
            )
        });
        thread::sleep(Duration::from_secs_f64(options.warmup + 0.5));
        let front = scope.spawn(|| profile(front_addr, front_h2, front_pid, seconds));
        let processor = scope.spawn(|| profile(&processor_addr, false, processor_pid, seconds));
        let joined = |handle: thread::ScopedJoinHandle<'_, anyhow::Result<Profiled>>| {
            handle
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("a profiling thread panicked")))
        };
        let front = joined(front);
        let processor = joined(processor);
        let report = load
            .join()
            .map_err(|_| anyhow::anyhow!("the load thread panicked"))
            .and_then(|r| r.map_err(anyhow::Error::from));
        Observed {
            report,
            front,
            processor,
        }
    })
}

/// The case of one run: its rate (above zero) and errors, and each stage's CPU time per
/// message from the two profiles taken over `window` seconds.
fn stage_case(
    scenario: &Scenario,
    report: &Report,
    front: &Profiled,
    processor: &Profiled,
    window: f64,
) -> Case {
    let rate = report.throughput.messages_per_sec;
    let mut case = Case::new("stages", scenario.protocol.as_str(), None)
        .param("connections", scenario.connections)
        .param("in_flight", scenario.in_flight)
        .metric("rate", Metric::exact("msg/s", rate))
        .metric(
            "errors",
            Metric::exact(
                "requests",
                (report.requests.errors + report.requests.rejected) as f64,
            ),
        );
    let mut total = 0.0;
    let mut unsampled = 0.0;
    for (profiled, classify, name, first) in [
        (front, front_stage as Classify, "front", 0),
        (processor, processor_stage, "processor", 3),
    ] {
        let share = profiled.cpu_seconds / window;
        let (counts, samples) = charge(&profiled.profile, classify);
        // What the process's CPU time should have given at the sampling rate; what the
        // sampler dropped (time in libc and the kernel) is charged as unsampled.
        let expected = (profiled.cpu_seconds * SAMPLES_PER_CPU_SECOND).max(samples as f64);
        let kept = if expected > 0.0 {
            samples as f64 / expected
        } else {
            0.0
        };
        case = case
            .metric(&format!("{name}_cpu_share"), Metric::exact("cores", share))
            .metric(
                &format!("{name}_samples"),
                Metric::exact("samples", samples as f64),
            )
            .metric(
                &format!("{name}_samples_kept"),
                Metric::exact("ratio", kept),
            );
        let per_msg = share / rate * 1e6;
        for (i, count) in counts.iter().enumerate().skip(first).take(3) {
            let stage = if expected > 0.0 {
                per_msg * *count as f64 / expected
            } else {
                0.0
            };
            total += stage;
            case = case.metric(STAGES[i].0, Metric::exact("µs", stage));
        }
        unsampled += per_msg * (1.0 - kept);
    }
    total += unsampled;
    case.metric(UNSAMPLED, Metric::exact("µs", unsampled))
        .metric("total", Metric::exact("µs", total))
}

/// Starts one role of the system, pinned, with its profile endpoint on.
fn start(options: &Options, role: &str, processor_url: Option<&str>) -> anyhow::Result<Server> {
    let mut command = pinned(
        options.server_core.as_deref(),
        &options.system.to_string_lossy(),
    );
    command.arg(role).envs([
        (names::API_PORT, "0"),
        (names::GRPC_PORT, "0"),
        (names::PROCESSOR_PORT, "0"),
        (names::PROFILE_ENDPOINT, "true"),
        (names::QUEUE_SIZE, "10000"),
        (names::RUST_LOG, "warn,system=info"),
    ]);
    if let Some(url) = processor_url {
        command.env(names::PROCESSOR_URL, url);
    }
    Ok(Server::start(command, &[role])?)
}

/// Profiles the process `pid` serving at `addr` for `seconds`, reading its CPU time over
/// the same window (not over the rendering of the profile that follows).
fn profile(addr: &str, h2: bool, pid: u32, seconds: u64) -> anyhow::Result<Profiled> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let io = TokioIo::new(tokio::net::TcpStream::connect(addr).await?);
        let uri = format!("http://{addr}/debug/pprof/profile?seconds={seconds}");
        let request = http::Request::get(uri);
        let started = Instant::now();
        let before = usage::cpu_seconds(pid)?;
        let cpu_after = async {
            tokio::time::sleep_until((started + Duration::from_secs(seconds)).into()).await;
            usage::cpu_seconds(pid)
        };
        let fetch = async {
            let response = if h2 {
                let (mut send, connection) = http2::handshake(TokioExecutor::new(), io).await?;
                tokio::spawn(connection);
                send.send_request(request.body(Empty::<Bytes>::new())?)
                    .await?
            } else {
                let (mut send, connection) = http1::handshake(io).await?;
                tokio::spawn(connection);
                let request = request.header(http::header::HOST, addr);
                send.send_request(request.body(Empty::<Bytes>::new())?)
                    .await?
            };
            anyhow::ensure!(
                response.status() == http::StatusCode::OK,
                "profile of {addr}: {}",
                response.status()
            );
            let body = response.into_body().collect().await?.to_bytes();
            Profile::decode(body).context("a pprof profile")
        };
        let (after, profile) = tokio::join!(cpu_after, fetch);
        Ok(Profiled {
            profile: profile?,
            cpu_seconds: after? - before,
        })
    })
}

/// Which stage a sample belongs to, from its frames (innermost first).
type Classify = fn(&[&str]) -> usize;

/// The front door's stages: the hop client (the processor client, its encoding and its
/// connections), decoding and checking messages, and the rest: the front door's own
/// protocol, the runtime and the kernel. Socket I/O of the hop's connections that names
/// no client frame counts as the front door's.
pub fn front_stage(frames: &[&str]) -> usize {
    const HOP_CLIENT: [&str; 6] = [
        "system::client::",
        "hyper_util::client::",
        "hyper::client::",
        "h2::client::",
        "role::Client",
        "dispatch::Client",
    ];
    const DECODE: [&str; 10] = [
        "system::wire::",
        "system::validate::",
        "system::codec::",
        "system::gateway::decode_ingest",
        "system::gateway::new_message",
        "system::proto::",
        "prost::",
        "tonic_prost::",
        "serde_json::",
        "pbjson",
    ];
    let any = |marks: &[&str]| frames.iter().any(|f| marks.iter().any(|m| f.contains(m)));
    if any(&HOP_CLIENT) {
        2
    } else if any(&DECODE) {
        1
    } else {
        0
    }
}

/// The processor's stages: the queue (publishing and taking messages), the worker pool,
/// and the rest: the processor's HTTP server with its decoding, the runtime and the kernel.
pub fn processor_stage(frames: &[&str]) -> usize {
    let any = |mark: &str| frames.iter().any(|f| f.contains(mark));
    if any("system::queue::") {
        4
    } else if any("system::worker::") {
        5
    } else {
        3
    }
}

/// Samples per stage, and all samples, of `profile`.
pub fn charge(profile: &Profile, classify: Classify) -> ([u64; STAGES.len()], u64) {
    let text = |i: i64| {
        profile
            .string_table
            .get(i as usize)
            .map_or("", String::as_str)
    };
    let functions: HashMap<u64, &str> = profile
        .function
        .iter()
        .map(|f| (f.id, text(f.name)))
        .collect();
    let locations: HashMap<u64, Vec<&str>> = profile
        .location
        .iter()
        .map(|l| {
            let names = l
                .line
                .iter()
                .filter_map(|line| functions.get(&line.function_id).copied())
                .collect();
            (l.id, names)
        })
        .collect();
    let mut counts = [0u64; STAGES.len()];
    let mut all = 0;
    let mut frames = Vec::new();
    for sample in &profile.sample {
        let n = sample.value.first().copied().unwrap_or(0).max(0) as u64;
        frames.clear();
        frames.extend(
            sample
                .location_id
                .iter()
                .filter_map(|id| locations.get(id))
                .flatten()
                .copied(),
        );
        counts[classify(&frames)] += n;
        all += n;
    }
    (counts, all)
}
