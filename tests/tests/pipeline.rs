//! End-to-end tests of the backup pipeline against a real nats-server (one per
//! test) and the local PostgreSQL, through the `cairn` binary.

use cairn_tests::*;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

fn mixed_tree(root: &Path, scale_mib: usize) {
    std::fs::create_dir_all(root.join("db/wal")).unwrap();
    std::fs::create_dir_all(root.join("docs/deep/deeper")).unwrap();
    let mib = 1 << 20;
    random_file(&root.join("db/base.bin"), scale_mib * 40 / 100 * mib);
    text_file(&root.join("db/dump.sql"), scale_mib * 35 / 100 * mib, 1);
    // A duplicate of part of the random data: dedup within one backup.
    let base = std::fs::read(root.join("db/base.bin")).unwrap();
    std::fs::write(
        root.join("db/copy.bin"),
        &base[..scale_mib * 15 / 100 * mib],
    )
    .unwrap();
    for i in 0..200 {
        text_file(
            &root.join(format!("docs/deep/note-{i}.txt")),
            20_000 + i * 100,
            i as u64,
        );
    }
    random_file(
        &root.join("db/wal/000000010000000000000001"),
        scale_mib * 8 / 100 * mib,
    );
    std::fs::write(root.join("docs/empty"), b"").unwrap();
    std::fs::write(
        root.join("docs/deep/deeper/ünïcödé name.txt"),
        "naïve café\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("../db/dump.sql", root.join("docs/link-to-dump")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        root.join("docs/empty"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(root.join("db/wal"), std::fs::Permissions::from_mode(0o700)).unwrap();
}

fn dir_bytes(p: &Path) -> u64 {
    Env::files_under(p)
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum()
}

/// 200 MiB of mixed data round-trips byte-identical (with modes, mtimes and
/// symlinks); after 1% of it changes, the second backup stores under 5% new
/// bytes; both backups restore.
#[test]
fn mixed_200mib_round_trip_and_incremental() {
    let mut env = Env::new();
    env.start_all();
    let src = env.path().join("src");
    mixed_tree(&src, 200);
    let total = dir_bytes(&src);
    assert!(total >= 200 << 20, "dataset is {total} bytes");
    let v1 = snapshot(&src);

    let b1 = env.backup(&[
        src.to_str().unwrap(),
        "--dataset",
        "mixed",
        "--tag",
        "finance",
    ]);
    assert_eq!(b1["bytes_read"].as_u64().unwrap(), total);
    assert!(b1["chunks_new"].as_u64().unwrap() > 100, "{b1}");
    // The duplicated slice is stored once: less stored than read.
    assert!(b1["bytes_stored"].as_u64().unwrap() < total, "{b1}");

    let out1 = env.path().join("restore1");
    let id1 = b1["backup_id"].as_str().unwrap().to_string();
    env.ok(&["restore", &id1, "--to", out1.to_str().unwrap()]);
    assert_eq!(
        snapshot(&out1.join("src")),
        v1,
        "first restore differs from the source"
    );

    // Change about 1%: rewrite 1 MiB inside the random file, insert text in
    // the middle of the dump, append to a WAL segment, add one file.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(src.join("db/base.bin"))
            .unwrap();
        f.seek(SeekFrom::Start(30 << 20)).unwrap();
        f.write_all(&vec![0x5a; 1 << 20]).unwrap();
        let dump = std::fs::read(src.join("db/dump.sql")).unwrap();
        let mid = dump.len() / 2;
        let mut changed = dump[..mid].to_vec();
        changed
            .extend_from_slice(&b"INSERT INTO accounts VALUES (42, 'changed');\n".repeat(10_000));
        changed.extend_from_slice(&dump[mid..]);
        std::fs::write(src.join("db/dump.sql"), changed).unwrap();
        let mut wal = std::fs::OpenOptions::new()
            .append(true)
            .open(src.join("db/wal/000000010000000000000001"))
            .unwrap();
        wal.write_all(&vec![7u8; 256 << 10]).unwrap();
        text_file(&src.join("docs/new.txt"), 100_000, 99);
    }
    let v2 = snapshot(&src);
    let b2 = env.backup(&[src.to_str().unwrap(), "--dataset", "mixed"]);
    let read2 = b2["bytes_read"].as_u64().unwrap();
    let stored2 = b2["bytes_stored"].as_u64().unwrap();
    assert!(
        (stored2 as f64) < 0.05 * read2 as f64,
        "incremental backup stored {stored2} of {read2} bytes (over 5%): {b2}"
    );
    let id2 = b2["backup_id"].as_str().unwrap();
    let out2 = env.path().join("restore2");
    env.ok(&["restore", id2, "--to", out2.to_str().unwrap()]);
    assert_eq!(
        snapshot(&out2.join("src")),
        v2,
        "second restore differs from the changed source"
    );
    // The first backup is still intact after the second.
    let out3 = env.path().join("restore3");
    env.ok(&["restore", &id1, "--to", out3.to_str().unwrap()]);
    assert_eq!(snapshot(&out3.join("src")), v1);

    // list: newest first, filters work.
    let list = env.json(&["list", "--json"]);
    let ids: Vec<&str> = list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["backup_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id2, id1.as_str()]);
    let finance = env.json(&["list", "--tag", "finance", "--json"]);
    assert_eq!(finance["backups"].as_array().unwrap().len(), 1);
    let show = env.json(&["show", &id1, "--json"]);
    assert_eq!(show["status"], "completed");
    assert_eq!(show["dataset"], "mixed");
    env.ok(&["audit", "verify"]);
}

/// Stages run as separate processes; ingest and store are killed with
/// SIGKILL mid-backup and restarted; the backup still completes and restores
/// identical.
#[test]
fn kill_9_of_stage_workers_mid_backup() {
    let mut env = Env::with(Options {
        ack_wait_secs: 2,
        max_deliver: 10,
        ..Options::default()
    });
    env.init();
    env.serve(&["ledger"]);
    let encrypt = env.serve(&["encrypt"]);
    env.serve(&["verify"]);
    let ingest = env.serve(&["ingest"]);
    let store = env.serve(&["store"]);
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 60 << 20);
    text_file(&src.join("b.txt"), 40 << 20, 3);
    let before = snapshot(&src);

    let mut backup = env.cmd();
    backup.args(["backup", "--json", src.to_str().unwrap()]);
    let child = Guarded::spawn(backup);

    // Kill ingest once it is reading, and restart it; then kill encrypt
    // and the store worker once chunks flow, and restart them (ingest asks
    // encrypt again for what was never answered).
    let db = env.db.clone();
    wait_for(60, "ingest to start", || {
        (psql(&db, "select count(*) from backups where status = 'running'") == "1").then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    env.worker(ingest).kill9();
    std::thread::sleep(Duration::from_secs(1));
    env.serve(&["ingest"]);
    wait_for(120, "chunks to be stored", || {
        (psql(&db, "select count(*) from chunk_copies")
            .parse::<u64>()
            .unwrap()
            > 5)
        .then_some(())
    });
    env.worker(encrypt).kill9();
    env.worker(store).kill9();
    std::thread::sleep(Duration::from_secs(1));
    env.serve(&["encrypt"]);
    env.serve(&["store"]);

    let out = child.wait_output();
    assert!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "completed", "{v}");
    let id = v["backup_id"].as_str().unwrap();
    let restored = env.path().join("restored");
    env.ok(&["restore", id, "--to", restored.to_str().unwrap()]);
    assert_eq!(snapshot(&restored.join("src")), before);
    // Redeliveries were recorded once each.
    env.ok(&["audit", "verify"]);
    let dup = psql(&db, "select count(*) from (select event_id from ledger_entries group by event_id having count(*) > 1) d");
    assert_eq!(dup, "0");
}

fn dlq_messages(env: &Env) -> Vec<(String, String, usize)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use futures::StreamExt;
        let client = async_nats::connect(env.nats.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let stream_name = format!("{}_DLQ", env.prefix.to_uppercase());
        let stream = js.get_stream(&stream_name).await.unwrap();
        let consumer: async_nats::jetstream::consumer::PullConsumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
            .await
            .unwrap();
        let mut out = Vec::new();
        let mut batch = consumer
            .fetch()
            .max_messages(100)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .unwrap();
        while let Some(Ok(m)) = batch.next().await {
            let h = m.headers.clone().unwrap_or_default();
            out.push((
                h.get("Cairn-Dlq-Stage")
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                h.get("Cairn-Dlq-Reason")
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                m.payload.len(),
            ));
        }
        out
    })
}

/// An older release kept plaintext waiting for encrypt in a memory stream;
/// the first Cairn process to start deletes it, chunks and all.
#[test]
fn an_older_plaintext_stream_is_deleted_at_start() {
    let env = Env::new();
    let stream = format!("{}_PLAIN", env.prefix.to_uppercase());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let exists = |rt: &tokio::runtime::Runtime| {
        rt.block_on(async {
            let client = async_nats::connect(env.nats.url()).await.unwrap();
            let js = async_nats::jetstream::new(client);
            js.get_stream(&stream).await.is_ok()
        })
    };
    rt.block_on(async {
        let client = async_nats::connect(env.nats.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: stream.clone(),
            subjects: vec![format!("{}.plain.>", env.prefix)],
            storage: async_nats::jetstream::stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
        js.publish(
            format!("{}.plain.x", env.prefix),
            "a plaintext chunk".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    });
    assert!(exists(&rt));
    env.init();
    assert!(!exists(&rt), "{stream} is still there");
}

/// Sends a core-NATS request and decodes the (MessagePack) answer.
fn request_raw(env: &Env, subject: &str, payload: &[u8]) -> serde_json::Value {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(env.nats.url()).await.unwrap();
        let reply = client
            .request(subject.to_string(), payload.to_vec().into())
            .await
            .unwrap();
        let answer: cairn_events::Answer =
            cairn_events::decode_reply(&reply.payload, "answer").unwrap();
        serde_json::to_value(answer).unwrap()
    })
}

/// A malformed message on every consumed subject ends in the dead-letter
/// stream with its reason (and an `event.deadlettered` ledger entry), and the
/// pipeline keeps working.
#[test]
fn malformed_messages_are_dead_lettered_and_pipeline_keeps_working() {
    let mut env = Env::new();
    env.start_all();
    let p = env.prefix.clone();
    // One backup first, so every consumer exists and works.
    let src = env.source_dir("src");
    text_file(&src.join("a.txt"), 3 << 20, 1);
    env.backup(&[src.to_str().unwrap()]);

    let garbage: &[u8] = b"\x92\xa3not an event";
    for subject in [
        format!("{p}.evt.backup.requested.bad1"),
        format!("{p}.evt.backup.ingested.bad2"),
        format!("{p}.evt.forget.requested.bad3"),
        format!("{p}.sealed.bad5"),
    ] {
        publish_raw(&env, &subject, garbage);
    }
    // Plaintext goes to encrypt as a core-NATS request: a malformed one is
    // refused in the answer, naming why, and dead-lettered too.
    let answer = request_raw(&env, &format!("{p}.seal.bad4"), garbage);
    assert_eq!(answer["answer"], "refused", "{answer}");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .contains("malformed message"),
        "{answer}"
    );
    let expected = [
        "ingest",
        "verify",
        "retention",
        "encrypt",
        "store:local",
        "ledger",
    ];
    let dlq = wait_for(60, "dead letters from every stage", || {
        let d = dlq_messages(&env);
        let stages: std::collections::HashSet<&str> =
            d.iter().map(|(s, _, _)| s.as_str()).collect();
        expected.iter().all(|s| stages.contains(s)).then_some(d)
    });
    for (stage, reason, len) in &dlq {
        assert!(reason.contains("malformed message"), "{stage}: {reason}");
        if stage == "encrypt" {
            assert_eq!(
                *len, 0,
                "a dead letter of a plaintext request must not keep its payload"
            );
        }
    }
    // The ledger recorded each dead letter (one per stage per message).
    let n = wait_for(30, "dead-letter events in the ledger", || {
        let n: u64 = psql(
            &env.db,
            "select count(*) from ledger_entries where kind = 'event.deadlettered'",
        )
        .parse()
        .unwrap();
        (n >= 8).then_some(n)
    });
    assert!(n >= 8, "{n}");
    // And the pipeline still works.
    text_file(&src.join("b.txt"), 1 << 20, 2);
    let b = env.backup(&[src.to_str().unwrap()]);
    let out = env.path().join("out");
    env.ok(&[
        "restore",
        b["backup_id"].as_str().unwrap(),
        "--to",
        out.to_str().unwrap(),
    ]);
    assert_eq!(snapshot(&out.join("src")), snapshot(&src));
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Data holding a unique marker is backed up (directory and stdin); every
/// byte Cairn wrote — JetStream store, network, PostgreSQL, logs and command
/// output — is searched for it. It must be found only in the restore.
#[test]
fn no_plaintext_outside_source_and_restore() {
    let mut env = Env::new();
    env.start_all();
    let marker = format!("CAIRN-MARKER-{}", hex::encode(rand::random::<[u8; 12]>()));
    let src = env.path().join("secret-src");
    std::fs::create_dir_all(&src).unwrap();
    // The marker in file content (compressible and not), and in a file name.
    std::fs::write(
        src.join("notes.txt"),
        format!("top secret: {marker}\n").repeat(1000),
    )
    .unwrap();
    let mut raw = vec![0u8; 300_000];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut raw);
    raw.extend_from_slice(marker.as_bytes());
    std::fs::write(src.join("blob.bin"), &raw).unwrap();
    std::fs::write(src.join(format!("{marker}.txt")), b"x").unwrap();
    let b = env.backup(&[src.to_str().unwrap()]);
    let out = env.run_with(
        env.cmd(),
        &["backup", "--stdin", "--dataset", "piped", "--json"],
        Some(format!("{marker}\n").repeat(100).as_bytes()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restore = env.path().join("restored");
    env.ok(&[
        "restore",
        b["backup_id"].as_str().unwrap(),
        "--to",
        restore.to_str().unwrap(),
    ]);

    let m = marker.as_bytes();
    // Sanity: the search finds the marker where it must be.
    assert!(Env::files_under(&restore)
        .iter()
        .any(|f| contains(&std::fs::read(f).unwrap(), m)));
    // Stop the workers so every write is flushed, then search.
    env.worker(0).kill9();
    let mut searched = 0u64;
    let mut places = vec![
        env.nats.store_dir.clone(),
        env.network_dir("local"),
        env.logs_dir(),
    ];
    places.push(env.path().join("data"));
    for place in &places {
        for f in Env::files_under(place) {
            let bytes = std::fs::read(&f).unwrap();
            searched += bytes.len() as u64;
            assert!(
                !contains(&bytes, m),
                "plaintext marker found in {}",
                f.display()
            );
            assert!(
                !f.to_string_lossy().contains(&marker),
                "marker in a file name: {}",
                f.display()
            );
        }
    }
    // PostgreSQL: the database's contents, and the server's files where the
    // test can read them (WAL and this database's directory).
    let dump = std::process::Command::new("pg_dump")
        .args(["-h", "127.0.0.1", "-U", "postgres", "--data-only", &env.db])
        .output()
        .unwrap();
    assert!(dump.status.success());
    searched += dump.stdout.len() as u64;
    assert!(
        !contains(&dump.stdout, m),
        "plaintext marker found in PostgreSQL"
    );
    psql(&env.db, "CHECKPOINT");
    let data_dir = psql(&env.db, "show data_directory");
    let oid = psql(
        &env.db,
        &format!("select oid from pg_database where datname = '{}'", env.db),
    );
    for sub in ["pg_wal".to_string(), format!("base/{oid}")] {
        let dir = Path::new(&data_dir).join(sub);
        for f in Env::files_under(&dir) {
            if let Ok(bytes) = std::fs::read(&f) {
                searched += bytes.len() as u64;
                assert!(
                    !contains(&bytes, m),
                    "plaintext marker found in {}",
                    f.display()
                );
            }
        }
    }
    assert!(searched > 1 << 20, "searched only {searched} bytes");
}

/// Wrong passphrase, tampered chunk, missing chunk, bad source, unknown
/// network: each gives a clear error and a non-zero exit, and nothing
/// already stored is lost.
#[test]
fn bad_input_gives_clear_errors_and_loses_nothing() {
    let mut env = Env::new();
    env.start_all();
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 3 << 20);
    text_file(&src.join("b.txt"), 2 << 20, 5);
    let b1 = env.backup(&[src.to_str().unwrap()]);
    let id1 = b1["backup_id"].as_str().unwrap().to_string();
    // Every chunk on the network now belongs to backup 1.
    let chunks_of_b1 = env.data_objects("local");
    let other = env.source_dir("other");
    random_file(&other.join("c.bin"), 2 << 20);
    let b2 = env.backup(&[other.to_str().unwrap()]);
    let id2 = b2["backup_id"].as_str().unwrap().to_string();

    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();

    // Wrong passphrase.
    let mut c = env.cmd();
    c.env("CAIRN_PASSPHRASE", "not the passphrase");
    let o = env.run_with(c, &["restore", &id1, "--to", "x"], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("wrong passphrase"), "{}", stderr(&o));

    // Unknown backup.
    let o = env.run(&["restore", "no-such-backup", "--to", "x"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));

    // Nonexistent path and unknown network.
    let o = env.run(&["backup", "/does/not/exist"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/does/not/exist"), "{}", stderr(&o));
    let o = env.run(&["backup", src.to_str().unwrap(), "--network", "mars"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown network \"mars\""),
        "{}",
        stderr(&o)
    );
    // --force-read names files to read: a stream or a database has none.
    for other in [
        &["--stdin", "--dataset", "x"][..],
        &["--postgres", "postgres://h/db"][..],
    ] {
        let mut a = vec!["backup", "--force-read"];
        a.extend_from_slice(other);
        let o = env.run(&a);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains("cannot be used with") && e.contains("--force-read"),
            "{e}"
        );
    }
    // An option without the one it goes with is refused by name, not
    // ignored (clap lets these through when the other would conflict with
    // the paths given).
    let src_arg = src.to_str().unwrap();
    for (args, says) in [
        (
            &["--stdin-name", "x", src_arg][..],
            "--stdin-name goes with --stdin",
        ),
        (
            &["--redis-password-file", "/f", src_arg][..],
            "--redis-password-file goes with --redis",
        ),
        (
            &["--postgres-password-file", "/f", src_arg][..],
            "--postgres-password-file goes with",
        ),
    ] {
        let mut a = vec!["backup"];
        a.extend_from_slice(args);
        let o = env.run(&a);
        assert!(
            !o.status.success() && stderr(&o).contains(says),
            "{args:?}: {}",
            stderr(&o)
        );
    }

    // Tamper with one byte of one chunk of backup 1.
    let victim = chunks_of_b1
        .iter()
        .max_by_key(|f| std::fs::metadata(f).unwrap().len())
        .unwrap()
        .clone();
    let original = std::fs::read(&victim).unwrap();
    let mut bad = original.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x01;
    std::fs::write(&victim, &bad).unwrap();
    let chunk_name = victim.file_name().unwrap().to_string_lossy().into_owned();
    let target = env.path().join("t1");
    let o = env.run(&["restore", &id1, "--to", target.to_str().unwrap()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains(&chunk_name) && e.contains("authentication failed"),
        "{e}"
    );
    // No half-written file under its real name.
    assert!(
        !target.join("src/a.bin").exists()
            || snapshot(&target.join("src")).get("a.bin") == snapshot(&src).get("a.bin")
    );

    // Missing chunk.
    std::fs::remove_file(&victim).unwrap();
    let o = env.run(&["restore", &id1, "--to", target.to_str().unwrap()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains(&chunk_name) && e.contains("not found"), "{e}");

    // Nothing else was lost: the other backup restores, and once the chunk is
    // back, so does the first.
    let t2 = env.path().join("t2");
    env.ok(&["restore", &id2, "--to", t2.to_str().unwrap()]);
    assert_eq!(snapshot(&t2.join("other")), snapshot(&other));
    std::fs::write(&victim, &original).unwrap();
    let t3 = env.path().join("t3");
    env.ok(&["restore", &id1, "--to", t3.to_str().unwrap()]);
    assert_eq!(snapshot(&t3.join("src")), snapshot(&src));
    env.ok(&["audit", "verify"]);
}

/// A backup request published by a governance factory for a path the ingest
/// worker cannot read ends in `backup.failed`, with the reason, seen by a
/// plain NATS subscriber; the factory's happy path ends in `backup.completed`.
#[test]
fn factory_requests_and_follows_events() {
    use cairn_events::*;
    let mut env = Env::new();
    env.start_all();
    let src = env.source_dir("src");
    text_file(&src.join("gov.json"), 500_000, 8);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let p = env.prefix.clone();
    let url = env.nats.url();
    let outcome = |paths: Vec<String>| {
        rt.block_on(async {
            use futures::StreamExt;
            let client = async_nats::connect(url.clone()).await.unwrap();
            let id = BackupId::generate();
            // Every event of the backup; its request carries the dataset
            // after the id.
            let sub = client.subscribe(format!("{p}.evt.*.*.{id}")).await.unwrap();
            let request = client
                .subscribe(format!("{p}.evt.*.*.{id}.*"))
                .await
                .unwrap();
            let mut sub = futures::stream::select(sub, request);
            let env = Envelope::new(
                "github-governance-factory",
                id.clone(),
                Event::BackupRequested(BackupRequest {
                    dataset: "github_governance".into(),
                    tags: vec!["finance".into(), "q3".into()],
                    source: Source::Paths { paths },
                    networks: vec![],
                    min_copies: None,
                    requested_by: "factory".into(),
                    force_read: false,
                }),
                &[],
            );
            let js = async_nats::jetstream::new(client.clone());
            // The subject names the backup and its dataset (what a
            // factory's NATS user is allowed).
            js.publish(
                format!("{p}.evt.backup.requested.{id}.github_governance"),
                encode(&env).into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
            let mut kinds = Vec::new();
            loop {
                let msg = tokio::time::timeout(Duration::from_secs(60), sub.next())
                    .await
                    .unwrap()
                    .unwrap();
                let e: Envelope = decode(&msg.payload, "event").unwrap();
                kinds.push(e.event.kind().to_string());
                if let Some((status, o)) = e.event.outcome() {
                    return (status.to_string(), o.clone(), kinds);
                }
            }
        })
    };
    let (status, o, kinds) = outcome(vec![src.to_string_lossy().into_owned()]);
    assert_eq!(status, "completed", "{o:?}");
    for k in [
        "backup.requested",
        "backup.started",
        "object.sealed",
        "object.stored",
        "backup.ingested",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} not seen in {kinds:?}");
    }
    let (status, o, _) = outcome(vec!["/nonexistent/governance/export".into()]);
    assert_eq!(status, "failed");
    assert!(
        o.reasons[0].contains("/nonexistent/governance/export"),
        "{:?}",
        o.reasons
    );
}

/// `cairn backup` with no worker running says so and how to start one.
#[test]
fn backup_without_workers_says_how_to_start_them() {
    let env = Env::new();
    env.init();
    let src = env.source_dir("src");
    std::fs::write(src.join("a"), b"a").unwrap();
    let o = env.run(&["backup", src.to_str().unwrap(), "--start-timeout", "2"]);
    assert_eq!(o.status.code(), Some(4));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("no ingest worker") && e.contains("cairn serve"),
        "{e}"
    );
}

/// A PostgreSQL database is dumped, backed up, and restored into an empty
/// database with identical contents; `--stdout` gives the dump back.
#[test]
fn postgres_backup_and_restore() {
    let mut env = Env::new();
    env.start_all();
    let src_db = format!("{}_src", env.db);
    let dst_db = format!("{}_dst", env.db);
    psql("postgres", &format!("CREATE DATABASE {src_db}"));
    psql("postgres", &format!("CREATE DATABASE {dst_db}"));
    psql(
        &src_db,
        "CREATE TABLE accounts (id int primary key, owner text, balance numeric);
         INSERT INTO accounts SELECT g, 'owner ' || g, g * 1.5 FROM generate_series(1, 50000) g;
         CREATE TABLE audit (at timestamptz default now(), note text);
         INSERT INTO audit (note) SELECT md5(g::text) FROM generate_series(1, 1000) g;",
    );
    let checksum = |db: &str| {
        psql(
            db,
            "SELECT md5(string_agg(id || owner || balance, ',' ORDER BY id)) || (SELECT count(*) FROM audit) FROM accounts",
        )
    };
    let url = format!("postgres://postgres@127.0.0.1:5432/{src_db}");
    let b = env.backup(&["--postgres", &url, "--tag", "crm"]);
    assert_eq!(b["files"], 1);
    let id = b["backup_id"].as_str().unwrap();
    let show = env.json(&["show", id, "--json"]);
    assert_eq!(show["dataset"], src_db.as_str());
    let dst = format!("postgres://postgres@127.0.0.1:5432/{dst_db}");
    env.ok(&["restore", id, "--to-postgres", &dst]);
    assert_eq!(checksum(&dst_db), checksum(&src_db));
    // `--stdout` gives the dump back, byte for byte the file a directory
    // restore writes, and pg_restore reads it.
    let o = env.run(&["restore", id, "--stdout"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dir = env.path().join("dump");
    env.ok(&["restore", id, "--to", dir.to_str().unwrap()]);
    let file = std::fs::read(dir.join(format!("{src_db}.pgdump"))).unwrap();
    assert!(file.starts_with(b"PGDMP"), "not a custom-format dump");
    assert!(o.stdout == file, "--stdout differs from the restored file");
    let listed = env.path().join("listed.pgdump");
    std::fs::write(&listed, &o.stdout).unwrap();
    let toc = std::process::Command::new("pg_restore")
        .arg("--list")
        .arg(&listed)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&toc.stdout).contains("TABLE DATA public accounts"),
        "{}",
        String::from_utf8_lossy(&toc.stderr)
    );
    // A password in the URL is refused before anything is recorded.
    let o = env.run(&[
        "backup",
        "--postgres",
        &format!("postgres://postgres:pw@127.0.0.1/{src_db}"),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("password"));
    psql("postgres", &format!("DROP DATABASE {src_db} WITH (FORCE)"));
    psql("postgres", &format!("DROP DATABASE {dst_db} WITH (FORCE)"));
}

/// Forget takes a backup out of the catalogue and deletes no chunk; `gc`
/// then frees the chunks only it used, reports what it freed, and what it
/// shared with another backup stays: that backup still restores.
#[test]
fn forget_then_gc_frees_only_unshared_chunks() {
    let mut env = Env::new();
    env.start_all();
    let shared = env.source_dir("shared");
    random_file(&shared.join("common.bin"), 4 << 20);
    let b1 = env.backup(&[shared.to_str().unwrap()]);
    random_file(&shared.join("only-in-second.bin"), 4 << 20);
    let b2 = env.backup(&[shared.to_str().unwrap()]);
    let before = env.data_objects("local").len();
    let id2 = b2["backup_id"].as_str().unwrap();
    let f = env.json(&["forget", id2, "--json"]);
    assert!(f["objects_deleted"].as_u64().unwrap() >= 2, "{f}");
    assert_eq!(
        env.data_objects("local").len(),
        before,
        "forget deleted chunks"
    );
    let g = env.json(&["gc", "--grace", "0s", "--json"]);
    let local = &g["networks"][0];
    assert_eq!(local["outcome"], "swept", "{g}");
    let deleted = local["deleted"].as_u64().unwrap();
    assert!(deleted >= 4, "{g}");
    assert!(local["bytes_freed"].as_u64().unwrap() >= 4 << 20, "{g}");
    assert_eq!(before - env.data_objects("local").len(), deleted as usize);
    let o = env.run(&["restore", id2, "--to", "gone"]);
    assert!(!o.status.success());
    let out = env.path().join("out");
    std::fs::remove_file(shared.join("only-in-second.bin")).unwrap();
    env.ok(&[
        "restore",
        b1["backup_id"].as_str().unwrap(),
        "--to",
        out.to_str().unwrap(),
    ]);
    assert_eq!(snapshot(&out.join("shared")), snapshot(&shared));
    let list = env.json(&["list", "--json"]);
    assert_eq!(list["backups"].as_array().unwrap().len(), 1);
    let o = env.run(&["forget", id2]);
    assert!(
        !o.status.success(),
        "forgetting twice must say the backup is gone"
    );
}

/// `deploy/streams.json` is what `cairn setup --print` prints with the
/// default configuration: the operators' copy never drifts from the code.
#[test]
fn deploy_streams_json_matches_the_code() {
    let empty = tempfile::tempdir().unwrap();
    let mut c = std::process::Command::new(cairn_bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("CAIRN_") {
            c.env_remove(k);
        }
    }
    let out = c
        .args(["setup", "--print"])
        .current_dir(empty.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/streams.json");
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert!(
        printed == stored,
        "deploy/streams.json is out of date: regenerate it as deploy/README.md says"
    );
    // The annotated example configuration loads (unknown keys would fail).
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/cairn.example.toml");
    let out = std::process::Command::new(cairn_bin())
        .args(["--config", example, "setup", "--print"])
        .current_dir(empty.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A dump compresses about 90×, so its chunks are stored in packs, many to a
/// pack: restore reads them a run at a time, and a run is bounded by the
/// plaintext it opens to, not only by its bytes in the pack. Peak memory of
/// the restore stays far below the file's size.
#[test]
fn restoring_well_compressed_data_stays_in_bounded_memory() {
    use std::io::Write;
    let mut env = Env::new();
    env.start_all();
    let src = env.source_dir("src");
    let mut f = std::io::BufWriter::new(std::fs::File::create(src.join("dump.sql")).unwrap());
    let mut n = 0usize;
    let mut i = 0u64;
    while n < 300 << 20 {
        // pgbench_accounts as pg_dump writes it: ids, zeros, 84 blanks.
        let line = format!("{i}\t{}\t0\t{:84}\n", i / 100_000 + 1, "");
        f.write_all(line.as_bytes()).unwrap();
        n += line.len();
        i += 1;
    }
    drop(f);
    let b = env.backup(&[src.to_str().unwrap()]);
    let id = b["backup_id"].as_str().unwrap();
    assert!(
        !env.data_objects("local")
            .iter()
            .any(|p| p.starts_with(env.network_dir("local").join("chunks"))),
        "every chunk of so compressible a file is packed"
    );
    let out = env.path().join("out");
    let mut c = env.cmd();
    c.args(["restore", id, "--to", out.to_str().unwrap()]);
    let (status, peak_kib) = run_watching_peak_rss(c);
    assert!(status.success());
    assert_eq!(snapshot(&out.join("src")), snapshot(&src));
    assert!(
        peak_kib < 128 << 10,
        "restoring 300 MiB took {} MiB at its peak",
        peak_kib >> 10
    );
}

/// Runs `c` to its end, reading its peak resident memory (VmHWM, KiB) as it
/// goes; the last reading is taken just before it exits.
fn run_watching_peak_rss(mut c: std::process::Command) -> (std::process::ExitStatus, u64) {
    let mut child = c
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_file) {
            if let Some(kib) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kib);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (status, peak);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Disaster recovery: with the broker and the database gone, one network and
/// the passphrase still restore every backup.
#[test]
fn restore_needs_neither_broker_nor_database() {
    let mut env = Env::new();
    env.init();
    let serve = env.serve(&["all"]);
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 2 << 20);
    text_file(&src.join("b.txt"), 1 << 20, 4);
    let b = env.backup(&[src.to_str().unwrap()]);
    env.worker(serve).kill9();
    let mut c = env.cmd();
    c.env("CAIRN_NATS__URL", "nats://127.0.0.1:1").env(
        "CAIRN_POSTGRES__URL",
        "host=127.0.0.1 port=1 user=nobody dbname=gone",
    );
    let out = env.path().join("out");
    let o = env.run_with(
        c,
        &[
            "restore",
            b["backup_id"].as_str().unwrap(),
            "--to",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not recorded in the ledger"));
    assert_eq!(snapshot(&out.join("src")), snapshot(&src));
}

/// Verify reads back a backup's data objects only where the network's
/// `read_back` asks for it, says which way it checked each network, and a
/// network whose store worker never wrote them is found out either way.
#[test]
fn verify_reads_back_where_the_network_asks_and_finds_unstored_objects_either_way() {
    let mut env = Env::with(Options {
        extra_networks: vec!["second".into()],
        extra_toml: "\n[[networks]]\nname = \"reread\"\nkind = \"fs\"\nread_back = true\n".into(),
        verify_timeout_secs: 5,
        ..Options::default()
    });
    env.init();
    // No store worker for `second`: nothing reaches it.
    env.serve(&["all", "--network", "local", "--network", "reread"]);
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 3 << 20);
    text_file(&src.join("b.txt"), 100_000, 1);
    let o = env.run(&["backup", "--json", src.to_str().unwrap()]);
    let v = degraded_outcome(&o);
    let report = |name: &str| {
        v["networks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["network"] == name)
            .unwrap_or_else(|| panic!("no {name} in {v}"))
            .clone()
    };
    let (local, reread, second) = (report("local"), report("reread"), report("second"));
    assert_eq!(
        (&local["ok"], &local["checked"]),
        (&json!(true), &json!("stored")),
        "{v}"
    );
    assert_eq!(
        (&reread["ok"], &reread["checked"]),
        (&json!(true), &json!("read")),
        "{v}"
    );
    // Held on the store worker's word, and that word never came: every
    // object the backup wrote (data objects included) is missing there.
    assert_eq!(second["ok"], json!(false), "{v}");
    assert_eq!(second["checked"], json!("stored"), "{v}");
    let written = env.data_objects("local").len() as u64;
    assert!(
        second["missing"].as_u64().unwrap() > written,
        "{written} data objects plus the chunk list and manifest: {v}"
    );
    assert!(
        v["reasons"][0].as_str().unwrap().contains("network second"),
        "{v}"
    );
    // The same policy shows in the ledger's record of the outcome.
    let id = v["backup_id"].as_str().unwrap();
    let show = env.json(&["show", id, "--json"]);
    let text = show.to_string();
    assert!(
        text.contains("\"checked\":\"stored\"") && text.contains("\"checked\":\"read\""),
        "{show}"
    );
}

/// Two networks: a backup goes to both (one store worker each); a chunk
/// corrupted on one is read from the other at restore; `--network` limits a
/// backup to one; a network down during a backup leaves it degraded.
#[test]
fn several_networks_fallback_and_degraded() {
    let mut env = Env::with(Options {
        extra_networks: vec!["second".into()],
        verify_timeout_secs: 10,
        ..Options::default()
    });
    env.start_all();
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 3 << 20);
    let b = env.backup(&[src.to_str().unwrap()]);
    let nets: Vec<&str> = b["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["network"].as_str().unwrap())
        .collect();
    assert_eq!(nets, vec!["local", "second"]);
    let id = b["backup_id"].as_str().unwrap();
    let chunks = env.data_objects("local");
    assert_eq!(chunks.len(), env.data_objects("second").len());
    let originals: Vec<Vec<u8>> = chunks.iter().map(|c| std::fs::read(c).unwrap()).collect();
    for (c, bytes) in chunks.iter().zip(&originals) {
        let mut bad = bytes.clone();
        bad[40] ^= 0xff;
        std::fs::write(c, bad).unwrap();
    }
    let out = env.path().join("out");
    let r = env.json(&["restore", id, "--to", out.to_str().unwrap(), "--json"]);
    assert_eq!(snapshot(&out.join("src")), snapshot(&src));
    assert!(
        r["chunks_from"]["second"].as_u64().unwrap() >= chunks.len() as u64,
        "{r}"
    );
    for (c, bytes) in chunks.iter().zip(&originals) {
        std::fs::write(c, bytes).unwrap();
    }

    // Only one network.
    std::fs::write(src.join("b.txt"), b"only on second").unwrap();
    let one = env.backup(&[src.to_str().unwrap(), "--network", "second"]);
    assert_eq!(one["networks"].as_array().unwrap().len(), 1);

    // A network that cannot be written: degraded, naming it.
    let second = env.network_dir("second");
    std::fs::remove_dir_all(&second).unwrap();
    std::fs::write(&second, b"not a directory").unwrap();
    std::fs::write(src.join("c.txt"), b"new data while second is down").unwrap();
    let o = env.run(&["backup", "--json", src.to_str().unwrap()]);
    let v = degraded_outcome(&o);
    assert_eq!(v["status"], "degraded");
    assert!(
        v["reasons"][0].as_str().unwrap().contains("network second"),
        "{v}"
    );
}

/// Two `serve all` processes share every consumer: concurrent backups all
/// complete, and each event is in the ledger once.
#[test]
fn replicas_share_the_work() {
    let mut env = Env::new();
    env.start_all();
    env.serve(&["all"]);
    let mut children = Vec::new();
    for i in 0..4 {
        let src = env.path().join(format!("src{i}"));
        std::fs::create_dir_all(&src).unwrap();
        random_file(&src.join("data.bin"), 2 << 20);
        text_file(&src.join("text.txt"), 1 << 20, i);
        let mut c = env.cmd();
        c.args(["backup", "--json", src.to_str().unwrap()]);
        children.push((src, Guarded::spawn(c)));
    }
    for (src, child) in children {
        let out = child.wait_output();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let restored = env
            .path()
            .join(format!("r-{}", v["backup_id"].as_str().unwrap()));
        env.ok(&[
            "restore",
            v["backup_id"].as_str().unwrap(),
            "--to",
            restored.to_str().unwrap(),
        ]);
        let name = src.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(snapshot(&restored.join(name)), snapshot(&src));
    }
    let dup = psql(
        &env.db,
        "select count(*) from (select event_id from ledger_entries group by event_id having count(*) > 1) d",
    );
    assert_eq!(dup, "0");
    env.ok(&["audit", "verify"]);
    // Both replicas did work: each process records its events under its own
    // source (`encrypt@host:pid`), and both sealed chunks.
    let mut sealed_by: std::collections::BTreeMap<String, usize> = Default::default();
    for e in logged_events(&env.db) {
        if let cairn_events::Event::ObjectSealed(_) = e.event {
            if e.source.starts_with("encrypt@") {
                *sealed_by.entry(e.source).or_default() += 1;
            }
        }
    }
    assert_eq!(
        sealed_by.len(),
        2,
        "one encrypt replica did all the work: {sealed_by:?}"
    );
    assert!(sealed_by.values().all(|n| *n > 0), "{sealed_by:?}");
}

/// Redundancy policy: `--min-copies 1` completes with one network down
/// (reporting it), and a dataset policy in the config chooses networks.
#[test]
fn min_copies_and_dataset_policies() {
    let mut env = Env::with(Options {
        extra_networks: vec!["second".into()],
        extra_toml:
            "\n[datasets.critical]\nnetworks = [\"local\"]\n\n[datasets.relaxed]\nmin_copies = 1\n"
                .into(),
        verify_timeout_secs: 10,
        max_deliver: 2,
        ..Options::default()
    });
    env.start_all();
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 1 << 20);
    let c = env.backup(&[src.to_str().unwrap(), "--dataset", "critical"]);
    let nets: Vec<&str> = c["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["network"].as_str().unwrap())
        .collect();
    assert_eq!(nets, vec!["local"]);
    // Take `second` down.
    let second = env.network_dir("second");
    std::fs::remove_dir_all(&second).unwrap();
    std::fs::write(&second, b"down").unwrap();
    std::fs::write(src.join("b.txt"), b"while second is down").unwrap();
    let r = env.backup(&[src.to_str().unwrap(), "--dataset", "relaxed"]);
    let down = r["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["network"] == "second")
        .unwrap();
    assert_eq!(down["ok"], false, "{r}");
    let o = env.run(&[
        "backup",
        "--json",
        src.to_str().unwrap(),
        "--dataset",
        "strict",
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let o = env.run(&[
        "backup",
        src.to_str().unwrap(),
        "--dataset",
        "x",
        "--min-copies",
        "1",
    ]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning: network second"));
    let o = env.run(&[
        "backup",
        "--json",
        src.to_str().unwrap(),
        "--min-copies",
        "3",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "failed");
    assert!(
        v["reasons"][0]
            .as_str()
            .unwrap()
            .contains("min_copies 3 is impossible"),
        "{v}"
    );
}

/// Verify reads back what a backup wrote and checks by listing that the
/// chunks it shares with earlier backups are still there: a shared chunk lost
/// since is reported, named.
#[test]
fn verify_notices_a_lost_shared_chunk() {
    let mut env = Env::new();
    env.start_all();
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 3 << 20);
    env.backup(&[src.to_str().unwrap()]);
    let lost = env.largest_chunk("local");
    std::fs::remove_file(&lost).unwrap();
    let o = env.run(&["backup", "--json", src.to_str().unwrap()]);
    assert!(!o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "failed", "{v}");
    let name = lost.file_name().unwrap().to_string_lossy().into_owned();
    assert!(v["reasons"][0].as_str().unwrap().contains(&name), "{v}");
}

/// A `--stdin` backup (the CLI is its own ingest stage) restores byte for
/// byte, to standard output and to a directory; compressible input is
/// stored compressed (the repository is much smaller than what was read).
#[test]
fn stdin_backups_restore_identical_and_compress() {
    let mut env = Env::new();
    env.start_all();
    let text = env.path().join("input.txt");
    text_file(&text, 20 << 20, 9);
    let input = std::fs::read(&text).unwrap();
    let o = env.run_with(
        env.cmd(),
        &[
            "backup",
            "--stdin",
            "--dataset",
            "piped",
            "--stdin-name",
            "dump.txt",
            "--json",
        ],
        Some(&input),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let b: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(b["status"], "completed", "{b}");
    assert_eq!(b["bytes_read"], input.len() as u64, "{b}");
    let id = b["backup_id"].as_str().unwrap();
    let out = env.run(&["restore", id, "--stdout"]);
    assert!(out.status.success());
    assert!(out.stdout == input, "--stdout differs from the input");
    let dir = env.path().join("out");
    env.ok(&["restore", id, "--to", dir.to_str().unwrap()]);
    assert!(std::fs::read(dir.join("dump.txt")).unwrap() == input);
    // Compression: the sealed chunks on the network, and what the backup
    // says it stored, are a fraction of the text.
    let stored: u64 = env
        .data_objects("local")
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    let read = input.len() as u64;
    assert!(stored * 4 < read, "{stored} bytes stored for {read} read");
    assert!(b["bytes_stored"].as_u64().unwrap() * 4 < read, "{b}");
}

/// While a backup is unfinished (here: stuck verifying, one of its networks
/// without a store worker) and has deduplicated against every chunk of the
/// backup just forgotten, the collector deletes none of them. Once it has
/// finished, the collection frees nothing it needs, and it restores whole
/// from each network. (A sweep deferred by a running backup is shown in
/// tests/gc.rs.)
#[test]
fn gc_waits_while_a_backup_runs() {
    let mut env = Env::with(Options {
        extra_networks: vec!["slow".into()],
        verify_timeout_secs: 180,
        ..Options::default()
    });
    let all = env.start_all();
    let (src, id1) = env.back_up_random_file(3 << 20);
    settle(&env.db);
    env.worker(all).kill9();
    // Every stage, but no store worker for `slow`.
    env.serve(&[
        "ingest",
        "encrypt",
        "verify",
        "ledger",
        "retention",
        "store",
        "--network",
        "local",
    ]);
    let mut c = env.cmd();
    c.args(["backup", "--json", src.to_str().unwrap()]);
    let second = Guarded::spawn(c);
    let id2 = wait_for(60, "the second backup to be verifying", || {
        let out = psql(
            &env.db,
            &format!(
                "select backup_id from backups where status = 'verifying' and backup_id <> '{id1}'"
            ),
        );
        (!out.is_empty()).then_some(out)
    });
    env.ok(&["forget", &id1]);
    let chunks = || env.data_objects("local").len();
    let before = chunks();
    let o = env.run(&["gc", "--grace", "0s"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    // Every chunk of the forgotten backup is one the running backup leans
    // on (its chunk list names them already): nothing is even due.
    assert!(
        text.contains("local: swept")
            && text.contains("0 deleted")
            && !text.contains("slow: aborted"),
        "{text}"
    );
    assert_eq!(chunks(), before, "gc deleted chunks");
    // `slow` gets its store worker: the second backup completes; now gc sweeps.
    env.serve(&["store", "--network", "slow"]);
    let out = second.wait_output();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "completed", "{v}");
    let g = env.json(&["gc", "--grace", "0s", "--json"]);
    for n in g["networks"].as_array().unwrap() {
        assert_eq!(n["outcome"], "swept", "{g}");
    }
    for net in ["local", "slow"] {
        let dir = env.restore_from_only(net, &id2);
        assert_eq!(snapshot(&dir.join("src")), snapshot(&src), "from {net}");
    }
}

/// Standard output closed early (`| head -1`) ends a long listing quietly:
/// no panic, exit 0, for `audit log`, `list` and `restore --stdout`.
#[test]
fn a_closed_stdout_ends_quietly() {
    let mut env = Env::new();
    env.start_all();
    let (_, id) = env.back_up_random_file(3 << 20);
    // A ledger longer than a pipe holds (64 KiB of lines): 1500 restores
    // recorded, as a busy site's ledger would hold them.
    let backup = cairn_events::BackupId::parse(&id).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(env.nats.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        for i in 0..1500u32 {
            let e = cairn_events::Envelope::new(
                "cli",
                backup.clone(),
                cairn_events::Event::BackupRestored(cairn_events::Restored {
                    target: format!("dir:/tmp/r{i}"),
                    bytes_written: 1,
                    files: 1,
                    networks: vec!["local:1".into()],
                    restored_by: "test@host".into(),
                }),
                &[&i.to_be_bytes()],
            );
            let subject = format!("{}.evt.backup.restored.{id}", env.prefix);
            js.publish(subject, cairn_events::encode(&e).into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    });
    wait_for(60, "1500 restores in the ledger", || {
        let n: u64 = psql(
            &env.db,
            "select count(*) from ledger_entries where kind = 'backup.restored'",
        )
        .parse()
        .unwrap();
        (n >= 1500).then_some(())
    });
    for args in [
        vec!["audit", "log"],
        vec!["restore", id.as_str(), "--stdout"],
    ] {
        let mut c = env.cmd();
        c.args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 16];
        std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
        drop(stdout); // what `head` does once it has its line
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code() == Some(0) && !err.contains("panicked"),
            "cairn {args:?} | head: {:?} {err}",
            out.status
        );
    }
}

/// `pg_dump` and `pg_restore` get the source database's own credentials and
/// never the ledger's: with the ledger's password in `PGPASSWORD` (here the
/// environment of every Cairn process), the children's environment holds
/// the source's password from its password file, or none.
#[test]
fn pg_tools_never_see_the_ledgers_password() {
    let shim = tempfile::tempdir().unwrap();
    let seen = shim.path().join("env");
    std::fs::create_dir_all(&seen).unwrap();
    for tool in ["pg_dump", "pg_restore"] {
        let real = String::from_utf8(
            std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let script = shim.path().join(tool);
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nenv > {}/{tool}.$$\nexec {} \"$@\"\n",
                seen.display(),
                real.trim()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let path = format!(
        "{}:{}",
        shim.path().display(),
        std::env::var("PATH").unwrap()
    );
    let mut env = Env::with(Options {
        env: vec![
            ("PATH".into(), path),
            ("PGPASSWORD".into(), "ledger-secret-4711".into()),
        ],
        ..Options::default()
    });
    env.start_all();
    let (src_db, dst_db) = (format!("{}_src", env.db), format!("{}_dst", env.db));
    psql("postgres", &format!("CREATE DATABASE {src_db}"));
    psql("postgres", &format!("CREATE DATABASE {dst_db}"));
    psql(
        &src_db,
        "CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 1000);",
    );
    let pw = env.path().join("source-password");
    std::fs::write(&pw, "source-secret-0815\n").unwrap();
    let b = env.backup(&[
        "--postgres",
        &format!("postgres://postgres@127.0.0.1:5432/{src_db}"),
        "--postgres-password-file",
        pw.to_str().unwrap(),
    ]);
    env.ok(&[
        "restore",
        b["backup_id"].as_str().unwrap(),
        "--to-postgres",
        &format!("postgres://postgres@127.0.0.1:5432/{dst_db}"),
    ]);
    assert_eq!(psql(&dst_db, "select sum(n) from t"), "500500");
    let logs: Vec<(String, String)> = std::fs::read_dir(&seen)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    let of = |tool: &str| -> Vec<&String> {
        logs.iter()
            .filter(|(n, _)| n.starts_with(&format!("{tool}.")))
            .map(|(_, e)| e)
            .collect()
    };
    assert!(
        !of("pg_dump").is_empty() && !of("pg_restore").is_empty(),
        "{logs:?}"
    );
    for (tool, environ) in &logs {
        assert!(
            !environ.contains("ledger-secret-4711"),
            "{tool} got the ledger's password"
        );
    }
    assert!(of("pg_dump")
        .iter()
        .all(|e| e.contains("PGPASSWORD=source-secret-0815")));
    assert!(of("pg_restore").iter().all(|e| !e.contains("PGPASSWORD=")));
    psql("postgres", &format!("DROP DATABASE {src_db} WITH (FORCE)"));
    psql("postgres", &format!("DROP DATABASE {dst_db} WITH (FORCE)"));
}

/// `can_delete = false` holds for a local directory too: forget leaves
/// everything on it (and says so) and deletes only where it may.
#[test]
fn can_delete_false_keeps_a_directory_networks_objects() {
    let mut env = Env::with(Options {
        // Not shreddable: the dataset's key goes to the vault too, so that
        // the vault alone restores it.
        extra_toml: "\n[[networks]]\nname = \"vault\"\nkind = \"fs\"\ncan_delete = false\n\n[datasets.kept]\nshreddable = false\n".into(),
        ..Options::default()
    });
    env.start_all();
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 3 << 20);
    let b = env.backup(&["--dataset", "kept", src.to_str().unwrap()]);
    let id = b["backup_id"].as_str().unwrap();
    let held = |net: &str| Env::files_under(&env.network_dir(net)).len();
    let vault_before = held("vault");
    let f = env.json(&["forget", id, "--json"]);
    assert_eq!(f["retained_on"], serde_json::json!(["vault"]), "{f}");
    assert_eq!(f["networks"], serde_json::json!(["local"]), "{f}");
    let g = env.json(&["gc", "--grace", "0s", "--json"]);
    let vault = g["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["network"] == "vault")
        .unwrap();
    assert_eq!(vault["outcome"], "skipped", "{g}");
    assert!(
        vault["reason"].as_str().unwrap().contains("cannot delete"),
        "{g}"
    );
    assert!(g["networks"][0]["deleted"].as_u64().unwrap() > 0, "{g}");
    assert_eq!(held("vault"), vault_before, "the vault lost objects");
    assert!(env.data_objects("local").is_empty());
    let dir = env.restore_from_only("vault", id);
    assert_eq!(snapshot(&dir.join("src")), snapshot(&src));
}

/// The files cache: a second backup of an unchanged tree reads no file and
/// stores nothing new; a file rewritten with its size and mtime put back is
/// still caught (ctime), as is one appended to; `--force-read` reads all; a
/// network that lacks the parent's chunks makes ingest read them again; a
/// damaged cache costs a full read, nothing else. Every backup restores
/// byte-identical, and the cache on disk holds no file name.
#[test]
fn the_files_cache_skips_unchanged_files_and_nothing_else() {
    let mut env = Env::with(Options {
        extra_networks: vec!["second".into()],
        ..Options::default()
    });
    env.start_all();
    let src = env.source_dir("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..40 {
        random_file(&src.join(format!("sub/small-{i:02}.bin")), 64 << 10);
    }
    random_file(&src.join("big.bin"), 3 << 20);
    let total = dir_bytes(&src);
    // A file changed in the moment it was read is not cached (racy stat):
    // these are older than that.
    std::thread::sleep(Duration::from_millis(300));
    let s = src.to_str().unwrap();
    let backup = |extra: &[&str]| {
        let mut a = vec![s, "--dataset", "fc"];
        a.extend_from_slice(extra);
        env.backup(&a)
    };
    let restores_identical = |b: &serde_json::Value| {
        let id = b["backup_id"].as_str().unwrap();
        let out = env.path().join(format!("restore-{id}"));
        env.ok(&["restore", id, "--to", out.to_str().unwrap()]);
        assert_eq!(snapshot(&out.join("src")), snapshot(&src), "{id}");
    };

    let b1 = backup(&["--network", "local"]);
    assert_eq!(b1["files_unchanged"], 0, "{b1}");
    assert_eq!(b1["bytes_read"].as_u64().unwrap(), total);

    let b2 = backup(&["--network", "local"]);
    assert_eq!(b2["files_unchanged"], 41, "{b2}");
    assert_eq!(b2["bytes_unchanged"].as_u64().unwrap(), total, "{b2}");
    assert_eq!(b2["bytes_read"].as_u64().unwrap(), total, "{b2}");
    assert_eq!(
        b2["chunks_new"], 0,
        "nothing new in an unchanged tree: {b2}"
    );
    assert_eq!(b2["chunks_total"], b1["chunks_total"], "{b2}");
    restores_identical(&b2);

    // Same size, same mtime, new content: only ctime tells.
    let victim = src.join("sub/small-07.bin");
    let md = std::fs::metadata(&victim).unwrap();
    use std::os::unix::fs::MetadataExt;
    let mtime = format!("@{}.{:09}", md.mtime(), md.mtime_nsec());
    random_file(&victim, 64 << 10);
    let touched = std::process::Command::new("touch")
        .args(["-m", "-d", &mtime])
        .arg(&victim)
        .status()
        .unwrap();
    assert!(touched.success());
    assert_eq!(std::fs::metadata(&victim).unwrap().mtime(), md.mtime());
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(src.join("sub/small-30.bin"))
            .unwrap();
        f.write_all(b"appended").unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let b3 = backup(&["--network", "local"]);
    assert_eq!(b3["files_unchanged"], 39, "{b3}");
    assert!(b3["chunks_new"].as_u64().unwrap() >= 2, "{b3}");
    restores_identical(&b3);

    let b4 = backup(&["--network", "local", "--force-read"]);
    assert_eq!(b4["files_unchanged"], 0, "{b4}");
    assert_eq!(b4["chunks_new"], 0, "{b4}");
    restores_identical(&b4);

    // `second` holds none of these chunks: the cache must not vouch for them.
    let b5 = backup(&["--network", "local", "--network", "second"]);
    assert_eq!(b5["files_unchanged"], 0, "{b5}");
    let id5 = b5["backup_id"].as_str().unwrap();
    let only = env.restore_from_only("second", id5);
    assert_eq!(snapshot(&only.join("src")), snapshot(&src));

    // The cache files name no file, and damage to them costs a full read.
    let caches = Env::files_under(&env.path().join("data/cache/files"));
    assert!(!caches.is_empty(), "no files cache was written");
    for c in &caches {
        let bytes = std::fs::read(c).unwrap();
        for name in ["small-07", "big.bin", "sub"] {
            assert!(
                !bytes.windows(name.len()).any(|w| w == name.as_bytes()),
                "{} holds the name {name}",
                c.display()
            );
        }
        std::fs::write(c, &bytes[..bytes.len() / 2]).unwrap();
    }
    let b6 = backup(&["--network", "local", "--network", "second"]);
    assert_eq!(b6["files_unchanged"], 0, "{b6}");
    restores_identical(&b6);
    assert!(
        env.serve_logs().contains("files cache ignored"),
        "the damaged cache is reported"
    );

    // A file whose stat size is not its length (procfs: size 0) is read
    // every time: a cached entry would record the wrong size, and restore
    // refuses a file whose bytes do not add up to it.
    let proc_file = "/proc/version";
    let want = std::fs::read(proc_file).unwrap();
    assert_eq!(std::fs::metadata(proc_file).unwrap().len(), 0);
    let mut last = serde_json::Value::Null;
    for _ in 0..2 {
        last = env.backup(&[s, proc_file, "--dataset", "fc-proc", "--network", "local"]);
    }
    assert_eq!(
        last["files_unchanged"], 41,
        "src is reused, /proc/version is not: {last}"
    );
    let id = last["backup_id"].as_str().unwrap();
    let out = env.path().join("restore-proc");
    env.ok(&["restore", id, "--to", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(out.join("version")).unwrap(), want);
    assert_eq!(snapshot(&out.join("src")), snapshot(&src));
}

/// Small files travel, are stored and are recorded in packs: hundreds of
/// small files become a handful of objects on each network; they restore
/// byte-identical from either network alone; a second backup that reads
/// every file again deduplicates against the packed chunks; a damaged pack
/// is found by `health --full`, read around by a restore and put right by
/// `repair`; and a pack is collected only once no chunk list names it.
#[test]
fn small_files_are_stored_in_packs_deduplicated_checked_repaired_and_collected_whole() {
    let mut env = Env::with(Options {
        extra_networks: vec!["second".into()],
        ..Options::default()
    });
    env.start_all();
    let src = env.source_dir("src");
    for i in 0..300usize {
        let p = src.join(format!("d{}/f{i:03}", i % 7));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        if i % 2 == 0 {
            text_file(&p, 1000 + i * 37, i as u64);
        } else {
            random_file(&p, 500 + i * 53);
        }
    }
    let s = src.to_str().unwrap();
    let packs = |net: &str| Env::files_under(&env.network_dir(net).join("packs"));
    let alone = |net: &str| Env::files_under(&env.network_dir(net).join("chunks"));

    let b1 = env.backup(&[s, "--dataset", "packs"]);
    let id1 = b1["backup_id"].as_str().unwrap().to_string();
    assert!(b1["chunks_new"].as_u64().unwrap() >= 300, "{b1}");
    let p1 = packs("local");
    assert!(
        (2..=6).contains(&p1.len()),
        "{} packs for {} new chunks",
        p1.len(),
        b1["chunks_new"]
    );
    assert!(alone("local").is_empty(), "no small chunk is stored alone");
    assert_eq!(packs("second").len(), p1.len());
    let tree1 = snapshot(&src);
    for net in ["local", "second"] {
        let out = env.restore_from_only(net, &id1);
        assert_eq!(snapshot(&out.join("src")), tree1, "{net}");
    }

    // Every file read again, two changed: only those (and the tree) are new.
    text_file(&src.join("d0/f000"), 4000, 99);
    random_file(&src.join("d1/f001"), 3000);
    let b2 = env.backup(&[s, "--dataset", "packs", "--force-read"]);
    let id2 = b2["backup_id"].as_str().unwrap().to_string();
    assert_eq!(b2["files_unchanged"], 0, "{b2}");
    assert!(b2["chunks_new"].as_u64().unwrap() <= 4, "{b2}");
    assert_eq!(packs("local").len(), p1.len() + 1, "one new pack");
    let tree2 = snapshot(&src);

    // One of the first backup's packs damaged on `local` (the first backup
    // needs every chunk in it).
    let victim = &p1[0];
    let original = std::fs::read(victim).unwrap();
    let mut bytes = original.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(victim, &bytes).unwrap();
    let (code, h) = env.health(&id1, true);
    assert_eq!((code, h["status"].as_str()), (3, Some("degraded")), "{h}");
    let local = health_of(&h, "local");
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        local["corrupt_objects"][0]
            .as_str()
            .unwrap()
            .contains(&name),
        "{h}"
    );
    let o = env.run_with(
        env.offline_with_only("local"),
        &[
            "restore",
            &id2,
            "--to",
            env.path().join("bad").to_str().unwrap(),
        ],
        None,
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("chunk "), "{e}");
    let out = env.path().join("around");
    env.ok(&["restore", &id1, "--to", out.to_str().unwrap()]);
    assert_eq!(snapshot(&out.join("src")), tree1);
    let r = env.json(&["repair", &id1, "--json"]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        std::fs::read(victim).unwrap(),
        original,
        "repaired from `second`"
    );

    // The first backup forgotten: its packs still hold chunks the second
    // uses, so none goes, and the second still restores from each network.
    env.ok(&["forget", &id1]);
    let g = env.json(&["gc", "--grace", "0s", "--json"]);
    for n in g["networks"].as_array().unwrap() {
        assert_eq!(n["outcome"], "swept", "{g}");
    }
    let kept = packs("local");
    assert!(
        p1.iter().filter(|p| kept.contains(p)).count() >= p1.len() - 1,
        "{g}"
    );
    for net in ["local", "second"] {
        let out = env.restore_from_only(net, &id2);
        assert_eq!(snapshot(&out.join("src")), tree2, "{net}");
    }
    // Nothing references any pack any more: every one goes.
    env.ok(&["forget", &id2]);
    let g = env.json(&["gc", "--grace", "0s", "--json"]);
    for n in g["networks"].as_array().unwrap() {
        assert_eq!(n["outcome"], "swept", "{g}");
    }
    for net in ["local", "second"] {
        assert!(packs(net).is_empty(), "{net} still holds packs: {g}");
    }
    settle(&env.db);
    assert_eq!(psql(&env.db, "select count(*) from chunk_copies"), "0");
    assert_eq!(psql(&env.db, "select count(*) from pack_chunks"), "0");
}
