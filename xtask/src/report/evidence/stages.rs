//! Where the time goes: `results/stages.json` (the server's CPU per message by stage, per
//! front door, from profiles at capacity) beside the bare server's CPU per message
//! (`results/load.json`), and the stage a missed target is blamed on.

use serde::Serialize;
use study::{
    cases::group,
    catalogue::{STAGES, UNSAMPLED},
    variant::Variant,
};

use super::Evidence;

/// One front door's CPU per message, stage by stage.
#[derive(Debug, Serialize)]
pub(crate) struct StageRow {
    protocol: String,
    rate: String,
    /// µs per message in each of [`STAGES`], in order.
    stages: Vec<String>,
    /// µs per message the sampler could not see (libc and the kernel).
    unsampled: String,
    total: String,
    /// The bare server's CPU per message at its capacity.
    bare: String,
    /// The stage that costs the most, with its share of the total.
    largest: String,
    /// The share of the expected samples each profile kept (front door / processor).
    kept: String,
}

impl Evidence {
    /// The stage names, in order, for the table's header.
    pub(crate) fn stage_names(&self) -> Vec<&'static str> {
        STAGES.iter().map(|(_, name)| *name).collect()
    }

    /// One row per profiled front door.
    pub(crate) fn stages(&self) -> Vec<StageRow> {
        let Some(file) = self.files.get("stages") else {
            return Vec::new();
        };
        file.cases
            .iter()
            .map(|case| {
                let get = |key: &str| case.metrics.get(key).map(|m| m.median);
                let micros =
                    |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"));
                let bare = self
                    .load_case(
                        group::LOAD_VS_BARE,
                        Variant::Bare.as_str(),
                        Some(&case.variant),
                        &[("measure", "capacity")],
                    )
                    .and_then(|c| Some(c.metrics.get("server_cpu_per_msg")?.median));
                StageRow {
                    protocol: case.variant.clone(),
                    rate: get("rate").map_or_else(|| "–".to_owned(), super::short),
                    stages: STAGES.iter().map(|(key, _)| micros(get(key))).collect(),
                    unsampled: micros(get(UNSAMPLED)),
                    total: micros(get("total")),
                    bare: micros(bare),
                    largest: self.blame(&case.variant).unwrap_or_else(|| "–".to_owned()),
                    kept: ["front", "processor"]
                        .iter()
                        .map(|n| {
                            get(&format!("{n}_samples_kept"))
                                .map_or_else(|| "–".to_owned(), |k| format!("{:.0}%", k * 100.0))
                        })
                        .collect::<Vec<_>>()
                        .join(" / "),
                }
            })
            .collect()
    }

    /// The stage of `protocol` that costs the most, and its share of the server's CPU per
    /// message: what a profile blames when the front door misses a target.
    pub(crate) fn blame(&self, protocol: &str) -> Option<String> {
        let case = self
            .files
            .get("stages")?
            .cases
            .iter()
            .find(|c| c.variant == protocol)?;
        let total = case.metrics.get("total")?.median;
        let (name, value) = STAGES
            .iter()
            .chain(&[(UNSAMPLED, "libc and kernel")])
            .filter_map(|(key, name)| Some((*name, case.metrics.get(*key)?.median)))
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        (total > 0.0).then(|| format!("{name} ({:.0}%)", value / total * 100.0))
    }
}
