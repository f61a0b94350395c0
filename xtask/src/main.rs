//! `cargo xtask <command>`: project automation. This file only parses and dispatches;
//! each command lives in its own module, with its arguments.
//!
//! Exit codes: 0 done, 1 the command could not do its work (a build, a run or a file
//! failed), 2 the command line was wrong, 3 a comparison found a regression.

mod bench;
mod callgrind;
mod ci;
mod cmd;
mod compare;
mod export;
mod gate;
mod nats_cluster;
mod profile;
mod report;
mod results;
mod smoke;
mod soak;
mod tools;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Project automation: checks, benchmarks, the gate, profiles and the report.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version)]
#[command(
    after_help = "Exit codes: 0 done, 1 failed to do the work, 2 wrong usage, 3 a regression."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The checks CI runs: formatting, clippy (warnings are errors), every test.
    Ci,
    /// Run every benchmark suite (or those named) and write their result files.
    Bench(bench::Args),
    /// Compare instruction and allocation counts with the committed baseline.
    Gate(gate::Args),
    /// CPU profiles and flame graphs into reports/profiles/.
    Profile(profile::Args),
    /// Render reports/PHASE3_COMPLETE.md (and, with --html, the HTML page) from the results.
    Report(report::Args),
    /// Start the system; check h2c, gRPC reflection and the trace endpoint.
    Smoke,
    /// The system for minutes at half its capacity under a mix of good and bad requests.
    Soak(soak::Args),
    /// Write the committed results in a format benchmark dashboards read.
    Export(export::Args),
    /// Compare two sets of results: two directories or two git revisions.
    Compare(compare::Args),
    /// A three-node NATS JetStream cluster on this machine until Ctrl-C.
    NatsCluster(nats_cluster::Args),
}

/// A comparison that found cases worse than allowed (exit code 3), as opposed to a failure
/// to measure or read (exit code 1).
#[derive(Debug)]
pub(crate) struct Regression(pub(crate) String);

impl std::fmt::Display for Regression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Regression {}

/// The exit code of a regression.
const EXIT_REGRESSION: u8 = 3;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    let result = match cli.command {
        Command::Ci => ci::run(),
        Command::Bench(args) => bench::run(&args),
        Command::Gate(args) => gate::run(&args),
        Command::Profile(args) => profile::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Smoke => smoke::run(),
        Command::Soak(args) => soak::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::NatsCluster(args) => nats_cluster::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.downcast_ref::<Regression>().is_some() => {
            eprintln!("xtask: {err:#}");
            ExitCode::from(EXIT_REGRESSION)
        }
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reports a command line clap refused (or help it was asked for) and returns the exit
/// code: every refusal ends with the usage line of the command concerned.
fn usage_error(err: &clap::Error) -> ExitCode {
    use clap::{CommandFactory as _, error::ErrorKind};
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    let _ = err.print();
    if !err.render().to_string().contains("Usage:") {
        let mut command = Cli::command();
        command.build();
        let named = std::env::args().nth(1);
        let usage = named
            .and_then(|name| {
                command
                    .find_subcommand_mut(&name)
                    .map(|sub| sub.render_usage())
            })
            .unwrap_or_else(|| command.render_usage());
        eprintln!("\n{usage}");
    }
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
