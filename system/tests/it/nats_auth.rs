//! The processor authenticating to NATS with secrets from files, as the `system` binary runs
//! it against real `nats-server`s: one wanting a user and password, one a token, one in
//! operator mode wanting a credentials file. A wrong secret stops the start-up with a
//! message that names the settings, and no secret (nor the userinfo of a URL, whether
//! `NATS_URL` or `PROCESSOR_URL`) ever shows in what the binary logs or answers.

mod operator;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use launch::{Launch, Running};
use reqwest::{Client, StatusCode};

use self::operator::Operator;
use crate::{
    binary::{start, terminate},
    client::enqueue,
    gateway::ClosedPort,
    nats_server::NatsServer,
};

const BIN: &str = env!("CARGO_BIN_EXE_system");

/// Writes `content` to `name` in `dir`.
fn secret_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `system processor` on the NATS queue with `envs`, once it listens.
fn processor(envs: &[(&str, &str)]) -> Running {
    let mut all = vec![("QUEUE_TYPE", "nats")];
    all.extend_from_slice(envs);
    start(&["processor"], &all, &["processor"])
}

/// Runs `system role` with `envs`, which must stop at start-up; its output.
fn refused(role: &str, envs: &[(&str, &str)]) -> String {
    let mut command = Command::new(BIN);
    command
        .arg(role)
        .env("PROCESSOR_PORT", "0")
        .env("API_PORT", "0")
        .env("GRPC_PORT", "0")
        .envs(envs.iter().copied());
    let mut running = Launch::new(command)
        .start()
        .unwrap_or_else(|err| panic!("{err}"));
    let Some(status) = running.wait(Duration::from_secs(30)) else {
        panic!(
            "`system {role}` started with {envs:?}:\n{}",
            running.output()
        );
    };
    let output = running.output();
    assert!(
        !status.success(),
        "`system {role}` with {envs:?}:\n{output}"
    );
    output
}

/// Enqueues one message at `running`'s processor and waits until it is processed; the
/// `/stats` answer then.
async fn enqueue_and_process(running: &Running) -> String {
    let url = format!("http://{}", running.addr("processor").unwrap());
    let client = Client::new();
    let response = enqueue(&client, &url, r#"{"source": "auth", "payload": "aGk="}"#).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = client.get(format!("{url}/stats")).send().await.unwrap();
        let stats = stats.text().await.unwrap();
        let value: serde_json::Value = serde_json::from_str(&stats).unwrap();
        if value["workers"]["processed"] == 1 {
            return stats;
        }
        assert!(Instant::now() < deadline, "not processed: {stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops `running` (it must exit 0) and returns all it logged.
fn stop(mut running: Running) -> String {
    let status = terminate(&mut running);
    let output = running.output();
    assert!(status.is_some_and(|s| s.success()), "{status:?}:\n{output}");
    output
}

fn assert_hidden(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} shows in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_and_a_password_file_authenticate_to_nats() {
    const PASSWORD: &str = "pw-Kx81-ingest";
    const WRONG: &str = "pw-Zz07-wrong";
    let Some(server) = NatsServer::for_test_with(
        "a_user_and_a_password_file_authenticate_to_nats",
        &["--user", "ingest", "--pass", PASSWORD],
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let right = secret_file(dir.path(), "password", &format!("{PASSWORD}\n"));
    let wrong = secret_file(dir.path(), "wrong", WRONG);
    let url = server.url();
    let running = processor(&[
        ("NATS_URL", &url),
        ("NATS_USER", "ingest"),
        ("NATS_PASSWORD_FILE", text(&right)),
    ]);
    let stats = enqueue_and_process(&running).await;
    assert_hidden(&stats, &[PASSWORD]);
    assert_hidden(&stop(running), &[PASSWORD]);

    let output = refused(
        "processor",
        &[
            ("QUEUE_TYPE", "nats"),
            ("NATS_URL", &url),
            ("NATS_USER", "ingest"),
            ("NATS_PASSWORD_FILE", text(&wrong)),
        ],
    );
    assert!(output.contains("refused the credentials"), "{output}");
    assert!(output.contains("NATS_PASSWORD_FILE"), "{output}");
    assert_hidden(&output, &[PASSWORD, WRONG]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_authenticates_to_nats() {
    const TOKEN: &str = "tok-Qm52-ingest";
    const WRONG: &str = "tok-Pp19-wrong";
    let Some(server) =
        NatsServer::for_test_with("a_token_file_authenticates_to_nats", &["--auth", TOKEN])
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let right = secret_file(dir.path(), "token", &format!("{TOKEN}\n"));
    let wrong = secret_file(dir.path(), "wrong", WRONG);
    let url = server.url();
    let running = processor(&[("NATS_URL", &url), ("NATS_TOKEN_FILE", text(&right))]);
    let stats = enqueue_and_process(&running).await;
    assert_hidden(&stats, &[TOKEN]);
    assert_hidden(&stop(running), &[TOKEN]);

    let output = refused(
        "processor",
        &[
            ("QUEUE_TYPE", "nats"),
            ("NATS_URL", &url),
            ("NATS_TOKEN_FILE", text(&wrong)),
        ],
    );
    assert!(output.contains("refused the credentials"), "{output}");
    assert!(output.contains("NATS_TOKEN_FILE"), "{output}");
    assert_hidden(&output, &[TOKEN, WRONG]);
}

/// A server in operator mode knows its users by the JWTs its accounts signed: the
/// processor proves to be the user of a credentials file by signing with its seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credentials_file_authenticates_to_nats_in_operator_mode() {
    let dir = tempfile::tempdir().unwrap();
    let operator = Operator::new();
    let config = secret_file(dir.path(), "server.conf", &operator.server_config);
    let Some(server) = NatsServer::for_test_with(
        "a_credentials_file_authenticates_to_nats_in_operator_mode",
        &["-c", text(&config)],
    ) else {
        return;
    };
    let creds = secret_file(dir.path(), "user.creds", &operator.creds);
    let url = server.url();
    let running = processor(&[("NATS_URL", &url), ("NATS_CREDS_FILE", text(&creds))]);
    let stats = enqueue_and_process(&running).await;
    assert_hidden(&stats, &[&operator.seed]);
    assert_hidden(&stop(running), &[&operator.seed]);

    // The same seed under a JWT that no account of this server signed.
    let stranger = Operator::new();
    let forged = stranger.creds.replace(&stranger.seed, &operator.seed);
    let forged = secret_file(dir.path(), "forged.creds", &forged);
    let output = refused(
        "processor",
        &[
            ("QUEUE_TYPE", "nats"),
            ("NATS_URL", &url),
            ("NATS_CREDS_FILE", text(&forged)),
        ],
    );
    assert!(output.contains("refused the credentials"), "{output}");
    assert!(output.contains("NATS_CREDS_FILE"), "{output}");
    assert_hidden(&output, &[&operator.seed]);
}

/// Settings as variables and their values.
type Settings<'a> = &'a [(&'a str, &'a str)];

/// A credentials setting that cannot be used stops any start-up, before NATS is asked,
/// with a message naming the settings and holding no secret.
#[test]
fn unusable_nats_credentials_stop_the_start_up_by_name() {
    const SECRET: &str = "sec-Hv33-file";
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path(), "secret", SECRET);
    let empty = secret_file(dir.path(), "empty", "\n");
    let garbled = secret_file(
        dir.path(),
        "garbled.creds",
        &format!("-----BEGIN USER NKEY SEED-----\n{SECRET}\n------END USER NKEY SEED------\n"),
    );
    let missing = dir.path().join("missing");
    let (secret, empty, garbled, missing) =
        (text(&secret), text(&empty), text(&garbled), text(&missing));
    let cases: [(Settings<'_>, &[&str]); 9] = [
        (&[("NATS_CREDS_FILE", missing)], &["NATS_CREDS_FILE"]),
        (&[("NATS_CREDS_FILE", garbled)], &["NATS_CREDS_FILE"]),
        (&[("NATS_CREDS_FILE", empty)], &["NATS_CREDS_FILE"]),
        (
            &[("NATS_USER", "ingest"), ("NATS_PASSWORD_FILE", empty)],
            &["NATS_PASSWORD_FILE"],
        ),
        (
            &[("NATS_USER", "ingest")],
            &["NATS_USER", "NATS_PASSWORD_FILE"],
        ),
        (
            &[("NATS_PASSWORD_FILE", secret)],
            &["NATS_USER", "NATS_PASSWORD_FILE"],
        ),
        (&[("NATS_TOKEN_FILE", missing)], &["NATS_TOKEN_FILE"]),
        (
            &[("NATS_TOKEN_FILE", secret), ("NATS_CREDS_FILE", garbled)],
            &["NATS_TOKEN_FILE", "NATS_CREDS_FILE"],
        ),
        (
            &[
                ("NATS_URL", "nats://ingest:sec-Hv33-url@127.0.0.1:4222"),
                ("NATS_TOKEN_FILE", secret),
            ],
            &["NATS_URL", "NATS_TOKEN_FILE"],
        ),
    ];
    for (envs, named) in cases {
        let mut all = vec![("QUEUE_TYPE", "nats")];
        all.extend_from_slice(envs);
        let output = refused("processor", &all);
        for setting in named {
            assert!(
                output.contains(setting),
                "{envs:?} does not name {setting}:\n{output}"
            );
        }
        assert_hidden(&output, &[SECRET, "sec-Hv33-url"]);
    }
}

/// `NATS_URL` may carry a user and password (`nats://user:password@host:port`): the
/// processor connects with them, and the URL is shown as `nats://***@host:port`, in its
/// logs (at every level), in `/stats` and in a start-up that fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_userinfo_of_nats_url_never_shows() {
    const PASSWORD: &str = "pw-Ur44-in-url";
    let Some(server) = NatsServer::for_test_with(
        "the_userinfo_of_nats_url_never_shows",
        &["--user", "ingest", "--pass", PASSWORD],
    ) else {
        return;
    };
    let url = format!("nats://ingest:{PASSWORD}@127.0.0.1:{}", server.port());
    let running = processor(&[("NATS_URL", &url), ("RUST_LOG", "debug,async_nats=trace")]);
    let stats = enqueue_and_process(&running).await;
    assert_hidden(&stats, &[PASSWORD]);
    let output = stop(running);
    assert_hidden(&output, &[PASSWORD]);
    let shown = format!("nats://***@127.0.0.1:{}", server.port());
    assert!(output.contains(&shown), "{output}");

    let closed = ClosedPort::new();
    let unreachable = format!("nats://ingest:{PASSWORD}@{}", closed.addr());
    let output = refused(
        "processor",
        &[
            ("QUEUE_TYPE", "nats"),
            ("NATS_URL", &unreachable),
            ("NATS_TIMEOUT_MS", "500"),
        ],
    );
    assert!(
        output.contains(&format!("nats://***@{}", closed.addr())),
        "{output}"
    );
    assert_hidden(&output, &[PASSWORD]);

    let output = refused(
        "processor",
        &[(
            "NATS_URL",
            &format!("http://ingest:{PASSWORD}@127.0.0.1:4222"),
        )],
    );
    assert!(output.contains("NATS_URL"), "{output}");
    assert_hidden(&output, &[PASSWORD]);
}

/// A `PROCESSOR_URL` with a user and password is shown as `http://***@host:port`: in
/// `/api/v1/status`, in `/ready`'s reason, in the error of an ingest, in the logs, and in
/// the message of a value that is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_userinfo_of_processor_url_never_shows() {
    const PASSWORD: &str = "pw-Hp62-hop";
    let closed = ClosedPort::new();
    let url = format!("http://hop:{PASSWORD}@{}", closed.addr());
    let running = start(
        &["gateway"],
        &[("PROCESSOR_URL", &url), ("RUST_LOG", "debug")],
        &["gateway"],
    );
    let gateway = format!("http://{}", running.addr("gateway").unwrap());
    let client = Client::new();
    let status = client
        .get(format!("{gateway}/api/v1/status"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        value["gateway"]["hop"]["processorUrl"],
        format!("http://***@{}/", closed.addr()),
        "{status}"
    );
    assert_hidden(&status, &[PASSWORD]);
    let ready = client.get(format!("{gateway}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready = ready.text().await.unwrap();
    assert!(ready.contains("***@"), "{ready}");
    assert_hidden(&ready, &[PASSWORD]);
    let ingest = crate::client::ingest(&client, &gateway, r#"{"source": "s", "data": "x"}"#).await;
    assert_eq!(ingest.status(), StatusCode::BAD_GATEWAY);
    assert_hidden(&ingest.text().await.unwrap(), &[PASSWORD]);
    assert_hidden(&stop(running), &[PASSWORD]);

    for bad in [
        format!("ftp://hop:{PASSWORD}@127.0.0.1:1"),
        format!("http://hop:{PASSWORD}@127.0.0.1:1/path"),
    ] {
        let output = refused("gateway", &[("PROCESSOR_URL", &bad)]);
        assert!(output.contains("PROCESSOR_URL"), "{output}");
        assert_hidden(&output, &[PASSWORD]);
    }
}
