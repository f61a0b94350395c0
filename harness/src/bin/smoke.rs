//! Starts the system as a user would (`system` with all roles, on free ports), runs the
//! end-to-end checks of `harness::smoke`, prints a verdict per check, writes
//! `smoke.json` (into `reports/results/` or `--out DIR`), and stops the system with SIGTERM.
//!
//! Usage: `smoke --system BINARY [--out DIR]` (`cargo xtask smoke` builds and runs it).

use std::{
    path::PathBuf,
    process::{Command, ExitCode},
    time::Duration,
};

use anyhow::{Context, bail};
use clap::Parser;
use harness::results::{Case, Metric, ResultFile, default_dir};
use launch::{Launch, servers};
use system::config::names;

/// Runs the end-to-end smoke checks against a `system` binary.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The `system` binary to start.
    #[arg(long)]
    system: PathBuf,
    /// Directory of the result file (reports/results by default).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("smoke: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let mut command = Command::new(&args.system);
    command.envs([
        (names::API_PORT, "0"),
        (names::GRPC_PORT, "0"),
        (names::PROCESSOR_PORT, "0"),
        (names::RUST_LOG, "info"),
    ]);
    // The log is only read for the addresses; a few lines are kept to show on failure.
    let mut system = Launch::new(command)
        .roles(&[servers::PROCESSOR, servers::GATEWAY, servers::GRPC])
        .timeout(Duration::from_secs(30))
        .keep_lines(100)
        .start()?;
    let addr = |role| system.addr(role).context("no address");
    let (gateway, grpc) = (addr(servers::GATEWAY)?, addr(servers::GRPC)?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let checks = runtime.block_on(harness::smoke::run(gateway, grpc));
    let status = system.stop().context("the system was not reaped")?;

    let mut file = ResultFile::new("smoke", "cargo xtask smoke");
    for check in &checks {
        println!(
            "{} {:<16} {}",
            if check.passed { "PASS" } else { "FAIL" },
            check.name,
            check.detail
        );
        file.cases.push(
            Case::new(check.name, "system", None)
                .param("detail", &check.detail)
                .metric(
                    "passed",
                    Metric::exact("bool", if check.passed { 1.0 } else { 0.0 }),
                ),
        );
    }
    println!(
        "{} {:<16} exit status {status}",
        if status.success() { "PASS" } else { "FAIL" },
        "shutdown"
    );
    file.write(&args.out.clone().unwrap_or_else(default_dir))?;
    let failed = checks.iter().filter(|c| !c.passed).count() + usize::from(!status.success());
    if failed > 0 {
        bail!("{failed} check(s) failed");
    }
    Ok(())
}
