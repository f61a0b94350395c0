//! One large gRPC stream message in its typical shape and in its worst (`codec/stream_shape`
//! and `client/stream_shape` of `results/criterion.json`) as the report's "Message shapes"
//! section: each shape's time, the worst ÷ the typical, and the study's target
//! (`study::targets::WORST_SHAPE`) judged on its group alone, the other shown beside it
//! for context; and the target's row of the report's targets table. The table is empty
//! while the results hold neither group.

use serde::Serialize;
use study::{
    cases::group,
    results::{Case, Metric},
    targets::{ShapeTarget, WORST_SHAPE},
};

use super::{Evidence, Target, round_ratios, short};

/// The groups the section shows, each with what it times; the target's group is judged.
const GROUPS: [(&str, &str); 2] = [
    (group::CODEC_STREAM_SHAPE, "the front door's reading alone"),
    (group::CLIENT_STREAM_SHAPE, "end to end, until its answer"),
];

/// The section, as the template sees it.
#[derive(Debug, Serialize)]
pub(crate) struct Shapes {
    /// The target, for a person.
    goal: &'static str,
    /// The group judged.
    judged: &'static str,
    /// The shape compared with, and the shape judged: the table's columns.
    typical: &'static str,
    worst: &'static str,
    /// One per group of [`GROUPS`]; empty when neither was measured.
    rows: Vec<ShapeRow>,
}

#[derive(Debug, Serialize)]
struct ShapeRow {
    group: &'static str,
    /// What the group times.
    times: &'static str,
    /// Each shape's time in ms: median of the rounds, their range in brackets.
    typical: String,
    worst: String,
    /// Worst ÷ typical, the range of the round-by-round ratios in brackets.
    ratio: String,
    target: &'static str,
    verdict: &'static str,
}

impl Evidence {
    /// The message shapes section.
    pub(crate) fn shapes(&self) -> Shapes {
        let cases = self.shape_cases();
        let measured = (GROUPS.iter()).any(|(group, _)| cases.iter().any(|c| c.group == *group));
        Shapes {
            goal: WORST_SHAPE.goal,
            judged: WORST_SHAPE.group,
            typical: WORST_SHAPE.against,
            worst: WORST_SHAPE.shape,
            rows: if measured {
                (GROUPS.iter())
                    .map(|&(group, times)| row(cases, group, times))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// The shape target for the targets table.
    pub(super) fn shape_target(&self) -> Target {
        let ratio = WORST_SHAPE.measured(self.shape_cases());
        Target {
            what: WORST_SHAPE.what,
            target: WORST_SHAPE.goal,
            measured: ratio.map_or_else(
                || "not measured".to_owned(),
                |r| format!("{r:.2}× {}", WORST_SHAPE.against),
            ),
            met: ratio.map(|r| WORST_SHAPE.bound.met(r)),
            evidence: if ratio.is_some() {
                format!("{}: {}", WORST_SHAPE.suite.file(), WORST_SHAPE.group)
            } else {
                String::new()
            },
        }
    }

    fn shape_cases(&self) -> &[Case] {
        (self.files.get(WORST_SHAPE.suite.as_str())).map_or(&[], |f| f.cases.as_slice())
    }
}

fn row(cases: &[Case], group: &'static str, times: &'static str) -> ShapeRow {
    let target = ShapeTarget {
        group,
        ..WORST_SHAPE
    };
    let metric = |shape: &str| {
        (cases.iter())
            .find(|c| c.group == group && c.variant == shape)?
            .metrics
            .get(target.metric)
    };
    let (typical, worst) = (metric(target.against), metric(target.shape));
    let ratio = target.measured(cases).map_or_else(
        || "–".to_owned(),
        |r| {
            let rounds = match (typical, worst) {
                (Some(t), Some(w)) => round_ratios(&t.samples, &w.samples),
                _ => String::new(),
            };
            if rounds.is_empty() {
                format!("{r:.2}")
            } else {
                format!("{r:.2} ({rounds})")
            }
        },
    );
    let judged = group == WORST_SHAPE.group;
    ShapeRow {
        group,
        times,
        typical: typical.map_or_else(|| "–".to_owned(), millis),
        worst: worst.map_or_else(|| "–".to_owned(), millis),
        ratio,
        target: if judged { target.goal } else { "none: context" },
        verdict: if judged {
            verdict(target.met(cases))
        } else {
            "–"
        },
    }
}

/// A time in ms, with the range of its rounds when it has several; a time in another unit
/// than criterion's ns is shown in its own.
fn millis(metric: &Metric) -> String {
    let scale = match metric.unit.as_str() {
        "ns" => 1e-6,
        "µs" => 1e-3,
        "ms" => 1.0,
        unit => return format!("{} {unit}", short(metric.median)),
    };
    let ms = |v: f64| format!("{:.2}", v * scale);
    if metric.samples.len() > 1 {
        format!(
            "{} ({}..{})",
            ms(metric.median),
            ms(metric.min),
            ms(metric.max)
        )
    } else {
        ms(metric.median)
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

#[cfg(test)]
mod tests {
    use study::{results::Metric, targets::WORST_SHAPE};

    use super::{GROUPS, millis};

    /// The section shows the group its target judges.
    #[test]
    fn the_judged_group_is_shown() {
        assert!(GROUPS.iter().any(|(group, _)| *group == WORST_SHAPE.group));
    }

    #[test]
    fn times_are_shown_in_ms_with_the_range_of_their_rounds() {
        let rounds = Metric::from_samples("ns", vec![2.5e6, 2.0e6, 3.25e6]);
        assert_eq!(millis(&rounds), "2.50 (2.00..3.25)");
        assert_eq!(millis(&Metric::exact("µs", 1500.0)), "1.50");
        assert_eq!(millis(&Metric::exact("cycles", 1500.0)), "1500 cycles");
    }
}
