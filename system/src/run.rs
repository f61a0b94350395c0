//! Starting the roles from the one loaded configuration, and draining them in order.

use std::{future::Future, io, net::SocketAddr};

use http::Uri;
use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
};

use crate::{
    config::{Cli, LoadError, Loaded, Role, Settings},
    hop::client,
    roles::{gateway, grpc, processor},
    serve::prometheus::{self, Registry},
};

/// The target of this module's log lines: its public path, which `RUST_LOG` names.
const LOG_TARGET: &str = "system";

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
    /// A token or TLS setting cannot be used (the message names it).
    #[error("{0}")]
    Load(#[from] LoadError),
}

/// Runs the roles `cli` asks for (all of them by default) until `shutdown` completes, then
/// drains them: the front doors first, so that their in-flight messages still reach the
/// processor, then the processor, which processes everything it accepted.
pub async fn run(
    cli: Cli,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let loaded = &Loaded::load(cli.settings)?;
    let settings = &loaded.settings;
    if let Some(ca) = &loaded.tls.self_signed_ca {
        tracing::info!(target: LOG_TARGET,
            "TLS with a self-signed certificate; clients trust it with its CA {}",
            ca.display()
        );
    }
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
    let processor_url = || settings.hop.processor_url.clone();
    match cli.role {
        Some(Role::Processor) => {
            let listener = listen(settings, Role::Processor).await?;
            processor::serve(listener, loaded.processor(), stopped()).await?;
        }
        Some(Role::Gateway) => {
            let listener = listen(settings, Role::Gateway).await?;
            let plain = listen_plain(loaded).await?;
            let config = loaded.gateway(processor_url(), None);
            gateway::serve_also_plain(listener, plain, config, stopped()).await;
        }
        Some(Role::Grpc) => {
            let listener = listen(settings, Role::Grpc).await?;
            let metrics = Registry::new();
            let metrics_port = serve_grpc_metrics(settings, &metrics, stopped()).await?;
            let config = loaded.grpc(processor_url(), Some(metrics));
            grpc::serve(listener, config, stopped()).await?;
            if let Some(metrics_port) = metrics_port {
                metrics_port.await?;
            }
        }
        None => {
            let processor_listener = listen(settings, Role::Processor).await?;
            let gateway_listener = listen(settings, Role::Gateway).await?;
            let grpc_listener = listen(settings, Role::Grpc).await?;
            let plain = listen_plain(loaded).await?;
            let url = local_url(
                processor_listener.local_addr()?,
                loaded.tls.processor.is_some(),
            );
            // The front doors share a registry: the gateway's `/metrics` shows both.
            let fronts_metrics = Registry::new();
            let metrics_port = serve_grpc_metrics(settings, &fronts_metrics, stopped()).await?;
            let (fronts_done, fronts_stopped) = oneshot::channel::<()>();
            let processor = tokio::spawn(processor::serve(
                processor_listener,
                loaded.processor(),
                async move {
                    let _ = fronts_stopped.await;
                },
            ));
            let gateway = gateway::serve_also_plain(
                gateway_listener,
                plain,
                loaded.gateway(url.clone(), Some(fronts_metrics.clone())),
                stopped(),
            );
            let grpc = grpc::serve(
                grpc_listener,
                loaded.grpc(url, Some(fronts_metrics)),
                stopped(),
            );
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
    let Some(port) = settings.grpc_role.grpc_metrics_port else {
        return Ok(None);
    };
    let listener = bind(settings, Role::Grpc, port, launch::servers::GRPC_METRICS).await?;
    Ok(Some(tokio::spawn(prometheus::serve(
        listener,
        metrics.clone(),
        settings.common.max_connections as usize,
        settings.http_limits(),
        shutdown,
    ))))
}

/// The gateway's plain port (`API_PLAIN_PORT`), when TLS is on and one is asked for.
async fn listen_plain(loaded: &Loaded) -> io::Result<Option<TcpListener>> {
    let settings = &loaded.settings;
    match (settings.gateway_role.api_plain_port, &loaded.tls.gateway) {
        (Some(port), Some(_)) => Ok(Some(
            bind(
                settings,
                Role::Gateway,
                port,
                launch::servers::GATEWAY_PLAIN,
            )
            .await?,
        )),
        (Some(_), None) => {
            tracing::warn!(target: LOG_TARGET, "API_PLAIN_PORT is ignored: TLS is off, the gateway's port is plain");
            Ok(None)
        }
        (None, _) => Ok(None),
    }
}

/// The URL under which a front door in this process reaches the processor (`https` when
/// the processor serves TLS).
fn local_url(addr: SocketAddr, tls: bool) -> Uri {
    let host = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{host}")
        .parse()
        .unwrap_or_else(|_| Uri::from_static(client::DEFAULT_PROCESSOR_URL))
}

/// Listens on the port of `role`, at its address.
async fn listen(settings: &Settings, role: Role) -> io::Result<TcpListener> {
    let (port, name) = match role {
        Role::Processor => (
            settings.processor_role.processor_port,
            launch::servers::PROCESSOR,
        ),
        Role::Gateway => (settings.gateway_role.api_port, launch::servers::GATEWAY),
        Role::Grpc => (settings.grpc_role.grpc_port, launch::servers::GRPC),
    };
    bind(settings, role, port, name).await
}

/// Connections the kernel holds for a listener before it accepts them. A burst from one
/// client (up to its share of connections at once) must not fill the queue: a connection
/// that finds it full is dropped and its client retries a second later, whoever it is.
const LISTEN_BACKLOG: u32 = 2048;

/// A listener on `addr` with [`LISTEN_BACKLOG`] (tokio's `bind` asks for 128), reusing the
/// address as `bind` does. The kernel caps the backlog at `net.core.somaxconn`.
fn listen_on(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Listens on `port` at the address of `role` (its own, or `BIND_ADDR`), for the server
/// `name`.
async fn bind(settings: &Settings, role: Role, port: u16, name: &str) -> io::Result<TcpListener> {
    let addr = SocketAddr::new(settings.bind_addr_for(role), port);
    let listener = listen_on(addr).map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("{name}: cannot listen on {addr}: {err}"),
        )
    })?;
    tracing::info!(target: LOG_TARGET, "{}", launch::ready_line(name, listener.local_addr()?));
    Ok(listener)
}
