//! Command line and environment: every setting is a flag with an environment variable of
//! the same meaning. A bad value stops the program at start-up with a message that names
//! the setting (clap's error names the flag and the variable's name).

use std::{net::IpAddr, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::queue::QueueType;

/// The command line of the `system` binary.
#[derive(Debug, Parser)]
#[command(
    name = "system",
    version,
    about = "Ingest system: gateway, gRPC ingest and processor"
)]
pub struct Cli {
    /// Which role to run; all of them when omitted.
    #[command(subcommand)]
    pub role: Option<Role>,
    /// Settings shared by the roles.
    #[command(flatten)]
    pub settings: Settings,
}

/// A role of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Role {
    /// The processor: `/enqueue`, the queue and the worker pool.
    Processor,
}

/// Every setting, each with its environment variable.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address the servers listen on.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1", global = true)]
    pub bind_addr: IpAddr,

    /// Port of the processor (0 picks a free one).
    #[arg(long, env = "PROCESSOR_PORT", default_value_t = 8082, global = true)]
    pub processor_port: u16,

    /// Number of workers in the processor's pool.
    #[arg(long, env = "PROCESSOR_WORKERS", default_value_t = 4, global = true,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub processor_workers: u16,

    /// Most messages waiting in the processor's queue.
    #[arg(long, env = "QUEUE_SIZE", default_value_t = 1000, global = true,
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub queue_size: u32,

    /// Queue implementation: `memory` (baseline) or `pooled`.
    #[arg(long, env = "QUEUE_TYPE", value_enum, default_value_t = QueueType::Memory, global = true)]
    pub queue_type: QueueType,

    /// Largest request body the processor accepts, in bytes.
    #[arg(long, env = "PROCESSOR_BODY_LIMIT", default_value_t = 16 * 1024 * 1024, global = true,
          value_parser = clap::value_parser!(u32).range(1024..=1024 * 1024 * 1024))]
    pub processor_body_limit: u32,

    /// Most connections each server holds open at once.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000, global = true,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Seconds open connections get to finish after a shutdown signal.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value_t = 10, global = true,
          value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub shutdown_timeout: u32,
}

impl Settings {
    /// The shutdown drain timeout.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.shutdown_timeout))
    }
}
