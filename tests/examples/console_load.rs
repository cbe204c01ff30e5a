//! The console with N backups in the ledger (default 10,000): how long the
//! backups page takes to load in headless Chromium, how long the API's
//! list takes, and how long a new backup takes to appear in the open page
//! and to show completed there (publish to pixels). Run by
//! `bench/run-console.sh`; figures in BENCHMARKS.md.
//!
//! Only the ledger stage runs: the backups are recorded as a client's
//! `backup.requested` and verify's `backup.completed` events, as the ledger
//! would record real ones, without moving any data.

use cairn_events::{
    BackupId, BackupRequest, Envelope, Event, NetworkReport, Outcome, Source, Stats,
};
use cairn_tests::*;
use fantoccini::{ClientBuilder, Locator};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn request(dataset: &str) -> Event {
    Event::BackupRequested(BackupRequest {
        dataset: dataset.into(),
        tags: vec!["bench".into()],
        source: Source::Paths {
            paths: vec![format!("/srv/{dataset}")],
        },
        networks: vec!["local".into()],
        min_copies: None,
        requested_by: "bench".into(),
        force_read: false,
    })
}

fn completed(n: u64) -> Event {
    Event::BackupCompleted(Outcome {
        stats: Stats {
            bytes_read: 1_000_000 + n,
            bytes_stored: 10_000,
            chunks_total: 20,
            chunks_new: 1,
            files: 10,
            ..Stats::default()
        },
        merkle_root: "00".repeat(32),
        sealed_root: "00".repeat(32),
        networks: vec![NetworkReport {
            network: "local".into(),
            ok: true,
            ..NetworkReport::default()
        }],
        reasons: vec![],
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn p95(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[(v.len() * 95 / 100).min(v.len() - 1)]
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("N backups"))
        .unwrap_or(10_000);
    let mut env = Env::new();
    env.init();
    env.serve(&["ledger"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bus = rt.block_on(async {
        let cfg = cairn_bus::NatsConfig {
            url: env.nats.url(),
            prefix: env.prefix.clone(),
            ..Default::default()
        };
        cairn_bus::Bus::connect(&cfg, "bench").await.unwrap()
    });
    let seeded = Instant::now();
    rt.block_on(async {
        let mut pipe = cairn_bus::Pipeline::new(bus.js.clone(), 256);
        for i in 0..n {
            let id = BackupId::generate();
            for e in [request(&format!("ds{}", i % 20)), completed(i)] {
                let env = Envelope::new("bench", id.clone(), e, &[&i.to_be_bytes()]);
                pipe.publish(
                    bus.subjects.event(&env.event, &id),
                    env.id.to_string(),
                    cairn_events::encode(&env).into(),
                )
                .await
                .unwrap();
            }
        }
        pipe.flush().await.unwrap();
    });
    let want = (2 * n) as i64;
    wait_for(1800, "the ledger to record every backup", || {
        let c: i64 = psql(
            &env.db,
            "SELECT count(*) FROM ledger_entries WHERE kind LIKE 'backup.%'",
        )
        .trim()
        .parse()
        .unwrap();
        (c >= want).then_some(())
    });
    let seed_secs = seeded.elapsed().as_secs_f64();
    eprintln!("seeded {n} backups ({want} ledger entries) in {seed_secs:.1} s");

    let port = free_port();
    let mut c = env.cmd();
    c.args(["console", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _console = Guarded(Some(c.spawn().unwrap()));
    wait_for(60, "the console", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let dport = free_port();
    let _driver = Guarded(Some(
        Command::new("chromedriver")
            .arg(format!("--port={dport}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver"),
    ));
    wait_for(30, "chromedriver", || {
        std::net::TcpStream::connect(("127.0.0.1", dport)).ok()
    });

    // The API alone: the list (newest 500) and one backup.
    let api = |path: &str| {
        let t = Instant::now();
        let (status, _, _) = http(port, "GET", path);
        assert_eq!(status, 200, "{path}");
        t.elapsed().as_secs_f64() * 1000.0
    };
    let list_ms: Vec<f64> = (0..10).map(|_| api("/api/backups")).collect();
    let filtered_ms: Vec<f64> = (0..10).map(|_| api("/api/backups?dataset=ds7")).collect();
    // The other pages' reads over the same ledger.
    let pages: serde_json::Map<String, serde_json::Value> = [
        "/api/datasets",
        "/api/trends",
        "/api/retention",
        "/api/schedules",
        "/api/ledger",
        "/api/deadletters",
    ]
    .iter()
    .map(|p| {
        let ms: Vec<f64> = (0..10).map(|_| api(p)).collect();
        (
            p.to_string(),
            serde_json::json!({"median": median(ms.clone()), "p95": p95(ms)}),
        )
    })
    .collect();

    let (load, other_loads, appear, complete) = rt.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({"binary": "/usr/bin/chromium", "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"]}),
        );
        let b = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{dport}"))
            .await
            .unwrap();
        let url = format!("http://127.0.0.1:{port}/");
        // Page load: navigation to the 500 newest rows drawn.
        let mut load = Vec::new();
        for _ in 0..7 {
            b.goto("about:blank").await.unwrap();
            let t = Instant::now();
            b.goto(&url).await.unwrap();
            loop {
                let rows = b
                    .execute("return document.querySelectorAll('#backups tbody tr').length", vec![])
                    .await
                    .unwrap();
                if rows.as_u64() == Some(500) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            load.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        // The health page (20 datasets drawn) and the retention plan (a
        // panel per dataset, every backup decided).
        let mut other_loads = serde_json::Map::new();
        for (page, css, want) in [
            ("#/health", "#datasets tbody tr", 20u64),
            ("#/retention", "table.plan", 20),
        ] {
            let mut ms = Vec::new();
            for _ in 0..5 {
                b.goto("about:blank").await.unwrap();
                let t = Instant::now();
                b.goto(&format!("{url}{page}")).await.unwrap();
                loop {
                    let n = b
                        .execute(
                            "return document.querySelectorAll(arguments[0]).length",
                            vec![serde_json::json!(css)],
                        )
                        .await
                        .unwrap();
                    if n.as_u64() == Some(want) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            other_loads.insert(
                page.to_string(),
                serde_json::json!({"median": median(ms.clone()), "max": ms.iter().cloned().fold(0.0, f64::max)}),
            );
        }
        b.goto(&url).await.unwrap();
        b.wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css("#live.on"))
            .await
            .unwrap();
        // Update latency: publish, then wait in the page for the row.
        let (mut appear, mut complete) = (Vec::new(), Vec::new());
        for i in 0..20u64 {
            let id = BackupId::generate();
            let env_req = Envelope::new("bench", id.clone(), request("live"), &[&i.to_be_bytes()]);
            let wait_row = |css: String, text: &'static str| {
                let b = b.clone();
                async move {
                    loop {
                        let found = b
                            .execute(
                                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null",
                                vec![serde_json::json!(css)],
                            )
                            .await
                            .unwrap();
                        if found.as_str().is_some_and(|t| t.contains(text)) {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
            };
            let t = Instant::now();
            bus.publish_event(&env_req).await.unwrap();
            wait_row(format!("tr[data-backup=\"{id}\"] [data-status]"), "requested").await;
            appear.push(t.elapsed().as_secs_f64() * 1000.0);
            let env_done = Envelope::new("bench", id.clone(), completed(i), &[&i.to_be_bytes()]);
            let t = Instant::now();
            bus.publish_event(&env_done).await.unwrap();
            wait_row(format!("tr[data-backup=\"{id}\"] [data-status]"), "completed").await;
            complete.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        b.close().await.unwrap();
        (load, other_loads, appear, complete)
    });
    println!(
        "{}",
        serde_json::json!({
            "backups": n,
            "ledger_entries_seeded": want,
            "seed_secs": seed_secs,
            "api_list_ms": {"median": median(list_ms.clone()), "p95": p95(list_ms)},
            "api_list_one_dataset_ms": {"median": median(filtered_ms.clone()), "p95": p95(filtered_ms)},
            "page_load_ms": {"median": median(load.clone()), "max": load.iter().cloned().fold(0.0, f64::max)},
            "api_pages_ms": pages,
            "other_page_load_ms": other_loads,
            "update_appear_ms": {"median": median(appear.clone()), "p95": p95(appear)},
            "update_completed_ms": {"median": median(complete.clone()), "p95": p95(complete)},
        })
    );
}
