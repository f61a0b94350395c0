//! Running cargo and other programs from xtask, at the workspace root.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, bail};

/// The workspace root (the parent of the xtask crate).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `cargo` as the one running xtask (`$CARGO`), at the workspace root, without the
/// variables `cargo run` gave xtask: build scripts that watch them (ring's watches
/// `CARGO_PKG_NAME`) would otherwise rebuild, here and again in the next `cargo` typed at a
/// shell.
pub(crate) fn cargo_command(args: &[&str]) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(args).current_dir(workspace_root());
    const SET_BY_CARGO_RUN: [&str; 5] = [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
    ];
    for (name, _) in std::env::vars_os() {
        if SET_BY_CARGO_RUN
            .iter()
            .any(|set| name.to_string_lossy().starts_with(set))
        {
            command.env_remove(&name);
        }
    }
    command
}

/// Runs cargo with `args`, its output shown; fails when cargo does.
pub(crate) fn cargo(args: &[&str]) -> anyhow::Result<()> {
    eprintln!("$ cargo {}", args.join(" "));
    let status = cargo_command(args)
        .status()
        .with_context(|| format!("cannot run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Runs cargo with `args`, its output appended to `log`; fails (naming the log) when cargo does.
pub(crate) fn cargo_logged(args: &[&str], log: &Path) -> anyhow::Result<()> {
    run_logged(cargo_command(args), log)
}

/// Runs `command`, its output appended to `log`; fails (naming the log) when it does.
pub(crate) fn run_logged(mut command: Command, log: &Path) -> anyhow::Result<()> {
    let file = File::options().create(true).append(true).open(log)?;
    let shown = format!("{command:?}");
    let status = command
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file))
        .status()
        .with_context(|| format!("cannot run {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status}); see {}", log.display());
    }
    Ok(())
}

/// Writes `text` to stdout; a reader that went away (`| head`) is not an error.
pub(crate) fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(()),
    }
}
