//! The bytes of the suite's clients, written by hand: a TCP connection from a chosen
//! loopback address, HTTP/1.1 request heads, the first line of an answer, the HTTP/2
//! preface and a HEADERS frame that opens a call. An attacker sends what a client library
//! would never send, so none is used here, except for the gRPC calls ([`super::attacker`]).

use std::{
    io,
    net::{IpAddr, SocketAddr},
};

use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncRead, AsyncReadExt as _},
    net::{TcpSocket, TcpStream},
};

use crate::load::http2::frames::{Encoding, RequestFrames, put_preface};

/// A TCP connection to `to` from the address `from` (any port).
pub(crate) async fn connect(from: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    let socket = match from {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    no_port_at_bind(&socket);
    socket.bind(SocketAddr::new(from, 0))?;
    let stream = socket.connect(to).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Lets the kernel choose the port at connect, not at bind (`IP_BIND_ADDRESS_NO_PORT`), so
/// that a port is shared by connections to different servers. An attack opens thousands of
/// connections in seconds; choosing the port at bind would take a port of the range for
/// each, and the range runs out while the closed ones wait out their TIME_WAIT.
fn no_port_at_bind(socket: &TcpSocket) {
    use std::os::fd::AsRawFd as _;
    let on: libc::c_int = 1;
    // SAFETY: the descriptor is the socket's own and open; the option's value is a c_int
    // that outlives the call, and its size is given. A kernel without the option refuses
    // it, which changes nothing but the port's choice.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The head of an HTTP/1.1 JSON ingest whose body is `length` bytes.
pub(crate) fn ingest_head(target: SocketAddr, length: usize) -> Vec<u8> {
    format!(
        "POST /api/v1/ingest HTTP/1.1\r\nhost: {target}\r\ncontent-type: application/json\r\n\
         content-length: {length}\r\n\r\n"
    )
    .into_bytes()
}

/// The status of the HTTP/1.1 answer arriving on `read` (its first line alone is read), or
/// `None` when the connection ends or breaks first, or the answer is no HTTP/1.1.
pub(crate) async fn status(read: &mut (impl AsyncRead + Unpin)) -> Option<u16> {
    let mut buf = Vec::with_capacity(64);
    loop {
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line = std::str::from_utf8(&buf[..end]).ok()?;
            return line.split_whitespace().nth(1)?.parse().ok();
        }
        if buf.len() > 1024 || read.read_buf(&mut buf).await.ok()? == 0 {
            return None;
        }
    }
}

/// Reads and drops what arrives on `read` until the connection ends or breaks.
pub(crate) async fn until_closed(read: &mut (impl AsyncRead + Unpin)) {
    let mut buf = vec![0; 4096];
    while matches!(read.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// The HTTP/2 client preface and the client's SETTINGS.
pub(crate) fn greeting() -> Bytes {
    let mut out = BytesMut::new();
    put_preface(&mut out);
    out.freeze()
}

/// The HTTP/2 preface and the HEADERS frame of a call to `path` (stream 1) whose message
/// does not follow.
pub(crate) fn begun_call(target: SocketAddr, path: &str) -> Bytes {
    let frames = RequestFrames::new(
        &target.to_string(),
        path,
        &[("content-type", "application/grpc"), ("te", "trailers")],
        // A body, so that the HEADERS frame does not end the stream; it is never sent.
        Bytes::from_static(b"\0"),
    );
    let mut out = BytesMut::new();
    put_preface(&mut out);
    frames.put(&mut out, 1, Encoding::Plain, false);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::status;

    #[tokio::test]
    async fn the_status_is_read_from_the_first_line() {
        let mut answer: &[u8] = b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(status(&mut answer).await, Some(413));
        let mut cut: &[u8] = b"HTTP/1.1 20";
        assert_eq!(status(&mut cut).await, None);
        let mut garbage: &[u8] = b"\x00\x00\x12\x04\r\n";
        assert_eq!(status(&mut garbage).await, None);
    }
}
