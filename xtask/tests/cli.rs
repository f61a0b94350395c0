//! The `cargo xtask` command line as a user meets it: help without side effects, wrong
//! usage refused with exit code 2, a regression told apart from a failure (3 and 1), the
//! exports and comparisons readable, and the report's tools free of the system.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("xtask runs")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const COMMANDS: [&str; 9] = [
    "ci", "bench", "gate", "profile", "report", "smoke", "soak", "export", "compare",
];

#[test]
fn every_command_has_help_that_does_nothing_else() {
    let before = std::fs::metadata(root().join("reports/PHASE3_COMPLETE.md"))
        .and_then(|m| m.modified())
        .ok();
    for command in COMMANDS {
        let out = xtask(&[command, "--help"]);
        assert!(out.status.success(), "{command} --help: {out:?}");
        let help = text(&out.stdout);
        assert!(
            help.contains(&format!("Usage: cargo xtask {command}")),
            "{command}: {help}"
        );
    }
    let after = std::fs::metadata(root().join("reports/PHASE3_COMPLETE.md"))
        .and_then(|m| m.modified())
        .ok();
    assert_eq!(before, after, "`report --help` must not write the report");
    let top = xtask(&["--help"]);
    assert!(top.status.success());
    for command in COMMANDS {
        assert!(text(&top.stdout).contains(command), "{command} is listed");
    }
    assert!(xtask(&["--version"]).status.success());
}

#[test]
fn wrong_usage_is_refused_with_exit_code_2_and_a_usage_line() {
    for args in [
        &["gate", "--sav"][..],
        &["report", "--chek"],
        &["bench", "--only", "no-such-suite"],
        &["profile", "no_such_component"],
        &["soak", "--minutes", "many"],
        &["export", "--format", "csv"],
        &["compare", "HEAD"],
        &["no-such-command"],
        &[],
    ] {
        let out = xtask(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(text(&out.stderr).contains("Usage:"), "{args:?}: {out:?}");
    }
}

/// A copy of the committed gate baseline in a directory of its own, with `scale` applied
/// to the first instruction count.
fn counts_dir(name: &str, scale: f64) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for suite in ["callgrind", "allocations"] {
        let text = std::fs::read_to_string(root().join(format!("reports/baseline/{suite}.json")))
            .expect("the committed baseline");
        let mut file: serde_json::Value = serde_json::from_str(&text).unwrap();
        if suite == "callgrind" {
            let metric = &mut file["cases"][0]["metrics"]["instructions_per_op"];
            for key in ["median", "min", "max"] {
                metric[key] = (metric[key].as_f64().unwrap() * scale).into();
            }
            metric["samples"] = serde_json::json!([metric["median"]]);
        }
        std::fs::write(dir.join(format!("{suite}.json")), file.to_string()).unwrap();
    }
    dir
}

#[test]
fn the_gate_tells_a_regression_from_a_failure_to_measure() {
    let same = counts_dir("same", 1.0);
    let out = xtask(&["gate", "--from", same.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let worse = counts_dir("worse", 1.5);
    let out = xtask(&["gate", "--json", "--from", worse.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "a regression: {out:?}");
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON verdict");
    assert_eq!(verdict["passed"], false);
    assert_eq!(verdict["findings"][0]["rule"], "regressed");

    let missing = std::env::temp_dir().join("xtask-cli-no-such-dir");
    let out = xtask(&["gate", "--from", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "nothing to read: {out:?}");
    for dir in [same, worse] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn exports_are_the_formats_dashboards_read() {
    let out = xtask(&["export", "--format", "bmf"]);
    assert!(out.status.success(), "{out:?}");
    let bmf: serde_json::Value = serde_json::from_slice(&out.stdout).expect("BMF is JSON");
    let benchmarks = bmf.as_object().expect("an object of benchmarks");
    assert!(!benchmarks.is_empty());
    for (name, measures) in benchmarks {
        for (measure, value) in measures.as_object().expect("measures") {
            assert!(value["value"].is_number(), "{name} {measure}: {value}");
        }
    }

    let out = xtask(&["export", "--format", "github-action-benchmark"]);
    assert!(out.status.success(), "{out:?}");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let list = list.as_array().expect("a list");
    assert!(!list.is_empty());
    for entry in list {
        assert!(
            entry["name"].is_string() && entry["unit"].is_string(),
            "{entry}"
        );
        assert!(entry["value"].is_number(), "{entry}");
    }
    assert!(
        !list
            .iter()
            .any(|e| e["name"].as_str().unwrap().ends_with("— capacity")),
        "capacity is bigger-is-better and does not belong in customSmallerIsBetter"
    );
}

#[test]
fn compare_reads_directories_and_revisions() {
    let same = counts_dir("cmp-a", 1.0);
    let worse = counts_dir("cmp-b", 1.5);
    let out = xtask(&[
        "compare",
        same.to_str().unwrap(),
        worse.to_str().unwrap(),
        "--changed",
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON rows");
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["verdict"], "worse");
    assert!(
        (rows[0]["ratio"].as_f64().unwrap() - 1.5).abs() < 1e-9,
        "{rows:?}"
    );

    // The committed results of this revision against the working tree's.
    let out = xtask(&["compare", "HEAD", "reports/results", "--suite", "callgrind"]);
    if text(&out.stderr).contains("not a git repository") {
        eprintln!("skipped the revision comparison: not a git checkout");
    } else {
        assert!(out.status.success(), "{out:?}");
        assert!(text(&out.stdout).contains("instructions_per_op"), "{out:?}");
    }
    let out = xtask(&["compare", "no-such-revision", "reports/results"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    for dir in [same, worse] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn the_report_and_the_gate_do_not_build_the_system() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-p", "xtask", "-e", "normal", "--prefix", "none"])
        .current_dir(root())
        .output()
        .expect("cargo tree");
    assert!(out.status.success(), "{out:?}");
    let tree = text(&out.stdout);
    for heavy in ["system ", "harness ", "tonic ", "async-nats ", "pprof "] {
        assert!(
            !tree.lines().any(|l| l.starts_with(heavy)),
            "xtask depends on {heavy}:\n{tree}"
        );
    }
}
