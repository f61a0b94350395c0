//! `cargo xtask gate [--save]`: runs the deterministic suites (callgrind instruction counts
//! and allocation counts) and compares them with the committed baseline in
//! `reports/baseline/` (rules in `harness::gate`). Exits non-zero with a table of what
//! regressed. `--save` makes the current counts the new baseline. `--from DIR` compares the
//! result files a `cargo xtask bench --out DIR` run already wrote instead of measuring again.

use std::path::Path;

use anyhow::{Context, bail};
use harness::{
    gate::{compare, table},
    results::ResultFile,
};

use crate::cmd::{cargo, workspace_root};

/// How much worse than the baseline a count may get.
const TOLERANCE: f64 = 0.05;

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let save = args.iter().any(|a| a == "--save");
    let root = workspace_root();
    let current = match args.iter().position(|a| a == "--from") {
        Some(i) => {
            let dir = root.join(args.get(i + 1).context("--from needs a directory")?);
            ["callgrind", "allocations"]
                .into_iter()
                .map(|suite| {
                    let path = dir.join(format!("{suite}.json"));
                    ResultFile::read(&path).with_context(|| format!("reading {}", path.display()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?
        }
        None => measure(&root.join("target/gate"))?,
    };
    let baseline_dir = root.join("reports/baseline");
    if save {
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
    if findings.is_empty() {
        println!(
            "gate: {cases} cases within {:.0}% of the baseline; optimizations that beat their baseline still do",
            TOLERANCE * 100.0
        );
        return Ok(());
    }
    eprintln!("{}", table(&findings));
    bail!(
        "gate: {} finding(s) against the committed baseline",
        findings.len()
    )
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
    let allocations = ResultFile::read(&dir.join("allocations.json"))?;
    Ok(vec![instructions, allocations])
}
