//! The ingest system as a library: the wire types, the queues, the worker pool and the
//! services. The `system` binary parses [`config::Cli`] and calls [`run`].
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod codec;
pub mod config;
pub mod http_error;
pub mod ids;
pub mod message;
pub mod net;
pub mod processor;
pub mod prometheus;
pub mod proto;
pub mod queue;
pub mod server;
pub mod shutdown;
pub mod worker;

use std::{future::Future, io, net::SocketAddr, sync::Arc};

use tokio::net::TcpListener;

use crate::{
    config::{Cli, Role},
    processor::ProcessorConfig,
    worker::seed_processing,
};

/// Runs the roles `cli` asks for until `shutdown` completes, then drains them.
pub async fn run(cli: Cli, shutdown: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
    let settings = &cli.settings;
    match cli.role.unwrap_or(Role::Processor) {
        Role::Processor => {
            let addr = SocketAddr::new(settings.bind_addr, settings.processor_port);
            let listener = bind(addr, "processor").await?;
            let config = ProcessorConfig {
                queue_type: settings.queue_type,
                queue_size: settings.queue_size as usize,
                workers: usize::from(settings.processor_workers),
                body_limit: settings.processor_body_limit as usize,
                max_connections: settings.max_connections as usize,
                drain_timeout: settings.drain_timeout(),
                process: Arc::new(seed_processing),
                ..ProcessorConfig::default()
            };
            tracing::info!(?config, "processor starting");
            processor::serve(listener, config, shutdown).await?;
        }
    }
    Ok(())
}

async fn bind(addr: SocketAddr, role: &str) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await.map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("{role}: cannot listen on {addr}: {err}"),
        )
    })?;
    tracing::info!("{role} listening on {}", listener.local_addr()?);
    Ok(listener)
}
