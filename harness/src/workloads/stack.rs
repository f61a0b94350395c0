//! An in-process system for the network benchmarks: a processor, and optionally the gateway
//! and the gRPC server, on loopback ports of one tokio runtime, reached through real sockets
//! by a [`Forwarder`] or by protocol clients.

use std::{net::SocketAddr, time::Duration};

use http::Uri;
use system::{
    client::{Forwarder, ForwarderConfig},
    gateway::{self, GatewayConfig},
    grpc::{self, GrpcConfig},
    processor::{self, ProcessorConfig},
    queue::QueueType,
};
use tokio::{net::TcpListener, runtime::Runtime, sync::watch};

/// A running processor (and front doors, when asked for) on its own runtime.
pub struct Stack {
    /// Address of the processor.
    pub processor: SocketAddr,
    /// Address of the HTTP gateway, when started.
    pub gateway: Option<SocketAddr>,
    /// Address of the gRPC server, when started.
    pub grpc: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    runtime: Option<Runtime>,
}

/// Where the stack runs.
pub enum Placement<'a> {
    /// On a runtime of its own with `threads` workers.
    OwnRuntime(usize),
    /// On the caller's runtime (for single-threaded instruction counting).
    Shared(&'a Runtime),
}

impl Stack {
    /// Starts a processor with `processor` settings and, with `fronts`, the gateway and
    /// the gRPC server forwarding to it with `forwarder`.
    pub fn start(
        placement: Placement<'_>,
        processor: ProcessorConfig,
        fronts: Option<&dyn Fn(Uri) -> ForwarderConfig>,
    ) -> std::io::Result<Stack> {
        let (own, shared) = match placement {
            Placement::OwnRuntime(threads) => (
                Some(
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(threads.max(1))
                        .enable_all()
                        .build()?,
                ),
                None,
            ),
            Placement::Shared(shared) => (None, Some(shared)),
        };
        let Some(runtime) = own.as_ref().or(shared) else {
            return Err(std::io::Error::other("no runtime to start the stack on"));
        };
        let (stop, stopped) = watch::channel(false);
        let wait = move |rx: &watch::Receiver<bool>| {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let (processor_addr, gateway, grpc) = runtime.block_on(async {
            let processor_listener = TcpListener::bind("127.0.0.1:0").await?;
            let processor_addr = processor_listener.local_addr()?;
            tokio::spawn(processor::serve(
                processor_listener,
                processor,
                wait(&stopped),
            ));
            let (mut gateway, mut grpc) = (None, None);
            if let Some(forwarder) = fronts {
                let url: Uri = format!("http://{processor_addr}")
                    .parse()
                    .map_err(std::io::Error::other)?;
                let gateway_listener = TcpListener::bind("127.0.0.1:0").await?;
                let grpc_listener = TcpListener::bind("127.0.0.1:0").await?;
                gateway = Some(gateway_listener.local_addr()?);
                grpc = Some(grpc_listener.local_addr()?);
                let config = GatewayConfig::new(forwarder(url.clone()));
                tokio::spawn(gateway::serve(gateway_listener, config, wait(&stopped)));
                let config = GrpcConfig::new(forwarder(url));
                tokio::spawn(grpc::serve(grpc_listener, config, wait(&stopped)));
            }
            Ok::<_, std::io::Error>((processor_addr, gateway, grpc))
        })?;
        Ok(Stack {
            processor: processor_addr,
            gateway,
            grpc,
            stop,
            runtime: own,
        })
    }

    /// The processor the hop client pairs send to, alone on a runtime of its own with one
    /// worker thread, its queue pooled and deep enough (2^20 messages) that no batch waits
    /// for room: what the client benchmarks time and `cargo xtask profile` profiles.
    pub fn for_clients() -> std::io::Result<Stack> {
        Stack::start(
            Placement::OwnRuntime(1),
            ProcessorConfig {
                queue_type: QueueType::Pooled,
                queue_size: 1 << 20,
                ..ProcessorConfig::default()
            },
            None,
        )
    }

    /// The processor's base URL.
    pub fn processor_url(&self) -> Uri {
        format!("http://{}", self.processor)
            .parse()
            .unwrap_or_else(|_| Uri::from_static("http://127.0.0.1/"))
    }

    /// A forwarder to this processor built by `config`, on the current runtime.
    pub fn forwarder(&self, config: impl Fn(Uri) -> ForwarderConfig) -> Forwarder {
        Forwarder::new(config(self.processor_url()))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}
