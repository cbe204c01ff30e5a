//! A dataset's lifecycle against real servers (NATS, PostgreSQL, a local
//! directory and an S3 server): retention policies, legal hold.

use cairn_tests::*;

fn ids_with(plan: &serde_json::Value, keep: bool) -> Vec<String> {
    plan["datasets"][0]["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["keep"] == keep)
        .map(|d| d["backup_id"].as_str().unwrap().to_string())
        .collect()
}

fn reasons_of(plan: &serde_json::Value, id: &str) -> Vec<String> {
    plan["datasets"][0]["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["backup_id"] == id)
        .unwrap_or_else(|| panic!("{id} not in the plan: {plan}"))["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

/// A legal hold keeps a backup from `forget` and from every policy, and is
/// ledgered with who and why; `retention plan` names the rule behind each
/// keep or drop; released, the backup goes the way its policy says.
#[test]
fn legal_hold_outranks_every_policy_and_forget() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(dir.path());
    let mut o = server.options("objects");
    o.extra_toml
        .push_str("\n[retention.policies.plant]\nkeep_last = 1\n");
    let mut env = Env::with(o);
    env.start_all();
    let src = env.source_dir("src");
    let mut ids = Vec::new();
    for i in 0..3 {
        random_file(&src.join(format!("f{i}.bin")), 1 << 20);
        let b = env.backup(&[src.to_str().unwrap(), "--dataset", "plant"]);
        ids.push(b["backup_id"].as_str().unwrap().to_string());
    }
    let (oldest, middle, newest) = (&ids[0], &ids[1], &ids[2]);

    // Bad holds change nothing.
    let o = env.run(&["hold", "01J0000000000000000000000Z", "--reason", "x"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not in the ledger"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = env.run(&["hold", oldest, "--reason", "  "]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("need a reason"));
    let o = env.run(&["release", oldest, "--reason", "nothing held"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not under legal hold"));
    assert_eq!(
        env.json(&["holds", "--json"])["holds"],
        serde_json::json!([])
    );

    // keep_last 1: only the newest stays.
    let plan = env.json(&["retention", "plan", "--dataset", "plant", "--json"]);
    assert_eq!(ids_with(&plan, true), vec![newest.to_string()], "{plan}");
    assert_eq!(
        reasons_of(&plan, newest),
        ["newest completed backup of the dataset", "keep_last"]
    );
    assert_eq!(reasons_of(&plan, middle), ["no rule keeps it"]);
    assert_eq!(
        plan["datasets"][0]["policy_name"],
        "retention.policies.plant"
    );

    let held = env.json(&["hold", oldest, "--reason", "case 42", "--json"]);
    assert_eq!(held["status"], "recorded", "{held}");
    let holds = env.json(&["holds", "--json"]);
    assert_eq!(holds["holds"][0]["backup_id"], oldest.as_str());
    assert_eq!(holds["holds"][0]["reason"], "case 42");
    let plan = env.json(&["retention", "plan", "--json"]);
    assert_eq!(
        ids_with(&plan, true),
        [newest.clone(), oldest.clone()],
        "{plan}"
    );
    assert_eq!(reasons_of(&plan, oldest), ["legal hold: case 42"]);

    // forget refuses it and deletes nothing, from either network.
    let before = (
        Env::files_under(&env.network_dir("local")).len(),
        Env::files_under(&server.root.join(&server.bucket)).len(),
    );
    let o = env.run(&["forget", oldest]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "forget went ahead: {err}");
    assert!(
        err.contains("legal hold") && err.contains("case 42"),
        "{err}"
    );
    let after = (
        Env::files_under(&env.network_dir("local")).len(),
        Env::files_under(&server.root.join(&server.bucket)).len(),
    );
    assert_eq!(after, before);
    for net in ["local", "objects"] {
        let out = env.restore_from_only(net, oldest);
        assert!(out.join("src/f0.bin").exists(), "{net}");
    }

    // Who and why are in the ledger.
    settle(&env.db);
    let events = logged_events(&env.db);
    let held = events
        .iter()
        .find(|e| e.event.kind() == "backup.held")
        .expect("backup.held ledgered");
    match &held.event {
        cairn_events::Event::BackupHeld(h) => {
            assert_eq!(h.reason, "case 42");
            assert!(h.by.contains('@'), "{}", h.by);
        }
        e => panic!("{e:?}"),
    }

    let released = env.json(&["release", oldest, "--reason", "case closed", "--json"]);
    assert_eq!(released["status"], "recorded", "{released}");
    let plan = env.json(&["retention", "plan", "--json"]);
    assert_eq!(ids_with(&plan, false), [middle.clone(), oldest.clone()]);
    settle(&env.db);
    assert!(logged_events(&env.db).iter().any(|e| matches!(
        &e.event,
        cairn_events::Event::BackupReleased(h) if h.reason == "case closed"
    )));
    let f = env.json(&["forget", oldest, "--json"]);
    assert_eq!(f["status"], "forgotten", "{f}");
}

/// `retention apply` forgets exactly what the plan drops (never a held
/// backup, never the newest completed one) and says so; the service, with
/// `apply_interval_secs` set, does the same on its own; what is kept
/// restores from every network.
#[test]
fn retention_apply_forgets_what_the_plan_drops_by_hand_and_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(dir.path());
    let mut o = server.options("objects");
    o.extra_toml
        .push_str("\n[retention.policies.plant]\nkeep_last = 1\n");
    let mut env = Env::with(o);
    env.start_all();
    let src = env.source_dir("src");
    let mut ids = Vec::new();
    for i in 0..3 {
        random_file(&src.join(format!("f{i}.bin")), 256 << 10);
        let b = env.backup(&[src.to_str().unwrap(), "--dataset", "plant"]);
        ids.push(b["backup_id"].as_str().unwrap().to_string());
    }
    // Another dataset, under the seeds' 90 days: nothing of it is dropped.
    let other = env.backup(&[src.to_str().unwrap(), "--dataset", "other"]);
    let other = other["backup_id"].as_str().unwrap().to_string();
    env.ok(&["hold", &ids[0], "--reason", "case 7"]);
    let status_of = |env: &Env, id: &str| env.json(&["show", id, "--json"])["status"].clone();

    let report = env.json(&["retention", "apply", "--json"]);
    let applied = report["applied"].as_array().unwrap();
    assert_eq!(applied.len(), 1, "{report}");
    assert_eq!(applied[0]["backup_id"], ids[1].as_str(), "{report}");
    assert_eq!(applied[0]["outcome"], "forgotten", "{report}");
    assert_eq!(applied[0]["reasons"][0], "no rule keeps it", "{report}");
    assert_eq!(report["kept"], 3, "{report}");
    settle(&env.db);
    assert_eq!(status_of(&env, &ids[1]), "forgotten");
    for id in [&ids[0], &ids[2], &other] {
        assert_eq!(status_of(&env, id), "completed", "{id}");
        for net in ["local", "objects"] {
            assert!(
                env.restore_from_only(net, id).join("src").exists(),
                "{id} {net}"
            );
        }
    }
    // Applied again: nothing left to drop.
    let again = env.json(&["retention", "apply", "--json"]);
    assert_eq!(again["applied"], serde_json::json!([]), "{again}");
    let text = env.ok(&["retention", "apply", "--dataset", "plant"]);
    assert!(text.contains("2 kept, 0 forgotten of 0"), "{text}");

    // The service, on its own: a newer backup makes the old newest droppable.
    random_file(&src.join("f9.bin"), 256 << 10);
    let newest = env.backup(&[src.to_str().unwrap(), "--dataset", "plant"]);
    let newest = newest["backup_id"].as_str().unwrap().to_string();
    env.set_env("CAIRN_RETENTION__APPLY_INTERVAL_SECS", "1");
    env.serve(&["retention"]);
    let mut forgotten = false;
    for _ in 0..300 {
        if status_of(&env, &ids[2]) == "forgotten" {
            forgotten = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        forgotten,
        "the service did not apply the policy:\n{}",
        env.serve_logs()
    );
    settle(&env.db);
    assert_eq!(status_of(&env, &ids[0]), "completed", "the held backup");
    assert_eq!(status_of(&env, &newest), "completed");
    let events = logged_events(&env.db);
    let by_service = events.iter().find(|e| {
        e.backup_id.as_str() == ids[2]
            && matches!(&e.event, cairn_events::Event::ForgetRequested { requested_by } if requested_by == "retention-policy")
    });
    assert!(
        by_service.is_some(),
        "the service's forget request is ledgered"
    );
}

/// A policy that would delete everything, an unknown time zone, a
/// misspelled rule or a malformed cron expression is refused when the
/// configuration loads, naming it.
#[test]
fn bad_policies_are_refused_by_name() {
    let env = Env::new();
    for (toml, named) in [
        (
            "[retention.policies.db]\ntimezone = \"UTC\"\n",
            "no keep rule",
        ),
        (
            "[retention.policies.db]\nkeep_daily = 7\ntimezone = \"Mars/Olympus\"\n",
            "Mars/Olympus",
        ),
        ("[retention.policies.db]\nkeep_dayly = 7\n", "keep_dayly"),
        (
            "[retention.policies.db]\nkeep_within = \"a while\"\n",
            "a while",
        ),
        (
            "[[schedules]]\ndataset = \"db\"\ncron = \"0 */6 * *\"\nsource = { type = \"paths\", paths = [\"/srv\"] }\n",
            "0 */6 * *",
        ),
        (
            "[[schedules]]\ndataset = \"db\"\ncron = \"0 */6 * * *\"\ntimezone = \"Moon/Base\"\nsource = { type = \"paths\", paths = [\"/srv\"] }\n",
            "Moon/Base",
        ),
        ("[retention.drills]\ncron = \"every sunday\"\n", "retention.drills"),
        (
            "[retention.drills]\ncron = \"0 3 * * 0\"\ntimezone = \"Europe/Berln\"\n",
            "Europe/Berln",
        ),
        ("[retention.drills]\nsampel = 2\n", "sampel"),
    ] {
        let cfg = env.path().join("bad.toml");
        std::fs::write(&cfg, toml).unwrap();
        let o = env.run(&["--config", cfg.to_str().unwrap(), "retention", "plan"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{toml}: {err}");
        assert!(err.contains(named), "{toml}: {err}");
    }
}

/// `cairn schedule list` shows each schedule's next slot (in its zone) and
/// the dataset's last backup.
#[test]
fn schedule_list_shows_next_and_last_run() {
    let mut env = Env::with(Options {
        extra_toml: "\n[[schedules]]\ndataset = \"plant\"\ncron = \"0 30 2 * * *\"\ntimezone = \"Asia/Kolkata\"\njitter = \"5m\"\nsource = { type = \"paths\", paths = [\"/srv\"] }\n\n[[schedules]]\ndataset = \"never-run\"\ncron = \"*/15 * * * *\"\nsource = { type = \"paths\", paths = [\"/srv\"] }\n".into(),
        ..Options::default()
    });
    env.start_all();
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 1 << 20);
    let b = env.backup(&[src.to_str().unwrap(), "--dataset", "plant"]);
    let l = env.json(&["schedule", "list", "--json"]);
    let s = &l["schedules"];
    assert_eq!(s.as_array().unwrap().len(), 2, "{l}");
    assert_eq!(s[0]["dataset"], "plant");
    assert_eq!(s[0]["last_run"]["backup_id"], b["backup_id"], "{l}");
    assert_eq!(s[0]["last_run"]["status"], "completed");
    // 02:30 in Kolkata (UTC+5:30) is 21:00 UTC the day before.
    let next = s[0]["next_run"].as_str().unwrap();
    assert!(next.ends_with("T21:00:00Z"), "{next}");
    assert!(s[1]["last_run"].is_null(), "{l}");
    let next = s[1]["next_run"].as_str().unwrap();
    let minute: u32 = next[14..16].parse().unwrap();
    assert_eq!(minute % 15, 0, "{next}");
    let text = env.ok(&["schedule", "list"]);
    assert!(
        text.contains("never-run") && text.contains("never"),
        "{text}"
    );
}

/// Two scheduler replicas fire one slot once; a slot whose previous
/// scheduled backup is still running is skipped and `schedule.skipped`
/// recorded; after three years of downtime the schedule fires once, not
/// once per missed slot. The clock is passed in: no sleeping for slots.
#[test]
fn schedules_fire_once_per_slot_never_overlap_and_catch_up_once() {
    use cairn_retention::scheduler::{Action, Scheduler};
    use chrono::TimeZone;
    let mut env = Env::new();
    env.start_all();
    let src = env.source_dir("src");
    // Large enough that the first scheduled backup is still running when
    // the next slot is ticked.
    random_file(&src.join("a.bin"), 48 << 20);
    let schedule = cairn_lifecycle::Schedule {
        dataset: "plant".into(),
        cron: "0 0 3 1 1 *".into(), // yearly, 1 January 03:00 UTC
        timezone: None,
        jitter: None,
        source: cairn_events::Source::Paths {
            paths: vec![src.to_str().unwrap().into()],
        },
        networks: vec![],
        tags: vec!["scheduled".into()],
        min_copies: None,
    };
    let cfg = cairn_config::Config::load(Some(&env.config)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let replica = |name: &str| {
        rt.block_on(async {
            let bus = cairn_bus::Bus::connect(&cfg.nats, name).await.unwrap();
            let pg = cairn_ledger::db::open_as(&cfg.postgres, cairn_ledger::db::Role::Reader)
                .await
                .unwrap();
            Scheduler::new(
                bus,
                pg,
                std::slice::from_ref(&schedule),
                std::time::Duration::from_secs(3600),
                format!("scheduler-{name}"),
            )
            .await
            .unwrap()
        })
    };
    let (a, b) = (replica("a"), replica("b"));
    let at = |y: i32, h: u32, m: u32| chrono::Utc.with_ymd_and_hms(y, 1, 1, h, m, 0).unwrap();
    // First sight, then both replicas at the same slot.
    assert!(rt.block_on(a.tick(at(2029, 12, 0))).unwrap().is_empty());
    let (ra, rb) =
        rt.block_on(async { tokio::join!(a.tick(at(2030, 3, 0)), b.tick(at(2030, 3, 0))) });
    let fired: Vec<Action> = ra.unwrap().into_iter().chain(rb.unwrap()).collect();
    assert_eq!(fired.len(), 1, "{fired:?}");
    let Action::Fired {
        backup_id: first, ..
    } = &fired[0]
    else {
        panic!("{fired:?}")
    };
    // The next slot comes while that backup runs (the ledger shows it
    // unfinished): skipped, on either replica.
    let mut status = serde_json::Value::Null;
    for _ in 0..100 {
        let o = env.run(&["show", first.as_str(), "--json"]);
        if o.status.success() {
            status =
                serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["status"].clone();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        ["requested", "running", "verifying"].contains(&status.as_str().unwrap_or("")),
        "the first backup should still run: {status}"
    );
    let next = rt.block_on(b.tick(at(2031, 3, 0))).unwrap();
    assert_eq!(
        next,
        [Action::Skipped {
            dataset: "plant".into(),
            slot: at(2031, 3, 0),
            running: first.clone()
        }]
    );
    let wait_done = |id: &str| {
        for _ in 0..300 {
            let s = env.json(&["show", id, "--json"]);
            if s["status"] == "completed" {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("backup {id} did not complete");
    };
    let shown = wait_done(first.as_str());
    assert_eq!(shown["dataset"], "plant");
    assert_eq!(shown["tags"], serde_json::json!(["scheduled"]));
    // Down from 2031 to mid-2035: four slots missed, one run.
    let later = chrono::Utc.with_ymd_and_hms(2035, 6, 1, 0, 0, 0).unwrap();
    let (ra, rb) = rt.block_on(async { tokio::join!(a.tick(later), b.tick(later)) });
    let caught_up: Vec<Action> = ra.unwrap().into_iter().chain(rb.unwrap()).collect();
    assert_eq!(caught_up.len(), 1, "{caught_up:?}");
    assert!(
        matches!(&caught_up[0], Action::Fired { slot, .. } if *slot == at(2035, 3, 0)),
        "{caught_up:?}"
    );
    assert!(rt.block_on(a.tick(later)).unwrap().is_empty());
    assert!(rt.block_on(b.tick(later)).unwrap().is_empty());
    settle(&env.db);
    let events = logged_events(&env.db);
    let requested: Vec<_> = events
        .iter()
        .filter(|e| matches!(&e.event, cairn_events::Event::BackupRequested(r) if r.requested_by == "schedule:plant"))
        .collect();
    assert_eq!(requested.len(), 2, "2030 and the newest missed slot, 2035");
    let skipped = events
        .iter()
        .filter(|e| e.event.kind() == "schedule.skipped")
        .count();
    assert_eq!(skipped, 1);
    wait_done(requested[1].backup_id.as_str());
}

/// Chunk files a network directory holds, by file name (the chunk's id).
/// The data objects (packs, and chunks stored alone) a directory network holds.
fn chunk_names(root: &std::path::Path) -> std::collections::BTreeSet<String> {
    let mut all = Env::files_under(&root.join("chunks"));
    all.extend(Env::files_under(&root.join("packs")));
    all.into_iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn drills_of(env: &Env, id: &str, by: Option<&str>) -> Vec<(bool, cairn_events::Drill)> {
    logged_events(&env.db)
        .into_iter()
        .filter(|e| e.backup_id.as_str() == id)
        .filter_map(|e| match e.event {
            cairn_events::Event::DrillCompleted(d) => Some((true, d)),
            cairn_events::Event::DrillFailed(d) => Some((false, d)),
            _ => None,
        })
        .filter(|(_, d)| by.is_none_or(|b| d.by == b))
        .collect()
}

/// Restore drills restore the newest backup of each dataset and a sample of
/// older ones into a scratch place (a private directory; a scratch database
/// for a PostgreSQL dump), check them, leave nothing behind and are
/// ledgered; a damaged chunk fails the drill of the backups that need it,
/// by name; `cairn drills` and `cairn health` show the latest result and the
/// last success; the service drills on its schedule, and only with the key.
#[test]
fn restore_drills_prove_backups_come_back_and_find_what_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(dir.path());
    let scratch = dir.path().join("scratch");
    let mut o = server.options("objects");
    o.extra_toml.push_str(&format!(
        "\n[retention.drills]\nscratch_dir = \"{}\"\npostgres_url = \"postgres://postgres@127.0.0.1:5432/postgres\"\n",
        scratch.display()
    ));
    let mut env = Env::with(o);
    env.start_all();
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 1 << 20);
    text_file(&src.join("notes.txt"), 64 << 10, 3);
    let older = env.backup(&[src.to_str().unwrap(), "--dataset", "plant"]);
    let older = older["backup_id"].as_str().unwrap().to_string();
    let before = chunk_names(&env.network_dir("local"));
    random_file(&src.join("b.bin"), 2 << 20);
    let newest = env.backup(&[src.to_str().unwrap(), "--dataset", "plant"]);
    let newest_bytes = newest["bytes_read"].as_u64().unwrap();
    let newest = newest["backup_id"].as_str().unwrap().to_string();
    let only_newest: Vec<String> = chunk_names(&env.network_dir("local"))
        .difference(&before)
        .cloned()
        .collect();
    assert!(!only_newest.is_empty());

    let db = format!("{}_drill", env.db);
    psql("postgres", &format!("CREATE DATABASE {db}"));
    psql(
        &db,
        "CREATE TABLE readings (id int primary key, v numeric);
         INSERT INTO readings SELECT g, g * 0.5 FROM generate_series(1, 20000) g;",
    );
    let dump = env.backup(&[
        "--postgres",
        &format!("postgres://postgres@127.0.0.1:5432/{db}"),
    ]);
    let dump = dump["backup_id"].as_str().unwrap().to_string();

    // By hand: the newest of each dataset and (sample 1) the older plant.
    let results = env.json(&["drill", "--sample", "1", "--json"]);
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 3, "{results:?}");
    let of = |id: &str| {
        results
            .iter()
            .find(|r| r["backup_id"] == id)
            .unwrap_or_else(|| panic!("{id} was not drilled: {results:?}"))
            .clone()
    };
    let n = of(&newest);
    assert_eq!(n["ok"], true, "{n}");
    assert_eq!(n["pick"], "newest");
    assert_eq!(n["bytes"].as_u64(), Some(newest_bytes), "{n}");
    assert_eq!(n["files"], 3, "{n}");
    assert!(n["chunks"].as_u64().unwrap() > 2, "{n}");
    assert!(
        n["target"]
            .as_str()
            .unwrap()
            .starts_with(&format!("dir:{}", scratch.display())),
        "{n}"
    );
    assert_eq!(of(&older)["pick"], "sample");
    assert_eq!(of(&older)["ok"], true);
    let d = of(&dump);
    assert_eq!(d["ok"], true, "{d}");
    let scratch_db = d["target"]
        .as_str()
        .unwrap()
        .strip_prefix("postgres:")
        .unwrap()
        .to_string();
    assert!(scratch_db.starts_with("cairn_drill_"), "{d}");
    // Nothing left behind: no plaintext in the scratch directory, no database.
    assert!(
        Env::files_under(&scratch).is_empty(),
        "plaintext left in {}",
        scratch.display()
    );
    assert_eq!(
        psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{scratch_db}'")
        ),
        "0"
    );
    settle(&env.db);
    let recorded = drills_of(&env, &newest, None);
    assert_eq!(recorded.len(), 1);
    assert!(
        recorded[0].0 && recorded[0].1.by.contains('@'),
        "{recorded:?}"
    );

    let list = env.json(&["drills", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let health = env.json(&["health", "--json"]);
    assert!(
        health["last_successful_drill"]["age_secs"]
            .as_u64()
            .unwrap()
            < 600,
        "{health}"
    );
    let text = env.ok(&["health", &newest]);
    assert!(
        text.contains("last successful restore drill of \"plant\""),
        "{text}"
    );

    // A backup the ledger does not know is refused by name, nothing drilled.
    let unknown = "0190f2b4-7c1e-7a3b-9d2e-5f6a7b8c9d0e";
    let o = env.run(&["drill", "--backup", unknown]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains(unknown) && e.contains("does not know it"), "{e}");

    // A chunk only the newest backup has, damaged on both networks.
    let victim = &only_newest[0];
    let mut damaged = 0;
    for root in [
        env.network_dir("local"),
        server.root.join(&server.bucket).join("repo"),
    ] {
        let mut objects = Env::files_under(&root.join("chunks"));
        objects.extend(Env::files_under(&root.join("packs")));
        for f in objects {
            if f.file_name().unwrap().to_string_lossy() == *victim {
                let mut bytes = std::fs::read(&f).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0xff;
                std::fs::write(&f, bytes).unwrap();
                damaged += 1;
            }
        }
    }
    assert_eq!(damaged, 2, "the chunk is on both networks");
    let o = env.run(&["drill", "--backup", &newest, "--json"]);
    assert_eq!(o.status.code(), Some(1), "a failed drill fails the command");
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r[0]["ok"], false, "{r}");
    let reason = r[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&victim[..16]),
        "the reason names the chunk: {reason}"
    );
    assert!(
        Env::files_under(&scratch).is_empty(),
        "a failed drill leaves nothing either"
    );
    let o = env.run(&["drill", "--backup", &older, "--json"]);
    assert!(
        o.status.success(),
        "the older backup does not need that chunk"
    );
    settle(&env.db);
    let text = env.ok(&["drills"]);
    let plant = text.lines().find(|l| l.starts_with("plant")).unwrap();
    assert_eq!(
        plant.split_whitespace().nth(1),
        Some("ok"),
        "the older backup's drill is the latest: {text}"
    );
    let failed = drills_of(&env, &newest, None);
    assert!(
        failed
            .iter()
            .any(|(ok, d)| !ok && d.reason.as_deref() == Some(reason)),
        "{failed:?}"
    );

    // Scheduled, without the key: the service refuses to drill, and says so.
    env.set_env("CAIRN_RETENTION__DRILLS__CRON", "* * * * * *");
    env.set_env("CAIRN_RETENTION__DRILLS__SAMPLE", "0");
    env.set_env("CAIRN_PASSPHRASE", "");
    let keyless = env.serve(&["retention"]);
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert!(
        env.serve_logs().contains("no drills run here"),
        "{}",
        env.serve_logs()
    );
    settle(&env.db);
    assert!(drills_of(&env, &dump, Some("retention")).is_empty());
    env.worker(keyless).kill9();
    // With the key: it drills on its own, every slot, and records it.
    env.set_env("CAIRN_PASSPHRASE", PASSPHRASE);
    env.serve(&["retention"]);
    let mut by_service = Vec::new();
    for _ in 0..600 {
        settle(&env.db);
        by_service = drills_of(&env, &newest, Some("retention"));
        if !by_service.is_empty() && !drills_of(&env, &dump, Some("retention")).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        !by_service.is_empty(),
        "no scheduled drill:\n{}",
        env.serve_logs()
    );
    assert!(
        !by_service[0].0,
        "the damaged backup fails its scheduled drill too"
    );
    assert!(drills_of(&env, &dump, Some("retention"))
        .iter()
        .all(|(ok, _)| *ok));
    let o = env.run(&["health"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "a dataset whose latest drill failed is degraded"
    );
    psql("postgres", &format!("DROP DATABASE {db} WITH (FORCE)"));
    // The service may be mid-drill now, on any dataset's latest backup:
    // stopped, it cannot drop the scratch database it made
    // (`cairn_drill_<the backup id's last 24>_<random>`).
    env.stop_workers();
    let ids = psql(&env.db, "SELECT string_agg(backup_id, ' ') FROM backups");
    for id in ids.split_whitespace() {
        let tail: String = id.chars().filter(char::is_ascii_alphanumeric).collect();
        let tail = &tail[tail.len().saturating_sub(24)..];
        let left = psql(
            "postgres",
            &format!("SELECT string_agg(datname, ' ') FROM pg_database WHERE datname LIKE 'cairn_drill_{tail}_%'"),
        );
        for scratch in left.split_whitespace() {
            psql(
                "postgres",
                &format!("DROP DATABASE IF EXISTS {scratch} WITH (FORCE)"),
            );
        }
    }
}

/// Schedules added at run time: bad ones are refused by name with nothing
/// recorded; an added one is ledgered with who added it, listed with its
/// origin beside the configured ones, fired by the service, and stops when
/// removed; a configured schedule cannot be removed at run time.
#[test]
fn schedules_added_at_run_time_fire_and_stop_when_removed() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(dir.path());
    let mut o = server.options("objects");
    o.extra_toml.push_str(
        "\n[[schedules]]\ndataset = \"configured\"\ncron = \"0 0 3 1 1 *\"\nsource = { type = \"paths\", paths = [\"/srv\"] }\n",
    );
    let mut env = Env::with(o);
    env.start_all();
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 64 << 10);
    let src = src.to_str().unwrap();
    for (extra, named) in [
        (vec!["--cron", "0 */6 * *"], "0 */6 * *"),
        (
            vec!["--cron", "0 * * * *", "--timezone", "Moon/Base"],
            "Moon/Base",
        ),
        (vec!["--cron", "0 * * * *", "--network", "tape"], "tape"),
        (
            vec!["--cron", "0 * * * *", "--jitter", "a while"],
            "a while",
        ),
        (
            vec!["--cron", "0 0 3 1 1 *", "--dataset", "configured"],
            "configuration file",
        ),
    ] {
        let mut args = vec!["schedule", "add", src];
        if !extra.contains(&"--dataset") {
            args.extend(["--dataset", "plant"]);
        }
        args.extend(extra.iter().copied());
        let o = env.run(&args);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
        assert!(e.contains(named), "{args:?}: {e}");
    }
    for (dataset, named) in [
        ("nothing", "no schedule of dataset \"nothing\""),
        ("configured", "configuration file"),
    ] {
        let o = env.run(&["schedule", "remove", "--dataset", dataset]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{e}");
        assert!(e.contains(named), "{e}");
    }
    settle(&env.db);
    let changes = |env: &Env| {
        logged_events(&env.db)
            .into_iter()
            .filter(|e| {
                matches!(
                    e.event,
                    cairn_events::Event::ScheduleAdded { .. }
                        | cairn_events::Event::ScheduleRemoved { .. }
                )
            })
            .collect::<Vec<_>>()
    };
    assert!(changes(&env).is_empty(), "a refused change is not recorded");

    let text = env.ok(&[
        "schedule",
        "add",
        src,
        "--dataset",
        "plant",
        "--cron",
        "*/2 * * * * *",
        "--tag",
        "adhoc",
        "--network",
        "objects",
    ]);
    assert!(
        text.contains("schedule of dataset \"plant\" added"),
        "{text}"
    );
    let list = env.json(&["schedule", "list", "--json"]);
    let all = list["schedules"].as_array().unwrap();
    assert_eq!(all.len(), 2, "{list}");
    assert_eq!(all[0]["dataset"], "configured");
    assert_eq!(all[0]["origin"], "config");
    assert_eq!(all[1]["dataset"], "plant");
    assert_eq!(all[1]["origin"], "added");
    assert!(all[1]["added_by"].as_str().unwrap().contains('@'), "{list}");
    assert_eq!(all[1]["networks"], serde_json::json!(["objects"]));
    let text = env.ok(&["schedule", "list"]);
    assert!(text.contains("added by "), "{text}");

    let scheduled = |env: &Env| {
        env.json(&["list", "--dataset", "plant", "--json"])["backups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["requested_by"] == "schedule:plant")
            .count()
    };
    let mut fired = 0;
    for _ in 0..100 {
        fired = scheduled(&env);
        if fired > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        fired > 0,
        "the added schedule never fired:\n{}",
        env.serve_logs()
    );

    let text = env.ok(&["schedule", "remove", "--dataset", "plant"]);
    assert!(text.contains("removed: */2 * * * * *"), "{text}");
    std::thread::sleep(std::time::Duration::from_secs(1));
    settle(&env.db);
    let before = scheduled(&env);
    std::thread::sleep(std::time::Duration::from_secs(5));
    settle(&env.db);
    assert_eq!(scheduled(&env), before, "a removed schedule still fires");
    let list = env.json(&["schedule", "list", "--json"]);
    assert_eq!(list["schedules"].as_array().unwrap().len(), 1, "{list}");
    let recorded = changes(&env);
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert!(
        matches!(&recorded[0].event, cairn_events::Event::ScheduleAdded { schedule, by }
        if schedule.tags == ["adhoc"] && by.contains('@'))
    );
    assert!(
        matches!(&recorded[1].event, cairn_events::Event::ScheduleRemoved { dataset, .. }
        if dataset == "plant")
    );
}
