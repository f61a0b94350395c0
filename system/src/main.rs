//! The `system` binary: runs the ingest system's roles until SIGINT or SIGTERM.

use std::{io::IsTerminal, process::ExitCode};

use clap::Parser;
use system::config::Cli;
use tracing_subscriber::EnvFilter;

// The allocator pair: glibc's malloc by default (the baseline), mimalloc with
// `--features mimalloc`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The most the NATS client's connection may log (see `main`).
const NATS_CONNECTION_CAP: &str = "async_nats::connection=debug";

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // The NATS client writes what it sends when it connects, credentials included, into
    // trace lines of its connection: those are never shown, whatever `RUST_LOG` asks.
    if let Ok(cap) = NATS_CONNECTION_CAP.parse() {
        filter = filter.add_directive(cap);
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match system::run(cli, system::shutdown::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}
