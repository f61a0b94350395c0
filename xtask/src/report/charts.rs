//! The report's charts, each drawn only from result files (a chart without data is left out).
//! A bar is the median of its rounds, with a whisker over the range of the rounds.

use std::collections::BTreeMap;

use study::{protocol::Protocol, results::Case, variant::Variant};

use super::{
    evidence::Evidence,
    svg::{Bar, BarChart},
};

/// (file name, title, SVG) of every chart the evidence supports.
pub(crate) fn all(evidence: &Evidence) -> Vec<(String, String, String)> {
    let mut charts = Vec::new();
    let mut add = |name: &str, chart: Option<BarChart<'_>>| {
        if let Some(chart) = chart {
            charts.push((name.to_owned(), chart.title.to_owned(), chart.render()));
        }
    };
    add("queue_threads", queue_threads(evidence));
    add(
        "protocol_instructions",
        per_protocol(
            evidence,
            "callgrind",
            "instructions_per_op",
            "Instructions per message, by ingress protocol",
            "instructions",
        ),
    );
    add(
        "protocol_allocations",
        per_protocol(
            evidence,
            "allocations",
            "allocs_per_op",
            "Allocations per message, by ingress protocol",
            "allocations",
        ),
    );
    add("client_pairs", client_pairs(evidence));
    let capacity = [("measure", "capacity")];
    let half = [("measure", "latency"), ("load", "50%")];
    add(
        "load_throughput",
        load_chart(
            evidence,
            ("load/ingress", &capacity),
            &["capacity"],
            "Capacity of the system, by ingress protocol",
            "messages per second",
        ),
    );
    add(
        "load_latency",
        load_chart(
            evidence,
            ("load/ingress", &half),
            &["p50", "p99"],
            "Latency through the system at half the HTTP/1.1 capacity, by ingress protocol",
            "ms",
        ),
    );
    add(
        "load_queue",
        load_chart(
            evidence,
            ("load/queue", &capacity),
            &["capacity"],
            "Capacity through the gateway, by queue",
            "messages per second",
        ),
    );
    charts
}

/// One bar per variant of a `load/*` group (the cases with these params) and per metric
/// (median and range of the rounds).
fn load_chart(
    evidence: &Evidence,
    (group, params): (&str, &[(&str, &str)]),
    metrics: &[&str],
    title: &'static str,
    unit: &'static str,
) -> Option<BarChart<'static>> {
    let cases: Vec<&Case> = cases(evidence, "load", group)
        .into_iter()
        .filter(|c| {
            params
                .iter()
                .all(|(k, v)| c.params.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    if cases.is_empty() {
        return None;
    }
    Some(BarChart {
        title,
        unit,
        categories: cases.iter().map(|c| c.variant.clone()).collect(),
        series: metrics
            .iter()
            .map(|m| {
                (
                    (*m).to_owned(),
                    cases
                        .iter()
                        .map(|c| c.metrics.get(*m).map(Bar::of))
                        .collect(),
                )
            })
            .collect(),
    })
}

fn cases<'a>(evidence: &'a Evidence, suite: &str, group: &str) -> Vec<&'a Case> {
    evidence
        .files
        .get(suite)
        .map(|f| f.cases.iter().filter(|c| c.group == group).collect())
        .unwrap_or_default()
}

/// The queue pair across producer and consumer counts.
fn queue_threads(evidence: &Evidence) -> Option<BarChart<'static>> {
    let cases = cases(evidence, "criterion", "queue/threads");
    if cases.is_empty() {
        return None;
    }
    let mut by_shape: BTreeMap<(u32, u32), BTreeMap<String, Bar>> = BTreeMap::new();
    for case in cases {
        let param = |k: &str| case.params.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        let time = Bar::of(case.metrics.get("time_per_op")?);
        by_shape
            .entry((param("producers"), param("consumers")))
            .or_default()
            .insert(case.variant.clone(), time);
    }
    let categories = by_shape
        .keys()
        .map(|(p, c)| format!("{p} prod × {c} cons"))
        .collect();
    let series = [Variant::Memory, Variant::Pooled]
        .map(Variant::as_str)
        .into_iter()
        .map(|v| {
            (
                v.to_owned(),
                by_shape.values().map(|m| m.get(v).copied()).collect(),
            )
        })
        .collect();
    Some(BarChart {
        title: "Queue: time per message across threads (median of rounds)",
        unit: "ns per message",
        categories,
        series,
    })
}

fn per_protocol(
    evidence: &Evidence,
    suite: &str,
    metric: &str,
    title: &'static str,
    unit: &'static str,
) -> Option<BarChart<'static>> {
    let cases = cases(evidence, suite, "protocol/round_trip");
    if cases.is_empty() {
        return None;
    }
    let order = Protocol::ALL.map(Protocol::as_str);
    let values: Vec<Option<Bar>> = order
        .iter()
        .map(|v| {
            cases
                .iter()
                .find(|c| c.variant == *v)
                .and_then(|c| c.metrics.get(metric))
                .map(Bar::of)
        })
        .collect();
    Some(BarChart {
        title,
        unit,
        categories: order.iter().map(|s| (*s).to_owned()).collect(),
        series: vec![("per message".to_owned(), values)],
    })
}

/// Every client pair, time per message.
fn client_pairs(evidence: &Evidence) -> Option<BarChart<'static>> {
    let axes = [
        ("client/mode", "mode"),
        ("client/protocol", "protocol"),
        ("client/codec", "codec"),
        ("client/batching", "batching"),
    ];
    let mut categories = Vec::new();
    let (mut baseline, mut optimized) = (Vec::new(), Vec::new());
    for (group, label) in axes {
        let cases = cases(evidence, "criterion", group);
        let side = |s| {
            cases.iter().find(|c| c.side == Some(s)).map(|c| {
                (
                    c.variant.clone(),
                    c.metrics
                        .get("time_per_op")
                        .map(|m| Bar::of(m).scaled(1e-3)),
                )
            })
        };
        let (Some((b_name, b)), Some((o_name, o))) = (
            side(study::results::Side::Baseline),
            side(study::results::Side::Optimized),
        ) else {
            continue;
        };
        categories.push(format!("{label}: {b_name} / {o_name}"));
        baseline.push(b);
        optimized.push(o);
    }
    if categories.is_empty() {
        return None;
    }
    Some(BarChart {
        title: "Processor client: time per message, baseline and optimized side of each pair",
        unit: "µs per message",
        categories,
        series: vec![
            ("baseline".to_owned(), baseline),
            ("optimized".to_owned(), optimized),
        ],
    })
}
