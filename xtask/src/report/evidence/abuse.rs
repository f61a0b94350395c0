//! The abuse suite: its `abuse.json` as the report's "Abuse" section (per attack what
//! the victim sent and got, its latency, the process's peak memory against its bound, the
//! refusals the server counted, and a verdict per target of `study::targets`), and the
//! targets' rows of the report's targets table, each judged on its worst attack.

use serde::Serialize;
use study::{
    cases::{Suite, group},
    results::{Case, ResultFile},
    targets::{ATTACK_TARGETS, AttackTarget, RSS_OVERHEAD, Value},
};

use super::{Evidence, Target};

/// The section, as the template sees it.
#[derive(Debug, Serialize)]
pub(crate) struct Abuse {
    /// Whether every target held under every attack, or which did not, in words.
    verdict: String,
    command: String,
    /// Seconds each attack lasted.
    seconds: String,
    /// The victim's requests per second.
    rate: String,
    /// The overhead the RSS bound allows beyond the budget.
    overhead: String,
    /// Each target's goal, in the order of the rows' verdicts.
    targets: Vec<&'static str>,
    rows: Vec<AttackRow>,
}

#[derive(Debug, Serialize)]
struct AttackRow {
    attack: String,
    what: String,
    /// `accepted / sent`.
    accepted: String,
    /// The victim's other answers by kind.
    others: String,
    /// p50 / p99 / max, in ms.
    latency: String,
    /// How late the victim itself sent (p99, ms): part of its latency that is not the
    /// server's.
    late: String,
    /// Before → peak, in MiB.
    rss: String,
    /// `MEMORY_BUDGET` + the overhead, in MiB.
    bound: String,
    refusals: String,
    /// How many connections or calls the attacker began, and how they ended.
    attacker: String,
    /// One per target of [`ATTACK_TARGETS`].
    verdicts: Vec<&'static str>,
}

fn mib(bytes: f64) -> String {
    format!("{:.1}", bytes / f64::from(1 << 20))
}

/// Metrics with `prefix`, as `name count` (the prefix dropped), or `none`.
fn counts(case: &Case, prefix: &str, skip: &[&str]) -> String {
    let listed: Vec<String> = (case.metrics.iter())
        .filter_map(|(name, m)| Some((name.strip_prefix(prefix)?, m.median)))
        .filter(|(name, _)| !skip.contains(name))
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    if listed.is_empty() {
        "none".to_owned()
    } else {
        listed.join(", ")
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "not measured",
    }
}

fn attacks(file: &ResultFile) -> impl Iterator<Item = &Case> {
    file.cases.iter().filter(|c| c.group == group::ABUSE)
}

impl Evidence {
    /// The abuse section, when the suite was run.
    pub(crate) fn abuse(&self) -> Option<Abuse> {
        let file = self.files.get(Suite::Abuse.as_str())?;
        let rows: Vec<AttackRow> = attacks(file).map(row).collect();
        let missed: Vec<String> = (attacks(file))
            .flat_map(|case| {
                ATTACK_TARGETS
                    .iter()
                    .filter(|t| t.met(case) == Some(false))
                    .map(|t| format!("{} under {}", t.what, case.variant))
            })
            .collect();
        let param = |key: &str| {
            attacks(file)
                .next()
                .and_then(|c| c.params.get(key))
                .cloned()
                .unwrap_or_default()
        };
        Some(Abuse {
            verdict: if rows.is_empty() {
                "no attack was measured".to_owned()
            } else if missed.is_empty() {
                "every target held under every attack".to_owned()
            } else {
                format!("**targets missed**: {}", missed.join("; "))
            },
            command: file.command.clone(),
            seconds: param("seconds"),
            rate: param("victim_rate"),
            overhead: format!("{} MiB", RSS_OVERHEAD >> 20),
            targets: ATTACK_TARGETS.iter().map(|t| t.goal).collect(),
            rows,
        })
    }

    /// The abuse targets for the targets table, each judged on its worst attack.
    pub(super) fn abuse_targets(&self) -> Vec<Target> {
        let cases: Vec<&Case> = (self.files.get(Suite::Abuse.as_str()))
            .map(|f| attacks(f).collect())
            .unwrap_or_default();
        ATTACK_TARGETS
            .iter()
            .map(|target| worst(target, &cases))
            .collect()
    }
}

fn row(case: &Case) -> AttackRow {
    let shown = |metric: &str| {
        case.median(metric)
            .map_or_else(|| "–".to_owned(), |v| format!("{v}"))
    };
    let ms = |metric: &str| {
        case.median(metric)
            .map_or_else(|| "–".to_owned(), |v| format!("{v:.1}"))
    };
    let bytes = |metric: &str| case.median(metric).map_or_else(|| "–".to_owned(), mib);
    AttackRow {
        attack: case.variant.clone(),
        what: case.params.get("what").cloned().unwrap_or_default(),
        accepted: format!("{} / {}", shown("victim_accepted"), shown("victim_sent")),
        others: counts(case, "victim_", &OWN_VICTIM_METRICS),
        latency: format!(
            "{} / {} / {}",
            ms("victim_p50"),
            ms("victim_p99"),
            ms("victim_max")
        ),
        late: ms("victim_late_p99"),
        rss: format!("{} → {}", bytes("rss_before"), bytes("rss_peak")),
        bound: case
            .median("memory_budget")
            .map_or_else(|| "–".to_owned(), |b| mib(b + RSS_OVERHEAD as f64)),
        refusals: counts(case, "refusals_", &[]),
        attacker: format!(
            "began {}; ended: {}",
            shown("attack_begun"),
            counts(case, "attack_", &["begun"])
        ),
        verdicts: ATTACK_TARGETS
            .iter()
            .map(|t| verdict(t.met(case)))
            .collect(),
    }
}

/// The victim's metrics that are no kind of answer.
const OWN_VICTIM_METRICS: [&str; 6] = ["sent", "accepted", "p50", "p99", "max", "late_p99"];

/// A target judged on the attack where it is furthest from its bound (its largest value:
/// each bound of the suite is an upper one, or zero for a count that cannot go below it).
fn worst(target: &'static AttackTarget, cases: &[&Case]) -> Target {
    let worst = (cases.iter())
        .filter_map(|case| Some((*case, target.measured(case)?)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let met = (!cases.is_empty() && worst.is_some())
        .then(|| cases.iter().all(|case| target.met(case) == Some(true)));
    Target {
        what: target.what,
        target: target.goal,
        measured: worst.map_or_else(
            || "not measured".to_owned(),
            |(case, value)| match shown(target, case, value) {
                Shown::Worst(text) => format!("{text} ({})", case.variant),
                Shown::Everywhere(text) => text,
            },
        ),
        met,
        evidence: if worst.is_some() {
            format!("{}: {}", Suite::Abuse.file(), group::ABUSE)
        } else {
            String::new()
        },
    }
}

/// A target's worst value in words: of one attack, or true of every attack.
enum Shown {
    Worst(String),
    Everywhere(String),
}

/// The worst value of a target, in words.
fn shown(target: &AttackTarget, case: &Case, measured: f64) -> Shown {
    match target.value {
        Value::Excess {
            of: "rss_peak",
            over,
        } => Shown::Worst(format!(
            "worst peak {} MiB, bound {} MiB",
            value_mib(case, "rss_peak"),
            case.median(over)
                .map_or_else(|| "–".to_owned(), |b| mib(b + RSS_OVERHEAD as f64))
        )),
        Value::Excess { .. } if measured == 0.0 => {
            Shown::Everywhere("every one accepted, under every attack".to_owned())
        }
        Value::Excess { .. } => Shown::Worst(format!("{measured} not accepted")),
        Value::Metric(_) => Shown::Worst(format!("worst {measured:.1} ms")),
    }
}

fn value_mib(case: &Case, metric: &str) -> String {
    case.median(metric).map_or_else(|| "–".to_owned(), mib)
}

#[cfg(test)]
mod tests {
    use study::results::{Case, Metric, ResultFile};

    use crate::report::evidence::Evidence;

    fn attack(name: &str, p99: f64, accepted: f64, peak_mib: f64) -> Case {
        let mib = |v: f64| Metric::exact("bytes", v * f64::from(1 << 20));
        Case::new("abuse", name, None)
            .param("what", format!("{name} in words"))
            .param("seconds", "5")
            .param("victim_rate", "200")
            .metric("victim_sent", Metric::exact("requests", 1000.0))
            .metric("victim_accepted", Metric::exact("requests", accepted))
            .metric("victim_p50", Metric::exact("ms", 2.0))
            .metric("victim_p99", Metric::exact("ms", p99))
            .metric("victim_max", Metric::exact("ms", 2.0 * p99))
            .metric("victim_late_p99", Metric::exact("ms", 1.0))
            .metric("rss_before", mib(20.0))
            .metric("rss_peak", mib(peak_mib))
            .metric("memory_budget", mib(128.0))
    }

    fn evidence(cases: Vec<Case>) -> Evidence {
        let mut file = ResultFile::new("abuse", "harness abuse");
        file.cases = cases;
        Evidence {
            files: [("abuse".to_owned(), file)].into(),
            profiles: Vec::new(),
            readme_has_grpc: false,
        }
    }

    #[test]
    fn every_attack_is_judged_and_a_miss_is_said_plainly() {
        let held = evidence(vec![attack("slow-bodies", 12.5, 1000.0, 80.0)]);
        let section = held.abuse().unwrap();
        assert_eq!(section.verdict, "every target held under every attack");
        let row = &section.rows[0];
        assert_eq!(row.accepted, "1000 / 1000");
        assert_eq!(row.latency, "2.0 / 12.5 / 25.0");
        assert_eq!(row.late, "1.0");
        assert_eq!(row.rss, "20.0 → 80.0");
        assert_eq!(row.bound, "192.0");
        assert_eq!(row.others, "none");
        assert_eq!(row.attacker, "began –; ended: none");
        assert_eq!(row.verdicts, ["yes", "yes", "yes"]);

        let targets = held.abuse_targets();
        assert_eq!(
            targets[1].measured,
            "every one accepted, under every attack"
        );

        let missed = evidence(vec![
            attack("slow-bodies", 12.5, 1000.0, 80.0),
            attack("declared-bodies", 1036.0, 990.0, 200.0)
                .metric("victim_timeout", Metric::exact("requests", 10.0)),
        ]);
        let section = missed.abuse().unwrap();
        assert!(
            section.verdict.starts_with("**targets missed**: "),
            "{}",
            section.verdict
        );
        assert!(
            section
                .verdict
                .contains("Victim p99 while one address attacks under declared-bodies"),
            "{}",
            section.verdict
        );
        assert_eq!(section.rows[1].others, "timeout 10");
        assert_eq!(section.rows[1].verdicts, ["**no**", "**no**", "**no**"]);
        let targets = missed.abuse_targets();
        assert_eq!(targets[0].measured, "worst 1036.0 ms (declared-bodies)");
        assert_eq!(targets[0].met, Some(false));
        assert_eq!(targets[1].measured, "10 not accepted (declared-bodies)");
        assert_eq!(
            targets[2].measured,
            "worst peak 200.0 MiB, bound 192.0 MiB (declared-bodies)"
        );
    }

    #[test]
    fn without_the_suite_nothing_is_judged() {
        let none = Evidence {
            files: Default::default(),
            profiles: Vec::new(),
            readme_has_grpc: false,
        };
        assert!(none.abuse().is_none());
        let targets = none.abuse_targets();
        assert_eq!(targets.len(), 3);
        assert!(
            targets
                .iter()
                .all(|t| t.met.is_none() && t.evidence.is_empty())
        );
    }
}
