//! The report on fixture result files.

use std::fs;

use study::results::{Case, Metric, ResultFile, Side};

use super::{Paths, render, stale_files, write};

fn fixture_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-report-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("results")).unwrap();
    dir
}

fn paths(dir: &std::path::Path) -> Paths {
    Paths {
        results: dir.join("results"),
        profiles: dir.join("profiles"),
        template: crate::cmd::workspace_root().join("templates/PHASE3_COMPLETE.md.tera"),
        readme: dir.join("README.md"),
        out: dir.join("out"),
    }
}

fn write_allocations(dir: &std::path::Path, pooled_allocs: f64) {
    let mut file = ResultFile::new("allocations", "fixture");
    file.cases = vec![
        Case::new("queue/publish_consume", "memory", Some(Side::Baseline))
            .metric("allocs_per_op", Metric::exact("allocations", 14.0)),
        Case::new("queue/publish_consume", "pooled", Some(Side::Optimized))
            .metric("allocs_per_op", Metric::exact("allocations", pooled_allocs)),
    ];
    file.write(&dir.join("results")).unwrap();
}

#[test]
fn boxes_are_ticked_only_with_evidence() {
    let dir = fixture_dir("evidence");
    write_allocations(&dir, 0.0);
    let report = render(&paths(&dir)).unwrap();
    let markdown = &report["PHASE3_COMPLETE.md"];
    assert!(
        markdown
            .contains("- [x] Memory profiles show the optimizations — results/allocations.json"),
        "{markdown}"
    );
    // No criterion results in the fixtures: the worker-pool box stays open, and says why.
    assert!(
        markdown.contains("- [ ] BenchmarkWorkerPool completes — not proven: no worker_pool case"),
        "{markdown}"
    );
    assert!(
        markdown.contains("- [ ] CPU profiles for every component — not proven"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| queue/publish_consume: memory → pooled |"),
        "{markdown}"
    );
    assert!(!markdown.contains("{{"), "unrendered template syntax");
}

#[test]
fn a_regressed_pool_does_not_tick_its_box() {
    let dir = fixture_dir("regressed");
    write_allocations(&dir, 20.0);
    let markdown = render(&paths(&dir))
        .unwrap()
        .remove("PHASE3_COMPLETE.md")
        .unwrap();
    assert!(
        markdown.contains("- [ ] Memory profiles show the optimizations"),
        "{markdown}"
    );
}

#[test]
fn check_finds_a_stale_report() {
    let dir = fixture_dir("stale");
    write_allocations(&dir, 0.0);
    let paths = paths(&dir);
    let rendered = render(&paths).unwrap();
    write(&paths.out, &rendered).unwrap();
    assert!(
        stale_files(&paths.out, &render(&paths).unwrap()).is_empty(),
        "renders the same twice"
    );
    write_allocations(&dir, 1.0);
    let stale = stale_files(&paths.out, &render(&paths).unwrap());
    assert_eq!(stale, ["PHASE3_COMPLETE.html", "PHASE3_COMPLETE.md"]);
}

#[test]
fn a_chart_the_results_no_longer_render_is_stale_and_removed() {
    let dir = fixture_dir("leftover");
    write_allocations(&dir, 0.0);
    let paths = paths(&dir);
    write(&paths.out, &render(&paths).unwrap()).unwrap();
    let stray = paths.out.join("charts/spectrum_gone.svg");
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, "<svg/>").unwrap();
    let stale = stale_files(&paths.out, &render(&paths).unwrap());
    assert_eq!(stale, ["charts/spectrum_gone.svg (no longer rendered)"]);
    write(&paths.out, &render(&paths).unwrap()).unwrap();
    assert!(!stray.exists(), "writing the report removes it");
    assert!(stale_files(&paths.out, &render(&paths).unwrap()).is_empty());
}

fn load_case(group: &str, variant: &str, side: Side, protocol: &str, measure: &str) -> Case {
    Case::new(group, variant, Some(side))
        .param("protocol", protocol)
        .param("measure", measure)
}

/// The load suite's pairs get a table of their own (capacity, CPU per message, p99 at each
/// rate), a capacity measured on an unsaturated server is marked, and the targets against
/// the bare servers are judged from the same cases, a miss naming the stage that costs most.
#[test]
fn end_to_end_pairs_show_capacity_latency_and_stages_and_judge_the_bare_targets() {
    let dir = fixture_dir("end-to-end");
    let mut file = ResultFile::new("load", "fixture");
    let capacity = |rate: f64, share: f64, cpu: f64| {
        move |case: Case| {
            case.metric("capacity", Metric::from_samples("msg/s", vec![rate]))
                .metric("concurrency", Metric::from_samples("requests", vec![64.0]))
                .metric(
                    "server_cpu_share",
                    Metric::from_samples("cores", vec![share]),
                )
                .metric("server_cpu_per_msg", Metric::from_samples("µs", vec![cpu]))
        }
    };
    let latency = |case: Case, load: &str, p99: f64| {
        case.param("load", load)
            .metric("p99", Metric::from_samples("ms", vec![p99]))
    };
    for (variant, side, rate, share, p99) in [
        ("bare", Side::Baseline, 80_000.0, 0.99, 0.5),
        ("system", Side::Optimized, 40_000.0, 0.6, 1.5),
    ] {
        let case = |measure| load_case("load/vs_bare", variant, side, "http1", measure);
        file.cases
            .push(capacity(rate, share, 1e6 / rate)(case("capacity")));
        for load in ["25%", "50%", "75%"] {
            file.cases.push(latency(case("latency"), load, p99));
        }
    }
    file.write(&dir.join("results")).unwrap();
    let mut stages = ResultFile::new("stages", "fixture");
    let mut case = Case::new("stages", "http1", None);
    for (key, value) in [
        ("rate", 40_000.0),
        ("front_door", 10.0),
        ("decode_validate", 2.0),
        ("hop_client", 4.0),
        ("processor_server", 3.0),
        ("queue", 0.5),
        ("worker", 0.5),
        ("unsampled", 0.0),
        ("total", 20.0),
        ("front_samples_kept", 0.9),
        ("processor_samples_kept", 0.8),
    ] {
        case = case.metric(key, Metric::exact("µs", value));
    }
    stages.cases.push(case);
    stages.write(&dir.join("results")).unwrap();
    let report = render(&paths(&dir)).unwrap();
    let markdown = &report["PHASE3_COMPLETE.md"];
    assert!(
        markdown.contains(
            "| http1 | 40k | 10.00 | 2.00 | 4.00 | 3.00 | 0.50 | 0.50 | 0.00 | 20.00 | 12.50 | front-door protocol (50%) | 90% / 80% |"
        ),
        "{markdown}"
    );
    assert!(
        markdown.contains(
            "| load/vs_bare: bare → system | http1 | 80k → 40k* | 0.50 | 64 → 64 | 12.5 → 25.0 | 0.50 → 1.50 | 0.50 → 1.50 | 0.50 → 1.50 |"
        ),
        "{markdown}"
    );
    assert!(
        markdown.contains(
            "| HTTP/1.1 ingest against the bare server (capacity) | ≥ 0.70× bare | 0.50× bare, 0.20 short; most CPU: front-door protocol (50%) | **no** |"
        ),
        "{markdown}"
    );
    assert!(
        markdown.contains("| p99 at 50% of the system's capacity against the bare server at that rate | ≤ 2× bare | http1 3.00× | **no** |"),
        "{markdown}"
    );
    assert!(
        !markdown.contains("| load/vs_bare: bare → system | protocol=http1"),
        "load pairs are not repeated in the table of every pair"
    );
}

/// Latency cases of `load/ingress` at 50% with three rounds each, and the allocation counts
/// of the protocol pairs (exact: one value each).
fn write_rounds_and_counts(dir: &std::path::Path) {
    let mut file = ResultFile::new("load", "fixture");
    for (variant, side) in [("bare", Side::Baseline), ("system", Side::Optimized)] {
        file.cases.push(
            load_case("load/ingress", variant, side, "http1", "latency")
                .param("load", "50%")
                .metric("p50", Metric::from_samples("ms", vec![1.0, 2.0, 5.0]))
                .metric("p99", Metric::from_samples("ms", vec![3.0, 4.0, 9.0])),
        );
    }
    file.write(&dir.join("results")).unwrap();
    let mut allocations = ResultFile::new("allocations", "fixture");
    for (variant, side, count) in [
        ("http1", Side::Baseline, 30.0),
        ("h2c", Side::Optimized, 20.0),
    ] {
        allocations.cases.push(
            Case::new("protocol/round_trip", variant, Some(side))
                .metric("allocs_per_op", Metric::exact("allocations", count)),
        );
    }
    allocations.write(&dir.join("results")).unwrap();
}

/// Each bar of a chart drawn from rounds carries a whisker from the smallest to the largest
/// round, and the legend says what the whiskers are; an exact count gets none.
#[test]
fn bars_of_rounds_carry_a_whisker_from_min_to_max() {
    let dir = fixture_dir("whiskers");
    write_rounds_and_counts(&dir);
    let report = render(&paths(&dir)).unwrap();
    let chart = &report["charts/load_latency.svg"];
    assert_eq!(
        chart.matches("<path class=\"whisker\"").count(),
        4,
        "{chart}"
    );
    assert!(chart.contains("range of the rounds: 1.0–5.0"), "{chart}");
    assert!(chart.contains("whiskers: min–max of the rounds"), "{chart}");
    let exact = &report["charts/protocol_allocations.svg"];
    assert!(exact.contains("<rect x="), "{exact}");
    assert!(!exact.contains("whisker"), "{exact}");
}

/// A small `.hgrm` file: latency `scale` ms at the median, rising towards the tail.
fn hgrm(scale: f64) -> String {
    let mut text = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n".to_owned();
    for (p, factor) in [
        (0.0, 0.5),
        (0.5, 1.0),
        (0.9, 1.5),
        (0.99, 3.0),
        (0.999, 6.0),
        (0.9999, 9.0),
    ] {
        text.push_str(&format!(
            "{:12.3} {p:.12} {:10} {:14.2}\n",
            scale * factor,
            (p * 10_000.0) as u64,
            1.0 / (1.0 - p)
        ));
    }
    text.push_str(&format!(
        "{:12.3} 1.000000000000      10000\n",
        scale * 10.0
    ));
    text.push_str("#[Mean    =        0.063, StdDeviation   =        0.034]\n");
    text
}

/// Latency cases of `load/vs_bare` for http1 at 25% and 50%, each side with three rounds
/// whose histograms are written under `results/hgrm/load/`; added to the load results
/// already written.
fn write_load_with_histograms(dir: &std::path::Path, with_histograms: bool) {
    let mut file = ResultFile::read(&dir.join("results/load.json"))
        .unwrap_or_else(|_| ResultFile::new("load", "fixture"));
    for (variant, side, scale) in [
        ("bare", Side::Baseline, 0.1),
        ("system", Side::Optimized, 1.0),
    ] {
        for load in ["25%", "50%"] {
            let mut case = load_case("load/vs_bare", variant, side, "http1", "latency")
                .param("load", load)
                .metric("p99", Metric::from_samples("ms", vec![scale * 3.0]));
            if with_histograms {
                let mut names = Vec::new();
                for (round, factor) in [1.0, 4.0, 2.0].into_iter().enumerate() {
                    let name = format!("hgrm/load/http1-{variant}-{load}-{round}.hgrm");
                    let path = dir.join("results").join(&name);
                    fs::create_dir_all(path.parent().unwrap()).unwrap();
                    fs::write(&path, hgrm(scale * factor)).unwrap();
                    names.push(name);
                }
                case = case.param("hgrm", names.join(","));
            }
            file.cases.push(case);
        }
    }
    file.write(&dir.join("results")).unwrap();
}

/// One spectrum per front door, a line per side at 50% of capacity: the round with the
/// median p99 drawn solid and the other rounds faint.
#[test]
fn histograms_give_a_percentile_spectrum_per_front_door() {
    let dir = fixture_dir("spectrum");
    write_load_with_histograms(&dir, true);
    let report = render(&paths(&dir)).unwrap();
    let chart = &report["charts/spectrum_http1.svg"];
    assert_eq!(
        chart.matches("<polyline class=\"round\"").count(),
        2,
        "one solid line per side: {chart}"
    );
    assert_eq!(
        chart.matches("<polyline class=\"other-round\"").count(),
        4,
        "two faint rounds per side: {chart}"
    );
    for label in ["50%", "90%", "99%", "99.9%", "99.99%"] {
        assert!(
            chart.contains(&format!(">{label}</text>")),
            "{label}: {chart}"
        );
    }
    // The solid line of the system is its middle round (scale 2: p99 at 6 ms), not the
    // slowest (scale 4: 12 ms).
    assert!(chart.contains("system: p99 6.00 ms"), "{chart}");
    assert!(chart.contains("bare: p99 0.600 ms"), "{chart}");
    let markdown = &report["PHASE3_COMPLETE.md"];
    assert!(
        markdown.contains("](charts/spectrum_http1.svg)"),
        "{markdown}"
    );
    assert!(
        !markdown.contains("hold no latency histograms"),
        "{markdown}"
    );
}

#[test]
fn without_histograms_the_report_says_so_and_draws_no_spectrum() {
    let dir = fixture_dir("no-spectrum");
    write_load_with_histograms(&dir, false);
    let report = render(&paths(&dir)).unwrap();
    assert!(!report.keys().any(|k| k.contains("spectrum")), "{report:?}");
    assert!(report["PHASE3_COMPLETE.md"].contains(
        "The load results hold no latency histograms yet, so no percentile spectrum is drawn."
    ),);
}

#[test]
fn a_missing_histogram_file_is_an_error_naming_it() {
    let dir = fixture_dir("missing-hgrm");
    write_load_with_histograms(&dir, true);
    fs::remove_file(dir.join("results/hgrm/load/http1-system-50%-2.hgrm")).unwrap();
    let err = format!("{:#}", render(&paths(&dir)).unwrap_err());
    assert!(err.contains("http1-system-50%-2.hgrm"), "{err}");
}

/// The page holds what the Markdown holds, with every chart inline and nothing to load.
#[test]
fn the_html_page_is_self_contained_and_the_same_every_time() {
    let dir = fixture_dir("html");
    write_rounds_and_counts(&dir);
    write_load_with_histograms(&dir, true);
    let report = render(&paths(&dir)).unwrap();
    let html = &report["PHASE3_COMPLETE.html"];
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(
        html.contains("<title>Phase 3: optimization and profiling — results</title>"),
        "{html}"
    );
    let charts = report.keys().filter(|k| k.starts_with("charts/")).count();
    assert!(charts >= 2, "{report:?}");
    assert_eq!(html.matches("<svg ").count(), charts, "{html}");
    assert!(html.contains("<table>"), "{html}");
    assert!(html.contains("<style>"), "{html}");
    for external in ["<img", "<script", "<link", "src=", "url("] {
        assert!(!html.contains(external), "{external} in the page");
    }
    assert_eq!(&render(&paths(&dir)).unwrap()["PHASE3_COMPLETE.html"], html);
}

/// The handshake pair (instructions and allocations per new connection) and the TLS load
/// pairs, as the result files hold them.
fn write_tls(dir: &std::path::Path) {
    let per_connection = |suite: &str, metrics: &[(&str, &str, [f64; 3])]| {
        let mut file = ResultFile::new(suite, "fixture");
        for (index, (variant, side)) in [
            ("plain", Side::Baseline),
            ("tls_full", Side::Optimized),
            ("tls_resumed", Side::Optimized),
        ]
        .into_iter()
        .enumerate()
        {
            let mut case = Case::new("hop/new_connection", variant, Some(side));
            for (name, unit, values) in metrics {
                case = case.metric(name, Metric::exact(unit, values[index]));
            }
            if suite == "allocations" && variant != "plain" {
                let resumed = if variant == "tls_resumed" { 1.0 } else { 0.0 };
                case = case.metric("resumed_share", Metric::exact("ratio", resumed));
            }
            file.cases.push(case);
        }
        file.write(&dir.join("results")).unwrap();
    };
    per_connection(
        "callgrind",
        &[(
            "instructions_per_op",
            "instructions",
            [1_000_000.0, 9_000_000.0, 5_000_000.0],
        )],
    );
    per_connection(
        "allocations",
        &[
            ("allocs_per_op", "allocations", [100.0, 400.0, 300.0]),
            ("bytes_per_op", "bytes", [20_000.0, 80_000.0, 60_000.0]),
        ],
    );
    let mut load = ResultFile::new("load", "fixture");
    for (group, plain_rate, tls_rate) in [
        ("load/hop_tls", 20_000.0, 18_000.0),
        ("load/hop_tls_baseline", 5_000.0, 1_000.0),
    ] {
        for (variant, side, rate, p99) in [
            ("plain", Side::Baseline, plain_rate, 0.5),
            ("tls", Side::Optimized, tls_rate, 0.6),
        ] {
            load.cases.push(
                load_case(group, variant, side, "http1", "capacity")
                    .metric("capacity", Metric::from_samples("msg/s", vec![rate]))
                    .metric(
                        "server_cpu_share",
                        Metric::from_samples("cores", vec![0.99]),
                    ),
            );
            for load_at in ["25%", "50%", "75%"] {
                load.cases.push(
                    load_case(group, variant, side, "http1", "latency")
                        .param("load", load_at)
                        .metric("p99", Metric::from_samples("ms", vec![p99])),
                );
            }
        }
    }
    load.write(&dir.join("results")).unwrap();
}

/// The TLS section reads every figure from the result files: the handshake's instructions
/// and allocations per new connection against plaintext, which handshakes resumed, and the
/// two load pairs' capacity and p99 ratios.
#[test]
fn the_tls_section_shows_the_handshake_and_the_load_pairs_from_the_results() {
    let dir = fixture_dir("tls");
    write_tls(&dir);
    let markdown = render(&paths(&dir))
        .unwrap()
        .remove("PHASE3_COMPLETE.md")
        .unwrap();
    for row in [
        "| instructions | 1.0M | 9.0M | 5.0M | +8.0M (9.00×) | +4.0M (5.00×) | results/callgrind.json |",
        "| allocations | 100 | 400 | 300 | +300 (4.00×) | +200 (3.00×) | results/allocations.json |",
        "| bytes allocated | 20k | 80k | 60k | +60k (4.00×) | +40k (3.00×) | results/allocations.json |",
        "| load/hop_tls: plain → tls | pooled | 20k → 18k | 0.90 | 0.50 → 0.60 (1.20×) | 0.50 → 0.60 (1.20×) | 0.50 → 0.60 (1.20×) |",
        "| load/hop_tls_baseline: plain → tls | baseline, unbatched (a new connection per message) | 5000 → 1000 | 0.20 |",
    ] {
        assert!(markdown.contains(row), "{row}\n{markdown}");
    }
    assert!(
        markdown.contains("were measured: tls_full 0% of its connections, tls_resumed 100%"),
        "{markdown}"
    );
    assert!(!markdown.contains("{{"), "unrendered template syntax");
}

/// Without the TLS cases (results measured before they existed) the section renders and
/// says what is missing.
#[test]
fn without_tls_results_the_tls_section_says_they_are_not_measured() {
    let dir = fixture_dir("no-tls");
    write_allocations(&dir, 0.0);
    let markdown = render(&paths(&dir))
        .unwrap()
        .remove("PHASE3_COMPLETE.md")
        .unwrap();
    assert!(markdown.contains("## TLS on the hop"), "{markdown}");
    assert!(markdown.contains("No handshake counts yet"), "{markdown}");
    assert!(markdown.contains("No TLS load run yet"), "{markdown}");
}

/// The queue pair with the NATS queue beside it, on one server and replicated on three:
/// capacity, p99 at each rate and the broker's publish-to-ack latency of each.
fn write_queue(dir: &std::path::Path, with_nats: bool) {
    let mut load = ResultFile::new("load", "fixture");
    let mut sides = vec![
        ("memory", Some(Side::Baseline), 60_000.0, 0.4, None),
        ("pooled", Some(Side::Optimized), 62_000.0, 0.4, None),
    ];
    if with_nats {
        sides.push(("nats", None, 12_000.0, 10.0, Some((0.2, 0.4))));
        sides.push(("nats_r3", None, 6_000.0, 20.0, Some((0.6, 1.2))));
    }
    for (variant, side, rate, p99, ack) in sides {
        let case = |measure: &str| {
            Case::new("load/queue", variant, side)
                .param("protocol", "http1")
                .param("measure", measure)
        };
        let mut capacity = case("capacity")
            .metric("capacity", Metric::from_samples("msg/s", vec![rate]))
            .metric(
                "server_cpu_share",
                Metric::from_samples("cores", vec![0.99]),
            );
        if let Some((p50, p99)) = ack {
            capacity = capacity
                .metric("publish_ack_p50", Metric::from_samples("ms", vec![p50]))
                .metric("publish_ack_p99", Metric::from_samples("ms", vec![p99]));
        }
        load.cases.push(capacity);
        for load_at in ["25%", "50%", "75%"] {
            load.cases.push(
                case("latency")
                    .param("load", load_at)
                    .metric("p99", Metric::from_samples("ms", vec![p99])),
            );
        }
    }
    load.write(&dir.join("results")).unwrap();
}

/// The replicated NATS queue is shown beside the one on a single server, each figure with
/// its ratio to the single server's, so that what replication costs can be read off.
#[test]
fn the_replicated_nats_queue_is_shown_beside_the_single_server() {
    let dir = fixture_dir("queue");
    write_queue(&dir, true);
    let report = render(&paths(&dir)).unwrap();
    let markdown = &report["PHASE3_COMPLETE.md"];
    for row in [
        "| nats | 12k | 10.00 | 10.00 | 10.00 | 0.20 | 0.40 |",
        "| nats_r3 | 6000 (0.50×) | 20.00 (2.00×) | 20.00 (2.00×) | 20.00 (2.00×) | 0.60 (3.00×) | 1.20 (3.00×) |",
    ] {
        assert!(markdown.contains(row), "{row}\n{markdown}");
    }
    assert!(!markdown.contains("No NATS load run yet"), "{markdown}");
    let chart = &report["charts/load_queue.svg"];
    assert!(chart.contains("nats_r3"), "{chart}");
    assert!(!markdown.contains("{{"), "unrendered template syntax");
}

/// Without NATS cases (no nats-server where the load ran) the section says so.
#[test]
fn without_nats_results_the_queue_section_says_they_are_not_measured() {
    let dir = fixture_dir("no-nats");
    write_queue(&dir, false);
    let markdown = render(&paths(&dir))
        .unwrap()
        .remove("PHASE3_COMPLETE.md")
        .unwrap();
    assert!(markdown.contains("No NATS load run yet"), "{markdown}");
}

/// Both stream-shape groups of the criterion suite, three rounds per shape; `worst` is the
/// end-to-end group's `unknown_fields` time in rounds (ns).
fn write_shapes(dir: &std::path::Path, worst: [f64; 3]) {
    let mut file = ResultFile::new("criterion", "fixture");
    let ns = |rounds: [f64; 3]| Metric::from_samples("ns", rounds.to_vec());
    for (group, data, unknown) in [
        (
            "codec/stream_shape",
            [0.5e6, 0.4e6, 0.6e6],
            [10.0e6, 9.0e6, 12.0e6],
        ),
        ("client/stream_shape", [4.0e6, 3.0e6, 5.0e6], worst),
    ] {
        file.cases.extend([
            Case::new(group, "data", None).metric("time_per_op", ns(data)),
            Case::new(group, "unknown_fields", None).metric("time_per_op", ns(unknown)),
        ]);
    }
    file.write(&dir.join("results")).unwrap();
}

fn shapes_markdown(dir: &std::path::Path) -> String {
    render(&paths(dir))
        .unwrap()
        .remove("PHASE3_COMPLETE.md")
        .unwrap()
}

/// The target is judged on the end-to-end group; the reading-only group is shown beside
/// it with its ratio and no verdict.
#[test]
fn the_shapes_section_judges_the_end_to_end_ratio_and_shows_reading_for_context() {
    let dir = fixture_dir("shapes-met");
    write_shapes(&dir, [6.0e6, 7.0e6, 6.4e6]);
    let markdown = shapes_markdown(&dir);
    for row in [
        "| group | times | data (ms) | unknown_fields (ms) | ratio | target | verdict |",
        "| codec/stream_shape | the front door's reading alone | 0.50 (0.40..0.60) | 10.00 (9.00..12.00) | 20.00 (20.00..22.50) | none: context | – |",
        "| client/stream_shape | end to end, until its answer | 4.00 (3.00..5.00) | 6.40 (6.00..7.00) | 1.60 (1.28..2.33) | ≤ 2× the time of one carried in data | met |",
        "| Worst-shaped 8 MiB stream message, end to end | ≤ 2× the time of one carried in data | 1.60× data | yes | results/criterion.json: client/stream_shape |",
    ] {
        assert!(markdown.contains(row), "{row}\n{markdown}");
    }
    assert!(
        !markdown.contains("Neither group was measured"),
        "{markdown}"
    );
    assert!(!markdown.contains("{{"), "unrendered template syntax");
}

#[test]
fn the_shapes_section_says_plainly_when_the_target_is_not_met() {
    let dir = fixture_dir("shapes-missed");
    write_shapes(&dir, [9.0e6, 8.0e6, 10.0e6]);
    let markdown = shapes_markdown(&dir);
    for row in [
        "| client/stream_shape | end to end, until its answer | 4.00 (3.00..5.00) | 9.00 (8.00..10.00) | 2.25 (2.00..2.67) | ≤ 2× the time of one carried in data | **not met** |",
        "| Worst-shaped 8 MiB stream message, end to end | ≤ 2× the time of one carried in data | 2.25× data | **no** |",
    ] {
        assert!(markdown.contains(row), "{row}\n{markdown}");
    }
}

/// Criterion results without the shape groups (measured before they existed): the section
/// renders, says so, and the target is not measured.
#[test]
fn without_the_shape_groups_the_section_says_they_were_not_measured() {
    let dir = fixture_dir("shapes-none");
    let mut file = ResultFile::new("criterion", "fixture");
    file.cases = vec![
        Case::new("codec/decode", "json", Some(Side::Baseline))
            .metric("time_per_op", Metric::exact("ns", 800.0)),
        Case::new("codec/decode", "protobuf", Some(Side::Optimized))
            .metric("time_per_op", Metric::exact("ns", 200.0)),
    ];
    file.write(&dir.join("results")).unwrap();
    let markdown = shapes_markdown(&dir);
    assert!(
        markdown.contains("## Message shapes: linear reading"),
        "{markdown}"
    );
    assert!(
        markdown.contains("Neither group was measured in these results"),
        "{markdown}"
    );
    assert!(!markdown.contains("| codec/stream_shape |"), "{markdown}");
    assert!(
        markdown.contains(
            "| Worst-shaped 8 MiB stream message, end to end | ≤ 2× the time of one carried in data | not measured | not measured |  |"
        ),
        "{markdown}"
    );
}
