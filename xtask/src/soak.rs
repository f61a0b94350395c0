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

const USAGE: &str = "usage: cargo xtask soak [--minutes N] [--out DIR]";

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut minutes = "10".to_owned();
    let mut out = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--minutes" => {
                let value = args.next().context(USAGE)?;
                let parsed: f64 = value
                    .parse()
                    .with_context(|| format!("--minutes {value}: not a number"))?;
                if !(parsed > 0.0 && parsed <= 600.0) {
                    bail!("--minutes must be in (0, 600]");
                }
                minutes.clone_from(value);
            }
            "--out" => out = Some(args.next().context(USAGE)?.clone()),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
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
        &minutes,
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
    if let Some(out) = &out {
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
