//! The load generator: runs a [`Scenario`] against a server on this machine and reports
//! throughput, latency percentiles (HDR histograms), outcomes by kind, connections opened,
//! the CPU and memory it cost the generator and (given its pid) the server, and a
//! per-second series.
//!
//! Each generator thread has its own single-threaded tokio runtime and its own share of
//! the connections, so threads share nothing while the load runs; their records are merged
//! at the end. The runners speak the wire protocols directly from pre-built requests
//! (`load/http1.rs`, `load/http2.rs`) so the generator costs less CPU per request than the
//! servers it drives. Every run is bounded: the scenario's duration plus warm-up, plus at
//! most one request timeout to let requests in flight finish. [`measure`] also hands back
//! the run's whole latency histogram, which [`hgrm`] writes as a `.hgrm` file.

pub mod duration;
pub mod hgrm;
pub mod http1;
pub mod http2;
pub mod pace;
pub mod record;
pub mod report;
pub mod request;
pub mod scenario;
pub mod usage;

use std::{
    cell::RefCell,
    net::{SocketAddr, ToSocketAddrs},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures_util::future::join_all;
use hdrhistogram::Histogram;

use self::{pace::Pacer, record::Recorder, request::Prepared};
pub use self::{
    report::Report,
    scenario::{Mode, Protocol, Scenario},
};

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The scenario is invalid.
    #[error(transparent)]
    Scenario(#[from] scenario::ScenarioError),
    /// The request could not be built.
    #[error(transparent)]
    Prepare(#[from] request::PrepareError),
    /// The target address does not resolve.
    #[error("cannot resolve target {0}")]
    Resolve(String),
    /// A thread or runtime could not be started.
    #[error("cannot start the generator: {0}")]
    Start(std::io::Error),
}

/// Options of a run that are not part of the scenario.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The server's pid, to report its CPU time and peak memory.
    pub target_pid: Option<u32>,
}

/// What every runner of a run shares (read-only).
#[derive(Debug)]
pub(crate) struct Context {
    addr: SocketAddr,
    prepared: Prepared,
    in_flight: u32,
    timeout: Duration,
    reconnect_delay: Duration,
    grpc: bool,
    open_loop: bool,
    precise_timing: bool,
    spin: Duration,
}

/// A run's report and its whole latency distribution.
#[derive(Debug, Clone)]
pub struct Measured {
    /// What the run measured.
    pub report: Report,
    /// Latency of the successful requests, in nanoseconds, from when each was due (the
    /// histogram the report's percentiles are read from).
    pub latency_ns: Histogram<u64>,
}

/// Runs `scenario` and reports what it measured.
pub fn run(scenario: &Scenario, options: &RunOptions) -> Result<Report, LoadError> {
    measure(scenario, options).map(|measured| measured.report)
}

/// Runs `scenario` and returns its report together with its latency histogram.
pub fn measure(scenario: &Scenario, options: &RunOptions) -> Result<Measured, LoadError> {
    scenario.validate()?;
    let addr = scenario
        .target
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| LoadError::Resolve(scenario.target.clone()))?;
    // The scenario checked the name; this checks what it resolved to.
    if !addr.ip().is_loopback() {
        return Err(LoadError::Resolve(format!(
            "{} resolves to {addr}, which is not a loopback address",
            scenario.target
        )));
    }
    let context = Context {
        addr,
        prepared: Prepared::new(scenario)?,
        in_flight: scenario.in_flight,
        timeout: scenario.timeout(),
        reconnect_delay: Duration::from_millis(20),
        open_loop: scenario.mode == Mode::Open,
        precise_timing: scenario.precise_timing,
        spin: Duration::from_micros(scenario.spin_us),
        grpc: matches!(
            scenario.protocol,
            Protocol::GrpcUnary | Protocol::GrpcStream
        ),
    };
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let start = Instant::now();
    let measure_from = start + scenario.warmup();
    let measure_until = measure_from + scenario.duration();

    let recorders = thread::scope(|scope| {
        let mut handles = Vec::with_capacity(scenario.threads as usize);
        for index in 0..scenario.threads {
            let slots = slots_of_thread(scenario, index, start, measure_until);
            let context = &context;
            let handle = thread::Builder::new()
                .name(format!("load-{index}"))
                .spawn_scoped(scope, move || {
                    run_thread(
                        context,
                        scenario.protocol,
                        slots,
                        measure_from,
                        measure_until,
                    )
                })
                .map_err(LoadError::Start)?;
            handles.push(handle);
        }
        let usage = measure_window(measure_from, measure_until, options.target_pid);
        let mut merged = Recorder::new(measure_from, measure_until);
        for handle in handles {
            match handle.join() {
                Ok(Ok(recorder)) => merged.merge(&recorder),
                Ok(Err(err)) => return Err(LoadError::Start(err)),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok((merged, usage))
    })?;
    let (merged, usage) = recorders;
    Ok(Measured {
        report: Report::new(scenario, started_unix, &merged, usage),
        latency_ns: merged.latency_ns,
    })
}

/// CPU and memory over the measured window, sampled at its two ends.
#[derive(Debug, Clone, Copy, Default)]
pub struct WindowUsage {
    /// The target's pid, when given.
    pub target_pid: Option<u32>,
    /// CPU seconds of this process inside the window.
    pub generator_cpu_seconds: f64,
    /// The target's CPU seconds inside the window, when its pid was given and readable.
    pub target_cpu_seconds: Option<f64>,
    /// The target's peak resident memory at the end of the window.
    pub target_peak_rss_bytes: Option<u64>,
}

fn measure_window(from: Instant, until: Instant, pid: Option<u32>) -> WindowUsage {
    thread::sleep(from.saturating_duration_since(Instant::now()));
    let generator_before = usage::self_cpu_seconds();
    let target_before = pid.and_then(|pid| usage::cpu_seconds(pid).ok());
    thread::sleep(until.saturating_duration_since(Instant::now()));
    let generator_after = usage::self_cpu_seconds();
    let target_after = pid.and_then(|pid| usage::cpu_seconds(pid).ok());
    WindowUsage {
        target_pid: pid,
        generator_cpu_seconds: generator_after - generator_before,
        target_cpu_seconds: target_before
            .zip(target_after)
            .map(|(before, after)| after - before),
        target_peak_rss_bytes: pid.and_then(|pid| usage::peak_rss_bytes(pid).ok()),
    }
}

/// The pacers of the connections thread `index` drives: connections are dealt to threads
/// in turn; in the open loop each connection gets an equal share of the rate, and their
/// schedules are staggered so the requests of all connections interleave evenly.
fn slots_of_thread(scenario: &Scenario, index: u32, start: Instant, stop: Instant) -> Vec<Pacer> {
    (index..scenario.connections)
        .step_by(scenario.threads as usize)
        .map(|connection| match (scenario.mode, scenario.rate) {
            (Mode::Open, Some(rate)) => {
                let per_connection = rate / f64::from(scenario.connections);
                let first = start + Duration::from_secs_f64(f64::from(connection) / rate);
                Pacer::open(first, Duration::from_secs_f64(1.0 / per_connection), stop)
            }
            _ => Pacer::closed(stop),
        })
        .collect()
}

fn run_thread(
    context: &Context,
    protocol: Protocol,
    slots: Vec<Pacer>,
    measure_from: Instant,
    measure_until: Instant,
) -> std::io::Result<Recorder> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let recorder = RefCell::new(Recorder::new(measure_from, measure_until));
    runtime.block_on(async {
        let connections = slots.into_iter().map(|pacer| {
            let recorder = &recorder;
            async move {
                match protocol {
                    Protocol::Http1 => http1::run_connection(context, recorder, pacer).await,
                    Protocol::H2c | Protocol::GrpcUnary | Protocol::GrpcStream => {
                        http2::run_connection(context, recorder, pacer).await
                    }
                }
            }
        });
        join_all(connections).await;
    });
    Ok(recorder.into_inner())
}
