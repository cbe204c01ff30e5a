//! Garbage collection against real servers (NATS, PostgreSQL, local
//! directories and an S3 server): forget takes a backup out of the
//! catalogue, the collector frees what nothing references in two phases,
//! never a chunk a completed backup needs, also beside running backups and
//! when it is killed.

use cairn_retention::collect::Collector;
use cairn_tests::*;
use chrono::{Duration as Days, Utc};
use std::time::Duration;

/// A collector in this process, as `cairn gc` builds it, whose clock the
/// test sets.
fn collector(env: &Env, rt: &tokio::runtime::Runtime, grace: Duration) -> Collector {
    let cfg = cairn_config::Config::load(Some(&env.config)).unwrap();
    rt.block_on(async {
        Collector {
            bus: cairn_bus::Bus::connect(&cfg.nats, "gc-test").await.unwrap(),
            repo: cairn_repo::Repository::open(&cfg.networks).unwrap(),
            pg: cairn_ledger::db::open_as(&cfg.postgres, cairn_ledger::db::Role::Reader)
                .await
                .unwrap(),
            grace,
            settle: Duration::from_millis(500),
            running_window: Duration::from_secs(3600),
            source: "gc-test".into(),
        }
    })
}

fn chunk_files(env: &Env, net: &str) -> usize {
    env.data_objects(net).len()
}

fn net<'a>(c: &'a cairn_events::Collection, name: &str) -> &'a cairn_events::NetworkCollection {
    c.networks.iter().find(|n| n.network == name).unwrap()
}

/// The collector's two phases on two networks: a chunk only a forgotten
/// backup used is marked, and deleted only once the grace period has
/// passed; a marked chunk that a new backup deduplicates against is revived
/// and kept. What was freed is reported and ledgered, and every remaining
/// backup restores byte-identical from each network alone.
#[test]
fn gc_marks_then_sweeps_after_the_grace_period_and_revives_what_a_backup_reuses() {
    let mut env = Env::with(Options {
        extra_networks: vec!["other".into()],
        ..Options::default()
    });
    env.start_all();
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 2 << 20);
    random_file(&src.join("b.bin"), 1 << 20);
    random_file(&src.join("d.bin"), 1 << 20);
    let b1 = env.backup(&[src.to_str().unwrap()]);
    let kept_b = env.path().join("b.bin");
    std::fs::rename(src.join("b.bin"), &kept_b).unwrap();
    std::fs::remove_file(src.join("d.bin")).unwrap();
    random_file(&src.join("c.bin"), 1 << 20);
    let b2 = env.backup(&[src.to_str().unwrap()]);
    let tree2 = snapshot(&src);
    env.ok(&["forget", b1["backup_id"].as_str().unwrap()]);
    let before = (chunk_files(&env, "local"), chunk_files(&env, "other"));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let gc = collector(&env, &rt, Duration::from_secs(86_400));
    let t0 = Utc::now();
    let first = rt.block_on(gc.collect(t0)).unwrap();
    for name in ["local", "other"] {
        let n = net(&first, name);
        assert_eq!(n.outcome, "swept", "{first:?}");
        // b.bin and d.bin: each at least one chunk stored alone (their
        // tails and the first backup's tree are packed, perhaps with a
        // chunk the second backup still uses, which keeps that pack).
        assert!(n.marked >= 2 && n.deleted == 0, "{first:?}");
    }
    assert_eq!(
        (chunk_files(&env, "local"), chunk_files(&env, "other")),
        before,
        "nothing is deleted before the grace period"
    );
    // Half a day later nothing is due yet.
    let early = rt.block_on(gc.collect(t0 + Days::hours(12))).unwrap();
    assert!(
        early
            .networks
            .iter()
            .all(|n| n.deleted == 0 && n.waiting >= 2),
        "{early:?}"
    );

    // A new backup needs b.bin again: it deduplicates against the marked chunks.
    std::fs::rename(&kept_b, src.join("b.bin")).unwrap();
    let b3 = env.backup(&[src.to_str().unwrap()]);
    let tree3 = snapshot(&src);
    assert!(
        b3["chunks_new"].as_u64().unwrap() + 2 < b3["chunks_total"].as_u64().unwrap(),
        "b.bin was written again instead of deduplicated: {b3}"
    );

    let before_second = chunk_files(&env, "local");
    let second = rt.block_on(gc.collect(t0 + Days::days(2))).unwrap();
    for name in ["local", "other"] {
        let n = net(&second, name);
        assert_eq!(n.outcome, "swept", "{second:?}");
        assert!(
            n.revived >= 1,
            "b.bin's chunks were not revived: {second:?}"
        );
        // At least d.bin's first chunk (256 KiB or more, stored alone).
        assert!(n.deleted >= 1, "{second:?}");
        assert!(n.bytes_freed >= 256 << 10, "{second:?}");
        assert_eq!(n.waiting, 0, "{second:?}");
    }
    assert_eq!(
        before_second - chunk_files(&env, "local"),
        net(&second, "local").deleted as usize
    );

    settle(&env.db);
    // Ledgered: the freed bytes add up per network, and both collections are there.
    let events = logged_events(&env.db);
    for name in ["local", "other"] {
        let freed: u64 = events
            .iter()
            .filter_map(|e| match &e.event {
                cairn_events::Event::ChunksDeleted(b) if b.network == name => Some(b.bytes),
                _ => None,
            })
            .sum();
        assert_eq!(freed, net(&second, name).bytes_freed, "{name}");
    }
    let finished = events
        .iter()
        .filter(|e| matches!(e.event, cairn_events::Event::CollectionFinished(_)))
        .count();
    assert_eq!(finished, 3);
    assert_eq!(psql(&env.db, "select count(*) from chunk_marks"), "0");

    let id2 = b2["backup_id"].as_str().unwrap();
    let id3 = b3["backup_id"].as_str().unwrap();
    for name in ["local", "other"] {
        let r = env.restore_from_only(name, id2);
        assert_eq!(snapshot(&r.join("src")), tree2, "backup 2 from {name}");
        let r = env.restore_from_only(name, id3);
        assert_eq!(snapshot(&r.join("src")), tree3, "backup 3 from {name}");
    }
}

/// Backups and collections run at the same time for a bounded number of
/// rounds, the collector's clock jumping two grace periods each run so that
/// every mark is due at once, while older backups are forgotten. Then every
/// backup that ended `completed` and was not forgotten restores
/// byte-identical from each network alone, and the collections did free
/// chunks along the way.
#[test]
fn backups_and_collections_at_once_never_lose_a_chunk() {
    let mut env = Env::with(Options {
        extra_networks: vec!["other".into()],
        ..Options::default()
    });
    env.start_all();
    let src = env.source_dir("src");
    random_file(&src.join("base.bin"), 1 << 20);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let gc = collector(&env, &rt, Duration::from_secs(3600));
    let mut clock = Utc::now();
    let mut live: Vec<(String, std::collections::BTreeMap<String, String>)> = Vec::new();
    let (mut freed, mut deferred, mut collections) = (0u64, 0usize, 0usize);
    for round in 0..5 {
        random_file(&src.join(format!("r{round}.bin")), 3 << 20);
        if round >= 2 {
            // What two rounds ago added goes: only older backups hold it.
            std::fs::remove_file(src.join(format!("r{}.bin", round - 2))).unwrap();
        }
        let tree = snapshot(&src);
        let mut c = env.cmd();
        c.args(["backup", "--json", src.to_str().unwrap()]);
        let mut running = Guarded::spawn(c);
        if live.len() >= 2 {
            let (old, _) = live.remove(0);
            env.ok(&["forget", &old]);
        }
        // Collect over and over while the backup runs.
        loop {
            clock += Days::hours(3);
            let done = rt.block_on(gc.collect(clock)).unwrap();
            collections += 1;
            for n in &done.networks {
                // A sweep may also stop short, deleting nothing, when it
                // finds a backup too new for the ledger to show whose
                // manifest landed before its last chunk-list page: the
                // safe answer to not knowing what it references.
                let safe_abort = n.outcome == "aborted"
                    && n.reason
                        .as_deref()
                        .is_some_and(|r| r.contains("nothing was deleted"))
                    && n.deleted == 0;
                assert!(
                    n.outcome == "swept" || n.outcome == "deferred" || safe_abort,
                    "{done:?}"
                );
                freed += n.bytes_freed;
                deferred += (n.outcome != "swept") as usize;
            }
            if running.0.as_mut().unwrap().try_wait().unwrap().is_some() {
                break;
            }
        }
        let out = running.wait_output();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(v["status"], "completed", "round {round}: {v}");
        live.push((v["backup_id"].as_str().unwrap().to_string(), tree));
    }
    // Quiet now (once the ledger has caught up with the last backup): two
    // more collections sweep whatever is left to sweep.
    settle(&env.db);
    for _ in 0..2 {
        clock += Days::hours(3);
        let done = rt.block_on(gc.collect(clock)).unwrap();
        for n in &done.networks {
            assert_eq!(n.outcome, "swept", "{done:?}");
            freed += n.bytes_freed;
        }
    }
    assert!(
        freed >= 3 << 20,
        "the collections freed nothing ({collections} runs)"
    );
    eprintln!("{collections} collections, {deferred} network sweeps deferred or stopped short, {freed} bytes freed");
    for (id, tree) in &live {
        for name in ["local", "other"] {
            let r = env.restore_from_only(name, id);
            assert_eq!(&snapshot(&r.join("src")), tree, "{id} from {name}");
        }
    }
}

/// `kill -9` of `cairn gc` at three points (its marks published but not yet
/// recorded, with the ledger stopped; chunks condemned, during the settle
/// pause; and while it deletes from the S3 network) leaves the remaining
/// backup restorable from each network alone every time. A backup started
/// while chunks it needs stay condemned by the dead collector waits, then
/// completes once the next collection clears them. The last run finishes the
/// job: each network holds exactly what is referenced, and the ledger
/// accounts for every chunk deleted, also those a killed run deleted.
#[test]
fn gc_killed_at_any_step_loses_nothing_and_the_next_run_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(dir.path());
    let mut env = Env::with(server.options("objects"));
    env.set_env("CAIRN_RETENTION__GC_SETTLE_SECS", "4");
    env.init();
    let stages = env.serve(&["ingest", "encrypt", "store", "verify", "retention"]);
    let mut ledger = env.serve(&["ledger"]);
    let _ = stages;
    let many = env.source_dir("many");
    // Each file one chunk large enough to be stored alone (small ones
    // would share a few packs): 300 objects to delete, so that a collector
    // can be killed halfway.
    for i in 0..300 {
        random_file(&many.join(format!("f{i:03}.bin")), 260 << 10);
    }
    let doomed = env.backup(&[many.to_str().unwrap()]);
    let (keep_src, keep) = env.back_up_random_file(2 << 20);
    let keep_tree = snapshot(&keep_src);
    env.ok(&["forget", doomed["backup_id"].as_str().unwrap()]);
    let repo = server.root.join(&server.bucket).join("repo");
    let bucket_chunks = move || {
        let mut all = Env::files_under(&repo.join("chunks"));
        all.extend(Env::files_under(&repo.join("packs")));
        all.iter()
            .filter(|p| p.file_name().is_some_and(|n| n.len() == 64))
            .count()
    };
    let before = (chunk_files(&env, "local"), bucket_chunks());
    let restorable = |env: &Env, when: &str| {
        for name in ["local", "objects"] {
            let r = env.restore_from_only(name, &keep);
            assert_eq!(snapshot(&r.join("src")), keep_tree, "{when}, from {name}");
        }
    };
    let db = env.db.clone();
    let count = |kind: &str| -> u64 {
        psql(
            &db,
            &format!("select count(*) from ledger_entries where kind = '{kind}'"),
        )
        .parse()
        .unwrap()
    };
    let gc = |env: &Env| {
        let mut c = env.cmd();
        c.args(["gc", "--grace", "0s", "--json"]);
        Guarded::spawn(c)
    };

    // 1. Marks published, the ledger stopped: the collector waits for it.
    env.worker(ledger).kill9();
    let mut run = gc(&env);
    std::thread::sleep(Duration::from_secs(3));
    run.0.as_mut().unwrap().kill().unwrap();
    drop(run);
    assert_eq!(count("chunks.condemned"), 0);
    ledger = env.serve(&["ledger"]);
    wait_for(30, "the marks to be recorded", || {
        (count("chunks.marked") >= 1).then_some(())
    });
    assert_eq!((chunk_files(&env, "local"), bucket_chunks()), before);
    restorable(&env, "killed before condemning");

    // 2. Killed in the settle pause, local's chunks condemned.
    let mut run = gc(&env);
    // (It first waits for the killed run's lease to run out.)
    wait_for(90, "chunks to be condemned", || {
        (count("chunks.condemned") >= 1).then_some(())
    });
    run.0.as_mut().unwrap().kill().unwrap();
    drop(run);
    assert_eq!((chunk_files(&env, "local"), bucket_chunks()), before);
    restorable(&env, "killed while condemned");
    // A backup of the same files needs exactly the condemned chunks: it waits.
    let mut c = env.cmd();
    c.args(["backup", "--json", many.to_str().unwrap()]);
    let again = Guarded::spawn(c);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        psql(
            &env.db,
            "select status from backups where status in ('requested', 'running') limit 1"
        ),
        "running",
        "the new backup should be waiting on the condemned chunks"
    );
    // The next collection defers (a backup runs) and frees the condemned
    // chunks for it; the backup completes, deduplicating against them.
    let out = gc(&env).wait_output();
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(g["networks"][0]["outcome"], "deferred", "{g}");
    let out = again.wait_output();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "completed", "{v}");
    let many_tree = snapshot(&many);
    env.ok(&["forget", v["backup_id"].as_str().unwrap()]);

    // 3. Killed while it deletes from the S3 network.
    let mut run = gc(&env);
    wait_for(60, "deleting from the S3 network to begin", || {
        (bucket_chunks() < before.1).then_some(())
    });
    run.0.as_mut().unwrap().kill().unwrap();
    drop(run);
    restorable(&env, "killed mid-delete");

    // The next run finishes the job.
    let out = gc(&env).wait_output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for n in g["networks"].as_array().unwrap() {
        assert_eq!(n["outcome"], "swept", "{g}");
    }
    // What each network holds now is exactly what is referenced.
    let after = (chunk_files(&env, "local"), bucket_chunks());
    assert_eq!(
        after.0 as u64,
        g["networks"][0]["referenced"].as_u64().unwrap(),
        "{g}"
    );
    assert_eq!(
        after.1 as u64,
        g["networks"][1]["referenced"].as_u64().unwrap(),
        "{g}"
    );
    assert!(
        after.0 < before.0 - 250 && after.1 < before.1 - 250,
        "{after:?} {before:?}"
    );
    restorable(&env, "after the last run");
    settle(&env.db);
    assert_eq!(psql(&env.db, "select count(*) from chunk_marks"), "0");
    let events = logged_events(&env.db);
    for (name, freed) in [
        ("local", before.0 - after.0),
        ("objects", before.1 - after.1),
    ] {
        let recorded: usize = events
            .iter()
            .filter_map(|e| match &e.event {
                cairn_events::Event::ChunksDeleted(b) if b.network == name => {
                    Some(b.chunks.len() + b.packs.len())
                }
                _ => None,
            })
            .sum();
        assert_eq!(recorded, freed, "chunks deleted from {name} vs recorded");
    }
    let _ = many_tree;
    let _ = ledger;
}
