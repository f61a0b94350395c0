//! Reading the counts gungraun writes back into cases of a result file.

use crate::{
    cases::group,
    catalogue::{NEW_CONNECTIONS, OPS, ROUND_TRIPS},
};

/// Reads the summaries gungraun wrote under `dir` (its output directory for this bench,
/// e.g. `target/gungraun/harness/callgrind`) into cases with instructions per operation.
pub fn read_summaries(dir: &std::path::Path) -> std::io::Result<Vec<crate::results::Case>> {
    let mut files = Vec::new();
    collect_summaries(dir, &mut files)?;
    files.sort();
    let mut cases = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path)?;
        let summary: serde_json::Value = serde_json::from_str(&text).map_err(|err| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {err}", path.display()),
            )
        })?;
        let function = summary["function_name"].as_str().unwrap_or_default();
        let variant = summary["id"].as_str().unwrap_or_default();
        let instructions = summary["profiles"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["tool"] == "Callgrind")
            .and_then(|p| p["data"]["total"]["metrics"]["Ir"]["values"]["new"].as_f64());
        let (Some(instructions), Some((group, ops))) = (instructions, group_of(function)) else {
            continue;
        };
        cases.push(
            crate::results::Case::new(group, variant, crate::pairs::side(group, variant))
                .param("operations", ops)
                .metric(
                    "instructions_total",
                    crate::results::Metric::exact("instructions", instructions),
                )
                .metric(
                    "instructions_per_op",
                    crate::results::Metric::exact("instructions", instructions / ops as f64),
                ),
        );
    }
    Ok(cases)
}

/// The report group of a benchmark function, and how many operations it performs.
fn group_of(function: &str) -> Option<(&'static str, usize)> {
    Some(match function {
        "queue_publish_consume" => (group::QUEUE_PUBLISH_CONSUME, OPS),
        "codec_encode" => (group::CODEC_ENCODE, OPS),
        "codec_decode" => (group::CODEC_DECODE, OPS),
        "worker_pool_run" => (group::WORKER_POOL, OPS),
        "worker_mode_run" => (group::WORKER_POOL_MODE, OPS),
        "round_trip" => (group::PROTOCOL_ROUND_TRIP, ROUND_TRIPS),
        "new_connection" => (group::HOP_NEW_CONNECTION, NEW_CONNECTIONS),
        _ => return None,
    })
}

fn collect_summaries(
    dir: &std::path::Path,
    out: &mut Vec<std::path::PathBuf>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_summaries(&path, out)?;
        } else if path.file_name().is_some_and(|n| n == "summary.json") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::read_summaries;
    use crate::{catalogue::NEW_CONNECTIONS, results::Side};

    /// A summary as gungraun writes it, with only the fields read here.
    fn summary(function: &str, id: &str, instructions: f64) -> String {
        serde_json::json!({
            "function_name": function,
            "id": id,
            "profiles": [{
                "tool": "Callgrind",
                "data": {"total": {"metrics": {"Ir": {"values": {"new": instructions}}}}}
            }]
        })
        .to_string()
    }

    #[test]
    fn new_connection_benches_are_the_handshake_pair_per_connection() {
        let dir = std::env::temp_dir().join(format!("study-callgrind-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (id, instructions) in [("plain", 1e6), ("tls_full", 4e7)] {
            let at = dir.join("hop").join(format!("new_connection.{id}"));
            std::fs::create_dir_all(&at).unwrap();
            std::fs::write(
                at.join("summary.json"),
                summary("new_connection", id, instructions),
            )
            .unwrap();
        }
        let cases = read_summaries(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(cases.len(), 2, "{cases:?}");
        let plain = &cases[0];
        assert_eq!(
            (plain.group.as_str(), plain.variant.as_str(), plain.side),
            ("hop/new_connection", "plain", Some(Side::Baseline))
        );
        assert_eq!(plain.params["operations"], NEW_CONNECTIONS.to_string());
        assert_eq!(
            plain.metrics["instructions_per_op"].median,
            1e6 / NEW_CONNECTIONS as f64
        );
        assert_eq!(cases[1].side, Some(Side::Optimized));
    }
}
