//! `cargo xtask <command>`: project automation. This file only parses and dispatches;
//! each command lives in its own module.

mod bench;
mod callgrind;
mod ci;
mod cmd;
mod gate;
mod profile;
mod report;
mod smoke;
mod soak;
mod tools;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci                the checks CI runs: formatting, clippy (warnings are errors), every test
  bench [--quick] [--out DIR] [--only SUITE]...
                    run every benchmark suite (or those named: allocations, callgrind,
                    criterion, load, peers); write reports/results/*.json (or DIR/*.json)
  gate [--save] [--from DIR]
                    compare instruction and allocation counts with reports/baseline/
                    (measured now, or read from a `bench --out DIR` run)
  profile [--seconds N] [COMPONENT...]
                    CPU profiles and flame graphs into reports/profiles/
  report [--check]  render reports/PHASE3_COMPLETE.md from reports/results/
  smoke             start the system; check h2c, gRPC reflection and the trace endpoint
  soak [--minutes N] [--out DIR]
                    the system for N minutes (10) per phase at half its capacity, a mix of
                    valid, retried, invalid and oversized requests, a NATS processor killed
                    halfway; memory, delivery and errors judged → reports/results/soak.json";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci::run(),
        Some("bench") => bench::run(rest),
        Some("gate") => gate::run(rest),
        Some("profile") => profile::run(rest),
        Some("report") => report::run(rest),
        Some("smoke") => smoke::run(),
        Some("soak") => soak::run(rest),
        Some("help" | "-h" | "--help") | None => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("unknown command `{other}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}
