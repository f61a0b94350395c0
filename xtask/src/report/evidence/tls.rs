//! TLS on the hop: what a new connection costs in plaintext and over TLS (instructions from
//! `results/callgrind.json`, allocations from `results/allocations.json`, the handshakes the
//! processor resumed), and the TLS load pairs of `results/load.json` (capacity and p99,
//! plaintext against TLS). Each part is empty while its result file holds no such case.

use serde::Serialize;
use study::{
    catalogue::{LOADS, NEW_CONNECTION, NEW_CONNECTION_VARIANTS, TLS_LOAD_PAIRS},
    results::Case,
    variant::Variant,
};

use super::{Evidence, end_to_end::capacity_text, short};

/// The TLS section of the report.
#[derive(Debug, Serialize)]
pub(crate) struct TlsSection {
    /// One row per measured quantity of the handshake pair.
    handshake: Vec<HandshakeRow>,
    /// Which share of each TLS variant's handshakes resumed a session; empty when unknown.
    resumption: String,
    /// One row per TLS load pair measured.
    load: Vec<TlsLoadRow>,
}

/// One quantity per new connection, plaintext and both TLS variants.
#[derive(Debug, Serialize)]
struct HandshakeRow {
    metric: &'static str,
    plain: String,
    full: String,
    resumed: String,
    /// TLS with a full handshake less plaintext, and TLS ÷ plaintext.
    full_extra: String,
    /// TLS resuming a session less plaintext, and TLS ÷ plaintext.
    resumed_extra: String,
    source: String,
}

/// One TLS load pair: capacity and p99 of plaintext and TLS.
#[derive(Debug, Serialize)]
struct TlsLoadRow {
    pair: String,
    client: &'static str,
    capacity: String,
    ratio: String,
    /// p99 at each of [`LOADS`], plaintext → TLS (TLS ÷ plaintext).
    p99: Vec<String>,
}

/// The quantities of the handshake pair: label, suite, metric.
const HANDSHAKE_METRICS: [(&str, &str, &str); 3] = [
    ("instructions", "callgrind", "instructions_per_op"),
    ("allocations", "allocations", "allocs_per_op"),
    ("bytes allocated", "allocations", "bytes_per_op"),
];

impl Evidence {
    /// The TLS section, from whichever result files hold its cases.
    pub(crate) fn tls(&self) -> TlsSection {
        TlsSection {
            handshake: self.handshake_rows(),
            resumption: self.resumption(),
            load: self.tls_load_rows(),
        }
    }

    fn handshake_rows(&self) -> Vec<HandshakeRow> {
        let [plain, full, resumed] = NEW_CONNECTION_VARIANTS.map(Variant::as_str);
        HANDSHAKE_METRICS
            .iter()
            .filter_map(|&(label, suite, metric)| {
                let of = |variant| self.value(suite, NEW_CONNECTION, variant, metric);
                let (p, f, r) = (of(plain), of(full), of(resumed));
                if p.is_none() && f.is_none() && r.is_none() {
                    return None;
                }
                let text = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), short);
                Some(HandshakeRow {
                    metric: label,
                    plain: text(p),
                    full: text(f),
                    resumed: text(r),
                    full_extra: extra(p, f),
                    resumed_extra: extra(p, r),
                    source: format!("results/{suite}.json"),
                })
            })
            .collect()
    }

    /// `tls_full 0% of its connections, tls_resumed 100%`, from the allocation cases.
    fn resumption(&self) -> String {
        NEW_CONNECTION_VARIANTS
            .iter()
            .filter_map(|variant| {
                let share = self.value(
                    "allocations",
                    NEW_CONNECTION,
                    variant.as_str(),
                    "resumed_share",
                )?;
                Some((*variant, share))
            })
            .enumerate()
            .map(|(index, (variant, share))| {
                let of_its = if index == 0 {
                    " of its connections"
                } else {
                    ""
                };
                format!("{variant} {:.0}%{of_its}", share * 100.0)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn tls_load_rows(&self) -> Vec<TlsLoadRow> {
        let capacity = [("measure", "capacity")];
        TLS_LOAD_PAIRS
            .iter()
            .filter_map(|&(group, client)| {
                let (plain, tls) = (Variant::Plain.as_str(), Variant::Tls.as_str());
                let p99 = LOADS
                    .iter()
                    .map(|load| {
                        let load = format!("{:.0}%", load * 100.0);
                        let latency = [("measure", "latency"), ("load", load.as_str())];
                        let of = |variant| self.load_case(group, variant, None, &latency);
                        let (plain, tls) = (of(plain), of(tls));
                        let noise = mark(within_spread(plain, tls, "p99"));
                        match (
                            plain.and_then(|c| c.median("p99")),
                            tls.and_then(|c| c.median("p99")),
                        ) {
                            (Some(b), Some(o)) if b > 0.0 => {
                                format!("{b:.2} → {o:.2} ({:.2}×{noise})", o / b)
                            }
                            (b, o) => format!("{} → {}", ms(b), ms(o)),
                        }
                    })
                    .collect();
                let plain = self.load_case(group, plain, None, &capacity)?;
                let tls = self.load_case(group, tls, None, &capacity)?;
                Some(TlsLoadRow {
                    pair: format!("{group}: plain → tls"),
                    client,
                    capacity: format!("{} → {}", capacity_text(plain), capacity_text(tls)),
                    ratio: match (plain.median("capacity"), tls.median("capacity")) {
                        (Some(b), Some(o)) if b > 0.0 => format!(
                            "{:.2}{}",
                            o / b,
                            mark(within_spread(Some(plain), Some(tls), "capacity"))
                        ),
                        _ => "–".to_owned(),
                    },
                    p99,
                })
            })
            .collect()
    }
}

/// `+8.0M (9.00×)`: what the TLS side adds to plaintext, and their ratio.
fn extra(plain: Option<f64>, tls: Option<f64>) -> String {
    match (plain, tls) {
        (Some(p), Some(t)) if p > 0.0 => {
            let sign = if t >= p { "+" } else { "" };
            format!("{sign}{} ({:.2}×)", short(t - p), t / p)
        }
        _ => "–".to_owned(),
    }
}

/// Whether the two cases' `metric` ranges over the rounds overlap: a difference of their
/// medians is then within the noise of the runs.
pub(super) fn within_spread(a: Option<&Case>, b: Option<&Case>, metric: &str) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return false;
    };
    match (a.metrics.get(metric), b.metrics.get(metric)) {
        (Some(a), Some(b)) => a.min <= b.max && b.min <= a.max,
        _ => false,
    }
}

/// `≈` for a difference within the spread of the rounds.
pub(super) fn mark(within: bool) -> &'static str {
    if within { " ≈" } else { "" }
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"))
}

#[cfg(test)]
mod tests {
    use study::results::{Case, Metric};

    use super::within_spread;

    fn case(samples: &[f64]) -> Case {
        Case::new("load/hop_tls", "plain", None)
            .metric("p99", Metric::from_samples("ms", samples.to_vec()))
    }

    #[test]
    fn a_difference_is_noise_when_the_rounds_overlap() {
        let (a, b, c) = (
            case(&[1.0, 2.0, 3.0]),
            case(&[2.5, 4.0, 5.0]),
            case(&[6.0, 7.0]),
        );
        assert!(within_spread(Some(&a), Some(&b), "p99"));
        assert!(!within_spread(Some(&a), Some(&c), "p99"));
        assert!(!within_spread(Some(&a), None, "p99"));
        assert!(!within_spread(Some(&a), Some(&b), "capacity"));
    }
}
