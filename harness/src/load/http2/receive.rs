//! What the HTTP/2 client does with each frame it receives: answers are judged from their
//! header blocks, SETTINGS and WINDOW_UPDATE adjust what may be sent, PING is answered,
//! RST_STREAM and GOAWAY fail the streams they name. Every header block is decoded, also
//! for streams given up on, so the HPACK table stays in step with the server's.

use std::{cell::RefCell, time::Instant};

use bytes::BufMut;

use super::{
    Connection, MAX_HEADER_BLOCK,
    frames::{self, Encoding, FrameHeader, flag, kind, setting},
};
use crate::load::record::{ErrorKind, Outcome, Recorder};

impl Connection<'_> {
    /// Handles one frame; an `Err` is a connection error.
    pub(super) fn on_frame(
        &mut self,
        head: FrameHeader,
        payload: &[u8],
        now: Instant,
        recorder: &RefCell<Recorder>,
    ) -> Result<(), ErrorKind> {
        if self.continued.is_some() && head.kind != kind::CONTINUATION {
            return Err(ErrorKind::Protocol);
        }
        match head.kind {
            kind::DATA => self.on_data(head, now, recorder),
            kind::HEADERS => {
                let block = strip_headers_payload(head.flags, payload)?;
                let end_stream = head.flags & flag::END_STREAM != 0;
                if head.flags & flag::END_HEADERS != 0 {
                    self.on_header_block(head.stream, block, end_stream, now, recorder)?;
                } else {
                    self.continued = Some((head.stream, end_stream, block.to_vec()));
                }
            }
            kind::CONTINUATION => {
                let Some((id, end_stream, mut block)) = self.continued.take() else {
                    return Err(ErrorKind::Protocol);
                };
                if id != head.stream || block.len() + payload.len() > MAX_HEADER_BLOCK {
                    return Err(ErrorKind::Protocol);
                }
                block.extend_from_slice(payload);
                if head.flags & flag::END_HEADERS != 0 {
                    self.on_header_block(id, &block, end_stream, now, recorder)?;
                } else {
                    self.continued = Some((id, end_stream, block));
                }
            }
            kind::RST_STREAM => {
                if let Some(stream) = self.streams.remove(&head.stream) {
                    let outcome = Outcome::Error(ErrorKind::Reset);
                    recorder.borrow_mut().record(stream.due, now, outcome, 0);
                }
            }
            kind::SETTINGS if head.flags & flag::ACK == 0 => self.on_settings(payload)?,
            kind::PING if head.flags & flag::ACK == 0 && payload.len() == 8 => {
                frames::put_header(&mut self.out, 8, kind::PING, flag::ACK, 0);
                self.out.put_slice(payload);
            }
            kind::GOAWAY => self.on_goaway(payload, now, recorder)?,
            kind::WINDOW_UPDATE => {
                let increment = read_u32(payload)? & 0x7fff_ffff;
                if head.stream == 0 {
                    self.send_window += i64::from(increment);
                } else if let Some(stream) = self.streams.get_mut(&head.stream) {
                    stream.send_window += i64::from(increment);
                }
                self.send_blocked();
            }
            // Push was disabled in our SETTINGS.
            kind::PUSH_PROMISE => return Err(ErrorKind::Protocol),
            // Acknowledgements, PRIORITY and unknown frame types need nothing.
            _ => {}
        }
        Ok(())
    }

    fn on_data(&mut self, head: FrameHeader, now: Instant, recorder: &RefCell<Recorder>) {
        // Flow control counts the whole payload, padding included.
        let len = head.len as u32;
        self.received += len;
        if self.received >= frames::WINDOW / 2 {
            frames::put_window_update(&mut self.out, 0, self.received);
            self.received = 0;
        }
        let end_stream = head.flags & flag::END_STREAM != 0;
        if let Some(stream) = self.streams.get_mut(&head.stream) {
            stream.received += len;
            if stream.received >= frames::WINDOW / 2 && !end_stream {
                frames::put_window_update(&mut self.out, head.stream, stream.received);
                stream.received = 0;
            }
        }
        if end_stream {
            self.complete(head.stream, now, recorder);
        }
    }

    fn on_header_block(
        &mut self,
        id: u32,
        block: &[u8],
        end_stream: bool,
        now: Instant,
        recorder: &RefCell<Recorder>,
    ) -> Result<(), ErrorKind> {
        let mut status = None;
        let mut grpc_status = None;
        // Every block is decoded, also for streams given up on, to keep the dynamic table
        // in step with the server's.
        self.decoder
            .decode(block, |name, value| {
                if name == b":status" {
                    status = parse_number::<u16>(value);
                } else if name == b"grpc-status" {
                    grpc_status = parse_number::<i32>(value);
                }
            })
            .map_err(|_| ErrorKind::Protocol)?;
        if let Some(stream) = self.streams.get_mut(&id) {
            // 1xx heads are informational; the final head follows.
            if let Some(code) = status.filter(|code| !(100..200).contains(code)) {
                stream.status = Some(code);
            }
            if grpc_status.is_some() {
                stream.grpc_status = grpc_status;
            }
        }
        if end_stream {
            self.complete(id, now, recorder);
        }
        Ok(())
    }

    fn on_settings(&mut self, payload: &[u8]) -> Result<(), ErrorKind> {
        if !payload.len().is_multiple_of(6) {
            return Err(ErrorKind::Protocol);
        }
        for entry in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([entry[0], entry[1]]);
            let value = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
            match id {
                setting::INITIAL_WINDOW_SIZE => {
                    let delta = i64::from(value) - self.peer_initial_window;
                    for stream in self.streams.values_mut() {
                        stream.send_window += delta;
                    }
                    self.peer_initial_window = i64::from(value);
                }
                setting::MAX_FRAME_SIZE => {
                    self.peer_max_frame = (value as usize).clamp(frames::MAX_FRAME, 1 << 24);
                }
                setting::MAX_CONCURRENT_STREAMS => self.peer_max_streams = value as usize,
                setting::HEADER_TABLE_SIZE => {
                    let size = value as usize;
                    if size < self.frames.table_size {
                        self.encoding = Encoding::Plain;
                    }
                    // A table resized under indexed requests would need a size update in
                    // the next block; simpler to replace the connection.
                    if self.settings_received && size != self.peer_table_size {
                        self.draining = true;
                    }
                    self.peer_table_size = size;
                }
                _ => {}
            }
        }
        frames::put_header(&mut self.out, 0, kind::SETTINGS, flag::ACK, 0);
        self.settings_received = true;
        self.send_blocked();
        Ok(())
    }

    fn on_goaway(
        &mut self,
        payload: &[u8],
        now: Instant,
        recorder: &RefCell<Recorder>,
    ) -> Result<(), ErrorKind> {
        let last = read_u32(payload)? & 0x7fff_ffff;
        self.draining = true;
        let refused: Vec<u32> = self
            .streams
            .keys()
            .copied()
            .filter(|id| *id > last)
            .collect();
        let mut recorder = recorder.borrow_mut();
        for id in refused {
            if let Some(stream) = self.streams.remove(&id) {
                recorder.record(stream.due, now, Outcome::Error(ErrorKind::Reset), 0);
            }
        }
        Ok(())
    }
}

/// The header block of a HEADERS payload, without padding and priority fields.
fn strip_headers_payload(flags: u8, payload: &[u8]) -> Result<&[u8], ErrorKind> {
    let mut block = payload;
    if flags & flag::PADDED != 0 {
        let (&pad, rest) = block.split_first().ok_or(ErrorKind::Protocol)?;
        let keep = rest
            .len()
            .checked_sub(usize::from(pad))
            .ok_or(ErrorKind::Protocol)?;
        block = &rest[..keep];
    }
    if flags & flag::PRIORITY != 0 {
        block = block.get(5..).ok_or(ErrorKind::Protocol)?;
    }
    Ok(block)
}

fn read_u32(payload: &[u8]) -> Result<u32, ErrorKind> {
    let bytes: [u8; 4] = payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(ErrorKind::Protocol)?;
    Ok(u32::from_be_bytes(bytes))
}

fn parse_number<T: std::str::FromStr>(value: &[u8]) -> Option<T> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}
