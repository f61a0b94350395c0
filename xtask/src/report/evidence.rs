//! What the result files prove: the pairs with their ratios, the original Definition of Done
//! as a checklist (a box is ticked only when a file proves it, and the file is named), the
//! original success metrics and the harness targets against what was measured, and what TLS
//! on the hop costs.

mod end_to_end;
mod soak;
mod stages;
mod tls;

use std::collections::BTreeMap;

use serde::Serialize;
use study::results::{Case, ResultFile, Side};

use super::svg::short;

/// Every result file of one report, by suite.
pub(crate) struct Evidence {
    pub(crate) files: BTreeMap<String, ResultFile>,
    /// Names of files in `reports/profiles/` (flamegraphs, pprof files, top lists).
    pub(crate) profiles: Vec<String>,
    /// Whether the README documents the gRPC front door.
    pub(crate) readme_has_grpc: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct PairRow {
    group: String,
    params: String,
    metric: String,
    unit: String,
    baseline: String,
    optimized: String,
    baseline_value: String,
    optimized_value: String,
    ratio: String,
    range: String,
    source: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct CheckItem {
    text: &'static str,
    done: bool,
    evidence: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct Target {
    what: &'static str,
    target: &'static str,
    measured: String,
    met: Option<bool>,
    evidence: String,
}

impl Target {
    /// `met` in words, for the template.
    fn verdict(&self) -> &'static str {
        match self.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        }
    }
}

/// A target as the template sees it.
#[derive(Debug, Serialize)]
pub(crate) struct TargetRow {
    #[serde(flatten)]
    target: Target,
    verdict: &'static str,
}

impl Evidence {
    fn case(&self, suite: &str, group: &str, variant: &str) -> Option<&Case> {
        self.files
            .get(suite)?
            .cases
            .iter()
            .find(|c| c.group == group && c.variant == variant)
    }

    fn value(&self, suite: &str, group: &str, variant: &str, metric: &str) -> Option<f64> {
        Some(
            self.case(suite, group, variant)?
                .metrics
                .get(metric)?
                .median,
        )
    }

    /// optimized / baseline of one metric of one pair.
    fn ratio(
        &self,
        suite: &str,
        group: &str,
        baseline: &str,
        optimized: &str,
        metric: &str,
    ) -> Option<f64> {
        let b = self.value(suite, group, baseline, metric)?;
        let o = self.value(suite, group, optimized, metric)?;
        (b > 0.0).then_some(o / b)
    }

    fn has_profile(&self, suffix: &str) -> bool {
        self.profiles.iter().any(|p| p.ends_with(suffix))
    }

    fn smoke(&self, check: &str) -> Option<bool> {
        let case = self.case("smoke", check, "system")?;
        Some(case.metrics.get("passed")?.median == 1.0)
    }

    /// Every A/B pair of every file, with the ratio optimized / baseline of each metric.
    pub(crate) fn pairs(&self) -> Vec<PairRow> {
        let mut rows = Vec::new();
        // The load pairs have a table of their own (`end_to_end`).
        for (suite, file) in self.files.iter().filter(|(suite, _)| *suite != "load") {
            for optimized in file
                .cases
                .iter()
                .filter(|c| c.side == Some(Side::Optimized))
            {
                let Some(baseline) = file.cases.iter().find(|c| {
                    c.side == Some(Side::Baseline)
                        && c.group == optimized.group
                        && c.params == optimized.params
                }) else {
                    continue;
                };
                for (name, metric) in &optimized.metrics {
                    let Some(base) = baseline.metrics.get(name) else {
                        continue;
                    };
                    if name.ends_with("_total") || base.median == 0.0 && metric.median == 0.0 {
                        continue;
                    }
                    let ratio = if base.median > 0.0 {
                        format!("{:.2}", metric.median / base.median)
                    } else {
                        "–".into()
                    };
                    rows.push(PairRow {
                        group: optimized.group.clone(),
                        params: optimized
                            .params
                            .iter()
                            .filter(|(k, _)| k.as_str() != "operations")
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        metric: name.clone(),
                        unit: metric.unit.clone(),
                        baseline: baseline.variant.clone(),
                        optimized: optimized.variant.clone(),
                        baseline_value: with_range(base),
                        optimized_value: with_range(metric),
                        ratio,
                        range: round_ratios(&base.samples, &metric.samples),
                        source: format!("results/{suite}.json"),
                    });
                }
            }
        }
        rows
    }

    /// Every ratio case of the peers run (`ours/wrk`, `gateway/bare`, ...).
    pub(crate) fn peers(&self) -> Vec<serde_json::Value> {
        let Some(file) = self.files.get("peers") else {
            return Vec::new();
        };
        file.cases
            .iter()
            .filter_map(|c| {
                let ratio = c.metrics.get("throughput_ratio")?;
                Some(serde_json::json!({
                    "group": c.group,
                    "ratio_of": c.variant,
                    "ratio": format!("{:.2}", ratio.median),
                    "range": format!("{:.2}..{:.2}", ratio.min, ratio.max),
                }))
            })
            .collect()
    }

    /// The generator must never be the bottleneck: its rate on the bare server at least the
    /// peer tool's.
    fn generator_target(
        &self,
        what: &'static str,
        group: &str,
        variant: &str,
        tool: &str,
    ) -> Target {
        let ratio = self.peer_ratio(group, variant);
        Target {
            what,
            target: "rate ≥ the tool's",
            measured: ratio.map_or_else(
                || "not measured".to_owned(),
                |r| format!("{r:.2}× {tool}'s rate"),
            ),
            met: ratio.map(|r| r >= 1.0),
            evidence: if ratio.is_some() {
                format!("results/peers.json: {group}")
            } else {
                String::new()
            },
        }
    }

    fn peer_ratio(&self, group: &str, variant: &str) -> Option<f64> {
        Some(
            self.case("peers", group, variant)?
                .metrics
                .get("throughput_ratio")?
                .median,
        )
    }

    /// The original Definition of Done.
    pub(crate) fn checklist(&self) -> Vec<(&'static str, Vec<CheckItem>)> {
        let item = |text, proof: Option<String>, missing: &str| CheckItem {
            text,
            done: proof.is_some(),
            evidence: proof.unwrap_or_else(|| format!("not proven: {missing}")),
        };
        let pool_runs = self
            .case("criterion", "worker_pool", "memory")
            .map(|c| c.metrics["time_per_op"].samples.len());
        let suites: Vec<&str> = ["criterion", "callgrind", "allocations"]
            .into_iter()
            .filter(|s| self.files.contains_key(*s))
            .collect();
        let components = study::catalogue::COMPONENTS;
        let profiled: Vec<&str> = components
            .iter()
            .copied()
            .filter(|c| self.has_profile(&format!("{c}.pb")))
            .collect();
        let flamegraphs = components
            .iter()
            .filter(|c| self.has_profile(&format!("{c}.svg")))
            .count();
        let queue_allocs = self.value(
            "allocations",
            "queue/publish_consume",
            "pooled",
            "allocs_per_op",
        );
        let queue_allocs_base = self.value(
            "allocations",
            "queue/publish_consume",
            "memory",
            "allocs_per_op",
        );
        let pool_time = self.ratio(
            "criterion",
            "queue/publish_consume",
            "memory",
            "pooled",
            "time_per_op",
        );
        let mode_time = self.ratio(
            "criterion",
            "client/mode",
            "baseline",
            "pooled",
            "time_per_op",
        );
        let mode_bytes = self.ratio(
            "allocations",
            "client/mode",
            "baseline",
            "pooled",
            "bytes_per_op",
        );
        vec![
            ("Step 6: profiling", vec![
                item("BenchmarkWorkerPool completes", pool_runs.map(|n| format!("results/criterion.json: worker_pool, {n} rounds per queue")), "no worker_pool case in results/criterion.json"),
                item("All benchmarks run without errors", (suites.len() == 3).then(|| format!("results/{{{}}}.json written by complete runs", suites.join(","))), "a suite's result file is missing"),
                item("CPU profiles for every component", (profiled.len() == components.len()).then(|| format!("profiles/*.pb for {} components", profiled.len())), &format!("{} of {} components profiled (`cargo xtask profile`)", profiled.len(), components.len())),
                item("Memory profiles show the optimizations", queue_allocs.zip(queue_allocs_base).filter(|(p, m)| p < m).map(|(p, m)| format!("results/allocations.json: queue {} → {} allocations per message", short(m), short(p))), "no allocation counts of the queue pair"),
                item("Hot paths identified and documented", self.has_profile(".top.json").then(|| "profiles/*.top.json, summarized below".to_owned()), "no profile top lists (`cargo xtask profile`)"),
                item("Flame graphs created", (flamegraphs > 0).then(|| format!("profiles/*.svg ({flamegraphs})")), "no flame graphs (`cargo xtask profile`)"),
                item("Object pool for DataMessage", queue_allocs.filter(|a| *a == 0.0).and(pool_time).filter(|r| *r < 1.0).map(|r| format!("results/allocations.json: 0 allocations per message; results/criterion.json: {r:.2}× the baseline's time")), "no measurement of the pooled queue"),
            ]),
            ("Step 7: network", vec![
                item("gRPC server works (port 50051)", self.smoke("grpc_reflection").filter(|ok| *ok).map(|_| "results/smoke.json: reflection lists diplom.v1.IngestService".to_owned()), "no passing gRPC check in results/smoke.json (`cargo xtask smoke`)"),
                item("HTTP/2 works (curl --http2-prior-knowledge)", self.smoke("h2c_health").filter(|ok| *ok).map(|_| "results/smoke.json: /health over h2c prior knowledge".to_owned()), "no passing h2c check in results/smoke.json (`cargo xtask smoke`)"),
                item("Connection pooling (200 idle connections per host)", mode_time.filter(|r| *r < 1.0).map(|r| format!("results/criterion.json: pooled client {r:.2}× the baseline's time per message")), "no client/mode pair in results/criterion.json"),
                item("Trace endpoint shows latency phases", self.smoke("trace").filter(|ok| *ok).map(|_| "results/smoke.json: /api/v1/trace answered with its phases".to_owned()), "no passing trace check in results/smoke.json (`cargo xtask smoke`)"),
                item("Buffer pools for request encoding", mode_bytes.filter(|r| *r < 1.0).map(|r| format!("results/allocations.json: pooled client allocates {r:.2}× the baseline's bytes per message")), "no client/mode allocation counts"),
                item("All tests pass", None, "test runs are not recorded in a result file (CI runs them on every change)"),
            ]),
            ("Documentation", vec![
                item("This report", Some("rendered by `cargo xtask report` from results/*.json".to_owned()), ""),
                item("README documents the gRPC endpoint", self.readme_has_grpc.then(|| "README.md, section gRPC".to_owned()), "README.md has no gRPC section"),
                item("Commands for every step", Some("`cargo xtask bench | profile | report | gate | smoke` replace the Makefile targets".to_owned()), ""),
            ]),
        ]
    }

    /// The original success metrics and the harness's own targets.
    pub(crate) fn targets(&self) -> Vec<TargetRow> {
        self.target_list()
            .into_iter()
            .chain(self.end_to_end_targets())
            .map(|target| TargetRow {
                verdict: target.verdict(),
                target,
            })
            .collect()
    }

    fn target_list(&self) -> Vec<Target> {
        let at_most = |what,
                       target: &'static str,
                       value: Option<f64>,
                       limit: f64,
                       fmt: &dyn Fn(f64) -> String,
                       evidence: &str| Target {
            what,
            target,
            measured: value.map_or_else(|| "not measured".to_owned(), fmt),
            met: value.map(|v| v <= limit),
            evidence: if value.is_some() {
                evidence.to_owned()
            } else {
                String::new()
            },
        };
        let ratio_fmt = |r: f64| format!("{r:.2}× the baseline");
        let queue_time = self.ratio(
            "criterion",
            "queue/publish_consume",
            "memory",
            "pooled",
            "time_per_op",
        );
        let queue_allocs = self.ratio(
            "allocations",
            "queue/publish_consume",
            "memory",
            "pooled",
            "allocs_per_op",
        );
        let handoff = self.ratio(
            "criterion",
            "queue/threads",
            "memory",
            "pooled",
            "time_per_op",
        );
        let handoff = self
            .files
            .get("criterion")
            .and_then(|f| {
                let find = |v: &str| {
                    f.cases.iter().find(|c| {
                        c.group == "queue/threads"
                            && c.variant == v
                            && c.params.get("producers").map(String::as_str) == Some("1")
                            && c.params.get("consumers").map(String::as_str) == Some("1")
                    })
                };
                let m = find("memory")?.metrics.get("time_per_op")?.median;
                let p = find("pooled")?.metrics.get("time_per_op")?.median;
                (m > 0.0).then_some(p / m)
            })
            .or(handoff);
        let pool_ns = self.value("criterion", "worker_pool", "pooled", "time_per_op");
        let pool_ns_memory = self.value("criterion", "worker_pool", "memory", "time_per_op");
        let pool_best = pool_ns.into_iter().chain(pool_ns_memory).reduce(f64::min);
        let reuse_under_load = self.value("load", "load/client", "pooled", "connection_reuse");
        let reuse = reuse_under_load.or(self.value(
            "allocations",
            "client/mode",
            "pooled",
            "connection_reuse",
        ));
        let reuse_source = if reuse_under_load.is_some() {
            "results/load.json: load/client pooled, under load"
        } else {
            "results/allocations.json: client/mode pooled, sequential"
        };
        let faster: Vec<String> = self
            .pairs()
            .into_iter()
            .filter(|row| row.metric == "time_per_op")
            .filter_map(|row| {
                row.ratio
                    .parse::<f64>()
                    .ok()
                    .filter(|r| *r <= 0.8)
                    .map(|r| format!("{} {} ({r:.2})", row.group, row.optimized))
            })
            .collect();
        vec![
            Target {
                what: "Benchmarks 20–50% faster",
                target: "ratio ≤ 0.80",
                measured: if faster.is_empty() {
                    "no pair".to_owned()
                } else {
                    faster.join("; ")
                },
                met: self
                    .files
                    .contains_key("criterion")
                    .then_some(!faster.is_empty()),
                evidence: "results/criterion.json".to_owned(),
            },
            at_most(
                "Allocations −30% (queue pair)",
                "ratio ≤ 0.70",
                queue_allocs,
                0.7,
                &ratio_fmt,
                "results/allocations.json",
            ),
            Target {
                what: "Connection reuse > 80% (pooled client)",
                target: "> 0.80 (harness target ≥ 0.99)",
                measured: reuse.map_or_else(
                    || "not measured".to_owned(),
                    |r| format!("{:.1}%", r * 100.0),
                ),
                met: reuse.map(|r| r > 0.8),
                evidence: if reuse.is_some() {
                    reuse_source.to_owned()
                } else {
                    String::new()
                },
            },
            Target {
                what: "Connection reuse under load (pooled client)",
                target: "≥ 0.99",
                measured: reuse_under_load.map_or_else(
                    || "not measured".to_owned(),
                    |r| format!("{:.2}%", r * 100.0),
                ),
                met: reuse_under_load.map(|r| r >= 0.99),
                evidence: if reuse_under_load.is_some() {
                    "results/load.json: load/client pooled".to_owned()
                } else {
                    String::new()
                },
            },
            at_most(
                "Pooled queue time per publish+consume",
                "≤ 0.60× the baseline",
                queue_time,
                0.6,
                &ratio_fmt,
                "results/criterion.json",
            ),
            Target {
                what: "Pooled queue allocations once warm",
                target: "0 per message",
                measured: self
                    .value(
                        "allocations",
                        "queue/publish_consume",
                        "pooled",
                        "allocs_per_op",
                    )
                    .map_or_else(|| "not measured".to_owned(), |a| format!("{a} per message")),
                met: self
                    .value(
                        "allocations",
                        "queue/publish_consume",
                        "pooled",
                        "allocs_per_op",
                    )
                    .map(|a| a == 0.0),
                evidence: "results/allocations.json".to_owned(),
            },
            at_most(
                "Cross-thread hand-off (1 producer → 1 consumer)",
                "pooled ≤ 0.20× the baseline (5× cheaper)",
                handoff,
                0.2,
                &ratio_fmt,
                "results/criterion.json: queue/threads p1 c1",
            ),
            self.generator_target(
                "Our generator against wrk (HTTP/1.1, bare server)",
                "peers/http1",
                "ours/wrk",
                "wrk",
            ),
            self.generator_target(
                "Our generator against h2load (h2c, bare server)",
                "peers/h2c",
                "ours/h2load",
                "h2load",
            ),
            self.generator_target(
                "Our generator against h2load (gRPC unary, bare server)",
                "peers/grpc_unary",
                "ours/h2load",
                "h2load",
            ),
            at_most(
                "Worker pool per message",
                "≤ 284 ns",
                pool_best,
                284.0,
                &|v| format!("{v:.0} ns (best queue)"),
                "results/criterion.json: worker_pool",
            ),
        ]
    }
}

fn with_range(metric: &study::results::Metric) -> String {
    if metric.samples.len() > 1 {
        format!(
            "{} ({}..{})",
            short(metric.median),
            short(metric.min),
            short(metric.max)
        )
    } else {
        short(metric.median)
    }
}

/// min..max of the round-by-round ratios, when both sides have samples from the same rounds.
fn round_ratios(baseline: &[f64], optimized: &[f64]) -> String {
    if baseline.len() < 2 || baseline.len() != optimized.len() {
        return String::new();
    }
    let ratios: Vec<f64> = baseline
        .iter()
        .zip(optimized)
        .filter(|(b, _)| **b > 0.0)
        .map(|(b, o)| o / b)
        .collect();
    if ratios.is_empty() {
        // Every baseline round measured zero: no ratio to show.
        return String::new();
    }
    let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.2}..{max:.2}")
}

#[cfg(test)]
mod round_ratio_tests {
    use super::round_ratios;

    #[test]
    fn ranges_are_taken_round_by_round_and_blank_without_a_baseline() {
        assert_eq!(round_ratios(&[2.0, 4.0], &[1.0, 1.0]), "0.25..0.50");
        assert_eq!(round_ratios(&[0.0, 0.0], &[1.0, 1.0]), "");
        assert_eq!(round_ratios(&[2.0], &[1.0]), "");
    }
}
