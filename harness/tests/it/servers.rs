//! Servers for the tests, each on its own thread and runtime (the generator under test
//! blocks its caller), stopped and joined when dropped.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use system::proto::{
    IngestRequest, IngestResponse,
    ingest_service_server::{IngestService, IngestServiceServer},
};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::{Status, Streaming, transport::server::TcpIncoming};

/// A server running on its own thread until dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Binds 127.0.0.1:0 and runs `serve(listener, stopped)` on a fresh runtime.
    pub fn start<F, Fut>(serve: F) -> TestServer
    where
        F: FnOnce(TcpListener, oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                serve(listener, stop_rx).await;
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server started");
        TestServer {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The bare HTTP server of the harness.
    pub fn bare_http() -> TestServer {
        TestServer::start(|listener, stop| async move {
            harness::peers::bare::serve_http(listener, async {
                let _ = stop.await;
            })
            .await;
        })
    }

    /// The bare gRPC server of the harness.
    pub fn bare_grpc() -> TestServer {
        TestServer::start(|listener, stop| async move {
            harness::peers::bare::serve_grpc(listener, async {
                let _ = stop.await;
            })
            .await
            .expect("bare grpc");
        })
    }

    /// An HTTP/1.1 server whose answer is chosen by `answer(request number, path)`:
    /// a status and a delay before it.
    pub fn http1<A>(answer: A) -> TestServer
    where
        A: Fn(u64, &str) -> (StatusCode, Duration) + Send + Sync + 'static,
    {
        let answer = Arc::new(answer);
        let counter = Arc::new(AtomicU64::new(0));
        TestServer::start(move |listener, mut stop| async move {
            loop {
                let stream = tokio::select! {
                    _ = &mut stop => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                };
                let _ = stream.set_nodelay(true);
                let answer = answer.clone();
                let counter = counter.clone();
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let answer = answer.clone();
                    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                    async move {
                        let path = request.uri().path().to_owned();
                        let _ = request.into_body().collect().await;
                        let (status, delay) = answer(n, &path);
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
                        *response.status_mut() = status;
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        })
    }

    /// A server that accepts connections and never answers.
    pub fn silent() -> TestServer {
        TestServer::start(|listener, mut stop| async move {
            let mut held = Vec::new();
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    accepted = listener.accept() => if let Ok((stream, _)) = accepted
                        && held.len() < 1024
                    {
                        held.push(stream);
                    },
                }
            }
        })
    }

    /// A server that closes every connection as soon as it has read from it.
    pub fn closing() -> TestServer {
        TestServer::start(|listener, mut stop| async move {
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    accepted = listener.accept() => if let Ok((mut stream, _)) = accepted {
                        tokio::spawn(async move {
                            let mut buf = [0u8; 1024];
                            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
                        });
                    },
                }
            }
        })
    }

    /// The gRPC server of [`TestServer::grpc_by_source`] with tiny flow-control windows and at
    /// most two concurrent streams per connection, to make a client obey both.
    pub fn grpc_constrained() -> TestServer {
        TestServer::start(|listener, stop| async move {
            tonic::transport::Server::builder()
                .initial_stream_window_size(Some(1024))
                .initial_connection_window_size(Some(4096))
                .max_concurrent_streams(Some(2))
                .add_service(IngestServiceServer::new(BySource))
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stop.await;
                })
                .await
                .expect("grpc server");
        })
    }

    /// A gRPC server answering by the message's `source`: `reject` is UNAVAILABLE, `bad`
    /// INVALID_ARGUMENT, anything else OK.
    pub fn grpc_by_source() -> TestServer {
        TestServer::start(|listener, stop| async move {
            tonic::transport::Server::builder()
                .add_service(IngestServiceServer::new(BySource))
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stop.await;
                })
                .await
                .expect("grpc server");
        })
    }

    pub fn target(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct BySource;

fn by_source(source: &str) -> Result<tonic::Response<IngestResponse>, Status> {
    match source {
        "reject" => Err(Status::unavailable("queue full")),
        "bad" => Err(Status::invalid_argument("bad message")),
        _ => Ok(tonic::Response::new(IngestResponse {
            message_id: String::new(),
            status: "accepted".to_owned(),
            accepted: 1,
            duplicates: 0,
        })),
    }
}

#[tonic::async_trait]
impl IngestService for BySource {
    async fn ingest(
        &self,
        request: tonic::Request<IngestRequest>,
    ) -> Result<tonic::Response<IngestResponse>, Status> {
        by_source(&request.into_inner().source)
    }

    async fn ingest_stream(
        &self,
        request: tonic::Request<Streaming<IngestRequest>>,
    ) -> Result<tonic::Response<IngestResponse>, Status> {
        let mut incoming = request.into_inner();
        let mut source = String::new();
        while let Some(message) = incoming.message().await? {
            source = message.source;
        }
        by_source(&source)
    }
}
