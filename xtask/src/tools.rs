//! External tools the measuring commands need, installed on demand by the project's own
//! scripts: Debian packages through `scripts/ensure-tools`, and the gungraun runner, whose
//! version must equal the `gungraun` library's (read from the workspace manifest).

use std::process::Command;

use anyhow::{Context, bail};

use crate::cmd::workspace_root;

/// Makes sure each `command[=package]` is installed.
pub(crate) fn ensure(specs: &[&str]) -> anyhow::Result<()> {
    let script = workspace_root().join("scripts/ensure-tools");
    let status = Command::new("bash")
        .arg(&script)
        .args(specs)
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !status.success() {
        bail!("missing tools: {}", specs.join(" "));
    }
    Ok(())
}

/// The path of `command` on `PATH`, if it is there.
pub(crate) fn which(command: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(command))
            .find(|path| path.is_file())
    })
}

/// The gungraun version the workspace pins (`gungraun = "=X.Y.Z"`).
pub(crate) fn gungraun_version() -> anyhow::Result<String> {
    let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml"))?;
    manifest
        .lines()
        .find_map(|line| line.trim().strip_prefix("gungraun = \"="))
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
        .context("the workspace manifest pins no gungraun version")
}

/// Installs valgrind and the gungraun runner matching the library, when missing.
pub(crate) fn ensure_callgrind() -> anyhow::Result<()> {
    ensure(&["valgrind"])?;
    let version = gungraun_version()?;
    let installed = Command::new("gungraun-runner")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if installed.split_whitespace().any(|word| word == version) {
        return Ok(());
    }
    eprintln!("installing gungraun-runner {version} (a few minutes, once)");
    let status = crate::cmd::cargo_command(&[
        "install",
        "gungraun-runner",
        "--version",
        &version,
        "--locked",
    ])
    .status()
    .context("cannot run cargo install")?;
    if !status.success() {
        bail!("cargo install gungraun-runner {version} failed");
    }
    Ok(())
}
