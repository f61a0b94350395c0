//! A short profile of one component: the pprof file decodes, the flame graph is drawn and
//! the contention view counts the queue's lock waits.

use std::time::Duration;

use pprof::protos::Message as _;

#[test]
fn a_short_profile_gives_a_decodable_pb_and_a_flame_graph() {
    let dir = std::env::temp_dir().join(format!("harness-profile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
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
