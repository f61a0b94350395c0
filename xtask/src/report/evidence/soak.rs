//! The soak: `results/soak.json` as the report's "Soak" section (its criteria with their
//! measured values and verdicts, each door's rate, p99 per minute and answers, the parts
//! of the contract not behaving yet) and a chart of each system process's resident memory
//! over the run, drawn by hand as the other charts are, so the same file gives the same
//! bytes.

use std::fmt::Write as _;

use serde::Serialize;
use study::results::{Case, ResultFile};

use super::Evidence;
use crate::report::svg::{BOTTOM, COLOURS, HEIGHT, RIGHT, TOP, WIDTH, escape, nice_ceiling, open};

/// The section, as the template sees it.
#[derive(Debug, Serialize)]
pub(crate) struct Soak {
    /// `every criterion held`, or which did not.
    verdict: String,
    command: String,
    criteria: Vec<CriterionRow>,
    doors: Vec<DoorRow>,
    /// Parts of the contract a door did not show every time, in words.
    not_yet: Vec<String>,
    /// What happened to the processes, and notes of the run (rates, a generator behind).
    notes: Vec<String>,
    /// Whether the RSS chart was drawn.
    chart: bool,
}

#[derive(Debug, Serialize)]
struct CriterionRow {
    phase: String,
    name: String,
    measured: String,
    limit: String,
    verdict: String,
    detail: String,
}

#[derive(Debug, Serialize)]
struct DoorRow {
    phase: String,
    door: String,
    rate: String,
    p99: String,
    /// How late the generator sent requests (p99): a p99 latency this large is the
    /// generator's, not the server's.
    late: String,
    answers: String,
}

fn param<'a>(case: &'a Case, key: &str) -> &'a str {
    case.params.get(key).map_or("", String::as_str)
}

fn cases<'a>(file: &'a ResultFile, group: &'a str) -> impl Iterator<Item = &'a Case> + 'a {
    file.cases.iter().filter(move |c| c.group == group)
}

impl Evidence {
    /// The soak section, when a soak was run.
    pub(crate) fn soak(&self) -> Option<Soak> {
        let file = self.files.get("soak")?;
        let criteria = criteria(file);
        Some(Soak {
            verdict: verdict(&criteria),
            command: file.command.clone(),
            criteria,
            doors: cases(file, "soak/latency")
                .map(|latency| door(file, latency))
                .collect(),
            not_yet: not_yet(file),
            notes: notes(file),
            chart: self.soak_chart().is_some(),
        })
    }

    /// Resident memory of each system process over the soak, one line per process and
    /// phase, in MB, against seconds since the phase began; a gap where it was not running.
    pub(crate) fn soak_chart(&self) -> Option<String> {
        let file = self.files.get("soak")?;
        let lines: Vec<(String, Vec<f64>)> = cases(file, "soak/process")
            .filter_map(|c| {
                let rss = c.metrics.get("rss")?;
                Some((
                    format!("{}: {}", param(c, "phase"), c.variant),
                    rss.samples.iter().map(|b| b / 1e6).collect::<Vec<f64>>(),
                ))
            })
            .filter(|(_, samples)| !samples.is_empty())
            .collect();
        (!lines.is_empty()).then(|| line_chart(&lines))
    }
}

/// The left margin: the axis labels here are shorter than the bar charts'.
const LEFT: f64 = 70.0;

/// Each phase's criteria, with their measured values and verdicts.
fn criteria(file: &ResultFile) -> Vec<CriterionRow> {
    cases(file, "soak/criteria")
        .map(|c| CriterionRow {
            phase: param(c, "phase").to_owned(),
            name: c.variant.clone(),
            measured: c
                .metrics
                .get("measured")
                .map_or_else(|| "–".to_owned(), |m| format!("{:.3}", m.median)),
            limit: param(c, "limit").to_owned(),
            verdict: if param(c, "verdict") == "held" {
                "held".to_owned()
            } else {
                "**failed**".to_owned()
            },
            detail: param(c, "detail").replace('|', "/"),
        })
        .collect()
}

/// The soak's verdict in words: whether every criterion held, or which did not.
fn verdict(criteria: &[CriterionRow]) -> String {
    let failed: Vec<String> = criteria
        .iter()
        .filter(|c| c.verdict != "held")
        .map(|c| format!("{} {}", c.phase, c.name))
        .collect();
    if criteria.is_empty() {
        "no criterion was judged".to_owned()
    } else if failed.is_empty() {
        "every criterion of every phase held".to_owned()
    } else {
        format!("**did not hold**: {}", failed.join(", "))
    }
}

/// The row of the door and phase of a `soak/latency` case: its rate, p99 per minute, how
/// late the generator was, and the door's answers by kind.
fn door(file: &ResultFile, latency: &Case) -> DoorRow {
    let phase = param(latency, "phase");
    let answers = cases(file, "soak/answers")
        .find(|a| a.variant == latency.variant && param(a, "phase") == phase)
        .map(|a| {
            a.metrics
                .iter()
                .map(|(key, m)| format!("{key} {}", m.median))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    DoorRow {
        phase: phase.to_owned(),
        door: latency.variant.clone(),
        rate: param(latency, "rate").to_owned(),
        p99: latency
            .metrics
            .get("p99")
            .map(|m| {
                m.samples
                    .iter()
                    .map(|v| format!("{v:.1}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
        late: latency
            .metrics
            .get("send_lag_p99")
            .map_or_else(|| "–".to_owned(), |m| format!("{:.1}", m.median)),
        answers,
    }
}

/// Parts of the contract a door did not show every time, in words.
fn not_yet(file: &ResultFile) -> Vec<String> {
    cases(file, "soak/contract")
        .filter(|c| param(c, "verdict") == "not yet")
        .map(|c| {
            let count = |k: &str| c.metrics.get(k).map_or(0.0, |m| m.median);
            format!(
                "{} {} `{}`: {} of {}",
                param(c, "phase"),
                param(c, "door"),
                c.variant,
                count("yes"),
                count("of")
            )
        })
        .collect()
}

/// What happened to the processes of each phase, then the run's notes on rates, on a
/// generator that fell behind, and on NATS.
fn notes(file: &ResultFile) -> Vec<String> {
    let mut notes: Vec<String> = cases(file, "soak/delivery")
        .filter(|c| !param(c, "events").is_empty())
        .map(|c| format!("{}: {}", c.variant, param(c, "events")))
        .collect();
    notes.extend(
        file.notes
            .iter()
            .filter(|(k, _)| k.ends_with(" rates") || k.ends_with(" generator") || *k == "nats")
            .map(|(k, v)| format!("{k}: {v}")),
    );
    notes
}

/// A line chart of `lines` (name, one value a second; 0 for no value), from 0 up.
fn line_chart(lines: &[(String, Vec<f64>)]) -> String {
    let seconds = lines.iter().map(|(_, s)| s.len()).max().unwrap_or(1).max(2) - 1;
    let top = lines
        .iter()
        .flat_map(|(_, s)| s.iter().copied())
        .fold(0.0_f64, f64::max);
    let scale = nice_ceiling(top);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |i: usize| LEFT + plot_w * i as f64 / seconds as f64;
    let y = |v: f64| TOP + plot_h - plot_h * v / scale;
    let mut svg = open("Soak: resident memory of each system process");
    for tick in 0..=4 {
        let value = scale * f64::from(tick) / 4.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#dddddd"/><text x="{2:.1}" y="{3:.1}" text-anchor="end">{4}</text>"##,
            y(value),
            WIDTH - RIGHT,
            LEFT - 6.0,
            y(value) + 4.0,
            if value.fract() == 0.0 {
                format!("{value:.0}")
            } else {
                format!("{value:.1}")
            }
        );
        let second = seconds * tick as usize / 4;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{second} s</text>"#,
            x(second),
            TOP + plot_h + 18.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{0:.1}" transform="rotate(-90 16 {0:.1})" text-anchor="middle">MB</text>"#,
        TOP + plot_h / 2.0
    );
    for (n, (name, samples)) in lines.iter().enumerate() {
        // The bar charts give their first colour (grey) to the baseline; lines skip it.
        let colour = COLOURS[(n + 1) % COLOURS.len()];
        // A process that was not running leaves a gap, not a drop to zero.
        let mut segment = Vec::new();
        let mut segments = Vec::new();
        for (i, &v) in samples.iter().enumerate() {
            if v > 0.0 {
                segment.push(format!("{:.1},{:.1}", x(i), y(v)));
            } else if !segment.is_empty() {
                segments.push(std::mem::take(&mut segment));
            }
        }
        segments.push(segment);
        for points in segments.iter().filter(|p| !p.is_empty()) {
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"><title>{}</title></polyline>"#,
                points.join(" "),
                escape(name)
            );
        }
        let lx = LEFT + 180.0 * n as f64;
        let ly = HEIGHT - 18.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{colour}"/><text x="{:.1}" y="{ly:.1}">{}</text>"#,
            ly - 10.0,
            lx + 16.0,
            escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use std::fs;

    use study::results::{Case, Metric, ResultFile};

    use crate::report::{Paths, render};

    fn paths(name: &str) -> Paths {
        let dir = std::env::temp_dir().join(format!("xtask-soak-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("results")).unwrap();
        Paths {
            results: dir.join("results"),
            profiles: dir.join("profiles"),
            template: crate::cmd::workspace_root().join("templates/PHASE3_COMPLETE.md.tera"),
            readme: dir.join("README.md"),
            out: dir.join("out"),
        }
    }

    fn evidence(file: ResultFile) -> crate::report::evidence::Evidence {
        crate::report::evidence::Evidence {
            files: [("soak".to_owned(), file)].into(),
            profiles: Vec::new(),
            readme_has_grpc: false,
        }
    }

    #[test]
    fn notes_name_process_events_and_the_run_notes_the_report_keeps() {
        let mut file = ResultFile::new("soak", "harness soak");
        file.cases = vec![
            Case::new("soak/delivery", "nats", None).param("events", "processor-2 killed at 300 s"),
            Case::new("soak/delivery", "memory", None),
            Case::new("soak/criteria", "rss_flat", None)
                .param("phase", "memory")
                .param("verdict", "held"),
        ];
        for key in ["http rates", "grpc generator", "nats", "host"] {
            file.notes.insert(key.to_owned(), format!("{key} note"));
        }
        let soak = evidence(file.clone()).soak().unwrap();
        assert_eq!(soak.verdict, "every criterion of every phase held");
        assert_eq!(soak.command, "harness soak");
        assert_eq!(soak.criteria[0].measured, "–");
        assert!(soak.doors.is_empty() && soak.not_yet.is_empty() && !soak.chart);
        assert_eq!(
            soak.notes,
            [
                "nats: processor-2 killed at 300 s",
                "grpc generator: grpc generator note",
                "http rates: http rates note",
                "nats: nats note",
            ]
        );
        file.cases.clear();
        let soak = evidence(file).soak().unwrap();
        assert_eq!(soak.verdict, "no criterion was judged");
    }

    #[test]
    fn without_a_soak_file_the_section_says_it_was_not_measured() {
        let rendered = render(&paths("none")).unwrap();
        let markdown = &rendered["PHASE3_COMPLETE.md"];
        assert!(
            markdown.contains("## Soak\n\nNot measured yet (`cargo xtask soak`).\n"),
            "{markdown}"
        );
        assert!(!rendered.contains_key("charts/soak_rss.svg"));
    }

    #[test]
    fn a_soak_file_gives_its_criteria_doors_contract_and_a_memory_chart_with_gaps() {
        let paths = paths("file");
        let mut file = ResultFile::new("soak", "target/release/harness soak");
        let criterion = |name: &str, verdict: &str, measured: f64| {
            Case::new("soak/criteria", name, None)
                .param("phase", "nats")
                .param("verdict", verdict)
                .param("limit", "≤ 1.2")
                .param("detail", "system: 1.05×")
                .metric("measured", Metric::exact("ratio", measured))
        };
        file.cases = vec![
            criterion("rss_flat", "held", 1.05),
            criterion("accepted_equals_processed", "failed", 3.0),
            Case::new("soak/process", "processor-2", None)
                .param("phase", "nats")
                .metric(
                    "rss",
                    Metric::from_samples("bytes", vec![2e7, 2.1e7, 0.0, 0.0, 1.9e7, 2e7]),
                ),
            Case::new("soak/latency", "http", None)
                .param("phase", "nats")
                .param("rate", "3000")
                .metric("p99", Metric::from_samples("ms", vec![1.25, 1.5])),
            Case::new("soak/answers", "http", None)
                .param("phase", "nats")
                .metric("accepted", Metric::exact("answers", 900.0))
                .metric("http_400", Metric::exact("answers", 100.0)),
            Case::new("soak/contract", "retry_duplicate", None)
                .param("phase", "nats")
                .param("door", "grpc")
                .param("verdict", "not yet")
                .metric("yes", Metric::exact("answers", 0.0))
                .metric("of", Metric::exact("answers", 40.0)),
        ];
        file.write(&paths.results).unwrap();
        let rendered = render(&paths).unwrap();
        let markdown = &rendered["PHASE3_COMPLETE.md"];
        for expected in [
            "Result: **did not hold**: nats accepted_equals_processed",
            "| nats | rss_flat | 1.050 | ≤ 1.2 | held | system: 1.05× |",
            "| nats | accepted_equals_processed | 3.000 | ≤ 1.2 | **failed** |",
            "| nats | http | 3000 | 1.2, 1.5 | – | accepted 900, http_400 100 |",
            "Parts of the contract not behaving yet: nats grpc `retry_duplicate`: 0 of 40.",
            "![Soak: resident memory of each system process](charts/soak_rss.svg)",
        ] {
            assert!(markdown.contains(expected), "{expected}\n{markdown}");
        }
        let chart = &rendered["charts/soak_rss.svg"];
        // The two seconds the process was down split its line in two.
        assert_eq!(chart.matches("<polyline").count(), 2, "{chart}");
        assert!(chart.contains("nats: processor-2"), "{chart}");
        assert_eq!(
            render(&paths).unwrap(),
            rendered,
            "the same file, the same bytes"
        );
    }
}
