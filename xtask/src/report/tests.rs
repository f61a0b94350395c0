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
