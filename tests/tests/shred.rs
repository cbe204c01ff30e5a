//! Per-dataset keys and crypto-shredding, end to end through the `cairn`
//! binary against a real nats-server, PostgreSQL, a directory network, an S3
//! server (s3s-fs) and a directory network that cannot delete (as Arweave):
//! datasets share no chunk, a legal hold blocks shredding, a shredded
//! dataset's keys are gone from every network that can delete (and never
//! were on the one that cannot), its backups restore nowhere and say why,
//! and every other dataset restores from each network alone.

use cairn_tests::*;
use std::path::Path;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn names_under(dir: &Path) -> Vec<String> {
    Env::files_under(dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Object names under `prefix` of the S3 network's repository, as s3s-fs
/// keeps them on its disk.
fn s3_names(server: &S3Server, prefix: &str) -> Vec<String> {
    names_under(&server.root.join(&server.bucket).join("repo").join(prefix))
}

fn every_network(env: &Env) -> Vec<std::collections::BTreeMap<String, String>> {
    ["local", "vault"]
        .iter()
        .map(|n| snapshot(&env.network_dir(n)))
        .collect()
}

#[test]
fn shredding_a_dataset_destroys_its_keys_everywhere_and_leaves_the_others_whole() {
    let s3_dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(s3_dir.path());
    let mut o = server.options("objects");
    o.extra_toml
        .push_str("\n[[networks]]\nname = \"vault\"\nkind = \"fs\"\ncan_delete = false\n");
    let mut env = Env::with(o);
    env.start_all();

    let payroll = env.source_dir("payroll");
    let crm = env.source_dir("crm");
    let salaries = b"name,salary\nalice,100\nbob,120\n".repeat(4000);
    std::fs::write(payroll.join("salaries.csv"), &salaries).unwrap();
    let noise: Vec<u8> = (0..400_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 9) as u8)
        .collect();
    std::fs::write(payroll.join("scan.bin"), &noise).unwrap();
    std::fs::write(crm.join("salaries.csv"), &salaries).unwrap();

    let p1 = env.backup(&["--dataset", "payroll", payroll.to_str().unwrap()]);
    let p2 = env.backup(&["--dataset", "payroll", payroll.to_str().unwrap()]);
    assert_eq!(p2["chunks_new"], 0, "within a dataset, dedup: {p2}");
    let c1 = env.backup(&["--dataset", "crm", crm.to_str().unwrap()]);
    assert_eq!(
        c1["chunks_new"], c1["chunks_total"],
        "the same file in another dataset shares no chunk: {c1}"
    );
    let ids = |b: &serde_json::Value| b["backup_id"].as_str().unwrap().to_string();
    let (p1, p2, c1) = (ids(&p1), ids(&p2), ids(&c1));

    // One key per dataset, on every network that can delete; none on the
    // vault, which cannot.
    assert_eq!(
        names_under(&env.network_dir("local").join("datasets")).len(),
        2
    );
    assert_eq!(s3_names(&server, "datasets").len(), 2);
    assert!(names_under(&env.network_dir("vault").join("datasets")).is_empty());
    let cache_root = env.path().join("data/cache/files");
    let payroll_cache = hex::encode("payroll");
    let cached = |root: &Path| {
        Env::files_under(root)
            .iter()
            .any(|p| p.to_string_lossy().contains(&format!("/{payroll_cache}/")))
    };
    assert!(cached(&cache_root), "a files cache of payroll exists here");

    // A legal hold blocks shredding; so does a confirmation that is not the
    // name. Nothing changes either way.
    let before = every_network(&env);
    env.ok(&["hold", &p1, "--reason", "case 7"]);
    let o = env.run(&["shred", "--dataset", "payroll", "--confirm", "payroll"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("legal hold") && stderr(&o).contains(&p1),
        "{}",
        stderr(&o)
    );
    env.ok(&["release", &p1, "--reason", "case closed"]);
    let o = env.run(&["shred", "--dataset", "payroll", "--confirm", "payrol"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--confirm must repeat"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        every_network(&env),
        before,
        "a refused shred changes nothing"
    );

    // Shred.
    let o = shred_payroll(&env);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["keys"].as_array().unwrap().len(), 1, "{report}");
    let mut shredded: Vec<String> = serde_json::from_value(report["backups"].clone()).unwrap();
    shredded.sort();
    let mut want = vec![p1.clone(), p2.clone()];
    want.sort();
    assert_eq!(shredded, want, "{report}");
    assert_eq!(
        report["deleted_from"],
        serde_json::json!(["local", "objects"])
    );
    assert!(
        report["ciphertext_kept_on"]
            .as_array()
            .unwrap()
            .contains(&"vault".into()),
        "{report}"
    );
    assert!(report.get("keys_kept_on").is_none(), "{report}");
    assert_eq!(report["caches_removed"].as_u64().map(|n| n > 0), Some(true));
    assert!(!cached(&cache_root), "the files cache of payroll is gone");

    // Its key is gone from every network; only crm's remains.
    let fingerprint = report["keys"][0].as_str().unwrap();
    for dir in [env.network_dir("local"), env.network_dir("vault")] {
        assert!(!names_under(&dir.join("datasets")).contains(&fingerprint.to_string()));
    }
    assert_eq!(
        names_under(&env.network_dir("local").join("datasets")).len(),
        1
    );
    assert_eq!(s3_names(&server, "datasets").len(), 1);
    assert!(!s3_names(&server, "datasets").contains(&fingerprint.to_string()));
    // Its backups are out of the catalogue where the network deletes; the
    // vault keeps their ciphertext, which nothing opens.
    assert!(Env::files_under(&env.network_dir("local").join(format!("backups/{p1}"))).is_empty());
    assert!(s3_names(&server, &format!("backups/{p1}")).is_empty());
    assert!(env
        .network_dir("vault")
        .join(format!("backups/{p1}/manifest"))
        .exists());

    // Restoring it fails, saying why: through the ledger, and from the
    // vault alone.
    let out = env.path().join("shredded-out");
    let o = env.run(&["restore", &p1, "--to", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("crypto-shredded"), "{}", stderr(&o));
    let o = env.run_with(
        env.offline_with_only("vault"),
        &["restore", &p2, "--to", out.to_str().unwrap()],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("crypto-shredded"), "{}", stderr(&o));
    assert!(!out.exists(), "nothing was written");
    // The ledger records the act, and the backups as shredded.
    assert_eq!(
        psql(
            &env.db,
            &format!("select count(*) from backups where status = 'shredded' and backup_id in ('{p1}', '{p2}')")
        ),
        "2"
    );
    settle(&env.db);
    let events = logged_events(&env.db);
    let act = events
        .iter()
        .find(|e| e.event.kind() == "dataset.shredded")
        .expect("dataset.shredded in the ledger");
    let act = serde_json::to_value(&act.event).unwrap();
    assert_eq!(act["dataset"], "payroll", "{act}");

    // The other dataset restores byte-identical from each network alone
    // that holds its key.
    for net in ["local", "objects"] {
        let r = env.restore_from_only(net, &c1);
        assert_eq!(contents(&r.join("crm")), contents(&crm), "crm from {net}");
    }

    // The name can be used again: a new key, a new backup that restores.
    let p3 = env.backup(&["--dataset", "payroll", payroll.to_str().unwrap()]);
    assert_eq!(
        p3["chunks_new"], p3["chunks_total"],
        "nothing of the old key is reused: {p3}"
    );
    let r = env.restore_from_only("objects", p3["backup_id"].as_str().unwrap());
    assert_eq!(contents(&r.join("payroll")), contents(&payroll));
}

/// In doubt, `cairn shred` deletes nothing and says why: while a backup of
/// the dataset is still to be written, and while one of its backups' data
/// keys cannot be read (it could not be shown to be the dataset's alone).
/// A network that is down keeps what it holds, is named (exit 3), and a
/// second run once it is back finishes the job there.
#[test]
fn shredding_deletes_nothing_in_doubt_and_finishes_on_a_network_that_was_down() {
    let s3_dir = tempfile::tempdir().unwrap();
    let mut server = S3Server::start(s3_dir.path());
    let mut env = Env::with(server.options("objects"));
    env.start_all();
    let src = env.source_dir("payroll");
    std::fs::write(
        src.join("salaries.csv"),
        b"name,salary\nalice,100\n".repeat(2000),
    )
    .unwrap();
    let b1 = env.backup(&["--dataset", "payroll", src.to_str().unwrap()]);
    let b1 = b1["backup_id"].as_str().unwrap().to_string();
    let local = env.network_dir("local");
    let s3_repo = server.root.join(&server.bucket).join("repo");

    // A backup of the dataset asked for and not yet written (no ingest
    // worker; the ledger stage records the request).
    env.stop_workers();
    env.serve(&["ledger"]);
    let o = env.run(&[
        "backup",
        "--dataset",
        "payroll",
        "--start-timeout",
        "1",
        src.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let before = (snapshot(&local), snapshot(&s3_repo));
    let o = shred_payroll(&env);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("still being written"), "{}", stderr(&o));
    assert_eq!(
        (snapshot(&local), snapshot(&s3_repo)),
        before,
        "nothing deleted"
    );
    env.stop_workers();
    env.serve(&["all"]);
    wait_for(60, "the queued backup to finish", || {
        let l = env.json(&["list", "--json"]);
        let done = l["backups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["status"] == "completed");
        (l["backups"].as_array().unwrap().len() == 2 && done).then_some(())
    });

    // A data key no network can read: nothing deleted, the backup named.
    let data_key = names_under(&local.join("datakeys"))[0].clone();
    let parked = env.path().join("parked");
    std::fs::create_dir_all(&parked).unwrap();
    for (i, dir) in [local.join("datakeys"), s3_repo.join("datakeys")]
        .iter()
        .enumerate()
    {
        std::fs::rename(dir, parked.join(i.to_string())).unwrap();
    }
    let before = (snapshot(&local), snapshot(&s3_repo));
    let o = shred_payroll(&env);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("its data key cannot be read")
            && stderr(&o).contains("Nothing was shredded"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        (snapshot(&local), snapshot(&s3_repo)),
        before,
        "nothing deleted"
    );
    for (i, dir) in [local.join("datakeys"), s3_repo.join("datakeys")]
        .iter()
        .enumerate()
    {
        std::fs::rename(parked.join(i.to_string()), dir).unwrap();
    }
    assert!(names_under(&local.join("datakeys")).contains(&data_key));

    // The S3 server down: the directory network is shredded, the S3 one
    // named as still holding the key (exit 3), and nothing there touched.
    server.stop();
    let s3_before = snapshot(&s3_repo);
    let o = shred_payroll(&env);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["deleted_from"], serde_json::json!(["local"]), "{r}");
    assert!(r["keys_kept_on"].to_string().contains("objects"), "{r}");
    assert!(names_under(&local.join("datasets")).is_empty());
    assert_eq!(snapshot(&s3_repo), s3_before, "the network that was down");
    assert_eq!(names_under(&s3_repo.join("datasets")).len(), 1);

    // Back: a second run finishes there.
    server.restart();
    let o = shred_payroll(&env);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        r["deleted_from"],
        serde_json::json!(["local", "objects"]),
        "{r}"
    );
    assert!(names_under(&s3_repo.join("datasets")).is_empty());
    assert!(Env::files_under(&s3_repo.join(format!("backups/{b1}"))).is_empty());
}

/// `cairn shred --dataset payroll --confirm payroll --json`.
fn shred_payroll(env: &Env) -> std::process::Output {
    env.run(&[
        "shred",
        "--dataset",
        "payroll",
        "--confirm",
        "payroll",
        "--json",
    ])
}
