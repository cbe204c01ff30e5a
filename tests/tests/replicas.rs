//! Several replicas of every stage share the work: two `cairn serve all`
//! processes on one repository, four backups at once. Each replica's own
//! metrics (its Prometheus endpoint) show it did part of the work, and
//! the sums show every message was handled to the end exactly once: no
//! SEALED message stored twice on a network, no backup ingested twice, and
//! nothing delivered again that its stage had not sent back.

use cairn_tests::*;

/// A JetStream stream's count of messages ever stored (`last_seq`).
fn stored_ever(env: &Env, stream: &str) -> u64 {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(env.nats.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let name = format!("{}_{stream}", env.prefix.to_uppercase());
        js.get_stream(&name)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .state
            .last_sequence
    })
}

#[test]
fn two_replicas_of_every_stage_share_the_work_and_handle_each_message_once() {
    const BACKUPS: usize = 4;
    let mut env = Env::with(Options {
        extra_networks: vec!["second".into()],
        ..Options::default()
    });
    env.init();
    let ports = [free_port(), free_port()];
    for port in ports {
        env.set_env(
            "CAIRN_TELEMETRY__PROMETHEUS_LISTEN",
            &format!("127.0.0.1:{port}"),
        );
        env.serve(&["all"]);
    }
    for port in ports {
        wait_for(60, "each replica's metrics", || scrape(port));
    }

    let sources: Vec<_> = (0..BACKUPS)
        .map(|i| {
            let src = env.source_dir(&format!("src{i}"));
            random_file(&src.join("a.bin"), 12 << 20);
            text_file(&src.join("b.txt"), 2 << 20, i as u64);
            src
        })
        .collect();
    let running: Vec<Guarded> = sources
        .iter()
        .map(|src| {
            let mut c = env.cmd();
            // Four requests at once: a replica's consumer can pull more
            // than it has free slots for, and a request waiting there is
            // given to the other only after `ack_wait`, past the CLI's
            // default 5 s to be taken (see the closing note of issue 16).
            c.args([
                "backup",
                "--json",
                "--start-timeout",
                "60",
                src.to_str().unwrap(),
            ]);
            Guarded::spawn(c)
        })
        .collect();
    let mut ids = Vec::new();
    for child in running {
        let out = child.wait_output();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(v["status"], "completed", "{v}");
        ids.push(v["backup_id"].as_str().unwrap().to_string());
    }
    wait_until_idle(&env, 60);

    let scrapes: Vec<Vec<Sample>> = ports.iter().map(|p| scrape(*p).unwrap()).collect();
    let handled = |s: &[Sample], stage: &str| {
        metric(
            s,
            "cairn_messages_handled_total",
            &[("stage", stage), ("outcome", "ok")],
        )
    };
    let sealed = stored_ever(&env, "SEALED") as f64;
    let mut report = Vec::new();
    for stage in ["store:local", "store:second"] {
        let per: Vec<f64> = scrapes.iter().map(|s| handled(s, stage)).collect();
        assert!(
            per.iter().all(|n| *n > 0.0),
            "both replicas stored on {stage}: {per:?}"
        );
        assert_eq!(
            per.iter().sum::<f64>(),
            sealed,
            "every SEALED message stored once on {stage}: {per:?}"
        );
        report.push(format!("{stage} {per:?}"));
    }
    let sealing: Vec<f64> = scrapes
        .iter()
        .map(|s| metric(s, "cairn_stage_chunks_total", &[("stage", "encrypt")]))
        .collect();
    assert!(
        sealing.iter().all(|n| *n > 0.0),
        "both replicas sealed: {sealing:?}"
    );
    let ingested: Vec<f64> = scrapes.iter().map(|s| handled(s, "ingest")).collect();
    assert_eq!(
        ingested.iter().sum::<f64>(),
        BACKUPS as f64,
        "each backup ingested once: {ingested:?}"
    );
    // A message is delivered again only after its stage asked for it: a
    // pack whose data key the other replica was still storing is sent
    // back for a moment. None because an ack went missing, none handled
    // twice to the end (the sums above).
    let mut again = Vec::new();
    for stage in ["ingest", "store:local", "store:second", "verify", "ledger"] {
        let total = |name: &str, with: &[(&str, &str)]| -> f64 {
            // (+ 0.0: a sum of nothing is -0.0, which prints as "-0")
            scrapes.iter().map(|s| metric(s, name, with)).sum::<f64>() + 0.0
        };
        let redelivered = total("cairn_messages_redelivered_total", &[("stage", stage)]);
        let retried = total(
            "cairn_messages_handled_total",
            &[("stage", stage), ("outcome", "retry")],
        );
        assert!(
            redelivered <= retried,
            "{stage}: {redelivered} delivered again, {retried} sent back"
        );
        again.push(format!("{stage} {redelivered}"));
    }
    eprintln!(
        "replicas: {sealed} SEALED messages; stored per replica {}; sealed per replica {sealing:?}; ingested per replica {ingested:?}; delivered again (sent back) {}",
        report.join(", "),
        again.join(", ")
    );

    let out = env.path().join("out");
    env.ok(&["restore", &ids[0], "--to", out.to_str().unwrap()]);
    assert_eq!(snapshot(&out.join("src0")), snapshot(&sources[0]));
}
