//! The HTML page in a real browser: headless Chromium opens the page rendered from the
//! committed results, and the test fails on any console message (a script error, an error a
//! page logs) or any file the page asks for besides itself. The same checks are first run on
//! a page with a deliberate console error and a missing image, so the test is known to catch
//! them. Chromium comes from the Debian package, installed by `scripts/ensure-tools` when
//! missing; a machine that cannot get it skips the test and says why.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use super::{Paths, html::PAGE, render};
use crate::{cmd::workspace_root, tools};

/// How long one Chromium run may take before `timeout` kills it and its children.
const BROWSER_TIMEOUT: &str = "60s";

/// Whether `chromium` is installed, installing it once when it is not.
fn chromium_available(test: &str) -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    let available = *AVAILABLE.get_or_init(|| {
        tools::which("chromium").is_some()
            || (tools::ensure(&["chromium"]).is_ok() && tools::which("chromium").is_some())
    });
    if !available {
        eprintln!(
            "skipping {test}: `chromium` is not installed and `scripts/ensure-tools chromium` \
             could not install it"
        );
    }
    available
}

/// What one Chromium run gave: its standard output and its log.
struct Run {
    stdout: String,
    log: String,
}

/// Opens `page` in headless Chromium with a fresh profile and `action` (`--dump-dom`,
/// `--screenshot=...`). The flags keep Chromium off the network: this machine has none, and
/// a browser that tries it waits.
fn open(page: &Path, action: &str) -> Run {
    // A profile of its own per run: Chromium refuses a profile another instance holds.
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let profile = std::env::temp_dir().join(format!(
        "xtask-chromium-profile-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&profile);
    let output = Command::new("timeout")
        .args(["--kill-after=5s", BROWSER_TIMEOUT, "chromium"])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            // Logs every file the page loads, so that a load besides the page shows.
            "--vmodule=file_url_loader_factory=1",
            "--virtual-time-budget=2000",
            "--window-size=1280,4000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(action)
        .arg(url(page))
        .output()
        .expect("running chromium under timeout");
    let _ = fs::remove_dir_all(&profile);
    let run = Run {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        log: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        output.status.success(),
        "chromium {action} {} failed ({}):\n{}",
        page.display(),
        output.status,
        run.log
    );
    run
}

fn url(page: &Path) -> String {
    format!("file://{}", page.display())
}

/// The log lines that show a problem with `page`: console messages (errors a script threw
/// or logged) and files loaded besides the page itself.
fn problems(log: &str, page: &Path) -> Vec<String> {
    let own = format!("FileURLLoader::Start: {}", url(page));
    log.lines()
        .filter(|line| {
            line.contains(":CONSOLE")
                || line.contains("Uncaught")
                || (line.contains("FileURLLoader::Start: ") && !line.trim_end().ends_with(&own))
        })
        .map(str::to_owned)
        .collect()
}

/// The directory cargo builds into (the test binary runs from `<target>/debug/deps/`).
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .filter(|dir| dir.is_dir())
        .unwrap_or_else(|| workspace_root().join("target"))
}

#[test]
fn chromium_reports_a_console_error_and_a_missing_image() {
    if !chromium_available("chromium_reports_a_console_error_and_a_missing_image") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("xtask-chromium-bad-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let page = dir.join("bad.html");
    fs::write(
        &page,
        "<!DOCTYPE html><html><head><title>Bad</title></head><body>\
         <img src=\"missing.png\"><script>console.error(\"deliberate\");</script></body></html>",
    )
    .unwrap();
    let run = open(&page, "--dump-dom");
    let found = problems(&run.log, &page);
    let _ = fs::remove_dir_all(&dir);
    assert!(
        found.iter().any(|l| l.contains("\"deliberate\"")),
        "{found:?}\n{}",
        run.log
    );
    assert!(
        found.iter().any(|l| l.ends_with("missing.png")),
        "{found:?}\n{}",
        run.log
    );
    assert_eq!(found.len(), 2, "{found:?}");
}

/// The page of the committed results opens without a console message or a load besides
/// itself, shows its title and its inline charts, and makes a screenshot
/// (`target/report-screenshot.png`) a person can look at.
#[test]
fn the_report_page_opens_in_chromium_without_errors() {
    if !chromium_available("the_report_page_opens_in_chromium_without_errors") {
        return;
    }
    let rendered = render(&Paths::project()).unwrap();
    let target = target_dir();
    let page = target.join("report").join(PAGE);
    fs::create_dir_all(page.parent().unwrap()).unwrap();
    fs::write(&page, &rendered[PAGE]).unwrap();

    let run = open(&page, "--dump-dom");
    let found = problems(&run.log, &page);
    assert!(found.is_empty(), "{found:#?}");
    assert!(
        run.stdout
            .contains("<title>Phase 3: optimization and profiling — results</title>"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("<svg "), "no inline chart in the DOM");

    let screenshot = target.join("report-screenshot.png");
    let _ = fs::remove_file(&screenshot);
    let run = open(&page, &format!("--screenshot={}", screenshot.display()));
    let found = problems(&run.log, &page);
    assert!(found.is_empty(), "{found:#?}");
    let size = fs::metadata(&screenshot).map_or(0, |m| m.len());
    assert!(size > 0, "no screenshot at {}", screenshot.display());
}
