//! `cargo xtask soak [--minutes N] [--out DIR]`: builds the `system` binary and the harness
//! in release, and runs `harness soak`: each phase (in-memory queue; NATS with a processor
//! killed halfway, when a `nats-server` can be had) for N minutes (10 by default) at half
//! the capacity the load suite measured, the system processes pinned to core 0 and the
//! generator to core 1 as in the load suite. Writes `reports/results/soak.json` (or
//! `DIR/soak.json`) and fails when a criterion did not hold.

use std::process::Command;

use anyhow::{Context, bail};

use crate::{
    cmd::{cargo, workspace_root},
    tools,
};

/// `cargo xtask soak`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Minutes of load per phase.
    #[arg(long, default_value = "10", value_parser = minutes)]
    minutes: String,
    /// Directory of the result file (default: reports/results), relative to the workspace.
    #[arg(long, value_name = "DIR")]
    out: Option<String>,
}

fn minutes(text: &str) -> Result<String, String> {
    match text.parse::<f64>() {
        Ok(m) if m > 0.0 && m <= 600.0 => Ok(text.to_owned()),
        _ => Err(format!("`{text}` is not a number of minutes in (0, 600]")),
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let Args { minutes, out } = args;
    cargo(&["build", "--release", "-p", "system"])?;
    cargo(&["build", "--release", "-p", "harness", "--bin", "harness"])?;
    let root = workspace_root();
    let harness = root.join("target/release/harness");
    let pin = tools::which("taskset").is_some();
    let mut command = if pin {
        let mut command = Command::new("taskset");
        command.args(["-c", "1"]).arg(&harness);
        command
    } else {
        Command::new(&harness)
    };
    command.current_dir(&root).args([
        "soak",
        "--system",
        "target/release/system",
        "--minutes",
        minutes.as_str(),
    ]);
    // By its name, found on PATH, so that the result file names no directory of this
    // machine.
    if tools::ensure(&["nats-server"]).is_ok() && tools::which("nats-server").is_some() {
        command.args(["--nats-server", "nats-server"]);
    } else {
        eprintln!("soak: nats-server could not be installed; the NATS phase is skipped");
    }
    if pin {
        command.args(["--server-core", "0"]);
    }
    if let Some(out) = out {
        command.args(["--out", out]);
    }
    eprintln!("$ {command:?}");
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", harness.display()))?;
    if !status.success() {
        bail!("the soak failed ({status})");
    }
    Ok(())
}
