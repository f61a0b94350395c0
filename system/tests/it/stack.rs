//! Starts processor, gateway and gRPC server in this process, each on its own loopback
//! port, talking to each other over real sockets exactly as separate processes would.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use http::Uri;
use serde_json::Value;
use system::{
    client::ForwarderConfig,
    gateway::{self, GatewayConfig},
    grpc::{self, GrpcConfig},
    message::MessageRef,
    processor::{self, ProcessorConfig, ProcessorStats},
    proto::{DataMessage, ingest_service_client::IngestServiceClient},
    worker::{ProcessFn, seed_processing},
};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tonic::transport::Channel;

/// What a test may change about a stack.
pub struct Setup {
    pub processor: ProcessorConfig,
    pub forwarder: Box<dyn Fn(Uri) -> ForwarderConfig>,
    pub gateway: Box<dyn Fn(ForwarderConfig) -> GatewayConfig>,
    pub grpc: Box<dyn Fn(ForwarderConfig) -> GrpcConfig>,
    /// Point the front doors at this URL instead of the processor (e.g. a closed port).
    pub processor_url: Option<Uri>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            processor: ProcessorConfig::default(),
            forwarder: Box::new(ForwarderConfig::new),
            gateway: Box::new(GatewayConfig::new),
            grpc: Box::new(GrpcConfig::new),
            processor_url: None,
        }
    }
}

pub struct Stack {
    pub processor_url: String,
    pub gateway_url: String,
    pub grpc_url: String,
    stop_fronts: watch::Sender<bool>,
    stop_processor: watch::Sender<bool>,
    fronts: Vec<JoinHandle<()>>,
    processor: JoinHandle<std::io::Result<ProcessorStats>>,
    /// Every message the workers processed, when the setup records them.
    pub seen: Arc<Mutex<Vec<DataMessage>>>,
}

fn stopped(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// A processing step that keeps a copy of every message it sees, in `seen`.
pub fn recording(seen: &Arc<Mutex<Vec<DataMessage>>>) -> ProcessFn {
    let sink = Arc::clone(seen);
    Arc::new(move |msg: MessageRef<'_>, out: &mut Vec<u8>| {
        sink.lock().unwrap().push(msg.to_owned_message());
        seed_processing(msg, out)
    })
}

pub fn slow(delay: Duration) -> ProcessFn {
    Arc::new(move |msg: MessageRef<'_>, out: &mut Vec<u8>| {
        std::thread::sleep(delay);
        seed_processing(msg, out)
    })
}

impl Stack {
    /// A stack with default settings whose processor records every message.
    pub async fn recording() -> Stack {
        Stack::start_recording(Setup::default()).await
    }

    /// Starts `setup`, replacing its processing step with a recording one.
    pub async fn start_recording(mut setup: Setup) -> Stack {
        let seen = Arc::new(Mutex::new(Vec::new()));
        setup.processor.process = recording(&seen);
        let mut stack = Stack::start(setup).await;
        stack.seen = seen;
        stack
    }

    pub async fn start(setup: Setup) -> Stack {
        let bind = || TcpListener::bind("127.0.0.1:0");
        let (processor_listener, gateway_listener, grpc_listener) = (
            bind().await.unwrap(),
            bind().await.unwrap(),
            bind().await.unwrap(),
        );
        let processor_url = format!("http://{}", processor_listener.local_addr().unwrap());
        let gateway_url = format!("http://{}", gateway_listener.local_addr().unwrap());
        let grpc_url = format!("http://{}", grpc_listener.local_addr().unwrap());
        let (stop_fronts, fronts_rx) = watch::channel(false);
        let (stop_processor, processor_rx) = watch::channel(false);
        let processor = tokio::spawn(processor::serve(
            processor_listener,
            setup.processor,
            stopped(&processor_rx),
        ));
        let target = setup
            .processor_url
            .unwrap_or_else(|| processor_url.parse().unwrap());
        let gateway_config = (setup.gateway)((setup.forwarder)(target.clone()));
        let grpc_config = (setup.grpc)((setup.forwarder)(target));
        let fronts = vec![
            tokio::spawn(gateway::serve(
                gateway_listener,
                gateway_config,
                stopped(&fronts_rx),
            )),
            tokio::spawn({
                let stop = stopped(&fronts_rx);
                async move { grpc::serve(grpc_listener, grpc_config, stop).await.unwrap() }
            }),
        ];
        Stack {
            processor_url,
            gateway_url,
            grpc_url,
            stop_fronts,
            stop_processor,
            fronts,
            processor,
            seen: Arc::default(),
        }
    }

    /// Stops the front doors, then the processor (as `system` does); returns the
    /// processor's final counters.
    pub async fn shutdown(self) -> ProcessorStats {
        let _ = self.stop_fronts.send(true);
        for front in self.fronts {
            front.await.unwrap();
        }
        self.stop_processor.send(true).unwrap();
        self.processor.await.unwrap().unwrap()
    }

    /// Asks the front doors to stop without waiting for them.
    pub fn begin_shutdown(&self) {
        let _ = self.stop_fronts.send(true);
    }

    pub async fn processor_stats(&self) -> Value {
        reqwest::get(format!("{}/stats", self.processor_url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits (bounded) until the processor has processed `n` messages.
    pub async fn processed(&self, n: u64) -> Value {
        for _ in 0..1000 {
            let stats = self.processor_stats().await;
            if stats["workers"]["processed"] == n {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("not processed: {}", self.processor_stats().await);
    }

    pub async fn grpc_client(&self) -> IngestServiceClient<Channel> {
        IngestServiceClient::connect(self.grpc_url.clone())
            .await
            .unwrap()
    }
}
