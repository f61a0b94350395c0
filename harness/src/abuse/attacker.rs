//! Runs one attack from the attacker's address until it is told to stop, on a thread and a
//! single-threaded runtime of its own: every slot of the attack opens its connection or
//! call, sends what the attack sends and holds it until the server ends it, then (after a
//! short pause, so that a refusal does not become a busy loop) opens the next. What the
//! attacker saw is tallied by kind: `http_<status>`, `grpc_<code>`, `closed` (the server
//! ended the connection or call without an answer), `held` (still open at the end),
//! `connect_failed`.

use std::{
    cell::RefCell,
    collections::BTreeMap,
    convert::Infallible,
    future::pending,
    net::{IpAddr, SocketAddr},
    thread::{self, JoinHandle},
    time::Duration,
};

use bytes::Bytes;
use futures_util::future::join_all;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tokio::{io::AsyncWriteExt as _, sync::mpsc, sync::watch, time::sleep};
use tokio_stream::wrappers::ReceiverStream;

use super::{
    attacks::{Attack, How},
    wire,
};
use crate::load::record::grpc_code_name;

/// The pause before a slot opens its next connection or call.
const AGAIN_AFTER: Duration = Duration::from_millis(50);
/// The pieces bodies and messages are written in.
const PIECE: usize = 64 * 1024;
/// The body of a small request the attack begins and never finishes.
const BEGUN_BODY: usize = 1024;

/// Where an attack goes and where it comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Aim {
    /// The attacker's address.
    pub(crate) from: IpAddr,
    /// The gateway's port.
    pub(crate) gateway: SocketAddr,
    /// The gRPC port.
    pub(crate) grpc: SocketAddr,
}

/// What the attacker saw: every end of a connection or call, by kind, and how many it began.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) ends: BTreeMap<String, u64>,
    pub(crate) begun: u64,
}

/// An attack under way; [`Running::stop`] ends it.
pub(crate) struct Running {
    stop: watch::Sender<bool>,
    thread: JoinHandle<std::io::Result<Seen>>,
}

/// Starts `attack` with `slots` connections or calls at once.
pub(crate) fn start(attack: &'static Attack, slots: usize, aim: Aim) -> std::io::Result<Running> {
    let (stop, stopped) = watch::channel(false);
    let thread = thread::Builder::new()
        .name(format!("attack-{}", attack.name))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok(runtime.block_on(run(attack.how, slots, aim, stopped)))
        })?;
    Ok(Running { stop, thread })
}

impl Running {
    /// Ends the attack (every connection and call it holds is closed) and says what it saw.
    pub(crate) fn stop(self) -> anyhow::Result<Seen> {
        let _ = self.stop.send(true);
        match self.thread.join() {
            Ok(seen) => Ok(seen?),
            Err(_) => anyhow::bail!("the attacker's thread panicked"),
        }
    }
}

/// What a slot's connections and calls share.
struct Slots {
    how: How,
    aim: Aim,
    stopped: watch::Receiver<bool>,
    seen: RefCell<Seen>,
}

async fn run(how: How, slots: usize, aim: Aim, stopped: watch::Receiver<bool>) -> Seen {
    let shared = Slots {
        how,
        aim,
        stopped,
        seen: RefCell::default(),
    };
    join_all((0..slots).map(|index| shared.slot(index))).await;
    shared.seen.into_inner()
}

impl Slots {
    /// One slot: a connection or call at a time until the attack stops.
    async fn slot(&self, index: usize) {
        let grpc = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(self.connector());
        loop {
            let end = tokio::select! {
                end = self.once(index, &grpc) => end,
                () = self.stopped() => "held".to_owned(),
            };
            self.count(end);
            tokio::select! {
                () = sleep(AGAIN_AFTER) => {}
                () = self.stopped() => return,
            }
        }
    }

    async fn stopped(&self) {
        let mut stopped = self.stopped.clone();
        let _ = stopped.wait_for(|stop| *stop).await;
    }

    fn count(&self, end: String) {
        *self.seen.borrow_mut().ends.entry(end).or_default() += 1;
    }

    fn connector(&self) -> HttpConnector {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(self.aim.from));
        connector.set_nodelay(true);
        connector
    }

    /// One connection or call of the slot numbered `index`, until the server ends it; how
    /// it ended.
    async fn once(&self, index: usize, grpc: &Client<HttpConnector, Body>) -> String {
        self.seen.borrow_mut().begun += 1;
        let Aim {
            gateway,
            grpc: grpc_port,
            ..
        } = self.aim;
        let port = if index.is_multiple_of(2) {
            gateway
        } else {
            grpc_port
        };
        match self.how {
            How::Trickle { declared, every } => {
                let head = wire::ingest_head(gateway, declared);
                self.http1(gateway, async |write| {
                    write.write_all(&head).await?;
                    loop {
                        write.write_all(b" ").await?;
                        sleep(every).await;
                    }
                })
                .await
            }
            How::Stall { declared, sent } => {
                let head = wire::ingest_head(gateway, declared);
                self.http1(gateway, async |write| {
                    write.write_all(&head).await?;
                    write_zeros(write, sent).await?;
                    pending().await
                })
                .await
            }
            How::Oversized { declared } => {
                let head = wire::ingest_head(gateway, declared);
                self.http1(gateway, async |write| {
                    write.write_all(&head).await?;
                    write_zeros(write, declared).await?;
                    pending().await
                })
                .await
            }
            How::Greeting => self.raw(port, wire::greeting()).await,
            How::Begun if port == gateway => {
                let head = wire::ingest_head(gateway, BEGUN_BODY);
                self.raw(port, Bytes::from(head)).await
            }
            How::Begun => {
                self.raw(port, wire::begun_call(port, super::attacks::INGEST))
                    .await
            }
            How::Grpc {
                path,
                declared,
                sent,
            } => grpc_call(grpc, grpc_port, path, declared, sent).await,
        }
    }

    /// An HTTP/1.1 request whose bytes `send` writes while its answer is awaited; the
    /// answer's status, or how the connection ended. A write that fails (the server stopped
    /// reading) leaves the answer to be read.
    async fn http1(
        &self,
        to: SocketAddr,
        send: impl AsyncFnOnce(&mut tokio::net::tcp::OwnedWriteHalf) -> std::io::Result<Infallible>,
    ) -> String {
        let Ok(stream) = wire::connect(self.aim.from, to).await else {
            return "connect_failed".to_owned();
        };
        let (mut read, mut write) = stream.into_split();
        let sending = async {
            let _ = send(&mut write).await;
            pending::<()>().await;
        };
        tokio::select! {
            status = wire::status(&mut read) => {
                status.map_or_else(|| "closed".to_owned(), |s| format!("http_{s}"))
            }
            () = sending => unreachable!("sending never ends"),
        }
    }

    /// A connection that sends `bytes` and nothing more, held until the server closes it.
    async fn raw(&self, to: SocketAddr, bytes: Bytes) -> String {
        let Ok(mut stream) = wire::connect(self.aim.from, to).await else {
            return "connect_failed".to_owned();
        };
        let _ = stream.write_all(&bytes).await;
        wire::until_closed(&mut stream).await;
        "closed".to_owned()
    }
}

/// `n` zero bytes, in pieces.
async fn write_zeros(write: &mut tokio::net::tcp::OwnedWriteHalf, n: usize) -> std::io::Result<()> {
    static ZEROS: [u8; PIECE] = [0; PIECE];
    let mut left = n;
    while left > 0 {
        let piece = left.min(PIECE);
        write.write_all(&ZEROS[..piece]).await?;
        left -= piece;
    }
    Ok(())
}

/// A request body fed piece by piece.
type Body = StreamBody<ReceiverStream<Result<Frame<Bytes>, Infallible>>>;

/// A gRPC call to `path` whose message's prefix declares `declared` bytes, of which `sent`
/// follow, then nothing (the body stays open); its `grpc-status`, or `closed`.
async fn grpc_call(
    client: &Client<HttpConnector, Body>,
    to: SocketAddr,
    path: &str,
    declared: usize,
    sent: usize,
) -> String {
    let (tx, rx) = mpsc::channel(4);
    let Ok(request) = http::Request::post(format!("http://{to}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(StreamBody::new(ReceiverStream::new(rx)))
    else {
        unreachable!("the address and the headers are valid");
    };
    let feeding = async move {
        let mut prefix = vec![0];
        prefix.extend_from_slice(&(declared as u32).to_be_bytes());
        let mut pieces = vec![Bytes::from(prefix)];
        let zeros = Bytes::from(vec![0; PIECE]);
        let mut left = sent;
        while left > 0 {
            let piece = left.min(PIECE);
            pieces.push(zeros.slice(..piece));
            left -= piece;
        }
        for piece in pieces {
            if tx.send(Ok(Frame::data(piece))).await.is_err() {
                break;
            }
        }
        // The body (`tx`, held by this future) stays open while the call waits.
        pending::<()>().await;
    };
    let call = async {
        let response = client.request(request).await.ok()?;
        let mut headers = response.headers().clone();
        let body = response.into_body().collect().await.ok()?;
        if let Some(trailers) = body.trailers() {
            headers.extend(trailers.clone());
        }
        let code: i32 = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
        Some(format!("grpc_{}", grpc_code_name(code)))
    };
    tokio::select! {
        end = call => end.unwrap_or_else(|| "closed".to_owned()),
        () = feeding => unreachable!("feeding never ends"),
    }
}
