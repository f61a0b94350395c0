//! The HTTP/2 runner for h2c, gRPC unary and gRPC client-streaming: the `h2` crate driven
//! directly (no tower stack, no codec), sending a pre-built head and body on up to
//! `in_flight` streams per connection. gRPC answers are judged by `grpc-status` (from the
//! trailers, or from the head of a trailers-only answer); an answer without one is a
//! protocol error. A connection-level failure fails its streams and the connection is
//! reopened; every stream is bounded by the request timeout.

use std::{cell::RefCell, pin::Pin, time::Instant};

use bytes::Bytes;
use futures_util::{StreamExt, stream::FuturesUnordered};
use h2::client::SendRequest;
use http::HeaderMap;
use tokio::time::timeout;

use super::{
    Context,
    http1::connect,
    pace::{Due, Pacer, wait_until},
    record::{ErrorKind, Outcome, Recorder, grpc_outcome, http_outcome},
};

/// Flow-control windows large enough that a connection's streams never wait for a
/// WINDOW_UPDATE on loopback.
const STREAM_WINDOW: u32 = 4 << 20;
const CONNECTION_WINDOW: u32 = 16 << 20;

type Call<'a> = Pin<Box<dyn Future<Output = (Instant, Outcome, bool)> + 'a>>;

/// Drives one connection slot until its pacer is done.
pub(super) async fn run_connection(ctx: &Context, recorder: &RefCell<Recorder>, mut pacer: Pacer) {
    loop {
        if pacer.done(Instant::now()) {
            return;
        }
        let Some(stream) = connect(ctx.addr, ctx, recorder, &pacer).await else {
            continue;
        };
        let handshake = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .handshake::<_, Bytes>(stream);
        let (send, connection) = match timeout(ctx.timeout, handshake).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(_)) | Err(_) => {
                recorder.borrow_mut().connect_failed(Instant::now());
                let retry = Instant::now() + ctx.reconnect_delay;
                tokio::time::sleep_until(retry.min(pacer.stop()).into()).await;
                continue;
            }
        };
        // The connection task ends when every handle to it is dropped or it fails.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        if drive(send, ctx, recorder, &mut pacer).await.is_ok() {
            return;
        }
        // A failed HTTP/2 connection is rare; pausing before the next one keeps a server
        // that drops every connection from being hammered with reconnects.
        let retry = Instant::now() + ctx.reconnect_delay;
        tokio::time::sleep_until(retry.min(pacer.stop()).into()).await;
    }
}

/// One connection's life: `Ok` when the pacer is done and every stream has finished, `Err`
/// when the connection failed (the streams in flight are recorded as they end).
async fn drive(
    send: SendRequest<Bytes>,
    ctx: &Context,
    recorder: &RefCell<Recorder>,
    pacer: &mut Pacer,
) -> Result<(), ()> {
    let depth = ctx.in_flight as usize;
    let mut calls: FuturesUnordered<Call<'_>> = FuturesUnordered::new();
    let mut broken = false;
    loop {
        let now = Instant::now();
        let mut wake = None;
        while !broken && calls.len() < depth {
            match pacer.poll(now) {
                Due::Now(due) => {
                    if ctx.open_loop {
                        recorder.borrow_mut().sent(due, now);
                    }
                    calls.push(Box::pin(call(send.clone(), ctx, due)));
                }
                Due::At(at) => {
                    wake = Some(at);
                    break;
                }
                Due::Done => break,
            }
        }
        if calls.is_empty() {
            match (broken, wake) {
                (true, _) => return Err(()),
                (false, Some(at)) => {
                    wait_until(at, ctx.precise_timing).await;
                    continue;
                }
                (false, None) => return Ok(()),
            }
        }
        tokio::select! {
            Some((due, outcome, fatal)) = calls.next() => {
                recorder.borrow_mut().record(due, Instant::now(), outcome, ctx.prepared.messages);
                broken |= fatal;
            }
            () = wait_until(wake.unwrap_or(now), ctx.precise_timing), if wake.is_some() => {}
        }
    }
}

/// One request (or streaming call): its due time, how it ended, and whether the connection
/// is unusable afterwards.
async fn call(send: SendRequest<Bytes>, ctx: &Context, due: Instant) -> (Instant, Outcome, bool) {
    match timeout(ctx.timeout, exchange(send, ctx)).await {
        Ok(Ok(outcome)) => (due, outcome, false),
        Ok(Err(err)) => (due, Outcome::Error(classify(&err)), !err.is_reset()),
        Err(_) => (due, Outcome::Error(ErrorKind::Timeout), false),
    }
}

async fn exchange(send: SendRequest<Bytes>, ctx: &Context) -> Result<Outcome, h2::Error> {
    let mut send = send.ready().await?;
    let (response, mut body_out) = send.send_request(ctx.prepared.request(), false)?;
    body_out.send_data(ctx.prepared.body.clone(), true)?;
    let response = response.await?;
    let status = response.status().as_u16();
    let head_grpc = grpc_status(response.headers());
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await?;
    if !ctx.grpc || status != 200 {
        return Ok(http_outcome(status));
    }
    match trailers.as_ref().and_then(grpc_status).or(head_grpc) {
        Some(code) => Ok(grpc_outcome(code)),
        None => Ok(Outcome::Error(ErrorKind::Protocol)),
    }
}

fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse().ok())
}

fn classify(err: &h2::Error) -> ErrorKind {
    if err.is_io() {
        ErrorKind::Io
    } else if err.is_reset() || err.is_go_away() {
        ErrorKind::Reset
    } else {
        ErrorKind::Protocol
    }
}
