//! `cargo xtask ci`: what `.ci/run` runs on a clean clone.

use crate::cmd::cargo;

pub(crate) fn run() -> anyhow::Result<()> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["test", "--workspace", "--locked"])?;
    Ok(())
}
