//! The soak's open loop through one front door: request `k` is due at `k / rate` seconds,
//! whatever happened to the earlier ones, and its latency counts from then. A fixed number
//! of slots (connections for HTTP/1.1, calls on one HTTP/2 connection for gRPC) take the
//! requests in turn, so a slow server makes requests late instead of piling them up: what
//! the generator holds is bounded by its slots. Oversized requests run on a clock of their
//! own, on connections of their own, so that a server closing one after refusing it does
//! not disturb the rest.
//!
//! Every answer is tallied by kind; a message under the soak's own id whose answer settles
//! nothing (502, a timeout, a broken connection, gRPC `UNAVAILABLE`) is sent again under
//! the same id, a few times, until an answer settles it, as the contract tells a client to.
//! Each door runs on a thread of its own with a single-threaded runtime.

use std::{
    cell::{Cell, RefCell},
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use system::proto::{IngestRequest, ingest_service_client::IngestServiceClient};
use tokio::time::{sleep, sleep_until, timeout};
use tonic::transport::{Channel, Endpoint};

use super::{
    http::{HttpConn, early_answer},
    ledger::Ids,
    mix::{self, Answer, Door, Kind, REQUEST_TIMEOUT, STREAM_MESSAGES, Settled},
    tally::Tally,
};

/// How long after its planned end a run still sends what was due before it (a timer fires
/// a little late).
const LATE_GRACE: Duration = Duration::from_secs(1);
/// Times a message whose answer settled nothing is sent again under its id.
const SETTLE_ATTEMPTS: u32 = 5;
/// The largest answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The gateway's default `BODY_LIMIT` and the gRPC server's message limit.
const HTTP_BODY_LIMIT: usize = 1024 * 1024;
const GRPC_MESSAGE_LIMIT: usize = 10 * 1024 * 1024;

/// How one door is driven.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) door: Door,
    pub(crate) target: SocketAddr,
    /// Requests per second (a retry's second send not counted).
    pub(crate) rate: f64,
    pub(crate) duration: Duration,
    /// One oversized request per this interval.
    pub(crate) oversized_every: Duration,
    pub(crate) ids: Ids,
    /// Whether to keep the ids the server chose, to match them with processed ids.
    pub(crate) keep_ids: bool,
    /// Where the door publishes how many messages it has seen accepted so far.
    pub(crate) live: Arc<AtomicU64>,
}

/// Drives `plan` to its end on this thread; what it saw.
pub(crate) fn run(plan: Plan) -> std::io::Result<Tally> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(drive(plan)))
}

/// The state one door's slots share (all on one thread).
struct Driver {
    plan: Plan,
    start: Instant,
    stop: Instant,
    next: Cell<u64>,
    next_id: Cell<u64>,
    tally: RefCell<Tally>,
}

/// How a slot reaches its door.
enum Conn {
    Http(HttpConn),
    Grpc(IngestServiceClient<Channel>),
}

async fn drive(plan: Plan) -> Tally {
    let start = Instant::now();
    let door = Driver {
        start,
        stop: start + plan.duration,
        next: Cell::new(0),
        next_id: Cell::new(0),
        tally: RefCell::new(Tally::new(plan.door, plan.keep_ids)),
        plan,
    };
    let slots = (door.plan.rate / 100.0).ceil().clamp(4.0, 128.0) as usize;
    let channel = match door.plan.door {
        Door::Http => None,
        Door::Grpc => Some(grpc_channel(door.plan.target)),
    };
    let conns = (0..slots).map(|_| match &channel {
        Some(channel) => Conn::Grpc(IngestServiceClient::new(channel.clone())),
        None => Conn::Http(HttpConn::new(door.plan.target)),
    });
    let loops = conns.map(|conn| door.slot(conn));
    tokio::join!(join_all(loops), door.oversized());
    let due = (door.plan.duration.as_secs_f64() * door.plan.rate).ceil() as u64;
    let claimed = door.next.get().min(due);
    let mut tally = door.tally.into_inner();
    tally.unsent += due - claimed;
    // Longer than planned when the requests went out late.
    tally.seconds = start.elapsed().as_secs_f64();
    tally
}

fn grpc_channel(target: SocketAddr) -> Channel {
    // The address is a socket address, so the URI is always valid.
    Endpoint::from_shared(format!("http://{target}"))
        .unwrap_or_else(|_| unreachable!())
        .connect_lazy()
}

impl Driver {
    /// Takes requests in turn until the run is over. The run ends on time: a generator that
    /// fell behind leaves the requests it could not send by then (and [`LATE_GRACE`]) unsent,
    /// and counted, so a soak lasts what it was asked to.
    async fn slot(&self, mut conn: Conn) {
        loop {
            let k = self.next.get();
            self.next.set(k + 1);
            let due = self.start + Duration::from_secs_f64(k as f64 / self.plan.rate);
            if due >= self.stop {
                return;
            }
            sleep_until(due.into()).await;
            if Instant::now() >= self.stop + LATE_GRACE {
                self.tally.borrow_mut().unsent += 1;
                return;
            }
            let lag = Instant::now().saturating_duration_since(due).as_micros() as u64;
            self.tally.borrow_mut().late.saturating_record(lag.max(1));
            let kind = Kind::of(self.plan.door, k);
            let first = self.next_id.get();
            self.next_id.set(first + kind.ids());
            match kind {
                Kind::Stream => self.stream(&mut conn, k, first, due).await,
                _ => self.message(&mut conn, kind, k, first, due).await,
            }
        }
    }

    /// One message of `kind` (our id number `n` when keyed), its retry when it is retried,
    /// and the sends that settle it when its answer did not.
    async fn message(&self, conn: &mut Conn, kind: Kind, k: u64, n: u64, due: Instant) {
        let id = kind.keyed().then(|| self.plan.ids.id(self.plan.door, n));
        let answer = send(conn, kind, k, id.as_deref(), n).await;
        self.record(kind, &answer, due, false);
        let keyed = id.as_deref().map(|id| (n, id));
        match answer.settled() {
            Settled::Stored => {
                self.stored(keyed, &answer);
                if kind == Kind::Retried {
                    let sent = Instant::now();
                    let again = send(conn, kind, k, id.as_deref(), n).await;
                    self.record(kind, &again, sent, true);
                    if again.settled() == Settled::Stored {
                        self.stored(keyed, &again);
                    }
                }
            }
            Settled::Refused => {}
            Settled::Unknown => match keyed {
                Some((n, id)) => self.settle(conn, kind, k, n, id).await,
                None => self.tally.borrow_mut().unsettled += 1,
            },
        }
    }

    /// An `IngestStream` call of [`STREAM_MESSAGES`] messages under our ids `first..`; a
    /// call that fails (or accepts fewer) leaves each of its messages to be settled one by
    /// one, under its id.
    async fn stream(&self, conn: &mut Conn, k: u64, first: u64, due: Instant) {
        let Conn::Grpc(client) = conn else { return };
        let ids: Vec<String> = (first..first + STREAM_MESSAGES)
            .map(|n| self.plan.ids.id(self.plan.door, n))
            .collect();
        let messages: Vec<IngestRequest> = ids
            .iter()
            .map(|id| mix::grpc_message(Kind::Stream, k, id.clone()))
            .collect();
        let call = client.ingest_stream(tokio_stream::iter(messages));
        let answer = match timeout(REQUEST_TIMEOUT, call).await {
            Ok(Ok(response)) => {
                let response = response.into_inner();
                Answer::Stored {
                    id: response.message_id,
                    duplicate: false,
                    accepted: response.accepted,
                }
            }
            Ok(Err(status)) => Answer::Grpc(status.code()),
            Err(_) => Answer::Timeout,
        };
        self.record(Kind::Stream, &answer, due, false);
        match &answer {
            Answer::Stored { id, accepted, .. } if *accepted == STREAM_MESSAGES => {
                let kept = ids.last() == Some(id);
                let mut tally = self.tally.borrow_mut();
                tally.contract.id_kept.add(kept);
                for (n, _) in (first..).zip(&ids) {
                    if kept {
                        tally.accepted.ours(n, false);
                    } else {
                        // The server named only the last message: the others' ids are its.
                        tally.accepted.theirs(if n + 1 == first + STREAM_MESSAGES {
                            id
                        } else {
                            ""
                        });
                    }
                }
                self.publish(&tally);
            }
            // A stream that failed may have had some of its messages accepted before, so
            // even a refusal settles none of them.
            _ => {
                for (n, id) in (first..).zip(&ids) {
                    self.settle(conn, Kind::Keyed, k, n, id).await;
                }
            }
        }
    }

    /// Sends our message `n` again under `id` until an answer settles whether it was stored.
    async fn settle(&self, conn: &mut Conn, kind: Kind, k: u64, n: u64, id: &str) {
        for attempt in 0..SETTLE_ATTEMPTS {
            sleep(Duration::from_millis(100 << attempt)).await;
            let sent = Instant::now();
            let answer = send(conn, kind, k, Some(id), n).await;
            self.record(kind, &answer, sent, false);
            match answer.settled() {
                Settled::Stored => return self.stored(Some((n, id)), &answer),
                Settled::Refused => return,
                Settled::Unknown => {}
            }
        }
        self.tally.borrow_mut().unsettled += 1;
    }

    /// Oversized requests, one per interval, each on a connection of its own.
    async fn oversized(&self) {
        let every = self.plan.oversized_every;
        let mut due = self.start + every / 2;
        while due < self.stop {
            sleep_until(due.into()).await;
            let answer = match self.plan.door {
                Door::Http => {
                    let body = mix::http_oversized(HTTP_BODY_LIMIT);
                    timeout(REQUEST_TIMEOUT, early_answer(self.plan.target, body))
                        .await
                        .unwrap_or(Answer::Timeout)
                }
                Door::Grpc => {
                    let message = mix::grpc_oversized(GRPC_MESSAGE_LIMIT);
                    let client = IngestServiceClient::new(grpc_channel(self.plan.target))
                        .max_decoding_message_size(MAX_ANSWER_BYTES);
                    grpc_unary(client, message).await
                }
            };
            self.record(Kind::Oversized, &answer, due, false);
            if answer.settled() == Settled::Stored {
                self.stored(None, &answer);
            }
            due += every;
        }
    }

    /// Notes a 202 / OK answer for our message `keyed` (number and id), or for a message
    /// without our id.
    fn stored(&self, keyed: Option<(u64, &str)>, answer: &Answer) {
        let Answer::Stored { id, duplicate, .. } = answer else {
            return;
        };
        let mut tally = self.tally.borrow_mut();
        match keyed {
            Some((n, ours)) => {
                let kept = id == ours;
                tally.contract.id_kept.add(kept);
                if kept {
                    tally.accepted.ours(n, *duplicate);
                } else if !duplicate {
                    tally.accepted.theirs(id);
                }
            }
            None => tally.accepted.theirs(id),
        }
        self.publish(&tally);
    }

    /// Tallies one answer to a request of `kind` timed from `from`; `retry` marks the
    /// second send of a retried message.
    fn record(&self, kind: Kind, answer: &Answer, from: Instant, retry: bool) {
        // A retry sent after the end counts in the last minute, not in one of its own.
        let last = self.plan.duration.as_secs().saturating_sub(1) / 60;
        let minute = (from.saturating_duration_since(self.start).as_secs() / 60).min(last);
        self.tally
            .borrow_mut()
            .record(kind, answer, minute as usize, from.elapsed(), retry);
    }

    fn publish(&self, tally: &Tally) {
        self.plan
            .live
            .store(tally.accepted.total(), Ordering::Relaxed);
    }
}

/// Sends one message of `kind` through `conn`, under `id` when given (over HTTP in the
/// `Idempotency-Key` header for even `n`, in the body's `id` field for odd ones).
async fn send(conn: &mut Conn, kind: Kind, k: u64, id: Option<&str>, n: u64) -> Answer {
    match conn {
        Conn::Http(http) => {
            let (header, field) = match id {
                Some(id) if n.is_multiple_of(2) => (Some(id), None),
                other => (None, other),
            };
            http.send(mix::http_body(kind, k, field), header).await
        }
        Conn::Grpc(client) => {
            let message = mix::grpc_message(kind, k, id.unwrap_or_default().to_owned());
            grpc_unary(client.clone(), message).await
        }
    }
}

async fn grpc_unary(mut client: IngestServiceClient<Channel>, message: IngestRequest) -> Answer {
    match timeout(REQUEST_TIMEOUT, client.ingest(message)).await {
        Ok(Ok(response)) => {
            let response = response.into_inner();
            Answer::Stored {
                id: response.message_id,
                duplicate: response.status == "duplicate",
                accepted: response.accepted.max(1),
            }
        }
        Ok(Err(status)) => Answer::Grpc(status.code()),
        Err(_) => Answer::Timeout,
    }
}
