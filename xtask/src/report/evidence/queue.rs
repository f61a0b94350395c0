//! The NATS queue beside the queue pair in `results/load.json`: on one server (`nats`) and
//! replicated on a cluster of three (`nats_r3`), each with its capacity, its p99 at each
//! rate and the broker's own publish-to-ack latency; every later row with its ratio to the
//! first, so that what replication costs can be read off. Empty while the results hold no
//! NATS case.

use serde::Serialize;
use study::{
    cases::group::LOAD_QUEUE,
    catalogue::LOADS,
    results::Case,
    variant::Variant::{self, Nats, NatsR3},
};

use super::{
    Evidence,
    end_to_end::capacity_text,
    tls::{mark, within_spread},
};

/// The NATS variants of the queue group, the reference of the ratios first.
const NATS_QUEUES: [Variant; 2] = [Nats, NatsR3];

/// One NATS queue as the report shows it.
#[derive(Debug, Serialize)]
pub(crate) struct QueueRow {
    variant: &'static str,
    /// Capacity, `*` marking a server that was not saturated.
    capacity: String,
    /// p99 at each of [`LOADS`] (ms).
    p99: Vec<String>,
    /// The broker's publish-to-ack latency, p50 and p99 (ms).
    ack_p50: String,
    ack_p99: String,
}

impl Evidence {
    /// The NATS queues measured, the single server first.
    pub(crate) fn queue(&self) -> Vec<QueueRow> {
        let capacity = [("measure", "capacity")];
        let cases: Vec<(Variant, &Case)> = NATS_QUEUES
            .iter()
            .filter_map(|&v| Some((v, self.load_case(LOAD_QUEUE, v.as_str(), None, &capacity)?)))
            .collect();
        let Some(&(first, reference)) = cases.first() else {
            return Vec::new();
        };
        let latency = |variant: Variant, load: &str| {
            let params = [("measure", "latency"), ("load", load)];
            self.load_case(LOAD_QUEUE, variant.as_str(), None, &params)
        };
        cases
            .iter()
            .map(|&(variant, case)| {
                // The reference row shows its figures alone, the others with their ratio.
                let against = (variant != first).then_some(reference);
                let p99 = LOADS
                    .iter()
                    .map(|load| {
                        let load = format!("{:.0}%", load * 100.0);
                        let of = |v| latency(v, &load);
                        figure(of(variant), against.and(of(first)), "p99", |v| {
                            format!("{v:.2}")
                        })
                    })
                    .collect();
                let capacity = match against.and_then(|r| ratio(Some(r), Some(case), "capacity")) {
                    Some(ratio) => format!("{} ({ratio})", capacity_text(case)),
                    None => capacity_text(case),
                };
                let ms = |v: f64| format!("{v:.2}");
                QueueRow {
                    variant: variant.as_str(),
                    capacity,
                    p99,
                    ack_p50: figure(Some(case), against, "publish_ack_p50", ms),
                    ack_p99: figure(Some(case), against, "publish_ack_p99", ms),
                }
            })
            .collect()
    }
}

/// `metric` of `case`, with its ratio to `reference`'s when there is one: `20.00 (2.00×)`.
fn figure(
    case: Option<&Case>,
    reference: Option<&Case>,
    metric: &str,
    show: impl Fn(f64) -> String,
) -> String {
    let Some(value) = case.and_then(|c| c.median(metric)) else {
        return "–".to_owned();
    };
    match ratio(reference, case, metric) {
        Some(ratio) => format!("{} ({ratio})", show(value)),
        None => show(value),
    }
}

/// `case` ÷ `reference` of `metric`, `≈` marking a difference within the spread of the
/// rounds.
fn ratio(reference: Option<&Case>, case: Option<&Case>, metric: &str) -> Option<String> {
    let r = reference?.median(metric)?;
    let v = case?.median(metric)?;
    (r > 0.0).then(|| {
        let noise = mark(within_spread(reference, case, metric));
        format!("{:.2}×{noise}", v / r)
    })
}
