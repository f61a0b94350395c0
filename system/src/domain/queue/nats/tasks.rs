//! The background work of a [`super::NatsQueue`]: fetching from the shared consumer into a
//! bounded channel for the workers, moving dead letters, and reading the stream's counters.
//!
//! Every task ends when the queue is closed or dropped (the stop channel says so), and none
//! gives up on a broker that went away: each retries after a pause, so service resumes when
//! the server is back, without a restart.

use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use async_nats::{
    Subscriber,
    jetstream::{Context, consumer::PullConsumer, stream::Stream as JetStream},
};
use futures_util::StreamExt;
use prost::Message as _;
use tokio::sync::{mpsc, watch};

use super::{Counters, Held, NatsConfig, NatsDelivery, NatsError};

/// The target of this module's log lines: its public path, which `RUST_LOG` names.
const LOG_TARGET: &str = "system::queue::nats::tasks";
use crate::domain::proto::DataMessage;

/// Pause before a failed broker call is tried again.
pub(super) const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// How long one pull request waits on the server before the client renews it.
const PULL_EXPIRES: Duration = Duration::from_secs(10);
/// While a pull request waits the server sends heartbeats this often; two missed ones
/// mean the request is lost (seen with a server whose other clients stalled), and pulling
/// starts over instead of waiting for the request to expire. A fetcher blocked that long
/// on busy workers also starts over; the messages it held come back after the ack wait.
const PULL_HEARTBEAT: Duration = Duration::from_secs(2);
/// How often the stream's counters are read for `/stats`.
const STATS_INTERVAL: Duration = Duration::from_millis(500);

pub(super) struct Tasks {
    pub(super) jetstream: Context,
    pub(super) config: NatsConfig,
    pub(super) consumer: PullConsumer,
    pub(super) counters: Arc<Counters>,
    pub(super) stopped: watch::Receiver<bool>,
    /// Counts the client's disconnections.
    pub(super) disconnected: watch::Receiver<u64>,
    pub(super) fetched: mpsc::Sender<NatsDelivery>,
}

/// Starts the tasks. The dead-letter subscription is in place when this returns.
pub(super) async fn spawn(tasks: Tasks) -> Result<(), NatsError> {
    let Tasks {
        jetstream,
        config,
        consumer,
        counters,
        stopped,
        disconnected,
        fetched,
    } = tasks;
    let advisories = subscribe_dead_letters(&jetstream, &config).await?;
    let work = jetstream
        .get_stream(&config.stream)
        .await
        .map_err(|err| NatsError::setup(format!("stream {}", config.stream), &err, true))?;
    tokio::spawn(fetch(
        jetstream.clone(),
        config.clone(),
        Some(consumer.clone()),
        Arc::clone(&counters),
        stopped.clone(),
        disconnected,
        fetched,
    ));
    tokio::spawn(move_dead_letters(
        work.clone(),
        jetstream,
        config.dead_letter_subject(),
        advisories,
        Arc::clone(&counters),
        stopped.clone(),
    ));
    tokio::spawn(read_stats(work, consumer, counters, stopped));
    Ok(())
}

/// Resolves when the queue is closed or dropped.
async fn stop_requested(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Pauses, or returns `false` at once when the queue stops meanwhile.
async fn pause(stopped: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = stop_requested(stopped) => false,
        () = tokio::time::sleep(RETRY_PAUSE) => true,
    }
}

/// Pulls from the shared consumer and hands each message to the workers' channel. The
/// channel is small, so a busy processor stops pulling and the others take the work. When
/// pulling fails (the server went away, or came back without the stream) the stream and
/// the consumer are set up again and pulling starts over; messages the old pull had
/// fetched are delivered again after the ack wait.
async fn fetch(
    jetstream: Context,
    config: NatsConfig,
    mut consumer: Option<PullConsumer>,
    counters: Arc<Counters>,
    mut stopped: watch::Receiver<bool>,
    mut disconnected: watch::Receiver<u64>,
    fetched: mpsc::Sender<NatsDelivery>,
) {
    loop {
        let current = match consumer.take() {
            Some(current) => current,
            None => match super::setup::setup(&jetstream, &config).await {
                Ok(current) => current,
                Err(err) => {
                    tracing::warn!(target: LOG_TARGET, %err, "NATS consumer not ready; retrying");
                    if pause(&mut stopped).await {
                        continue;
                    }
                    return;
                }
            },
        };
        let messages = current
            .stream()
            .max_messages_per_batch(config.fetch_batch.max(1))
            .expires(PULL_EXPIRES)
            .heartbeat(PULL_HEARTBEAT)
            .messages()
            .await;
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(err) => {
                tracing::warn!(target: LOG_TARGET, %err, "cannot pull from the NATS consumer; retrying");
                if pause(&mut stopped).await {
                    continue;
                }
                return;
            }
        };
        loop {
            let next = tokio::select! {
                () = stop_requested(&mut stopped) => return,
                // Set up again once the server is back (`setup` retries until it is).
                changed = disconnected.changed() => match changed {
                    Ok(()) => break,
                    Err(_) => return,
                },
                next = messages.next() => next,
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(err)) => {
                    tracing::warn!(target: LOG_TARGET, %err, "pulling from NATS failed; setting up again");
                    if pause(&mut stopped).await {
                        break;
                    }
                    return;
                }
                None => break,
            };
            if let Ok(info) = message.info()
                && info.delivered > 1
            {
                counters.redelivered.fetch_add(1, Ordering::Relaxed);
            }
            let (message, acker) = message.split();
            let Ok(decoded) = DataMessage::decode(message.payload) else {
                // Not ours to process and never will be: end its deliveries now.
                tracing::warn!(target: LOG_TARGET, subject = %message.subject, "dropping an undecodable message");
                let _ = acker.ack_with(async_nats::jetstream::AckKind::Term).await;
                continue;
            };
            let delivery = NatsDelivery(Box::new(Held {
                message: decoded,
                acker,
                counters: Arc::clone(&counters),
            }));
            tokio::select! {
                // Unacknowledged, it goes to another processor after the ack wait.
                () = stop_requested(&mut stopped) => return,
                sent = fetched.send(delivery) => if sent.is_err() { return },
            }
        }
    }
}

async fn subscribe_dead_letters(
    jetstream: &Context,
    config: &NatsConfig,
) -> Result<Subscriber, NatsError> {
    // JetStream announces each message that used up its deliveries. The queue group gives
    // each announcement to one processor, so each dead letter is moved (and counted) once.
    let subject = format!(
        "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
        config.stream, config.consumer
    );
    jetstream
        .client()
        .queue_subscribe(subject, format!("{}-dead-letters", config.consumer))
        .await
        .map_err(|err| NatsError::setup("dead-letter subscription".to_owned(), &err, false))
}

#[derive(serde::Deserialize)]
struct MaxDeliveries {
    stream_seq: u64,
    deliveries: u64,
}

/// Copies each dead letter to the dead-letter stream and deletes it from the work stream,
/// where a work-queue stream would otherwise keep it for ever.
async fn move_dead_letters(
    work: JetStream,
    jetstream: Context,
    dead_subject: String,
    mut advisories: Subscriber,
    counters: Arc<Counters>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let advisory = tokio::select! {
            () = stop_requested(&mut stopped) => return,
            advisory = advisories.next() => match advisory {
                Some(advisory) => advisory,
                None => return,
            },
        };
        let Ok(advisory) = serde_json::from_slice::<MaxDeliveries>(&advisory.payload) else {
            continue;
        };
        let seq = advisory.stream_seq;
        tracing::warn!(target: LOG_TARGET,
            seq,
            deliveries = advisory.deliveries,
            "message used up its deliveries; dead-lettering it"
        );
        match work.get_raw_message(seq).await {
            Ok(message) => {
                let copied = match jetstream
                    .publish(dead_subject.clone(), message.payload)
                    .await
                {
                    Ok(ack) => ack.await.is_ok(),
                    Err(_) => false,
                };
                if !copied {
                    // Keep it where it is rather than lose it.
                    tracing::error!(target: LOG_TARGET, seq, "cannot copy a dead letter; left in the stream");
                    continue;
                }
                counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                if let Err(err) = work.delete_message(seq).await {
                    tracing::warn!(target: LOG_TARGET, seq, %err, "cannot delete a dead letter from the stream");
                }
            }
            // Acknowledged late after all, or deleted: nothing to move.
            Err(err) => {
                tracing::debug!(target: LOG_TARGET, seq, %err, "dead letter no longer in the stream")
            }
        }
    }
}

/// Keeps `pending` (stream) and `waiting` (consumer) fresh, since `/stats` cannot wait for
/// the broker. On a failed read the last values stay.
async fn read_stats(
    work: JetStream,
    consumer: PullConsumer,
    counters: Arc<Counters>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        if let Ok(info) = work.get_info().await {
            counters
                .pending
                .store(info.state.messages, Ordering::Relaxed);
            counters
                .capacity
                .store(info.config.max_messages.max(0) as u64, Ordering::Relaxed);
        }
        if let Ok(info) = consumer.get_info().await {
            counters.waiting.store(info.num_pending, Ordering::Relaxed);
        }
        // Unlike the others this task also runs after `close`, so the final counters are
        // fresh; it ends when the queue is dropped.
        tokio::select! {
            changed = stopped.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(STATS_INTERVAL) => {}
        }
    }
}
