//! The soak's HTTP/1.1 client: it writes each request itself and reads just the answer's
//! head and body, keeping its buffers from one request to the next. At the soak's rates a
//! general client (its connection task, its header maps) costs the generator more CPU than
//! the server spends on a message, and the generator shares the machine with the server.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    time::timeout,
};

use super::mix::{Answer, REQUEST_TIMEOUT};

/// A connection idle this long is replaced before it is used: the gateway closes one that
/// waits 2 s between requests, and a request sent as it closes would fail for no fault of
/// the server's.
const MAX_IDLE: Duration = Duration::from_secs(1);
/// The largest answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// One HTTP/1.1 connection to the gateway, opened when first needed and again after it
/// failed, closed or sat idle.
pub(crate) struct HttpConn {
    target: SocketAddr,
    stream: Option<TcpStream>,
    last_used: Instant,
    request: Vec<u8>,
    answer: BytesMut,
}

impl HttpConn {
    pub(crate) fn new(target: SocketAddr) -> HttpConn {
        HttpConn {
            target,
            stream: None,
            last_used: Instant::now(),
            request: Vec::new(),
            answer: BytesMut::new(),
        }
    }

    pub(crate) async fn send(&mut self, body: Bytes, key: Option<&str>) -> Answer {
        match timeout(REQUEST_TIMEOUT, self.exchange(&body, key)).await {
            Ok(Some(answer)) => answer,
            Ok(None) => {
                self.stream = None;
                Answer::Io
            }
            Err(_) => {
                self.stream = None;
                Answer::Timeout
            }
        }
    }

    async fn exchange(&mut self, body: &[u8], key: Option<&str>) -> Option<Answer> {
        if self.last_used.elapsed() > MAX_IDLE {
            self.stream = None;
        }
        let mut stream = match self.stream.take() {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect(self.target).await.ok()?;
                stream.set_nodelay(true).ok()?;
                stream
            }
        };
        self.request.clear();
        request_head(&mut self.request, self.target, body.len(), key);
        self.request.extend_from_slice(body);
        stream.write_all(&self.request).await.ok()?;
        self.answer.clear();
        let (answer, close) = read_answer(&mut stream, &mut self.answer).await?;
        self.last_used = Instant::now();
        if !close {
            self.stream = Some(stream);
        }
        Some(answer)
    }
}

/// The head of a `POST /api/v1/ingest` of `length` bytes of JSON, with the client's id in
/// the `Idempotency-Key` header when given.
fn request_head(out: &mut Vec<u8>, target: SocketAddr, length: usize, key: Option<&str>) {
    use std::io::Write as _;
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "POST /api/v1/ingest HTTP/1.1\r\nhost: {target}\r\ncontent-type: application/json\r\n\
         content-length: {length}\r\n"
    );
    if let Some(key) = key {
        let _ = write!(out, "idempotency-key: {key}\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// An HTTP/1.1 request whose answer may come before its body is sent: the body is written
/// while the answer is read, and an answer read counts even when writing the rest of the
/// body then fails. A server refuses an oversized body on its declared length and may close
/// the connection without reading it; a client that only reads once it has written all
/// would see a broken connection instead of the 413.
pub(crate) async fn early_answer(target: SocketAddr, body: Bytes) -> Answer {
    let Ok(stream) = TcpStream::connect(target).await else {
        return Answer::Io;
    };
    let (mut read, mut write) = stream.into_split();
    let mut head = Vec::new();
    request_head(&mut head, target, body.len(), None);
    let sending = tokio::spawn(async move {
        write.write_all(&head).await?;
        write.write_all(&body).await
    });
    let mut buf = BytesMut::new();
    let answer = read_answer(&mut read, &mut buf)
        .await
        .map_or(Answer::Io, |(answer, _)| answer);
    sending.abort();
    answer
}

/// Reads one HTTP/1.1 answer (its head, and a body of the declared length) into `buf`;
/// the answer, and whether the server will close the connection. `None` when the
/// connection ends or breaks first, or the answer is not HTTP.
async fn read_answer(
    read: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
) -> Option<(Answer, bool)> {
    loop {
        if read.read_buf(buf).await.ok()? == 0 {
            return None;
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(head) = response.parse(buf).ok()? else {
            if buf.len() > MAX_ANSWER_BYTES {
                return None;
            }
            continue;
        };
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        let retry_after = header("retry-after").is_some();
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close"));
        let length: usize = header("content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
            .unwrap_or(0);
        if length > MAX_ANSWER_BYTES {
            return None;
        }
        let status = response.code?;
        while buf.len() < head + length {
            if read.read_buf(buf).await.ok()? == 0 {
                return None;
            }
        }
        let answer = http_answer(status, retry_after, &buf[head..head + length]);
        return Some((answer, close));
    }
}

/// The JSON body of an answer: `messageId` and `status` of a 202, `error` of the rest.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnswerBody<'a> {
    #[serde(borrow, default)]
    message_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    error: Option<std::borrow::Cow<'a, str>>,
}

/// The answer an HTTP status and body make.
fn http_answer(status: u16, retry_after: bool, body: &[u8]) -> Answer {
    let json: Option<AnswerBody<'_>> = serde_json::from_slice(body).ok();
    if status == 202 {
        let json = json.as_ref();
        Answer::Stored {
            id: json
                .and_then(|j| j.message_id.as_deref())
                .unwrap_or_default()
                .to_owned(),
            duplicate: json.and_then(|j| j.status.as_deref()) == Some("duplicate"),
            accepted: 1,
        }
    } else {
        Answer::Http {
            status,
            retry_after,
            json_error: json.is_some_and(|j| j.error.is_some()),
        }
    }
}
