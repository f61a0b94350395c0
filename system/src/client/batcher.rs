//! Coalesces concurrent single messages into batch requests without a timer floor: a
//! message that finds the hop with room (fewer than `max_in_flight` batch requests out) leaves
//! at once, with whatever else is ready at that moment; messages that arrive while every slot
//! is taken wait and leave together in the next batch. So a lone message pays no linger and
//! batches grow with the load. Batches are cut by count and by bytes; `linger`, when set,
//! adds a wait for company after a slot is free. Each caller gets its own message's outcome
//! back through a oneshot channel. The submission channel and the batches in flight are
//! bounded.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{Chunk, ForwardError, Hop};
use crate::proto::DataMessage;

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
    let in_flight = Arc::new(Semaphore::new(hop.config.max_in_flight.max(1)));
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
        // Room on the hop first: what arrives while every slot is busy joins this batch.
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let mut batch = Chunk::with_capacity(hop.config.batch);
        batch.push((first.0, first.2), first.1);
        if !hop.config.linger.is_zero() {
            let linger = tokio::time::sleep(hop.config.linger);
            tokio::pin!(linger);
            while carried.is_none() && batch.items.len() < hop.config.batch {
                tokio::select! {
                    job = jobs.recv() => match job {
                        Some(job) => carried = gather(&hop, &mut batch, job),
                        None => break,
                    },
                    () = &mut linger => break,
                }
            }
        }
        while carried.is_none() && batch.items.len() < hop.config.batch {
            match jobs.try_recv() {
                Ok(job) => carried = gather(&hop, &mut batch, job),
                Err(_) => break,
            }
        }
        let batch = batch.take();
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

type Pending = (DataMessage, oneshot::Sender<Result<(), ForwardError>>);

/// Adds `job` to `batch` when it has room by bytes; hands it back otherwise.
fn gather(hop: &Hop, batch: &mut Chunk<Pending>, job: Job) -> Option<Job> {
    if hop.has_room(batch, job.1) {
        batch.push((job.0, job.2), job.1);
        None
    } else {
        Some(job)
    }
}
