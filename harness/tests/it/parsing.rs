//! Parsers of other programs' output and of our own files. The tool outputs below are
//! made-up examples of each format (not measurements).

use harness::{
    load::{Mode, Scenario, http1::parse_response, scenario::is_loopback, usage},
    peers::tools,
};

#[test]
fn wrk_output_is_parsed() {
    let text = "Running 2s test @ http://127.0.0.1:1/api/v1/ingest
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   750.00us  100.00us   2.00ms   90.00%
    Req/Sec     1.00k     0.10k    1.10k    70.00%
  Latency Distribution
     50%  700.00us
     75%  800.00us
     90%    0.90ms
     99%    1.50ms
  2000 requests in 2.00s, 0.20MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:   1000.00
Transfer/sec:    100.00KB
";
    let run = tools::parse_wrk(text);
    assert_eq!(run.requests_per_sec, Some(1000.0));
    assert_eq!(run.requests, Some(2000));
    assert_eq!(run.errors, Some(6));
    assert_eq!(run.latency_mean_us, Some(750.0));
    assert_eq!(run.latency_p50_us, Some(700.0));
    assert_eq!(run.latency_p99_us, Some(1500.0));
    assert_eq!(tools::parse_wrk("Requests/sec: 5.5\n").errors, Some(0));
}

#[test]
fn h2load_output_is_parsed() {
    let text = "starting benchmark...
finished in 2.00s, 1000.50 req/s, 100.00KB/s
requests: 2001 total, 2001 started, 2001 done, 1999 succeeded, 2 failed, 0 errored, 0 timeout
status codes: 1999 2xx, 0 3xx, 0 4xx, 2 5xx
                     min         max         mean         sd        +/- sd
time for request:       50us      2.00ms       1.25ms       0.10ms    70.00%
";
    let run = tools::parse_h2load(text);
    assert_eq!(run.requests_per_sec, Some(1000.5));
    assert_eq!(run.requests, Some(2001));
    assert_eq!(run.errors, Some(2));
    assert_eq!(run.latency_mean_us, Some(1250.0));
    assert_eq!(
        tools::parse_h2load("nothing useful"),
        tools::ToolRun::default()
    );
}

#[test]
fn times_and_proc_stat_are_parsed() {
    assert_eq!(tools::parse_time_us("12.5ms"), Some(12_500.0));
    assert_eq!(tools::parse_time_us("3s"), Some(3_000_000.0));
    assert_eq!(tools::parse_time_us("7"), None);
    // A command name with spaces and parentheses; utime 7 and stime 5 ticks.
    let stat = "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 100 1000 50";
    assert_eq!(usage::parse_stat_cpu_ticks(stat), Some(12));
    assert!(usage::cpu_seconds(std::process::id()).is_ok());
    assert!(usage::peak_rss_bytes(std::process::id()).is_ok_and(|b| b > 0));
}

#[test]
fn listening_lines_are_found() {
    let line = "2026-01-01T00:00:00Z  INFO system: gateway listening on 127.0.0.1:4321";
    assert_eq!(
        launch::parse_ready(line, "gateway"),
        "127.0.0.1:4321".parse().ok()
    );
    assert_eq!(launch::parse_ready(line, "grpc"), None);
}

#[test]
fn http1_responses_are_framed() {
    let two = b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n";
    let first = parse_response(two).expect("valid").expect("complete");
    assert_eq!((first.status, first.len, first.close), (202, 46, false));
    let second = parse_response(&two[first.len..])
        .expect("valid")
        .expect("complete");
    assert_eq!(second.status, 503);
    assert_eq!(first.len + second.len, two.len());
    assert_eq!(parse_response(&two[..10]), Ok(None));
    assert_eq!(parse_response(&two[..first.len - 1]), Ok(None));
    assert!(parse_response(b"HTTP/1.1 200 OK\r\n\r\nbody until close").is_err());
    let close = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
    assert!(
        parse_response(close)
            .expect("valid")
            .expect("complete")
            .close
    );
}

#[test]
fn scenario_files_parse_and_are_bounded() {
    let dir = harness::results::workspace_root()
        .join("harness")
        .join("scenarios");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("scenarios dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let scenario = Scenario::load(&path).unwrap_or_else(|err| panic!("{err}"));
            names.push(scenario.name.clone());
            assert!(
                scenario.duration_secs <= 10.0,
                "{} runs long",
                scenario.name
            );
        }
    }
    names.sort();
    for needed in ["fixed-rate", "saturate", "smoke"] {
        assert!(
            names.iter().any(|n| n == needed),
            "missing {needed}: {names:?}"
        );
    }
    let smoke = Scenario::load(&dir.join("smoke.toml")).expect("smoke");
    assert!(smoke.duration_secs + smoke.warmup_secs <= 5.0);
    let fixed = Scenario::load(&dir.join("fixed-rate.toml")).expect("fixed-rate");
    assert_eq!(fixed.mode, Mode::Open);
}

#[test]
fn scenarios_refuse_unbounded_or_remote_runs() {
    let base = "name = \"x\"\nprotocol = \"http1\"\nduration_secs = 1.0\n";
    let ok = Scenario::from_toml(base).expect("parses");
    assert!(ok.validate().is_ok());
    for (extra, why) in [
        ("target = \"10.0.0.1:80\"\n", "remote target"),
        ("mode = \"open\"\n", "open loop without a rate"),
        ("rate = 5.0\n", "rate in the closed loop"),
        ("connections = 0\n", "no connections"),
        ("in_flight = 100000\n", "too many in flight"),
    ] {
        let scenario = Scenario::from_toml(&format!("{base}{extra}")).expect("parses");
        assert!(scenario.validate().is_err(), "accepted: {why}");
    }
    let long = Scenario::from_toml("name = \"x\"\nprotocol = \"h2c\"\nduration_secs = 100000.0\n")
        .expect("parses");
    assert!(long.validate().is_err());
    assert!(Scenario::from_toml(&format!("{base}colour = \"red\"\n")).is_err());
    assert!(is_loopback("127.0.0.2:9") && is_loopback("[::1]:9") && is_loopback("localhost:9"));
    assert!(!is_loopback("example.com:80") && !is_loopback("127.0.0.1"));
}

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).expect("ascii"), 16).expect("hex"))
        .collect()
}

fn decode_all(
    decoder: &mut harness::load::http2::hpack::Decoder,
    block: &[u8],
) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    decoder
        .decode(block, |name, value| {
            headers.push((
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            ));
        })
        .expect("valid block");
    headers
}

#[test]
fn hpack_decodes_the_rfc_examples() {
    use harness::load::http2::hpack::Decoder;
    let first = [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
    ];
    let owned = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    };
    // RFC 7541 C.3: requests without Huffman coding; the second refers to the dynamic table.
    let mut plain = Decoder::default();
    let block = hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d");
    assert_eq!(decode_all(&mut plain, &block), owned(&first));
    let second = hex("8286 84be 5808 6e6f 2d63 6163 6865");
    let mut expected = owned(&first);
    expected.push(("cache-control".into(), "no-cache".into()));
    assert_eq!(decode_all(&mut plain, &second), expected);
    // RFC 7541 C.4: the same request with Huffman coding.
    let mut huffman = Decoder::default();
    let block = hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff");
    assert_eq!(decode_all(&mut huffman, &block), owned(&first));
    // Invalid: an index past both tables, a truncated string.
    assert!(Decoder::default().decode(&[0xff, 0x00], |_, _| {}).is_err());
    assert!(
        Decoder::default()
            .decode(&[0x00, 0x05, b'a'], |_, _| {})
            .is_err()
    );
}

#[test]
fn request_header_blocks_decode_to_the_same_headers_in_every_encoding() {
    use harness::load::http2::{
        frames::{Encoding, RequestFrames},
        hpack::Decoder,
    };
    let frames = RequestFrames::new(
        "127.0.0.1:50051",
        "/diplom.v1.IngestService/Ingest",
        &[("content-type", "application/grpc"), ("te", "trailers")],
        bytes::Bytes::from_static(b"\0\0\0\0\0"),
    );
    let expected: Vec<(String, String)> = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/diplom.v1.IngestService/Ingest"),
        (":authority", "127.0.0.1:50051"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    let mut plain = Decoder::default();
    assert_eq!(
        decode_all(&mut plain, frames.header_block(Encoding::Plain)),
        expected
    );
    // The server's view: the first request fills its table, the later ones refer to it.
    let mut server = Decoder::default();
    assert_eq!(
        decode_all(&mut server, frames.header_block(Encoding::First)),
        expected
    );
    for _ in 0..3 {
        assert_eq!(
            decode_all(&mut server, frames.header_block(Encoding::Indexed)),
            expected
        );
    }
    assert!(frames.header_block(Encoding::Indexed).len() < 10);
    // Without the first request, the indexed block refers to entries that do not exist.
    assert!(
        Decoder::default()
            .decode(frames.header_block(Encoding::Indexed), |_, _| {})
            .is_err()
    );
}
