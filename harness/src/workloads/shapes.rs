//! One large `IngestStream` message on the gRPC front door's way (read in place, checked,
//! written into a hop request), in two shapes of the same size: its bytes carried in
//! `data`, and a hundred metadata entries among millions of two-byte unknown fields, the
//! shape that costs most for a reader that looks at a message more than once. Reading is
//! linear in a message's bytes when the two take about the same time.

use prost::encoding::{WireType, encode_key, encode_varint};
use study::cases::shape;
use system::{
    message::IdOrigin,
    validate,
    wire::{self, IngestView, WireEntries},
};

/// The size of each shape's message, in bytes.
pub const SHAPE_BYTES: usize = 8 * 1024 * 1024;

/// Each shape's message, under its name in the result files (`study::cases::shape`).
pub fn shapes() -> [(&'static str, Vec<u8>); 2] {
    [
        (shape::DATA, data_carried()),
        (shape::UNKNOWN_FIELDS, unknown_fields()),
    ]
}

/// An encoded `IngestRequest` of [`SHAPE_BYTES`] whose bytes are its `data`.
pub fn data_carried() -> Vec<u8> {
    let mut frame = Vec::with_capacity(SHAPE_BYTES);
    put_field(1, b"bench-sensor", &mut frame);
    let data_len =
        SHAPE_BYTES - frame.len() - 1 - prost::encoding::encoded_len_varint(SHAPE_BYTES as u64);
    put_field(2, &vec![b'd'; data_len], &mut frame);
    frame
}

/// An encoded `IngestRequest` of [`SHAPE_BYTES`]: a source, as many metadata entries as a
/// message may hold, and two-byte unknown fields for the rest.
pub fn unknown_fields() -> Vec<u8> {
    let mut frame = Vec::with_capacity(SHAPE_BYTES);
    put_field(1, b"bench-sensor", &mut frame);
    for i in 0..validate::MAX_METADATA_ENTRIES {
        let mut entry = Vec::new();
        put_field(1, format!("key-{i}").as_bytes(), &mut entry);
        put_field(2, b"value", &mut entry);
        put_field(3, &entry, &mut frame);
    }
    while frame.len() + 2 <= SHAPE_BYTES {
        // Field 15, a varint of one byte: the smallest field there is.
        encode_key(15, WireType::Varint, &mut frame);
        encode_varint(0, &mut frame);
    }
    frame
}

fn put_field(number: u32, bytes: &[u8], buf: &mut Vec<u8>) {
    encode_key(number, WireType::LengthDelimited, buf);
    encode_varint(bytes.len() as u64, buf);
    buf.extend_from_slice(bytes);
}

/// The gRPC front door's reading of a stream's messages, one after another: each read in
/// place into a table kept from message to message, checked, and written as a
/// `DataMessage` into a hop request body kept too.
#[derive(Debug, Default)]
pub struct StreamReader {
    entries: Option<WireEntries<'static>>,
    body: Vec<u8>,
}

impl StreamReader {
    /// Takes one encoded `IngestRequest` the way of a stream's message; the bytes it wrote
    /// into the hop request (none for a message refused).
    pub fn forward(&mut self, frame: &[u8]) -> usize {
        let mut entries = self.entries.take().unwrap_or_default().recycle();
        let written = self.write(frame, &mut entries);
        self.entries = Some(entries.recycle());
        written
    }

    fn write<'f>(&mut self, frame: &'f [u8], entries: &mut WireEntries<'f>) -> usize {
        let Ok(request) = IngestView::parse(frame, entries) else {
            return 0;
        };
        let msg = request.message(request.id, 1, IdOrigin::client(""));
        if validate::check(msg).is_err() {
            return 0;
        }
        let len = wire::data_message_len(&msg);
        self.body.clear();
        self.body.reserve(len);
        wire::put_data_message(&msg, &mut self.body);
        self.body.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_are_of_the_size_and_taken_whole() {
        let mut reader = StreamReader::default();
        for frame in [data_carried(), unknown_fields()] {
            assert!(frame.len() <= SHAPE_BYTES && frame.len() + 2 > SHAPE_BYTES);
            assert!(reader.forward(&frame) > 0);
        }
    }
}
