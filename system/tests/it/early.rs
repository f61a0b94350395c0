//! Answers given before a request's body is read (a missing token, a body over the limit)
//! reach the clients people use: curl over HTTP/1.1, h2c and HTTP/2 over TLS sees every
//! 401 and 413, because the server reads and throws away the rest of the body first.

use std::{path::Path, process::Command};

use crate::{binary, support::tool_available};

/// A self-signed TLS gateway with a plain port beside it, wanting an ingest token.
fn gateway(tls_dir: &Path) -> launch::Running {
    binary::start(
        &[&format!("--tls-self-signed={}", tls_dir.display())],
        &[("API_PLAIN_PORT", "0"), ("INGEST_TOKEN", "early-secret")],
        &["gateway", "gateway (plain)"],
    )
}

/// curl's status code for a POST of `body` to `url` with `args`.
fn status(ca: &Path, args: &[&str], body: &Path, url: &str) -> String {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "60", "--cacert"])
        .arg(ca)
        .args(args)
        .args(["-o", "/dev/null", "-w", "%{http_code}"])
        .args(["-H", "content-type: application/json", "--data-binary"])
        .arg(format!("@{}", body.display()))
        .arg(url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn curl_sees_every_early_refusal_over_every_protocol() {
    if !tool_available("curl", "curl") {
        eprintln!("skipped: curl is not installed and could not be installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let running = gateway(&dir.path().join("tls"));
    let ca = dir.path().join("tls/ca.pem");
    let tls_port = running.addrs()["gateway"].port();
    let plain = running.addrs()["gateway (plain)"];
    let small = dir.path().join("small.json");
    std::fs::write(&small, vec![b' '; 256 * 1024]).unwrap();
    let huge = dir.path().join("huge.json");
    std::fs::write(&huge, vec![b' '; 20 * 1024 * 1024]).unwrap();
    let tls_url = format!("https://localhost:{tls_port}/api/v1/ingest");
    let plain_url = format!("http://{plain}/api/v1/ingest");
    let doors: [(&str, &[&str], &str); 3] = [
        ("HTTP/1.1", &["--http1.1"], &plain_url),
        ("h2c", &["--http2-prior-knowledge"], &plain_url),
        ("h2 over TLS", &["--http2"], &tls_url),
    ];
    let token = ["-H", "authorization: Bearer early-secret"];
    for (name, args, url) in doors {
        for _ in 0..20 {
            assert_eq!(status(&ca, args, &small, url), "401", "{name}: no token");
        }
        let with_token = [args, &token[..]].concat();
        for _ in 0..5 {
            assert_eq!(
                status(&ca, &with_token, &huge, url),
                "413",
                "{name}: over the limit"
            );
        }
    }
}

/// A client that shuts its sending side once its request is out still gets its answer,
/// an early one (after the server read the rest of the body) as much as a 202.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_half_closes_still_gets_its_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stack = crate::stack::Stack::start(crate::stack::Setup::default()).await;
    let addr = stack.gateway_url.trim_start_matches("http://").to_owned();
    let over = format!(r#"{{"source": "s", "data": "{}"}}"#, "x".repeat(1 << 20));
    let fits = r#"{"source": "s", "data": "x"}"#.to_owned();
    for (body, expected) in [(over, "HTTP/1.1 413"), (fits, "HTTP/1.1 202")] {
        let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (mut read, mut write) = stream.into_split();
        let head = format!(
            "POST /api/v1/ingest HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n",
            body.len()
        );
        let sending = tokio::spawn(async move {
            write.write_all(head.as_bytes()).await?;
            write.write_all(body.as_bytes()).await?;
            write.shutdown().await
        });
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            read.read_to_end(&mut answer),
        )
        .await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with(expected), "{expected}: {answer:?}");
        let _ = sending.await;
    }
    stack.shutdown().await;
}
