//! `cargo xtask profile [--seconds N] [COMPONENT...]`: CPU profiles, flame graphs, top
//! frames and contention views of every component, into `reports/profiles/` (see
//! `harness::profile`).

use crate::cmd::cargo;

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut command = vec![
        "run",
        "-p",
        "harness",
        "--release",
        "--bin",
        "profile",
        "--",
    ];
    command.extend(args.iter().map(String::as_str));
    cargo(&command)
}
