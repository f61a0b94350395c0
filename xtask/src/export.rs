//! `cargo xtask export --format bmf|github-action-benchmark [--from DIR|REV] [--out FILE]`:
//! the results in a format benchmark dashboards read (rules in `study::export`).

use std::path::PathBuf;

use crate::{
    cmd::{print_out, workspace_root},
    results::read_set,
};

/// A format `export` writes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    /// Bencher Metric Format: benchmark → measure → value, lower and upper value.
    Bmf,
    /// github-action-benchmark's `customSmallerIsBetter` list (metrics where less is better).
    GithubActionBenchmark,
}

/// `cargo xtask export`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The format to write.
    #[arg(long, value_enum)]
    format: Format,
    /// A results directory or a git revision (default: reports/results).
    #[arg(long, value_name = "DIR|REV", default_value = "reports/results")]
    from: String,
    /// Write to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let files = read_set(&args.from)?;
    let mut text = match args.format {
        Format::Bmf => serde_json::to_string_pretty(&study::export::bmf(&files))?,
        Format::GithubActionBenchmark => {
            let (entries, left_out) = study::export::github_action_benchmark(&files);
            if left_out > 0 {
                eprintln!(
                    "export: {left_out} metric(s) where more is better (capacity, throughput, \
                     reuse) left out of the smaller-is-better list"
                );
            }
            serde_json::to_string_pretty(&entries)?
        }
    };
    text.push('\n');
    match &args.out {
        Some(path) => {
            let path = workspace_root().join(path);
            std::fs::write(&path, text)?;
            eprintln!("export: wrote {}", path.display());
        }
        None => print_out(&text)?,
    }
    Ok(())
}
