//! The HTTP gateway: `POST /api/v1/ingest` over HTTP/1.1 or h2c, forwarded to the processor
//! by the `Hop`; `/api/v1/status`, `/api/v1/trace`, `/health`, `/metrics` (its
//! families, and those of the roles sharing its registry: see [`FrontDoorConfig::metrics`](crate::FrontDoorConfig::metrics)).
//!
//! A 202 means the processor accepted the message; every failure is mapped once, here, to
//! the status the contract fixes (400, 413, 415, 502, 503 + `Retry-After`). With
//! `INGEST_TOKEN` set, ingest and trace want it as a bearer token (401 otherwise, see
//! [`crate::serve::auth`]); status, health, readiness and metrics stay open.

mod metrics;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Extension, Json, Router,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, Version},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::{
    domain::answer::{self, Receipt},
    domain::codec::{CappedMap, Codec},
    domain::http_error::ApiError,
    domain::ids::IdSource,
    domain::message::{MessageRef, unix_now},
    domain::proto::{DataMessage, IngestRequest},
    domain::redact,
    domain::validate::{self, Invalid},
    domain::wire::{self, IngestView},
    hop::{
        Hop,
        client::{Accepted, ForwardError, ForwarderConfig, trace::Tracer},
    },
    roles::FrontDoorConfig,
    serve::auth::{Guard, IdScope, Scope},
    serve::body::{linger, read_body_charged},
    serve::clients::{Clients, Peer},
    serve::debug,
    serve::net::BoundedListener,
    serve::refusals::{Refusal, Refusals},
    serve::server::{self, Protocols},
};

/// The gateway's port unless told otherwise (`API_PORT`).
pub(crate) const DEFAULT_PORT: u16 = 8080;
/// Largest request body the gateway accepts unless told otherwise (`BODY_LIMIT`).
pub(crate) const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// How the gateway is set up: what every front door takes, and its body limit.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The hop, limits, clients, metrics, TLS and tokens (TLS with ALPN `h2`, `http/1.1`;
    /// plain HTTP/1.1 and h2c when `None`).
    pub front: FrontDoorConfig,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
}

impl GatewayConfig {
    /// The defaults, forwarding to the processor at `forwarder`.
    pub fn new(forwarder: ForwarderConfig) -> GatewayConfig {
        GatewayConfig::from_front(FrontDoorConfig::new(forwarder))
    }

    /// The gateway of the front door `front`, with the default body limit.
    pub fn from_front(front: FrontDoorConfig) -> GatewayConfig {
        GatewayConfig {
            front,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
}

#[derive(Debug)]
struct Gateway {
    hop: Hop,
    tracer: Tracer,
    started: Instant,
    body_limit: usize,
    body_timeout: Duration,
    clients: Arc<Clients>,
    refusals: Arc<Refusals>,
    connections: Arc<AtomicU64>,
    accepted: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    latency: metrics::IngestLatency,
}

/// Serves the gateway on `listener` until `shutdown` completes, then drains open requests.
pub async fn serve(
    listener: TcpListener,
    config: GatewayConfig,
    shutdown: impl Future<Output = ()>,
) {
    serve_also_plain(listener, None, config, shutdown).await;
}

/// Serves the gateway on `listener` (over TLS with `config.front.tls`) and, with `plain`, the
/// same gateway in plain text (HTTP/1.1 and h2c) on that listener too.
pub(crate) async fn serve_also_plain(
    listener: TcpListener,
    plain: Option<TcpListener>,
    config: GatewayConfig,
    shutdown: impl Future<Output = ()>,
) {
    let refusals = Arc::new(Refusals::default());
    let listener = BoundedListener::new(listener, config.front.max_connections)
        .with_clients(&config.front.clients)
        .counting(&refusals);
    let readiness = crate::hop::ready::FrontDoor::new("gateway", &config.front.forwarder);
    let gateway = Arc::new(Gateway {
        tracer: Tracer::new(&config.front.forwarder),
        hop: Hop::network(config.front.forwarder),
        started: Instant::now(),
        body_limit: config.body_limit,
        body_timeout: config.front.limits.body_timeout,
        clients: Arc::clone(&config.front.clients),
        refusals: Arc::clone(&refusals),
        connections: listener.accepted_counter(),
        accepted: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        latency: metrics::IngestLatency::new(),
    });
    let registry = config.front.metrics.unwrap_or_default();
    metrics::register(&registry, &gateway);
    let guards = Guards {
        ingest: Guard::any_of(Scope::Ingest, REALM, config.front.ingest_tokens),
        debug: Guard::new(Scope::Debug, REALM, config.front.debug_token),
    };
    let router = router(gateway, config.front.profile_endpoint, &guards)
        .merge(readiness.routes())
        .merge(registry.routes());
    let shutdown = futures_util::FutureExt::shared(readiness.until(shutdown));
    let (limits, tls) = (config.front.limits, config.front.tls);
    let served = server::serve(
        listener,
        router.clone(),
        limits,
        Protocols::Auto,
        tls,
        shutdown.clone(),
    );
    match plain {
        Some(plain) => {
            let plain = BoundedListener::new(plain, config.front.max_connections)
                .with_clients(&config.front.clients)
                .counting(&refusals);
            let plain = server::serve(plain, router, limits, Protocols::Auto, None, shutdown);
            tokio::join!(served, plain);
        }
        None => served.await,
    }
}

/// The realm of the gateway's `WWW-Authenticate` challenges.
const REALM: &str = "gateway";

/// The token checks of the gateway's routes.
struct Guards {
    /// Ingest and trace (`INGEST_TOKEN`).
    ingest: Guard,
    /// `/debug/*` (`DEBUG_TOKEN`).
    debug: Guard,
}

fn router(gateway: Arc<Gateway>, profile_endpoint: bool, guards: &Guards) -> Router {
    // A trace sends a real message to the processor: it is ingest too.
    let guarded = Router::new()
        .route("/api/v1/ingest", post(ingest))
        .route("/api/v1/trace", get(trace));
    Router::new()
        .merge(guards.ingest.protect(guarded))
        .route("/api/v1/status", get(status))
        .route("/health", get(health))
        .merge(debug::routes(profile_endpoint, &guards.debug))
        .fallback(crate::serve::body::not_found)
        .method_not_allowed_fallback(crate::serve::body::method_not_allowed)
        .with_state(gateway)
}

/// The JSON body of `POST /api/v1/ingest`. A field given twice is refused (serde's derive
/// does that), and so is a metadata key given twice: the message would be ambiguous. The
/// metadata keeps at most the entries a message may have while it is read ([`CappedMap`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestBody {
    /// The client's own id for the message (see [`IngestRequest::id`]).
    #[serde(default)]
    id: String,
    /// Missing reads as empty, so that [`validate`] says what is wrong with it in the
    /// words every door uses (as a protobuf request without it does).
    #[serde(default)]
    source: String,
    data: String,
    #[serde(default, deserialize_with = "CappedMap::unique")]
    metadata: CappedMap,
}

/// The header under which an HTTP client gives its own id for a message.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

async fn ingest(
    State(gateway): State<Arc<Gateway>>,
    peer: Option<Extension<Peer>>,
    scope: Option<Extension<IdScope>>,
    version: Version,
    headers: HeaderMap,
    body: Body,
) -> Result<Receipt, ApiError> {
    let started = Instant::now();
    let peer = peer.map(|Extension(peer)| peer);
    let scope = scope.map(|Extension(scope)| scope);
    let result = accept(&gateway, peer.as_ref(), scope.as_ref(), &headers, body).await;
    gateway.latency.observe(version, started);
    let counter = match &result {
        Ok(_) => &gateway.accepted,
        Err(err)
            if err.status.is_client_error() || err.status == StatusCode::SERVICE_UNAVAILABLE =>
        {
            &gateway.refused
        }
        Err(_) => &gateway.failed,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    result
}

async fn accept(
    gateway: &Gateway,
    peer: Option<&Peer>,
    scope: Option<&IdScope>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Receipt, ApiError> {
    let codec = match Codec::from_headers(headers) {
        Ok(codec) => codec,
        Err(err) => {
            linger(headers, body).await;
            return Err(err);
        }
    };
    let process = gateway.clients.budget();
    let budget = peer.map_or(process, |peer| peer.budget(process));
    let (bytes, mut charge) = read_body_charged(
        headers,
        body,
        gateway.body_limit,
        gateway.body_timeout,
        budget,
        peer,
    )
    .await?;
    let mut request = decode_ingest(codec, &bytes)?;
    let key = headers.get(IDEMPOTENCY_KEY).map(HeaderValue::as_bytes);
    take_key(&mut request, key, "header `Idempotency-Key`").map_err(ApiError::bad_request)?;
    let mut msg = new_message(request).map_err(|err| ApiError::bad_request(err.to_string()))?;
    scope_id(scope, &mut msg);
    // The message, and its copy in a hop request, until the processor answers.
    if let Err(exhausted) = charge.grow(held_bytes(MessageRef::from(&msg))) {
        if let Some(peer) = peer {
            peer.refuse(Refusal::of(&exhausted));
        }
        return Err(ApiError::unavailable(exhausted.to_string()));
    }
    let message_id = msg.id.clone();
    let accepted = gateway.hop.forward(msg).await.map_err(forward_error)?;
    Ok(Receipt::new(message_id, accepted == Accepted::Duplicate))
}

/// What a front door holds of a message until the processor answers it: the message and
/// its encoding in a hop request.
pub(crate) fn held_bytes(msg: MessageRef<'_>) -> usize {
    2 * msg.size()
}

/// Puts a message whose client gave its id into the namespace of the client's token
/// (`scope`; the shared one when `None`). An id the system assigned has no namespace.
pub(crate) fn scope_id(scope: Option<&IdScope>, msg: &mut DataMessage) {
    if let Some(scope) = scope
        && !msg.id_assigned
    {
        scope.as_str().clone_into(&mut msg.id_scope);
    }
}

/// Makes `key` (the client's id given outside the message: an HTTP header or gRPC metadata,
/// named by `place`) the message's id. Refused when it is not a valid id, or when the
/// message carries a different one in its `id` field.
pub(crate) fn take_key(
    request: &mut IngestRequest,
    key: Option<&[u8]>,
    place: &str,
) -> Result<(), String> {
    let Some(key) = key else {
        return Ok(());
    };
    let key = std::str::from_utf8(key)
        .ok()
        .filter(|key| validate::is_valid_id(key))
        .ok_or_else(|| {
            format!(
                "{place} must be 1 to {} visible ASCII characters",
                validate::MAX_ID_BYTES
            )
        })?;
    if !request.id.is_empty() && request.id != key {
        return Err(format!("{place} and the field `id` differ"));
    }
    key.clone_into(&mut request.id);
    Ok(())
}

/// Decodes the body of `POST /api/v1/ingest`: the JSON form (`data` a string) or a
/// protobuf `IngestRequest`; 400 saying what is wrong otherwise. Neither builds metadata
/// larger than a message may hold: too many entries are refused as the body is read.
pub fn decode_ingest(codec: Codec, body: &[u8]) -> Result<IngestRequest, ApiError> {
    match codec {
        Codec::Json => {
            let body: IngestBody = serde_json::from_slice(body)
                .map_err(|err| ApiError::bad_request(format!("invalid JSON: {err}")))?;
            let metadata = body
                .metadata
                .into_map()
                .map_err(|err| ApiError::bad_request(err.to_string()))?;
            Ok(IngestRequest {
                source: body.source,
                data: body.data.into_bytes(),
                metadata,
                id: body.id,
            })
        }
        Codec::Protobuf => read_ingest(body).map_err(ApiError::bad_request),
    }
}

/// Reads a protobuf `IngestRequest` (the gateway's protobuf body, a gRPC `Ingest`), or
/// says why it cannot: in the words of `answer::invalid_protobuf`, or that it has too
/// many metadata entries. The request is read once in place ([`IngestView`]) and copied
/// only when its metadata may be taken, so a body packed with entries builds no map.
pub fn read_ingest(bytes: &[u8]) -> Result<IngestRequest, String> {
    wire::with_entries(|entries| {
        let view =
            IngestView::parse(bytes, entries).map_err(|err| answer::invalid_protobuf(&err))?;
        validate::entries(view.metadata.len()).map_err(|err| err.to_string())?;
        Ok(view.to_request())
    })
}

/// Turns an ingest request into a message with the client's id (a fresh one when it gave
/// none) and the arrival time, or says which field is wrong (see `validate::admit`).
pub fn new_message(request: IngestRequest) -> Result<DataMessage, Invalid> {
    validate::admit_request(request, IdSource::Fast, unix_now())
}

fn forward_error(err: ForwardError) -> ApiError {
    match err {
        ForwardError::Overloaded(_) => ApiError::unavailable(err.to_string()),
        ForwardError::TooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, err.to_string())
        }
        ForwardError::Rejected(_) => ApiError::bad_request(err.to_string()),
        ForwardError::Unreachable(_)
        | ForwardError::Broken(_)
        | ForwardError::Timeout(_)
        | ForwardError::Uncertain
        | ForwardError::Failed { .. } => ApiError::new(StatusCode::BAD_GATEWAY, err.to_string()),
    }
}

async fn status(State(gateway): State<Arc<Gateway>>) -> Json<Value> {
    let config = gateway.hop.config();
    let processor = match gateway.hop.processor_stats().await {
        Ok(mut stats) => {
            stats["status"] = json!("ok");
            stats
        }
        Err(err) => json!({"status": "unreachable", "error": err.to_string()}),
    };
    Json(json!({
        "gateway": {
            "status": "ok",
            "uptimeSeconds": gateway.started.elapsed().as_secs(),
            "connectionsAccepted": gateway.connections.load(Ordering::Relaxed),
            "ingest": {
                "accepted": gateway.accepted.load(Ordering::Relaxed),
                "refused": gateway.refused.load(Ordering::Relaxed),
                "failed": gateway.failed.load(Ordering::Relaxed),
            },
            "hop": {
                "processorUrl": redact::userinfo(&config.processor_url.to_string()),
                "clientMode": config.mode,
                "protocol": config.protocol,
                "codec": config.codec,
                "batch": config.batch,
                "batchHttp": config.batch_unary,
            },
            "forwarder": gateway.hop.stats(),
            "memoryBudget": gateway.clients.budget().stats(),
            "clients": {
                "open": gateway.clients.len(),
                "maxConnectionsEach": gateway.clients.limits().connections,
                "memoryEach": gateway.clients.limits().memory,
            },
            "refusals": refusal_counts(&gateway.refusals),
        },
        "processor": processor,
    }))
}

/// Refusals by reason, as an object keyed by the `/metrics` label.
pub(crate) fn refusal_counts(refusals: &Refusals) -> Value {
    refusals
        .snapshot()
        .into_iter()
        .map(|(refusal, count)| (refusal.label().to_owned(), json!(count)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

async fn trace(State(gateway): State<Arc<Gateway>>) -> Json<crate::hop::client::trace::Trace> {
    Json(gateway.tracer.trace().await)
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}
