//! The results in formats that benchmark dashboards read: bencher's Bencher Metric Format
//! (BMF) and github-action-benchmark's `customSmallerIsBetter` list. Only metrics that
//! judge a run (those with a [`Direction`]) are exported.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    catalogue::{Direction, direction},
    results::{Case, Metric, ResultFile},
};

/// The name of a case in an export or a comparison: `group variant [k=v,...]` (the paths
/// of its histogram files left out).
pub fn case_name(case: &Case) -> String {
    let params: Vec<String> = case
        .params
        .iter()
        .filter(|(k, _)| k.as_str() != "hgrm")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if params.is_empty() {
        return format!("{} {}", case.group, case.variant);
    }
    format!("{} {} [{}]", case.group, case.variant, params.join(","))
}

/// Every exported (case, metric name, metric, direction) of `files`, in file order.
fn judged(files: &[ResultFile]) -> impl Iterator<Item = (&Case, &str, &Metric, Direction)> {
    files.iter().flat_map(|file| {
        file.cases.iter().flat_map(|case| {
            case.metrics.iter().filter_map(move |(name, metric)| {
                let direction = direction(name)?;
                metric
                    .median
                    .is_finite()
                    .then_some((case, name.as_str(), metric, direction))
            })
        })
    })
}

/// One measure of a BMF benchmark.
#[derive(Debug, Serialize, PartialEq)]
pub struct BmfMetric {
    /// The median.
    pub value: f64,
    /// The smallest sample.
    pub lower_value: f64,
    /// The largest sample.
    pub upper_value: f64,
}

/// Bencher Metric Format: benchmark name → measure (our metric name) → value and range.
pub fn bmf(files: &[ResultFile]) -> BTreeMap<String, BTreeMap<String, BmfMetric>> {
    let mut out: BTreeMap<String, BTreeMap<String, BmfMetric>> = BTreeMap::new();
    for (case, name, metric, _) in judged(files) {
        out.entry(case_name(case)).or_default().insert(
            name.to_owned(),
            BmfMetric {
                value: metric.median,
                lower_value: metric.min,
                upper_value: metric.max,
            },
        );
    }
    out
}

/// One entry of github-action-benchmark's custom JSON.
#[derive(Debug, Serialize, PartialEq)]
pub struct ActionEntry {
    /// `case — metric`.
    pub name: String,
    /// The metric's unit.
    pub unit: String,
    /// The median.
    pub value: f64,
    /// Half the spread of the samples, as `± x`.
    pub range: String,
    /// Where the value comes from.
    pub extra: String,
}

/// github-action-benchmark's `customSmallerIsBetter` list: every metric where less is
/// better. Returns the list and how many metrics were left out because more is better.
pub fn github_action_benchmark(files: &[ResultFile]) -> (Vec<ActionEntry>, usize) {
    let mut entries = Vec::new();
    let mut bigger = 0;
    for (case, name, metric, direction) in judged(files) {
        if direction == Direction::BiggerIsBetter {
            bigger += 1;
            continue;
        }
        let suite = files
            .iter()
            .find(|f| f.cases.iter().any(|c| std::ptr::eq(c, case)))
            .map(|f| f.suite.as_str())
            .unwrap_or_default();
        entries.push(ActionEntry {
            name: format!("{} — {name}", case_name(case)),
            unit: metric.unit.clone(),
            value: metric.median,
            range: format!("± {}", (metric.max - metric.min) / 2.0),
            extra: format!("{suite}: {} sample(s)", metric.samples.len().max(1)),
        });
    }
    (entries, bigger)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Side;

    fn files() -> Vec<ResultFile> {
        let mut file = ResultFile::new("load", "test");
        file.cases.push(
            Case::new("load/client", "pooled", Some(Side::Optimized))
                .param("protocol", "http1")
                .metric(
                    "capacity",
                    Metric::from_samples("msg/s", vec![10.0, 12.0, 11.0]),
                )
                .metric("p99", Metric::from_samples("ms", vec![2.0, 4.0, 3.0]))
                .metric("errors", Metric::exact("requests", 0.0)),
        );
        vec![file]
    }

    #[test]
    fn bmf_names_each_case_once_with_every_judged_metric() {
        let bmf = bmf(&files());
        let case = &bmf["load/client pooled [protocol=http1]"];
        assert_eq!(
            case.len(),
            2,
            "errors describe the run, they are not exported"
        );
        assert_eq!(
            case["p99"],
            BmfMetric {
                value: 3.0,
                lower_value: 2.0,
                upper_value: 4.0
            }
        );
    }

    #[test]
    fn the_action_list_keeps_what_is_smaller_is_better() {
        let (entries, left_out) = github_action_benchmark(&files());
        assert_eq!(left_out, 1);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].name, "load/client pooled [protocol=http1] — p99");
        assert_eq!(entries[0].unit, "ms");
        assert_eq!(entries[0].value, 3.0);
        assert_eq!(entries[0].range, "± 1");
        assert_eq!(entries[0].extra, "load: 3 sample(s)");
    }
}
