//! What the result files prove: the pairs with their ratios, the original Definition of Done
//! as a checklist (`checklist.rs`: a box is ticked only when a file proves it, and the file is
//! named), the original success metrics and the harness targets against what was measured
//! (`targets.rs`, the thresholds from `study::targets`), what TLS on the hop costs, and what
//! replicating the NATS queue's stream costs (`queue.rs`), what one address's attacks
//! did to a client from another (`abuse.rs`), and what a stream message's worst shape costs
//! against its typical one (`shapes.rs`).

mod abuse;
mod checklist;
mod end_to_end;
mod queue;
mod shapes;
mod soak;
mod stages;
mod targets;
mod tls;

use std::collections::BTreeMap;

use serde::Serialize;
use study::{
    cases::Suite,
    results::{Case, ResultFile, Side},
    variant::Variant,
};

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
        let case = self.case(Suite::Smoke.as_str(), check, Variant::System.as_str())?;
        Some(case.metrics.get("passed")?.median == 1.0)
    }

    /// Every A/B pair of every file, with the ratio optimized / baseline of each metric.
    pub(crate) fn pairs(&self) -> Vec<PairRow> {
        let mut rows = Vec::new();
        // The load pairs have a table of their own (`end_to_end`).
        for (suite, file) in (self.files.iter()).filter(|(suite, _)| *suite != Suite::Load.as_str())
        {
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
        let Some(file) = self.files.get(Suite::Peers.as_str()) else {
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

    /// The original success metrics and the harness's own targets.
    pub(crate) fn targets(&self) -> Vec<TargetRow> {
        self.target_list()
            .into_iter()
            .chain(self.end_to_end_targets())
            .chain([self.shape_target()])
            .chain(self.abuse_targets())
            .map(|target| TargetRow {
                verdict: target.verdict(),
                target,
            })
            .collect()
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
