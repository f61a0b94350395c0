//! Sets of result files as `export` and `compare` read them: a directory, or the committed
//! `reports/results/` of a git revision.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};
use study::results::ResultFile;

use crate::cmd::workspace_root;

/// Where results are kept in the repository.
const COMMITTED: &str = "reports/results";

/// The result files of `source`: a directory (relative to the workspace when not absolute)
/// when one exists by that name, otherwise a git revision whose committed results are read.
pub(crate) fn read_set(source: &str) -> anyhow::Result<Vec<ResultFile>> {
    let dir = workspace_root().join(source);
    if dir.is_dir() {
        return read_dir(&dir);
    }
    read_revision(source)
}

/// Every `*.json` result file directly in `dir`, by file name.
pub(crate) fn read_dir(dir: &Path) -> anyhow::Result<Vec<ResultFile>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| ResultFile::read(p).with_context(|| format!("reading {}", p.display())))
        .collect()
}

/// The result files committed under `reports/results/` at `revision`.
fn read_revision(revision: &str) -> anyhow::Result<Vec<ResultFile>> {
    let listing = git(&["ls-tree", "--name-only", &format!("{revision}:{COMMITTED}")])
        .with_context(|| {
            format!("`{revision}` is neither a directory nor a git revision with {COMMITTED}/")
        })?;
    let mut files = Vec::new();
    for name in listing.lines().filter(|n| n.ends_with(".json")) {
        let spec = format!("{revision}:{COMMITTED}/{name}");
        let text = git(&["show", &spec])?;
        files.push(ResultFile::parse(&text, &spec)?);
    }
    if files.is_empty() {
        bail!("{revision}: no result files in {COMMITTED}/");
    }
    Ok(files)
}

fn git(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(workspace_root())
        .output()
        .context("cannot run git")?;
    if !output.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}
