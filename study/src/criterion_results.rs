//! Reads the estimates criterion leaves in `target/criterion/<group>/<variant>/new/`, so a
//! round of the criterion suites can be turned into samples of a result file. Criterion's
//! own history (`base/`, `change/`, the reports) stays where it is: a round reads only the
//! estimates written since it began.

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
    time::SystemTime,
};

/// Median time per iteration of every benchmark under `dir` whose estimates were written at
/// or after `since`, in nanoseconds, keyed by (group, variant). Every suite here runs one
/// operation per iteration.
pub fn read_medians(dir: &Path, since: SystemTime) -> io::Result<BTreeMap<(String, String), f64>> {
    let mut found = Vec::new();
    collect(dir, &mut found)?;
    let mut medians = BTreeMap::new();
    for new_dir in found {
        let written = fs::metadata(new_dir.join("estimates.json"))?.modified()?;
        if written < since {
            continue;
        }
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

/// The name of a benchmark group for criterion: the report's group (one of
/// [`crate::cases::group`]) with its slash as a dot; read back by [`read_medians`].
pub fn criterion_group(group: &str) -> String {
    group.replacen('/', ".", 1)
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

#[cfg(test)]
mod tests {
    use std::{fs, time::Duration};

    fn write_estimate(dir: &std::path::Path, group: &str, variant: &str, median: f64) {
        let new = dir.join(group).join(variant).join("new");
        fs::create_dir_all(&new).unwrap();
        let benchmark = serde_json::json!({"group_id": group, "function_id": variant});
        fs::write(new.join("benchmark.json"), benchmark.to_string()).unwrap();
        let estimates = serde_json::json!({"median": {"point_estimate": median}});
        fs::write(new.join("estimates.json"), estimates.to_string()).unwrap();
    }

    #[test]
    fn a_round_reads_only_what_it_wrote_and_history_stays() {
        let dir = std::env::temp_dir().join(format!("criterion-read-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        write_estimate(&dir, "queue.old", "memory", 5.0);
        let base = dir.join("queue.old/memory/base");
        fs::create_dir_all(&base).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let since = std::time::SystemTime::now();
        std::thread::sleep(Duration::from_millis(20));
        write_estimate(&dir, "queue.publish_consume", "pooled", 7.0);
        let medians = super::read_medians(&dir, since).unwrap();
        assert_eq!(medians.len(), 1, "{medians:?}");
        assert_eq!(
            medians[&("queue/publish_consume".to_owned(), "pooled".to_owned())],
            7.0
        );
        assert!(base.is_dir(), "criterion's history is left in place");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_group_named_for_criterion_reads_back_as_itself() {
        use crate::cases::group;
        for name in [
            group::QUEUE_PUBLISH_CONSUME,
            group::WORKER_POOL,
            group::WORKER_POOL_MODE,
        ] {
            assert_eq!(super::report_group(&super::criterion_group(name)), name);
        }
    }
}
