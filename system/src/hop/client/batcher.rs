//! Coalesces concurrent single messages into batch requests without a timer floor. A
//! message that finds the hop with room (fewer than `max_in_flight` requests out) and no
//! message waiting is sent at once by its caller, on the same path as without batching;
//! messages that arrive while every slot is taken wait in the bounded submission channel,
//! and the batcher sends them together as soon as a slot is free. So a lone message pays
//! nothing and batches grow with the load. Batches are cut by count and by bytes; `linger`,
//! when set, adds a wait for company once a slot is free. Each waiting caller gets its own
//! message's outcome back through a oneshot channel.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{Chunk, ForwardError, Forwarded, Hop};
use crate::domain::proto::DataMessage;

/// A message, what it adds to a batch body, and where its outcome goes.
pub(super) type Job = (DataMessage, usize, oneshot::Sender<Forwarded>);

/// The submission side of a running batcher; clones share it.
#[derive(Debug, Clone)]
pub(super) struct Batcher {
    jobs: mpsc::Sender<Job>,
    /// Requests out to the processor at once, by callers and by the batcher together.
    slots: Arc<Semaphore>,
}

impl Batcher {
    /// Starts the batcher task for `hop`.
    pub(super) fn start(hop: Arc<Hop>) -> Batcher {
        let (jobs, rx) = mpsc::channel(hop.config.batch * 4);
        let slots = Arc::new(Semaphore::new(hop.config.max_in_flight.max(1)));
        tokio::spawn(run(hop, rx, Arc::clone(&slots)));
        Batcher { jobs, slots }
    }

    /// Hands `msg` (taking `len` bytes in a batch) to the processor: at once when a slot is
    /// free and nobody waits, otherwise in the next batch.
    pub(super) async fn forward(&self, hop: &Hop, msg: DataMessage, len: usize) -> Forwarded {
        // Waiting messages go first: a caller may not overtake them.
        let nobody_waits = self.jobs.capacity() == self.jobs.max_capacity();
        if nobody_waits && let Ok(_slot) = self.slots.try_acquire() {
            return hop.send_one(msg).await;
        }
        let (reply, answer) = oneshot::channel();
        let stopped = || ForwardError::Unreachable("the batcher has stopped".to_owned());
        self.jobs
            .send((msg, len, reply))
            .await
            .map_err(|_| stopped())?;
        // Once handed over, the message may have gone out before the batcher stopped.
        answer
            .await
            .unwrap_or_else(|_| Err(ForwardError::Broken("the batcher has stopped".to_owned())))
    }
}

async fn run(hop: Arc<Hop>, mut jobs: mpsc::Receiver<Job>, slots: Arc<Semaphore>) {
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
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let mut batch = Chunk::with_capacity(1);
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
        let batch = batch.items;
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

type Pending = (DataMessage, oneshot::Sender<Forwarded>);

/// Adds `job` to `batch` when it has room by bytes; hands it back otherwise.
fn gather(hop: &Hop, batch: &mut Chunk<Pending>, job: Job) -> Option<Job> {
    if hop.has_room(batch, job.1) {
        batch.push((job.0, job.2), job.1);
        None
    } else {
        Some(job)
    }
}
