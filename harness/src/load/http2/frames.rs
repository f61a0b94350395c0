//! HTTP/2 framing for the load generator's client (RFC 9113): the connection preface, the
//! frames a client sends, a pre-encoded request whose only varying bytes are its stream
//! ids, and the frame header parser. The first request on a connection puts its headers
//! into the server's HPACK dynamic table and every later one refers to them, so each
//! encoding of the block is built once per run.

use bytes::{BufMut, Bytes, BytesMut};

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length of a frame header.
pub const HEADER_LEN: usize = 9;
/// The largest frame the client accepts (the protocol's default).
pub const MAX_FRAME: usize = 16_384;
/// The flow-control window the client gives the server, per stream and per connection.
pub const WINDOW: u32 = 8 << 20;
/// The largest stream id; a connection that has used them all is replaced.
pub const MAX_STREAM_ID: u32 = (1 << 31) - 1;
/// The protocol's initial flow-control window.
pub const DEFAULT_WINDOW: i64 = 65_535;

/// Frame types.
pub mod kind {
    pub const DATA: u8 = 0;
    pub const HEADERS: u8 = 1;
    pub const RST_STREAM: u8 = 3;
    pub const SETTINGS: u8 = 4;
    pub const PUSH_PROMISE: u8 = 5;
    pub const PING: u8 = 6;
    pub const GOAWAY: u8 = 7;
    pub const WINDOW_UPDATE: u8 = 8;
    pub const CONTINUATION: u8 = 9;
}

/// Frame flags.
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// Settings identifiers.
pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
}

/// Error code of RST_STREAM sent for a request given up on.
pub const CANCEL: u32 = 0x8;

/// The header of a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length.
    pub len: usize,
    /// Frame type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream id (reserved bit cleared).
    pub stream: u32,
}

/// Parses a frame header from the first [`HEADER_LEN`] bytes of `buf`.
pub fn parse_header(buf: &[u8]) -> Option<FrameHeader> {
    let head: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
    Some(FrameHeader {
        len: usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]),
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
    })
}

/// Appends a frame header.
pub fn put_header(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    out.put_u8((len >> 16) as u8);
    out.put_u8((len >> 8) as u8);
    out.put_u8(len as u8);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream & 0x7fff_ffff);
}

/// Appends the preface, the client's SETTINGS and a connection WINDOW_UPDATE.
pub fn put_preface(out: &mut BytesMut) {
    out.put_slice(PREFACE);
    let settings: [(u16, u32); 3] = [
        (setting::ENABLE_PUSH, 0),
        (setting::MAX_CONCURRENT_STREAMS, 0),
        (setting::INITIAL_WINDOW_SIZE, WINDOW),
    ];
    put_header(out, settings.len() * 6, kind::SETTINGS, 0, 0);
    for (id, value) in settings {
        out.put_u16(id);
        out.put_u32(value);
    }
    put_window_update(out, 0, WINDOW - DEFAULT_WINDOW as u32);
}

/// Appends a WINDOW_UPDATE.
pub fn put_window_update(out: &mut BytesMut, stream: u32, increment: u32) {
    put_header(out, 4, kind::WINDOW_UPDATE, 0, stream);
    out.put_u32(increment & 0x7fff_ffff);
}

/// Appends a RST_STREAM.
pub fn put_reset(out: &mut BytesMut, stream: u32, code: u32) {
    put_header(out, 4, kind::RST_STREAM, 0, stream);
    out.put_u32(code);
}

/// How a request's header block is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Literals that never enter the server's dynamic table: for a server whose table is
    /// too small for them.
    Plain,
    /// Literals with incremental indexing: the first request on a connection, which puts
    /// the request's headers into the server's dynamic table.
    First,
    /// References to those dynamic-table entries: every later request. Real clients
    /// (nghttp2, the h2 crate) index the same way, and it spares the server decoding and
    /// allocating the same strings for every request.
    Indexed,
}

/// One request as frames: HEADERS, then (when the body fits one frame and the default
/// windows) a single DATA frame ending the stream. Only the stream ids change per request.
#[derive(Debug, Clone)]
pub struct RequestFrames {
    /// The frames for each [`Encoding`], in its order.
    encoded: [Frames; 3],
    /// The body, for sending in pieces when it is not inline.
    pub body: Bytes,
    /// Dynamic-table size the indexed headers take on the server (RFC 7541 4.1).
    pub table_size: usize,
}

#[derive(Debug, Clone)]
struct Frames {
    /// HEADERS frame, and DATA frame when the body is inline.
    bytes: Bytes,
    /// Offset of the DATA frame's header in `bytes`, when the body is inline.
    data_at: Option<usize>,
}

impl RequestFrames {
    /// Pre-encodes a POST of `body` to `path` on `authority` with `headers` (lower-case
    /// names) in each [`Encoding`].
    pub fn new(authority: &str, path: &str, headers: &[(&str, &str)], body: Bytes) -> Self {
        let mut fields: Vec<(&str, &str)> = vec![(":path", path), (":authority", authority)];
        fields.extend_from_slice(headers);
        let table_size = fields.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
        let mut blocks: [BytesMut; 3] = Default::default();
        for block in &mut blocks {
            block.put_u8(0x80 | 3); // :method POST (static index 3)
            block.put_u8(0x80 | 6); // :scheme http (static index 6)
        }
        for (i, (name, value)) in fields.iter().enumerate() {
            for (encoding, block) in [Encoding::Plain, Encoding::First]
                .into_iter()
                .zip(&mut blocks)
            {
                // Literal without indexing (4-bit prefix, 0x00) or with incremental
                // indexing (6-bit prefix, 0x40), the name by static index when it has one.
                let (prefix, first) = match encoding {
                    Encoding::First => (6, 0x40),
                    _ => (4, 0x00),
                };
                match static_name_index(name) {
                    Some(index) => put_int(block, prefix, first, index),
                    None => {
                        put_int(block, prefix, first, 0);
                        put_string(block, name);
                    }
                }
                put_string(block, value);
            }
            // The last entry inserted is dynamic index 62, the first the highest.
            put_int(&mut blocks[2], 7, 0x80, 62 + fields.len() - 1 - i);
        }
        let inline_body =
            !body.is_empty() && body.len() <= MAX_FRAME && body.len() as i64 <= DEFAULT_WINDOW;
        let encoded = blocks.map(|block| {
            let mut bytes = BytesMut::with_capacity(2 * HEADER_LEN + block.len() + body.len());
            let headers_flags = if body.is_empty() {
                flag::END_HEADERS | flag::END_STREAM
            } else {
                flag::END_HEADERS
            };
            put_header(&mut bytes, block.len(), kind::HEADERS, headers_flags, 1);
            bytes.put_slice(&block);
            let data_at = inline_body.then(|| {
                let at = bytes.len();
                put_header(&mut bytes, body.len(), kind::DATA, flag::END_STREAM, 1);
                bytes.put_slice(&body);
                at
            });
            Frames {
                bytes: bytes.freeze(),
                data_at,
            }
        });
        RequestFrames {
            encoded,
            body,
            table_size,
        }
    }

    /// The HPACK header block of `encoding`.
    pub fn header_block(&self, encoding: Encoding) -> &[u8] {
        let frames = &self.encoded[encoding as usize];
        let end = frames.data_at.unwrap_or(frames.bytes.len());
        &frames.bytes[HEADER_LEN..end]
    }

    /// Whether the body travels in the pre-encoded DATA frame (no flow control needed
    /// beyond the protocol's initial windows).
    pub fn inline_body(&self) -> bool {
        self.encoded[0].data_at.is_some() || self.body.is_empty()
    }

    /// Appends the request on `stream` in `encoding`: the HEADERS frame, plus the DATA frame
    /// when the body is inline and `with_body` (the caller checked the flow-control windows).
    pub fn put(&self, out: &mut BytesMut, stream: u32, encoding: Encoding, with_body: bool) {
        let frames = &self.encoded[encoding as usize];
        let start = out.len();
        let id = stream.to_be_bytes();
        let headers_end = frames.data_at.unwrap_or(frames.bytes.len());
        let end = if with_body {
            frames.bytes.len()
        } else {
            headers_end
        };
        out.put_slice(&frames.bytes[..end]);
        out[start + 5..start + 9].copy_from_slice(&id);
        if let Some(at) = frames.data_at.filter(|_| with_body) {
            out[start + at + 5..start + at + 9].copy_from_slice(&id);
        }
    }
}

/// The HPACK static-table index of a header name a request uses, if it has one.
fn static_name_index(name: &str) -> Option<usize> {
    match name {
        ":authority" => Some(1),
        ":path" => Some(4),
        "accept" => Some(19),
        "content-length" => Some(28),
        "content-type" => Some(31),
        "user-agent" => Some(58),
        _ => None,
    }
}

/// A string literal, not Huffman-coded.
fn put_string(out: &mut BytesMut, value: &str) {
    put_int(out, 7, 0x00, value.len());
    out.put_slice(value.as_bytes());
}

/// An HPACK integer with an `prefix_bits`-bit prefix and the high bits `first`.
fn put_int(out: &mut BytesMut, prefix_bits: u32, first: u8, value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.put_u8(first | value as u8);
        return;
    }
    out.put_u8(first | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.put_u8((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.put_u8(rest as u8);
}
