//! The gate's rules on fixture result files.

use harness::{
    gate::{Rule, compare},
    results::{Case, Metric, ResultFile, Side},
};

fn file(cases: Vec<Case>) -> ResultFile {
    let mut file = ResultFile::new("callgrind", "fixture");
    file.cases = cases;
    file
}

fn case(group: &str, variant: &str, side: Side, instructions: f64, allocs: f64) -> Case {
    Case::new(group, variant, Some(side))
        .metric(
            "instructions_per_op",
            Metric::exact("instructions", instructions),
        )
        .metric("allocs_per_op", Metric::exact("allocations", allocs))
}

fn committed() -> ResultFile {
    file(vec![
        case(
            "queue/publish_consume",
            "memory",
            Side::Baseline,
            5000.0,
            14.0,
        ),
        case(
            "queue/publish_consume",
            "pooled",
            Side::Optimized,
            1000.0,
            0.0,
        ),
        case(
            "protocol/round_trip",
            "http1",
            Side::Baseline,
            100_000.0,
            90.0,
        ),
        case(
            "protocol/round_trip",
            "h2c",
            Side::Optimized,
            150_000.0,
            95.0,
        ),
    ])
}

fn scaled(factor: f64) -> ResultFile {
    let mut current = committed();
    for case in &mut current.cases {
        for metric in case.metrics.values_mut() {
            *metric = Metric::exact(&metric.unit, metric.median * factor);
        }
    }
    current
}

#[test]
fn four_percent_worse_passes() {
    assert_eq!(compare(&committed(), &scaled(1.04), 0.05), []);
}

#[test]
fn six_percent_worse_fails_for_every_case() {
    let findings = compare(&committed(), &scaled(1.06), 0.05);
    assert!(!findings.is_empty());
    assert!(
        findings.iter().all(|f| f.rule == Rule::Regressed),
        "{findings:?}"
    );
    assert_eq!(
        findings
            .iter()
            .filter(|f| f.metric == "instructions_per_op")
            .count(),
        4
    );
}

#[test]
fn an_optimization_that_stops_winning_fails_even_within_tolerance() {
    let mut current = committed();
    // The baseline side gets cheaper: within tolerance for each case, but the pooled side
    // no longer wins.
    current.cases[0].metrics.insert(
        "instructions_per_op".into(),
        Metric::exact("instructions", 990.0),
    );
    let findings = compare(&committed(), &current, 0.05);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].rule, Rule::NoLongerBeatsBaseline);
    assert!(findings[0].case.contains("pooled"));
}

#[test]
fn a_pair_that_never_won_is_not_required_to() {
    // h2c costs more instructions than HTTP/1.1 in the fixture; that is not a finding.
    assert_eq!(compare(&committed(), &committed(), 0.05), []);
}

#[test]
fn the_pooled_path_allocating_again_fails() {
    let mut current = committed();
    current.cases[1]
        .metrics
        .insert("allocs_per_op".into(), Metric::exact("allocations", 0.01));
    let findings = compare(&committed(), &current, 0.05);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].rule, Rule::NoLongerZero);
}

#[test]
fn a_missing_case_fails() {
    let mut current = committed();
    current.cases.pop();
    let findings = compare(&committed(), &current, 0.05);
    assert!(
        findings
            .iter()
            .any(|f| f.rule == Rule::Missing && f.case.contains("h2c")),
        "{findings:?}"
    );
}

#[test]
fn a_case_the_baseline_does_not_hold_yet_is_no_finding() {
    // A new pair measured before the baseline is saved again: its "optimized" side (TLS)
    // costs more than its baseline side, and neither is in the committed baseline.
    let mut current = committed();
    current.cases.extend([
        case(
            "hop/new_connection",
            "plain",
            Side::Baseline,
            200_000.0,
            100.0,
        ),
        case(
            "hop/new_connection",
            "tls_full",
            Side::Optimized,
            5_000_000.0,
            400.0,
        ),
    ]);
    assert_eq!(compare(&committed(), &current, 0.05), []);
}
