//! The `harness load` command: a scenario file plus overrides in, the JSON report on
//! stdout, and an exit status scripts can rely on with `--fail-on-error`.

use std::process::Command;

use crate::servers::TestServer;

fn load(scenario: &std::path::Path, target: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["load", "--scenario"])
        .arg(scenario)
        .args(["--target", target, "--duration", "0.3", "--warmup", "0"])
        .args(["--json", "-", "--fail-on-error"])
        .output()
        .expect("run harness load")
}

#[test]
fn load_command_prints_the_json_report_and_fails_on_errors() {
    let dir = std::env::temp_dir().join(format!("harness-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let scenario = dir.join("cli.toml");
    std::fs::write(
        &scenario,
        "name = \"cli\"\nprotocol = \"h2c\"\nduration_secs = 5.0\nconnections = 2\nin_flight = 2\n",
    )
    .expect("scenario file");

    let server = TestServer::bare_http();
    let ok = load(&scenario, &server.target());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).expect("JSON on stdout");
    assert_eq!(report["format"], "load-report/1");
    assert_eq!(report["scenario"]["protocol"], "h2c");
    // The command line overrode the file's duration.
    assert_eq!(report["scenario"]["duration_secs"], 0.3);
    assert!(report["requests"]["ok"].as_u64().is_some_and(|n| n > 0));

    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let nowhere = free.local_addr().expect("addr").to_string();
    drop(free);
    let failed = load(&scenario, &nowhere);
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("failed"));

    let remote = load(&scenario, "192.0.2.1:80");
    assert!(
        !remote.status.success(),
        "a non-loopback target must be refused"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
