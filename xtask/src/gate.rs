//! `cargo xtask gate [--save] [--from DIR] [--json]`: runs the deterministic suites
//! (callgrind instruction counts and allocation counts) and compares them with the committed
//! baseline in `reports/baseline/` (rules in `study::gate`). A finding is a regression
//! (exit code 3) with a table of what regressed; a failure to measure is exit code 1.
//! `--save` makes the current counts the new baseline. `--from DIR` compares the result
//! files a `cargo xtask bench --out DIR` run already wrote instead of measuring again.

use std::path::{Path, PathBuf};

use anyhow::Context;
use study::{
    gate::{Finding, GATED_SUITES, compare, table},
    results::ResultFile,
};

use crate::{
    Regression,
    cmd::{cargo, print_out, workspace_root},
};

/// How much worse than the baseline a count may get.
const TOLERANCE: f64 = 0.05;

/// `cargo xtask gate`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Make the counts measured now the committed baseline (reports/baseline/).
    #[arg(long, conflicts_with = "json")]
    save: bool,
    /// Read the counts a `cargo xtask bench --out DIR` run wrote instead of measuring.
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
    /// Print the verdict and every finding as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// What the gate found, as `--json` prints it.
#[derive(Debug, serde::Serialize)]
struct Verdict<'a> {
    passed: bool,
    tolerance: f64,
    cases: usize,
    findings: &'a [Finding],
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let root = workspace_root();
    let current = match &args.from {
        Some(dir) => read_counts(&root.join(dir))?,
        None => measure(&root.join("target/gate"))?,
    };
    let baseline_dir = root.join("reports/baseline");
    if args.save {
        for file in &current {
            file.write(&baseline_dir)?;
        }
        println!("gate: baseline saved to {}", baseline_dir.display());
        return Ok(());
    }
    let mut findings = Vec::new();
    for file in &current {
        let committed = ResultFile::read(&baseline_dir.join(format!("{}.json", file.suite)))
            .with_context(|| {
                format!(
                    "no committed baseline for {} (run `cargo xtask gate --save`)",
                    file.suite
                )
            })?;
        findings.extend(compare(&committed, file, TOLERANCE));
    }
    let cases: usize = current.iter().map(|f| f.cases.len()).sum();
    if args.json {
        let verdict = Verdict {
            passed: findings.is_empty(),
            tolerance: TOLERANCE,
            cases,
            findings: &findings,
        };
        print_out(&(serde_json::to_string_pretty(&verdict)? + "\n"))?;
    }
    if findings.is_empty() {
        if !args.json {
            println!(
                "gate: {cases} cases within {:.0}% of the baseline; optimizations that beat their baseline still do",
                TOLERANCE * 100.0
            );
        }
        return Ok(());
    }
    if !args.json {
        eprintln!("{}", table(&findings));
    }
    Err(Regression(format!(
        "gate: {} finding(s) against the committed baseline",
        findings.len()
    ))
    .into())
}

/// The counts a `bench --out DIR` run wrote.
fn read_counts(dir: &Path) -> anyhow::Result<Vec<ResultFile>> {
    GATED_SUITES
        .into_iter()
        .map(|suite| {
            let path = dir.join(format!("{}.json", suite.as_str()));
            ResultFile::read(&path).with_context(|| format!("reading {}", path.display()))
        })
        .collect()
}

/// Runs both deterministic suites; the results are also written to `dir`.
fn measure(dir: &Path) -> anyhow::Result<Vec<ResultFile>> {
    let instructions = crate::callgrind::measure("cargo xtask gate", None)?;
    instructions.write(dir)?;
    let dir_arg = dir.to_string_lossy().into_owned();
    cargo(&[
        "run",
        "-p",
        "harness",
        "--release",
        "--bin",
        "allocs",
        "--",
        "--out",
        &dir_arg,
    ])?;
    read_counts(dir)
}
