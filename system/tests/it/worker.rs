//! The worker pool, including the original system's BenchmarkWorkerPool scenario.

use std::sync::Arc;

use system::{
    message::MessageRef,
    proto::DataMessage,
    queue::{AnyQueue, Queue, QueueType},
    worker::{ProcessFn, WorkerMode, WorkerPool, seed_processing},
};
use tokio::sync::mpsc;

use crate::alloc_count::allocations_during;

/// Pre-fill 100k messages, start 4 workers, receive all 100k results, stop; for both
/// queues, one message at a time and in batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefilled_queue_of_100k_is_processed_completely() {
    const N: u64 = 100_000;
    let sides = [
        (QueueType::Memory, WorkerMode::Baseline),
        (QueueType::Memory, WorkerMode::Batched),
        (QueueType::Pooled, WorkerMode::Baseline),
        (QueueType::Pooled, WorkerMode::Batched),
    ];
    for (kind, mode) in sides {
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
        let (tx, mut rx) = mpsc::channel(64);
        let pool = WorkerPool::start(Arc::clone(&queue), 4, mode, Arc::new(seed_processing), tx);
        let mut seen = vec![false; N as usize];
        let mut received = 0;
        let mut largest = 0;
        while received < N {
            let results = rx.recv().await.expect("a result for every message");
            assert!(!results.is_empty() && results.len() <= mode.batch());
            largest = largest.max(results.len());
            received += results.len() as u64;
            for result in results.iter() {
                assert!(result.success);
                assert_eq!(result.result, b"PROCESSED_test payload for benchmarking");
                let index: usize = result.message_id["bench-".len()..].parse().unwrap();
                assert!(
                    !std::mem::replace(&mut seen[index], true),
                    "{index} processed twice"
                );
            }
        }
        assert_eq!(received, N);
        if mode == WorkerMode::Batched {
            assert!(largest > 1, "a full queue is taken in batches");
        }
        let stats = pool.stop().await;
        assert_eq!(
            (stats.workers, stats.processed, stats.errors),
            (4, N, 0),
            "{kind} {mode}"
        );
        assert!(
            rx.recv().await.is_none(),
            "results end once the pool has stopped"
        );
    }
}

/// A failing or panicking processing step is counted as an error and reported in its
/// result, without the output it wrote before failing; the worker goes on with the next
/// message. Recycled results carry nothing over from earlier messages.
#[tokio::test]
async fn failures_are_reported_and_nothing_carries_over() {
    let process: ProcessFn = Arc::new(|msg: MessageRef<'_>, out: &mut Vec<u8>| {
        out.extend_from_slice(b"partial ");
        match msg.payload {
            b"fail" => Err("refused".to_owned()),
            b"panic" => panic!("processing blew up"),
            other => {
                out.extend_from_slice(other);
                Ok(())
            }
        }
    });
    let payloads = [
        "a long payload, longer than the next",
        "fail",
        "panic",
        "ok",
    ];
    for mode in [WorkerMode::Baseline, WorkerMode::Batched] {
        let queue = Arc::new(AnyQueue::new(QueueType::Pooled, 100));
        let (tx, mut rx) = mpsc::channel(10);
        let pool = WorkerPool::start(Arc::clone(&queue), 1, mode, Arc::clone(&process), tx);
        let mut outcomes = Vec::new();
        // Several rounds, so that batched results are recycled between them.
        for _ in 0..3 {
            for payload in payloads {
                let msg = DataMessage {
                    id: payload.into(),
                    source: "t".into(),
                    payload: payload.into(),
                    ..DataMessage::default()
                };
                queue.publish(MessageRef::from(&msg)).await.unwrap();
            }
            let mut round = Vec::new();
            while round.len() < payloads.len() {
                for r in rx.recv().await.unwrap().iter() {
                    let output = String::from_utf8(r.result.clone()).unwrap();
                    round.push((r.message_id.clone(), r.success, r.error.clone(), output));
                }
            }
            outcomes.push(round);
        }
        let stats = pool.stop().await;
        let expected = [
            (
                payloads[0],
                true,
                "",
                "partial a long payload, longer than the next",
            ),
            ("fail", false, "refused", ""),
            ("panic", false, "processing panicked", ""),
            ("ok", true, "", "partial ok"),
        ]
        .map(|(id, success, error, output)| {
            (id.to_owned(), success, error.to_owned(), output.to_owned())
        });
        for round in outcomes {
            assert_eq!(round, expected, "{mode}");
        }
        assert_eq!((stats.processed, stats.errors), (12, 6), "{mode}");
    }
}

/// Once warm, the batched pool allocates nothing per message (the baseline allocates a
/// result per message). Counted on one thread, so every allocation is seen.
#[test]
fn batched_workers_allocate_nothing_per_message_once_warm() {
    const N: usize = 2_000;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let msg = DataMessage {
        id: "0b9d8a52-6a4f-4c1e-9d3b-4f5e6a7b8c9d".into(),
        source: "s".into(),
        payload: vec![7; 256],
        ..DataMessage::default()
    };
    let per_message = |mode: WorkerMode| {
        let queue = Arc::new(AnyQueue::new(QueueType::Pooled, N));
        let (tx, mut rx) = mpsc::channel(1024 / mode.batch());
        let _enter = runtime.enter();
        let pool = WorkerPool::start(Arc::clone(&queue), 4, mode, Arc::new(seed_processing), tx);
        let mut round = || {
            runtime.block_on(async {
                for _ in 0..N {
                    queue.publish(MessageRef::from(&msg)).await.unwrap();
                }
                let mut received = 0;
                while received < N {
                    received += rx.recv().await.unwrap().len();
                }
            })
        };
        round(); // warm-up: slots, result batches, channel blocks
        let (allocations, ()) = allocations_during(round);
        runtime.block_on(pool.stop());
        allocations as f64 / N as f64
    };
    let batched = per_message(WorkerMode::Batched);
    let baseline = per_message(WorkerMode::Baseline);
    assert!(batched < 0.01, "batched: {batched} allocations per message");
    assert!(
        baseline >= 2.0,
        "baseline: {baseline} allocations per message"
    );
}

/// Stopping processes what is still queued before it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_drains_the_queue_first() {
    let queue = Arc::new(AnyQueue::new(QueueType::Memory, 1000));
    let (tx, mut rx) = mpsc::channel(2000);
    let slow: ProcessFn = Arc::new(|msg: MessageRef<'_>, out: &mut Vec<u8>| {
        std::thread::sleep(std::time::Duration::from_micros(200));
        seed_processing(msg, out)
    });
    let pool = WorkerPool::start(Arc::clone(&queue), 2, WorkerMode::Batched, slow, tx);
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
    while let Some(batch) = rx.recv().await {
        results += batch.len();
    }
    assert_eq!(results, 500);
}
