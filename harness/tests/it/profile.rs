//! A short profile of one component: the pprof file decodes, the flame graph is drawn and
//! the contention view counts the queue's lock waits.

use std::time::Duration;

use pprof::protos::Message as _;

/// The CPU profiler is one per process: the tests here take turns.
static PROFILER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Waits for this test's turn at the profiler; returns the turn and an empty directory.
fn turn(name: &str) -> (std::sync::MutexGuard<'static, ()>, std::path::PathBuf) {
    let turn = PROFILER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = std::env::temp_dir().join(format!("harness-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    (turn, dir)
}

#[test]
fn a_short_profile_gives_a_decodable_pb_and_a_flame_graph() {
    let (_turn, dir) = turn("profile");
    harness::profile::run("queue_pooled", Duration::from_millis(500), &dir).unwrap();

    let bytes = std::fs::read(dir.join("queue_pooled.pb")).unwrap();
    let profile = pprof::protos::Profile::decode(bytes.as_slice()).expect("a valid pprof protobuf");
    assert!(
        !profile.sample.is_empty(),
        "no samples in half a second of work"
    );
    assert!(!profile.string_table.is_empty());

    let svg = std::fs::read_to_string(dir.join("queue_pooled.svg")).unwrap();
    assert!(
        svg.contains("<svg") && svg.len() > 1000,
        "an empty flame graph"
    );

    let top: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("queue_pooled.top.json")).unwrap())
            .unwrap();
    assert!(top["samples"].as_i64().unwrap() > 0);
    assert!(!top["by_self"].as_array().unwrap().is_empty());

    let contention: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("queue_pooled.contention.json")).unwrap(),
    )
    .unwrap();
    assert!(contention["messages"].as_u64().unwrap() > 0);
    assert_eq!(contention["lock_waits"], 0, "the pooled queue has no locks");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Allocation sites of the queue pair: the baseline's allocations are all found, at the
/// functions that make them (the copy of the message on publish); the pooled queue has none.
#[test]
fn allocation_sites_name_where_the_memory_queue_allocates() {
    let (_turn, dir) = turn("sites");
    let read = |component: &str| -> serde_json::Value {
        harness::profile::run(component, Duration::from_millis(200), &dir).unwrap();
        let path = dir.join(format!("{component}.alloc_sites.json"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let memory = read("queue_memory");
    let msg = harness::workloads::sample_message();
    let queue = harness::workloads::warm_queue(system::queue::QueueType::Memory, 16, &msg);
    let (counts, ()) =
        harness::alloc::during(|| harness::workloads::publish_consume(&queue, &msg, 10));
    assert_eq!(
        memory["allocations_per_op"].as_f64().unwrap(),
        counts.allocations as f64 / 10.0,
        "every allocation has a site"
    );
    assert_eq!(memory["dropped"], 0);
    let sites = memory["sites"].as_array().unwrap();
    assert!(
        sites
            .iter()
            .any(|s| s["function"].as_str().unwrap().contains("to_owned_message")),
        "{sites:#?}"
    );
    let pooled = read("queue_pooled");
    assert_eq!(pooled["allocations_per_op"], 0.0);
    assert!(pooled["sites"].as_array().unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
