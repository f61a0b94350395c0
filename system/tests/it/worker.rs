//! The worker pool, including the original system's BenchmarkWorkerPool scenario.

use std::sync::Arc;

use system::{
    message::MessageRef,
    proto::DataMessage,
    queue::{AnyQueue, Queue, QueueType},
    worker::{ProcessFn, WorkerPool, seed_processing},
};
use tokio::sync::mpsc;

/// Pre-fill 100k messages, start 4 workers, receive all 100k results, stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefilled_queue_of_100k_is_processed_completely() {
    const N: u64 = 100_000;
    for kind in [QueueType::Memory, QueueType::Pooled] {
        let queue = Arc::new(AnyQueue::new(kind, N as usize));
        let mut msg = DataMessage {
            source: "benchmark".into(),
            payload: b"test payload for benchmarking".to_vec(),
            ..DataMessage::default()
        };
        for i in 0..N {
            msg.id = format!("bench-{i}");
            queue.publish(MessageRef::from(&msg)).await.unwrap();
        }
        let (tx, mut rx) = mpsc::channel(1024);
        let pool = WorkerPool::start(Arc::clone(&queue), 4, Arc::new(seed_processing), tx);
        let mut seen = vec![false; N as usize];
        for _ in 0..N {
            let result = rx.recv().await.expect("a result for every message");
            assert!(result.success);
            assert_eq!(result.result, b"PROCESSED_test payload for benchmarking");
            let index: usize = result.message_id["bench-".len()..].parse().unwrap();
            assert!(
                !std::mem::replace(&mut seen[index], true),
                "{index} processed twice"
            );
        }
        let stats = pool.stop().await;
        assert_eq!(
            (stats.workers, stats.processed, stats.errors),
            (4, N, 0),
            "{kind}"
        );
        assert!(
            rx.recv().await.is_none(),
            "results end once the pool has stopped"
        );
    }
}

/// A failing or panicking processing step is counted as an error and reported in its
/// result; the worker goes on with the next message.
#[tokio::test]
async fn failures_are_reported_and_do_not_stop_a_worker() {
    let process: ProcessFn = Arc::new(|msg: MessageRef<'_>| match msg.payload {
        b"fail" => Err("refused".to_owned()),
        b"panic" => panic!("processing blew up"),
        other => Ok(other.to_vec()),
    });
    let queue = Arc::new(AnyQueue::new(QueueType::Pooled, 10));
    for payload in ["ok", "fail", "panic", "ok"] {
        let msg = DataMessage {
            id: payload.into(),
            source: "t".into(),
            payload: payload.into(),
            ..DataMessage::default()
        };
        queue.publish(MessageRef::from(&msg)).await.unwrap();
    }
    let (tx, mut rx) = mpsc::channel(10);
    let pool = WorkerPool::start(Arc::clone(&queue), 1, process, tx);
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        let r = rx.recv().await.unwrap();
        outcomes.push((r.message_id, r.success, r.error));
    }
    let stats = pool.stop().await;
    assert_eq!(
        outcomes,
        [
            ("ok".to_owned(), true, String::new()),
            ("fail".to_owned(), false, "refused".to_owned()),
            ("panic".to_owned(), false, "processing panicked".to_owned()),
            ("ok".to_owned(), true, String::new()),
        ]
    );
    assert_eq!((stats.processed, stats.errors), (4, 2));
}

/// Stopping processes what is still queued before it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_drains_the_queue_first() {
    let queue = Arc::new(AnyQueue::new(QueueType::Memory, 1000));
    let (tx, mut rx) = mpsc::channel(2000);
    let slow: ProcessFn = Arc::new(|msg: MessageRef<'_>| {
        std::thread::sleep(std::time::Duration::from_micros(200));
        seed_processing(msg)
    });
    let pool = WorkerPool::start(Arc::clone(&queue), 2, slow, tx);
    let msg = DataMessage {
        source: "s".into(),
        ..DataMessage::default()
    };
    for _ in 0..500 {
        queue.publish(MessageRef::from(&msg)).await.unwrap();
    }
    let stats = pool.stop().await;
    assert_eq!(stats.processed, 500);
    let mut results = 0;
    while rx.recv().await.is_some() {
        results += 1;
    }
    assert_eq!(results, 500);
}
