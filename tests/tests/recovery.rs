//! The day everything is gone, end to end through the `cairn` binary
//! against a real nats-server, PostgreSQL, a directory network and an S3
//! server (s3s-fs): back up to both, lose the ledger database, the JetStream
//! store and the broker, then list and restore byte-identical from either
//! network alone; then seed a new, empty ledger and broker from the
//! repository (`cairn recover rebuild`) and carry on backing up.

use cairn_tests::*;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `cairn audit keygen` of a key for log `origin` into `key`, then `cairn
/// audit checkpoint` with it: a signed checkpoint on every network.
fn sign(env: &Env, key: &std::path::Path, origin: &str) {
    env.ok(&[
        "audit",
        "keygen",
        "--origin",
        origin,
        "--key-file",
        key.to_str().unwrap(),
    ]);
    let mut c = env.cmd();
    c.env("CAIRN_AUDIT__SIGNING_KEY_FILE", key);
    let o = env.run_with(c, &["audit", "checkpoint"], None);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `cairn recover list --network NET --json` with nothing but that network.
fn recover_list(env: &Env, net: &str) -> serde_json::Value {
    let o = env.run_with(
        env.offline_with_only(net),
        &["recover", "list", "--network", net, "--json"],
        None,
    );
    assert!(o.status.success(), "recover list {net}: {}", stderr(&o));
    serde_json::from_str(stdout(&o).trim()).unwrap()
}

#[test]
fn the_day_everything_is_gone_each_network_alone_lists_and_restores_and_a_new_ledger_goes_on() {
    let s3_dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(s3_dir.path());
    let mut env = Env::with(server.options("objects"));
    env.start_all();

    // Two datasets, an incremental backup, and a stream.
    let src = env.source_dir("src");
    std::fs::write(src.join("letter.txt"), b"dear auditor\n".repeat(300)).unwrap();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    std::fs::write(src.join("big.bin"), &big).unwrap();
    let b1 = env.backup(&["--dataset", "docs", "--tag", "daily", src.to_str().unwrap()]);
    let tree1 = contents(&src);
    std::fs::write(src.join("letter.txt"), b"dear auditor, again\n".repeat(300)).unwrap();
    let b2 = env.backup(&[
        "--dataset",
        "docs",
        "--tag",
        "daily",
        "--tag",
        "second",
        src.to_str().unwrap(),
    ]);
    let tree2 = contents(&src);
    let piped = b"a database dump, say\n".repeat(1000);
    let o = env.run_with(
        env.cmd(),
        &["backup", "--stdin", "--dataset", "dump", "--json"],
        Some(&piped),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let b3: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let ids: Vec<String> = [&b1, &b2, &b3]
        .iter()
        .map(|b| b["backup_id"].as_str().unwrap().to_string())
        .collect();
    // Each network holds each backup's sealed catalogue entry: no dataset
    // name, tag or source path in clear.
    for id in &ids {
        let entry = std::fs::read(
            env.network_dir("local")
                .join(format!("backups/{id}/catalogue")),
        )
        .unwrap();
        let text = String::from_utf8_lossy(&entry);
        assert!(!text.contains("docs") && !text.contains("daily") && !text.contains("src"));
    }

    // The old log, signed: its checkpoint is on every network.
    let keys = env.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let old_key = keys.join("old.key");
    sign(&env, &old_key, "cairn.test/old");
    let old_checkpoints = Env::files_under(&env.network_dir("local").join("checkpoints"));
    assert_eq!(old_checkpoints.len(), 1, "{old_checkpoints:?}");

    // Everything but the networks goes: workers, broker and its JetStream
    // store, the ledger database.
    let stored_before = ids
        .iter()
        .map(|id| {
            psql(
                &env.db,
                &format!("select stats->>'bytes_read' || ' ' || (stats->>'chunks_total') || ' ' || (stats->>'bytes_stored') from backups where backup_id = '{id}'"),
            )
        })
        .collect::<Vec<_>>();
    env.stop_workers();
    env.nats.stop();
    std::fs::remove_dir_all(&env.nats.store_dir).unwrap();
    psql(
        "postgres",
        &format!("DROP DATABASE {} WITH (FORCE)", env.db),
    );

    // Either network alone lists every backup and restores it byte-identical.
    for net in ["local", "objects"] {
        let listed = recover_list(&env, net);
        let backups = listed["backups"].as_array().unwrap();
        let found: Vec<&str> = backups
            .iter()
            .map(|b| b["backup_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            found,
            vec![ids[2].as_str(), ids[1].as_str(), ids[0].as_str()],
            "{net}: newest first: {listed}"
        );
        for (b, (id, stored)) in backups.iter().rev().zip(ids.iter().zip(&stored_before)) {
            assert_eq!(b["backup_id"], id.as_str());
            assert_eq!(b["presence"], "whole", "{net}: {b}");
            assert_eq!(b["from"], "catalogue", "{net}: {b}");
            let read_and_chunks = format!(
                "{} {} ",
                b["stats"]["bytes_read"], b["stats"]["chunks_total"]
            );
            assert!(stored.starts_with(&read_and_chunks), "{net}: {b} {stored}");
        }
        let by_id = |id: &str| backups.iter().find(|b| b["backup_id"] == id).unwrap();
        assert_eq!(by_id(&ids[0])["dataset"], "docs");
        assert_eq!(
            by_id(&ids[1])["tags"],
            serde_json::json!(["daily", "second"])
        );
        assert_eq!(by_id(&ids[2])["dataset"], "dump");
        assert_eq!(
            by_id(&ids[2])["source"]["type"],
            "stdin",
            "{}",
            by_id(&ids[2])
        );
        assert_eq!(
            by_id(&ids[0])["stats"]["bytes_read"],
            big.len() as u64 + 3900
        );
        // Filters, and the text form a person reads.
        let o = env.run_with(
            env.offline_with_only(net),
            &["recover", "list", "--network", net, "--dataset", "dump"],
            None,
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let text = stdout(&o);
        assert!(text.contains(&ids[2]) && !text.contains(&ids[0]), "{text}");
        assert!(text.contains("whole") && text.contains("stdin"), "{text}");

        for (id, tree) in [(&ids[0], &tree1), (&ids[1], &tree2)] {
            let out = env.path().join(format!("recovered-{net}-{id}"));
            let o = env.run_with(
                env.offline_with_only(net),
                &[
                    "recover",
                    "restore",
                    id,
                    "--network",
                    net,
                    "--to",
                    out.to_str().unwrap(),
                ],
                None,
            );
            assert!(
                o.status.success(),
                "recover restore {id} from {net}: {}",
                stderr(&o)
            );
            let restored = out.join("src");
            assert_eq!(&contents(&restored), tree, "backup {id} from {net} alone");
        }
        let o = env.run_with(
            env.offline_with_only(net),
            &["recover", "restore", &ids[2], "--network", net, "--stdout"],
            None,
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(o.stdout, piped, "the stream from {net} alone");
    }

    // A new machine: an empty broker and an empty database. The services
    // start, the repository is recorded again, and backups go on.
    env.nats.replace_with_empty();
    env.serve(&["all"]);
    let rebuilt = env.run(&["recover", "rebuild", "--json"]);
    assert!(
        rebuilt.status.success(),
        "{}{}",
        stdout(&rebuilt),
        stderr(&rebuilt)
    );
    let report: serde_json::Value = serde_json::from_str(stdout(&rebuilt).trim()).unwrap();
    assert_eq!(report["recorded"], true, "{report}");
    assert_eq!(report["backups"].as_array().unwrap().len(), 3, "{report}");
    let list = env.json(&["list", "--json"]);
    let rows = list["backups"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{list}");
    for r in rows {
        assert_eq!(r["status"], "completed", "{r}");
        // What each backup added, as the lost ledger had it: the objects
        // first seen with it.
        let i = ids
            .iter()
            .position(|id| r["backup_id"] == id.as_str())
            .unwrap();
        let was: u64 = stored_before[i].split(' ').nth(2).unwrap().parse().unwrap();
        let now = r["stats"]["bytes_stored"].as_u64().unwrap();
        assert_eq!(now, was, "{r}");
        let mut nets: Vec<&str> = r["networks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        nets.sort();
        assert_eq!(nets, ["local", "objects"], "{r}");
    }
    assert_eq!(
        psql(
            &env.db,
            "select kind from ledger_entries where kind <> 'network.traffic' order by seq limit 1"
        ),
        "ledger.recovered",
        "the new log's history starts with the recovery (the services' recorded requests aside)"
    );
    // Health checks a recovered backup against the digests the rebuild
    // recorded, on both networks.
    let (code, h) = env.health(&ids[0], true);
    assert_eq!(code, 0, "{h}");
    // A backup after the rebuild deduplicates against what was recovered:
    // only the changed letter is new.
    std::fs::write(src.join("note.txt"), b"after the flood\n").unwrap();
    let b4 = env.backup(&["--dataset", "docs", src.to_str().unwrap()]);
    let new = b4["chunks_new"].as_u64().unwrap();
    assert!(new <= 3, "the big file's chunks were stored again: {b4}");
    let r = env.restore_from_only("objects", b4["backup_id"].as_str().unwrap());
    assert_eq!(contents(&r.join("src")), contents(&src));
    // The new log, signed with a new key: its checkpoints go beside the
    // lost log's, which stay as they were, and it verifies on its own.
    let new_key = keys.join("new.key");
    sign(&env, &new_key, "cairn.test/recovered");
    let all = Env::files_under(&env.network_dir("local").join("checkpoints"));
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.contains(&old_checkpoints[0]), "{all:?}");
    let log_dir = psql(
        &env.db,
        "select encode(substring(leaf_hash from 1 for 8), 'hex') from ledger_entries \
         where kind <> 'network.traffic' order by seq limit 1",
    );
    assert!(
        all.iter().any(|p| p.parent().unwrap().ends_with(&log_dir)),
        "{all:?} {log_dir}"
    );
    let pubkey = format!("{}.pub", new_key.display());
    let verified = env.run(&["audit", "verify", "--key", &pubkey]);
    assert!(
        verified.status.success(),
        "{}{}",
        stdout(&verified),
        stderr(&verified)
    );

    // Rebuilding into a ledger that holds anything is refused, and records
    // nothing.
    let before = psql(&env.db, "select count(*) from ledger_entries");
    let again = env.run(&["recover", "rebuild", "--wait", "0"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("only fills an empty ledger"),
        "{}",
        stderr(&again)
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(psql(&env.db, "select count(*) from ledger_entries"), before);
}

#[test]
fn recovery_refuses_bad_input_by_name_and_changes_nothing() {
    let mut env = Env::with(Options {
        extra_networks: vec!["second".into()],
        ..Options::default()
    });
    env.start_all();
    let src = env.source_dir("src");
    std::fs::write(src.join("a.txt"), b"alpha\n").unwrap();
    let b = env.backup(&[src.to_str().unwrap()]);
    let id = b["backup_id"].as_str().unwrap().to_string();
    env.stop_workers();
    let before = Env::files_under(&env.network_dir("local"));

    let run = |net: &str, args: &[&str], pass: Option<&str>| {
        let mut c = env.offline_with_only(net);
        if let Some(p) = pass {
            c.env("CAIRN_PASSPHRASE", p);
        }
        env.run_with(c, args, None)
    };
    // A network the configuration does not name.
    let o = run("local", &["recover", "list", "--network", "nowhere"], None);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no network nowhere in the configuration (it names: local)"),
        "{}",
        stderr(&o)
    );
    // The wrong passphrase.
    let o = run(
        "local",
        &["recover", "list", "--network", "local"],
        Some("not the passphrase"),
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("passphrase"), "{}", stderr(&o));
    // A backup the network does not hold.
    let missing = "0190a0a0-0000-7000-8000-000000000000";
    let out = env.path().join("nothing");
    let o = run(
        "local",
        &[
            "recover",
            "restore",
            missing,
            "--network",
            "local",
            "--to",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!("backup {missing} not found")),
        "{}",
        stderr(&o)
    );
    // A damaged catalogue entry on one network: listed as unreadable there,
    // named, and the other network still lists the backup whole.
    let entry = env
        .network_dir("second")
        .join(format!("backups/{id}/catalogue"));
    let mut bytes = std::fs::read(&entry).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&entry, &bytes).unwrap();
    let damaged = recover_list(&env, "second");
    let b = &damaged["backups"][0];
    assert_eq!(b["backup_id"], id.as_str());
    assert!(b["dataset"].is_null(), "{b}");
    assert!(
        b["unreadable"]
            .as_str()
            .unwrap()
            .contains("catalogue entry"),
        "{b}"
    );
    let intact = recover_list(&env, "local");
    assert_eq!(intact["backups"][0]["presence"], "whole", "{intact}");
    assert_eq!(
        Env::files_under(&env.network_dir("local")),
        before,
        "nothing changed"
    );
}
