//! `cargo xtask profile [--seconds N] [COMPONENT...]`: CPU profiles, flame graphs, top
//! frames and contention views of every component (or those named), into
//! `reports/profiles/` (see `harness::profile`).

use clap::builder::PossibleValuesParser;
use study::catalogue::COMPONENTS;

use crate::cmd::cargo;

/// `cargo xtask profile`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Seconds each component is profiled.
    #[arg(long, default_value_t = 3.0, value_parser = seconds)]
    seconds: f64,
    /// The components to profile (all of them when none is named).
    #[arg(value_parser = PossibleValuesParser::new(COMPONENTS))]
    components: Vec<String>,
}

fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 600.0 => Ok(s),
        _ => Err(format!("`{text}` is not a number of seconds in (0, 600]")),
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let seconds = args.seconds.to_string();
    let mut command = vec![
        "run",
        "-p",
        "harness",
        "--release",
        "--bin",
        "profile",
        "--",
        "--seconds",
        &seconds,
    ];
    command.extend(args.components.iter().map(String::as_str));
    cargo(&command)
}
