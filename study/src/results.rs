//! Result files: every measuring command writes `reports/results/<suite>.json` in the
//! versioned schema below (documented in `docs/results-schema.md`), and the report is
//! rendered from these files alone. A figure in the report can therefore be traced to one
//! case of one file, written by the run that measured it.

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
    process::Command,
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

/// Version of the schema; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// One result file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResultFile {
    /// Always [`SCHEMA_VERSION`] when written by this code.
    pub schema_version: u32,
    /// Name of the suite; also the file name (`<suite>.json`).
    pub suite: String,
    /// Unix time (seconds) at which the run finished.
    pub created_unix: u64,
    /// The machine that ran it.
    pub machine: Machine,
    /// `git rev-parse HEAD` of the measured code, with `-dirty` when it had local changes.
    pub git_revision: String,
    /// The command that produced the file.
    pub command: String,
    /// Free-form notes about how the run was made (pinning, alternation, tools used).
    #[serde(default)]
    pub notes: BTreeMap<String, String>,
    /// What was measured.
    pub cases: Vec<Case>,
}

/// The machine a suite ran on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    /// CPU model name.
    pub cpu_model: String,
    /// Logical CPUs available.
    pub cores: usize,
    /// Operating system and kernel.
    pub os: String,
}

/// One measured case: a variant of a group, usually one side of an A/B pair.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Case {
    /// What is compared, e.g. `queue/publish_consume`.
    pub group: String,
    /// Which variant, e.g. `memory` or `pooled`.
    pub variant: String,
    /// `baseline` or `optimized` when the group is an A/B pair; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// Parameters of the case (payload size, producers, connections, ...).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Measured quantities by name (`time_per_op`, `allocs_per_op`, `p99`, ...).
    pub metrics: BTreeMap<String, Metric>,
}

/// Side of an A/B pair.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The reference implementation.
    Baseline,
    /// The optimization being measured.
    Optimized,
}

/// One measured quantity: its unit, a summary, and the samples behind it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Metric {
    /// Unit, e.g. `ns`, `instructions`, `allocations`, `bytes`, `req/s`, `ms`, `ratio`.
    pub unit: String,
    /// Median of the samples (the value itself for a single or exact measurement).
    pub median: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Every sample, in the order measured.
    #[serde(default)]
    pub samples: Vec<f64>,
}

impl Metric {
    /// A metric summarizing `samples` (at least one).
    pub fn from_samples(unit: &str, samples: Vec<f64>) -> Metric {
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let median = match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Metric {
            unit: unit.to_owned(),
            median,
            min: sorted.first().copied().unwrap_or(f64::NAN),
            max: sorted.last().copied().unwrap_or(f64::NAN),
            samples,
        }
    }

    /// An exact, repeatable measurement (an instruction or allocation count).
    pub fn exact(unit: &str, value: f64) -> Metric {
        Metric::from_samples(unit, vec![value])
    }
}

impl Case {
    /// A case of `group` / `variant` with no metrics yet.
    pub fn new(group: &str, variant: &str, side: Option<Side>) -> Case {
        Case {
            group: group.to_owned(),
            variant: variant.to_owned(),
            side,
            params: BTreeMap::new(),
            metrics: BTreeMap::new(),
        }
    }

    /// Adds a parameter.
    pub fn param(mut self, key: &str, value: impl ToString) -> Case {
        self.params.insert(key.to_owned(), value.to_string());
        self
    }

    /// Adds a metric.
    pub fn metric(mut self, name: &str, metric: Metric) -> Case {
        self.metrics.insert(name.to_owned(), metric);
        self
    }

    /// The median of its metric `name`, if it has one.
    pub fn median(&self, name: &str) -> Option<f64> {
        Some(self.metrics.get(name)?.median)
    }
}

impl ResultFile {
    /// An empty result file for `suite`, made by `command`, on this machine and revision.
    pub fn new(suite: &str, command: &str) -> ResultFile {
        ResultFile {
            schema_version: SCHEMA_VERSION,
            suite: suite.to_owned(),
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            machine: Machine::this(),
            git_revision: git_revision(),
            command: command.to_owned(),
            notes: BTreeMap::new(),
            cases: Vec::new(),
        }
    }

    /// Writes `<dir>/<suite>.json` (pretty, with a trailing newline); returns its path.
    pub fn write(&self, dir: &Path) -> io::Result<PathBuf> {
        fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.json", self.suite));
        let mut text = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
        text.push('\n');
        fs::write(&path, text)?;
        Ok(path)
    }

    /// Reads a result file, refusing other schema versions.
    pub fn read(path: &Path) -> io::Result<ResultFile> {
        let text = fs::read_to_string(path)?;
        ResultFile::parse(&text, &path.display().to_string())
    }

    /// Parses the text of a result file read from `origin` (named in errors), refusing
    /// other schema versions.
    pub fn parse(text: &str, origin: &str) -> io::Result<ResultFile> {
        let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidData, message);
        let file: ResultFile =
            serde_json::from_str(text).map_err(|err| invalid(format!("{origin}: {err}")))?;
        if file.schema_version != SCHEMA_VERSION {
            return Err(invalid(format!(
                "{origin}: schema version {} (expected {SCHEMA_VERSION})",
                file.schema_version
            )));
        }
        Ok(file)
    }
}

/// `path` relative to the workspace root when it lies inside it, so that result files
/// name no directory of a particular machine.
pub fn shown_path(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The default directory of result files: `reports/results` at the workspace root.
pub fn default_dir() -> PathBuf {
    workspace_root().join("reports").join("results")
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

impl Machine {
    /// Describes the machine this runs on.
    pub fn this() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
            .map(|(_, model)| model.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Machine {
            cpu_model,
            // Every CPU of the machine, not only those this process may use (a pinned
            // generator sees one).
            cores: cpuinfo
                .lines()
                .filter(|l| l.starts_with("processor"))
                .count()
                .max(1),
            os: format!("{} {}", std::env::consts::OS, kernel.trim()),
        }
    }
}

fn git_revision() -> String {
    let root = workspace_root();
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = run(&["rev-parse", "HEAD"]) else {
        return "unknown".to_owned();
    };
    // Result files and reports are what a run writes; only changes elsewhere mean the
    // measured code differs from the commit.
    let dirty = run(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        ":!reports",
    ])
    .is_some_and(|s| !s.is_empty());
    if dirty { format!("{head}-dirty") } else { head }
}
