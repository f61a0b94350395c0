//! The original Definition of Done as data ([`CHECKLIST`]): each box with what proves it. A
//! box is ticked only when a result file (or a profile) proves it, and the proof names it.

use study::{
    cases::{Suite, group},
    catalogue::COMPONENTS,
    variant::Variant,
};

use super::{CheckItem, Evidence, short};

/// One box of the checklist.
#[derive(Debug, Clone, Copy)]
struct Check {
    text: &'static str,
    proof: Proof,
    /// What is missing when the proof is (unless the proof says it itself).
    missing: &'static str,
}

/// What proves a box.
#[derive(Debug, Clone, Copy)]
enum Proof {
    /// The worker-pool benchmark has rounds in the criterion results.
    WorkerPoolRounds,
    /// Every suite of the benchmarks wrote its file.
    BenchSuites,
    /// A CPU profile of every component.
    CpuProfiles,
    /// The pooled queue allocates less than the baseline.
    FewerQueueAllocations,
    /// Profile top lists.
    TopLists,
    /// Flame graphs.
    FlameGraphs,
    /// The pooled queue allocates nothing and takes less time than the baseline.
    ObjectPool,
    /// A passing check of the smoke suite, saying what it showed.
    Smoke(&'static str, &'static str),
    /// The optimized side of a pair has less of a metric than its baseline; the proof reads
    /// `<file>: <who> <ratio>× the baseline's <what>`.
    Cheaper {
        suite: Suite,
        group: &'static str,
        metric: &'static str,
        who: &'static str,
        what: &'static str,
    },
    /// The README has a gRPC section.
    ReadmeGrpc,
    /// Proven by this text.
    Given(&'static str),
    /// Not proven by any file.
    Unrecorded,
}

const fn check(text: &'static str, proof: Proof, missing: &'static str) -> Check {
    Check {
        text,
        proof,
        missing,
    }
}

/// The Definition of Done, section by section.
const CHECKLIST: [(&str, &[Check]); 3] = [
    (
        "Step 6: profiling",
        &[
            check(
                "BenchmarkWorkerPool completes",
                Proof::WorkerPoolRounds,
                "no worker_pool case in results/criterion.json",
            ),
            check(
                "All benchmarks run without errors",
                Proof::BenchSuites,
                "a suite's result file is missing",
            ),
            check("CPU profiles for every component", Proof::CpuProfiles, ""),
            check(
                "Memory profiles show the optimizations",
                Proof::FewerQueueAllocations,
                "no allocation counts of the queue pair",
            ),
            check(
                "Hot paths identified and documented",
                Proof::TopLists,
                "no profile top lists (`cargo xtask profile`)",
            ),
            check(
                "Flame graphs created",
                Proof::FlameGraphs,
                "no flame graphs (`cargo xtask profile`)",
            ),
            check(
                "Object pool for DataMessage",
                Proof::ObjectPool,
                "no measurement of the pooled queue",
            ),
        ],
    ),
    (
        "Step 7: network",
        &[
            check(
                "gRPC server works (port 50051)",
                Proof::Smoke(
                    group::SMOKE_GRPC_REFLECTION,
                    "reflection lists diplom.v1.IngestService",
                ),
                "no passing gRPC check in results/smoke.json (`cargo xtask smoke`)",
            ),
            check(
                "HTTP/2 works (curl --http2-prior-knowledge)",
                Proof::Smoke(group::SMOKE_H2C_HEALTH, "/health over h2c prior knowledge"),
                "no passing h2c check in results/smoke.json (`cargo xtask smoke`)",
            ),
            check(
                "Connection pooling (200 idle connections per host)",
                Proof::Cheaper {
                    suite: Suite::Criterion,
                    group: group::CLIENT_MODE,
                    metric: "time_per_op",
                    who: "pooled client",
                    what: "time per message",
                },
                "no client/mode pair in results/criterion.json",
            ),
            check(
                "Trace endpoint shows latency phases",
                Proof::Smoke(group::SMOKE_TRACE, "/api/v1/trace answered with its phases"),
                "no passing trace check in results/smoke.json (`cargo xtask smoke`)",
            ),
            check(
                "Buffer pools for request encoding",
                Proof::Cheaper {
                    suite: Suite::Allocations,
                    group: group::CLIENT_MODE,
                    metric: "bytes_per_op",
                    who: "pooled client allocates",
                    what: "bytes per message",
                },
                "no client/mode allocation counts",
            ),
            check(
                "All tests pass",
                Proof::Unrecorded,
                "test runs are not recorded in a result file (CI runs them on every change)",
            ),
        ],
    ),
    (
        "Documentation",
        &[
            check(
                "This report",
                Proof::Given("rendered by `cargo xtask report` from results/*.json"),
                "",
            ),
            check(
                "README documents the gRPC endpoint",
                Proof::ReadmeGrpc,
                "README.md has no gRPC section",
            ),
            check(
                "Commands for every step",
                Proof::Given(
                    "`cargo xtask bench | profile | report | gate | smoke` replace the Makefile targets",
                ),
                "",
            ),
        ],
    ),
];

/// The suites whose files a complete benchmark run writes.
const BENCH_SUITES: [Suite; 3] = [Suite::Criterion, Suite::Callgrind, Suite::Allocations];

impl Evidence {
    /// The original Definition of Done.
    pub(crate) fn checklist(&self) -> Vec<(&'static str, Vec<CheckItem>)> {
        CHECKLIST
            .iter()
            .map(|(section, checks)| {
                let items = checks.iter().map(|c| self.tick(c)).collect();
                (*section, items)
            })
            .collect()
    }

    fn tick(&self, check: &Check) -> CheckItem {
        let (done, evidence) = match self.prove(check.proof) {
            Ok(proof) => (true, proof),
            Err(None) => (false, format!("not proven: {}", check.missing)),
            Err(Some(missing)) => (false, format!("not proven: {missing}")),
        };
        CheckItem {
            text: check.text,
            done,
            evidence,
        }
    }

    /// The proof, or what is missing when the check's own text does not say it.
    fn prove(&self, proof: Proof) -> Result<String, Option<String>> {
        let queue = |variant: Variant| {
            self.value(
                Suite::Allocations.as_str(),
                group::QUEUE_PUBLISH_CONSUME,
                variant.as_str(),
                "allocs_per_op",
            )
        };
        match proof {
            Proof::WorkerPoolRounds => {
                let case = self.case(
                    Suite::Criterion.as_str(),
                    group::WORKER_POOL,
                    Variant::Memory.as_str(),
                );
                let rounds = case.and_then(|c| c.metrics.get("time_per_op"));
                let n = rounds.ok_or(None)?.samples.len();
                Ok(format!(
                    "results/criterion.json: worker_pool, {n} rounds per queue"
                ))
            }
            Proof::BenchSuites => self.bench_suites(),
            Proof::CpuProfiles => self.cpu_profiles(),
            Proof::FewerQueueAllocations => {
                match (queue(Variant::Pooled), queue(Variant::Memory)) {
                    (Some(p), Some(m)) if p < m => Ok(format!(
                        "results/allocations.json: queue {} → {} allocations per message",
                        short(m),
                        short(p)
                    )),
                    _ => Err(None),
                }
            }
            Proof::TopLists => self
                .has_profile(".top.json")
                .then(|| "profiles/*.top.json, summarized below".to_owned())
                .ok_or(None),
            Proof::FlameGraphs => self.flame_graphs(),
            Proof::ObjectPool => self.object_pool(queue(Variant::Pooled)),
            Proof::Smoke(check, says) => self.smoke_proof(check, says),
            Proof::Cheaper {
                suite,
                group,
                metric,
                who,
                what,
            } => {
                let pair = study::pairs::pair_of(group).ok_or(None)?;
                let ratio = self.ratio(
                    suite.as_str(),
                    group,
                    pair.baseline.as_str(),
                    pair.optimized[0].as_str(),
                    metric,
                );
                let r = ratio.filter(|r| *r < 1.0).ok_or(None)?;
                Ok(format!(
                    "{}: {who} {r:.2}× the baseline's {what}",
                    suite.file()
                ))
            }
            Proof::ReadmeGrpc => self
                .readme_has_grpc
                .then(|| "README.md, section gRPC".to_owned())
                .ok_or(None),
            Proof::Given(text) => Ok(text.to_owned()),
            Proof::Unrecorded => Err(None),
        }
    }

    fn bench_suites(&self) -> Result<String, Option<String>> {
        let written: Vec<&str> = BENCH_SUITES
            .iter()
            .map(|s| s.as_str())
            .filter(|s| self.files.contains_key(*s))
            .collect();
        (written.len() == BENCH_SUITES.len())
            .then(|| {
                format!(
                    "results/{{{}}}.json written by complete runs",
                    written.join(",")
                )
            })
            .ok_or(None)
    }

    fn cpu_profiles(&self) -> Result<String, Option<String>> {
        let profiled = COMPONENTS
            .iter()
            .filter(|c| self.has_profile(&format!("{c}.pb")))
            .count();
        if profiled == COMPONENTS.len() {
            Ok(format!("profiles/*.pb for {profiled} components"))
        } else {
            Err(Some(format!(
                "{profiled} of {} components profiled (`cargo xtask profile`)",
                COMPONENTS.len()
            )))
        }
    }

    fn flame_graphs(&self) -> Result<String, Option<String>> {
        let count = COMPONENTS
            .iter()
            .filter(|c| self.has_profile(&format!("{c}.svg")))
            .count();
        (count > 0)
            .then(|| format!("profiles/*.svg ({count})"))
            .ok_or(None)
    }

    fn object_pool(&self, pooled_allocs: Option<f64>) -> Result<String, Option<String>> {
        let time = self.ratio(
            Suite::Criterion.as_str(),
            group::QUEUE_PUBLISH_CONSUME,
            Variant::Memory.as_str(),
            Variant::Pooled.as_str(),
            "time_per_op",
        );
        pooled_allocs
            .filter(|a| *a == 0.0)
            .and(time)
            .filter(|r| *r < 1.0)
            .map(|r| format!("results/allocations.json: 0 allocations per message; results/criterion.json: {r:.2}× the baseline's time"))
            .ok_or(None)
    }

    fn smoke_proof(&self, check: &str, says: &str) -> Result<String, Option<String>> {
        match self.smoke(check) {
            Some(true) => Ok(format!("results/smoke.json: {says}")),
            _ => Err(None),
        }
    }
}
