//! What a soak phase measured, the criteria it is judged by, and the cases it adds to
//! `soak.json`.
//!
//! The criteria: resident memory is flat (each process's peak in the last window at most
//! [`RSS_LIMIT`] times its peak in the first), every message accepted was processed and
//! nothing else was (with ids, one by one, when the processors log them), and no answer
//! falls outside the documented kinds.

use std::collections::BTreeMap;

use super::{
    Phase,
    mix::Door,
    tally::{Contract, Count, Tally},
};
use crate::results::{Case, Metric};

/// The most the last window's peak RSS may be, as a multiple of the first window's.
pub const RSS_LIMIT: f64 = 1.2;
/// The windows compared, in seconds: a minute, or a quarter of a shorter run.
pub const RSS_WINDOW_SECS: usize = 60;

/// One criterion of one phase, measured and judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Criterion {
    /// `memory` or `nats`.
    pub phase: Phase,
    /// `rss_flat`, `accepted_equals_processed` or `documented_errors`.
    pub name: &'static str,
    /// The measured value.
    pub measured: f64,
    /// Its unit.
    pub unit: &'static str,
    /// The bound it is held to.
    pub limit: String,
    /// Whether it held.
    pub held: bool,
    /// What was measured, in words.
    pub detail: String,
}

/// One part of the contract as one door showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractItem {
    /// `memory` or `nats`.
    pub phase: Phase,
    /// The door.
    pub door: Door,
    /// What is checked, e.g. `retry_duplicate`.
    pub name: &'static str,
    /// How often it behaved, of how often it could have.
    pub count: Count,
}

impl ContractItem {
    /// `behaves`, `not yet` (it did not, every time) or `not seen` (no chance to).
    pub fn verdict(&self) -> &'static str {
        match self.count {
            Count { of: 0, .. } => "not seen",
            Count { yes, of } if yes == of => "behaves",
            _ => "not yet",
        }
    }
}

/// Samples of one process, one per second; 0 while it was not running.
#[derive(Debug, Clone, Default)]
pub(crate) struct Series {
    pub(crate) rss: Vec<f64>,
    pub(crate) fds: Vec<f64>,
}

/// What became of the accepted messages.
#[derive(Debug, Clone, Default)]
pub(crate) struct Delivery {
    /// Messages the answers said were accepted, each id once.
    pub(crate) accepted: u64,
    /// Messages processed (distinct ids when matched one by one).
    pub(crate) processed: u64,
    /// Accepted ids no processor logged, when ids were matched.
    pub(crate) lost: Option<u64>,
    /// Messages processed again after a redelivery (expected when a processor dies).
    pub(crate) reprocessed: u64,
    /// Messages whose answers never settled whether they were stored.
    pub(crate) unsettled: u64,
    /// Ids answered `accepted` (not `duplicate`) more than once.
    pub(crate) stored_twice: u64,
    /// How `processed` was learnt.
    pub(crate) how: String,
}

impl Delivery {
    /// What the doors' answers say: accepted, unsettled, stored twice; nothing processed yet.
    pub(crate) fn answered(tallies: &[Tally]) -> Delivery {
        Delivery {
            accepted: tallies.iter().map(|t| t.accepted.total()).sum(),
            unsettled: tallies.iter().map(|t| t.unsettled).sum(),
            stored_twice: tallies.iter().map(|t| t.accepted.stored_twice).sum(),
            ..Delivery::default()
        }
    }
}

/// Everything one phase measured.
#[derive(Debug, Clone)]
pub(crate) struct PhaseRun {
    pub(crate) phase: Phase,
    pub(crate) rates: [f64; 2],
    pub(crate) tallies: Vec<Tally>,
    pub(crate) processes: BTreeMap<String, Series>,
    /// (accepted, processed) so far, each second.
    pub(crate) progress: Vec<(u64, u64)>,
    pub(crate) delivery: Delivery,
    /// What happened to the processes, in words.
    pub(crate) events: Vec<String>,
}

/// Peak of the last window over peak of the first, of the samples where the process ran
/// (non-zero); the window is [`RSS_WINDOW_SECS`] samples or a quarter of the series.
pub fn rss_growth(samples: &[f64]) -> Option<f64> {
    let window = RSS_WINDOW_SECS.min(samples.len() / 4).max(1);
    let peak = |part: &[f64]| {
        part.iter()
            .copied()
            .filter(|v| *v > 0.0)
            .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))))
    };
    let first = peak(samples.get(..window)?)?;
    let last = peak(samples.get(samples.len().checked_sub(window)?..)?)?;
    Some(last / first)
}

impl PhaseRun {
    /// The phase's three criteria.
    pub(crate) fn criteria(&self) -> Vec<Criterion> {
        vec![self.rss_flat(), self.delivered(), self.documented()]
    }

    fn rss_flat(&self) -> Criterion {
        let growths: Vec<(String, Option<f64>)> = self
            .processes
            .iter()
            .map(|(name, series)| (name.clone(), rss_growth(&series.rss)))
            .collect();
        let worst = growths
            .iter()
            .filter_map(|(_, g)| *g)
            .fold(0.0_f64, f64::max);
        let measured_all = !growths.is_empty() && growths.iter().all(|(_, g)| g.is_some());
        Criterion {
            phase: self.phase,
            name: "rss_flat",
            measured: worst,
            unit: "ratio",
            limit: format!("≤ {RSS_LIMIT}"),
            held: measured_all && worst <= RSS_LIMIT,
            detail: growths
                .iter()
                .map(|(name, g)| match g {
                    Some(g) => format!("{name}: last window's peak {g:.2}× the first's"),
                    None => format!("{name}: too few samples"),
                })
                .collect::<Vec<_>>()
                .join("; "),
        }
    }

    fn delivered(&self) -> Criterion {
        let d = &self.delivery;
        let difference = d.processed as f64 - d.accepted as f64;
        // A message whose answers never settled may have been stored: each such message
        // widens the bound by one.
        let within = d.processed >= d.accepted && d.processed - d.accepted <= d.unsettled;
        let held = within && d.lost.is_none_or(|lost| lost == 0) && d.accepted > 0;
        let mut detail = format!(
            "{} accepted, {} processed ({})",
            d.accepted, d.processed, d.how
        );
        if let Some(lost) = d.lost {
            detail.push_str(&format!("; {lost} accepted ids never processed"));
        }
        if d.reprocessed > 0 {
            detail.push_str(&format!(
                "; {} processed again after a redelivery (expected)",
                d.reprocessed
            ));
        }
        if d.stored_twice > 0 {
            detail.push_str(&format!(
                "; {} retries under an accepted id were answered `accepted` again instead of \
                 `duplicate`",
                d.stored_twice
            ));
        }
        if d.unsettled > 0 {
            detail.push_str(&format!(
                "; {} messages without a settling answer",
                d.unsettled
            ));
        }
        Criterion {
            phase: self.phase,
            name: "accepted_equals_processed",
            measured: difference,
            unit: "messages",
            limit: if d.unsettled > 0 {
                format!("0..={}", d.unsettled)
            } else {
                "= 0".to_owned()
            },
            held,
            detail,
        }
    }

    fn documented(&self) -> Criterion {
        let outside: Vec<String> = self
            .tallies
            .iter()
            .flat_map(|t| {
                t.answers
                    .iter()
                    .filter(|(_, a)| !a.documented)
                    .map(move |(key, a)| format!("{} {key}: {}", t.door.as_str(), a.count))
            })
            .collect();
        let count: u64 = self.tallies.iter().map(Tally::undocumented).sum();
        let errors: u64 = self
            .tallies
            .iter()
            .flat_map(|t| t.answers.iter())
            .filter(|(key, _)| !matches!(key.as_str(), "accepted" | "duplicate"))
            .map(|(_, a)| a.count)
            .sum();
        Criterion {
            phase: self.phase,
            name: "documented_errors",
            measured: count as f64,
            unit: "answers",
            limit: "= 0".to_owned(),
            held: count == 0,
            detail: if outside.is_empty() {
                format!("{errors} error answers, all of documented kinds")
            } else {
                format!("outside the documented kinds: {}", outside.join(", "))
            },
        }
    }

    /// Doors whose requests went out more than a second late (p99) or not at all: the
    /// generator did not keep the rate, so the server saw less load than asked.
    pub(crate) fn lagging(&self) -> Vec<String> {
        self.tallies
            .iter()
            .filter_map(|t| {
                let lag = t.late.value_at_quantile(0.99) as f64 / 1e6;
                let achieved = t.requests as f64 / t.seconds.max(1.0);
                (lag > 1.0 || t.unsent > 0).then(|| {
                    format!(
                        "{}: requests went out up to {lag:.1} s late (p99), {} due were not \
                         sent; {achieved:.0} requests/s achieved (retries included) for {:.0} \
                         asked",
                        t.door.as_str(),
                        t.unsent,
                        self.rates[t.door.index()]
                    )
                })
            })
            .collect()
    }

    /// The parts of the contract each door showed.
    pub(crate) fn contract(&self) -> Vec<ContractItem> {
        let mut items = Vec::new();
        for tally in &self.tallies {
            let c: &Contract = &tally.contract;
            for (name, count) in [
                ("id_kept", c.id_kept),
                ("retry_duplicate", c.retry_duplicate),
                ("invalid_refused", c.invalid_refused),
                ("oversized_refused", c.oversized_refused),
                ("retry_after", c.retry_after),
                ("json_error", c.json_error),
            ] {
                if tally.door == Door::Grpc && matches!(name, "retry_after" | "json_error") {
                    continue;
                }
                items.push(ContractItem {
                    phase: self.phase,
                    door: tally.door,
                    name,
                    count,
                });
            }
        }
        items
    }

    /// The phase's cases of `soak.json`.
    pub(crate) fn cases(&self) -> Vec<Case> {
        let phase = self.phase.as_str();
        let mut cases = Vec::new();
        for c in self.criteria() {
            cases.push(
                Case::new("soak/criteria", c.name, None)
                    .param("phase", phase)
                    .param("verdict", if c.held { "held" } else { "failed" })
                    .param("limit", &c.limit)
                    .param("detail", &c.detail)
                    .metric("measured", Metric::exact(c.unit, c.measured)),
            );
        }
        for (name, series) in &self.processes {
            cases.push(
                Case::new("soak/process", name, None)
                    .param("phase", phase)
                    .metric("rss", Metric::from_samples("bytes", series.rss.clone()))
                    .metric("fds", Metric::from_samples("fds", series.fds.clone())),
            );
        }
        let d = &self.delivery;
        let mut delivery = Case::new("soak/delivery", phase, None)
            .param("processed_from", &d.how)
            .param("events", self.events.join("; "))
            .metric("accepted", Metric::exact("messages", d.accepted as f64))
            .metric("processed", Metric::exact("messages", d.processed as f64))
            .metric("unsettled", Metric::exact("messages", d.unsettled as f64))
            .metric(
                "stored_twice",
                Metric::exact("messages", d.stored_twice as f64),
            )
            .metric(
                "reprocessed",
                Metric::exact("messages", d.reprocessed as f64),
            );
        if let Some(lost) = d.lost {
            delivery = delivery.metric("lost", Metric::exact("messages", lost as f64));
        }
        cases.push(delivery);
        let series =
            |f: fn(&(u64, u64)) -> u64| self.progress.iter().map(|p| f(p) as f64).collect();
        cases.push(
            Case::new("soak/progress", phase, None)
                .metric(
                    "accepted",
                    Metric::from_samples("messages", series(|p| p.0)),
                )
                .metric(
                    "processed",
                    Metric::from_samples("messages", series(|p| p.1)),
                ),
        );
        for tally in &self.tallies {
            cases.extend(door_cases(phase, self.rates[tally.door.index()], tally));
        }
        for item in self.contract() {
            cases.push(
                Case::new("soak/contract", item.name, None)
                    .param("phase", phase)
                    .param("door", item.door.as_str())
                    .param("verdict", item.verdict())
                    .metric("yes", Metric::exact("answers", item.count.yes as f64))
                    .metric("of", Metric::exact("answers", item.count.of as f64)),
            );
        }
        cases
    }
}

/// A door's answers by kind and its latency by minute.
fn door_cases(phase: &str, rate: f64, tally: &Tally) -> Vec<Case> {
    let door = tally.door.as_str();
    let mut answers = Case::new("soak/answers", door, None).param("phase", phase);
    let mut outside = Vec::new();
    for (key, a) in &tally.answers {
        answers = answers.metric(key, Metric::exact("answers", a.count as f64));
        if !a.documented {
            outside.push(key.clone());
        }
    }
    answers = answers.param("undocumented", outside.join(", "));
    let ms = |q: f64| -> Vec<f64> {
        tally
            .minutes
            .iter()
            .map(|h| h.value_at_quantile(q) as f64 / 1000.0)
            .collect()
    };
    let per_minute: Vec<f64> = tally.minutes.iter().map(|h| h.len() as f64).collect();
    let latency = Case::new("soak/latency", door, None)
        .param("phase", phase)
        .param("rate", format!("{rate:.0}"))
        .metric("p50", Metric::from_samples("ms", ms(0.5)))
        .metric("p99", Metric::from_samples("ms", ms(0.99)))
        .metric(
            "accepted_per_minute",
            Metric::from_samples("answers", per_minute),
        )
        .metric(
            "requests_per_second",
            Metric::exact("req/s", tally.requests as f64 / tally.seconds.max(1.0)),
        )
        .metric("unsent", Metric::exact("requests", tally.unsent as f64))
        .metric(
            "send_lag_p99",
            Metric::exact("ms", tally.late.value_at_quantile(0.99) as f64 / 1000.0),
        );
    vec![answers, latency]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_compares_the_peaks_of_the_first_and_last_windows() {
        let flat: Vec<f64> = (0..240).map(|i| 10.0 + (i % 7) as f64).collect();
        assert_eq!(rss_growth(&flat), Some(1.0));
        let growing: Vec<f64> = (0..240).map(|i| 100.0 + i as f64).collect();
        let g = rss_growth(&growing).unwrap();
        assert!((g - 339.0 / 159.0).abs() < 1e-9, "{g}");
        // A process that was down (zeros) is judged on the samples where it ran.
        let restarted = [vec![10.0; 30], vec![0.0; 5], vec![11.0; 25]].concat();
        assert_eq!(rss_growth(&restarted), Some(1.1));
        assert_eq!(rss_growth(&[]), None);
    }
}
