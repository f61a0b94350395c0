//! The end-to-end checks of `cargo xtask smoke`, against a running system: the original
//! `make test-optimizations` (health over HTTP/2 prior knowledge, gRPC reflection, the
//! trace endpoint), done with real clients instead of curl and grpcurl.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct Check {
    /// Short name, e.g. `h2c_health`.
    pub name: &'static str,
    /// Whether it passed.
    pub passed: bool,
    /// What was seen.
    pub detail: String,
}

/// Runs every check against the gateway and the gRPC server (each bounded in time).
pub async fn run(gateway: SocketAddr, grpc: SocketAddr) -> Vec<Check> {
    let limit = Duration::from_secs(10);
    let timed = |name, result: Result<Result<String, String>, tokio::time::error::Elapsed>| {
        let (passed, detail) = match result {
            Ok(Ok(detail)) => (true, detail),
            Ok(Err(detail)) => (false, detail),
            Err(_) => (false, format!("no answer within {limit:?}")),
        };
        Check {
            name,
            passed,
            detail,
        }
    };
    vec![
        timed(
            "h2c_health",
            tokio::time::timeout(limit, h2c_health(gateway)).await,
        ),
        timed(
            "grpc_reflection",
            tokio::time::timeout(limit, reflection(grpc)).await,
        ),
        timed("trace", tokio::time::timeout(limit, trace(gateway)).await),
    ]
}

async fn h2c_health(gateway: SocketAddr) -> Result<String, String> {
    let io = TokioIo::new(
        TcpStream::connect(gateway)
            .await
            .map_err(|e| e.to_string())?,
    );
    let (mut send, connection) = http2::handshake(TokioExecutor::new(), io)
        .await
        .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
    tokio::spawn(connection);
    let request = Request::get(format!("http://{gateway}/health"))
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = send
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let (version, status) = (response.version(), response.status());
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let body = String::from_utf8_lossy(&body);
    if status == 200 && body.contains("\"ok\"") {
        Ok(format!("{version:?} {status} {body}"))
    } else {
        Err(format!("{version:?} {status} {body}"))
    }
}

async fn reflection(grpc: SocketAddr) -> Result<String, String> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let mut client = ServerReflectionClient::new(channel);
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([ask]))
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let answer = answers.message().await.map_err(|e| e.to_string())?;
    let Some(MessageResponse::ListServicesResponse(list)) = answer.and_then(|a| a.message_response)
    else {
        return Err("no list of services".to_owned());
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    if names.iter().any(|n| n == "diplom.v1.IngestService") {
        Ok(names.join(", "))
    } else {
        Err(format!(
            "diplom.v1.IngestService not listed: {}",
            names.join(", ")
        ))
    }
}

async fn trace(gateway: SocketAddr) -> Result<String, String> {
    let io = TokioIo::new(
        TcpStream::connect(gateway)
            .await
            .map_err(|e| e.to_string())?,
    );
    let (mut send, connection) = http1::handshake(io).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = Request::get(format!("http://{gateway}/api/v1/trace"))
        .header(http::header::HOST, gateway.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = send
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let trace: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
    let total = trace["latency"]["total"].as_f64().unwrap_or(0.0);
    if trace["success"] == true && total > 0.0 {
        Ok(trace.to_string())
    } else {
        Err(trace.to_string())
    }
}
