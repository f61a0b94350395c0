//! `cargo run -p harness --release --bin profile -- [--seconds N] [--out DIR] [COMPONENT...]`:
//! CPU profiles of the components (all of them when none is named); see `harness::profile`.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use harness::{alloc::Counting, profile, results::workspace_root};

/// Counts allocations, so that the queue profiles can say where they come from.
#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() -> anyhow::Result<()> {
    let mut seconds = 3.0;
    let mut out = workspace_root().join("reports/profiles");
    let mut components = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().context("--seconds needs a value")?.parse()?,
            "--out" => out = PathBuf::from(args.next().context("--out needs a value")?),
            other => components.push(other.to_owned()),
        }
    }
    if components.is_empty() {
        components = profile::COMPONENTS
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
    }
    for component in &components {
        eprintln!("profiling {component} for {seconds} s");
        profile::run(component, Duration::from_secs_f64(seconds), &out)?;
    }
    eprintln!("wrote {}", out.display());
    Ok(())
}
