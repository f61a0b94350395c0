//! The report on fixture result files.

use std::fs;

use harness::results::{Case, Metric, ResultFile, Side};

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
    assert_eq!(stale, ["PHASE3_COMPLETE.md"]);
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
