//! Writes `defaults.json` (into `reports/results/` or `--out DIR`): every setting of the
//! `system` binary that has a default, read from its command-line definition, so the
//! report can name the defaults without building the system. A test of `harness::pairs`
//! fails when the committed file no longer matches the code.
//!
//! Usage: `cargo run -p harness --bin defaults [-- --out DIR]`

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use harness::{pairs::defaults_file, results::default_dir};

/// Writes the `system` binary's defaults as a result file.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Directory of the result file (reports/results by default).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let dir = args.out.unwrap_or_else(default_dir);
    match defaults_file().write(&dir) {
        Ok(path) => {
            println!("defaults: wrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("defaults: {err}");
            ExitCode::FAILURE
        }
    }
}
