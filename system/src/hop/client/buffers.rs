//! A bounded pool of encoding buffers for request bodies.
//!
//! A buffer is frozen into `Bytes` for the request; the client keeps one handle, and once
//! the request is done and hyper has let go of its handle, `Bytes::try_into_mut` gives the
//! buffer back without copying. If anyone still holds it, it is simply not returned.

use bytes::{Bytes, BytesMut};
use crossbeam_queue::ArrayQueue;

/// Capacity of a new buffer.
const INITIAL_CAPACITY: usize = 1024;
/// Buffers that grew beyond this are dropped rather than kept.
const RETAINED_CAPACITY: usize = 256 * 1024;

/// Reusable encoding buffers.
#[derive(Debug)]
pub(crate) struct BufferPool {
    free: ArrayQueue<BytesMut>,
}

impl BufferPool {
    /// A pool keeping at most `buffers` idle buffers.
    pub(crate) fn new(buffers: usize) -> BufferPool {
        BufferPool {
            free: ArrayQueue::new(buffers.max(1)),
        }
    }

    /// An empty buffer, reused when one is idle.
    pub(crate) fn take(&self) -> BytesMut {
        self.free
            .pop()
            .unwrap_or_else(|| BytesMut::with_capacity(INITIAL_CAPACITY))
    }

    /// Returns the buffer behind `bytes` if nobody else holds it.
    pub(crate) fn give_back(&self, bytes: Bytes) {
        if let Ok(mut buffer) = bytes.try_into_mut()
            && buffer.capacity() <= RETAINED_CAPACITY
        {
            buffer.clear();
            let _ = self.free.push(buffer);
        }
    }
}
