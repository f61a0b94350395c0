//! The regression gate's rules, applied to deterministic counts only (instructions and
//! allocations per operation; wall-clock figures are reported, never gated):
//!
//! 1. a case is more than `tolerance` worse than in the committed baseline;
//! 2. an optimized variant that beat its baseline variant in the committed baseline no
//!    longer does;
//! 3. a count that was zero (the pooled queue's allocations per message) is not zero any more;
//! 4. a case of the baseline is missing from the current run (rerun with `--save` after
//!    renaming or removing one on purpose).

use std::fmt;

use crate::{
    cases::Suite,
    pairs,
    results::{Case, ResultFile, Side},
};

/// The metrics the gate compares.
pub const GATED_METRICS: [&str; 2] = ["instructions_per_op", "allocs_per_op"];

/// The suites that measure the gated counts (the gate runs them, or reads their files).
pub const GATED_SUITES: [Suite; 2] = [Suite::Callgrind, Suite::Allocations];

/// One broken rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Finding {
    /// `group variant [params]` of the case.
    pub case: String,
    /// The metric concerned.
    pub metric: String,
    /// What went wrong.
    pub rule: Rule,
    /// The committed value.
    pub baseline: f64,
    /// The value now.
    pub current: f64,
}

/// Which rule a finding breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// More than the tolerance worse.
    Regressed,
    /// The optimized variant no longer beats the baseline variant (`baseline` and `current`
    /// are then the baseline variant's and the optimized variant's current values).
    NoLongerBeatsBaseline,
    /// Was zero, is not.
    NoLongerZero,
    /// Not measured any more.
    Missing,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::Regressed => "regressed",
            Rule::NoLongerBeatsBaseline => "no longer beats its baseline",
            Rule::NoLongerZero => "no longer zero",
            Rule::Missing => "missing",
        })
    }
}

fn label(case: &Case) -> String {
    if case.params.is_empty() {
        format!("{} {}", case.group, case.variant)
    } else {
        let params: Vec<String> = case
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{} {} [{}]", case.group, case.variant, params.join(","))
    }
}

fn same_case(a: &Case, b: &Case) -> bool {
    a.group == b.group && a.variant == b.variant && a.params == b.params
}

fn value(case: &Case, metric: &str) -> Option<f64> {
    case.metrics.get(metric).map(|m| m.median)
}

/// Checks `current` against `committed`; an empty list means the gate passes.
pub fn compare(committed: &ResultFile, current: &ResultFile, tolerance: f64) -> Vec<Finding> {
    let mut findings = Vec::new();
    for base in &committed.cases {
        let now = current.cases.iter().find(|c| same_case(c, base));
        for metric in GATED_METRICS {
            let Some(was) = value(base, metric) else {
                continue;
            };
            let Some(is) = now.and_then(|c| value(c, metric)) else {
                findings.push(Finding {
                    case: label(base),
                    metric: metric.into(),
                    rule: Rule::Missing,
                    baseline: was,
                    current: f64::NAN,
                });
                continue;
            };
            let rule = if was == 0.0 && is > 0.0 {
                Some(Rule::NoLongerZero)
            } else if is > was * (1.0 + tolerance) {
                Some(Rule::Regressed)
            } else {
                None
            };
            if let Some(rule) = rule {
                findings.push(Finding {
                    case: label(base),
                    metric: metric.into(),
                    rule,
                    baseline: was,
                    current: is,
                });
            }
        }
    }
    findings.extend(lost_pairs(committed, current));
    findings
}

/// The side of `case` in its pair, as the catalogue has it.
fn side(case: &Case) -> Option<Side> {
    pairs::side(&case.group, &case.variant)
}

/// Rule 2: pairs whose optimized side beat the baseline side in `committed`.
fn lost_pairs(committed: &ResultFile, current: &ResultFile) -> Vec<Finding> {
    let mut findings = Vec::new();
    for optimized in committed
        .cases
        .iter()
        .filter(|c| side(c) == Some(Side::Optimized))
    {
        let Some(reference) = committed.cases.iter().find(|c| {
            side(c) == Some(Side::Baseline)
                && c.group == optimized.group
                && c.params == optimized.params
        }) else {
            continue;
        };
        for metric in GATED_METRICS {
            let (Some(opt_was), Some(ref_was)) =
                (value(optimized, metric), value(reference, metric))
            else {
                continue;
            };
            if opt_was >= ref_was {
                continue;
            }
            let now = |case: &Case| {
                current
                    .cases
                    .iter()
                    .find(|c| same_case(c, case))
                    .and_then(|c| value(c, metric))
            };
            if let (Some(opt_is), Some(ref_is)) = (now(optimized), now(reference))
                && opt_is >= ref_is
            {
                findings.push(Finding {
                    case: label(optimized),
                    metric: metric.into(),
                    rule: Rule::NoLongerBeatsBaseline,
                    baseline: ref_is,
                    current: opt_is,
                });
            }
        }
    }
    findings
}

/// The findings as a table for a person.
pub fn table(findings: &[Finding]) -> String {
    let mut out = format!(
        "{:<44} {:<20} {:>16} {:>16} {:>8}  rule\n",
        "case", "metric", "baseline", "current", "change"
    );
    for f in findings {
        let change = if f.baseline > 0.0 {
            format!("{:+.1}%", (f.current / f.baseline - 1.0) * 100.0)
        } else {
            "-".to_owned()
        };
        out.push_str(&format!(
            "{:<44} {:<20} {:>16.2} {:>16.2} {:>8}  {}\n",
            f.case, f.metric, f.baseline, f.current, change, f.rule
        ));
    }
    out
}
