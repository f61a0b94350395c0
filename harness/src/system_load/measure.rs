//! The two measurements of one running server: its capacity (closed loop, concurrency
//! raised until the throughput stops rising) and its latency at a given rate (open loop,
//! each request timed from when it was due).

use crate::load::{self, Mode, Protocol, Report, RunOptions, Scenario, scenario::Payload};

/// A level counts as a rise only when it beats the best so far by this factor; the sweep
/// stops at the first level that does not (the machine's noise is ±10% between runs, so a
/// smaller step would chase noise).
const RISE: f64 = 1.05;

/// Messages per gRPC stream in every run.
pub(crate) const MESSAGES_PER_STREAM: u32 = 64;

/// Closed-loop concurrency levels, as (connections, requests in flight per connection):
/// HTTP/1.1 adds connections, HTTP/2 adds streams on a few connections.
fn levels(protocol: Protocol) -> &'static [(u32, u32)] {
    match protocol {
        Protocol::Http1 => &[(4, 1), (16, 1), (64, 1), (128, 1), (256, 1)],
        Protocol::H2c | Protocol::GrpcUnary => &[(4, 1), (4, 4), (4, 16), (4, 32), (4, 64)],
        Protocol::GrpcStream => &[(1, 1), (2, 1), (2, 2), (2, 4), (2, 8)],
    }
}

/// What one side sustained at its best level.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Capacity {
    /// Messages per second.
    pub(crate) rate: f64,
    /// Requests in flight at that level.
    pub(crate) concurrency: u32,
    /// The server's CPU time over the window, in cores.
    pub(crate) cpu_share: Option<f64>,
    /// The server's CPU time per message, in microseconds.
    pub(crate) cpu_per_msg: Option<f64>,
    /// The server's peak resident memory, in bytes.
    pub(crate) peak_rss: Option<u64>,
    /// Failed and refused requests at that level.
    pub(crate) errors: u64,
}

impl Capacity {
    fn of(report: &Report, concurrency: u32) -> Capacity {
        let cpu = report.target.and_then(|t| t.cpu_seconds);
        Capacity {
            rate: report.throughput.messages_per_sec,
            concurrency,
            cpu_share: cpu.map(|cpu| cpu / report.window_secs.max(f64::EPSILON)),
            cpu_per_msg: cpu.and_then(|cpu| {
                (report.requests.messages > 0).then(|| cpu * 1e6 / report.requests.messages as f64)
            }),
            peak_rss: report.target.and_then(|t| t.peak_rss_bytes),
            errors: report.requests.errors + report.requests.rejected,
        }
    }
}

/// How long each run of a measurement lasts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) seconds: f64,
    pub(crate) warmup: f64,
}

/// Raises the closed-loop concurrency against `target` until the throughput stops rising;
/// the best level wins.
pub(crate) fn capacity(
    protocol: Protocol,
    target: &str,
    pid: u32,
    timing: Timing,
) -> anyhow::Result<Capacity> {
    let mut best: Option<Capacity> = None;
    for &(connections, in_flight) in levels(protocol) {
        let scenario = Scenario {
            connections,
            in_flight,
            ..base(protocol, target, timing)
        };
        let report = load::run(&scenario, &options(pid))?;
        let now = Capacity::of(&report, connections * in_flight);
        let rose = best.is_none_or(|best| now.rate > best.rate * RISE);
        if best.is_none_or(|best| now.rate > best.rate) {
            best = Some(now);
        }
        if !rose {
            break;
        }
    }
    best.ok_or_else(|| anyhow::anyhow!("no concurrency level for {protocol:?}"))
}

/// An open loop at `rate` messages per second against `target`, timed from each request's
/// due time, on enough connections that the generator never waits for a free one; the
/// report and the whole latency histogram.
pub(crate) fn latency(
    protocol: Protocol,
    target: &str,
    pid: u32,
    rate: f64,
    timing: Timing,
) -> anyhow::Result<load::Measured> {
    let (connections, in_flight) = match protocol {
        Protocol::Http1 => (256, 1),
        Protocol::H2c | Protocol::GrpcUnary => (4, 64),
        Protocol::GrpcStream => (2, 8),
    };
    let per_request = match protocol {
        Protocol::GrpcStream => f64::from(MESSAGES_PER_STREAM),
        _ => 1.0,
    };
    let scenario = Scenario {
        mode: Mode::Open,
        rate: Some(rate / per_request),
        connections,
        in_flight,
        precise_timing: true,
        ..base(protocol, target, timing)
    };
    Ok(load::measure(&scenario, &options(pid))?)
}

fn base(protocol: Protocol, target: &str, timing: Timing) -> Scenario {
    Scenario {
        duration_secs: timing.seconds,
        warmup_secs: timing.warmup,
        timeout_ms: 5000,
        payload: Payload {
            messages_per_stream: MESSAGES_PER_STREAM,
            ..Payload::default()
        },
        ..Scenario::closed("system-load", protocol, target)
    }
}

fn options(pid: u32) -> RunOptions {
    RunOptions {
        target_pid: Some(pid),
    }
}
