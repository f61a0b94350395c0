//! Requests the tests send over real sockets, written once: a body posted with a content
//! type, an ingest at the gateway, an enqueue at the processor, a JSON `GET`, the error of
//! an answer, and a gRPC call framed by hand.

use reqwest::{Client, Response, StatusCode, header};
use serde_json::Value;

/// POSTs `body` to `url` with `content_type` (and `authorization` when given).
pub async fn post(
    client: &Client,
    url: &str,
    content_type: &str,
    authorization: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Response {
    let mut request = client
        .post(url)
        .header(header::CONTENT_TYPE, content_type)
        .body(body);
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    request.send().await.unwrap()
}

/// POSTs the JSON `body` to the gateway's `/api/v1/ingest` (`gateway` is its base URL).
pub async fn ingest(client: &Client, gateway: &str, body: &str) -> Response {
    ingest_as(client, gateway, None, body).await
}

/// [`ingest`] with an `Authorization` header when `authorization` is given.
pub async fn ingest_as(
    client: &Client,
    gateway: &str,
    authorization: Option<&str>,
    body: &str,
) -> Response {
    let url = format!("{gateway}/api/v1/ingest");
    post(
        client,
        &url,
        "application/json",
        authorization,
        body.to_owned(),
    )
    .await
}

/// POSTs the JSON `body` to the processor's `/enqueue` (`processor` is its base URL).
pub async fn enqueue(client: &Client, processor: &str, body: &str) -> Response {
    let url = format!("{processor}/enqueue");
    post(client, &url, "application/json", None, body.to_owned()).await
}

/// `GET url` with `authorization` when given, its body read as JSON.
pub async fn get_json(client: &Client, url: &str, authorization: Option<&str>) -> Value {
    let mut request = client.get(url);
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    request.send().await.unwrap().json().await.unwrap()
}

/// The status and the `error` text of an answer that must be a JSON error.
pub async fn error_of(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    let error = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field in {body}"))
        .to_owned();
    (status, error)
}

/// Calls `method` of the ingest service at `base` with `body` as the whole request
/// (frames and all, so it may be anything); returns `grpc-status` and the decoded
/// `grpc-message`, from the headers or the trailers.
pub async fn grpc_call(base: &str, method: &str, body: Vec<u8>) -> (String, String) {
    use http_body_util::{BodyExt as _, Full};
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<bytes::Bytes>>();
    let request = http::Request::post(format!("{base}/diplom.v1.IngestService/{method}"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .body(Full::new(body.into()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let mut headers = response.headers().clone();
    let collected = response.into_body().collect().await.unwrap();
    if let Some(trailers) = collected.trailers() {
        headers.extend(trailers.clone());
    }
    let get = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    (get("grpc-status"), percent_decoded(&get("grpc-message")))
}

/// One gRPC frame (uncompressed) holding `message`.
pub fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = vec![0];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

/// `grpc-message` as sent: percent-encoded UTF-8.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}
