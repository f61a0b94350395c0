//! A small HPACK decoder (RFC 7541) for the answers the load generator reads: indexed and
//! literal fields, Huffman-coded strings, the dynamic table with its size limit and size
//! updates. The Huffman decoding trie is built once per process; decoding allocates only
//! for strings that are Huffman-coded or enter the dynamic table, which in a run of equal
//! answers happens for few of them.
//!
//! The static table and the Huffman code are RFC 7541's Appendices A and B, as listed in
//! the MIT-licensed `hpack` crate.

mod tables;

use std::{borrow::Cow, collections::VecDeque, sync::OnceLock};

use self::tables::{HUFFMAN_CODES, STATIC_TABLE};

/// The dynamic table size the client allows (the protocol's default, left unchanged in the
/// client's SETTINGS).
pub const TABLE_LIMIT: usize = 4096;

/// A header block that is not valid HPACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid HPACK header block")]
pub struct HpackError;

/// The decoding state of one connection.
#[derive(Debug)]
pub struct Decoder {
    table: VecDeque<(Vec<u8>, Vec<u8>)>,
    size: usize,
    max_size: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max_size: TABLE_LIMIT,
        }
    }
}

impl Decoder {
    /// Decodes `block`, handing each header's name and value to `on_header`.
    pub fn decode(
        &mut self,
        block: &[u8],
        mut on_header: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), HpackError> {
        let mut at = 0;
        while let Some(&first) = block.get(at) {
            let rest = &block[at..];
            if first & 0x80 != 0 {
                let (index, used) = integer(rest, 7)?;
                let (name, value) = self.entry(index)?;
                on_header(name, value);
                at += used;
            } else if first & 0xe0 == 0x20 {
                let (size, used) = integer(rest, 5)?;
                if size > TABLE_LIMIT {
                    return Err(HpackError);
                }
                self.max_size = size;
                self.evict(0);
                at += used;
            } else {
                let indexing = first & 0xc0 == 0x40;
                let (index, mut used) = integer(rest, if indexing { 6 } else { 4 })?;
                let name: Cow<'_, [u8]> = if index == 0 {
                    let (name, n) = string(&rest[used..])?;
                    used += n;
                    name
                } else {
                    Cow::Owned(self.entry(index)?.0.to_vec())
                };
                let (value, n) = string(&rest[used..])?;
                used += n;
                on_header(&name, &value);
                if indexing {
                    self.insert(name.into_owned(), value.into_owned());
                }
                at += used;
            }
        }
        Ok(())
    }

    fn entry(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        match index {
            0 => Err(HpackError),
            1..=61 => Ok(STATIC_TABLE[index - 1]),
            _ => self
                .table
                .get(index - 62)
                .map(|(name, value)| (name.as_slice(), value.as_slice()))
                .ok_or(HpackError),
        }
    }

    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let size = name.len() + value.len() + 32;
        if size > self.max_size {
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.size += size;
        self.table.push_front((name, value));
    }

    /// Evicts the oldest entries until `room` more bytes fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            match self.table.pop_back() {
                Some((name, value)) => self.size -= name.len() + value.len() + 32,
                None => break,
            }
        }
    }
}

/// An integer with a `prefix`-bit prefix: its value and the bytes it used.
fn integer(buf: &[u8], prefix: u32) -> Result<(usize, usize), HpackError> {
    let max = (1usize << prefix) - 1;
    let mut value = usize::from(*buf.first().ok_or(HpackError)?) & max;
    if value < max {
        return Ok((value, 1));
    }
    let mut shift = 0;
    for (i, &byte) in buf.iter().enumerate().skip(1) {
        value += usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
        shift += 7;
        if shift > 28 {
            break;
        }
    }
    Err(HpackError)
}

/// A string literal: its bytes and the bytes it used.
fn string(buf: &[u8]) -> Result<(Cow<'_, [u8]>, usize), HpackError> {
    let huffman = buf.first().ok_or(HpackError)? & 0x80 != 0;
    let (len, used) = integer(buf, 7)?;
    let bytes = buf.get(used..used + len).ok_or(HpackError)?;
    let text = if huffman {
        Cow::Owned(huffman_decode(bytes)?)
    } else {
        Cow::Borrowed(bytes)
    };
    Ok((text, used + len))
}

/// A node of the Huffman trie: the child for bit 0 and bit 1, a non-negative node index or
/// `-(symbol + 1)` for a leaf.
type Node = [i32; 2];

fn trie() -> &'static [Node] {
    static TRIE: OnceLock<Vec<Node>> = OnceLock::new();
    TRIE.get_or_init(|| {
        let mut nodes: Vec<Node> = vec![[0, 0]];
        for (symbol, &(code, len)) in HUFFMAN_CODES.iter().enumerate() {
            let mut node = 0usize;
            for bit_index in (0..u32::from(len)).rev() {
                let bit = ((code >> bit_index) & 1) as usize;
                if bit_index == 0 {
                    nodes[node][bit] = -(symbol as i32 + 1);
                } else {
                    if nodes[node][bit] == 0 {
                        nodes.push([0, 0]);
                        nodes[node][bit] = (nodes.len() - 1) as i32;
                    }
                    node = nodes[node][bit] as usize;
                }
            }
        }
        nodes
    })
}

/// Decodes a Huffman-coded string; the padding must be fewer than 8 one bits.
pub fn huffman_decode(bytes: &[u8]) -> Result<Vec<u8>, HpackError> {
    let trie = trie();
    let mut out = Vec::with_capacity(bytes.len() * 8 / 5);
    let mut node = 0usize;
    let mut pending_bits = 0u32;
    let mut pending_ones = true;
    for &byte in bytes {
        for shift in (0..8).rev() {
            let bit = usize::from((byte >> shift) & 1);
            pending_bits += 1;
            pending_ones &= bit == 1;
            let next = trie[node][bit];
            if next < 0 {
                let symbol = (-next - 1) as usize;
                if symbol == 256 {
                    return Err(HpackError);
                }
                out.push(symbol as u8);
                node = 0;
                pending_bits = 0;
                pending_ones = true;
            } else if next == 0 {
                return Err(HpackError);
            } else {
                node = next as usize;
            }
        }
    }
    if pending_bits > 7 || !pending_ones {
        return Err(HpackError);
    }
    Ok(out)
}
