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
    // Every test binary runs even after one fails, so one failure does not hide the rest.
    cargo(&["test", "--workspace", "--locked", "--no-fail-fast"])?;
    // Each criterion benchmark once, as a test: the suites still build and run. (The
    // callgrind suite and the allocation counts run for real in `cargo xtask gate`.) With
    // the workspace's features, as above: `-p harness` alone resolves other features and
    // builds a second copy of thirty crates.
    cargo(&[
        "test",
        "--workspace",
        "--locked",
        "--bench",
        "queue",
        "--bench",
        "worker_pool",
        "--bench",
        "codec",
        "--bench",
        "client",
    ])?;
    Ok(())
}
