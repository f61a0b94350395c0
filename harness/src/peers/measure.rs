//! One run of one side of a pair: the generator (ours, `wrk` or `h2load`) as a child
//! process pinned to the generators' core and bounded in time, with the CPU it and the
//! server used over its run, normalized into a [`Sample`].

use std::{
    fs,
    process::{ExitStatus, Stdio},
    time::{Duration, Instant},
};

use super::{
    PeersError, PeersOptions, Run,
    tools::{self, ToolRun},
};
use crate::{
    load::{Protocol, Report, Scenario, request::Prepared, usage},
    process::pinned,
};

/// Time a generator gets beyond its warm-up and duration before it is killed.
pub(super) const GENERATOR_GRACE: Duration = Duration::from_secs(30);

/// Which generator drives a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Generator {
    Ours,
    Wrk,
    H2load,
}

/// One side of a pair: a generator against a server address.
#[derive(Debug, Clone)]
pub(super) struct Side {
    pub(super) variant: &'static str,
    pub(super) generator: Generator,
    pub(super) target: String,
    pub(super) server_pid: u32,
}

/// What one run measured, normalized across generators.
#[derive(Debug, Clone, Default)]
pub(super) struct Sample {
    pub(super) throughput: Option<f64>,
    pub(super) messages_per_sec: Option<f64>,
    pub(super) latency_mean_us: Option<f64>,
    pub(super) latency_p50_us: Option<f64>,
    pub(super) latency_p99_us: Option<f64>,
    pub(super) errors: Option<f64>,
    pub(super) rejected: Option<f64>,
    pub(super) generator_cpu_share: f64,
    pub(super) server_cpu_share: Option<f64>,
}

/// Connections and requests in flight on each for `protocol`.
pub(super) fn shape(options: &PeersOptions, protocol: Protocol) -> (u32, u32) {
    match protocol {
        Protocol::Http1 => (options.http1_connections, 1),
        Protocol::H2c | Protocol::GrpcUnary => (options.h2_connections, options.h2_streams),
        Protocol::GrpcStream => (options.h2_connections, options.stream_calls),
    }
}

pub(super) fn summary(sample: &Sample) -> String {
    let fmt = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |v| format!("{v:.0}"));
    format!(
        "{} req/s, mean {} us, p99 {} us, errors {}, rejected {}, generator cpu {:.2}, server cpu {}",
        fmt(sample.throughput),
        fmt(sample.latency_mean_us),
        fmt(sample.latency_p99_us),
        fmt(sample.errors),
        fmt(sample.rejected),
        sample.generator_cpu_share,
        sample
            .server_cpu_share
            .map_or_else(|| "?".to_owned(), |v| format!("{v:.2}")),
    )
}

/// Runs one side once, as a child process, and measures what it and the server used.
pub(super) fn measure(
    run: &Run<'_>,
    side: &Side,
    protocol: Protocol,
) -> Result<Sample, PeersError> {
    let scenario = scenario(run.options, side, protocol);
    let prepared =
        Prepared::new(&scenario).map_err(|err| PeersError::Generator(err.to_string()))?;
    let argv = argv(run, side, &scenario, &prepared)?;
    let ran = run_generator(run, &argv, side.server_pid)?;
    let stdout = String::from_utf8_lossy(&ran.stdout);
    if !ran.status.success() {
        return Err(PeersError::Generator(format!(
            "{} failed ({}): {}{}",
            argv[0],
            ran.status,
            stdout,
            String::from_utf8_lossy(&ran.stderr)
        )));
    }
    let mut sample = match side.generator {
        Generator::Ours => {
            let text = fs::read_to_string(run.dir.join(REPORT))?;
            let report: Report = serde_json::from_str(&text)
                .map_err(|err| PeersError::Generator(format!("unreadable load report: {err}")))?;
            from_report(&report)
        }
        Generator::Wrk => from_tool(tools::parse_wrk(&stdout)),
        Generator::H2load => from_tool(tools::parse_h2load(&stdout)),
    };
    if sample.throughput.is_none() {
        return Err(PeersError::Generator(format!(
            "{} printed no rate:\n{stdout}",
            argv[0]
        )));
    }
    sample.generator_cpu_share = ran.generator_cpu / ran.wall;
    sample.server_cpu_share = ran.server_cpu.map(|cpu| cpu / ran.wall);
    Ok(sample)
}

/// Our generator's report, in the run's directory.
const REPORT: &str = "report.json";

/// The closed-loop scenario of one side: every generator is given the same shape.
fn scenario(options: &PeersOptions, side: &Side, protocol: Protocol) -> Scenario {
    let mut scenario = Scenario::closed(
        &format!("peers-{}", protocol.as_str()),
        protocol,
        &side.target,
    );
    scenario.duration_secs = options.duration_secs as f64;
    scenario.warmup_secs = options.warmup_secs;
    scenario.payload.messages_per_stream = options.messages_per_stream;
    if let Some(spin) = options.spin_us {
        scenario.spin_us = spin;
    }
    (scenario.connections, scenario.in_flight) = shape(options, protocol);
    scenario
}

/// The command line of the side's generator, writing the files it reads into the run's
/// directory.
fn argv(
    run: &Run<'_>,
    side: &Side,
    scenario: &Scenario,
    prepared: &Prepared,
) -> Result<Vec<String>, PeersError> {
    let options = run.options;
    let duration = Duration::from_secs(options.duration_secs);
    let url = format!("http://{}{}", side.target, scenario.path());
    Ok(match side.generator {
        Generator::Ours => {
            let scenario_path = run.dir.join("scenario.toml");
            let text =
                toml::to_string(scenario).map_err(|err| PeersError::Generator(err.to_string()))?;
            fs::write(&scenario_path, text)?;
            vec![
                options.harness_bin.display().to_string(),
                "load".to_owned(),
                "--scenario".to_owned(),
                scenario_path.display().to_string(),
                "--quiet".to_owned(),
                "--json".to_owned(),
                run.dir.join(REPORT).display().to_string(),
            ]
        }
        Generator::Wrk => {
            let body = String::from_utf8_lossy(&prepared.body).into_owned();
            tools::wrk_command(&url, scenario.connections, duration, &body, run.dir)?
        }
        Generator::H2load => {
            let body_path = run.dir.join("body.bin");
            fs::write(&body_path, &prepared.body)?;
            let headers: &[&str] = match scenario.protocol {
                Protocol::GrpcUnary | Protocol::GrpcStream => {
                    &["content-type: application/grpc", "te: trailers"]
                }
                _ => &["content-type: application/json"],
            };
            tools::h2load_command(
                &url,
                scenario.connections,
                scenario.in_flight,
                duration,
                Duration::from_secs_f64(options.warmup_secs),
                &body_path,
                headers,
            )
        }
    })
}

/// What a generator's run left: its exit, its output, and the CPU it and the server used.
struct Ran {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Seconds from its start to its exit.
    wall: f64,
    generator_cpu: f64,
    server_cpu: Option<f64>,
}

/// Runs `argv` pinned to the generators' core, its output into files, killed when it
/// outlives its warm-up and duration by [`GENERATOR_GRACE`] (so a hung tool cannot hang
/// the run).
fn run_generator(run: &Run<'_>, argv: &[String], server_pid: u32) -> Result<Ran, PeersError> {
    let options = run.options;
    let mut command = pinned(run.generator_cores, &argv[0]);
    let stdout_path = run.dir.join("stdout.txt");
    let stderr_path = run.dir.join("stderr.txt");
    command
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout_path)?)
        .stderr(fs::File::create(&stderr_path)?);
    let limit = Duration::from_secs(options.duration_secs)
        + Duration::from_secs_f64(options.warmup_secs)
        + GENERATOR_GRACE;
    let server_before = usage::cpu_seconds(server_pid).ok();
    let children_before = usage::children_cpu_seconds();
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|err| PeersError::Generator(format!("cannot run {}: {err}", argv[0])))?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(PeersError::Generator(format!(
                "{} did not finish within {limit:?}",
                argv[0]
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let wall = started.elapsed().as_secs_f64();
    Ok(Ran {
        status,
        stdout: fs::read(&stdout_path)?,
        stderr: fs::read(&stderr_path)?,
        wall,
        generator_cpu: usage::children_cpu_seconds() - children_before,
        server_cpu: server_before
            .zip(usage::cpu_seconds(server_pid).ok())
            .map(|(before, after)| after - before),
    })
}

fn from_report(report: &Report) -> Sample {
    let latency = report.latency_us.as_ref();
    Sample {
        throughput: Some(report.throughput.ok_per_sec),
        messages_per_sec: (report.requests.messages != report.requests.ok)
            .then_some(report.throughput.messages_per_sec),
        latency_mean_us: latency.map(|l| l.mean),
        latency_p50_us: latency.map(|l| l.p50),
        latency_p99_us: latency.map(|l| l.p99),
        errors: Some(report.requests.errors as f64),
        rejected: Some(report.requests.rejected as f64),
        ..Sample::default()
    }
}

fn from_tool(run: ToolRun) -> Sample {
    Sample {
        throughput: run.requests_per_sec,
        latency_mean_us: run.latency_mean_us,
        latency_p50_us: run.latency_p50_us,
        latency_p99_us: run.latency_p99_us,
        errors: run.errors.map(|e| e as f64),
        ..Sample::default()
    }
}
