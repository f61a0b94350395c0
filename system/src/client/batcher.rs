//! Coalesces concurrent single messages into batch requests: the first message of a batch
//! starts a short linger, the batch leaves when it is full or the linger ends, and each
//! caller gets its own message's outcome back through a oneshot channel. The submission
//! channel and the number of batches in flight are bounded.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{ForwardError, Hop};
use crate::proto::DataMessage;

/// Batches sent concurrently before the batcher waits for one to finish.
const MAX_IN_FLIGHT: usize = 64;

pub(super) type Job = (DataMessage, oneshot::Sender<Result<(), ForwardError>>);

pub(super) fn start(hop: Arc<Hop>) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel(hop.config.batch * 4);
    tokio::spawn(run(hop, rx));
    tx
}

pub(super) async fn submit(
    batcher: &mpsc::Sender<Job>,
    msg: DataMessage,
) -> Result<(), ForwardError> {
    let (reply, answer) = oneshot::channel();
    let stopped = || ForwardError::Unreachable("the batcher has stopped".to_owned());
    batcher.send((msg, reply)).await.map_err(|_| stopped())?;
    answer.await.unwrap_or_else(|_| Err(stopped()))
}

async fn run(hop: Arc<Hop>, mut jobs: mpsc::Receiver<Job>) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        let linger = tokio::time::sleep(hop.config.linger);
        tokio::pin!(linger);
        while batch.len() < hop.config.batch {
            tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => batch.push(job),
                    None => break,
                },
                () = &mut linger => break,
            }
        }
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
