//! Coalesces concurrent single messages into batch requests: the first message of a batch
//! starts a short linger, the batch leaves when it is full (by count or by bytes) or the
//! linger ends, and each caller gets its own message's outcome back through a oneshot
//! channel. The submission channel and the number of batches in flight are bounded.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{Chunk, ForwardError, Hop};
use crate::proto::DataMessage;

/// Batches sent concurrently before the batcher waits for one to finish.
const MAX_IN_FLIGHT: usize = 64;

/// A message, what it adds to a batch body, and where its outcome goes.
pub(super) type Job = (
    DataMessage,
    usize,
    oneshot::Sender<Result<(), ForwardError>>,
);

pub(super) fn start(hop: Arc<Hop>) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel(hop.config.batch * 4);
    tokio::spawn(run(hop, rx));
    tx
}

pub(super) async fn submit(
    batcher: &mpsc::Sender<Job>,
    msg: DataMessage,
    len: usize,
) -> Result<(), ForwardError> {
    let (reply, answer) = oneshot::channel();
    let stopped = || ForwardError::Unreachable("the batcher has stopped".to_owned());
    batcher
        .send((msg, len, reply))
        .await
        .map_err(|_| stopped())?;
    answer.await.unwrap_or_else(|_| Err(stopped()))
}

async fn run(hop: Arc<Hop>, mut jobs: mpsc::Receiver<Job>) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    // A job that did not fit in the batch before it starts the next one.
    let mut carried: Option<Job> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match jobs.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut batch = Chunk::with_capacity(hop.config.batch);
        batch.push((first.0, first.2), first.1);
        let linger = tokio::time::sleep(hop.config.linger);
        tokio::pin!(linger);
        while batch.items.len() < hop.config.batch {
            tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) if hop.has_room(&batch, job.1) => batch.push((job.0, job.2), job.1),
                    Some(job) => {
                        carried = Some(job);
                        break;
                    }
                    None => break,
                },
                () = &mut linger => break,
            }
        }
        let batch = batch.take();
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let hop = Arc::clone(&hop);
        tokio::spawn(async move {
            let (msgs, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let results = hop.send_batch(msgs).await;
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
            drop(permit);
        });
    }
}
