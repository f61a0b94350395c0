//! The end-to-end pairs of `results/load.json`: capacity and latency side by side, and the
//! targets against the bare servers.

use serde::Serialize;
use study::{
    catalogue::{LOADS, saturated},
    results::{Case, Side},
};

use super::{Evidence, Target, short};

/// One pair, baseline → optimized, as the report's end-to-end table shows it.
#[derive(Debug, Serialize)]
pub(crate) struct EndToEndRow {
    group: String,
    protocol: String,
    baseline: String,
    optimized: String,
    /// Capacities, `*` marking a side whose server was not saturated.
    capacity: String,
    ratio: String,
    /// Concurrency at which each side reached its capacity.
    concurrency: String,
    cpu_per_msg: String,
    /// p99 at each of [`LOADS`], baseline → optimized.
    p99: Vec<String>,
}

impl Evidence {
    fn load_cases(&self) -> &[Case] {
        self.files.get("load").map_or(&[], |f| f.cases.as_slice())
    }

    /// The case of `variant` in `group` for `protocol` (any protocol when `None`) with
    /// these further params.
    pub(super) fn load_case(
        &self,
        group: &str,
        variant: &str,
        protocol: Option<&str>,
        params: &[(&str, &str)],
    ) -> Option<&Case> {
        self.load_cases().iter().find(|c| {
            c.group == group
                && c.variant == variant
                && protocol.is_none_or(|p| c.params.get("protocol").map(String::as_str) == Some(p))
                && params
                    .iter()
                    .all(|(k, v)| c.params.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// Every optimized side of every load pair against its baseline.
    pub(crate) fn end_to_end(&self) -> Vec<EndToEndRow> {
        self.load_cases()
            .iter()
            .filter(|c| c.side == Some(Side::Optimized) && is(c, "measure", "capacity"))
            .filter_map(|optimized| {
                let protocol = optimized.params.get("protocol")?.as_str();
                // A baseline of the same protocol, or the group's only one (load/ingress
                // compares protocols).
                let baseline = self.load_cases().iter().find(|c| {
                    c.group == optimized.group
                        && c.side == Some(Side::Baseline)
                        && is(c, "measure", "capacity")
                        && is(c, "protocol", protocol)
                });
                let baseline = baseline.or_else(|| {
                    self.load_cases().iter().find(|c| {
                        c.group == optimized.group
                            && c.side == Some(Side::Baseline)
                            && is(c, "measure", "capacity")
                    })
                })?;
                let base_protocol = baseline.params.get("protocol").map(String::as_str);
                let p99 = LOADS
                    .iter()
                    .map(|load| {
                        let load = format!("{:.0}%", load * 100.0);
                        let latency = [("measure", "latency"), ("load", load.as_str())];
                        let of = |c: Option<&Case>| c.and_then(|c| median(c, "p99"));
                        let b = of(self.load_case(
                            &baseline.group,
                            &baseline.variant,
                            base_protocol,
                            &latency,
                        ));
                        let o = of(self.load_case(
                            &optimized.group,
                            &optimized.variant,
                            Some(protocol),
                            &latency,
                        ));
                        both(b, o, |v| format!("{v:.2}"))
                    })
                    .collect();
                Some(EndToEndRow {
                    group: optimized.group.clone(),
                    protocol: if base_protocol == Some(protocol) {
                        protocol.to_owned()
                    } else {
                        format!("{} → {protocol}", base_protocol.unwrap_or("?"))
                    },
                    baseline: baseline.variant.clone(),
                    optimized: optimized.variant.clone(),
                    capacity: format!("{} → {}", capacity_text(baseline), capacity_text(optimized)),
                    ratio: match (median(baseline, "capacity"), median(optimized, "capacity")) {
                        (Some(b), Some(o)) if b > 0.0 => format!("{:.2}", o / b),
                        _ => "–".to_owned(),
                    },
                    concurrency: both(
                        median(baseline, "concurrency"),
                        median(optimized, "concurrency"),
                        |v| format!("{v:.0}"),
                    ),
                    cpu_per_msg: both(
                        median(baseline, "server_cpu_per_msg"),
                        median(optimized, "server_cpu_per_msg"),
                        |v| format!("{v:.1}"),
                    ),
                    p99,
                })
            })
            .collect()
    }

    /// The system against the bare servers: capacity ratios per protocol, p99 at half the
    /// system's capacity, and the system's peak memory at capacity.
    pub(crate) fn end_to_end_targets(&self) -> Vec<Target> {
        let mut targets: Vec<Target> = [
            (
                "HTTP/1.1 ingest against the bare server (capacity)",
                "http1",
                0.7,
                "≥ 0.70× bare",
            ),
            (
                "h2c ingest against the bare server (capacity)",
                "h2c",
                0.7,
                "≥ 0.70× bare",
            ),
            (
                "gRPC unary against the bare server (capacity)",
                "grpc-unary",
                0.6,
                "≥ 0.60× bare",
            ),
            (
                "gRPC stream against the bare server (capacity)",
                "grpc-stream",
                0.5,
                "≥ 0.50× bare",
            ),
        ]
        .into_iter()
        .map(|(what, protocol, least, target)| {
            let ratio = self.vs_bare(protocol, &[("measure", "capacity")], "capacity");
            // A miss says by how much and what the profile blames.
            let measured = |r: f64| match self.blame(protocol) {
                Some(blame) if r < least => {
                    format!("{r:.2}× bare, {:.2} short; most CPU: {blame}", least - r)
                }
                _ if r < least => format!("{r:.2}× bare, {:.2} short", least - r),
                _ => format!("{r:.2}× bare"),
            };
            Target {
                what,
                target,
                measured: ratio.map_or_else(|| "not measured".to_owned(), measured),
                met: ratio.map(|r| r >= least),
                evidence: evidence_of(
                    ratio,
                    &format!("results/load.json: load/vs_bare {protocol}"),
                ),
            }
        })
        .collect();
        let half = [("measure", "latency"), ("load", "50%")];
        let p99: Vec<(&str, f64)> = ["http1", "h2c", "grpc-unary", "grpc-stream"]
            .into_iter()
            .filter_map(|p| Some((p, self.vs_bare(p, &half, "p99")?)))
            .collect();
        targets.push(Target {
            what: "p99 at 50% of the system's capacity against the bare server at that rate",
            target: "≤ 2× bare",
            measured: if p99.is_empty() {
                "not measured".to_owned()
            } else {
                p99.iter()
                    .map(|(p, r)| format!("{p} {r:.2}×"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            met: (!p99.is_empty()).then(|| p99.iter().all(|(_, r)| *r <= 2.0)),
            evidence: evidence_of(p99.first(), "results/load.json: load/vs_bare, load=50%"),
        });
        let rss = self
            .load_cases()
            .iter()
            .filter(|c| c.group == "load/vs_bare" && c.variant == "system")
            .filter_map(|c| median(c, "server_peak_rss"))
            .reduce(f64::max);
        targets.push(Target {
            what: "Peak memory of the system at capacity",
            target: "≤ 32 MiB",
            measured: rss.map_or_else(
                || "not measured".to_owned(),
                |b| format!("{:.1} MiB", b / f64::from(1 << 20)),
            ),
            met: rss.map(|b| b <= f64::from(32 << 20)),
            evidence: evidence_of(rss, "results/load.json: load/vs_bare system, peak RSS"),
        });
        targets
    }

    /// system ÷ bare of `metric` for `protocol`.
    fn vs_bare(&self, protocol: &str, params: &[(&str, &str)], metric: &str) -> Option<f64> {
        let of = |variant| {
            median(
                self.load_case("load/vs_bare", variant, Some(protocol), params)?,
                metric,
            )
        };
        let (bare, system) = (of("bare")?, of("system")?);
        (bare > 0.0).then(|| system / bare)
    }
}

fn is(case: &Case, key: &str, value: &str) -> bool {
    case.params.get(key).map(String::as_str) == Some(value)
}

pub(super) fn median(case: &Case, metric: &str) -> Option<f64> {
    Some(case.metrics.get(metric)?.median)
}

/// A capacity, marked `*` when its server was not saturated.
pub(super) fn capacity_text(case: &Case) -> String {
    let Some(rate) = median(case, "capacity") else {
        return "–".to_owned();
    };
    let unsaturated = median(case, "server_cpu_share").is_some_and(|share| !saturated(share));
    format!("{}{}", short(rate), if unsaturated { "*" } else { "" })
}

fn both(b: Option<f64>, o: Option<f64>, fmt: impl Fn(f64) -> String) -> String {
    let text = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), &fmt);
    format!("{} → {}", text(b), text(o))
}

fn evidence_of<T>(value: Option<T>, source: &str) -> String {
    if value.is_some() {
        source.to_owned()
    } else {
        String::new()
    }
}

/// One default setting and what the study measured for it.
#[derive(Debug, Serialize)]
pub(crate) struct DefaultRow {
    setting: &'static str,
    default: String,
    pair: &'static str,
    /// The default side's capacity ÷ the other side's.
    capacity_ratio: String,
    /// p99 at half the pair's smaller capacity, default side then the other.
    p99_at_half: String,
}

/// Each pair of the load suite whose sides are a setting: the setting, its pair and the
/// variant names of its sides.
const SETTINGS: [(&str, &str, [&str; 2]); 5] = [
    ("QUEUE_TYPE", "load/queue", ["memory", "pooled"]),
    ("CLIENT_MODE", "load/client", ["baseline", "pooled"]),
    ("HOP_PROTOCOL", "load/hop_protocol", ["http1", "h2c"]),
    ("HOP_CODEC", "load/hop_codec", ["json", "protobuf"]),
    (
        "HOP_BATCH_HTTP",
        "load/hop_batching",
        ["unbatched", "batched"],
    ),
];

impl Evidence {
    /// The default of the `system` binary's setting `env`, as `defaults.json` records it
    /// (written from the binary's command-line definition, not typed here).
    fn default_setting(&self, env: &str) -> Option<String> {
        let file = self.files.get("defaults")?;
        let case = file.cases.iter().find(|c| c.variant == env)?;
        case.params.get("value").cloned()
    }

    /// The defaults of the `system` binary against the other side of their pairs.
    pub(crate) fn defaults(&self) -> Vec<DefaultRow> {
        SETTINGS
            .iter()
            .filter_map(|&(setting, group, sides)| {
                let default = self.default_setting(setting)?;
                // HOP_BATCH_HTTP is a flag: true is the batched side.
                let variant = match default.as_str() {
                    "true" => "batched",
                    "false" => "unbatched",
                    other => sides.iter().copied().find(|s| *s == other)?,
                };
                let other = sides.iter().copied().find(|s| *s != variant)?;
                let capacity = |v: &str| {
                    median(
                        self.load_case(group, v, None, &[("measure", "capacity")])?,
                        "capacity",
                    )
                };
                let p99 = |v: &str| {
                    median(
                        self.load_case(group, v, None, &[("measure", "latency"), ("load", "50%")])?,
                        "p99",
                    )
                };
                Some(DefaultRow {
                    setting,
                    default,
                    pair: group,
                    capacity_ratio: match (capacity(variant), capacity(other)) {
                        (Some(d), Some(o)) if o > 0.0 => format!("{:.2}", d / o),
                        _ => "–".to_owned(),
                    },
                    p99_at_half: both(p99(variant), p99(other), |v| format!("{v:.2}")),
                })
            })
            .collect()
    }
}
