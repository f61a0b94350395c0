//! The report of one load run: built from the merged [`Recorder`], written as JSON (its
//! schema is `harness/schema/load-report.schema.json`) and as a table for a person. Latency
//! is that of successful requests, in microseconds, counted from when each request was due.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::{Deserialize, Serialize};

use hdrhistogram::Histogram;

use super::{
    WindowUsage,
    record::Recorder,
    scenario::{Mode, Scenario},
    usage,
};

/// Identifies the JSON format; bumped on any incompatible change.
pub const REPORT_FORMAT: &str = "load-report/1";

/// The report of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`REPORT_FORMAT`].
    pub format: String,
    /// The scenario as it ran (overrides applied).
    pub scenario: Scenario,
    /// Unix time (seconds) at which the run started.
    pub started_unix: u64,
    /// Length of the measured window, in seconds.
    pub window_secs: f64,
    /// Outcomes of the requests due inside the window.
    pub requests: Counts,
    /// Failed requests by kind (`connect`, `io`, `timeout`, `protocol`, `reset`,
    /// `http_<code>`, `grpc_<NAME>`); rejections are not errors and are not here.
    pub errors: BTreeMap<String, u64>,
    /// Rates over the window.
    pub throughput: Throughput,
    /// Latency of the successful requests, in microseconds; absent when none succeeded.
    pub latency_us: Option<Latency>,
    /// Open loop: how late requests were sent after they were due, in microseconds; part of
    /// `latency_us`. Timer granularity makes it 1-2 ms unless `precise_timing`; beyond
    /// that it is time spent waiting for a free slot while the server was slow. Absent in
    /// the closed loop.
    pub send_lag_us: Option<Latency>,
    /// Connections opened, warm-up included.
    pub connections_opened: u64,
    /// What the run cost this process.
    pub generator: GeneratorUsage,
    /// What the run cost the server, when its pid was given.
    pub target: Option<TargetUsage>,
    /// One entry per second of the window, by when requests were due.
    pub timeline: Vec<SecondReport>,
}

/// Requests by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Successful requests (for `grpc_stream`: calls).
    pub ok: u64,
    /// Requests refused for load (HTTP 503, gRPC `UNAVAILABLE`).
    pub rejected: u64,
    /// Failed requests (all kinds).
    pub errors: u64,
    /// Messages carried by the successful requests.
    pub messages: u64,
}

/// Rates over the measured window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Successful requests per second.
    pub ok_per_sec: f64,
    /// Requests per second of any outcome.
    pub attempted_per_sec: f64,
    /// Messages per second carried by successful requests.
    pub messages_per_sec: f64,
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Requests measured.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 75th percentile.
    pub p75: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

/// What the run cost the generator.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeneratorUsage {
    /// Generator threads.
    pub threads: u32,
    /// CPU seconds used inside the window.
    pub cpu_seconds: f64,
    /// Peak resident memory of the process, in bytes.
    pub peak_rss_bytes: Option<u64>,
}

/// What the run cost the server.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TargetUsage {
    /// Its pid.
    pub pid: u32,
    /// CPU seconds it used inside the window.
    pub cpu_seconds: Option<f64>,
    /// Its peak resident memory, in bytes.
    pub peak_rss_bytes: Option<u64>,
}

/// One second of the window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SecondReport {
    /// Seconds since the window opened.
    pub second: u64,
    /// Successful requests due in this second.
    pub ok: u64,
    /// Rejected requests due in this second.
    pub rejected: u64,
    /// Failed requests due in this second.
    pub errors: u64,
    /// Median latency of the successful ones, in microseconds.
    pub p50_us: Option<f64>,
    /// 99th percentile, in microseconds.
    pub p99_us: Option<f64>,
    /// Largest, in microseconds.
    pub max_us: Option<f64>,
}

impl Latency {
    /// Percentiles of a histogram of nanoseconds, in microseconds; `None` when it is empty.
    fn of(hist: &Histogram<u64>) -> Option<Latency> {
        let us = |ns: u64| ns as f64 / 1_000.0;
        (!hist.is_empty()).then(|| Latency {
            count: hist.len(),
            mean: hist.mean() / 1_000.0,
            p50: us(hist.value_at_quantile(0.50)),
            p75: us(hist.value_at_quantile(0.75)),
            p90: us(hist.value_at_quantile(0.90)),
            p99: us(hist.value_at_quantile(0.99)),
            p999: us(hist.value_at_quantile(0.999)),
            max: us(hist.max()),
        })
    }
}

impl Report {
    /// The report of a run of `scenario` from its merged record.
    pub fn new(
        scenario: &Scenario,
        started_unix: u64,
        recorder: &Recorder,
        usage: WindowUsage,
    ) -> Report {
        let window = recorder.window().as_secs_f64();
        let errors: u64 = recorder.errors.values().sum();
        let attempted = recorder.ok + recorder.rejected + errors;
        let latency = Latency::of(&recorder.latency_ns);
        let send_lag = if scenario.mode == Mode::Open {
            Latency::of(&recorder.send_lag_ns)
        } else {
            None
        };
        let timeline = recorder
            .seconds
            .iter()
            .enumerate()
            .map(|(index, second)| {
                let h = &second.latency_us;
                let some = |v: u64| (!h.is_empty()).then_some(v as f64);
                SecondReport {
                    second: index as u64,
                    ok: second.ok,
                    rejected: second.rejected,
                    errors: second.errors,
                    p50_us: some(h.value_at_quantile(0.50)),
                    p99_us: some(h.value_at_quantile(0.99)),
                    max_us: some(h.max()),
                }
            })
            .collect();
        Report {
            format: REPORT_FORMAT.to_owned(),
            scenario: scenario.clone(),
            started_unix,
            window_secs: window,
            requests: Counts {
                ok: recorder.ok,
                rejected: recorder.rejected,
                errors,
                messages: recorder.messages,
            },
            errors: recorder
                .errors
                .iter()
                .map(|(kind, count)| (kind.key(), *count))
                .collect(),
            throughput: Throughput {
                ok_per_sec: recorder.ok as f64 / window,
                attempted_per_sec: attempted as f64 / window,
                messages_per_sec: recorder.messages as f64 / window,
            },
            latency_us: latency,
            send_lag_us: send_lag,
            connections_opened: recorder.connections_opened,
            generator: GeneratorUsage {
                threads: scenario.threads,
                cpu_seconds: usage.generator_cpu_seconds,
                peak_rss_bytes: usage::self_peak_rss_bytes().ok(),
            },
            target: usage.target_pid.map(|pid| TargetUsage {
                pid,
                cpu_seconds: usage.target_cpu_seconds,
                peak_rss_bytes: usage.target_peak_rss_bytes,
            }),
            timeline,
        }
    }

    /// The report as a table for a person.
    pub fn table(&self) -> String {
        let mut out = String::new();
        self.write_scenario(&mut out);
        self.write_requests(&mut out);
        self.write_latency(&mut out);
        self.write_usage(&mut out);
        self.write_timeline(&mut out);
        out
    }

    /// The table's first lines: what ran, against what, and how long.
    fn write_scenario(&self, out: &mut String) {
        let s = &self.scenario;
        let mode = match s.rate {
            Some(rate) => format!("open loop, {rate} req/s"),
            None => "closed loop".to_owned(),
        };
        let _ = writeln!(
            out,
            "scenario {} ({}) -> {}{}\n  {mode}, {} connection(s) x {} in flight, {} thread(s), {:.1} s measured after {:.1} s warm-up",
            s.name,
            s.protocol.as_str(),
            s.target,
            s.path(),
            s.connections,
            s.in_flight,
            s.threads,
            self.window_secs,
            s.warmup_secs,
        );
    }

    /// Outcomes, messages when they differ from requests, and errors by kind.
    fn write_requests(&self, out: &mut String) {
        let r = &self.requests;
        let _ = writeln!(
            out,
            "  requests   ok {}  rejected {}  errors {}  ({:.1} ok/s, {:.1} attempted/s)",
            r.ok,
            r.rejected,
            r.errors,
            self.throughput.ok_per_sec,
            self.throughput.attempted_per_sec
        );
        if r.messages != r.ok {
            let _ = writeln!(
                out,
                "  messages   {}  ({:.1}/s)",
                r.messages, self.throughput.messages_per_sec
            );
        }
        for (kind, count) in &self.errors {
            let _ = writeln!(out, "  error      {kind}: {count}");
        }
    }

    /// Latency percentiles, and the send lag of an open loop.
    fn write_latency(&self, out: &mut String) {
        match &self.latency_us {
            Some(l) => {
                let _ = writeln!(
                    out,
                    "  latency us p50 {:.1}  p75 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  mean {:.1}",
                    l.p50, l.p75, l.p90, l.p99, l.p999, l.max, l.mean
                );
            }
            None => {
                let _ = writeln!(out, "  latency    (no successful request)");
            }
        }
        if let Some(l) = &self.send_lag_us {
            let _ = writeln!(
                out,
                "  send lag   p50 {:.1}  p99 {:.1}  max {:.1} us (due -> sent; part of the latency)",
                l.p50, l.p99, l.max
            );
        }
    }

    /// What the run cost the generator and, when known, the server.
    fn write_usage(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "  generator  {:.2} CPU s, {} connection(s) opened",
            self.generator.cpu_seconds, self.connections_opened
        );
        if let Some(t) = &self.target {
            let cpu = t
                .cpu_seconds
                .map_or_else(|| "?".to_owned(), |c| format!("{c:.2}"));
            let rss = t.peak_rss_bytes.map_or_else(
                || "?".to_owned(),
                |b| format!("{:.1}", b as f64 / 1048576.0),
            );
            let _ = writeln!(
                out,
                "  target     pid {}: {cpu} CPU s, peak RSS {rss} MiB",
                t.pid
            );
        }
    }

    /// One line per second of the window.
    fn write_timeline(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "  second        ok  rejected  errors    p50 us    p99 us"
        );
        for second in &self.timeline {
            let fmt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
            let _ = writeln!(
                out,
                "  {:>6} {:>9} {:>9} {:>7} {:>9} {:>9}",
                second.second,
                second.ok,
                second.rejected,
                second.errors,
                fmt(second.p50_us),
                fmt(second.p99_us)
            );
        }
    }
}

impl Report {
    /// The report as one result-file case (every metric a single sample).
    pub fn case(&self, group: &str, variant: &str) -> crate::results::Case {
        use crate::results::{Case, Metric};
        let s = &self.scenario;
        let mut case = Case::new(group, variant, None)
            .param("protocol", s.protocol.as_str())
            .param("mode", if s.rate.is_some() { "open" } else { "closed" })
            .param("connections", s.connections)
            .param("in_flight", s.in_flight)
            .param("threads", s.threads)
            .param("duration_secs", s.duration_secs)
            .param("warmup_secs", s.warmup_secs)
            .metric(
                "throughput",
                Metric::exact("req/s", self.throughput.ok_per_sec),
            )
            .metric(
                "attempted",
                Metric::exact("req/s", self.throughput.attempted_per_sec),
            )
            .metric("ok", Metric::exact("requests", self.requests.ok as f64))
            .metric(
                "rejected",
                Metric::exact("requests", self.requests.rejected as f64),
            )
            .metric(
                "errors",
                Metric::exact("requests", self.requests.errors as f64),
            )
            .metric(
                "connections_opened",
                Metric::exact("connections", self.connections_opened as f64),
            )
            .metric(
                "generator_cpu",
                Metric::exact("s", self.generator.cpu_seconds),
            );
        if let Some(rate) = s.rate {
            case = case.param("rate", rate);
        }
        if self.requests.messages != self.requests.ok {
            case = case.metric(
                "messages_per_sec",
                Metric::exact("msg/s", self.throughput.messages_per_sec),
            );
        }
        if let Some(l) = &self.latency_us {
            for (name, value) in [
                ("latency_p50", l.p50),
                ("latency_p75", l.p75),
                ("latency_p90", l.p90),
                ("latency_p99", l.p99),
                ("latency_p999", l.p999),
                ("latency_max", l.max),
                ("latency_mean", l.mean),
            ] {
                case = case.metric(name, Metric::exact("us", value));
            }
        }
        if let Some(target) = &self.target {
            if let Some(cpu) = target.cpu_seconds {
                case = case.metric("target_cpu", Metric::exact("s", cpu));
            }
            if let Some(rss) = target.peak_rss_bytes {
                case = case.metric("target_peak_rss", Metric::exact("bytes", rss as f64));
            }
        }
        case
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Protocol;

    /// A report with every optional part present.
    fn full() -> Report {
        let mut scenario = Scenario::closed("table", Protocol::Http1, "127.0.0.1:8080");
        scenario.rate = Some(500.0);
        scenario.path = Some("/ingest".to_owned());
        Report {
            format: REPORT_FORMAT.to_owned(),
            scenario,
            started_unix: 0,
            window_secs: 2.0,
            requests: Counts {
                ok: 10,
                rejected: 2,
                errors: 3,
                messages: 40,
            },
            errors: BTreeMap::from([("io".to_owned(), 1), ("timeout".to_owned(), 2)]),
            throughput: Throughput {
                ok_per_sec: 5.0,
                attempted_per_sec: 7.5,
                messages_per_sec: 20.0,
            },
            latency_us: Some(Latency {
                count: 10,
                mean: 12.34,
                p50: 10.0,
                p75: 11.0,
                p90: 12.0,
                p99: 13.0,
                p999: 14.0,
                max: 15.0,
            }),
            send_lag_us: Some(Latency {
                count: 10,
                mean: 1.0,
                p50: 1.0,
                p75: 1.5,
                p90: 2.0,
                p99: 2.5,
                p999: 3.0,
                max: 3.5,
            }),
            connections_opened: 4,
            generator: GeneratorUsage {
                threads: 1,
                cpu_seconds: 0.125,
                peak_rss_bytes: None,
            },
            target: Some(TargetUsage {
                pid: 42,
                cpu_seconds: Some(1.5),
                peak_rss_bytes: Some(3 * 1048576),
            }),
            timeline: vec![
                SecondReport {
                    second: 0,
                    ok: 10,
                    rejected: 2,
                    errors: 3,
                    p50_us: Some(10.4),
                    p99_us: Some(13.0),
                    max_us: Some(15.0),
                },
                SecondReport {
                    second: 1,
                    ok: 0,
                    rejected: 0,
                    errors: 0,
                    p50_us: None,
                    p99_us: None,
                    max_us: None,
                },
            ],
        }
    }

    #[test]
    fn the_table_shows_every_part_of_a_full_report() {
        let table = full().table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "scenario table (http1) -> 127.0.0.1:8080/ingest");
        let expected = [
            "  requests   ok 10  rejected 2  errors 3  (5.0 ok/s, 7.5 attempted/s)",
            "  messages   40  (20.0/s)",
            "  error      io: 1",
            "  error      timeout: 2",
            "  latency us p50 10.0  p75 11.0  p90 12.0  p99 13.0  p99.9 14.0  max 15.0  mean 12.3",
            "  send lag   p50 1.0  p99 2.5  max 3.5 us (due -> sent; part of the latency)",
            "  generator  0.12 CPU s, 4 connection(s) opened",
            "  target     pid 42: 1.50 CPU s, peak RSS 3.0 MiB",
            "  second        ok  rejected  errors    p50 us    p99 us",
            "       0        10         2       3        10        13",
            "       1         0         0       0         -         -",
        ];
        assert_eq!(&lines[2..], &expected);
        assert!(lines[1].starts_with("  open loop, 500 req/s, 1 connection(s) x "));
        assert!(table.ends_with('\n'));
    }

    #[test]
    fn the_table_says_what_a_sparse_report_lacks() {
        let mut report = full();
        report.scenario.rate = None;
        report.requests.messages = report.requests.ok;
        report.errors.clear();
        report.latency_us = None;
        report.send_lag_us = None;
        report.target = Some(TargetUsage {
            pid: 7,
            cpu_seconds: None,
            peak_rss_bytes: None,
        });
        report.timeline.clear();
        let table = report.table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[1].starts_with("  closed loop, 1 connection(s) x "));
        let expected = [
            "  requests   ok 10  rejected 2  errors 3  (5.0 ok/s, 7.5 attempted/s)",
            "  latency    (no successful request)",
            "  generator  0.12 CPU s, 4 connection(s) opened",
            "  target     pid 7: ? CPU s, peak RSS ? MiB",
            "  second        ok  rejected  errors    p50 us    p99 us",
        ];
        assert_eq!(&lines[2..], &expected);
        report.target = None;
        assert!(!report.table().contains("target"));
    }
}
