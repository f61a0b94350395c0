//! The ingest system as a library: the wire types, the queues, the worker pool and the
//! services. The `system` binary parses [`config::Cli`] and calls [`run`].
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod budget;
pub mod client;
pub mod codec;
pub mod config;
pub mod debug;
pub mod gateway;
pub mod grpc;
pub mod http_error;
pub mod ids;
pub mod message;
pub mod net;
pub mod processor;
pub mod prometheus;
pub mod proto;
pub mod queue;
pub mod ready;
pub mod server;
pub mod shutdown;
pub mod validate;
pub mod wire;
pub mod worker;

use std::{future::Future, io, net::SocketAddr};

use http::Uri;
use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
};

use crate::{
    config::{Cli, Role, Settings},
    prometheus::Registry,
};

/// Why the system stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A listener could not be bound, or similar.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The gRPC server failed.
    #[error("{0}")]
    Grpc(#[from] grpc::GrpcError),
    /// A role's task ended abnormally.
    #[error("a server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs the roles `cli` asks for (all of them by default) until `shutdown` completes, then
/// drains them: the front doors first, so that their in-flight messages still reach the
/// processor, then the processor, which processes everything it accepted.
pub async fn run(
    cli: Cli,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let settings = &cli.settings;
    let budget = &settings.budget();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    match cli.role {
        Some(Role::Processor) => {
            let listener = bind(settings, settings.processor_port, "processor").await?;
            processor::serve(listener, settings.processor(budget), stopped()).await?;
        }
        Some(Role::Gateway) => {
            let listener = bind(settings, settings.api_port, "gateway").await?;
            let config = settings.gateway(settings.processor_url.clone(), budget);
            gateway::serve(listener, config, stopped()).await;
        }
        Some(Role::Grpc) => {
            let listener = bind(settings, settings.grpc_port, "grpc").await?;
            let metrics = Registry::new();
            let metrics_port = serve_grpc_metrics(settings, &metrics, stopped()).await?;
            let config = grpc::GrpcConfig {
                metrics: Some(metrics),
                ..settings.grpc(settings.processor_url.clone(), budget)
            };
            grpc::serve(listener, config, stopped()).await?;
            if let Some(metrics_port) = metrics_port {
                metrics_port.await?;
            }
        }
        None => {
            let processor_listener = bind(settings, settings.processor_port, "processor").await?;
            let gateway_listener = bind(settings, settings.api_port, "gateway").await?;
            let grpc_listener = bind(settings, settings.grpc_port, "grpc").await?;
            let url = local_url(processor_listener.local_addr()?);
            // The front doors share a registry: the gateway's `/metrics` shows both.
            let fronts_metrics = Registry::new();
            let metrics_port = serve_grpc_metrics(settings, &fronts_metrics, stopped()).await?;
            let (fronts_done, fronts_stopped) = oneshot::channel::<()>();
            let processor = tokio::spawn(processor::serve(
                processor_listener,
                settings.processor(budget),
                async move {
                    let _ = fronts_stopped.await;
                },
            ));
            let gateway = gateway::serve(
                gateway_listener,
                gateway::GatewayConfig {
                    metrics: Some(fronts_metrics.clone()),
                    ..settings.gateway(url.clone(), budget)
                },
                stopped(),
            );
            let grpc_config = grpc::GrpcConfig {
                metrics: Some(fronts_metrics),
                ..settings.grpc(url, budget)
            };
            let grpc = grpc::serve(grpc_listener, grpc_config, stopped());
            let ((), grpc_result) = tokio::join!(gateway, grpc);
            let _ = fronts_done.send(());
            processor.await??;
            grpc_result?;
            if let Some(metrics_port) = metrics_port {
                metrics_port.await?;
            }
        }
    }
    Ok(())
}

/// Starts the `GRPC_METRICS_PORT` server of `metrics`, when that port is set.
async fn serve_grpc_metrics(
    settings: &Settings,
    metrics: &Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(port) = settings.grpc_metrics_port else {
        return Ok(None);
    };
    let listener = bind(settings, port, "grpc metrics").await?;
    Ok(Some(tokio::spawn(prometheus::serve(
        listener,
        metrics.clone(),
        settings.max_connections as usize,
        settings.http_limits(),
        shutdown,
    ))))
}

/// The URL under which a front door in this process reaches the processor.
fn local_url(addr: SocketAddr) -> Uri {
    let host = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    format!("http://{host}")
        .parse()
        .unwrap_or_else(|_| Uri::from_static("http://127.0.0.1:8082"))
}

async fn bind(settings: &Settings, port: u16, role: &str) -> io::Result<TcpListener> {
    let addr = SocketAddr::new(settings.bind_addr, port);
    let listener = TcpListener::bind(addr).await.map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("{role}: cannot listen on {addr}: {err}"),
        )
    })?;
    tracing::info!("{role} listening on {}", listener.local_addr()?);
    Ok(listener)
}
