//! The traced client behind `GET /api/v1/trace`: sends one real message to the processor
//! and reports where the time went: DNS lookup, TCP connect, TLS handshake, server
//! processing (from a ready connection to the response head) and total.
//!
//! A phase that did not happen is reported as `null`, never as a made-up number: a plain
//! `http` hop has no TLS handshake; an IP address needs no DNS lookup; a reused connection
//! has neither lookup, connect nor handshake. Traces run one at a time, so the connector's
//! report belongs to this trace's request.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, Version, header};
use http_body_util::{BodyExt, Full};
use serde::Serialize;

use super::{
    ForwarderConfig, HyperClient, build_client,
    connector::{TimingSlot, TlsTiming},
};
use crate::{
    domain::ids::{IdSource, MessageId},
    domain::proto::DataMessage,
    serve::auth::Secret,
};

/// A client whose requests are broken down into phases.
#[derive(Debug)]
pub(crate) struct Tracer {
    client: HyperClient,
    timing: TimingSlot,
    enqueue_uri: Uri,
    config: ForwarderConfig,
    one_at_a_time: tokio::sync::Mutex<()>,
}

/// The answer of `GET /api/v1/trace`.
#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    /// Whether the processor accepted the traced message.
    pub success: bool,
    /// Phases in milliseconds; `null` for a phase that did not take place.
    pub latency: Latency,
    /// Whether an already open connection carried the request.
    pub connection_reused: bool,
    /// `HTTP/1.1` or `HTTP/2`; `null` when no answer came.
    pub protocol: Option<&'static str>,
    /// What the TLS handshake agreed on; `null` for a plain hop or a reused connection.
    pub tls: Option<TlsAgreed>,
    /// Unit of the latency figures.
    pub unit: &'static str,
    /// What went wrong, when `success` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Phases of one traced request, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Name resolution; `null` for an IP address or a reused connection.
    pub dns_lookup: Option<f64>,
    /// TCP connect; `null` for a reused connection.
    pub tcp_connection: Option<f64>,
    /// The TLS handshake; `null` for a plain hop or a reused connection.
    pub tls_handshake: Option<f64>,
    /// From a ready connection to the response head (time to first byte).
    pub server_processing: Option<f64>,
    /// The whole request, the answer's body included.
    pub total: f64,
}

/// What a new TLS connection agreed on.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TlsAgreed {
    /// The TLS version, such as `TLSv1.3`.
    pub version: &'static str,
    /// The protocol ALPN chose (`h2`, `http/1.1`); `null` when none was.
    pub alpn: Option<&'static str>,
}

impl From<TlsTiming> for TlsAgreed {
    fn from(timing: TlsTiming) -> TlsAgreed {
        TlsAgreed {
            version: timing.version,
            alpn: timing.alpn,
        }
    }
}

impl Tracer {
    /// A traced client for the processor and hop settings of `config` (with its own
    /// connection pool, so its reuse does not depend on other traffic).
    pub(crate) fn new(config: &ForwarderConfig) -> Tracer {
        let timing: TimingSlot = Arc::new(Mutex::new(None));
        let connector = config.connector(Arc::default(), Some(Arc::clone(&timing)));
        let base = config.processor_url.to_string();
        let enqueue_uri = format!("{}/enqueue", base.trim_end_matches('/'))
            .parse()
            .unwrap_or_else(|_| Uri::from_static("http://127.0.0.1/enqueue"));
        Tracer {
            client: build_client(config, connector, true),
            timing,
            enqueue_uri,
            config: config.clone(),
            one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    /// Sends one message and reports its phases.
    pub(crate) async fn trace(&self) -> Trace {
        let _turn = self.one_at_a_time.lock().await;
        *lock(&self.timing) = None;
        let msg = DataMessage {
            id: MessageId::generate(IdSource::Fast).to_string(),
            timestamp: 0,
            source: "trace".to_owned(),
            payload: b"latency measurement".to_vec(),
            metadata: Default::default(),
            id_assigned: true,
            id_scope: String::new(),
        };
        let codec = self.config.codec;
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.enqueue_uri.clone())
            .header(header::CONTENT_TYPE, codec.content_type());
        let token = self.config.processor_token.as_ref();
        if let Some(value) = token.and_then(Secret::authorization) {
            request = request.header(header::AUTHORIZATION, value.clone());
        }
        let request = request.body(Full::new(Bytes::from(codec.encode(&msg))));
        let started = Instant::now();
        let outcome = match request {
            Ok(request) => tokio::time::timeout(self.config.timeout, self.exchange(request))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {:?}", self.config.timeout))),
            Err(err) => Err(err.to_string()),
        };
        let total = started.elapsed();
        let connection = *lock(&self.timing);
        let mut latency = Latency {
            total: millis(total),
            ..Latency::default()
        };
        if let Some(connection) = connection {
            latency.dns_lookup = connection.dns.map(millis);
            latency.tcp_connection = Some(millis(connection.connect));
            latency.tls_handshake = connection.tls.map(|tls| millis(tls.handshake));
        }
        let tls = connection.and_then(|c| c.tls).map(TlsAgreed::from);
        match outcome {
            Ok((status, version, head_at)) => {
                let ready = connection.and_then(|c| c.ready_at).unwrap_or(started);
                latency.server_processing = Some(millis(head_at.saturating_duration_since(ready)));
                let success = status == StatusCode::ACCEPTED;
                Trace {
                    success,
                    latency,
                    connection_reused: connection.is_none(),
                    protocol: Some(protocol_name(version)),
                    tls,
                    unit: "ms",
                    error: (!success).then(|| format!("processor answered {status}")),
                }
            }
            Err(error) => Trace {
                success: false,
                latency,
                connection_reused: false,
                protocol: None,
                tls,
                unit: "ms",
                error: Some(error),
            },
        }
    }

    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Version, Instant), String> {
        let response = self
            .client
            .request(request)
            .await
            .map_err(|err| super::error_chain(&err))?;
        let head_at = Instant::now();
        let (status, version) = (response.status(), response.version());
        response
            .into_body()
            .collect()
            .await
            .map_err(|err| format!("reading the answer: {err}"))?;
        Ok((status, version, head_at))
    }
}

fn protocol_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
