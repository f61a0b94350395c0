//! Queue semantics, checked for both implementations of the A/B pair.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};

use system::{
    message::MessageRef,
    proto::DataMessage,
    queue::{AnyQueue, Delivery, MemoryQueue, PooledQueue, PublishError, Queue, QueueType},
};

use crate::{alloc_count::allocations_during, support::message};

const BOTH: [QueueType; 2] = [QueueType::Memory, QueueType::Pooled];

fn publish_now(queue: &AnyQueue, msg: &DataMessage) -> Result<(), PublishError> {
    match queue {
        AnyQueue::Memory(q) => q.try_publish(MessageRef::from(msg)),
        AnyQueue::Pooled(q) => q.try_publish(MessageRef::from(msg)),
        AnyQueue::Nats(_) => unreachable!("the in-memory tests make no NATS queue"),
    }
}

#[tokio::test]
async fn messages_come_out_in_the_order_they_went_in() {
    for kind in BOTH {
        let queue = AnyQueue::new(kind, 100);
        for n in 0..100 {
            publish_now(&queue, &message(n, 8, 1)).unwrap();
        }
        for n in 0..100 {
            let delivery = queue.consume().await.unwrap();
            assert_eq!(delivery.message().id, format!("msg-{n}"), "{kind}");
        }
    }
}

#[tokio::test]
async fn a_full_queue_answers_full_and_keeps_what_it_holds() {
    for kind in BOTH {
        let queue = AnyQueue::new(kind, 3);
        for n in 0..3 {
            publish_now(&queue, &message(n, 8, 0)).unwrap();
        }
        assert_eq!(
            publish_now(&queue, &message(3, 8, 0)),
            Err(PublishError::Full),
            "{kind}"
        );
        let stats = queue.stats();
        assert_eq!(
            (stats.enqueued, stats.rejected, stats.size, stats.capacity),
            (3, 1, 3, 3)
        );
        assert_eq!(queue.consume().await.unwrap().message().id, "msg-0");
        publish_now(&queue, &message(4, 8, 0)).unwrap();
        let ids: Vec<String> = [(); 3]
            .iter()
            .map(|_| match &queue {
                AnyQueue::Memory(q) => q.try_consume().unwrap().message().id.to_owned(),
                AnyQueue::Pooled(q) => q.try_consume().unwrap().message().id.to_owned(),
                AnyQueue::Nats(_) => unreachable!("the in-memory tests make no NATS queue"),
            })
            .collect();
        assert_eq!(ids, ["msg-1", "msg-2", "msg-4"], "{kind}");
    }
}

#[tokio::test]
async fn a_closed_queue_refuses_new_messages_but_delivers_the_accepted_ones() {
    for kind in BOTH {
        let queue = AnyQueue::new(kind, 10);
        publish_now(&queue, &message(1, 8, 0)).unwrap();
        publish_now(&queue, &message(2, 8, 0)).unwrap();
        queue.close();
        assert_eq!(
            publish_now(&queue, &message(3, 8, 0)),
            Err(PublishError::Closed),
            "{kind}"
        );
        assert_eq!(queue.consume().await.unwrap().message().id, "msg-1");
        assert_eq!(queue.consume().await.unwrap().message().id, "msg-2");
        assert!(
            queue.consume().await.is_none(),
            "{kind}: closed and empty ends consumption"
        );
        let stats = queue.stats();
        assert_eq!(
            (stats.enqueued, stats.dequeued, stats.size),
            (2, 2, 0),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn an_idle_consumer_wakes_on_publish_and_on_close() {
    for kind in BOTH {
        let queue = Arc::new(AnyQueue::new(kind, 10));
        let waiting = tokio::spawn({
            let queue = Arc::clone(&queue);
            async move { queue.consume().await.map(|d| d.message().id.to_owned()) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        publish_now(&queue, &message(7, 8, 0)).unwrap();
        assert_eq!(waiting.await.unwrap().as_deref(), Some("msg-7"), "{kind}");

        let waiting = tokio::spawn({
            let queue = Arc::clone(&queue);
            async move { queue.consume().await.is_none() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        queue.close();
        assert!(waiting.await.unwrap(), "{kind}: close wakes idle consumers");
    }
}

/// Every message of 4 producers × 100k is delivered exactly once to 4 consumers, and each
/// message arrives with its own payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_producers_and_four_consumers_deliver_every_message_exactly_once() {
    const PRODUCERS: u64 = 4;
    const PER_PRODUCER: u64 = 100_000;
    for kind in BOTH {
        let queue = Arc::new(AnyQueue::new(kind, 1000));
        let seen: Arc<Vec<AtomicU8>> = Arc::new(
            (0..PRODUCERS * PER_PRODUCER)
                .map(|_| AtomicU8::new(0))
                .collect(),
        );
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let (queue, seen) = (Arc::clone(&queue), Arc::clone(&seen));
                tokio::spawn(async move {
                    while let Some(delivery) = queue.consume().await {
                        let msg = delivery.message();
                        let key = msg.timestamp as u64;
                        assert_eq!(
                            msg.payload,
                            key.to_le_bytes(),
                            "payload belongs to its message"
                        );
                        let index = (key >> 32) * PER_PRODUCER + (key & 0xffff_ffff);
                        let before = seen[index as usize].fetch_add(1, Ordering::Relaxed);
                        assert_eq!(before, 0, "message {key:#x} delivered twice");
                    }
                })
            })
            .collect();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let queue = Arc::clone(&queue);
                tokio::spawn(async move {
                    let mut msg = DataMessage {
                        source: "stress".into(),
                        ..DataMessage::default()
                    };
                    for i in 0..PER_PRODUCER {
                        let key = p << 32 | i;
                        msg.timestamp = key as i64;
                        msg.payload.clear();
                        msg.payload.extend_from_slice(&key.to_le_bytes());
                        loop {
                            match queue.publish(MessageRef::from(&msg)).await {
                                Ok(()) => break,
                                Err(PublishError::Full) => tokio::task::yield_now().await,
                                Err(err) => panic!("unexpected {err}"),
                            }
                        }
                    }
                })
            })
            .collect();
        for producer in producers {
            producer.await.unwrap();
        }
        queue.close();
        for consumer in consumers {
            consumer.await.unwrap();
        }
        let missing = seen
            .iter()
            .filter(|n| n.load(Ordering::Relaxed) != 1)
            .count();
        assert_eq!(missing, 0, "{kind}: messages not delivered exactly once");
        let stats = queue.stats();
        assert_eq!(stats.enqueued, PRODUCERS * PER_PRODUCER, "{kind}");
        assert_eq!(stats.dequeued, PRODUCERS * PER_PRODUCER, "{kind}");
    }
}

/// With several producers and one consumer, each producer's messages keep their order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_is_kept_per_producer() {
    const PER_PRODUCER: u64 = 20_000;
    for kind in BOTH {
        let queue = Arc::new(AnyQueue::new(kind, 64));
        let producers: Vec<_> = (0..4u64)
            .map(|p| {
                let queue = Arc::clone(&queue);
                tokio::spawn(async move {
                    let mut msg = DataMessage {
                        source: "order".into(),
                        ..DataMessage::default()
                    };
                    for i in 0..PER_PRODUCER {
                        msg.timestamp = (p << 32 | i) as i64;
                        while queue.publish(MessageRef::from(&msg)).await.is_err() {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        let consumer = tokio::spawn({
            let queue = Arc::clone(&queue);
            async move {
                let mut next = [0u64; 4];
                while let Some(delivery) = queue.consume().await {
                    let key = delivery.message().timestamp as u64;
                    let (p, i) = ((key >> 32) as usize, key & 0xffff_ffff);
                    assert_eq!(i, next[p], "producer {p} out of order");
                    next[p] += 1;
                }
                next
            }
        });
        for producer in producers {
            producer.await.unwrap();
        }
        queue.close();
        assert_eq!(consumer.await.unwrap(), [PER_PRODUCER; 4], "{kind}");
    }
}

/// A reused slot never shows anything of the message it held before, even when the next
/// message is shorter and has fewer metadata pairs.
#[test]
fn pooled_slots_carry_nothing_from_one_message_into_the_next() {
    let queue = PooledQueue::new(1);
    let mut long = message(1, 4096, 8);
    long.payload.fill(0xAA);
    queue.try_publish(MessageRef::from(&long)).unwrap();
    drop(queue.try_consume().unwrap());

    let short = DataMessage {
        id: "b".into(),
        timestamp: 2,
        source: "s".into(),
        payload: vec![0x01, 0x02],
        metadata: HashMap::from([("only".to_owned(), "one".to_owned())]),
        ..DataMessage::default()
    };
    queue.try_publish(MessageRef::from(&short)).unwrap();
    let delivery = queue.try_consume().unwrap();
    let got = delivery.message();
    assert_eq!((got.id, got.timestamp, got.source), ("b", 2, "s"));
    assert_eq!(got.payload, [0x01, 0x02]);
    let pairs: Vec<_> = got.metadata.iter().collect();
    assert_eq!(pairs, [("only", "one")]);
    assert!(got.metadata.get("key-1-0").is_none());
    drop(delivery);

    let empty = DataMessage {
        source: "e".into(),
        ..DataMessage::default()
    };
    queue.try_publish(MessageRef::from(&empty)).unwrap();
    let delivery = queue.try_consume().unwrap();
    let got = delivery.message();
    assert_eq!((got.id, got.payload.len(), got.metadata.len()), ("", 0, 0));
}

/// Once warm, a publish and a consume of the pooled queue allocate nothing.
#[test]
fn pooled_publish_and_consume_allocate_nothing_once_warm() {
    let queue = PooledQueue::new(16);
    let messages: Vec<DataMessage> = (0..64).map(|n| message(n, 512, 4)).collect();
    let round = |queue: &PooledQueue| {
        for msg in &messages {
            queue.try_publish(MessageRef::from(msg)).unwrap();
            let delivery = queue.try_consume().unwrap();
            std::hint::black_box(delivery.message().payload.len());
        }
    };
    round(&queue);
    let (allocations, ()) = allocations_during(|| {
        for _ in 0..100 {
            round(&queue);
        }
    });
    assert_eq!(allocations, 0, "pooled publish+consume allocated once warm");
}

/// The baseline allocates for every message: the counter above is not blind.
#[test]
fn the_memory_queue_allocates_per_message() {
    let queue = MemoryQueue::new(16);
    let msg = message(1, 512, 4);
    queue.try_publish(MessageRef::from(&msg)).unwrap();
    drop(queue.try_consume());
    let (allocations, ()) = allocations_during(|| {
        for _ in 0..100 {
            queue.try_publish(MessageRef::from(&msg)).unwrap();
            drop(queue.try_consume());
        }
    });
    assert!(
        allocations >= 100,
        "baseline made {allocations} allocations for 100 messages"
    );
}

/// The memory queue counts the waits on its locks (the stand-in for a mutex profile): none
/// on one thread, some when four threads share it; the lock-free pooled queue has none.
#[test]
fn lock_waits_are_counted_where_locks_exist() {
    let msg = message(1, 64, 2);
    let hammer = |queue: &AnyQueue| {
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..50_000 {
                        let _ = publish_now(queue, &msg);
                        let _ = queue.try_consume();
                    }
                });
            }
        });
        queue.stats()
    };
    let alone = AnyQueue::new(QueueType::Memory, 16);
    for _ in 0..10_000 {
        publish_now(&alone, &msg).unwrap();
        alone.try_consume().unwrap();
    }
    assert_eq!(alone.stats().lock_waits, 0);

    let shared = hammer(&AnyQueue::new(QueueType::Memory, 1024));
    assert!(shared.lock_waits > 0, "{shared:?}");
    assert!(shared.lock_wait_nanos > 0, "{shared:?}");
    let pooled = hammer(&AnyQueue::new(QueueType::Pooled, 1024));
    assert_eq!((pooled.lock_waits, pooled.lock_wait_nanos), (0, 0));
}
