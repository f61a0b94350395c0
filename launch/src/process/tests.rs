//! The guard and the readiness wait against real children (`sh`).

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use super::{Launch, LaunchError, Running};
use crate::ready_line;

/// `sh -c script`; the script `exec`s its last command so that no grandchild holds the
/// pipes.
fn sh(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", script]);
    command
}

/// A child that reports `roles` ready and then sleeps.
fn server(roles: &[&str]) -> Command {
    let mut script = String::new();
    for (port, role) in (4001..).zip(roles) {
        script.push_str(&format!(
            "echo 'INFO system: {}'; ",
            ready_line(role, format!("127.0.0.1:{port}"))
        ));
    }
    script.push_str("exec sleep 60");
    sh(&script)
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn the_child_is_gone_once_the_guard_is_dropped() {
    let running = Launch::new(server(&["gateway"]))
        .roles(&["gateway"])
        .start()
        .unwrap();
    let pid = running.pid();
    assert!(alive(pid));
    drop(running);
    assert!(
        !alive(pid),
        "pid {pid} is still there (running or unreaped)"
    );
}

#[test]
fn the_child_is_gone_when_the_guard_is_dropped_by_a_panic() {
    let mut pid = None;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let running = Launch::new(server(&["processor"]))
            .roles(&["processor"])
            .start()
            .unwrap();
        pid = Some(running.pid());
        panic!("the test fails while its child runs");
    }));
    assert!(outcome.is_err());
    let pid = pid.expect("the child was started");
    assert!(!alive(pid), "pid {pid} outlived the panic");
}

#[test]
fn a_child_that_ignores_sigterm_is_killed_after_the_grace() {
    let mut running = Launch::new(sh("trap '' TERM; echo up; exec sleep 60"))
        .ready_text("up")
        .grace(Duration::from_millis(300))
        .start()
        .unwrap();
    let started = Instant::now();
    let status = running.stop().expect("reaped");
    assert!(!status.success());
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(!alive(running.pid()));
}

#[test]
fn readiness_waits_for_every_role_and_keeps_reading_after() {
    let script = format!(
        "echo '{}'; sleep 0.3; echo '{}' >&2; i=0; while [ $i -lt 20000 ]; do echo line $i; i=$((i+1)); done; exec sleep 60",
        ready_line("gateway", "127.0.0.1:1"),
        ready_line("grpc", "127.0.0.1:2"),
    );
    let mut running = Launch::new(sh(&script))
        .roles(&["gateway", "grpc"])
        .keep_lines(100)
        .start()
        .unwrap();
    assert_eq!(running.addr("gateway"), "127.0.0.1:1".parse().ok());
    assert_eq!(running.addr("grpc"), "127.0.0.1:2".parse().ok());
    // 20000 lines are more than a pipe holds: the child only gets to its sleep when they
    // are read, and only the latest 100 are kept.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !running.output().contains("line 19999") {
        assert!(Instant::now() < deadline, "{}", running.tail(5));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(running.lines().len(), 100);
    assert!(running.try_status().is_none());
}

#[test]
fn readiness_times_out_naming_the_missing_role_and_the_output() {
    // Generous, so that the gateway's line is read before the wait ends even on a slow,
    // busy machine.
    let patience = Duration::from_secs(3);
    let started = Instant::now();
    let err = Launch::new(server(&["gateway"]))
        .roles(&["gateway", "grpc"])
        .timeout(patience)
        .start()
        .unwrap_err();
    assert!(started.elapsed() >= patience);
    let LaunchError::NotReady {
        ref missing,
        exited,
        ref output,
        ..
    } = err
    else {
        panic!("{err}");
    };
    assert_eq!(missing, &["grpc"]);
    assert_eq!(exited, None);
    assert!(
        output.contains("gateway listening on 127.0.0.1:4001"),
        "{output}"
    );
    let text = err.to_string();
    assert!(text.contains("grpc ready within 3s"), "{text}");
    assert!(text.contains("gateway listening on"), "{text}");
}

#[test]
fn a_child_that_exits_before_it_is_ready_is_reported_at_once() {
    let started = Instant::now();
    let err = Launch::new(sh("echo 'PROCESSOR_PORT: bad port' >&2; exit 3"))
        .roles(&["processor"])
        .start()
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    let text = err.to_string();
    assert!(text.contains("exited (exit status: 3)"), "{text}");
    assert!(text.contains("processor ready"), "{text}");
    assert!(text.contains("PROCESSOR_PORT: bad port"), "{text}");
}

#[test]
fn a_missing_program_is_a_spawn_error() {
    let err = Launch::new(Command::new("/nonexistent/program"))
        .start()
        .unwrap_err();
    assert!(matches!(err, LaunchError::Spawn { .. }), "{err}");
}

#[test]
fn the_output_of_an_exited_child_is_kept_to_its_last_line() {
    let mut running: Running = Launch::new(sh("echo started >&2; echo done >&2"))
        .start()
        .unwrap();
    let status = running.wait(Duration::from_secs(10)).expect("it exits");
    assert!(status.success());
    assert_eq!(running.output(), "started\ndone");
}
