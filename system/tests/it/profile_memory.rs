//! The profile endpoint gives its memory back: the `system` binary, after two profiles taken
//! under load, is about as large as it was before them.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

/// How much larger the process may be after the profiles than before them: room for the
/// allocator's own bookkeeping and pages the load touched for the first time, far below
/// what a profiler that keeps its buffers or its symbol tables holds.
const SLACK_KIB: u64 = 32 * 1024;

/// Two 1-second profiles, each taken while the gateway and the processor parse large bodies
/// (so that there are samples to resolve to names), leave the resident set within
/// [`SLACK_KIB`] of what it was after the same load ran without a profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_profiles_leave_the_process_about_as_large_as_before() {
    let running = crate::binary::start(
        &[],
        &[("PROFILE_ENDPOINT", "true")],
        &["gateway", "processor", "grpc"],
    );
    let addresses = running.addrs();
    let gateway = format!("http://{}", addresses["gateway"]);
    let client = reqwest::Client::new();

    // The load first runs alone, so the memory it needs itself is in the baseline.
    let load = Load::start(&client, &gateway, 2);
    tokio::time::sleep(Duration::from_secs(1)).await;
    load.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib(running.pid());

    for _ in 0..2 {
        let load = Load::start(&client, &gateway, 2);
        let response = client
            .get(format!("{gateway}/debug/pprof/profile?seconds=1"))
            .send()
            .await
            .unwrap();
        load.stop().await;
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.bytes().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss_kib(running.pid());

    assert!(
        after <= before + SLACK_KIB,
        "resident set {before} KiB before two profiles, {after} KiB after"
    );
}

/// Requests whose bodies the gateway and the processor spend CPU time on, from a few tasks,
/// until stopped: large JSON bodies full of escapes, which the gateway parses and encodes
/// again and the processor parses once more, all in the system's own code (the sampler
/// leaves out frames in libc, where a process answering small requests spends its time).
pub(crate) struct Load {
    running: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub(crate) fn start(client: &reqwest::Client, gateway: &str, tasks: usize) -> Load {
        let running = Arc::new(AtomicBool::new(true));
        let body = serde_json::json!({"source": "profile-load", "data": "\"\\".repeat(100_000)})
            .to_string();
        let tasks = (0..tasks)
            .map(|_| {
                let (client, running, body) = (client.clone(), Arc::clone(&running), body.clone());
                let url = format!("{gateway}/api/v1/ingest");
                tokio::spawn(async move {
                    while running.load(Ordering::Relaxed) {
                        let response = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await
                            .unwrap();
                        assert!(response.status().is_success(), "{}", response.status());
                    }
                })
            })
            .collect();
        Load { running, tasks }
    }

    pub(crate) async fn stop(self) {
        self.running.store(false, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

/// The resident set of a process, from `/proc/PID/status`.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}
