//! Two sets of results side by side, case by case: both medians, their ratio, and whether
//! the difference is larger than the spread of the rounds (the ranges of the samples do
//! not overlap) or, for an exact count, whether it changed at all.

use serde::Serialize;

use crate::{
    catalogue::{Direction, direction},
    export::case_name,
    results::{Metric, ResultFile},
};

/// What a difference amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within the spread of the rounds (or, for exact counts, equal).
    Same,
    /// Beyond the spread, in the metric's better direction.
    Better,
    /// Beyond the spread, in its worse direction.
    Worse,
    /// Beyond the spread, for a metric with no better direction.
    Changed,
}

/// One metric of one case in both sets.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    /// The result file's suite.
    pub suite: String,
    /// `group variant [params]`.
    pub case: String,
    /// The metric's name.
    pub metric: String,
    /// Its unit.
    pub unit: String,
    /// Median, smallest and largest sample in the first set.
    pub a: [f64; 3],
    /// The same in the second set.
    pub b: [f64; 3],
    /// Second median over first.
    pub ratio: f64,
    /// Whether the difference exceeds the spread, and which way.
    pub verdict: Verdict,
}

fn summary(metric: &Metric) -> [f64; 3] {
    [metric.median, metric.min, metric.max]
}

/// Whether `a` and `b` differ by more than the spread of their samples. Exact counts (one
/// sample each) differ when their values do.
fn beyond_spread(a: &Metric, b: &Metric) -> bool {
    if a.samples.len() <= 1 && b.samples.len() <= 1 {
        return a.median != b.median;
    }
    a.max < b.min || b.max < a.min
}

fn verdict(name: &str, a: &Metric, b: &Metric) -> Verdict {
    if !beyond_spread(a, b) {
        return Verdict::Same;
    }
    match direction(name) {
        None => Verdict::Changed,
        Some(Direction::SmallerIsBetter) if b.median < a.median => Verdict::Better,
        Some(Direction::BiggerIsBetter) if b.median > a.median => Verdict::Better,
        Some(_) => Verdict::Worse,
    }
}

/// Every metric of every case found in both `a` and `b` (matched by suite, group, variant
/// and parameters), in the order of `a`.
pub fn compare(a: &[ResultFile], b: &[ResultFile]) -> Vec<Row> {
    let mut rows = Vec::new();
    for file_a in a {
        let Some(file_b) = b.iter().find(|f| f.suite == file_a.suite) else {
            continue;
        };
        for case_a in &file_a.cases {
            let name = case_name(case_a);
            let Some(case_b) = file_b.cases.iter().find(|c| case_name(c) == name) else {
                continue;
            };
            for (metric, ma) in &case_a.metrics {
                let Some(mb) = case_b.metrics.get(metric) else {
                    continue;
                };
                rows.push(Row {
                    suite: file_a.suite.clone(),
                    case: name.clone(),
                    metric: metric.clone(),
                    unit: ma.unit.clone(),
                    a: summary(ma),
                    b: summary(mb),
                    ratio: if ma.median == 0.0 {
                        if mb.median == 0.0 { 1.0 } else { f64::INFINITY }
                    } else {
                        mb.median / ma.median
                    },
                    verdict: verdict(metric, ma, mb),
                });
            }
        }
    }
    rows
}

/// The rows as a table for a person: each case and metric, both values with their ranges,
/// the ratio and the verdict.
pub fn table(rows: &[Row], a_label: &str, b_label: &str) -> String {
    let value = |v: [f64; 3]| {
        if v[1] == v[2] {
            round(v[0])
        } else {
            format!("{} ({}–{})", round(v[0]), round(v[1]), round(v[2]))
        }
    };
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|row| {
            [
                row.case.clone(),
                format!("{} ({})", row.metric, row.unit),
                value(row.a),
                value(row.b),
            ]
        })
        .collect();
    let width = |i: usize, header: &str| {
        cells
            .iter()
            .map(|c| c[i].chars().count())
            .chain([header.chars().count()])
            .max()
            .unwrap_or_default()
    };
    let (w0, w1, w2, w3) = (
        width(0, "case"),
        width(1, "metric"),
        width(2, a_label),
        width(3, b_label),
    );
    let mut out = format!(
        "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {:>7}  verdict\n",
        "case", "metric", a_label, b_label, "ratio"
    );
    for (row, [case, metric, a, b]) in rows.iter().zip(&cells) {
        let verdict = match row.verdict {
            Verdict::Same => "",
            Verdict::Better => "better",
            Verdict::Worse => "WORSE",
            Verdict::Changed => "changed",
        };
        out.push_str(&format!(
            "{case:<w0$}  {metric:<w1$}  {a:>w2$}  {b:>w3$}  {:>7.3}  {verdict}\n",
            row.ratio
        ));
    }
    out
}

/// Three significant digits, enough to read a table.
fn round(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let digits = (2 - value.abs().log10().floor() as i32).max(0) as usize;
    format!("{value:.digits$}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Case, Side};

    fn file(suite: &str, cases: Vec<Case>) -> ResultFile {
        let mut file = ResultFile::new(suite, "test");
        file.cases = cases;
        file
    }

    fn case(variant: &str, metric: &str, samples: Vec<f64>) -> Case {
        Case::new("load/client", variant, Some(Side::Optimized))
            .metric(metric, Metric::from_samples("ms", samples))
    }

    #[test]
    fn a_difference_within_the_spread_of_the_rounds_is_the_same() {
        let a = [file(
            "load",
            vec![case("pooled", "p99", vec![2.0, 3.0, 4.0])],
        )];
        let b = [file(
            "load",
            vec![case("pooled", "p99", vec![3.5, 4.5, 5.0])],
        )];
        let rows = compare(&a, &b);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].verdict, Verdict::Same);
        assert_eq!(rows[0].ratio, 1.5);
    }

    #[test]
    fn beyond_the_spread_the_direction_of_the_metric_decides() {
        let a = [file(
            "load",
            vec![
                case("pooled", "p99", vec![2.0, 3.0]),
                case("baseline", "capacity", vec![100.0, 110.0]),
            ],
        )];
        let b = [file(
            "load",
            vec![
                case("pooled", "p99", vec![5.0, 6.0]),
                case("baseline", "capacity", vec![200.0, 210.0]),
            ],
        )];
        let rows = compare(&a, &b);
        assert_eq!(rows[0].verdict, Verdict::Worse, "a higher p99 is worse");
        assert_eq!(
            rows[1].verdict,
            Verdict::Better,
            "a higher capacity is better"
        );
        assert!(table(&rows, "A", "B").contains("WORSE"));
    }

    #[test]
    fn exact_counts_differ_when_their_values_do_and_unmatched_cases_are_left_out() {
        let a = [file(
            "callgrind",
            vec![
                case("pooled", "instructions_per_op", vec![100.0]),
                case("gone", "instructions_per_op", vec![1.0]),
            ],
        )];
        let b = [file(
            "callgrind",
            vec![case("pooled", "instructions_per_op", vec![101.0])],
        )];
        let rows = compare(&a, &b);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].verdict, Verdict::Worse);
    }
}
