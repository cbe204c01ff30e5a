//! With `telemetry.otlp_endpoint` set, `cairn serve` exports its spans over
//! OTLP/HTTP. The receiving end here is a bare HTTP listener; what it gets is
//! decoded with the OpenTelemetry project's own protobuf definitions
//! (`opentelemetry-proto`), so a malformed export fails the test.

use cairn_tests::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc;

/// Accepts HTTP/1.1 POSTs, answers 200, and hands over (path, body).
fn receiver() -> (u16, mpsc::Receiver<(String, Vec<u8>)>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        if h.trim().is_empty() {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; len];
                    reader.read_exact(&mut body).unwrap();
                    let _ = tx.send((path, body));
                    conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\ncontent-type: application/x-protobuf\r\n\r\n")
                        .unwrap();
                }
            });
        }
    });
    (port, rx)
}

#[test]
fn serve_exports_spans_over_otlp_http() {
    let (port, rx) = receiver();
    let env = Env::new();
    env.init();
    let mut c = env.cmd();
    let log = std::fs::File::create(env.logs_dir().join("serve-otlp.log")).unwrap();
    c.args(["serve", "all"])
        .env(
            "CAIRN_TELEMETRY__OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        )
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let mut serve = c.spawn().unwrap();
    let src = env.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    text_file(&src.join("a.txt"), 1 << 20, 1);
    env.backup(&[src.to_str().unwrap()]);
    // SIGTERM: serve stops cleanly and flushes its spans.
    std::process::Command::new("kill")
        .arg(serve.id().to_string())
        .status()
        .unwrap();
    assert!(serve.wait().unwrap().success());

    let mut stages = std::collections::BTreeSet::new();
    let mut service = String::new();
    while let Ok((path, body)) = rx.recv_timeout(std::time::Duration::from_secs(10)) {
        assert_eq!(path, "/v1/traces");
        let req =
            ExportTraceServiceRequest::decode(body.as_slice()).expect("a valid OTLP trace export");
        for rs in &req.resource_spans {
            for kv in rs
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or(&[])
            {
                if kv.key == "service.name" {
                    service = format!("{:?}", kv.value);
                }
            }
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    for kv in &span.attributes {
                        if kv.key == "stage" {
                            stages.insert(
                                format!("{:?}", kv.value)
                                    .split('"')
                                    .nth(1)
                                    .unwrap_or("")
                                    .to_string(),
                            );
                        }
                    }
                }
            }
        }
        if ["ingest", "encrypt", "store:local", "verify", "ledger"]
            .iter()
            .all(|s| stages.contains(*s))
        {
            break;
        }
    }
    assert!(service.contains("cairn-serve"), "service.name: {service}");
    for s in ["ingest", "encrypt", "store:local", "verify", "ledger"] {
        assert!(stages.contains(s), "no span from {s}: {stages:?}");
    }
}
