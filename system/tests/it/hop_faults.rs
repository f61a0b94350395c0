//! Faults of the hop to the processor, as the clients of both front doors see them. A fake
//! processor (a TCP listener that answers HTTP/1.1 written by hand) stalls, answers 500 or
//! 503, answers with something that is not an answer, miscounts a batch's outcomes, or
//! closes the connection; every client gets the error the contract gives that fault.
//!
//! The fake records which messages each hop request carried and what it answered, so the
//! tests also show that an ingest is reported accepted only when the processor accepted it,
//! that no message is sent twice (no hidden retries), and that the front doors work again
//! as soon as the processor does. Each fault is tried with both hop codecs, through the
//! gateway (one ingest, and concurrent ingests that the batcher coalesces) and through gRPC
//! (unary calls alone and concurrent, and `IngestStream`).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::future::join_all;
use http::{StatusCode, Uri};
use reqwest::header;
use serde_json::{Value, json};
use system::{
    client::ForwarderConfig,
    codec::Codec,
    gateway::{self, GatewayConfig},
    grpc::{self, GrpcConfig},
    proto::{
        BatchOutcome, DataMessage, DataMessageBatch, IngestRequest, MessageOutcome, Outcome,
        ingest_service_client::IngestServiceClient,
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::{JoinHandle, JoinSet},
};
use tonic::Code;

/// What the fake processor answers to a hop request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// What the processor answers: 202 to one message, 200 and one accepted outcome per
    /// message to a batch.
    Correct,
    /// Reads the request and never answers.
    Stall,
    /// 500, with a JSON `{"error": ...}` body saying this, or with no body.
    ServerError(Option<&'static str>),
    /// 503 with a JSON error: the processor is overloaded.
    Overloaded,
    /// The queue's broker did not confirm in time: 504 with a JSON error to one message,
    /// 200 and one `UNCERTAIN` outcome per message to a batch.
    Unconfirmed,
    /// This status, with an HTML page for a body.
    Garbage(u16),
    /// A batch answered 200 with this many outcomes more (or fewer) than it had messages.
    /// One message is answered correctly.
    Miscounted(isize),
    /// A batch answered 200 with one good outcome and then bytes that do not decode. One
    /// message is answered correctly.
    Broken,
    /// The head of the correct answer and half its body, then the connection is closed.
    CutBody,
    /// The connection is closed before any byte of an answer.
    Close,
}

/// What a client of a front door should get when its message went in a hop request (a
/// batch or not) that the processor answered with `answer`. Only an answer by which the
/// processor accepted the message may come out as accepted.
fn expected(answer: Answer, batch: bool) -> Expect {
    // Every fault but an overloaded answer leaves the message's fate unknown: the request
    // went out and no usable answer came back.
    let refused = |http, grpc, says| Expect::Refused {
        http,
        grpc,
        says,
        uncertain: answer != Answer::Overloaded,
    };
    match answer {
        Answer::Correct => Expect::Accepted,
        // A 202 is an acceptance whatever its body says.
        Answer::Garbage(202) if !batch => Expect::Accepted,
        Answer::Miscounted(_) | Answer::Broken if !batch => Expect::Accepted,
        Answer::Stall => refused(502, Code::Unavailable, "did not answer within"),
        Answer::ServerError(Some(error)) => refused(502, Code::Internal, error),
        Answer::ServerError(None) => refused(502, Code::Internal, "processor answered 500"),
        Answer::Overloaded => refused(503, Code::Unavailable, "queue is full"),
        Answer::Unconfirmed => refused(502, Code::Unavailable, "may have been accepted"),
        Answer::Garbage(_) | Answer::Broken => refused(502, Code::Internal, "processor answered 2"),
        Answer::Miscounted(_) => refused(502, Code::Internal, "outcomes for"),
        Answer::CutBody => refused(502, Code::Unavailable, "reading the answer"),
        Answer::Close => refused(502, Code::Unavailable, "no complete answer"),
    }
}

/// What a client should get: accepted, or this HTTP status (with a JSON error, and
/// `Retry-After` only on 503) and this gRPC code, the error saying `says`; a failed stream
/// lists the messages of an `uncertain` refusal as such.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Accepted,
    Refused {
        http: u16,
        grpc: Code,
        says: &'static str,
        uncertain: bool,
    },
}

/// Tries `answer` with both codecs through every path. A path that coalesces messages is
/// tried again, with more patience, until a batch formed (at once on any usual machine).
async fn fault(answer: Answer) {
    for codec in [Codec::Protobuf, Codec::Json] {
        for path in Path::ALL {
            let mut attempt = 0;
            while !round(answer, codec, path, attempt).await && path.batches() {
                attempt += 1;
                assert!(
                    attempt < 5,
                    "{answer:?} through {path:?}: no batch formed in {attempt} rounds"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_that_never_answers_is_a_502_and_unavailable_after_the_hop_timeout() {
    fault(Answer::Stall).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_a_502_and_internal_passing_on_the_processors_error() {
    fault(Answer::ServerError(Some("the disk is on fire"))).await;
    fault(Answer::ServerError(None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_overloaded_processor_is_a_503_with_retry_after() {
    fault(Answer::Overloaded).await;
}

/// A processor whose queue did not confirm a message (504, or the outcome `UNCERTAIN`) may
/// have stored it: a 502 and `UNAVAILABLE` saying so, the stream's messages uncertain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_message_is_a_502_and_unavailable_saying_it_may_have_been_accepted() {
    fault(Answer::Unconfirmed).await;
}

/// A 200 to one message, or a 200 or 202 to a batch, whose body is an HTML page, is not an
/// answer; a 202 to one message is an acceptance whatever its body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_is_not_one_is_a_502_and_internal() {
    fault(Answer::Garbage(200)).await;
    fault(Answer::Garbage(202)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answer_with_the_wrong_number_of_outcomes_fails_every_message_in_it() {
    fault(Answer::Miscounted(-1)).await;
    fault(Answer::Miscounted(1)).await;
}

/// An answer that decodes only in part accepts none of its batch's messages, also on the
/// stream path, which reads the outcomes one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answer_that_breaks_off_accepts_none_of_its_messages() {
    fault(Answer::Broken).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_mid_answer_or_before_it_is_a_502_and_unavailable() {
    fault(Answer::CutBody).await;
    fault(Answer::Close).await;
}

/// How a test reaches the processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// One ingest at the gateway over HTTP/1.1.
    GatewayOne,
    /// Concurrent ingests at the gateway, coalesced into batches.
    GatewayMany,
    /// One unary gRPC `Ingest`.
    UnaryOne,
    /// Concurrent unary calls, coalesced into batches.
    UnaryMany,
    /// One `IngestStream` call.
    Stream,
}

/// Messages sent at once on the paths that form batches.
const MANY: usize = 6;

impl Path {
    const ALL: [Path; 5] = [
        Path::GatewayOne,
        Path::GatewayMany,
        Path::UnaryOne,
        Path::UnaryMany,
        Path::Stream,
    ];

    fn batches(self) -> bool {
        matches!(self, Path::GatewayMany | Path::UnaryMany | Path::Stream)
    }

    fn messages(self) -> usize {
        if self.batches() { MANY } else { 1 }
    }
}

/// One round of `path` against a fresh fake answering `answer`, then a recovery check;
/// whether the fake received a batch during the fault.
async fn round(answer: Answer, codec: Codec, path: Path, attempt: u32) -> bool {
    let patience = Duration::from_millis(300) * (1 << attempt);
    let stall = answer == Answer::Stall;
    // A stalled request holds the hop until the timeout, which lets the next messages
    // gather; otherwise the fake holds the first request (answered correctly) as long.
    let timeout = if stall {
        patience
    } else {
        Duration::from_secs(30)
    };
    let opener = (path == Path::GatewayMany || path == Path::UnaryMany) && !stall;
    let fake = Fake::start(answer, opener.then_some(patience)).await;
    let fronts = Fronts::start(&fake.url, codec, timeout).await;
    let what = format!("{answer:?} over {codec:?} through {path:?}");

    let sources: Vec<String> = (0..path.messages()).map(|i| format!("fault-{i}")).collect();
    check_round(&fronts, &fake, path, &sources, &what).await;
    let formed_batch = fake.received().iter().any(|r| r.batch);

    fake.answer(Answer::Correct);
    let after: Vec<String> = (0..path.messages()).map(|i| format!("after-{i}")).collect();
    let what = format!("{what}, once the processor answers again");
    check_round(&fronts, &fake, path, &after, &what).await;
    fronts.stop().await;
    formed_batch
}

/// Sends `sources` through `path` and checks every answer against what the fake did with
/// the message.
async fn check_round(fronts: &Fronts, fake: &Fake, path: Path, sources: &[String], what: &str) {
    if path == Path::Stream {
        let result = fronts.stream(sources).await;
        check_stream(&fake.received(), sources, &result, what);
        return;
    }
    let verdicts = join_all(sources.iter().map(|source| fronts.ingest(path, source))).await;
    let received = fake.received();
    for (source, verdict) in sources.iter().zip(&verdicts) {
        let carriers: Vec<&Received> = received
            .iter()
            .filter(|r| r.sources.contains(source))
            .collect();
        let times: usize = carriers
            .iter()
            .map(|r| r.sources.iter().filter(|s| *s == source).count())
            .sum();
        assert_eq!(
            times, 1,
            "{what}: {source} reached the processor {times} times"
        );
        check(
            verdict,
            expected(carriers[0].answer, carriers[0].batch),
            what,
        );
    }
}

/// A stream is sent until a hop request fails: every request before the last must have
/// been accepted, and the call fails with the last one's status, whose metadata says how
/// many messages were accepted, where to resume, and which messages may have been
/// accepted all the same.
fn check_stream(
    received: &[Received],
    sources: &[String],
    result: &Result<u64, tonic::Status>,
    what: &str,
) {
    for source in sources {
        let times = received
            .iter()
            .flat_map(|r| &r.sources)
            .filter(|s| *s == source)
            .count();
        assert!(
            times <= 1,
            "{what}: {source} reached the processor {times} times"
        );
    }
    let carriers: Vec<&Received> = received
        .iter()
        .filter(|r| r.sources.iter().any(|s| sources.contains(s)))
        .collect();
    let Some((last, earlier)) = carriers.split_last() else {
        panic!("{what}: nothing reached the processor, the call answered {result:?}");
    };
    for request in earlier {
        assert_eq!(
            expected(request.answer, request.batch),
            Expect::Accepted,
            "{what}: the stream went on after a failed request"
        );
    }
    let before: usize = earlier.iter().map(|r| r.sources.len()).sum();
    match expected(last.answer, last.batch) {
        Expect::Accepted => {
            assert_eq!(before + last.sources.len(), sources.len(), "{what}");
            let accepted = result.as_ref().map_err(|status| status.message());
            assert_eq!(accepted, Ok(&(sources.len() as u64)), "{what}");
        }
        Expect::Refused {
            grpc,
            says,
            uncertain,
            ..
        } => {
            let Err(status) = result else {
                panic!("{what}: the call succeeded: {result:?}");
            };
            let message = status.message();
            assert_eq!(status.code(), grpc, "{what}: {message}");
            assert!(
                message.contains(says),
                "{what}: {message:?} should say {says:?}"
            );
            let first = sources.iter().position(|s| *s == last.sources[0]).unwrap();
            assert_eq!(first, before, "{what}: messages were sent out of order");
            let failed = match last.sources.len() {
                1 => first.to_string(),
                n => format!("{first}-{}", first + n - 1),
            };
            let get = |key| {
                let value = status.metadata().get(key)?;
                Some(value.to_str().unwrap().to_owned())
            };
            assert_eq!(
                (
                    get("ingest-accepted"),
                    get("ingest-resume-from"),
                    get("ingest-accepted-after"),
                    get("ingest-uncertain"),
                ),
                (
                    Some(before.to_string()),
                    Some(before.to_string()),
                    None,
                    uncertain.then_some(failed),
                ),
                "{what}: the stream's standing ({message})"
            );
        }
    }
}

/// What a client got.
#[derive(Debug)]
enum Verdict {
    Accepted,
    Http {
        status: u16,
        retry_after: bool,
        error: String,
    },
    Grpc {
        code: Code,
        message: String,
    },
}

fn check(verdict: &Verdict, expect: Expect, what: &str) {
    match (expect, verdict) {
        (Expect::Accepted, Verdict::Accepted) => {}
        (
            Expect::Refused { http, says, .. },
            Verdict::Http {
                status,
                retry_after,
                error,
            },
        ) => {
            assert_eq!(*status, http, "{what}: {error}");
            assert_eq!(
                *retry_after,
                http == 503,
                "{what}: Retry-After only on a 503"
            );
            assert!(
                error.contains(says),
                "{what}: {error:?} should say {says:?}"
            );
        }
        (Expect::Refused { grpc, says, .. }, Verdict::Grpc { code, message }) => {
            assert_eq!(*code, grpc, "{what}: {message}");
            assert!(
                message.contains(says),
                "{what}: {message:?} should say {says:?}"
            );
        }
        _ => panic!("{what}: expected {expect:?}, got {verdict:?}"),
    }
}

/// The gateway and the gRPC server, in this process, forwarding to the fake.
struct Fronts {
    gateway_url: String,
    http: reqwest::Client,
    grpc: IngestServiceClient<tonic::transport::Channel>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Fronts {
    async fn start(processor: &Uri, codec: Codec, timeout: Duration) -> Fronts {
        let forwarder = ForwarderConfig {
            codec,
            // One request out at a time, so that messages arriving meanwhile form a batch.
            max_in_flight: 1,
            timeout,
            ..ForwarderConfig::new(processor.clone())
        };
        let gateway_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway_url = format!("http://{}", gateway_listener.local_addr().unwrap());
        let grpc_url = format!("http://{}", grpc_listener.local_addr().unwrap());
        let (stop, stopped) = watch::channel(false);
        let until_stopped = || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };
        let gateway_config = GatewayConfig::new(forwarder.clone());
        let grpc_config = GrpcConfig::new(forwarder);
        let tasks = vec![
            tokio::spawn(gateway::serve(
                gateway_listener,
                gateway_config,
                until_stopped(),
            )),
            tokio::spawn({
                let stop = until_stopped();
                async move { grpc::serve(grpc_listener, grpc_config, stop).await.unwrap() }
            }),
        ];
        Fronts {
            gateway_url,
            http: reqwest::Client::new(),
            grpc: IngestServiceClient::connect(grpc_url).await.unwrap(),
            stop,
            tasks,
        }
    }

    /// One ingest through `path` (not the stream).
    async fn ingest(&self, path: Path, source: &str) -> Verdict {
        match path {
            Path::GatewayOne | Path::GatewayMany => self.gateway_ingest(source).await,
            _ => match self.grpc.clone().ingest(request(source)).await {
                Ok(_) => Verdict::Accepted,
                Err(status) => Verdict::Grpc {
                    code: status.code(),
                    message: status.message().to_owned(),
                },
            },
        }
    }

    async fn gateway_ingest(&self, source: &str) -> Verdict {
        let response = self
            .http
            .post(format!("{}/api/v1/ingest", self.gateway_url))
            .header(header::CONTENT_TYPE, "application/json")
            .body(json!({"source": source, "data": "x"}).to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        if status == 202 {
            return Verdict::Accepted;
        }
        let retry_after = response.headers().contains_key(header::RETRY_AFTER);
        let content_type = response.headers()[header::CONTENT_TYPE].clone();
        assert_eq!(content_type, "application/json", "a {status}");
        let body: Value = response.json().await.unwrap();
        let error = body["error"].as_str().unwrap_or_else(|| panic!("{body}"));
        Verdict::Http {
            status,
            retry_after,
            error: error.to_owned(),
        }
    }

    /// One `IngestStream` call carrying `sources`: how many were accepted, or the status.
    async fn stream(&self, sources: &[String]) -> Result<u64, tonic::Status> {
        let requests: Vec<IngestRequest> = sources.iter().map(|s| request(s)).collect();
        self.grpc
            .clone()
            .ingest_stream(tokio_stream::iter(requests))
            .await
            .map(|reply| reply.into_inner().accepted)
    }

    /// Stops the front doors; they must drain in time whatever the fake left hanging.
    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the front doors stop")
                .unwrap();
        }
    }
}

fn request(source: &str) -> IngestRequest {
    IngestRequest {
        source: source.to_owned(),
        data: b"x".to_vec(),
        ..IngestRequest::default()
    }
}

/// One hop request as the fake received it.
#[derive(Debug, Clone)]
struct Received {
    batch: bool,
    /// The `source` of each message, in order (the tests give each message its own).
    sources: Vec<String>,
    /// What the fake answered.
    answer: Answer,
}

#[derive(Debug)]
struct FakeState {
    answer: Answer,
    /// When set, the next request is held this long and then answered correctly.
    opener: Option<Duration>,
    received: Vec<Received>,
}

/// A processor that answers what the test tells it to. Its connections close with it.
struct Fake {
    url: Uri,
    state: Arc<Mutex<FakeState>>,
    accept: JoinHandle<()>,
}

impl Fake {
    async fn start(answer: Answer, opener: Option<Duration>) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let state = Arc::new(Mutex::new(FakeState {
            answer,
            opener,
            received: Vec::new(),
        }));
        let shared = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((socket, _)) = listener.accept().await {
                while connections.try_join_next().is_some() {}
                connections.spawn(serve_connection(socket, Arc::clone(&shared)));
            }
        });
        Fake { url, state, accept }
    }

    fn answer(&self, answer: Answer) {
        self.state.lock().unwrap().answer = answer;
    }

    /// Every request received so far, in the order they came.
    fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn serve_connection(mut socket: TcpStream, state: Arc<Mutex<FakeState>>) {
    let mut buf = Vec::new();
    while let Some((path, codec, body)) = read_request(&mut socket, &mut buf).await {
        let batch = path == "/enqueue/batch";
        let messages = match path.as_str() {
            "/enqueue" => vec![codec.decode::<DataMessage>(&body).unwrap()],
            "/enqueue/batch" => codec.decode::<DataMessageBatch>(&body).unwrap().messages,
            _ => {
                let reply = response(404, None, 0, b"");
                if socket.write_all(&reply).await.is_err() {
                    return;
                }
                continue;
            }
        };
        // Recorded before the answer, so a front door cannot answer its client first.
        let (answer, hold) = {
            let mut state = state.lock().unwrap();
            let (answer, hold) = match state.opener.take() {
                Some(hold) => (Answer::Correct, hold),
                None => (state.answer, Duration::ZERO),
            };
            let sources = messages.iter().map(|m| m.source.clone()).collect();
            state.received.push(Received {
                batch,
                sources,
                answer,
            });
            (answer, hold)
        };
        tokio::time::sleep(hold).await;
        let (status, content_type, correct) = correct_answer(batch, codec, &messages);
        let outcomes = |n: usize| codec.encode(&accepted_outcomes(n));
        let reply = match answer {
            Answer::Correct => response(status, Some(content_type), correct.len(), &correct),
            Answer::Miscounted(_) | Answer::Broken if !batch => {
                response(status, Some(content_type), correct.len(), &correct)
            }
            Answer::Stall => {
                // Whatever else comes on this connection goes unanswered too.
                let _ = tokio::io::copy(&mut socket, &mut tokio::io::sink()).await;
                return;
            }
            Answer::Close => return,
            Answer::CutBody => {
                let reply = response(status, Some(content_type), correct.len(), &correct);
                let cut = reply.len() - correct.len() / 2;
                let _ = socket.write_all(&reply[..cut]).await;
                let _ = socket.shutdown().await;
                return;
            }
            Answer::ServerError(Some(error)) => {
                let body = json!({ "error": error }).to_string();
                response(500, Some("application/json"), body.len(), body.as_bytes())
            }
            Answer::ServerError(None) => response(500, None, 0, b""),
            Answer::Overloaded => {
                let body = json!({"error": "queue is full"}).to_string();
                response(503, Some("application/json"), body.len(), body.as_bytes())
            }
            Answer::Unconfirmed if batch => {
                let uncertain = MessageOutcome {
                    outcome: Outcome::Uncertain as i32,
                    error: "queue broker did not confirm the message in time".to_owned(),
                    ..MessageOutcome::default()
                };
                let answer = BatchOutcome {
                    outcomes: vec![uncertain; messages.len()],
                    accepted: 0,
                };
                let body = codec.encode(&answer);
                response(200, Some(content_type), body.len(), &body)
            }
            Answer::Unconfirmed => {
                let body = json!({"error": "queue broker did not confirm the message in time"});
                let body = body.to_string();
                response(504, Some("application/json"), body.len(), body.as_bytes())
            }
            Answer::Garbage(status) => {
                let page = b"<html><body><h1>It works!</h1></body></html>";
                response(status, Some("text/html"), page.len(), page)
            }
            Answer::Miscounted(more) => {
                let body = outcomes(messages.len().saturating_add_signed(more));
                response(200, Some(content_type), body.len(), &body)
            }
            Answer::Broken => {
                let body = match codec {
                    // One whole outcome, then an entry that claims 127 bytes and has none.
                    Codec::Protobuf => [outcomes(1), vec![0x0a, 0x7f]].concat(),
                    Codec::Json => {
                        let whole = outcomes(messages.len());
                        whole[..whole.len() / 2].to_vec()
                    }
                };
                response(200, Some(content_type), body.len(), &body)
            }
        };
        if socket.write_all(&reply).await.is_err() {
            return;
        }
    }
}

/// The processor's answer to `messages` in one request: status, content type, body.
fn correct_answer(
    batch: bool,
    codec: Codec,
    messages: &[DataMessage],
) -> (u16, &'static str, Vec<u8>) {
    if batch {
        let body = codec.encode(&accepted_outcomes(messages.len()));
        (200, codec.content_type(), body)
    } else {
        let body = json!({"messageId": messages[0].id, "status": "accepted"});
        (202, "application/json", body.to_string().into_bytes())
    }
}

fn accepted_outcomes(n: usize) -> BatchOutcome {
    let outcome = MessageOutcome {
        outcome: Outcome::Accepted as i32,
        ..MessageOutcome::default()
    };
    BatchOutcome {
        outcomes: vec![outcome; n],
        accepted: n as u32,
    }
}

/// An HTTP/1.1 answer whose head declares `declared` body bytes.
fn response(status: u16, content_type: Option<&str>, declared: usize, body: &[u8]) -> Vec<u8> {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut head = format!("HTTP/1.1 {status} {reason}\r\ncontent-length: {declared}\r\n");
    if let Some(content_type) = content_type {
        head.push_str(&format!("content-type: {content_type}\r\n"));
    }
    head.push_str("\r\n");
    let mut reply = head.into_bytes();
    reply.extend_from_slice(body);
    reply
}

/// Reads one request from `socket` (keeping what follows it in `buf`): its path, the codec
/// of its body, and the body. `None` once the connection ends or the request passes the
/// fake's bounds.
async fn read_request(
    socket: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Option<(String, Codec, Vec<u8>)> {
    const MAX_HEAD: usize = 64 * 1024;
    const MAX_BODY: usize = 16 * 1024 * 1024;
    let head_len = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buf.len() > MAX_HEAD || socket.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    };
    let head = std::str::from_utf8(&buf[..head_len]).ok()?;
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let (mut len, mut codec) = (0, Codec::Protobuf);
    for (name, value) in lines.filter_map(|line| line.split_once(':')) {
        match (name.to_ascii_lowercase().as_str(), value.trim()) {
            ("content-length", value) => len = value.parse().ok()?,
            ("content-type", "application/json") => codec = Codec::Json,
            _ => {}
        }
    }
    if len > MAX_BODY {
        return None;
    }
    while buf.len() < head_len + len {
        if socket.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
    let body = buf[head_len..head_len + len].to_vec();
    buf.drain(..head_len + len);
    Some((path, codec, body))
}
