//! With `telemetry.otlp_endpoint` set, `cairn serve` exports its spans over
//! OTLP/HTTP. The receiving end here is a bare HTTP listener; what it gets is
//! decoded with the OpenTelemetry project's own protobuf definitions
//! (`opentelemetry-proto`), so a malformed export fails the test.

use cairn_tests::*;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
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
    let mut metrics = 0;
    while let Ok((path, body)) = rx.recv_timeout(std::time::Duration::from_secs(10)) {
        if path == "/v1/metrics" {
            ExportMetricsServiceRequest::decode(body.as_slice())
                .expect("a valid OTLP metrics export");
            metrics += 1;
            continue;
        }
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
    // At its clean stop serve pushed its metrics too.
    while metrics == 0 {
        let (path, body) = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("serve pushes its metrics over OTLP as it stops");
        if path == "/v1/metrics" {
            let m = ExportMetricsServiceRequest::decode(body.as_slice())
                .expect("a valid OTLP metrics export");
            assert!(format!("{m:?}").contains("cairn.messages.handled"));
            metrics += 1;
        }
    }
    for s in ["ingest", "encrypt", "store:local", "verify", "ledger"] {
        assert!(stages.contains(s), "no span from {s}: {stages:?}");
    }
}

/// One exported span, as a tracing backend would index it.
#[derive(Debug, Clone)]
struct Exported {
    trace: String,
    id: String,
    parent: String,
    name: String,
    /// OTLP's `SpanKind`: 4 producer, 5 consumer.
    kind: i32,
    pid: i64,
    attrs: std::collections::BTreeMap<String, String>,
}

fn text_of(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// Every span the receiver gets until it has been quiet for `quiet`.
fn collect(rx: &mpsc::Receiver<(String, Vec<u8>)>, quiet: std::time::Duration) -> Vec<Exported> {
    let mut out = Vec::new();
    while let Ok((path, body)) = rx.recv_timeout(quiet) {
        // Metrics go to the same collector.
        if path == "/v1/metrics" {
            continue;
        }
        assert_eq!(path, "/v1/traces");
        let req =
            ExportTraceServiceRequest::decode(body.as_slice()).expect("a valid OTLP trace export");
        for rs in &req.resource_spans {
            let pid = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "process.pid"))
                .map(|kv| text_of(&kv.value).parse().unwrap())
                .expect("every export names its process");
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    out.push(Exported {
                        trace: hex::encode(&span.trace_id),
                        id: hex::encode(&span.span_id),
                        parent: hex::encode(&span.parent_span_id),
                        name: span.name.clone(),
                        kind: span.kind,
                        pid,
                        attrs: span
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), text_of(&kv.value)))
                            .collect(),
                    });
                }
            }
        }
    }
    out
}

/// Each stage in a process of its own, and the client in another: the
/// backup is one trace, every stage's span hangs from the span that sent
/// it its message, whichever process that was, and the logs name the
/// backup and the trace on each line inside a stage's work.
#[test]
fn one_trace_per_backup_across_processes() {
    let (port, rx) = receiver();
    let mut env = Env::new();
    env.set_env(
        "CAIRN_TELEMETRY__OTLP_ENDPOINT",
        &format!("http://127.0.0.1:{port}"),
    );
    env.set_env("CAIRN_TELEMETRY__FORMAT", "json");
    env.init();
    let stages = ["ingest", "encrypt", "store", "verify", "ledger"];
    for s in stages {
        env.serve(&[s]);
    }
    let src = env.source_dir("src");
    // Several chunks: several encrypt and store spans.
    random_file(&src.join("a.bin"), 3 << 20);
    text_file(&src.join("b.txt"), 1 << 20, 7);
    let b = env.backup(&[src.to_str().unwrap()]);
    let id = b["backup_id"].as_str().unwrap().to_string();
    let trace = b["trace_id"]
        .as_str()
        .expect("backup --json names its trace")
        .to_string();
    assert_eq!(trace.len(), 32, "a W3C trace id: {trace}");
    env.terminate_workers();
    let spans = collect(&rx, std::time::Duration::from_secs(5));

    let by_id: std::collections::HashMap<&str, &Exported> =
        spans.iter().map(|s| (s.id.as_str(), s)).collect();
    let ours: Vec<&Exported> = spans.iter().filter(|s| s.trace == trace).collect();
    let roots: Vec<&&Exported> = ours.iter().filter(|s| s.parent.is_empty()).collect();
    assert_eq!(roots.len(), 1, "one root: {roots:?}");
    let root = roots[0];
    assert_eq!(root.name, "backup request");
    assert_eq!(root.kind, 4, "the client produces the request");
    assert_eq!(root.attrs.get("backup"), Some(&id));
    // No span of this backup's work is in another trace.
    for s in &spans {
        if s.attrs.get("backup") == Some(&id) {
            assert_eq!(
                s.trace, trace,
                "span of backup {id} outside its trace: {s:?}"
            );
        }
    }
    // Every parent link resolves to a span that was exported.
    for s in &ours {
        if !s.parent.is_empty() {
            let p = by_id
                .get(s.parent.as_str())
                .unwrap_or_else(|| panic!("parent of {s:?} was never exported"));
            assert_eq!(p.trace, trace);
        }
    }
    let stage_of = |s: &Exported| s.attrs.get("stage").cloned().unwrap_or_default();
    let parent_stage = |s: &Exported| {
        by_id
            .get(s.parent.as_str())
            .map(|p| stage_of(p))
            .unwrap_or_default()
    };
    let of = |stage: &str| -> Vec<&Exported> {
        ours.iter()
            .copied()
            .filter(|s| stage_of(s) == stage)
            .collect()
    };
    // request → ingest → encrypt → store → ledger; ingest → verify.
    let ingest = of("ingest");
    assert!(
        ingest.iter().any(|s| s.parent == root.id),
        "ingest's span hangs from the client's: {ingest:?}"
    );
    let encrypt = of("encrypt");
    assert!(encrypt.len() >= 2, "a span per chunk sealed: {encrypt:?}");
    for s in &encrypt {
        assert_eq!(parent_stage(s), "ingest", "{s:?}");
    }
    // Sealed chunks come from encrypt; ingest sends chunk lists and keys
    // (no plaintext) to the store itself.
    let store = of("store:local");
    let sealed_by_encrypt = store
        .iter()
        .filter(|s| parent_stage(s) == "encrypt")
        .count();
    assert!(
        sealed_by_encrypt >= 2,
        "a span per object stored: {store:?}"
    );
    for s in &store {
        assert!(
            ["encrypt", "ingest"].contains(&parent_stage(s).as_str()),
            "{s:?}"
        );
    }
    let verify = of("verify");
    assert!(!verify.is_empty());
    for s in &verify {
        assert_eq!(parent_stage(s), "ingest", "{s:?}");
    }
    let ledger = of("ledger");
    let fed_by: std::collections::BTreeSet<String> =
        ledger.iter().map(|s| parent_stage(s)).collect();
    for from in ["", "ingest", "store:local", "verify"] {
        assert!(
            fed_by.contains(from),
            "the ledger recorded events sent by {from:?}: {fed_by:?}"
        );
    }
    // Each stage ran in its own process, none in the client's.
    let pids: std::collections::BTreeSet<i64> = [&ingest, &encrypt, &store, &verify, &ledger]
        .iter()
        .map(|v| v[0].pid)
        .collect();
    assert_eq!(pids.len(), 5, "five processes: {pids:?}");
    assert!(!pids.contains(&root.pid));
    for s in ingest.iter().chain(&encrypt).chain(&store).chain(&verify) {
        assert_eq!(s.attrs.get("backup"), Some(&id), "{s:?}");
        assert_eq!(s.kind, 5, "a stage consumes its message: {s:?}");
        assert_eq!(
            s.attrs.get("messaging.system").map(String::as_str),
            Some("nats")
        );
    }

    // The logs: every line a stage wrote inside its work on this backup
    // names the backup and the trace; no line holds the passphrase.
    let logs = env.serve_logs();
    assert!(!logs.contains(PASSPHRASE));
    let mut inside = 0;
    for line in logs.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            panic!("a log line that is not JSON: {line}")
        };
        if v["span"]["backup"] == id.as_str() {
            inside += 1;
            assert_eq!(v["span"]["trace_id"], trace.as_str(), "{line}");
        }
    }
    assert!(inside > 0, "no log line inside this backup's work:\n{logs}");
}

/// `cairn serve` with `telemetry.prometheus_listen` answers scrapes; during
/// a backup the stage counters climb, and after it every figure says what
/// happened: bytes per stage, messages settled, each network's calls and
/// bytes, the ledger's count of what the network holds and its price, the
/// dataset's last backup and dedup ratio, the ledger's size, consumer lag
/// back to zero, and a dead letter counted.
#[test]
fn prometheus_metrics_move_with_a_backup() {
    let port = free_port();
    let mut env = Env::with(Options {
        extra_toml: "\n[datasets.docs]\n".into(),
        ..Options::default()
    });
    // The local network's price, for the cost gauge.
    env.set_local_network("price_gb_month = 20.0");
    env.set_env(
        "CAIRN_TELEMETRY__PROMETHEUS_LISTEN",
        &format!("127.0.0.1:{port}"),
    );
    env.set_env("CAIRN_TELEMETRY__VITALS_INTERVAL_SECS", "1");
    env.init();
    env.serve(&["all"]);
    let before = wait_for(60, "the metrics endpoint", || scrape(port));

    let src = env.source_dir("src");
    let size = 48usize << 20;
    random_file(&src.join("a.bin"), size);
    // Scrape all through the backup.
    let (stop, samples) = (
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        std::sync::Arc::new(std::sync::Mutex::new(Vec::new())),
    );
    let scraper = {
        let (stop, samples) = (stop.clone(), samples.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(s) = scrape(port) {
                    let ingest = metric(&s, "cairn_stage_data_bytes_total", &[("stage", "ingest")]);
                    samples.lock().unwrap().push(ingest);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        })
    };
    let b = env.backup(&["--dataset", "docs", src.to_str().unwrap()]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    scraper.join().unwrap();
    let seen = samples.lock().unwrap().clone();
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "a counter never goes down: {seen:?}"
    );
    let last = *seen.last().unwrap();
    assert!(
        seen.iter().any(|&v| v > 0.0 && v < last),
        "seen mid-backup, between nothing and everything: {seen:?}"
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // The gauges read from the ledger catch up within a few intervals.
    let after = wait_for(30, "the ledger's figures in the metrics", || {
        let s = scrape(port)?;
        (metric(
            &s,
            "cairn_dataset_last_backup_seconds",
            &[("dataset", "docs")],
        ) > 0.0
            && metric(&s, "cairn_consumer_pending", &[]) == 0.0
            && metric(&s, "cairn_consumer_ack_pending", &[]) == 0.0)
            .then_some(s)
    });
    let ingest = metric(
        &after,
        "cairn_stage_data_bytes_total",
        &[("stage", "ingest")],
    );
    assert!(
        ingest >= size as f64 && ingest < (size + (64 << 10)) as f64,
        "ingest chunked every byte once: {ingest}"
    );
    let sealed = metric(
        &after,
        "cairn_stage_data_bytes_total",
        &[("stage", "encrypt")],
    );
    assert!(
        sealed >= size as f64,
        "random data seals no smaller: {sealed}"
    );
    let stored = metric(
        &after,
        "cairn_stage_data_bytes_total",
        &[("stage", "store:local")],
    );
    let on_disk: u64 = Env::files_under(&env.network_dir("local"))
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(
        stored >= sealed && stored <= on_disk as f64,
        "{stored} of {on_disk}"
    );
    // The network counts every write there (the repository's own objects
    // too), the store its objects.
    let written = metric(
        &after,
        "cairn_network_io_bytes_total",
        &[("network", "local"), ("direction", "write")],
    );
    assert!(
        written >= stored && written <= on_disk as f64,
        "{written} of {on_disk}"
    );
    assert!(metric(&after, "cairn_stage_chunks_total", &[("stage", "encrypt")]) >= 2.0);
    let puts = metric(
        &after,
        "cairn_network_request_duration_seconds_count",
        &[("network", "local"), ("op", "put")],
    );
    assert!(
        puts >= metric(
            &after,
            "cairn_stage_chunks_total",
            &[("stage", "store:local")]
        )
    );
    assert!(has(
        &after,
        "cairn_network_request_duration_seconds_bucket",
        &[("network", "local"), ("op", "put"), ("le", "+Inf")]
    ));
    for stage in ["ingest", "encrypt", "store:local", "verify", "ledger"] {
        assert!(
            metric(
                &after,
                "cairn_messages_handled_total",
                &[("stage", stage), ("outcome", "ok")]
            ) >= 1.0,
            "{stage} settled its messages"
        );
    }
    let last_backup = metric(
        &after,
        "cairn_dataset_last_backup_seconds",
        &[("dataset", "docs")],
    );
    assert!(
        now - last_backup < 120.0 && last_backup <= now + 1.0,
        "{last_backup} vs {now}"
    );
    let events = format!("{}_EVENTS", env.prefix.to_uppercase());
    assert!(
        after
            .iter()
            .filter(|(n, l, _)| n == "cairn_consumer_pending" && l.get("stream") == Some(&events))
            .count()
            >= 3,
        "the lag of each consumer of {events}"
    );
    // The ledger's count of what `local` holds, and its price.
    let held = metric(
        &after,
        "cairn_network_stored_bytes",
        &[("network", "local")],
    );
    assert!(held >= size as f64 && held <= on_disk as f64, "{held}");
    let cost = metric(&after, "cairn_network_cost_month", &[("network", "local")]);
    assert!(
        (cost - held / 1e9 * 20.0).abs() < 1e-9,
        "{cost} for {held} bytes"
    );
    let entries = metric(&after, "cairn_ledger_entries", &[]);
    assert!(entries > metric(&before, "cairn_ledger_entries", &[]));
    let first_ratio = metric(&after, "cairn_dataset_dedup_ratio", &[("dataset", "docs")]);
    assert!(
        first_ratio > 0.5 && first_ratio < 1.5,
        "all new: {first_ratio}"
    );
    let _ = b;

    // The same data again: nothing new to store, chunks reused.
    std::fs::copy(src.join("a.bin"), src.join("copy.bin")).unwrap();
    env.backup(&["--dataset", "docs", src.to_str().unwrap()]);
    let again = wait_for(30, "the second backup's dedup ratio", || {
        let s = scrape(port)?;
        (metric(&s, "cairn_dataset_dedup_ratio", &[("dataset", "docs")]) > 10.0).then_some(s)
    });
    assert!(metric(&again, "cairn_ingest_chunks_reused_total", &[]) >= 2.0);

    // A malformed message is counted as dead-lettered.
    publish_raw(
        &env,
        &format!("{}.evt.backup.ingested.bad", env.prefix),
        b"\x92\xa3not an event",
    );
    wait_for(30, "a dead letter counted", || {
        let s = scrape(port)?;
        (metric(
            &s,
            "cairn_messages_dead_lettered_total",
            &[("stage", "verify")],
        ) == 1.0)
            .then_some(())
    });
}
