//! `cargo xtask smoke`: builds the system and the harness's `smoke` program, which starts
//! the system as a user would (all roles, free ports), runs the end-to-end checks of
//! `harness::smoke`, prints a verdict per check, writes `reports/results/smoke.json`, and
//! stops the system with SIGTERM.

use crate::cmd::cargo;

pub(crate) fn run() -> anyhow::Result<()> {
    cargo(&["build", "-p", "system"])?;
    cargo(&[
        "run",
        "-p",
        "harness",
        "--bin",
        "smoke",
        "--",
        "--system",
        "target/debug/system",
    ])
}
