//! Access control through real clients: the front doors want `INGEST_TOKEN` on ingest, the
//! processor `PROCESSOR_TOKEN` on `/enqueue` (and the front doors send it), the profile
//! endpoint `DEBUG_TOKEN`; no token reaches a log or a `Debug`; bad token settings stop the
//! start-up; each role listens on its own address.

use std::{net::IpAddr, time::Duration};
use system::FrontDoorConfig;

use clap::Parser as _;
use reqwest::{Client, StatusCode, header};
use serde_json::Value;
use system::{
    auth::{ClientToken, Secret},
    client::{ClientMode, ForwarderConfig, HopProtocol},
    codec::Codec,
    config::{Cli, Role},
    gateway::GatewayConfig,
    grpc::{GrpcConfig, standing},
    processor::ProcessorConfig,
    proto::{DataMessageBatch, IngestRequest},
};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::{
    binary,
    client::{get_json, ingest_as},
    stack::{Setup, Stack},
    support::assert_error,
};

const INGEST: &str = "ingest-7Hq2-token";
const PROCESSOR: &str = "processor-Zx9-token";
const DEBUG: &str = "debug-Qm4-token";

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A stack whose front doors want [`INGEST`] and whose processor wants [`PROCESSOR`]; the
/// front doors send `sent` to the processor.
fn guarded(sent: Option<&'static str>) -> Setup {
    guarded_over(sent, ForwarderConfig::new)
}

/// [`guarded`], with the processor client `forwarder` makes.
fn guarded_over(sent: Option<&'static str>, forwarder: fn(http::Uri) -> ForwarderConfig) -> Setup {
    Setup {
        processor: ProcessorConfig {
            processor_token: Some(Secret::from(PROCESSOR)),
            ..ProcessorConfig::default()
        },
        forwarder: Box::new(move |url| ForwarderConfig {
            processor_token: sent.map(Secret::from),
            ..forwarder(url)
        }),
        gateway: Box::new(|forwarder| {
            GatewayConfig::from_front(FrontDoorConfig {
                ingest_tokens: vec![ClientToken::unnamed(INGEST)],
                ..FrontDoorConfig::new(forwarder)
            })
        }),
        grpc: Box::new(|forwarder| {
            GrpcConfig::from_front(FrontDoorConfig {
                ingest_tokens: vec![ClientToken::unnamed(INGEST)],
                ..FrontDoorConfig::new(forwarder)
            })
        }),
        processor_url: None,
    }
}

async fn ingest(client: &Client, stack: &Stack, authorization: Option<&str>) -> reqwest::Response {
    let body = r#"{"source": "auth", "data": "x"}"#;
    ingest_as(client, &stack.gateway_url, authorization, body).await
}

/// Asserts a 401 of the contract: the challenge of `realm` (with `error="invalid_token"`
/// when a token was sent) and a JSON error about the token.
async fn assert_unauthorized(response: reqwest::Response, realm: &str, token_sent: bool) {
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .unwrap_or_else(|| panic!("no WWW-Authenticate in {response:?}"))
        .to_str()
        .unwrap()
        .to_owned();
    let expected = if token_sent {
        format!(r#"Bearer realm="{realm}", error="invalid_token""#)
    } else {
        format!(r#"Bearer realm="{realm}""#)
    };
    assert_eq!(challenge, expected);
    assert_error(response, StatusCode::UNAUTHORIZED, "token").await;
}

fn request(n: u8) -> IngestRequest {
    IngestRequest {
        source: format!("auth-{n}"),
        data: vec![n],
        metadata: Default::default(),
        id: String::new(),
    }
}

fn with_authorization<T>(message: T, authorization: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn the_gateway_wants_the_ingest_token_on_ingest_and_trace_only() {
    let stack = Stack::start(guarded(Some(PROCESSOR))).await;
    let client = Client::new();
    let shorter = bearer(&INGEST[..INGEST.len() - 1]);
    let longer = bearer(&format!("{INGEST}x"));
    assert_unauthorized(ingest(&client, &stack, None).await, "gateway", false).await;
    for wrong in [bearer("wrong"), shorter, longer, bearer(PROCESSOR)] {
        let response = ingest(&client, &stack, Some(&wrong)).await;
        assert_unauthorized(response, "gateway", true).await;
    }
    // Another scheme carries no bearer token.
    let basic = ingest(&client, &stack, Some(&format!("Basic {INGEST}"))).await;
    assert_unauthorized(basic, "gateway", false).await;

    let accepted = ingest(&client, &stack, Some(&bearer(INGEST))).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    // The scheme's name is case-insensitive.
    let lower = ingest(&client, &stack, Some(&format!("bearer {INGEST}"))).await;
    assert_eq!(lower.status(), StatusCode::ACCEPTED);

    let trace = format!("{}/api/v1/trace", stack.gateway_url);
    assert_unauthorized(client.get(&trace).send().await.unwrap(), "gateway", false).await;
    let traced: Value = client
        .get(&trace)
        .header(header::AUTHORIZATION, bearer(INGEST))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(traced["success"], true, "{traced}");

    for path in ["/health", "/metrics", "/api/v1/status"] {
        let response = client
            .get(format!("{}{path}", stack.gateway_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let ready = client
        .get(format!("{}/ready", stack.gateway_url))
        .send()
        .await
        .unwrap();
    assert_ne!(ready.status(), StatusCode::UNAUTHORIZED);
    let stats = stack.shutdown().await;
    // Two ingests and the trace's message.
    assert_eq!(stats.queue.enqueued, 3);
}

#[tokio::test]
async fn grpc_ingest_and_streams_want_the_ingest_token() {
    let stack = Stack::start(guarded(Some(PROCESSOR))).await;
    let mut grpc = stack.grpc_client().await;
    for (authorization, mentions) in [
        (None, "missing"),
        (Some(bearer("wrong")), "invalid"),
        (Some(INGEST.to_owned()), "missing"),
    ] {
        let authorization = authorization.as_deref();
        let err = grpc
            .ingest(with_authorization(request(1), authorization))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
        assert!(
            err.message().contains(mentions) && err.message().contains("INGEST_TOKEN"),
            "{err:?}"
        );
        let stream = tokio_stream::iter([request(2), request(3)]);
        let err = grpc
            .ingest_stream(with_authorization(stream, authorization))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
        assert!(
            err.message().contains(mentions) && err.message().contains("INGEST_TOKEN"),
            "{err:?}"
        );
    }
    let right = bearer(INGEST);
    let reply = grpc
        .ingest(with_authorization(request(4), Some(&right)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reply.status.as_str(), reply.accepted), ("accepted", 1));
    let stream = tokio_stream::iter([request(5), request(6), request(7)]);
    let reply = grpc
        .ingest_stream(with_authorization(stream, Some(&right)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 3);
    // Health stays open.
    let channel = tonic::transport::Channel::from_shared(stack.grpc_url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    let stats = stack.shutdown().await;
    assert_eq!(stats.queue.enqueued, 4);
}

#[tokio::test]
async fn the_processor_wants_its_token_on_enqueue_and_batches() {
    let stack = Stack::start(guarded(Some(PROCESSOR))).await;
    let client = Client::new();
    let batch = DataMessageBatch {
        messages: vec![
            crate::support::message(1, 4, 0),
            crate::support::message(2, 4, 0),
        ],
    };
    let batch = prost::Message::encode_to_vec(&batch);
    let post = |path: &str, authorization: Option<String>| {
        let (content_type, body) = if path == "/enqueue" {
            (
                "application/json",
                br#"{"source": "direct", "payload": "aGk="}"#.to_vec(),
            )
        } else {
            ("application/x-protobuf", batch.clone())
        };
        let mut request = client
            .post(format!("{}{path}", stack.processor_url))
            .header(header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        request.send()
    };
    for (path, success) in [
        ("/enqueue", StatusCode::ACCEPTED),
        ("/enqueue/batch", StatusCode::OK),
    ] {
        assert_unauthorized(post(path, None).await.unwrap(), "processor", false).await;
        for wrong in [bearer("wrong"), bearer(INGEST)] {
            let response = post(path, Some(wrong)).await.unwrap();
            assert_unauthorized(response, "processor", true).await;
        }
        let response = post(path, Some(bearer(PROCESSOR))).await.unwrap();
        assert_eq!(response.status(), success, "{path}");
    }
    for path in ["/stats", "/health", "/metrics"] {
        let response = client
            .get(format!("{}{path}", stack.processor_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let stats = stack.shutdown().await;
    assert_eq!(stats.queue.enqueued, 3);
}

/// Every way the front doors reach the processor (single and batch requests, both
/// protocols and codecs, pooled and baseline connections, the traced client) carries the
/// processor token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_doors_reach_a_guarded_processor_with_its_token_over_every_hop() {
    fn h2c_json(url: http::Uri) -> ForwarderConfig {
        ForwarderConfig {
            protocol: HopProtocol::H2c,
            codec: Codec::Json,
            ..ForwarderConfig::new(url)
        }
    }
    fn unbatched_baseline(url: http::Uri) -> ForwarderConfig {
        ForwarderConfig {
            mode: ClientMode::Baseline,
            batch: 1,
            batch_unary: false,
            ..ForwarderConfig::new(url)
        }
    }
    fn h2c_unbatched_json(url: http::Uri) -> ForwarderConfig {
        ForwarderConfig {
            protocol: HopProtocol::H2c,
            codec: Codec::Json,
            batch: 1,
            ..ForwarderConfig::new(url)
        }
    }
    type Variant = (&'static str, fn(http::Uri) -> ForwarderConfig);
    let variants: [Variant; 4] = [
        ("defaults", ForwarderConfig::new),
        ("h2c json", h2c_json),
        ("baseline unbatched", unbatched_baseline),
        ("h2c unbatched json", h2c_unbatched_json),
    ];
    for (label, forwarder) in variants {
        let stack = Stack::start(guarded_over(Some(PROCESSOR), forwarder)).await;
        let client = Client::new();
        let ingests = (0..3).map(|_| ingest(&client, &stack, Some(INGEST_BEARER)));
        for response in futures_util::future::join_all(ingests).await {
            assert_eq!(response.status(), StatusCode::ACCEPTED, "{label}");
        }
        let mut grpc = stack.grpc_client().await;
        grpc.ingest(with_authorization(request(1), Some(INGEST_BEARER)))
            .await
            .unwrap_or_else(|err| panic!("{label}: {err:?}"));
        let stream = tokio_stream::iter((0..5).map(request));
        let reply = grpc
            .ingest_stream(with_authorization(stream, Some(INGEST_BEARER)))
            .await
            .unwrap_or_else(|err| panic!("{label}: {err:?}"))
            .into_inner();
        assert_eq!(reply.accepted, 5, "{label}");
        let traced = traced(&client, &stack).await;
        assert_eq!(traced["success"], true, "{label}: {traced}");
        let stats = stack.shutdown().await;
        assert_eq!(stats.queue.enqueued, 3 + 1 + 5 + 1, "{label}");
    }
}

const INGEST_BEARER: &str = "Bearer ingest-7Hq2-token";

/// `GET /api/v1/trace` with the ingest token.
async fn traced(client: &Client, stack: &Stack) -> Value {
    let url = format!("{}/api/v1/trace", stack.gateway_url);
    get_json(client, &url, Some(INGEST_BEARER)).await
}

/// A front door sending the wrong processor token (or none) accepts nothing and tells its
/// client why: 502 over HTTP, INTERNAL over gRPC, each naming the token; never a 202.
#[tokio::test]
async fn a_front_door_with_the_wrong_processor_token_says_so_and_accepts_nothing() {
    for sent in [Some("not-the-processor-token"), None] {
        let stack = Stack::start(guarded(sent)).await;
        let client = Client::new();
        let response = ingest(&client, &stack, Some(INGEST_BEARER)).await;
        assert_error(response, StatusCode::BAD_GATEWAY, "PROCESSOR_TOKEN").await;
        let mut grpc = stack.grpc_client().await;
        let err = grpc
            .ingest(with_authorization(request(1), Some(INGEST_BEARER)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal, "{err:?}");
        assert!(err.message().contains("PROCESSOR_TOKEN"), "{err:?}");
        let stream = tokio_stream::iter((0..3).map(request));
        let err = grpc
            .ingest_stream(with_authorization(stream, Some(INGEST_BEARER)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal, "{err:?}");
        assert!(err.message().contains("PROCESSOR_TOKEN"), "{err:?}");
        // A refused hop request was not accepted: nothing is uncertain.
        let metadata = err.metadata();
        assert_eq!(metadata.get(standing::ACCEPTED).unwrap(), "0", "{err:?}");
        assert!(metadata.get(standing::UNCERTAIN).is_none(), "{err:?}");
        let traced = traced(&client, &stack).await;
        assert_eq!(traced["success"], false, "{traced}");
        assert!(
            traced["error"].as_str().unwrap().contains("401"),
            "{traced}"
        );
        let stats = stack.shutdown().await;
        assert_eq!(stats.queue.enqueued, 0);
    }
}

#[tokio::test]
async fn the_profile_endpoint_wants_the_debug_token_on_every_port() {
    let stack = Stack::start(Setup {
        processor: ProcessorConfig {
            profile_endpoint: true,
            debug_token: Some(Secret::from(DEBUG)),
            ..ProcessorConfig::default()
        },
        gateway: Box::new(|forwarder| {
            GatewayConfig::from_front(FrontDoorConfig {
                profile_endpoint: true,
                debug_token: Some(Secret::from(DEBUG)),
                ..FrontDoorConfig::new(forwarder)
            })
        }),
        grpc: Box::new(|forwarder| {
            GrpcConfig::from_front(FrontDoorConfig {
                profile_endpoint: true,
                debug_token: Some(Secret::from(DEBUG)),
                ..FrontDoorConfig::new(forwarder)
            })
        }),
        ..Setup::default()
    })
    .await;
    let http1 = Client::new();
    let h2c = Client::builder().http2_prior_knowledge().build().unwrap();
    for (base, realm, client) in [
        (&stack.gateway_url, "gateway", &http1),
        (&stack.processor_url, "processor", &http1),
        (&stack.grpc_url, "grpc", &h2c),
    ] {
        // `seconds=0` is refused once past the guard, so no profile is taken.
        let url = format!("{base}/debug/pprof/profile?seconds=0");
        assert_unauthorized(client.get(&url).send().await.unwrap(), realm, false).await;
        for wrong in [bearer("wrong"), bearer(INGEST)] {
            let response = client
                .get(&url)
                .header(header::AUTHORIZATION, wrong)
                .send()
                .await
                .unwrap();
            assert_unauthorized(response, realm, true).await;
        }
        let response = client
            .get(&url)
            .header(header::AUTHORIZATION, bearer(DEBUG))
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "seconds").await;
    }
    // Without an ingest token, ingest stays open.
    let response = ingest(&http1, &stack, None).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    stack.shutdown().await;
}

#[test]
fn no_token_shows_in_the_debug_of_the_settings() {
    let cli = Cli::try_parse_from([
        "system",
        "gateway",
        "--ingest-token",
        INGEST,
        "--processor-token",
        PROCESSOR,
        "--debug-token",
        DEBUG,
    ])
    .unwrap();
    let tokens = cli.settings.tokens().unwrap();
    assert_eq!(
        tokens
            .ingest
            .iter()
            .map(|t| t.secret.expose())
            .collect::<Vec<_>>(),
        [INGEST]
    );
    assert_eq!(
        tokens.processor.as_ref().map(Secret::expose),
        Some(PROCESSOR)
    );
    assert_eq!(tokens.debug.as_ref().map(Secret::expose), Some(DEBUG));
    let loaded = system::config::Loaded::load(cli.settings.clone()).unwrap();
    let url: http::Uri = "http://127.0.0.1:1".parse().unwrap();
    let shown = [
        format!("{cli:?}"),
        format!("{cli:#?}"),
        format!("{tokens:?}"),
        format!("{loaded:?}"),
        format!("{:?}", loaded.gateway(url.clone(), None)),
        format!("{:?}", loaded.grpc(url.clone(), None)),
        format!("{:?}", loaded.forwarder(url)),
        format!("{:?}", loaded.processor()),
    ];
    for text in shown {
        for token in [INGEST, PROCESSOR, DEBUG] {
            assert!(!text.contains(token), "{token} shows in {text}");
        }
    }
}

/// The binary with every token set, at debug level, asked with right and wrong tokens on
/// each port: no token, right or wrong, shows in what it logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_no_token() {
    const GUESS: &str = "guess-Wf8-token";
    let mut running = binary::start(
        &[],
        &[
            ("INGEST_TOKEN", INGEST),
            ("PROCESSOR_TOKEN", PROCESSOR),
            ("DEBUG_TOKEN", DEBUG),
            ("PROFILE_ENDPOINT", "true"),
            ("RUST_LOG", "debug"),
        ],
        &["gateway", "processor", "grpc"],
    );
    let gateway = format!("http://{}", running.addrs()["gateway"]);
    let processor = format!("http://{}", running.addrs()["processor"]);
    let grpc_url = format!("http://{}", running.addrs()["grpc"]);
    let client = Client::new();
    for token in [INGEST, GUESS] {
        let response = client
            .post(format!("{gateway}/api/v1/ingest"))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, bearer(token))
            .body(r#"{"source": "logs", "data": "x"}"#)
            .send()
            .await
            .unwrap();
        let expected = if token == INGEST { 202 } else { 401 };
        assert_eq!(response.status().as_u16(), expected);
    }
    for token in [PROCESSOR, GUESS] {
        let response = client
            .post(format!("{processor}/enqueue"))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, bearer(token))
            .body(r#"{"source": "logs", "payload": "aGk="}"#)
            .send()
            .await
            .unwrap();
        let expected = if token == PROCESSOR { 202 } else { 401 };
        assert_eq!(response.status().as_u16(), expected);
    }
    for token in [DEBUG, GUESS] {
        let response = client
            .get(format!("{gateway}/debug/pprof/profile?seconds=0"))
            .header(header::AUTHORIZATION, bearer(token))
            .send()
            .await
            .unwrap();
        let expected = if token == DEBUG { 400 } else { 401 };
        assert_eq!(response.status().as_u16(), expected);
    }
    let mut grpc = system::proto::ingest_service_client::IngestServiceClient::connect(grpc_url)
        .await
        .unwrap();
    grpc.ingest(with_authorization(request(1), Some(&bearer(INGEST))))
        .await
        .unwrap();
    let err = grpc
        .ingest(with_authorization(request(2), Some(&bearer(GUESS))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    drop(grpc);
    let (status, logs) =
        tokio::task::spawn_blocking(move || (binary::terminate(&mut running), running.output()))
            .await
            .unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}: {logs}");
    assert!(logs.contains("processor stopped"), "{logs}");
    for token in [INGEST, PROCESSOR, DEBUG, GUESS] {
        assert!(!logs.contains(token), "{token} is in the log:\n{logs}");
    }
}

/// A token read from a file loses its trailing newline; the role then wants that token.
#[tokio::test]
async fn a_token_file_is_read_without_its_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("processor-token");
    std::fs::write(&file, format!("{PROCESSOR}\n")).unwrap();
    let mut running = binary::start(
        &["processor"],
        &[("PROCESSOR_TOKEN_FILE", file.to_str().unwrap())],
        &["processor"],
    );
    let url = format!("http://{}/enqueue", running.addrs()["processor"]);
    let client = Client::new();
    let post = |authorization: Option<String>| {
        let mut request = client
            .post(&url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(r#"{"source": "file", "payload": "aGk="}"#);
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        request.send()
    };
    assert_unauthorized(post(None).await.unwrap(), "processor", false).await;
    let accepted = post(Some(bearer(PROCESSOR))).await.unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let (status, logs) =
        tokio::task::spawn_blocking(move || (binary::terminate(&mut running), running.output()))
            .await
            .unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}: {logs}");
}

/// An empty token, a token file that is empty or missing, a value and a file both given, a
/// token no client could send: the binary exits non-zero naming the setting, without
/// echoing the value.
#[test]
fn bad_token_settings_stop_the_start_up_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let given = dir.path().join("given");
    std::fs::write(&given, "from-file-token\n").unwrap();
    let missing = dir.path().join("missing");
    let (empty, given, missing) = (
        empty.to_str().unwrap(),
        given.to_str().unwrap(),
        missing.to_str().unwrap(),
    );
    /// The flags and variables of a start, and the settings its refusal names.
    struct Case<'a> {
        args: &'a [&'a str],
        envs: &'a [(&'a str, &'a str)],
        mentions: &'a [&'a str],
    }
    let cases = [
        Case {
            args: &[],
            envs: &[("INGEST_TOKEN_FILE", empty)],
            mentions: &["INGEST_TOKEN_FILE"],
        },
        Case {
            args: &[],
            envs: &[("INGEST_TOKEN_FILE", missing)],
            mentions: &["INGEST_TOKEN_FILE"],
        },
        Case {
            args: &[
                "--ingest-token",
                "flag-Tq1-token",
                "--ingest-token-file",
                given,
            ],
            envs: &[],
            mentions: &["INGEST_TOKEN (", "INGEST_TOKEN_FILE"],
        },
        Case {
            args: &[],
            envs: &[
                ("PROCESSOR_TOKEN", "env-Tq2-token"),
                ("PROCESSOR_TOKEN_FILE", given),
            ],
            mentions: &["PROCESSOR_TOKEN (", "PROCESSOR_TOKEN_FILE"],
        },
        Case {
            args: &[],
            envs: &[("INGEST_TOKEN", "")],
            mentions: &["INGEST_TOKEN ("],
        },
        Case {
            args: &[],
            envs: &[("DEBUG_TOKEN_FILE", missing)],
            mentions: &["DEBUG_TOKEN_FILE"],
        },
        Case {
            args: &[],
            envs: &[("PROCESSOR_TOKEN", "two-Tq3 words")],
            mentions: &["PROCESSOR_TOKEN ("],
        },
        Case {
            args: &[],
            envs: &[("DEBUG_TOKEN", "tab\t-Tq4")],
            mentions: &["DEBUG_TOKEN ("],
        },
    ];
    for Case {
        args,
        envs,
        mentions,
    } in cases
    {
        let mut all_args = vec!["gateway"];
        all_args.extend(args);
        let mut running = binary::start(&all_args, envs, &[]);
        let status = running.wait(Duration::from_secs(30));
        let logs = running.output();
        let label = format!("{args:?} {envs:?}");
        let status = status.unwrap_or_else(|| panic!("{label}: still running after 30 s"));
        assert!(!status.success(), "{label} was accepted");
        for name in mentions {
            assert!(logs.contains(name), "{label}: {logs}");
        }
        assert!(!logs.contains("-Tq"), "{label}: a token is echoed: {logs}");
        assert!(!logs.contains("listening on"), "{label}: {logs}");
    }
}

#[test]
fn each_role_binds_its_own_address_or_else_bind_addr() {
    let ip = |text: &str| text.parse::<IpAddr>().unwrap();
    let cli = Cli::try_parse_from([
        "system",
        "--processor-bind-addr",
        "127.0.0.1",
        "--bind-addr",
        "0.0.0.0",
    ])
    .unwrap();
    assert_eq!(cli.settings.bind_addr_for(Role::Processor), ip("127.0.0.1"));
    assert_eq!(cli.settings.bind_addr_for(Role::Gateway), ip("0.0.0.0"));
    assert_eq!(cli.settings.bind_addr_for(Role::Grpc), ip("0.0.0.0"));

    let cli = Cli::try_parse_from([
        "system",
        "--gateway-bind-addr",
        "0.0.0.0",
        "--grpc-bind-addr",
        "::1",
    ])
    .unwrap();
    assert_eq!(cli.settings.bind_addr_for(Role::Gateway), ip("0.0.0.0"));
    assert_eq!(cli.settings.bind_addr_for(Role::Grpc), ip("::1"));
    assert_eq!(cli.settings.bind_addr_for(Role::Processor), ip("127.0.0.1"));

    let err = Cli::try_parse_from(["system", "--processor-bind-addr", "nowhere"]).unwrap_err();
    assert!(err.to_string().contains("PROCESSOR_BIND_ADDR"), "{err}");
}

/// All roles in one process, each on its own loopback address (Linux answers on all of
/// 127.0.0.0/8); the gRPC metrics port follows the gRPC role. The gateway still reaches the
/// processor.
#[tokio::test]
async fn the_binary_listens_on_each_role_s_address() {
    let mut running = binary::start(
        &[],
        &[
            ("BIND_ADDR", "127.0.0.1"),
            ("PROCESSOR_BIND_ADDR", "127.0.0.2"),
            ("GRPC_BIND_ADDR", "127.0.0.3"),
            ("GRPC_METRICS_PORT", "0"),
        ],
        &["processor", "gateway", "grpc", "grpc metrics"],
    );
    let ip = |role: &str| running.addrs()[role].ip().to_string();
    let (processor, gateway) = (ip("processor"), ip("gateway"));
    assert_eq!(processor, "127.0.0.2");
    assert_eq!(gateway, "127.0.0.1");
    assert_eq!(ip("grpc"), "127.0.0.3");
    assert_eq!(ip("grpc metrics"), "127.0.0.3");
    let gateway = running.addrs()["gateway"];
    let response = Client::new()
        .post(format!("http://{gateway}/api/v1/ingest"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(r#"{"source": "bind", "data": "x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let (status, logs) =
        tokio::task::spawn_blocking(move || (binary::terminate(&mut running), running.output()))
            .await
            .unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}: {logs}");
}
