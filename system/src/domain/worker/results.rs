//! The batches workers hand results on in, and the pool their buffers return to.
//!
//! A batched worker fills a [`ResultBatch`] taken from the pool, overwriting the strings and
//! buffers of results that earlier batches left behind, so once warm a result costs no
//! allocation. Dropping the batch returns it to the pool; buffers that grew beyond
//! `RETAINED_RESULT_BYTES` are trimmed first and a full pool lets the batch go, so a burst
//! of large results cannot pin memory.

use std::{
    ops::{Deref, DerefMut},
    sync::Arc,
};

use crossbeam_queue::ArrayQueue;

use crate::domain::proto::ProcessingResult;

/// Largest capacity (in bytes) a recycled result keeps for its id, error or output.
pub(crate) const RETAINED_RESULT_BYTES: usize = 8 * 1024;

/// The results of the messages one worker took in one go, in the order it took them.
/// Reads as a slice of [`ProcessingResult`].
#[derive(Debug)]
pub struct ResultBatch(Results);

#[derive(Debug)]
enum Results {
    /// One result of its own, as the original pool made them.
    One(ProcessingResult),
    /// `results[..len]` are live; entries beyond are spare capacity, never shown.
    Recycled {
        results: Vec<ProcessingResult>,
        len: usize,
        pool: Arc<BatchPool>,
    },
}

/// Emptied batches waiting to be filled again.
#[derive(Debug)]
pub(super) struct BatchPool(ArrayQueue<Vec<ProcessingResult>>);

impl BatchPool {
    pub(super) fn new(batches: usize) -> Arc<BatchPool> {
        Arc::new(BatchPool(ArrayQueue::new(batches.max(1))))
    }

    /// An empty batch, with the results an earlier batch left behind when there is one.
    pub(super) fn take(self: &Arc<Self>, capacity: usize) -> ResultBatch {
        let results = self.0.pop().unwrap_or_else(|| Vec::with_capacity(capacity));
        ResultBatch(Results::Recycled {
            results,
            len: 0,
            pool: Arc::clone(self),
        })
    }
}

impl ResultBatch {
    /// A batch of one freshly made result.
    pub(super) fn one(result: ProcessingResult) -> ResultBatch {
        ResultBatch(Results::One(result))
    }

    /// The next result to fill, cleared, with the capacity of its strings and buffers.
    /// Only for batches from [`BatchPool::take`].
    pub(super) fn push(&mut self) -> &mut ProcessingResult {
        let Results::Recycled { results, len, .. } = &mut self.0 else {
            unreachable!("only recycled batches grow");
        };
        if *len == results.len() {
            results.push(ProcessingResult::default());
        }
        let result = &mut results[*len];
        *len += 1;
        result.message_id.clear();
        result.error.clear();
        result.result.clear();
        result
    }

    /// The results as owned values; the batch is not recycled.
    pub fn into_vec(mut self) -> Vec<ProcessingResult> {
        match &mut self.0 {
            Results::One(result) => vec![std::mem::take(result)],
            Results::Recycled { results, len, .. } => {
                let mut owned = std::mem::take(results);
                owned.truncate(*len);
                owned
            }
        }
    }
}

impl Deref for ResultBatch {
    type Target = [ProcessingResult];

    fn deref(&self) -> &[ProcessingResult] {
        match &self.0 {
            Results::One(result) => std::slice::from_ref(result),
            Results::Recycled { results, len, .. } => &results[..*len],
        }
    }
}

impl DerefMut for ResultBatch {
    fn deref_mut(&mut self) -> &mut [ProcessingResult] {
        match &mut self.0 {
            Results::One(result) => std::slice::from_mut(result),
            Results::Recycled { results, len, .. } => &mut results[..*len],
        }
    }
}

impl Drop for ResultBatch {
    fn drop(&mut self) {
        if let Results::Recycled { results, pool, .. } = &mut self.0 {
            if results.capacity() == 0 {
                return; // taken by `into_vec`
            }
            for result in results.iter_mut() {
                trim(&mut result.result);
                trim_string(&mut result.message_id);
                trim_string(&mut result.error);
            }
            // A full pool already holds enough batches: let this one go.
            let _ = pool.0.push(std::mem::take(results));
        }
    }
}

fn trim(buffer: &mut Vec<u8>) {
    if buffer.capacity() > RETAINED_RESULT_BYTES {
        *buffer = Vec::new();
    }
}

fn trim_string(s: &mut String) {
    if s.capacity() > RETAINED_RESULT_BYTES {
        *s = String::new();
    }
}
