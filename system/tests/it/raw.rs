//! Raw sockets for the hostile-client tests: bytes a well-behaved client library would
//! never send, and HTTP/2 frames written by hand (HPACK literals only, no Huffman).

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// HTTP/2 frame types used here.
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;

/// HTTP/2 error codes.
pub const NO_ERROR: u32 = 0x0;
pub const CANCEL: u32 = 0x8;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

pub async fn connect(addr: &str) -> TcpStream {
    TcpStream::connect(addr.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Whether the server closes the connection (EOF or reset) within `within`, reading and
/// discarding whatever it sends before.
pub async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Reads an HTTP/1.1 answer until the server closes the connection or `within` passes;
/// returns what arrived.
pub async fn read_answer(stream: &mut TcpStream, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// One HTTP/2 frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The client preface and an empty SETTINGS frame.
pub fn preface() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out
}

/// A HEADERS frame opening a POST to `path` (END_HEADERS; the body is left to come).
pub fn post_headers(stream: u32, path: &str, content_type: &str) -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http (static table)
    literal(&mut block, 4, path); // :path
    literal(&mut block, 1, "localhost"); // :authority
    literal(&mut block, 31, content_type); // content-type
    if content_type.starts_with("application/grpc") {
        block.push(0x00);
        string(&mut block, "te");
        string(&mut block, "trailers");
    }
    frame(0x1, 0x4, stream, &block)
}

/// A literal header field without indexing, its name from the static table.
fn literal(block: &mut Vec<u8>, name_index: u8, value: &str) {
    if name_index < 15 {
        block.push(name_index);
    } else {
        block.extend_from_slice(&[0x0f, name_index - 15]);
    }
    string(block, value);
}

fn string(block: &mut Vec<u8>, value: &str) {
    assert!(value.len() < 127, "short strings only");
    block.push(value.len() as u8);
    block.extend_from_slice(value.as_bytes());
}

pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(0x3, 0, stream, &code.to_be_bytes())
}

pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(0x8, 0, stream, &increment.to_be_bytes())
}

/// What a server sent on a raw HTTP/2 connection.
#[derive(Debug, Default)]
pub struct Seen {
    /// The error code of the GOAWAY frame, if one came.
    pub goaway: Option<u32>,
    /// Whether the server pinged.
    pub pinged: bool,
    /// Whether the connection ended (EOF or reset).
    pub closed: bool,
}

/// Writes `bytes` (ignoring a write that fails because the server already hung up), then
/// reads frames until `stop` says so, the server closes the connection, or `within` passes.
/// With `answer_pings` it acknowledges the server's pings, as a live peer does.
pub async fn exchange(
    stream: &mut TcpStream,
    bytes: &[u8],
    within: Duration,
    answer_pings: bool,
    stop: impl Fn(&Seen) -> bool,
) -> Seen {
    let (mut reader, mut writer) = stream.split();
    let deadline = Instant::now() + within;
    let mut seen = Seen::default();
    let (acks, mut to_send) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let write = async {
        let _ = tokio::time::timeout_at(deadline, writer.write_all(bytes)).await;
        while let Some(ack) = to_send.recv().await {
            let _ = writer.write_all(&ack).await;
        }
    };
    let read = async move {
        let mut header = [0u8; 9];
        loop {
            match tokio::time::timeout_at(deadline, reader.read_exact(&mut header)).await {
                Err(_) => return seen,
                Ok(Err(_)) => {
                    seen.closed = true;
                    return seen;
                }
                Ok(Ok(_)) => {}
            }
            let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            let mut payload = vec![0u8; len];
            if !matches!(
                tokio::time::timeout_at(deadline, reader.read_exact(&mut payload)).await,
                Ok(Ok(_))
            ) {
                seen.closed = true;
                return seen;
            }
            match header[3] {
                GOAWAY => {
                    seen.goaway = Some(u32::from_be_bytes([
                        payload[4], payload[5], payload[6], payload[7],
                    ]))
                }
                PING if header[4] & 0x1 == 0 => {
                    seen.pinged = true;
                    if answer_pings {
                        let _ = acks.send(frame(PING, 0x1, 0, &payload));
                    }
                }
                _ => {}
            }
            if stop(&seen) {
                return seen;
            }
        }
    };
    let ((), seen) = tokio::join!(write, read);
    seen
}
