//! Databases as sources, against real servers: a PostgreSQL cluster the
//! test creates (base backup, continuous WAL archiving through
//! `cairn wal-push`, point-in-time recovery), MariaDB and Redis as this
//! machine runs them; and selective restore (`--path`, `cairn ls`),
//! measured in bytes read from the network.

use cairn_tests::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The env's directory opened to the `postgres` user (the server runs
/// cairn as itself), with a copy of the cairn binary it can execute.
fn open_to_postgres(env: &Env) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = env.path().join("pg");
    std::fs::create_dir_all(&home).unwrap();
    let bin = home.join("cairn");
    std::fs::copy(cairn_bin(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_postgres(&home);
    bin
}

/// The ledger's view of a dataset's archived WAL: (name, status) pairs.
fn wal_backups(env: &Env, dataset: &str) -> Vec<(String, String)> {
    psql(
        &env.db,
        &format!(
            "SELECT source->>'name' || ' ' || status FROM backups
             WHERE dataset = '{dataset}' AND source->>'type' = 'wal' ORDER BY requested_at"
        ),
    )
    .lines()
    .map(|l| {
        let (n, s) = l.split_once(' ').unwrap();
        (n.to_string(), s.to_string())
    })
    .collect()
}

/// Waits until the cluster has archived the segment it is writing now
/// (after switching to a new one).
fn archive_current_segment(c: &Cluster) -> String {
    let seg = c.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    c.sql("SELECT pg_switch_wal()");
    wait_for(120, &format!("segment {seg} archived"), || {
        let last = c.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
        (last.as_str() >= seg.as_str() && last.len() == 24).then_some(())
    });
    seg
}

/// A restored data directory started as a server; waits until recovery
/// has ended (promoted) and returns it.
fn recovered(dir: &Path, env_vars: &[(&str, &str)]) -> Cluster {
    // Its new timeline is not archived: the next recovery's `latest`
    // timeline would otherwise be this one's.
    let conf = dir.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("\narchive_mode = 'off'\n");
    std::fs::write(&conf, text).unwrap();
    let c = Cluster::at(dir);
    c.start(env_vars);
    wait_for(120, "recovery to end", || {
        let o = c.try_sql("SELECT pg_is_in_recovery()");
        (o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "f").then_some(())
    });
    c
}

/// The whole PostgreSQL story: WAL archived through the pipeline as the
/// server writes it (a `wal-push` killed mid-push is retried by the server
/// and nothing is lost, the retry recognised as archived), a base backup,
/// rows inserted at known times, then recovery to a moment between two
/// inserts (exactly the rows before it), to a WAL location, and to the end
/// of the archive. The server's side runs with a writer file only.
#[test]
fn postgres_point_in_time_recovery() {
    let mut env = Env::with(Options {
        extra_networks: vec!["offsite".into()],
        extra_toml: "\n[retention.policies.orders]\nkeep_last = 1\n".into(),
        ..Options::default()
    });
    env.init();
    // Every stage but verify: the first push waits for a verification that
    // does not come, and is killed there.
    let workers = env.serve(&["ingest", "encrypt", "store", "ledger", "retention"]);
    let bin = open_to_postgres(&env);
    let writer = env.path().join("pg/writer.json");
    env.ok(&["key", "writer", "--out", writer.to_str().unwrap()]);
    chown_postgres(&writer);
    let dataset = "orders";
    // The archive command kills its first push once the backup is under
    // way (the pid file says which process), then runs plainly.
    let script = env.path().join("pg/archive.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexport CAIRN_CONFIG={cfg} CAIRN_KEYS__WRITER_FILE={writer}\nif [ ! -e {home}/first-done ]; then touch {home}/first-done; echo $$ > {home}/first.pid; fi\nexec {bin} wal-push --dataset {dataset} \"$1\"\n",
            cfg = env.config.display(),
            writer = writer.display(),
            home = env.path().join("pg").display(),
            bin = bin.display(),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_postgres(&script);
    let primary = Cluster::init(
        &env.path().join("pg/primary"),
        &[
            ("wal_level", "replica"),
            ("archive_mode", "on"),
            ("archive_command", &format!("{} %p", script.display())),
        ],
    );
    primary.start(&[]);
    primary.sql("CREATE TABLE ledger (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())");
    primary.sql("CREATE TABLE warmup (id int)");

    // 1. The first push is killed while its backup waits for verification.
    let first = archive_current_segment_started(&primary, &env);
    let pid = std::fs::read_to_string(env.path().join("pg/first.pid")).unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rows = wal_backups(&env, dataset);
    assert!(
        rows.iter().all(|(n, s)| n != &first || s != "completed"),
        "killed before its backup completed: {rows:?}"
    );
    // Verify starts: the server's retry is what archives the segment.
    env.serve(&["verify"]);
    wait_for(120, "the killed push retried and archived", || {
        let last = primary.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
        (last.as_str() >= first.as_str() && last.len() == 24).then_some(())
    });
    // A command killed by a signal takes the archiver down with it (the
    // postmaster restarts it), so the failure is in the log, not the stats.
    let log = primary.log_text();
    assert!(
        log.contains("archive command failed with exit code 137")
            && log.contains(&format!("archive.sh pg_wal/{first}")),
        "the server saw the killed push fail: {log}"
    );
    let rows = wal_backups(&env, dataset);
    assert!(
        rows.iter().any(|(n, s)| n == &first && s == "completed"),
        "{first} archived: {rows:?}"
    );
    let _ = workers;

    // 2. A base backup, its WAL range recorded.
    let base = env.backup(&["--postgres-base", &primary.url(), "--dataset", dataset]);
    let base_id = base["backup_id"].as_str().unwrap().to_string();
    let wal = psql(
        &env.db,
        &format!("SELECT wal::text FROM backups WHERE backup_id = '{base_id}'"),
    );
    let wal: serde_json::Value = serde_json::from_str(&wal).unwrap();
    assert_eq!(wal["timeline"], 1, "{wal}");
    assert_eq!(wal["start_segment"].as_str().unwrap().len(), 24, "{wal}");
    // The network's catalogue entry carries it too: a ledger rebuilt from
    // the networks still knows which WAL the base backup needs.
    let o = env.run_with(
        env.offline_with_only("offsite"),
        &["recover", "list", "--network", "offsite", "--json"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let entry = listed["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backup_id"] == base_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["wal"], wal, "{entry}");
    // `cairn ls` shows the data directory without restoring it.
    let ls = env.json(&["ls", &base_id, "pgdata/global", "--json"]);
    let names: Vec<&str> = ls["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"pgdata/global/pg_control"), "{names:?}");

    // 3. Rows at known times: 1..=3 before the target, 4..=6 after it.
    primary.sql("INSERT INTO ledger (id) VALUES (1), (2), (3)");
    std::thread::sleep(Duration::from_millis(1500));
    let target_time = primary
        .sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US+00')");
    let target_lsn = primary.sql("SELECT pg_current_wal_lsn()");
    std::thread::sleep(Duration::from_millis(1500));
    primary.sql("INSERT INTO ledger (id) VALUES (4), (5), (6)");
    archive_current_segment(&primary);
    // A second busy stretch, archived in a batch (pushed ahead).
    for _ in 0..3 {
        primary.sql("INSERT INTO ledger (id) SELECT g FROM generate_series(1000 * (SELECT count(*) FROM ledger), 1000 * (SELECT count(*) FROM ledger) + 200) g ON CONFLICT DO NOTHING");
        primary.sql("SELECT pg_switch_wal()");
    }
    let total = primary.sql("SELECT count(*) FROM ledger");
    archive_current_segment(&primary);

    // 4. Recovery to the moment between the inserts: exactly 3 rows.
    let pass = [
        ("CAIRN_CONFIG", env.config.to_str().unwrap()),
        ("CAIRN_PASSPHRASE", PASSPHRASE),
    ];
    let restore_as_copy = |dir: &Path, how: &[&str]| {
        let mut c = std::process::Command::new(&bin);
        c.env("CAIRN_CONFIG", &env.config)
            .env("CAIRN_PASSPHRASE", PASSPHRASE)
            .env_remove("RUST_LOG");
        let mut args = vec!["restore", &base_id, "--to-pgdata", dir.to_str().unwrap()];
        args.extend_from_slice(how);
        let o = env.run_with(c, &args, None);
        assert!(o.status.success(), "restore {how:?}: {}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let at_time = env.path().join("pg/at-time");
    let said = restore_as_copy(&at_time, &["--to-time", &target_time]);
    assert!(said.contains("recovers to"), "{said}");
    let auto = std::fs::read_to_string(at_time.join("postgresql.auto.conf")).unwrap();
    assert!(auto.contains("wal-fetch --dataset \"orders\""), "{auto}");
    assert!(at_time.join("recovery.signal").exists());
    let c = recovered(&at_time, &pass);
    // wal-fetch fetched ahead of the server, and what recovery did not use
    // went when it ended.
    assert!(!at_time.join("pg_wal/cairn-prefetch").exists());
    assert_eq!(
        c.sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM ledger"),
        "1,2,3",
        "{}",
        c.log_text()
    );
    drop(c);

    // 5. To a WAL location: the same moment by LSN.
    let at_lsn = env.path().join("pg/at-lsn");
    restore_as_copy(&at_lsn, &["--to-lsn", &target_lsn]);
    let c = recovered(&at_lsn, &pass);
    assert_eq!(
        c.sql("SELECT count(*) FROM ledger"),
        "3",
        "{}",
        c.log_text()
    );
    drop(c);

    // 6. To the end of the archive: every row, the WAL fetched from the
    // second network alone (a configuration naming only it).
    env.offline_with_only("offsite");
    let only_offsite = env.path().join("cairn-only-offsite.toml");
    let fetch_offsite = format!(
        "CAIRN_CONFIG={} {} wal-fetch --dataset orders %f \"%p\"",
        only_offsite.display(),
        bin.display()
    );
    let latest = env.path().join("pg/latest");
    restore_as_copy(
        &latest,
        &["--to-latest", "--restore-command", &fetch_offsite],
    );
    let c = recovered(&latest, &pass);
    assert_eq!(
        c.sql("SELECT count(*) FROM ledger"),
        total,
        "{}",
        c.log_text()
    );
    drop(c);

    // A data directory is restored only into an empty one, and a time
    // without its zone is refused before anything is written.
    refused(
        &env,
        &[
            "restore",
            &base_id,
            "--to-pgdata",
            latest.to_str().unwrap(),
            "--to-latest",
        ],
        "not empty",
    );
    refused(
        &env,
        &[
            "restore",
            &base_id,
            "--to-pgdata",
            env.path().join("pg/x").to_str().unwrap(),
            "--to-time",
            "2026-12-06 10:00:00",
        ],
        "time zone",
    );
    assert!(!env.path().join("pg/x").exists());
    // `cairn list` keeps the WAL out of the way unless asked.
    let list = env.ok(&["list", "--dataset", dataset]);
    assert!(list.contains("archived WAL files"), "{list}");
    assert_eq!(
        list.lines().filter(|l| l.contains(dataset)).count(),
        1,
        "{list}"
    );
    // A retry of an archived file succeeds at once; a different file under
    // an archived name is refused.
    let seg_name = first.clone();
    let fetched = env.path().join("pg/fetched");
    env.ok(&[
        "wal-fetch",
        "--dataset",
        dataset,
        &seg_name,
        fetched.to_str().unwrap(),
    ]);
    refused(
        &env,
        &["wal-push", "--dataset", dataset, fetched.to_str().unwrap()],
        "not a WAL file name",
    );
    let copy = env.path().join(format!("pg/{seg_name}"));
    std::fs::copy(&fetched, &copy).unwrap();
    let o = env.run(&[
        "wal-push",
        "--dataset",
        dataset,
        "--ahead",
        "0",
        copy.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "a retry of an archived file: {}",
        stderr(&o)
    );
    let mut bytes = std::fs::read(&copy).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&copy, &bytes).unwrap();
    refused(
        &env,
        &[
            "wal-push",
            "--dataset",
            dataset,
            "--ahead",
            "0",
            copy.to_str().unwrap(),
        ],
        "different file under the same name",
    );
    // A file never archived is "not there" for the server (exit 1, no panic).
    let o = env.run(&[
        "wal-fetch",
        "--dataset",
        dataset,
        "0000000100000000000000FF",
        fetched.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("not in the archive"), "{}", stderr(&o));
    // An archive that cannot be asked is not "not there": the exit code
    // makes PostgreSQL stop recovery instead of ending it early.
    let mut c = env.cmd();
    c.env(
        "CAIRN_POSTGRES__URL",
        "host=127.0.0.1 port=1 user=nobody dbname=gone",
    );
    let o = env.run_with(
        c,
        &[
            "wal-fetch",
            "--dataset",
            dataset,
            &seg_name,
            fetched.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    assert!(stderr(&o).contains("recovery stops here"), "{}", stderr(&o));

    // A drill of the dataset restores its newest base backup, not the
    // newest WAL file (there are many more of those).
    let drilled = env.json(&["drill", "--dataset", dataset, "--sample", "0", "--json"]);
    let drilled = drilled.as_array().unwrap();
    assert_eq!(drilled.len(), 1, "{drilled:?}");
    assert_eq!(drilled[0]["backup_id"], base_id.as_str(), "{drilled:?}");
    assert_eq!(drilled[0]["ok"], true, "{drilled:?}");

    // 7. Retention keeps one base backup and the WAL it needs: the older
    // base backup and the WAL before the newer one's start go, the rest
    // stays, and the newer one still recovers every row.
    let base2 = env.backup(&["--postgres-base", &primary.url(), "--dataset", dataset]);
    let base2_id = base2["backup_id"].as_str().unwrap().to_string();
    primary.sql("INSERT INTO ledger (id) VALUES (7)");
    archive_current_segment(&primary);
    let wal2 = psql(
        &env.db,
        &format!("SELECT wal::text FROM backups WHERE backup_id = '{base2_id}'"),
    );
    let start2 = psql(
        &env.db,
        &format!("SELECT wal->>'start_segment' FROM backups WHERE backup_id = '{base2_id}'"),
    );
    let before = wal_backups(&env, dataset);
    let plan = env.json(&["retention", "plan", "--dataset", dataset, "--json"]);
    let decisions = plan["datasets"][0]["decisions"].as_array().unwrap().clone();
    let reason_of = |id: &str| {
        decisions
            .iter()
            .find(|d| d["backup_id"] == id)
            .map(|d| {
                (
                    d["keep"].as_bool().unwrap(),
                    d["reasons"][0].as_str().unwrap().to_string(),
                )
            })
            .unwrap()
    };
    assert!(!reason_of(&base_id).0, "the older base backup goes");
    assert!(reason_of(&base2_id).0);
    // In doubt, no WAL goes: while the kept base backup's range cannot be
    // read from the ledger, the plan keeps every WAL file and says why.
    psql(
        &env.db,
        &format!("UPDATE backups SET wal = NULL WHERE backup_id = '{base2_id}'"),
    );
    let doubt = env.json(&["retention", "plan", "--dataset", dataset, "--json"]);
    let wal_ids = psql(
        &env.db,
        &format!("SELECT string_agg(backup_id, ' ') FROM backups WHERE dataset = '{dataset}' AND source->>'type' = 'wal' AND status = 'completed'"),
    );
    for d in doubt["datasets"][0]["decisions"].as_array().unwrap() {
        if wal_ids.contains(d["backup_id"].as_str().unwrap()) {
            assert_eq!(d["keep"], true, "{d}");
        }
    }
    assert!(
        doubt.to_string().contains("WAL range is not known"),
        "{doubt}"
    );
    psql(
        &env.db,
        &format!(
            "UPDATE backups SET wal = '{}'::jsonb WHERE backup_id = '{base2_id}'",
            wal2.replace('\'', "''")
        ),
    );
    // A held WAL file stays whatever the plan says.
    let held = first.clone();
    let held_id = psql(
        &env.db,
        &format!("SELECT backup_id FROM backups WHERE source->>'name' = '{held}' AND status = 'completed' LIMIT 1"),
    );
    env.ok(&["hold", &held_id, "--reason", "audit of the first segment"]);
    let applied = env.json(&["retention", "apply", "--dataset", dataset, "--json"]);
    let forgotten: Vec<String> = applied["applied"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["outcome"] == "forgotten")
        .map(|a| a["backup_id"].as_str().unwrap().to_string())
        .collect();
    assert!(forgotten.contains(&base_id), "{applied}");
    // The worker has answered; the ledger records each forget a moment later.
    let ids = forgotten
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    wait_for(30, "the ledger to record the forgets", || {
        let n: usize = psql(
            &env.db,
            &format!(
                "SELECT count(*) FROM backups WHERE status = 'forgotten' AND backup_id IN ({ids})"
            ),
        )
        .parse()
        .ok()?;
        (n == forgotten.len()).then_some(())
    });
    let after = wal_backups(&env, dataset);
    let live = |rows: &[(String, String)], name: &str| {
        rows.iter().any(|(n, s)| n == name && s == "completed")
    };
    let mut dropped = 0;
    for (name, status) in &before {
        if status != "completed" {
            continue;
        }
        let needed = name.get(8..24).unwrap() >= start2.get(8..24).unwrap() || *name == held;
        assert_eq!(
            live(&after, name),
            needed,
            "{name} (base 2 starts at {start2}): {after:?}"
        );
        dropped += usize::from(!needed);
    }
    assert!(
        dropped >= 2,
        "WAL before {start2} was forgotten: {before:?} -> {after:?}"
    );
    let again = env.path().join("pg/after-retention");
    let mut c = std::process::Command::new(&bin);
    c.env("CAIRN_CONFIG", &env.config)
        .env("CAIRN_PASSPHRASE", PASSPHRASE);
    let o = env.run_with(
        c,
        &[
            "restore",
            &base2_id,
            "--to-pgdata",
            again.to_str().unwrap(),
            "--to-latest",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let c = recovered(&again, &pass);
    let expect: u64 = total.parse::<u64>().unwrap() + 1;
    assert_eq!(
        c.sql("SELECT count(*) FROM ledger"),
        expect.to_string(),
        "{}",
        c.log_text()
    );
    drop(c);
    drop(primary);
}

/// Switches the cluster to a new segment and waits until the ledger shows
/// the push of the old one under way; returns the old segment's name.
fn archive_current_segment_started(c: &Cluster, env: &Env) -> String {
    let seg = c.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    c.sql("INSERT INTO warmup SELECT generate_series(1, 100)");
    c.sql("SELECT pg_switch_wal()");
    wait_for(120, "the first push to be under way", || {
        let s = psql(
            &env.db,
            &format!("SELECT status FROM backups WHERE source->>'name' = '{seg}'"),
        );
        (s == "verifying").then_some(())
    });
    seg
}

/// A MariaDB database (the machine's server) dumped with
/// `mariadb-dump --single-transaction` and restored into a new database
/// with the same rows; a URL with a password is refused.
#[test]
fn mariadb_dump_restores_into_a_new_database() {
    let mut env = Env::new();
    env.start_all();
    let src = format!("{}_src", env.db);
    let dst = format!("{}_dst", env.db);
    let mariadb = |sql: &str| {
        let o = std::process::Command::new("mariadb")
            .args(["-uroot", "-N", "-B", "-e", sql])
            .output()
            .expect("mariadb client");
        assert!(o.status.success(), "{sql}: {}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    mariadb(&format!(
        "DROP DATABASE IF EXISTS {src}; DROP DATABASE IF EXISTS {dst}; CREATE DATABASE {src}"
    ));
    mariadb(&format!(
        "CREATE TABLE {src}.members (id INT PRIMARY KEY, name VARCHAR(64), joined DATE, photo BLOB) ENGINE=InnoDB;
         INSERT INTO {src}.members SELECT seq, CONCAT('member ', seq), DATE_ADD('2020-01-01', INTERVAL seq DAY), UNHEX(SHA2(seq, 256)) FROM {src}.seq_1_to_5000;
         CREATE VIEW {src}.recent AS SELECT id FROM {src}.members WHERE joined > '2030-01-01';"
    ));
    let digest = |db: &str| {
        mariadb(&format!(
            "SELECT COUNT(*), MD5(GROUP_CONCAT(id, name, joined, HEX(photo) ORDER BY id SEPARATOR ',')) FROM {db}.members"
        ))
    };
    let before = digest(&src);
    // A backup user with a password, over TCP: the password comes from a
    // file on the worker's host and goes to mariadb-dump alone.
    let user = format!("bk_{}", &env.db[11..]);
    let _cleanup = Cleanup(format!(
        "DROP DATABASE IF EXISTS {src}; DROP DATABASE IF EXISTS {dst}; DROP USER IF EXISTS '{user}'@'127.0.0.1'"
    ));
    let secret = "mariadb-s3cret";
    mariadb(&format!(
        "CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{secret}';
         GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON {src}.* TO '{user}'@'127.0.0.1'"
    ));
    let url = format!("mysql://{user}@127.0.0.1:3306/{src}");
    refused(
        &env,
        &[
            "backup",
            "--mariadb-password-file",
            "/nonexistent",
            env.path().to_str().unwrap(),
        ],
        "--mariadb-password-file goes with --mariadb",
    );
    let b = backs_up_only_with_its_password(
        &env,
        &["--mariadb", &url],
        "--mariadb-password-file",
        secret,
        &["Access denied"],
    );
    let id = b["backup_id"].as_str().unwrap();
    assert_eq!(env.json(&["show", id, "--json"])["dataset"], src.as_str());
    env.ok(&[
        "restore",
        id,
        "--to-mariadb",
        &format!("mysql://root@localhost/{dst}"),
    ]);
    assert_eq!(digest(&dst), before);
    assert_eq!(
        mariadb(&format!("SELECT COUNT(*) FROM {dst}.recent")),
        mariadb(&format!("SELECT COUNT(*) FROM {src}.recent"))
    );
    // A restore of another kind of backup into MariaDB is refused by name.
    let (_, files) = env.back_up_random_file(1000);
    refused(
        &env,
        &[
            "restore",
            &files,
            "--to-mariadb",
            &format!("mysql://root@localhost/{dst}"),
        ],
        "not a MariaDB dump",
    );
    // Passwords never travel in a URL; a database that does not exist
    // fails the backup, naming the server's complaint.
    refused(
        &env,
        &[
            "backup",
            "--mariadb",
            &format!("mysql://root:pw@localhost/{src}"),
        ],
        "password",
    );
    let o = env.run(&[
        "backup",
        "--json",
        "--mariadb",
        &format!("mysql://root@localhost/{}_none", env.db),
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Unknown database"),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
}

/// A Redis server's dataset (a server the test starts beside the machine's
/// own) as an RDB snapshot; restored, a fresh server loads it with every key.
#[test]
fn redis_snapshot_loads_into_a_fresh_server() {
    let mut env = Env::new();
    env.start_all();
    // The source asks for a password; the fresh server does not.
    let start = |dir: &Path, password: Option<&str>| {
        let port = free_port();
        std::fs::create_dir_all(dir).unwrap();
        let mut c = std::process::Command::new("redis-server");
        c.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(dir)
        .args(["--dbfilename", "dump.rdb"]);
        if let Some(p) = password {
            c.args(["--requirepass", p]);
        }
        let child = c
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server");
        wait_for(30, "redis to answer", || {
            redis(port, password, "PING\n")
                .contains("PONG")
                .then_some(())
        });
        (port, ChildGuard(child))
    };
    let secret = "s3cret-redis";
    let (port, _source) = start(&env.path().join("redis-src"), Some(secret));
    let mut load: String = (0..2000)
        .map(|i| format!("SET member:{i} \"name {i}\"\n"))
        .collect();
    load.push_str("HSET config quorum 7 term 2026\nRPUSH queue a b c\n");
    redis(port, Some(secret), &load);
    let url = format!("redis://127.0.0.1:{port}");
    let b = backs_up_only_with_its_password(
        &env,
        &["--redis", &url, "--dataset", "cache"],
        "--redis-password-file",
        secret,
        &["redis-cli failed", "NOAUTH"],
    );
    let id = b["backup_id"].as_str().unwrap();
    let restored = env.path().join("redis-dst");
    env.ok(&["restore", id, "--to", restored.to_str().unwrap()]);
    assert!(std::fs::read(restored.join("dump.rdb"))
        .unwrap()
        .starts_with(b"REDIS"));
    let (fresh, _server) = start(&restored, None);
    assert_eq!(redis(fresh, None, "DBSIZE\n").trim(), "2002");
    assert_eq!(redis(fresh, None, "GET member:1999\n").trim(), "name 1999");
    assert_eq!(redis(fresh, None, "HGET config quorum\n").trim(), "7");
    assert_eq!(redis(fresh, None, "LRANGE queue 0 -1\n").trim(), "a\nb\nc");
    // A server that does not answer fails the backup, naming redis-cli.
    let o = env.run(&[
        "backup",
        "--json",
        "--redis",
        &format!("redis://127.0.0.1:{}", free_port()),
        "--dataset",
        "cache",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("redis-cli failed"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the commands in `script` (one per line) with redis-cli.
fn redis(port: u16, password: Option<&str>, script: &str) -> String {
    use std::io::Write;
    let mut c = std::process::Command::new("redis-cli");
    c.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .env_remove("REDISCLI_AUTH")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    if let Some(p) = password {
        c.env("REDISCLI_AUTH", p);
    }
    let mut child = c.spawn().expect("redis-cli");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// One subtree, or one file, of a directory backup comes back without the
/// rest: the bytes read from the network (counted by a proxy in front of
/// the S3 server) are close to the selected data, not the whole backup.
/// `cairn ls` lists the tree from the tree chunks alone.
#[test]
fn selective_restore_reads_only_what_it_selects() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, proxy, env) = behind_a_counting_proxy(dir.path());
    let src = env.source_dir("src");
    std::fs::create_dir_all(src.join("big")).unwrap();
    std::fs::create_dir_all(src.join("small/sub")).unwrap();
    random_file(&src.join("big/archive.bin"), 24 << 20);
    for i in 0..20 {
        random_file(&src.join(format!("small/sub/f{i:02}.bin")), 10 << 10);
    }
    random_file(&src.join("small/other.bin"), 2 << 20);
    let b = env.backup(&[src.to_str().unwrap()]);
    let id = b["backup_id"].as_str().unwrap().to_string();

    let ls = env.json(&["ls", &id, "--json"]);
    let entries = ls["entries"].as_array().unwrap();
    let size_of = |p: &str| {
        entries
            .iter()
            .find(|e| e["path"] == p)
            .unwrap_or_else(|| panic!("{p} listed"))["size"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(size_of("src/big/archive.bin"), 24 << 20);
    assert_eq!(size_of("src/small/sub/f07.bin"), 10 << 10);
    let sub = env.json(&["ls", &id, "src/small/sub", "--json"]);
    assert_eq!(
        sub["entries"].as_array().unwrap().len(),
        21,
        "the directory and its 20 files"
    );
    let text = env.ok(&["ls", &id, "src/small"]);
    assert!(
        text.contains("src/small/other.bin") && !text.contains("archive.bin"),
        "{text}"
    );

    let restore = |args: &[&str]| restore_counted(&env, &proxy, &id, args);
    let out = env.path().join("sub");
    let read_sub = restore(&["--path", "src/small/sub", "--to", out.to_str().unwrap()]);
    let got = contents(&out.join("src/small/sub"));
    assert_eq!(got, contents(&src.join("small/sub")));
    assert!(!out.join("src/big").exists() && !out.join("src/small/other.bin").exists());
    let one = env.path().join("one");
    let read_one = restore(&[
        "--path",
        "/src/small/other.bin",
        "--to",
        one.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(one.join("src/small/other.bin")).unwrap(),
        std::fs::read(src.join("small/other.bin")).unwrap()
    );
    let whole = env.path().join("whole");
    let read_all = restore(&["--to", whole.to_str().unwrap()]);
    assert_eq!(contents(&whole.join("src")), contents(&src));
    eprintln!("bytes read from the network: subtree of 200 KiB {read_sub}, file of 2 MiB {read_one}, whole 26.2 MiB {read_all}");
    let selected_sub = 20 * (10 << 10);
    assert!(read_all > 26 << 20, "the whole restore read {read_all}");
    // The selection's data plus the backup's metadata (manifest, chunk
    // list, tree, keys: tens of KiB), nowhere near the whole.
    assert!(
        read_sub < selected_sub + (300 << 10),
        "a 200 KiB subtree read {read_sub} bytes"
    );
    assert!(
        read_one < (2 << 20) + (300 << 10),
        "a 2 MiB file read {read_one} bytes"
    );
    // A path the backup does not hold is named.
    refused(
        &env,
        &[
            "restore",
            &id,
            "--path",
            "src/nope",
            "--to",
            env.path().join("nope").to_str().unwrap(),
        ],
        "holds no path \"src/nope\"",
    );
    refused(&env, &["ls", &id, "src/../etc"], "..");
}

/// One table, or one schema, of a PostgreSQL dump comes back into another
/// database without the rest, reading from the network (an S3 server behind
/// a counting proxy) about its own data and the dump's table of contents,
/// not the whole dump.
#[test]
fn a_table_restores_from_its_part_of_the_dump() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, proxy, env) = behind_a_counting_proxy(dir.path());
    let src = format!("{}_src", env.db);
    let dst = [1, 2, 3].map(|i| format!("{}_dst{i}", env.db));
    let _dbs = PgDatabases::create(std::iter::once(&src).chain(&dst));
    psql(
        &src,
        "CREATE TABLE events (id int PRIMARY KEY, payload text);
         INSERT INTO events SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) FROM generate_series(1, 120000) g;
         CREATE TABLE members (id int PRIMARY KEY, name text);
         INSERT INTO members SELECT g, 'member ' || g FROM generate_series(1, 500) g;
         CREATE SCHEMA sales;
         CREATE TABLE sales.orders (id int, amount numeric);
         INSERT INTO sales.orders SELECT g, g * 2.5 FROM generate_series(1, 300) g;",
    );
    let digest = |db: &str, table: &str| {
        psql(db, &format!("SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t"))
    };
    let b = env.backup(&[
        "--postgres",
        &format!("postgres://postgres@127.0.0.1:5432/{src}"),
    ]);
    let id = b["backup_id"].as_str().unwrap().to_string();
    let restore = |args: &[&str]| restore_counted(&env, &proxy, &id, args);
    let url = |d: &str| format!("postgres://postgres@127.0.0.1:5432/{d}");
    let read_table = restore(&["--to-postgres", &url(&dst[0]), "--table", "members"]);
    assert_eq!(digest(&dst[0], "members"), digest(&src, "members"));
    let (exists, _) = try_psql(&dst[0], "SELECT 1 FROM events");
    assert!(!exists, "only the table asked for");
    let read_schema = restore(&["--to-postgres", &url(&dst[1]), "--schema", "sales"]);
    assert_eq!(
        digest(&dst[1], "sales.orders"),
        digest(&src, "sales.orders")
    );
    let read_all = restore(&["--to-postgres", &url(&dst[2])]);
    assert_eq!(digest(&dst[2], "events"), digest(&src, "events"));
    eprintln!("bytes read from the network: table members {read_table}, schema sales {read_schema}, whole dump {read_all}");
    assert!(read_all > 2 << 20, "the whole dump read {read_all}");
    // Content-defined chunks (about 1 MiB of dump each) are the unit read:
    // the one holding the table of contents and the one holding the
    // table's few kilobytes, out of the dump's seven.
    assert!(
        read_table < read_all / 10,
        "one small table read {read_table} bytes of a {read_all}-byte restore"
    );
    assert!(
        read_schema < read_all / 10,
        "one small schema read {read_schema} bytes of {read_all}"
    );
    // A table the dump does not hold is named; a selection needs a database.
    refused(
        &env,
        &[
            "restore",
            &id,
            "--to-postgres",
            &url(&dst[0]),
            "--table",
            "nope",
        ],
        "no table data for table nope",
    );
    refused(
        &env,
        &[
            "restore",
            &id,
            "--to",
            env.path().join("x").to_str().unwrap(),
            "--table",
            "members",
        ],
        "--to-postgres",
    );
}

/// A deployment whose only network besides `local` is an S3 server behind a
/// proxy that counts what the server sends; every stage running.
fn behind_a_counting_proxy(dir: &Path) -> (S3Server, CountingProxy, Env) {
    let server = S3Server::start(dir);
    let proxy = CountingProxy::start(&format!("127.0.0.1:{}", server.port));
    let mut o = server.options("objects");
    o.extra_toml = o.extra_toml.replace(&server.endpoint(), &proxy.endpoint());
    let mut env = Env::with(o);
    env.start_all();
    (server, proxy, env)
}

/// `cairn restore ID ARGS` from the S3 network alone (no broker, no
/// ledger), through the proxy: the bytes the server sent for it.
fn restore_counted(env: &Env, proxy: &CountingProxy, id: &str, args: &[&str]) -> u64 {
    let before = proxy.bytes_down();
    let mut all = vec!["restore", id];
    all.extend_from_slice(args);
    let o = env.run_with(env.offline_with_only("objects"), &all, None);
    assert!(o.status.success(), "restore {args:?}: {}", stderr(&o));
    proxy.bytes_down() - before
}

/// `cairn ARGS` fails, saying `says` on standard error.
fn refused(env: &Env, args: &[&str], says: &str) {
    let o = env.run(args);
    let e = stderr(&o);
    assert!(
        !o.status.success() && e.contains(says),
        "cairn {args:?}: {e}"
    );
}

/// MariaDB statements run when the test ends, passed or failed.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("mariadb")
            .args(["-uroot", "-e", &self.0])
            .output();
    }
}

/// Databases on the machine's PostgreSQL, made now and dropped when the
/// test ends, passed or failed.
struct PgDatabases(Vec<String>);

impl PgDatabases {
    fn create<'a>(names: impl IntoIterator<Item = &'a String>) -> Self {
        let names: Vec<String> = names.into_iter().cloned().collect();
        for n in &names {
            psql("postgres", &format!("CREATE DATABASE {n}"));
        }
        PgDatabases(names)
    }
}

impl Drop for PgDatabases {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = try_psql(
                "postgres",
                &format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)"),
            );
        }
    }
}

/// `cairn backup ARGS` fails without the source's password (its JSON
/// outcome saying each of `refusal`), then completes with `flag FILE`, a
/// file holding `secret`; the password went nowhere but to the client
/// tool: its bytes are not in the ledger. Returns the completed backup.
fn backs_up_only_with_its_password(
    env: &Env,
    args: &[&str],
    flag: &str,
    secret: &str,
    refusal: &[&str],
) -> serde_json::Value {
    let mut without = vec!["backup", "--json"];
    without.extend_from_slice(args);
    let o = env.run(&without);
    assert!(!o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(refusal.iter().all(|r| out.contains(r)), "{out}");
    let pw = env.path().join(format!("password{flag}"));
    std::fs::write(&pw, format!("{secret}\n")).unwrap();
    let mut with = args.to_vec();
    with.extend_from_slice(&[flag, pw.to_str().unwrap()]);
    let b = env.backup(&with);
    let recorded = psql(
        &env.db,
        "SELECT string_agg(entry::text, '') FROM ledger_entries",
    );
    assert!(
        !recorded.contains(&hex::encode(secret)),
        "the password is in the ledger"
    );
    b
}
