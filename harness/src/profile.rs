//! CPU profiles of the components under a representative load, taken in-process with
//! pprof-rs at about 99 Hz (libc, libgcc, pthread and vdso frames blocklisted, so the
//! profile shows our code and its libraries rather than the sampling machinery). For each
//! component it writes `<component>.pb` (pprof protobuf: `go tool pprof`, pprof's web UI,
//! speedscope), `<component>.svg` (flame graph), `<component>.top.json` (the top frames by
//! self and by cumulative samples) and `<component>.contention.json`, the stand-in for Go's
//! block and mutex profiles: busy against parked time per worker for components on a tokio
//! runtime, lock waits for the queues (which run with 2 producer and 2 consumer threads, so
//! that their locks, where they have any, are contended). For the queue pair it also writes
//! `<component>.alloc_sites.json`: allocations per publish+consume by the function that made
//! them (needs [`crate::alloc::Counting`] as the global allocator, as the `profile` binary
//! has; recorded after the CPU profile, on one thread).

use std::{
    collections::HashMap,
    fs,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use pprof::protos::Message as _;
use serde_json::json;
use system::{
    client::{ClientMode, ForwarderConfig},
    queue::{Queue as _, QueueStats, QueueType},
    worker::WorkerMode,
};

use crate::{
    callgrind::{Protocol, RoundTrip},
    workloads::{
        Stack, contended, distinct_copies, drain_with_pool, prefilled, publish_consume,
        reference_forwarder, sample_message, warm_queue,
    },
};

pub use study::catalogue::COMPONENTS;

/// How many frames the top lists keep.
const TOP: usize = 15;

/// Profiles `component` for about `duration`, writing its files into `dir`.
pub fn run(component: &str, duration: Duration, dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)?;
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(99)
        .blocklist(&system::debug::BLOCKLIST)
        .build()?;
    let contention = load(component, duration)?;
    let report = guard.report().build()?;
    drop(guard);
    let file = |suffix: &str| dir.join(format!("{component}.{suffix}"));
    if let Some(kind) = queue_kind(component) {
        write_json(&file("alloc_sites.json"), &alloc_sites(kind))?;
    }
    write_profile(&report, &file("svg"), &file("pb"))?;
    let mut counts = FrameCounts::default();
    for (frames, count) in &report.data {
        let names: Vec<String> = frames.frames.iter().flatten().map(|s| s.name()).collect();
        counts.add(&names, *count);
    }
    write_json(&file("top.json"), &counts.summary(component))?;
    if let Some(view) = contention {
        write_json(&file("contention.json"), &view)?;
    }
    Ok(())
}

/// Writes `value` as pretty JSON with a final newline.
fn write_json(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    fs::write(path, serde_json::to_string_pretty(value)? + "\n")?;
    Ok(())
}

/// Writes the flame graph to `svg` and the pprof protobuf, with portable source paths, to
/// `pb`.
fn write_profile(report: &pprof::Report, svg: &Path, pb: &Path) -> anyhow::Result<()> {
    let mut graph = Vec::new();
    report.flamegraph(&mut graph)?;
    fs::write(svg, graph)?;
    let mut profile = report.pprof()?;
    // Source paths in the symbols name directories of this machine; keep them relative.
    for text in &mut profile.string_table {
        *text = portable_path(text);
    }
    fs::write(pb, profile.encode_to_vec())?;
    Ok(())
}

/// Samples by frame: as the innermost frame (self) and anywhere on the stack (cumulative,
/// once per stack even when a frame recurses).
#[derive(Debug, Default)]
struct FrameCounts {
    self_counts: HashMap<String, isize>,
    cumulative: HashMap<String, isize>,
    total: isize,
}

impl FrameCounts {
    /// Counts `count` samples of the stack `names` (innermost first).
    fn add(&mut self, names: &[String], count: isize) {
        self.total += count;
        if let Some(leaf) = names.first() {
            *self.self_counts.entry(leaf.clone()).or_default() += count;
        }
        let mut seen: Vec<&String> = Vec::new();
        for name in names {
            if !seen.contains(&name) {
                seen.push(name);
                *self.cumulative.entry(name.clone()).or_default() += count;
            }
        }
    }

    /// The `top.json` summary of `component`: the top frames by self and by cumulative
    /// samples.
    fn summary(&self, component: &str) -> serde_json::Value {
        json!({
            "component": component,
            "samples": self.total,
            "frequency_hz": 99,
            "by_self": self.top(&self.self_counts),
            "by_cumulative": self.top(&self.cumulative),
        })
    }

    /// The [`TOP`] frames of `counts`, most samples first (ties by name).
    fn top(&self, counts: &HashMap<String, isize>) -> Vec<serde_json::Value> {
        let mut list: Vec<(&String, &isize)> = counts.iter().collect();
        list.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let share = |counts: &HashMap<String, isize>, frame: &String| {
            percent(counts.get(frame).copied().unwrap_or(0), self.total)
        };
        list.into_iter()
            .take(TOP)
            .map(|(frame, n)| {
                json!({
                    "frame": frame,
                    "self_percent": share(&self.self_counts, frame),
                    "cumulative_percent": share(&self.cumulative, frame),
                    "samples": n,
                })
            })
            .collect()
    }
}

/// A source path relative to the workspace, or to the crate registry (`crates/<name>/...`),
/// or the toolchain's (`rustc/...`); anything else unchanged.
fn portable_path(text: &str) -> String {
    let root = crate::results::workspace_root();
    let root = root.to_string_lossy();
    if let Some(rest) = text.strip_prefix(root.as_ref()) {
        return rest.trim_start_matches('/').to_owned();
    }
    if let Some((_, rest)) = text.split_once("/registry/src/")
        && let Some((_, krate)) = rest.split_once('/')
    {
        return format!("crates/{krate}");
    }
    if let Some(rest) = text.strip_prefix("/rustc/") {
        return format!("rustc/{rest}");
    }
    text.to_owned()
}

fn percent(part: isize, total: isize) -> f64 {
    if total == 0 {
        return 0.0;
    }
    (part as f64 * 1000.0 / total as f64).round() / 10.0
}

/// Runs the component's load until `duration` has passed; returns its contention view.
fn load(component: &str, duration: Duration) -> anyhow::Result<Option<serde_json::Value>> {
    let msg = sample_message();
    let ids = std::sync::atomic::AtomicU64::new(0);
    let started = Instant::now();
    let until = || started.elapsed() < duration;
    match component {
        "queue_memory" | "queue_pooled" => {
            let kind = queue_kind(component).unwrap_or(QueueType::Memory);
            const ROUND: usize = 20_000;
            let queue = Arc::new(warm_queue(kind, 1024, &msg));
            let mut messages = 0;
            while until() {
                contended(&queue, &msg, 2, 2, ROUND);
                messages += ROUND;
            }
            Ok(Some(lock_view(&queue.stats(), messages, started.elapsed())))
        }
        "worker_pool" => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            while until() {
                let queue = runtime.block_on(prefilled(QueueType::Pooled, 10_000, &msg));
                runtime.block_on(drain_with_pool(&queue, 10_000, WorkerMode::Batched));
            }
            Ok(Some(runtime_view(&runtime, started.elapsed())))
        }
        "client_baseline" | "client_pooled" => {
            let mode = if component == "client_baseline" {
                ClientMode::Baseline
            } else {
                ClientMode::Pooled
            };
            let stack = Stack::for_clients()?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let forwarder = runtime.block_on(async {
                stack.forwarder(|url| ForwarderConfig {
                    mode,
                    ..reference_forwarder(url)
                })
            });
            while until() {
                runtime.block_on(forwarder.forward_batch(distinct_copies(&msg, 64, &ids)));
            }
            Ok(Some(runtime_view(&runtime, started.elapsed())))
        }
        "gateway_http1" | "gateway_h2c" | "grpc_unary" | "grpc_stream" => {
            let protocol = match component {
                "gateway_http1" => Protocol::Http1,
                "gateway_h2c" => Protocol::H2c,
                "grpc_unary" => Protocol::GrpcUnary,
                _ => Protocol::GrpcStream,
            };
            let mut fixture = RoundTrip::start(protocol);
            while until() {
                fixture.run(100);
            }
            Ok(None)
        }
        other => anyhow::bail!(
            "unknown component `{other}`; known: {}",
            COMPONENTS.join(", ")
        ),
    }
}

/// Busy against parked time of each worker of `runtime` over `elapsed`.
fn queue_kind(component: &str) -> Option<QueueType> {
    match component {
        "queue_memory" => Some(QueueType::Memory),
        "queue_pooled" => Some(QueueType::Pooled),
        _ => None,
    }
}

/// Where a warm queue of `kind` allocates during publish+consume on one thread.
fn alloc_sites(kind: QueueType) -> serde_json::Value {
    const OPS: usize = 1000;
    let msg = sample_message();
    let queue = warm_queue(kind, 1024, &msg);
    let (sites, ()) = crate::alloc::sites::record(|| publish_consume(&queue, &msg, OPS));
    let per_op = |n: u64| n as f64 / OPS as f64;
    let total: u64 = sites.iter().map(|s| s.allocations).sum();
    json!({
        "workload": "publish+consume of the sample message on one thread, queue warm",
        "operations": OPS,
        "allocations_per_op": per_op(total),
        "dropped": crate::alloc::sites::dropped(),
        "sites": sites.iter().map(|s| json!({
            "function": s.function,
            "callers": s.callers,
            "allocations_per_op": per_op(s.allocations),
            "bytes_per_op": per_op(s.bytes),
        })).collect::<Vec<_>>(),
    })
}

fn lock_view(stats: &QueueStats, messages: usize, elapsed: Duration) -> serde_json::Value {
    let per_message = |value: u64| value as f64 / messages.max(1) as f64;
    json!({
        "elapsed_seconds": elapsed.as_secs_f64(),
        "threads": {"producers": 2, "consumers": 2},
        "messages": messages,
        "lock_waits": stats.lock_waits,
        "lock_waits_per_message": per_message(stats.lock_waits),
        "lock_wait_seconds": stats.lock_wait_nanos as f64 / 1e9,
        "lock_wait_ns_per_message": per_message(stats.lock_wait_nanos),
    })
}

fn runtime_view(runtime: &tokio::runtime::Runtime, elapsed: Duration) -> serde_json::Value {
    let metrics = runtime.metrics();
    let workers: Vec<_> = (0..metrics.num_workers())
        .map(|w| {
            let busy = metrics.worker_total_busy_duration(w);
            json!({
                "worker": w,
                "busy_seconds": busy.as_secs_f64(),
                "busy_percent": (busy.as_secs_f64() * 1000.0 / elapsed.as_secs_f64()).round() / 10.0,
                "parks": metrics.worker_park_count(w),
            })
        })
        .collect();
    json!({
        "elapsed_seconds": elapsed.as_secs_f64(),
        "workers": workers,
        "global_queue_depth_at_end": metrics.global_queue_depth(),
        "alive_tasks_at_end": metrics.num_alive_tasks(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn frames_count_as_self_when_innermost_and_once_per_stack_when_cumulative() {
        let mut counts = FrameCounts::default();
        counts.add(&stack(&["parse", "handle", "parse", "main"]), 3);
        counts.add(&stack(&["write", "main"]), 1);
        counts.add(&stack(&[]), 1);
        let summary = counts.summary("gateway");
        assert_eq!(summary["component"], "gateway");
        assert_eq!(summary["samples"], 5);
        assert_eq!(summary["frequency_hz"], 99);
        assert_eq!(
            summary["by_self"],
            json!([
                {"frame": "parse", "self_percent": 60.0, "cumulative_percent": 60.0, "samples": 3},
                {"frame": "write", "self_percent": 20.0, "cumulative_percent": 20.0, "samples": 1},
            ])
        );
        assert_eq!(
            summary["by_cumulative"],
            json!([
                {"frame": "main", "self_percent": 0.0, "cumulative_percent": 80.0, "samples": 4},
                {"frame": "handle", "self_percent": 0.0, "cumulative_percent": 60.0, "samples": 3},
                {"frame": "parse", "self_percent": 60.0, "cumulative_percent": 60.0, "samples": 3},
                {"frame": "write", "self_percent": 20.0, "cumulative_percent": 20.0, "samples": 1},
            ])
        );
    }
}
