//! Reads the estimates criterion leaves in `target/criterion/<group>/<variant>/new/`, so a
//! round of the criterion suites can be turned into samples of a result file.

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
};

/// Median time per iteration of every benchmark under `dir`, in nanoseconds, keyed by
/// (group, variant). Every suite here runs one operation per iteration.
pub fn read_medians(dir: &Path) -> io::Result<BTreeMap<(String, String), f64>> {
    let mut found = Vec::new();
    collect(dir, &mut found)?;
    let mut medians = BTreeMap::new();
    for new_dir in found {
        let benchmark: serde_json::Value = read_json(&new_dir.join("benchmark.json"))?;
        let estimates: serde_json::Value = read_json(&new_dir.join("estimates.json"))?;
        let group = benchmark["group_id"].as_str().unwrap_or_default();
        let variant = benchmark["value_str"]
            .as_str()
            .or_else(|| benchmark["function_id"].as_str())
            .unwrap_or_default();
        if let Some(median) = estimates["median"]["point_estimate"].as_f64() {
            medians.insert((report_group(group), variant.to_owned()), median);
        }
    }
    Ok(medians)
}

/// Criterion groups are named with dots (`queue.publish_consume`) because it turns slashes
/// into directories; the report uses slashes.
fn report_group(group: &str) -> String {
    group.replacen('.', "/", 1)
}

fn read_json(path: &Path) -> io::Result<serde_json::Value> {
    let text = fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|err| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {err}", path.display()),
        )
    })
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "new") && path.join("estimates.json").is_file()
            {
                out.push(path);
            } else {
                collect(&path, out)?;
            }
        }
    }
    Ok(())
}
