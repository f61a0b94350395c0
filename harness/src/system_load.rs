//! The whole system under load, one A/B pair at a time: the `system` binary is started as a
//! process (pinned to one core when `taskset` exists) with one side's settings, our load
//! generator drives its front door, and the run is repeated in alternating rounds (every
//! variant once per round) so that the machine's drift between rounds cancels out of the
//! ratios. Writes cases of groups `load/*` with throughput, latency percentiles, the
//! server's CPU time per request and, for the client pair, connection reuse on the hop.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::{
    load::{self, Protocol, Scenario, scenario::Payload},
    pairs::side,
    peers::process::{Server, pinned},
    results::{Case, Metric, ResultFile},
};

/// How a run of the suite is made.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `system` binary built with the system allocator.
    pub system: PathBuf,
    /// The same binary built with `--features mimalloc`, when available.
    pub system_mimalloc: Option<PathBuf>,
    /// `nats-server`, when available (the `nats` queue is measured only with it).
    pub nats_server: Option<PathBuf>,
    /// Rounds; each runs every variant once.
    pub rounds: usize,
    /// Measured seconds of each run (after a warm-up of a third of it).
    pub seconds: f64,
    /// Core the server is pinned to (`taskset -c`), when pinning.
    pub server_core: Option<String>,
}

/// One side of one pair: which binary, which settings, which load.
struct Variant {
    group: &'static str,
    variant: &'static str,
    mimalloc: bool,
    env: &'static [(&'static str, &'static str)],
    protocol: Protocol,
}

const fn http1(
    group: &'static str,
    variant: &'static str,
    env: &'static [(&'static str, &'static str)],
) -> Variant {
    Variant {
        group,
        variant,
        mimalloc: false,
        env,
        protocol: Protocol::Http1,
    }
}

fn variants() -> Vec<Variant> {
    let ingress = |variant, protocol| Variant {
        group: "load/ingress",
        variant,
        mimalloc: false,
        env: &[],
        protocol,
    };
    vec![
        ingress("http1", Protocol::Http1),
        ingress("h2c", Protocol::H2c),
        ingress("grpc_unary", Protocol::GrpcUnary),
        ingress("grpc_stream", Protocol::GrpcStream),
        http1("load/queue", "memory", &[("QUEUE_TYPE", "memory")]),
        http1("load/queue", "pooled", &[("QUEUE_TYPE", "pooled")]),
        http1("load/queue", "nats", &[("QUEUE_TYPE", "nats")]),
        http1("load/client", "baseline", &[("CLIENT_MODE", "baseline")]),
        http1("load/client", "pooled", &[("CLIENT_MODE", "pooled")]),
        http1("load/hop_protocol", "http1", &[("HOP_PROTOCOL", "http1")]),
        http1("load/hop_protocol", "h2c", &[("HOP_PROTOCOL", "h2c")]),
        http1("load/hop_codec", "json", &[("HOP_CODEC", "json")]),
        http1("load/hop_codec", "protobuf", &[("HOP_CODEC", "protobuf")]),
        http1(
            "load/hop_batching",
            "unbatched",
            &[("HOP_BATCH_HTTP", "false")],
        ),
        http1(
            "load/hop_batching",
            "batched",
            &[("HOP_BATCH_HTTP", "true")],
        ),
        http1("load/allocator", "glibc", &[]),
        Variant {
            group: "load/allocator",
            variant: "mimalloc",
            mimalloc: true,
            env: &[],
            protocol: Protocol::Http1,
        },
    ]
}

fn scenario(protocol: Protocol, target: &str, seconds: f64) -> Scenario {
    let (connections, in_flight) = match protocol {
        Protocol::Http1 => (32, 1),
        Protocol::H2c | Protocol::GrpcUnary => (4, 8),
        Protocol::GrpcStream => (2, 2),
    };
    Scenario {
        connections,
        in_flight,
        duration_secs: seconds,
        warmup_secs: seconds / 3.0,
        timeout_ms: 5000,
        payload: Payload {
            messages_per_stream: 64,
            ..Payload::default()
        },
        ..Scenario::closed("system-load", protocol, target)
    }
}

/// Runs every variant `rounds` times, alternating; `log` hears about each run.
pub fn run(
    options: &Options,
    command: &str,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<ResultFile> {
    let variants: Vec<Variant> = variants()
        .into_iter()
        .filter(|v| v.variant != "nats" || options.nats_server.is_some())
        .filter(|v| !v.mimalloc || options.system_mimalloc.is_some())
        .collect();
    let nats = options
        .nats_server
        .as_deref()
        .map(NatsServer::start)
        .transpose()?;
    let mut samples: Vec<Vec<load::Report>> = variants.iter().map(|_| Vec::new()).collect();
    let mut reuse: Vec<Vec<f64>> = variants.iter().map(|_| Vec::new()).collect();
    for round in 1..=options.rounds {
        for (i, variant) in variants.iter().enumerate() {
            log(&format!(
                "round {round}/{}: {} {}",
                options.rounds, variant.group, variant.variant
            ));
            let binary = if variant.mimalloc {
                options.system_mimalloc.as_deref()
            } else {
                Some(options.system.as_path())
            };
            let mut command = pinned(
                options.server_core.as_deref(),
                &binary.unwrap_or(&options.system).to_string_lossy(),
            );
            command.envs([
                ("API_PORT", "0"),
                ("GRPC_PORT", "0"),
                ("PROCESSOR_PORT", "0"),
                ("RUST_LOG", "warn,system=info"),
            ]);
            command.envs([("QUEUE_SIZE", "10000")]);
            if let Some(nats) = &nats {
                command.envs([
                    ("NATS_URL", nats.url.as_str()),
                    ("NATS_STREAM", "LOAD"),
                    ("NATS_MAX_PENDING", "4096"),
                ]);
            }
            command.envs(variant.env.iter().copied());
            let mut server = Server::start(command, &["processor", "gateway", "grpc"])?;
            let target = match variant.protocol {
                Protocol::GrpcUnary | Protocol::GrpcStream => server.addr("grpc").to_owned(),
                _ => server.addr("gateway").to_owned(),
            };
            let report = load::run(
                &scenario(variant.protocol, &target, options.seconds),
                &load::RunOptions {
                    target_pid: Some(server.pid()),
                },
            )?;
            // Only the gateway's own hop is reported on its status page.
            if matches!(variant.protocol, Protocol::Http1 | Protocol::H2c)
                && let Some(ratio) = hop_reuse(server.addr("gateway"))
            {
                reuse[i].push(ratio);
            }
            server.stop();
            samples[i].push(report);
        }
    }
    let mut file = ResultFile::new("load", command);
    file.notes.insert("method".into(), format!(
        "the system binary as a process per run, our generator in this process; {} alternating rounds of every variant, {} s measured each",
        options.rounds, options.seconds
    ));
    file.notes.insert(
        "pinning".into(),
        match &options.server_core {
            Some(core) => format!("server: taskset -c {core}; generator: the other core"),
            None => "none (taskset not available)".to_owned(),
        },
    );
    for ((variant, reports), reuse) in variants.iter().zip(&samples).zip(&reuse) {
        file.cases.push(case(variant, reports, reuse));
    }
    Ok(file)
}

fn case(variant: &Variant, reports: &[load::Report], reuse: &[f64]) -> Case {
    let series = |f: &dyn Fn(&load::Report) -> Option<f64>| {
        reports.iter().filter_map(f).collect::<Vec<f64>>()
    };
    let mut case = Case::new(variant.group, variant.variant, side(variant.variant))
        .param("protocol", format!("{:?}", variant.protocol).to_lowercase())
        .metric(
            "throughput",
            Metric::from_samples("msg/s", series(&|r| Some(r.throughput.messages_per_sec))),
        )
        .metric(
            "p50",
            Metric::from_samples("ms", series(&|r| r.latency_us.map(|l| l.p50 / 1000.0))),
        )
        .metric(
            "p99",
            Metric::from_samples("ms", series(&|r| r.latency_us.map(|l| l.p99 / 1000.0))),
        )
        .metric(
            "errors",
            Metric::from_samples(
                "requests",
                series(&|r| Some((r.requests.errors + r.requests.rejected) as f64)),
            ),
        )
        .metric(
            "server_cpu_per_msg",
            Metric::from_samples(
                "µs",
                series(&|r| {
                    let cpu = r.target.and_then(|t| t.cpu_seconds)?;
                    (r.requests.messages > 0).then(|| cpu * 1e6 / r.requests.messages as f64)
                }),
            ),
        );
    if let Some(rss) = reports
        .iter()
        .filter_map(|r| r.target.and_then(|t| t.peak_rss_bytes))
        .max()
    {
        case = case.metric("server_peak_rss", Metric::exact("bytes", rss as f64));
    }
    if !reuse.is_empty() {
        case = case.metric(
            "connection_reuse",
            Metric::from_samples("ratio", reuse.to_vec()),
        );
    }
    case
}

/// The hop's connection reuse as the gateway reports it on `/api/v1/status`.
fn hop_reuse(gateway: &str) -> Option<f64> {
    let mut stream = TcpStream::connect(gateway).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET /api/v1/status HTTP/1.1\r\nHost: {gateway}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    let status: serde_json::Value = serde_json::from_str(body).ok()?;
    status["gateway"]["forwarder"]["connectionReuse"].as_f64()
}

/// A `nats-server -js` on a free port with a temporary store, stopped on drop.
struct NatsServer {
    child: std::process::Child,
    url: String,
    store: PathBuf,
}

impl NatsServer {
    fn start(program: &Path) -> anyhow::Result<NatsServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let store = std::env::temp_dir().join(format!("system-load-nats-{}", std::process::id()));
        let child = Command::new(program)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&store)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let url = format!("nats://127.0.0.1:{port}");
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(NatsServer { child, url, store });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        anyhow::bail!("nats-server did not start listening")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}
