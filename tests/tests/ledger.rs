//! The audit ledger as a transparency log, against a real nats-server (one
//! per test) and the local PostgreSQL: its copies outside the database (the
//! entries on `audit.entry`, the signed checkpoints) catch what a database
//! owner rewrites consistently, and rebuild the same log.

use cairn_tests::*;
use std::path::PathBuf;
use std::time::Duration;

/// An environment whose ledger has a checkpoint signing key
/// (`[audit] signing_key_file`); returns it with the key file and the public key.
fn signed_env() -> (Env, PathBuf, String) {
    signed_env_with(vec![])
}

fn signed_env_with(mut vars: Vec<(String, String)>) -> (Env, PathBuf, String) {
    let keys = tempfile::tempdir().unwrap().keep();
    let key = keys.join("ledger.key");
    vars.push((
        "CAIRN_AUDIT__SIGNING_KEY_FILE".into(),
        key.display().to_string(),
    ));
    let env = Env::with(Options {
        env: vars,
        ..Options::default()
    });
    let vkey = env.ok(&[
        "audit",
        "keygen",
        "--origin",
        "cairn.test/ledger",
        "--key-file",
        key.to_str().unwrap(),
    ]);
    (env, key, vkey.trim().to_string())
}

/// Two backups, a signed checkpoint of the whole log, and the workers
/// stopped so that nothing appends meanwhile. Returns the log's size.
fn two_backups_signed(env: &mut Env) -> u64 {
    env.start_all();
    let src = env.source_dir("src");
    text_file(&src.join("a.txt"), 300_000, 1);
    env.backup(&[src.to_str().unwrap()]);
    text_file(&src.join("b.txt"), 300_000, 2);
    env.backup(&[src.to_str().unwrap()]);
    let db = env.db.clone();
    settle(&db);
    env.ok(&["audit", "checkpoint"]);
    env.worker(0).kill9();
    ledger_size(&db)
}

async fn superuser(db: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port=5432 user=postgres dbname={db}"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    c
}

/// What a database owner does to rewrite history without leaving a trace in
/// the database: cut the log back to `keep` entries (entries, tree hashes,
/// checkpoints and head, triggers bypassed), then append `forged` events
/// through the ledger's own code, so that entries, chain, tree and head all
/// agree again.
async fn rewrite(db: &str, keep: u64, forged: &[Vec<u8>]) {
    let c = superuser(db).await;
    c.batch_execute(&format!(
        "SET session_replication_role = replica;
         DELETE FROM ledger_entries WHERE seq > {keep};
         DELETE FROM ledger_tree WHERE idx >= {};
         DELETE FROM ledger_checkpoints WHERE size > {keep};
         UPDATE ledger_head SET size = {keep},
             chain_hash = (SELECT chain_hash FROM ledger_entries WHERE seq = {keep});",
        cairn_tlog::stored_hash_count(keep)
    ))
    .await
    .unwrap();
    if forged.is_empty() {
        // Cut only: the head's root must be the root of what is left.
        let mut known = cairn_tlog::reader::Known::new();
        let root = cairn_ledger::tree::root(&c, &mut known, keep)
            .await
            .unwrap();
        c.batch_execute(&format!(
            "UPDATE ledger_head SET tree_root = decode('{}', 'hex')",
            hex::encode(root.0)
        ))
        .await
        .unwrap();
    } else {
        append_unpublished(db, forged).await;
    }
    // The rewrite is consistent: the database alone does not show it.
    let alone = cairn_ledger::check::verify(&c, cairn_ledger::check::Witnesses::default())
        .await
        .unwrap();
    assert!(
        alone.problems.is_empty(),
        "the rewrite left a trace in the database itself: {:?}",
        alone.problems
    );
}

/// The same events under other ids (`tag` and their place make the ids), as
/// a forger or an older release would append them.
fn reissued<'a>(entries: impl IntoIterator<Item = &'a Vec<u8>>, tag: &[u8]) -> Vec<Vec<u8>> {
    entries
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let mut env: cairn_events::Envelope = cairn_events::decode(b, "entry").unwrap();
            env.id = cairn_events::EventId::derive(&[tag, &i.to_be_bytes()]);
            cairn_events::encode(&env)
        })
        .collect()
}

/// Entries `from..=to`, re-encoded as a forger would: same events, other ids.
fn forge(db: &str, from: u64, to: u64) -> Vec<Vec<u8>> {
    reissued(
        &logged_entries(db)[from as usize - 1..to as usize],
        b"forged",
    )
}

/// Appends `entries` through the ledger's own code, as the superuser,
/// without re-publishing them (what a database owner, or an older release,
/// would leave).
async fn append_unpublished(db: &str, entries: &[Vec<u8>]) {
    let envs: Vec<cairn_events::Envelope> = entries
        .iter()
        .map(|b| cairn_events::decode(b, "entry").unwrap())
        .collect();
    let items: Vec<(&[u8], &cairn_events::Envelope)> =
        entries.iter().map(|b| &b[..]).zip(&envs).collect();
    cairn_audit_ledger::append::Ledger::new(superuser(db).await, None)
        .append(&items)
        .await
        .unwrap();
}

fn verify_fails(env: &Env, c: std::process::Command) -> String {
    let o = env.run_with(c, &["audit", "verify"], None);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "the rewrite was not detected: {err}");
    err
}

/// A database owner cuts the log's tail (and the checkpoints that signed
/// it), then appends different entries in their place, keeping entries,
/// chain, tree and head consistent. The database alone cannot show it; the
/// signed checkpoints on the network, in the AUDIT stream and in the
/// signer's state, and the entries re-published on audit.entry, do, and
/// `audit verify` names the first entry that is not the one logged.
#[test]
fn consistent_rewrites_are_caught_by_the_copies_outside_the_database() {
    let (mut env, _key, _vkey) = signed_env();
    let n = two_backups_signed(&mut env);
    let db = env.db.clone();
    let report = env.json(&["audit", "verify", "--json"]);
    assert_eq!(report["ok"], true, "{report}");
    let r = &report["report"];
    assert_eq!(r["published_entries_compared"].as_u64(), Some(n), "{r}");
    let sources: Vec<&str> = r["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["source"].as_str().unwrap())
        .collect();
    for s in [
        "the database",
        "the AUDIT stream",
        "network local",
        "the signer's",
    ] {
        assert!(
            sources.iter().any(|x| x.starts_with(s)),
            "no checkpoint from {s}: {sources:?}"
        );
    }
    let keep = n - 4;
    let rt = tokio::runtime::Runtime::new().unwrap();

    // Tail cut: everything after `keep` removed, consistently.
    rt.block_on(rewrite(&db, keep, &[]));
    let e = verify_fails(&env, env.cmd());
    assert!(
        e.contains(&format!("entries were removed from entry {}", keep + 1)),
        "{e}"
    );

    // Different entries appended in their place: the log is as long as
    // before, but not the log that was signed and published.
    let forged = forge(&db, keep - 3, keep);
    rt.block_on(rewrite(&db, keep, &forged));
    assert_eq!(ledger_size(&db), keep + forged.len() as u64);
    let e = verify_fails(&env, env.cmd());
    assert!(
        e.contains(&format!(
            "entry {}: not the entry published for that place on audit.entry",
            keep + 1
        )),
        "{e}"
    );
    assert!(e.contains("checkpoint"), "{e}");

    // Without the broker, the network's copy of the checkpoint and the
    // signer's state still show it, bracketing the rewritten entries.
    let mut offline = env.cmd();
    offline.env("CAIRN_NATS__URL", "nats://127.0.0.1:1");
    let e = verify_fails(&env, offline);
    assert!(e.contains("the AUDIT stream was not checked"), "{e}");
    assert!(
        e.contains(&format!("checkpoint {n} (from network local)"))
            && e.contains("do not have the root signed for them"),
        "{e}"
    );
    // Bracketed between a checkpoint that still holds (signed earlier, at
    // most `keep`) and the one that does not.
    let (from, to) = e
        .split("among entries ")
        .nth(1)
        .and_then(|r| r.split_once(' '))
        .and_then(|(range, _)| range.split_once('–'))
        .map(|(a, b)| (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()))
        .unwrap_or_else(|| panic!("no range of entries named: {e}"));
    assert!(from <= keep + 1 && to == n, "{e}");
}

/// Every entry, in log order, as `(subject, Nats-Msg-Id, bytes)` from
/// `<prefix>.audit.entry.>`: what a console replays.
fn published_entries(env: &Env) -> Vec<(String, String, Vec<u8>)> {
    let (nats, prefix) = (env.nats.url(), env.prefix.clone());
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            use futures::StreamExt;
            let js = async_nats::jetstream::new(async_nats::connect(nats).await.unwrap());
            let stream = js
                .get_stream(format!("{}_AUDIT", prefix.to_uppercase()))
                .await
                .unwrap();
            let mut consumer = stream
                .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
                    filter_subject: format!("{prefix}.audit.entry.>"),
                    ..Default::default()
                })
                .await
                .unwrap();
            let mut left = consumer.info().await.unwrap().num_pending;
            let mut out = Vec::new();
            let mut msgs = consumer.messages().await.unwrap();
            while left > 0 {
                let m = msgs.next().await.unwrap().unwrap();
                left = m.info().unwrap().pending;
                let id = m
                    .headers
                    .as_ref()
                    .unwrap()
                    .get(async_nats::header::NATS_MESSAGE_ID)
                    .unwrap();
                out.push((m.subject.to_string(), id.to_string(), m.payload.to_vec()));
            }
            out
        })
}

/// Every committed entry is re-published, byte for byte and in log order,
/// on `audit.entry.<kind>`; replaying that history into an empty database
/// (`cairn audit rebuild`) gives the same entries, tree, root and
/// projections, with the signed checkpoints restored; a non-empty database
/// is refused.
#[test]
fn the_ledger_is_rebuilt_from_jetstream_with_the_same_root() {
    let (mut env, _key, _vkey) = signed_env();
    let n = two_backups_signed(&mut env);
    let db = env.db.clone();
    let original = env.json(&["audit", "verify", "--json"]);
    assert_eq!(original["ok"], true, "{original}");

    let published = published_entries(&env);
    assert_eq!(published.len() as u64, n);
    for (i, (subject, id, bytes)) in published.iter().enumerate() {
        let seq = i + 1;
        let row = psql(
            &db,
            &format!(
                "select kind || ' ' || encode(entry, 'hex') from ledger_entries where seq = {seq}"
            ),
        );
        let (kind, hex_entry) = row.split_once(' ').unwrap();
        assert_eq!(subject, &format!("{}.audit.entry.{kind}", env.prefix));
        assert_eq!(id, &format!("entry-{seq}"));
        assert_eq!(hex::encode(bytes), hex_entry, "entry {seq}");
    }

    let rebuilt_db = format!("{db}_rebuilt");
    let on_rebuilt = || on_db(&env, &rebuilt_db);
    let o = env.run_with(on_rebuilt(), &["audit", "rebuild", "--json"], None);
    let dropped = Dropper(rebuilt_db.clone());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rebuilt: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rebuilt["entries"].as_u64(), Some(n));
    assert_eq!(rebuilt["root"], original["report"]["merkle_root"]);
    let matching = rebuilt["checkpoints_matching"].as_array().unwrap();
    assert!(matching.contains(&serde_json::json!(n)), "{rebuilt}");
    assert_eq!(rebuilt["checkpoints_not_matching"], serde_json::json!([]));
    let o = env.run_with(on_rebuilt(), &["audit", "verify", "--json"], None);
    let again: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(again["ok"], true, "{again}");
    assert_eq!(
        again["report"]["merkle_root"],
        original["report"]["merkle_root"]
    );
    assert_eq!(
        again["report"]["chain_hash"],
        original["report"]["chain_hash"]
    );
    for q in [
        "select string_agg(encode(entry, 'hex'), ',' order by seq) from ledger_entries",
        "select string_agg(idx || encode(hash, 'hex'), ',' order by idx) from ledger_tree",
        "select string_agg(backup_id || status || coalesce(outcome::text, ''), ',' order by backup_id) from backups",
        "select count(*) || ':' || sum(len) from object_digests",
        "select string_agg(size || encode(note, 'hex'), ',' order by size) from ledger_checkpoints",
    ] {
        assert_eq!(psql(&db, q), psql(&rebuilt_db, q), "{q}");
    }
    let o = env.run_with(on_rebuilt(), &["audit", "rebuild"], None);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("already holds {n} entries")),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    drop(dropped);
}

/// Events of one backup can reach the ledger in another order than they
/// were sent: a message handed to a host that was then cut off comes again
/// only once its delivery times out (the three-host test saw a later run's
/// `backup.started` come after its objects). A later run of a backup's
/// ingest counts from the first of its events read, whichever it is; an
/// earlier run's objects and `backup.started` no longer do once anything of
/// a later run was read; and a rebuild from the log agrees.
#[test]
fn a_later_run_counts_from_its_first_event_read_and_an_earlier_one_no_longer() {
    use cairn_events::{encode, BackupId, Envelope, Event, KeyId, ObjectDigest, ObjectKey, Run};
    let mut env = Env::new();
    env.start_all();
    let src = env.source_dir("src");
    text_file(&src.join("a.txt"), 300_000, 1);
    let b = env.backup(&[src.to_str().unwrap()]);
    assert_eq!(b["status"], "completed", "{b}");
    let id = b["backup_id"].as_str().unwrap().to_string();
    let backup_id = BackupId::parse(&id).unwrap();
    let first: Run = logged_events(&env.db)
        .into_iter()
        .filter(|e| e.backup_id == backup_id)
        .find_map(|e| match e.event {
            Event::BackupStarted { run, .. } => run,
            _ => None,
        })
        .expect("the backup's run");
    assert!(first.order > 0, "a leased run is ordered: {first:?}");
    let later = Run {
        key: KeyId([7; 16]),
        order: first.order + 1000,
    };
    let manifest = ObjectKey::Manifest {
        backup_id: backup_id.clone(),
    };
    let sha = |tag: &str| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(tag.as_bytes()));
    let sealed = |run: Run, tag: &str| {
        Envelope::new(
            "ingest@elsewhere",
            backup_id.clone(),
            Event::ObjectSealed(ObjectDigest {
                object: manifest.clone(),
                sha256: sha(tag),
                len: tag.len() as u64,
                packed: Vec::new(),
                run: Some(run),
                shards: None,
            }),
            &[tag.as_bytes()],
        )
    };
    let started = |run: Run, tag: &str| {
        Envelope::new(
            "ingest@elsewhere",
            backup_id.clone(),
            Event::BackupStarted {
                worker: "ingest@elsewhere".into(),
                run: Some(run),
            },
            &[tag.as_bytes()],
        )
    };
    let subjects = cairn_events::subjects::Subjects::new(&env.prefix).unwrap();
    // The later run's manifest before its backup.started; then what the
    // earlier run still had under way; then the later run's start; then
    // the earlier run's start, delivered again.
    for e in [
        sealed(later, "the later run's manifest"),
        sealed(first, "the earlier run's manifest, late"),
        started(later, "later"),
        started(first, "earlier, again"),
    ] {
        publish_raw(&env, &subjects.event(&e.event, &backup_id), &encode(&e));
    }
    wait_until_idle(&env, 60);
    let db = env.db.clone();
    let digest_of_manifest =
        format!("select sha256 from object_digests where path = 'backups/{id}/manifest'");
    assert_eq!(
        psql(&db, &digest_of_manifest),
        sha("the later run's manifest"),
        "the later run's manifest counts, read before its backup.started"
    );
    let run_of = format!("select run || ' ' || run_order from backups where backup_id = '{id}'");
    assert_eq!(
        psql(&db, &run_of),
        format!("{} {}", later.key.to_hex(), later.order),
        "the ledger names the later run"
    );
    let logged = logged_events(&db)
        .into_iter()
        .filter(|e| e.source == "ingest@elsewhere")
        .count();
    assert_eq!(logged, 4, "the log keeps every event, counted or not");

    // A rebuild from the log projects the same.
    let rebuilt_db = format!("{db}_rebuilt");
    let dropped = Dropper(rebuilt_db.clone());
    let o = env.run_with(
        on_db(&env, &rebuilt_db),
        &["audit", "rebuild", "--json"],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for q in [
        digest_of_manifest.as_str(),
        run_of.as_str(),
        "select string_agg(path || sha256, ',' order by path) from object_digests",
    ] {
        assert_eq!(psql(&db, q), psql(&rebuilt_db, q), "{q}");
    }
    drop(dropped);
}

/// A command of the test's CLI against database `db` of the local server
/// (where a test rebuilds the ledger).
fn on_db(env: &Env, db: &str) -> std::process::Command {
    let mut c = env.cmd();
    c.env(
        "CAIRN_POSTGRES__URL",
        format!("host=127.0.0.1 port=5432 user=postgres dbname={db}"),
    );
    c
}

/// Drops a database the test made when the test ends, passed or not.
struct Dropper(String);

impl Drop for Dropper {
    fn drop(&mut self) {
        try_psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0),
        );
    }
}

/// The ledger's role may only SELECT and INSERT the log; the other stages'
/// role only SELECT; the triggers refuse UPDATE, DELETE and TRUNCATE even to
/// the owner. The pipeline runs under those roles.
#[test]
fn ledger_roles_may_only_insert_and_select() {
    let (mut env, _key, _vkey) = signed_env();
    env.start_all();
    let src = env.source_dir("src");
    text_file(&src.join("a.txt"), 100_000, 3);
    env.backup(&[src.to_str().unwrap()]);
    // Signed as the ledger's role, so every table of the log has rows.
    env.ok(&["audit", "checkpoint"]);
    let db = env.db.clone();
    let log = ["ledger_entries", "ledger_tree", "ledger_checkpoints"];
    for table in log {
        for (role, edit) in [
            (
                "cairn_ledger",
                format!("UPDATE {table} SET {} = {0}", column(table)),
            ),
            ("cairn_ledger", format!("DELETE FROM {table}")),
            ("cairn_ledger", format!("TRUNCATE {table}")),
            ("cairn_reader", format!("DELETE FROM {table}")),
        ] {
            let (ok, err) = try_psql(&db, &format!("SET ROLE {role}; {edit}"));
            assert!(
                !ok && err.contains(&format!("permission denied for table {table}")),
                "{role}: {edit}: {err}"
            );
        }
        // The owner is stopped by the triggers.
        for edit in [
            format!("UPDATE {table} SET {} = {0}", column(table)),
            format!("DELETE FROM {table}"),
            format!("TRUNCATE {table}"),
        ] {
            let (ok, err) = try_psql(&db, &edit);
            assert!(!ok && err.contains("append-only"), "owner: {edit}: {err}");
        }
    }
    // Appending is what the ledger's role may do; the reader may not.
    let append = "INSERT INTO ledger_tree VALUES (999999999, decode(repeat('00', 32), 'hex'))";
    let (ok, err) = try_psql(
        &db,
        &format!("BEGIN; SET ROLE cairn_ledger; {append}; ROLLBACK"),
    );
    assert!(ok, "{err}");
    let (ok, err) = try_psql(&db, &format!("SET ROLE cairn_reader; {append}"));
    assert!(!ok && err.contains("permission denied"), "{err}");
    let (ok, err) = try_psql(
        &db,
        "SET ROLE cairn_reader; UPDATE backups SET status = 'x'",
    );
    assert!(
        !ok && err.contains("permission denied for table backups"),
        "{err}"
    );
    // Nothing was lost on the way, and the running stages kept working
    // under their roles.
    let before = psql(&db, "select count(*) from ledger_entries");
    text_file(&src.join("b.txt"), 100_000, 4);
    env.backup(&[src.to_str().unwrap()]);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        psql(&db, "select count(*) from ledger_entries")
            .parse::<u64>()
            .unwrap()
            > before.parse().unwrap()
    );
    env.ok(&["audit", "verify"]);
    let serve_log = env.serve_logs();
    for role in ["cairn_ledger", "cairn_reader"] {
        assert!(
            serve_log.contains("database role taken") && serve_log.contains(role),
            "the stages do not work as {role}: {serve_log}"
        );
    }
    assert!(!serve_log.contains("cannot take the database role"));
}

fn column(table: &str) -> &'static str {
    match table {
        "ledger_tree" => "hash",
        "ledger_checkpoints" => "note",
        _ => "entry",
    }
}

/// The verify service witnesses the log: it cosigns each new checkpoint
/// after proving it extends the last one it cosigned, and proofs made
/// against a cosigned checkpoint carry both signatures. When a signer that
/// lost its state signs a rewritten history, the witness refuses, both for a
/// second root at the same size and for a longer log that does not extend
/// what it saw.
#[test]
fn the_witness_cosigns_only_extensions_of_what_it_saw() {
    let (mut env, key, vkey, wvkey) = witnessed_env();
    let n = two_backups_signed(&mut env);
    let db = env.db.clone();
    // `serve verify` cosigned as the log grew; a look now cosigns the last.
    let w = env.json(&["audit", "witness", "--json"]);
    assert!(
        w["status"] == "cosigned" || w["status"] == "already cosigned",
        "{w}"
    );
    assert_eq!(w["size"].as_u64(), Some(n), "{w}");
    let cosigned = last_cosigned(&env).expect("a cosigned checkpoint on audit.cosigned");
    let cp = cairn_tlog::checkpoint::verify_cosigned(&cosigned, &vkey, &wvkey).unwrap();
    assert_eq!(cp.size(), n);
    let serve_log = env.serve_logs();
    assert!(serve_log.contains("checkpoint cosigned"), "{serve_log}");

    // An inclusion proof now stands on the cosigned checkpoint.
    let proofs = env.path().join("proofs");
    env.ok(&["audit", "prove", "2", "--out", proofs.to_str().unwrap()]);
    let check = |witness: &str| {
        env.run(&[
            "audit",
            "check-proof",
            proofs.join("entry-2.tlog-proof").to_str().unwrap(),
            "--entry",
            proofs.join("entry-2.bin").to_str().unwrap(),
            "--key",
            &vkey,
            "--witness-key",
            witness,
        ])
    };
    let o = check(&wvkey);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, stranger) = cairn_tlog::checkpoint::generate("cairn.test/witness").unwrap();
    let o = check(&stranger);
    assert!(
        !o.status.success()
            && String::from_utf8_lossy(&o.stderr).contains("not cosigned by the witness"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // The signer loses its state and signs a rewritten log of the same size.
    let keep = n - 4;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(rewrite(&db, keep, &forge(&db, keep - 3, keep)));
    let lose_state = || std::fs::remove_file(key.with_extension("key.last")).unwrap();
    lose_state();
    env.ok(&["audit", "checkpoint"]);
    let o = env.run(&["audit", "witness"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "the log signed two different roots for {n} entries"
        )),
        "{err}"
    );
    // ... and then a longer one, which does not extend what the witness saw.
    rt.block_on(rewrite(&db, keep, &forge(&db, keep - 5, keep)));
    assert_eq!(ledger_size(&db), n + 2);
    lose_state();
    env.ok(&["audit", "checkpoint"]);
    let o = env.run(&["audit", "witness"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "refusing to cosign: the checkpoint at {} entries does not extend the one cosigned at {n}",
            n + 2
        )),
        "{err}"
    );
    let last = last_cosigned(&env).unwrap();
    assert_eq!(
        cairn_tlog::checkpoint::verify(&last, &vkey).unwrap().size(),
        n,
        "a forked checkpoint was cosigned"
    );
}

fn last_cosigned(env: &Env) -> Option<Vec<u8>> {
    let (nats, prefix) = (env.nats.url(), env.prefix.clone());
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let js = async_nats::jetstream::new(async_nats::connect(nats).await.unwrap());
            let stream = js
                .get_stream(format!("{}_AUDIT", prefix.to_uppercase()))
                .await
                .unwrap();
            stream
                .get_last_raw_message_by_subject(&format!("{prefix}.audit.cosigned"))
                .await
                .ok()
                .map(|m| m.payload.to_vec())
        })
}

/// A signed environment whose verify service is also a witness
/// (`[audit] witness_key_file`), looking every second. Returns it with the
/// log's key file, the log's public key and the witness's public key.
fn witnessed_env() -> (Env, PathBuf, String, String) {
    let wkey = tempfile::tempdir().unwrap().keep().join("witness.key");
    let (env, key, vkey) = signed_env_with(vec![
        (
            "CAIRN_AUDIT__WITNESS_KEY_FILE".into(),
            wkey.display().to_string(),
        ),
        ("CAIRN_AUDIT__CHECKPOINT_INTERVAL_SECS".into(), "1".into()),
    ]);
    let wvkey = env
        .ok(&[
            "audit",
            "keygen",
            "--origin",
            "cairn.test/witness",
            "--key-file",
            wkey.to_str().unwrap(),
        ])
        .trim()
        .to_string();
    (env, key, vkey, wvkey)
}

/// `cairn audit evidence` bundles one backup's entries with inclusion proofs
/// against a cosigned checkpoint and a summary (manifest digest, Merkle
/// roots, locators per network) that matches the repository; the bundle is
/// checked offline with the two public keys, and a doctored summary, entry or
/// cosignature is refused, naming what is wrong.
#[test]
fn evidence_bundles_prove_a_backup_offline() {
    let (mut env, _key, vkey, wvkey) = witnessed_env();
    two_backups_signed(&mut env);
    let db = env.db.clone();
    let id = psql(
        &db,
        "select backup_id from backups where status = 'completed' order by requested_at limit 1",
    );
    env.json(&["audit", "witness", "--json"]);
    let bundle_path = env.path().join("evidence.json");
    let human = env.ok(&[
        "audit",
        "evidence",
        &id,
        "--out",
        bundle_path.to_str().unwrap(),
    ]);
    assert!(human.contains("(cosigned)"), "{human}");
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&bundle_path).unwrap()).unwrap();
    assert_eq!(bundle["format"], "cairn-evidence@v1");
    let summary = &bundle["summary"];
    assert_eq!(summary["status"], "completed", "{summary}");
    // The summary is the repository's truth: the manifest's digest as the
    // ledger recorded it and as the network holds it, the Merkle root `show`
    // reports, the manifest's place on the network.
    let manifest_path = format!("backups/{id}/manifest");
    assert_eq!(summary["manifest"]["path"], manifest_path.as_str());
    assert_eq!(
        summary["manifest"]["sha256"],
        psql(
            &db,
            &format!("select sha256 from object_digests where path = '{manifest_path}'")
        )
        .as_str()
    );
    let on_network = std::fs::read(env.network_dir("local").join(&manifest_path)).unwrap();
    use sha2::Digest;
    assert_eq!(
        summary["manifest"]["sha256"],
        hex::encode(sha2::Sha256::digest(&on_network)).as_str()
    );
    let show = env.json(&["show", &id, "--json"]);
    assert_eq!(
        summary["merkle_root"], show["outcome"]["merkle_root"],
        "{show}"
    );
    let local = &summary["networks"]["local"];
    assert_eq!(local["verified"], true, "{summary}");
    assert!(local["locators"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!(manifest_path)));
    let entries = bundle["entries"].as_array().unwrap();
    assert_eq!(
        entries.len().to_string(),
        psql(
            &db,
            &format!("select count(*) from ledger_entries where backup_id = '{id}'")
        )
    );

    // Offline: neither broker nor database.
    let check = |file: &std::path::Path, witness: &str| {
        let mut c = env.cmd();
        c.env("CAIRN_NATS__URL", "nats://127.0.0.1:1").env(
            "CAIRN_POSTGRES__URL",
            "host=127.0.0.1 port=1 user=nobody dbname=gone",
        );
        env.run_with(
            c,
            &[
                "audit",
                "check-proof",
                file.to_str().unwrap(),
                "--key",
                &vkey,
                "--witness-key",
                witness,
            ],
            None,
        )
    };
    let o = check(&bundle_path, &wvkey);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout.contains(&format!(
            "all {} entries are in log cairn.test/ledger",
            entries.len()
        )) && stdout.contains("cosigned by the witness"),
        "{stdout}"
    );
    let doctored = |what: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut b = bundle.clone();
        edit(&mut b);
        let p = env.path().join(format!("doctored-{what}.json"));
        std::fs::write(&p, serde_json::to_vec(&b).unwrap()).unwrap();
        let o = check(&p, &wvkey);
        assert!(!o.status.success(), "doctored {what} accepted");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = doctored("summary", &|b| {
        b["summary"]["merkle_root"] = serde_json::json!("00".repeat(32))
    });
    assert!(
        e.contains("summary does not follow") && e.contains("merkle_root"),
        "{e}"
    );
    let e = doctored("entry", &|b| {
        let text = b["entries"][0]["entry"].as_str().unwrap().to_string();
        let mut bytes = base64_decode(&text);
        bytes[12] ^= 1;
        b["entries"][0]["entry"] = serde_json::json!(base64_encode(&bytes));
    });
    let first = entries[0]["seq"].as_u64().unwrap();
    assert!(e.contains(&format!("entry {first}")), "{e}");
    let e = doctored("dropped-entry-order", &|b| {
        let list = b["entries"].as_array_mut().unwrap();
        list.swap(0, 1);
    });
    assert!(e.contains("out of log order"), "{e}");
    let (_, stranger) = cairn_tlog::checkpoint::generate("cairn.test/witness").unwrap();
    let o = check(&bundle_path, &stranger);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no valid signature by cairn.test/witness"));

    let o = env.run(&["audit", "evidence", "b-nope"]);
    assert!(!o.status.success());
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// `cairn audit export` writes the log in the C2SP tlog-tiles layout; a
/// tlog client (tlog_tiles' `TileHashReader`, which authenticates every
/// tile against the checkpoint's root) reads it back from the files alone:
/// the root, and every entry's leaf where the bundles put it.
#[test]
fn the_log_exports_as_tlog_tiles() {
    let (mut env, _key, vkey) = signed_env();
    two_backups_signed(&mut env);
    let db = env.db.clone();
    // Past one full tile and bundle (256) and into the second tile level.
    let n0 = ledger_size(&db);
    let logged = logged_entries(&db);
    let more = reissued(logged.iter().cycle().take(600 - n0 as usize), b"more");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(append_unpublished(&db, &more));
    let size = ledger_size(&db);
    assert_eq!(size, 600);
    env.ok(&["audit", "checkpoint"]);
    let out = env.path().join("export");
    let done = env.json(&["audit", "export", out.to_str().unwrap(), "--json"]);
    assert_eq!(done["size"].as_u64(), Some(size), "{done}");

    let cp = cairn_tlog::checkpoint::verify(&std::fs::read(out.join("checkpoint")).unwrap(), &vkey)
        .unwrap();
    assert_eq!(cp.size(), size);
    let reader = TilesOnDisk(out.clone());
    let hashes = tlog_tiles::tile::TileHashReader::new(size, *cp.hash(), &reader);
    assert_eq!(
        tlog_tiles::tlog::tree_hash(size, &hashes).unwrap(),
        *cp.hash()
    );
    // Every entry, from its bundle, is the leaf the tiles hold.
    let mut seq = 0u64;
    for bundle in 0..size.div_ceil(256) {
        let width = (size - bundle * 256).min(256);
        let bytes = std::fs::read(out.join(c2sp_path("entries", bundle, width))).unwrap();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
            let entry = &rest[2..2 + len];
            rest = &rest[2 + len..];
            let idx = tlog_tiles::tlog::stored_hash_index(0, seq);
            let leaf = hashes.read_hashes_checked(idx);
            assert_eq!(leaf, cairn_tlog::leaf_hash(entry), "entry {}", seq + 1);
            seq += 1;
        }
    }
    assert_eq!(seq, size);
}

/// A C2SP tlog-tiles path, written out here from the spec (not Cairn's code).
fn c2sp_path(level: &str, n: u64, width: u64) -> String {
    let digits = format!("{n:03}");
    let mut groups: Vec<String> = Vec::new();
    let mut rest = digits.as_str();
    // 3-digit groups from the right; all but the last prefixed with 'x'.
    let pad = (3 - rest.len() % 3) % 3;
    let padded = format!("{}{}", "0".repeat(pad), rest);
    rest = &padded;
    while !rest.is_empty() {
        groups.push(rest[..3].to_string());
        rest = &rest[3..];
    }
    let last = groups.pop().unwrap();
    let mut p = format!("tile/{level}/");
    for g in groups {
        p.push_str(&format!("x{g}/"));
    }
    p.push_str(&last);
    if width < 256 {
        p.push_str(&format!(".p/{width}"));
    }
    p
}

struct TilesOnDisk(PathBuf);

impl tlog_tiles::tile::TileReader for TilesOnDisk {
    fn height(&self) -> u8 {
        8
    }
    fn read_tiles(
        &self,
        tiles: &[tlog_tiles::tile::Tile],
    ) -> Result<Vec<Vec<u8>>, tlog_tiles::tlog::Error> {
        tiles
            .iter()
            .map(|t| {
                let p = self.0.join(c2sp_path(
                    &t.level().to_string(),
                    t.level_index(),
                    t.width() as u64,
                ));
                std::fs::read(&p).map_err(|_| tlog_tiles::tlog::Error::InvalidTile)
            })
            .collect()
    }
    fn save_tiles(&self, _: &[tlog_tiles::tile::Tile], _: &[Vec<u8>]) {}
}

trait ReadOne {
    fn read_hashes_checked(&self, idx: u64) -> cairn_tlog::Hash;
}

impl ReadOne for tlog_tiles::tile::TileHashReader<'_> {
    fn read_hashes_checked(&self, idx: u64) -> cairn_tlog::Hash {
        use tlog_tiles::tlog::HashReader;
        self.read_hashes(&[idx]).unwrap()[0]
    }
}

/// Edits made as a database superuser (bypassing the append-only triggers)
/// are detected by `cairn audit verify`, which names the entry.
#[test]
fn audit_verify_detects_tampering() {
    let mut env = Env::new();
    env.start_all();
    let src = env.source_dir("src");
    text_file(&src.join("a.txt"), 1 << 20, 1);
    env.backup(&[src.to_str().unwrap()]);
    env.backup(&[src.to_str().unwrap()]);
    let db = env.db.clone();
    // Let the ledger catch up, then stop it so nothing appends meanwhile.
    std::thread::sleep(Duration::from_secs(1));
    env.worker(0).kill9();
    env.ok(&["audit", "verify"]);
    let n: i64 = psql(&db, "select count(*) from ledger_entries")
        .parse()
        .unwrap();
    assert!(n > 10);

    // The triggers refuse plain edits.
    let (ok, err) = try_psql(&db, "UPDATE ledger_entries SET kind = 'x' WHERE seq = 1");
    assert!(!ok && err.contains("append-only"), "{err}");

    let bypass = "SET session_replication_role = replica;";
    let verify_err = |env: &Env| {
        let o = env.run(&["audit", "verify"]);
        assert!(!o.status.success(), "tampering not detected");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    // Rewrite one hash of the stored Merkle tree: named, with the entries
    // it covers; then the tree root in the head.
    let flip_tree = format!("{bypass} UPDATE ledger_tree SET hash = set_byte(hash, 0, get_byte(hash, 0) # 1) WHERE idx = 2");
    psql(&db, &flip_tree);
    let e = verify_err(&env);
    assert!(
        e.contains("tree hash 2") && e.contains("entries 1–2"),
        "{e}"
    );
    psql(&db, &flip_tree);
    env.ok(&["audit", "verify"]);
    let flip_root =
        "UPDATE ledger_head SET tree_root = set_byte(tree_root, 0, get_byte(tree_root, 0) # 1)";
    psql(&db, flip_root);
    let e = verify_err(&env);
    assert!(e.contains("head tree root"), "{e}");
    psql(&db, flip_root);
    env.ok(&["audit", "verify"]);

    // Edit one byte of entry 5.
    psql(&db, &format!("{bypass} UPDATE ledger_entries SET entry = set_byte(entry, 10, get_byte(entry, 10) # 1) WHERE seq = 5"));
    assert!(verify_err(&env).contains("entry 5"));
    psql(&db, &format!("{bypass} UPDATE ledger_entries SET entry = set_byte(entry, 10, get_byte(entry, 10) # 1) WHERE seq = 5"));
    env.ok(&["audit", "verify"]);

    // Swap two entries (bytes, hashes and columns together).
    psql(&db, &format!("{bypass}
        CREATE TEMP TABLE t AS SELECT * FROM ledger_entries WHERE seq IN (3, 4);
        UPDATE ledger_entries l SET entry = t.entry, leaf_hash = t.leaf_hash, event_id = t.event_id || '-swap', kind = t.kind, backup_id = t.backup_id FROM t WHERE l.seq = 3 AND t.seq = 4;
        UPDATE ledger_entries l SET entry = t.entry, leaf_hash = t.leaf_hash, event_id = t.event_id, kind = t.kind, backup_id = t.backup_id FROM t WHERE l.seq = 4 AND t.seq = 3;
        UPDATE ledger_entries l SET event_id = t.event_id FROM t WHERE l.seq = 3 AND t.seq = 4;"));
    let e = verify_err(&env);
    assert!(e.contains("entry 3") || e.contains("entry 4"), "{e}");

    // Delete an entry.
    psql(
        &db,
        &format!("{bypass} DELETE FROM ledger_entries WHERE seq = 7"),
    );
    let e = verify_err(&env);
    assert!(e.contains("entry 7"), "{e}");

    // Cut the tail without fixing the head: the head no longer matches (a
    // consistent cut and re-append: `consistent_rewrites_are_caught_...`).
    psql(
        &db,
        &format!("{bypass} DELETE FROM ledger_entries WHERE seq > {}", n - 3),
    );
    let e = verify_err(&env);
    assert!(e.contains("head") || e.contains("entry"), "{e}");
}

/// A ledger written before the Merkle tree was stored (schema version 1)
/// gets its tree built from the entries when it is migrated, with the same
/// root the entries give, and verifies.
#[test]
fn ledger_tree_is_built_for_an_older_log() {
    let mut env = Env::new();
    env.start_all();
    let src = env.source_dir("src");
    text_file(&src.join("a.txt"), 200_000, 3);
    env.backup(&[src.to_str().unwrap()]);
    std::thread::sleep(Duration::from_secs(1));
    env.worker(0).kill9();
    let before = env.json(&["audit", "verify", "--json"]);
    let db = env.db.clone();
    assert_eq!(
        psql(&db, "select encode(tree_root, 'hex') from ledger_head"),
        before["report"]["merkle_root"].as_str().unwrap()
    );
    // Back to schema version 1, entries kept.
    psql(
        &db,
        "SET session_replication_role = replica;
         DROP TABLE ledger_tree;
         ALTER TABLE ledger_head DROP COLUMN tree_root;
         DELETE FROM schema_migrations WHERE version = 2;",
    );
    let after = env.json(&["audit", "verify", "--json"]);
    assert_eq!(after["ok"], true, "{after}");
    assert_eq!(
        after["report"]["merkle_root"],
        before["report"]["merkle_root"]
    );
    assert_eq!(
        psql(&db, "select encode(tree_root, 'hex') from ledger_head"),
        before["report"]["merkle_root"].as_str().unwrap()
    );
    let entries: i64 = psql(&db, "select count(*) from ledger_entries")
        .parse()
        .unwrap();
    let hashes: i64 = psql(&db, "select count(*) from ledger_tree")
        .parse()
        .unwrap();
    assert!(
        hashes >= entries,
        "{hashes} tree hashes for {entries} entries"
    );
}

/// Signed checkpoints: `audit keygen` makes the key (secret 0600, public
/// beside it); `audit checkpoint` signs the ledger's size and Merkle root,
/// which an auditor verifies with the public key alone; the next one is
/// proven to extend it; once the stored tree is rewritten the signer refuses.
#[test]
fn audit_checkpoints_are_signed_and_never_inconsistent() {
    use std::os::unix::fs::PermissionsExt;
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("ledger.key");
    let mut env = Env::with(Options {
        env: vec![
            (
                "CAIRN_AUDIT__SIGNING_KEY_FILE".into(),
                key.display().to_string(),
            ),
            ("CAIRN_AUDIT__CHECKPOINT_INTERVAL_SECS".into(), "2".into()),
        ],
        ..Options::default()
    });
    let vkey = env.ok(&[
        "audit",
        "keygen",
        "--origin",
        "cairn.test/ledger",
        "--key-file",
        key.to_str().unwrap(),
    ]);
    let vkey = vkey.trim().to_string();
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(key.with_extension("key.pub"))
            .unwrap()
            .trim(),
        vkey
    );
    let again = env.run(&[
        "audit",
        "keygen",
        "--origin",
        "cairn.test/ledger",
        "--key-file",
        key.to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwritten"));

    env.start_all();
    let src = env.source_dir("src");
    text_file(&src.join("a.txt"), 100_000, 5);
    env.backup(&[src.to_str().unwrap()]);
    let c1 = env.json(&["audit", "checkpoint", "--json"]);
    let cp = cairn_tlog::checkpoint::verify(c1["checkpoint"].as_str().unwrap().as_bytes(), &vkey)
        .expect("the checkpoint verifies with the public key");
    assert_eq!(cp.origin(), "cairn.test/ledger");
    assert_eq!(Some(cp.size()), c1["size"].as_u64());
    assert_eq!(hex::encode(cp.hash().0), c1["root"].as_str().unwrap());
    assert!(cp.size() > 0);
    // Copies outside the database: the network and the AUDIT stream.
    assert_eq!(c1["published"], "ok", "{c1}");
    assert_eq!(c1["networks"]["local"], "ok", "{c1}");
    let on_network = env
        .network_dir("local")
        .join(format!("checkpoints/{:020}", cp.size()));
    assert_eq!(
        std::fs::read_to_string(&on_network).unwrap(),
        c1["checkpoint"].as_str().unwrap()
    );
    let prefix = env.prefix.clone();
    let nats = env.nats.url();
    let published = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let js = async_nats::jetstream::new(async_nats::connect(nats).await.unwrap());
            let stream = js
                .get_stream(format!("{}_AUDIT", prefix.to_uppercase().replace('-', "_")))
                .await
                .unwrap();
            let info = stream.cached_info().config.clone();
            assert!(
                info.deny_delete && info.deny_purge,
                "the AUDIT stream can be purged"
            );
            let msg = stream
                .get_last_raw_message_by_subject(&format!("{prefix}.audit.checkpoint"))
                .await
                .unwrap();
            String::from_utf8(msg.payload.to_vec()).unwrap()
        });
    assert_eq!(published, c1["checkpoint"].as_str().unwrap());

    text_file(&src.join("b.txt"), 100_000, 6);
    env.backup(&[src.to_str().unwrap()]);
    let db = env.db.clone();
    wait_for(30, "the ledger to grow", || {
        (psql(&db, "select size from ledger_head")
            .parse::<u64>()
            .unwrap()
            > cp.size())
        .then_some(())
    });
    let c2 = env.json(&["audit", "checkpoint", "--json"]);
    // It extends the last one signed: ours, or one `serve checkpoint`
    // signed meanwhile (every 2 s here).
    assert!(c2["extends"].as_u64().unwrap() >= cp.size(), "{c2}");
    let cp2 = cairn_tlog::checkpoint::verify(c2["checkpoint"].as_str().unwrap().as_bytes(), &vkey)
        .unwrap();
    assert!(cp2.size() > cp.size());
    // `serve checkpoint` signs the ledger as it grows, on its own.
    text_file(&src.join("c.txt"), 100_000, 7);
    env.backup(&[src.to_str().unwrap()]);
    wait_for(30, "serve to sign the grown ledger", || {
        let head = psql(&db, "select size from ledger_head");
        (psql(
            &db,
            &format!("select count(*) from ledger_checkpoints where size = {head}"),
        ) == "1"
            && head.parse::<u64>().unwrap() > cp2.size())
        .then_some(())
    });

    // Inclusion proofs, checked offline: the database and broker named in
    // the environment do not exist for `check-proof`.
    let proofs = env.path().join("proofs");
    let public = key.with_extension("key.pub");
    let offline = |args: &[&str]| {
        let mut c = env.cmd();
        c.env("CAIRN_NATS__URL", "nats://127.0.0.1:1").env(
            "CAIRN_POSTGRES__URL",
            "host=127.0.0.1 port=1 user=nobody dbname=gone",
        );
        env.run_with(c, args, None)
    };
    for seq in [1, 3, cp2.size()] {
        env.ok(&[
            "audit",
            "prove",
            &seq.to_string(),
            "--out",
            proofs.to_str().unwrap(),
        ]);
        let o = offline(&[
            "audit",
            "check-proof",
            proofs
                .join(format!("entry-{seq}.tlog-proof"))
                .to_str()
                .unwrap(),
            "--entry",
            proofs.join(format!("entry-{seq}.bin")).to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
        ]);
        assert!(
            o.status.success(),
            "entry {seq}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(String::from_utf8_lossy(&o.stdout)
            .contains(&format!("entry {seq} is in log cairn.test/ledger")));
    }
    let proof3 = proofs.join("entry-3.tlog-proof");
    let entry3 = proofs.join("entry-3.bin");
    let check3 = |entry: &std::path::Path, key: &str| {
        offline(&[
            "audit",
            "check-proof",
            proof3.to_str().unwrap(),
            "--entry",
            entry.to_str().unwrap(),
            "--key",
            key,
        ])
    };
    // Another entry's bytes, an edited entry, another key: refused.
    let o = check3(&proofs.join("entry-1.bin"), public.to_str().unwrap());
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("not entry 3"));
    let mut edited = std::fs::read(&entry3).unwrap();
    edited[5] ^= 1;
    let edited_path = proofs.join("edited.bin");
    std::fs::write(&edited_path, &edited).unwrap();
    assert!(!check3(&edited_path, public.to_str().unwrap())
        .status
        .success());
    let other_key = env.path().join("other.key");
    let other_vkey = env.ok(&[
        "audit",
        "keygen",
        "--origin",
        "cairn.test/ledger",
        "--key-file",
        other_key.to_str().unwrap(),
    ]);
    let o = check3(&entry3, other_vkey.trim());
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("no valid signature")
    );
    // The second checkpoint extends the first, checked offline; a proof
    // file with a changed hash is refused.
    let cons = proofs.join("consistency.json");
    env.ok(&[
        "audit",
        "consistency",
        &cp.size().to_string(),
        &cp2.size().to_string(),
        "--out",
        cons.to_str().unwrap(),
    ]);
    let o = offline(&[
        "audit",
        "check-proof",
        cons.to_str().unwrap(),
        "--key",
        public.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("extends the tree of {}", cp.size()))
    );
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cons).unwrap()).unwrap();
    v["proof"][0] = serde_json::json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    std::fs::write(&cons, serde_json::to_vec(&v).unwrap()).unwrap();
    let o = offline(&[
        "audit",
        "check-proof",
        cons.to_str().unwrap(),
        "--key",
        public.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success()
            && String::from_utf8_lossy(&o.stderr).contains("not an append-only extension")
    );

    // An entry that does not exist.
    let beyond = psql(&db, "select size + 1000 from ledger_head");
    let o = env.run(&["audit", "prove", &beyond, "--out", proofs.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("has no entry {beyond}")));

    // History rewritten in the database (every stored tree hash): no
    // signature for it, and nothing recorded.
    env.worker(0).kill9();
    let signed = psql(&db, "select count(*) from ledger_checkpoints");
    let last_signed = std::fs::read_to_string(key.with_extension("key.last")).unwrap();
    psql(
        &db,
        "SET session_replication_role = replica; UPDATE ledger_tree SET hash = set_byte(hash, 0, get_byte(hash, 0) # 1)",
    );
    let o = env.run(&["audit", "checkpoint"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("refusing to sign"), "{err}");
    assert_eq!(psql(&db, "select count(*) from ledger_checkpoints"), signed);
    assert_eq!(
        std::fs::read_to_string(key.with_extension("key.last")).unwrap(),
        last_signed
    );
}

/// `cairn audit log` reads the ledger in log order, filtered by kind,
/// dataset, backup and time, and refuses a malformed time.
#[test]
fn audit_log_filters_the_ledger() {
    let mut env = Env::new();
    env.start_all();
    let src = env.source_dir("src");
    text_file(&src.join("a.txt"), 50_000, 9);
    let p = src.to_str().unwrap();
    let a1 = env.backup(&["--dataset", "app", p]);
    env.backup(&["--dataset", "app", p]);
    env.backup(&["--dataset", "other", p]);
    let db = env.db.clone();
    wait_for(30, "the ledger to record three completions", || {
        (psql(
            &db,
            "select count(*) from ledger_entries where kind = 'backup.completed'",
        ) == "3")
            .then_some(())
    });
    let entries = |args: &[&str]| {
        let mut a = vec!["audit", "log", "--json"];
        a.extend_from_slice(args);
        env.json(&a)["entries"].as_array().unwrap().clone()
    };
    assert_eq!(entries(&["--kind", "backup.completed"]).len(), 3);
    let app = entries(&["--kind", "backup.completed", "--dataset", "app"]);
    assert_eq!(app.len(), 2);
    assert!(app.iter().all(|e| e["dataset"] == "app"));
    let one = entries(&["--backup", a1["backup_id"].as_str().unwrap()]);
    assert_eq!(one[0]["kind"], "backup.requested", "{one:?}");
    assert!(one
        .windows(2)
        .all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64()));
    assert!(one.iter().any(|e| e["kind"] == "backup.completed"));
    assert_eq!(entries(&["--limit", "2"]).len(), 2);
    assert!(entries(&["--since", "2999-01-01T00:00:00Z"]).is_empty());
    let o = env.run(&["audit", "log", "--since", "yesterday"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("RFC 3339"));
}

/// Bad input to the ledger's commands gets an error naming the problem, a
/// non-zero exit, and changes nothing in the log.
#[test]
fn audit_commands_refuse_bad_input() {
    let mut env = Env::new();
    env.start_all();
    let src = env.source_dir("src");
    text_file(&src.join("a.txt"), 50_000, 9);
    env.backup(&[src.to_str().unwrap()]);
    let db = env.db.clone();
    let fails = |args: &[&str], c: Option<std::process::Command>, says: &str| {
        let o = env.run_with(c.unwrap_or_else(|| env.cmd()), args, None);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(says), "{args:?}: {err}");
    };
    let out = env.path().join("export");
    // Nothing signed yet: export and evidence say what to run.
    fails(
        &["audit", "export", out.to_str().unwrap()],
        None,
        "run `cairn audit checkpoint`",
    );
    fails(
        &["audit", "evidence", "no-such-backup"],
        None,
        "no entry for backup no-such-backup",
    );
    fails(&["audit", "evidence", "../etc"], None, "invalid backup id");
    fails(&["audit", "witness"], None, "set [audit] witness_key_file");
    fails(
        &["audit", "verify", "--key", "not-a-key"],
        None,
        "expected the log's public key",
    );

    // Signed with one key, verified with another: the wrong key is named,
    // not N forgeries.
    let key = env.path().join("ledger.key");
    env.ok(&[
        "audit",
        "keygen",
        "--origin",
        "cairn.test/ledger",
        "--key-file",
        key.to_str().unwrap(),
    ]);
    let mut signer = env.cmd();
    signer.env("CAIRN_AUDIT__SIGNING_KEY_FILE", &key);
    let o = env.run_with(signer, &["audit", "checkpoint"], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, stranger) = cairn_tlog::checkpoint::generate("cairn.test/ledger").unwrap();
    fails(
        &["audit", "verify", "--key", &stranger],
        None,
        "verifies with the key given (cairn.test/ledger): is it this log's public key?",
    );
    let public = key.with_extension("key.pub");
    env.ok(&["audit", "verify", "--key", public.to_str().unwrap()]);

    // A file where the export's directory should be; proofs that are not.
    std::fs::write(&out, b"a file").unwrap();
    fails(
        &["audit", "export", out.to_str().unwrap()],
        None,
        out.to_str().unwrap(),
    );
    let junk = env.path().join("junk.json");
    std::fs::write(&junk, br#"{"format": "cairn-evidence@v1", "entries": []}"#).unwrap();
    fails(
        &[
            "audit",
            "check-proof",
            junk.to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
        ],
        None,
        "is not valid evidence",
    );
    std::fs::write(&junk, b"not a proof at all").unwrap();
    fails(
        &[
            "audit",
            "check-proof",
            junk.to_str().unwrap(),
            "--entry",
            junk.to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
        ],
        None,
        "does not prove",
    );
    // The log is as it was.
    let before = psql(
        &db,
        "select size || encode(tree_root, 'hex') from ledger_head",
    );
    env.ok(&["audit", "verify", "--key", public.to_str().unwrap()]);
    assert_eq!(
        psql(
            &db,
            "select size || encode(tree_root, 'hex') from ledger_head"
        ),
        before
    );
}

/// A deployment whose database login may not create roles (no CREATEROLE,
/// not a member of Cairn's roles): `cairn setup` still migrates, the stages
/// say they work with the login's own privileges, and backups are recorded.
#[test]
fn a_login_without_createrole_still_sets_up_and_records() {
    let login = format!("cairn_t{}", hex::encode(rand::random::<[u8; 4]>()));
    psql(
        "postgres",
        &format!("CREATE ROLE {login} LOGIN NOSUPERUSER NOCREATEROLE"),
    );
    let _dropped = DropRole(login.clone());
    let mut env = Env::new();
    let url = format!("host=127.0.0.1 port=5432 user={login} dbname={}", env.db);
    env.set_env("CAIRN_POSTGRES__URL", &url);
    psql(
        "postgres",
        &format!("ALTER DATABASE {} OWNER TO {login}", env.db),
    );
    env.start_all();
    let src = env.source_dir("src");
    text_file(&src.join("a.txt"), 50_000, 11);
    env.backup(&[src.to_str().unwrap()]);
    env.ok(&["audit", "verify"]);
    assert_eq!(
        psql(
            &env.db,
            "select tableowner from pg_tables where tablename = 'ledger_entries'"
        ),
        login
    );
    let serve_log = env.serve_logs();
    assert!(
        serve_log.contains("cannot take the database role"),
        "{serve_log}"
    );
}

struct DropRole(String);

impl Drop for DropRole {
    fn drop(&mut self) {
        // After the test's database is gone (Env is dropped first).
        try_psql(
            "postgres",
            &format!("DROP OWNED BY {0}; DROP ROLE IF EXISTS {0}", self.0),
        );
    }
}

/// Entries the AUDIT stream never got (a log written before entries were
/// re-published, as an older release left it) are published when the ledger
/// starts, in place and byte for byte, so verify and rebuild cover the
/// whole log.
#[test]
fn entries_missing_from_the_audit_stream_are_republished_at_start() {
    let mut env = Env::new();
    env.start_all();
    let src = env.source_dir("src");
    text_file(&src.join("a.txt"), 50_000, 12);
    env.backup(&[src.to_str().unwrap()]);
    let db = env.db.clone();
    settle(&db);
    env.worker(0).kill9();
    let n0 = ledger_size(&db);
    let older = reissued(logged_entries(&db).iter().take(20), b"older release");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(append_unpublished(&db, &older));
    let size = ledger_size(&db);
    assert!(size > n0);
    assert_eq!(published_entries(&env).len() as u64, n0);

    env.serve(&["ledger"]);
    let published = wait_for(30, "the missing entries on audit.entry", || {
        let p = published_entries(&env);
        (p.len() as u64 == size).then_some(p)
    });
    let mut by_seq: Vec<(u64, Vec<u8>)> = published
        .into_iter()
        .map(|(_, id, b)| (id.trim_start_matches("entry-").parse().unwrap(), b))
        .collect();
    by_seq.sort();
    let republished: Vec<Vec<u8>> = by_seq.iter().map(|(_, b)| b.clone()).collect();
    assert_eq!(republished, logged_entries(&db));
    assert_eq!(by_seq.last().unwrap().0, size);
    let v = env.json(&["audit", "verify", "--json"]);
    assert_eq!(
        v["report"]["published_entries_compared"].as_u64(),
        Some(size),
        "{v}"
    );
}
