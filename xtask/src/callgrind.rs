//! Running the callgrind suite and reading its counts back, for `bench` and `gate`.

use std::path::Path;

use anyhow::Context;
use study::results::ResultFile;

use crate::{
    cmd::{cargo, cargo_logged, workspace_root},
    tools,
};

/// Runs `harness/benches/callgrind.rs` through gungraun (installing what it needs) and returns its
/// counts as a result file made by `command`. With `log`, cargo's output goes there.
pub(crate) fn measure(command: &str, log: Option<&Path>) -> anyhow::Result<ResultFile> {
    tools::ensure_callgrind()?;
    let out = workspace_root().join("target/gungraun/harness/callgrind");
    let _ = std::fs::remove_dir_all(&out);
    let args = [
        "bench",
        "-p",
        "harness",
        "--bench",
        "callgrind",
        "--",
        "--save-summary=json",
    ];
    match log {
        Some(log) => cargo_logged(&args, log)?,
        None => cargo(&args)?,
    }
    let mut file = ResultFile::new("callgrind", command);
    file.notes.insert(
        "tool".into(),
        format!(
            "gungraun {} (valgrind callgrind)",
            tools::gungraun_version()?
        ),
    );
    file.cases = study::callgrind::read_summaries(&out).context("reading gungraun summaries")?;
    Ok(file)
}
