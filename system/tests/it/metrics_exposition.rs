//! `/metrics` as Prometheus scrapes it: the `system` binary on real ports, ingests through
//! every front door and protocol (HTTP/1.1, h2c, gRPC unary and stream), then every
//! `/metrics` endpoint read and checked: the latency and batch-size histograms counted what
//! was sent, the process and build families are there, and `promtool check metrics` (from
//! the Debian package `prometheus`, installed by `scripts/ensure-tools` when missing; its
//! check is skipped, saying so, when it cannot be had) accepts the text as it is.

use std::{
    collections::HashMap,
    io::Write as _,
    process::{Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use system::{
    message::MessageRef,
    prometheus::{Bounds, Histogram},
    proto::{IngestRequest, ingest_service_client::IngestServiceClient},
    queue::{Delivery, PooledQueue, Stamp},
};

use crate::{
    alloc_count::allocations_during,
    binary,
    stack::Stack,
    support::{message, parse_prometheus},
};

const BODY: &str = r#"{"source": "metrics", "data": "x", "metadata": {"k": "v"}}"#;

/// Messages sent through each single-message door, and in the one stream.
const SINGLES: u64 = 3;
const STREAMED: u64 = 10;

fn request(n: u64) -> IngestRequest {
    IngestRequest {
        source: format!("metrics-{n}"),
        data: b"x".to_vec(),
        metadata: HashMap::new(),
        id: String::new(),
    }
}

#[tokio::test]
async fn all_roles_in_one_process_time_every_door_hop_and_queue_wait() {
    let running = binary::start(&[], &[], &["processor", "gateway", "grpc"]);
    let addresses = running.addrs();
    let gateway = format!("http://{}", addresses["gateway"]);
    let processor = format!("http://{}", addresses["processor"]);
    let grpc = format!("http://{}", addresses["grpc"]);

    ingest_over_http(&reqwest::Client::new(), &gateway).await;
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    ingest_over_http(&h2c, &gateway).await;
    ingest_over_grpc(&grpc).await;
    let total = 3 * SINGLES + STREAMED;
    processed(&processor, total).await;

    // The front doors share a process: the gateway's `/metrics` shows the gRPC role's too.
    let text = scrape(&gateway).await;
    let fronts = parse_prometheus(&text);
    for (door, protocol, at_least) in [
        ("gateway", "http1", SINGLES),
        ("gateway", "h2c", SINGLES),
        ("grpc", "unary", SINGLES),
        ("grpc", "stream", 1),
    ] {
        let labels = format!(r#"door="{door}",protocol="{protocol}""#);
        let count = histogram_count(&fronts, "ingest_duration_seconds", &labels);
        assert!(
            count >= at_least as f64,
            "{door}/{protocol}: {count}\n{text}"
        );
    }
    assert_eq!(
        histogram_count(
            &fronts,
            "ingest_duration_seconds",
            r#"door="gateway",protocol="http1""#
        ),
        SINGLES as f64,
        "one observation per HTTP request"
    );
    for (door, messages) in [("gateway", 2 * SINGLES), ("grpc", SINGLES + STREAMED)] {
        let labels = format!(r#"door="{door}""#);
        assert!(histogram_count(&fronts, "hop_request_duration_seconds", &labels) >= 1.0);
        assert!(histogram_count(&fronts, "hop_batch_messages", &labels) >= 1.0);
        // Every message accepted went to the processor in exactly one hop request.
        assert_eq!(
            fronts[&format!("hop_batch_messages_sum{{{labels}}}")],
            messages as f64,
            "{door}\n{text}"
        );
    }
    // The names that were there before stay as they were.
    assert_eq!(
        fronts[r#"gateway_ingest_total{outcome="accepted"}"#],
        (2 * SINGLES) as f64
    );
    assert!(fronts["gateway_hop_requests_total"] >= 1.0);
    assert!(fronts["grpc_hop_requests_total"] >= 1.0);
    assert_process_and_build(&fronts, &text);
    promtool_accepts(&text, "the gateway's /metrics");

    let text = scrape(&processor).await;
    let samples = parse_prometheus(&text);
    assert_eq!(
        histogram_count(
            &samples,
            "processor_queue_wait_seconds",
            r#"queue="pooled""#
        ),
        total as f64,
        "one wait per processed message\n{text}"
    );
    assert_eq!(samples["processor_messages_processed_total"], total as f64);
    assert!(
        !samples.keys().any(|series| series.contains("door=")),
        "the processor shows only its own families\n{text}"
    );
    assert_process_and_build(&samples, &text);
    promtool_accepts(&text, "the processor's /metrics");
}

#[tokio::test]
async fn the_grpc_role_alone_serves_its_metrics_on_a_port_of_their_own() {
    let running_processor = binary::start(&["processor"], &[], &["processor"]);
    let processor = format!("http://{}", running_processor.addrs()["processor"]);
    let grpc = binary::start(
        &["grpc"],
        &[
            ("PROCESSOR_URL", processor.as_str()),
            ("GRPC_METRICS_PORT", "0"),
        ],
        &["grpc", "grpc metrics"],
    );
    let addresses = grpc.addrs();
    ingest_over_grpc(&format!("http://{}", addresses["grpc"])).await;
    processed(&processor, SINGLES + STREAMED).await;

    let metrics = format!("http://{}", addresses["grpc metrics"]);
    let response = reqwest::get(format!("{metrics}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        response.headers()
    );
    let text = response.text().await.unwrap();
    let samples = parse_prometheus(&text);
    let unary = r#"door="grpc",protocol="unary""#;
    assert_eq!(
        histogram_count(&samples, "ingest_duration_seconds", unary),
        SINGLES as f64,
        "{text}"
    );
    assert!(
        histogram_count(
            &samples,
            "ingest_duration_seconds",
            r#"door="grpc",protocol="stream""#
        ) >= 1.0
    );
    assert_eq!(
        samples[r#"hop_batch_messages_sum{door="grpc"}"#],
        (SINGLES + STREAMED) as f64
    );
    assert!(histogram_count(&samples, "hop_request_duration_seconds", r#"door="grpc""#) >= 1.0);
    assert!(samples["grpc_hop_requests_total"] >= 1.0);
    assert!(
        !samples
            .keys()
            .any(|series| series.contains(r#"door="gateway""#)),
        "no gateway runs in this process\n{text}"
    );
    assert_process_and_build(&samples, &text);
    promtool_accepts(&text, "the gRPC role's /metrics");

    let missing = reqwest::get(format!("{metrics}/other")).await.unwrap();
    assert_eq!(missing.status(), 404);
}

/// Two systems in one process keep their numbers apart: each role instance has a registry
/// of its own.
#[tokio::test]
async fn systems_in_one_process_do_not_share_their_numbers() {
    let (busy, idle) = (Stack::recording().await, Stack::recording().await);
    ingest_over_http(&reqwest::Client::new(), &busy.gateway_url).await;
    busy.processed(SINGLES).await;
    let http1 = r#"door="gateway",protocol="http1""#;
    let seen = parse_prometheus(&scrape(&busy.gateway_url).await);
    assert_eq!(
        histogram_count(&seen, "ingest_duration_seconds", http1),
        SINGLES as f64
    );
    let unseen = parse_prometheus(&scrape(&idle.gateway_url).await);
    assert_eq!(
        histogram_count(&unseen, "ingest_duration_seconds", http1),
        0.0
    );
    let waits = parse_prometheus(&scrape(&idle.processor_url).await);
    assert_eq!(
        histogram_count(&waits, "processor_queue_wait_seconds", r#"queue="pooled""#),
        0.0
    );
    busy.shutdown().await;
    idle.shutdown().await;
}

/// A pooled slot carries its message's publish stamp and nothing of the one before it;
/// once warm, a stamped publish, a consume and an observation of the wait allocate nothing.
#[test]
fn a_queued_message_carries_its_stamp_and_measuring_its_wait_allocates_nothing() {
    let queue = PooledQueue::new(16);
    let waits = Histogram::new(Bounds::Seconds);
    let messages: Vec<_> = (0..64).map(|n| message(n, 512, 4)).collect();
    let round = || {
        for msg in &messages {
            let stamp = Stamp::now();
            queue.try_publish_at(MessageRef::from(msg), stamp).unwrap();
            let delivery = queue.try_consume().unwrap();
            let queued_at = delivery
                .queued_at()
                .expect("a stamped message keeps its stamp");
            assert_eq!(queued_at, stamp);
            waits.observe(queued_at.nanos_until(Stamp::now()));
        }
    };
    round();
    let (allocations, ()) = allocations_during(|| {
        for _ in 0..100 {
            round();
        }
    });
    assert_eq!(
        allocations, 0,
        "stamped publish, consume and observation allocated"
    );
    assert_eq!(waits.count(), 101 * 64);

    queue.try_publish(MessageRef::from(&messages[0])).unwrap();
    let reused = queue.try_consume().unwrap();
    assert_eq!(
        reused.queued_at(),
        None,
        "a reused slot showed the stamp before"
    );
}

async fn ingest_over_http(client: &reqwest::Client, gateway: &str) {
    for _ in 0..SINGLES {
        let response = client
            .post(format!("{gateway}/api/v1/ingest"))
            .header("content-type", "application/json")
            .body(BODY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
}

/// `SINGLES` unary calls, then one stream of `STREAMED` messages.
async fn ingest_over_grpc(url: &str) {
    let mut client = IngestServiceClient::connect(url.to_owned()).await.unwrap();
    for n in 0..SINGLES {
        client.ingest(request(n)).await.unwrap();
    }
    let stream = (0..STREAMED).map(|n| request(100 + n));
    let reply = client
        .ingest_stream(tokio_stream::iter(stream))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, STREAMED);
}

/// Waits (bounded) until the processor at `url` has processed `n` messages.
async fn processed(url: &str, n: u64) {
    let mut stats = serde_json::Value::Null;
    for _ in 0..1000 {
        stats = reqwest::get(format!("{url}/stats"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if stats["workers"]["processed"] == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not processed: {stats}");
}

async fn scrape(base: &str) -> String {
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The `_count` of one series of a histogram, checked against its `+Inf` bucket; 0 when
/// the series is absent.
fn histogram_count(samples: &HashMap<String, f64>, name: &str, labels: &str) -> f64 {
    let count = samples.get(&format!("{name}_count{{{labels}}}")).copied();
    let inf = samples
        .get(&format!(r#"{name}_bucket{{{labels},le="+Inf"}}"#))
        .copied();
    assert_eq!(count, inf, "{name}{{{labels}}}: _count and the +Inf bucket");
    count.unwrap_or(0.0)
}

fn assert_process_and_build(samples: &HashMap<String, f64>, text: &str) {
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            samples.get(name).is_some_and(|v| *v > 0.0),
            "{name}\n{text}"
        );
    }
    assert!(samples["process_cpu_seconds_total"] >= 0.0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = samples["process_start_time_seconds"];
    assert!(
        started <= now + 1.0 && started > now - 3600.0,
        "started {started}, now {now}"
    );
    let version = format!(r#"version="{}""#, env!("CARGO_PKG_VERSION"));
    let build = samples
        .iter()
        .find(|(series, _)| series.starts_with("diplom_build_info{"))
        .unwrap_or_else(|| panic!("no diplom_build_info\n{text}"));
    assert!(build.0.contains(&version), "{}", build.0);
    assert_eq!(*build.1, 1.0);
}

/// `promtool check metrics` reads `text` on its standard input and finds nothing wrong:
/// neither a parse error nor a lint problem (its exit code is 1 and 3 for those).
fn promtool_accepts(text: &str, what: &str) {
    if !crate::support::tool_available("promtool", "promtool=prometheus") {
        eprintln!(
            "skipping the promtool check of {what}: `promtool` is not installed and \
             `scripts/ensure-tools promtool=prometheus` could not install it"
        );
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .expect("promtool reads the exposition");
    let output = child.wait_with_output().expect("promtool ends");
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "promtool check metrics on {what}: {}\n{}{}\n{text}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}
