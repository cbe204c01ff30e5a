//! Faults injected between Cairn and a real S3 server (s3s-fs) by the
//! tests' own TCP proxy ([`FaultProxy`]): a slow link, cut connections,
//! answers 500 and 503, corrupted bytes either way. Each backup completes
//! or degrades as it should, says which network failed and why, and
//! nothing stored before is lost: every backup restores identical from the
//! S3 network alone once the fault is gone (and `repair` has filled in
//! what a failing network missed).

use cairn_tests::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

type Snapshot = std::collections::BTreeMap<String, String>;

/// A Cairn whose network `objects` is an S3 server behind a fault proxy
/// (beside the local network every test environment has).
fn behind_a_proxy(
    dir: &Path,
    fault: Fault,
    verify_timeout_secs: u64,
) -> (S3Server, FaultProxy, Env) {
    let server = S3Server::start(dir);
    let proxy = server.behind_proxy(fault);
    let opts = server.options_via("objects", &proxy.endpoint());
    let mut env = Env::with(Options {
        verify_timeout_secs,
        ..opts
    });
    env.start_all();
    (server, proxy, env)
}

/// Whether the network `name` is ok in a backup's outcome.
fn network_ok(outcome: &serde_json::Value, name: &str) -> bool {
    outcome["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["network"] == name)
        .unwrap_or_else(|| panic!("no network {name}: {outcome}"))["ok"]
        == true
}

/// `cairn backup --json SRC`, which must end degraded: whole on the local
/// network, not on `network`, and saying so.
fn degraded_on(env: &Env, src: &Path, network: &str) -> serde_json::Value {
    let mut cmd = env.cmd();
    cmd.args(["backup", "--json", src.to_str().unwrap()]);
    let v = degraded_outcome(&cmd.output().unwrap());
    assert!(network_ok(&v, "local"), "{v}");
    assert!(!network_ok(&v, network), "{v}");
    assert!(
        v["reasons"]
            .to_string()
            .contains(&format!("network {network}")),
        "the reason names the network: {v}"
    );
    v
}

fn id_of(v: &serde_json::Value) -> String {
    v["backup_id"].as_str().unwrap().to_string()
}

/// Restores each of `backups` (id, the source's snapshot when it was
/// taken) with the local network gone, so from the S3 network alone; the
/// local network comes back afterwards.
fn restores_from_s3_alone(env: &Env, backups: &[(String, Snapshot)]) {
    let local = env.network_dir("local");
    let aside = env.path().join("local-aside");
    std::fs::rename(&local, &aside).unwrap();
    for (i, (id, want)) in backups.iter().enumerate() {
        let out = env.path().join(format!("from-s3-{i}"));
        let r = env.json(&["restore", id, "--to", out.to_str().unwrap(), "--json"]);
        assert!(r["chunks_from"]["objects"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(&snapshot(&out.join("src")), want, "backup {id} from S3");
    }
    std::fs::rename(&aside, &local).unwrap();
}

fn source(env: &Env) -> PathBuf {
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 6 << 20);
    text_file(&src.join("b.txt"), 2 << 20, 3);
    src
}

/// A link at 2 MiB/s, then every third connection cut part-way: both
/// backups complete (the S3 client tries again on a new connection), and
/// both restore identical from S3 alone.
#[test]
fn a_slow_link_and_cut_connections_still_back_up_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, proxy, env) = behind_a_proxy(
        dir.path(),
        Fault::Slow {
            bytes_per_sec: 2 << 20,
        },
        60,
    );
    let src = source(&env);
    let slow = env.backup(&[src.to_str().unwrap()]);
    assert!(network_ok(&slow, "objects"), "{slow}");
    let first = (id_of(&slow), snapshot(&src));

    proxy.set(Fault::Cut {
        every: 3,
        within: 256 << 10,
    });
    random_file(&src.join("c.bin"), 6 << 20);
    let cut = env.backup(&[src.to_str().unwrap()]);
    assert!(network_ok(&cut, "objects"), "{cut}");
    let cuts = proxy.counts().cut.load(Ordering::SeqCst);
    assert!(cuts > 0, "the proxy cut connections during the backup");
    let second = (id_of(&cut), snapshot(&src));

    proxy.set(Fault::None);
    restores_from_s3_alone(&env, &[first, second]);
    eprintln!(
        "faults: {cuts} connections cut of {}",
        proxy.counts().connections.load(Ordering::SeqCst)
    );
}

/// Every other connection answered 503 (SlowDown): retried, the backup
/// completes. Then every request answered 500: the backup is degraded,
/// naming the S3 network, complete on the local one, and the earlier
/// backup is untouched. Once S3 answers again, `repair` fills in what it
/// missed and both restore identical from it alone.
#[test]
fn errors_from_s3_are_retried_and_one_that_persists_degrades_then_repairs() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, proxy, env) = behind_a_proxy(
        dir.path(),
        Fault::Answer {
            status: 503,
            every: 2,
        },
        15,
    );
    let src = source(&env);
    let retried = env.backup(&[src.to_str().unwrap()]);
    assert!(network_ok(&retried, "objects"), "{retried}");
    assert!(proxy.counts().answered.load(Ordering::SeqCst) > 0);
    let first = (id_of(&retried), snapshot(&src));

    proxy.set(Fault::Answer {
        status: 500,
        every: 1,
    });
    random_file(&src.join("c.bin"), 4 << 20);
    let failing = degraded_on(&env, &src, "objects");
    eprintln!("faults: every request answered 500: {}", failing["reasons"]);
    let second = (id_of(&failing), snapshot(&src));

    proxy.set(Fault::None);
    let r = env.json(&["repair", &second.0, "--json"]);
    assert_eq!(r["ok"], true, "{r}");
    for id in [&first.0, &second.0] {
        let (code, h) = env.health(id, true);
        assert_eq!(code, 0, "{h}");
        assert_eq!(health_of(&h, "objects")["missing"], 0, "{h}");
    }
    restores_from_s3_alone(&env, &[first, second]);
}

/// Bytes corrupted on the way to S3: whether the server refuses them
/// (their checksum) or keeps them, the backup is not reported complete on
/// S3. Bytes corrupted on the way back (the S3 client's checksum, or
/// Cairn's SHA-256 and authentication, whichever sees it first): with the
/// local copies gone a restore fails naming the object rather than writing
/// anything wrong. With the link clean, `repair` and a restore
/// from S3 alone give back every byte.
#[test]
fn corrupted_bytes_are_caught_both_ways_and_never_restored() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, proxy, env) = behind_a_proxy(
        dir.path(),
        Fault::Corrupt {
            up: true,
            min_body: 4096,
        },
        15,
    );
    let src = source(&env);
    let sent = degraded_on(&env, &src, "objects");
    assert!(proxy.counts().corrupted.load(Ordering::SeqCst) > 0);
    eprintln!("faults: uploads corrupted: {}", sent["reasons"]);
    let id = id_of(&sent);
    let want = snapshot(&src);

    proxy.set(Fault::None);
    let r = env.json(&["repair", &id, "--json"]);
    assert_eq!(r["ok"], true, "{r}");
    let (code, h) = env.health(&id, true);
    assert_eq!(code, 0, "{h}");
    assert_eq!(health_of(&h, "objects")["corrupt"], 0, "{h}");

    // Reads corrupted: with the local copies gone, the restore fails by
    // name and leaves no file claiming to be the source's.
    proxy.set(Fault::Corrupt {
        up: false,
        min_body: 4096,
    });
    let local = env.network_dir("local");
    let aside = env.path().join("local-aside");
    std::fs::rename(&local, &aside).unwrap();
    let out_dir = env.path().join("corrupt-reads");
    let o = env.run(&["restore", &id, "--to", out_dir.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0), "a restore of corrupt reads fails");
    let said = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        ["SHA-256", "checksum", "corrupt", "authentic"]
            .iter()
            .any(|w| said.contains(w))
            && said.contains("could not be read from any network"),
        "it says the bytes are not what was stored: {said}"
    );
    let restored = out_dir.join("src/a.bin");
    assert!(
        !restored.exists()
            || std::fs::read(&restored).unwrap() == std::fs::read(src.join("a.bin")).unwrap(),
        "no wrong bytes under the source's name"
    );
    std::fs::rename(&aside, &local).unwrap();

    proxy.set(Fault::None);
    restores_from_s3_alone(&env, &[(id, want)]);
}

/// A request JetStream delivers again after its backup was ingested (its
/// ack lost, as when the cluster lost quorum) is not ingested a second
/// time: a second run would seal the manifest, catalogue and chunk list
/// under another data key, and the ledger would record digests of objects
/// the networks never got. The backup stays as it was: one start, every
/// object matching its recorded digest, restoring identical.
#[test]
fn a_request_delivered_again_is_not_ingested_twice() {
    let mut env = Env::new();
    env.start_all();
    let src = source(&env);
    let b = env.backup(&["--dataset", "again", src.to_str().unwrap()]);
    let id = id_of(&b);
    let subject = format!("{}.evt.backup.requested.{id}.again", env.prefix);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let request = rt.block_on(async {
        let client = async_nats::connect(env.nats.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let events = format!("{}_EVENTS", env.prefix.to_uppercase());
        js.get_stream(events)
            .await
            .unwrap()
            .get_last_raw_message_by_subject(&subject)
            .await
            .unwrap()
            .payload
    });
    // Without a message id: the stream keeps it, as it keeps a redelivery.
    publish_raw(&env, &subject, &request);
    wait_for(30, "ingest to take the request again", || {
        env.serve_logs()
            .contains("delivered again after it ended; not ingested again")
            .then_some(())
    });
    wait_until_idle(&env, 60);
    let starts = psql(
        &env.db,
        &format!(
            "select count(*) from ledger_entries where kind = 'backup.started' and backup_id = '{id}'"
        ),
    );
    assert_eq!(starts, "1", "one ingest of backup {id}");
    let (code, h) = env.health(&id, true);
    assert_eq!(code, 0, "every object as recorded: {h}");
    let out = env.path().join("out");
    env.ok(&["restore", &id, "--to", out.to_str().unwrap()]);
    assert_eq!(snapshot(&out.join("src")), snapshot(&src));
}

/// Every stage in a process of its own, and one of them killed (`kill -9`)
/// at a random moment of each backup, then started again: over a bounded
/// number of rounds, every backup reported `completed` restores identical
/// to its source, none that does not is reported `completed`, and the
/// ledger verifies. The seed is printed; `CAIRN_CHAOS_SEED` replays one.
#[test]
fn stages_killed_at_random_never_make_a_false_completed() {
    use rand::{Rng, SeedableRng};
    const ROUNDS: usize = 12;
    const BUDGET: std::time::Duration = std::time::Duration::from_secs(300);
    let seed: u64 = std::env::var("CAIRN_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("faults: chaos seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut env = Env::with(Options {
        extra_networks: vec!["second".into()],
        ..Options::default()
    });
    env.init();
    const STAGES: [&str; 5] = ["ingest", "encrypt", "store", "verify", "ledger"];
    let mut workers: Vec<usize> = STAGES.iter().map(|s| env.serve(&[s])).collect();

    let started = std::time::Instant::now();
    let mut rounds = Vec::new();
    for round in 0..ROUNDS {
        if started.elapsed() > BUDGET {
            break;
        }
        let src = env.source_dir(&format!("src{round}"));
        random_file(&src.join("a.bin"), rng.gen_range(2..24) << 20);
        text_file(&src.join("b.txt"), rng.gen_range(1..4) << 20, round as u64);
        let want = snapshot(&src);
        let child = env.backup_under_way(&["--timeout", "180", src.to_str().unwrap()]);
        std::thread::sleep(std::time::Duration::from_millis(rng.gen_range(100..2500)));
        let victim = rng.gen_range(0..STAGES.len());
        env.worker(workers[victim]).kill9();
        std::thread::sleep(std::time::Duration::from_millis(rng.gen_range(0..1500)));
        workers[victim] = env.serve(&[STAGES[victim]]);
        let out = child.wait_output();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let status = v["status"].as_str().unwrap_or("no outcome").to_string();
        eprintln!(
            "faults: round {round}: {} killed, backup {status}",
            STAGES[victim]
        );
        rounds.push((
            v["backup_id"].as_str().map(str::to_string),
            status,
            want,
            src,
        ));
    }

    let completed: Vec<_> = rounds.iter().filter(|r| r.1 == "completed").collect();
    assert!(
        completed.len() * 2 >= rounds.len(),
        "most backups complete despite a killed stage (seed {seed}): {:?}",
        rounds.iter().map(|r| &r.1).collect::<Vec<_>>()
    );
    for (i, (id, _, want, src)) in completed.iter().enumerate() {
        let id = id.as_deref().unwrap();
        let out = env.path().join(format!("restored{i}"));
        env.ok(&["restore", id, "--to", out.to_str().unwrap()]);
        let name = src.file_name().unwrap();
        assert_eq!(
            &snapshot(&out.join(name)),
            want,
            "backup {id} (seed {seed})"
        );
    }
    // What the ledger says of each matches what the client was told.
    for (id, status, _, _) in &rounds {
        if let Some(id) = id {
            let recorded = psql(
                &env.db,
                &format!("select status from backups where backup_id = '{id}'"),
            );
            // One still running when the client gave up may complete later.
            if status == "completed" {
                assert_eq!(recorded, "completed", "backup {id} (seed {seed})");
            } else if status != "no outcome" {
                assert_ne!(
                    recorded, "completed",
                    "backup {id} told {status} (seed {seed})"
                );
            }
        }
    }
    env.ok(&["audit", "verify"]);
}

/// A tmpfs of `size` mounted on `dir` for as long as it is kept.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let s = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount (the tests run as root: scripts/test.sh)");
        assert!(s.success(), "mount a tmpfs on {}", dir.display());
        Tmpfs(dir.to_path_buf())
    }

    fn grow(&self, size: &str) {
        let s = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(s.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The disk under one network fills up mid-backup (a 4 MiB filesystem the
/// test mounts there): the backup is degraded naming that network, its
/// store worker says why (no space left), the other network has it whole.
/// Once there is space again, `repair` completes it there, and it restores
/// identical from that network alone.
#[test]
fn a_full_disk_under_a_network_degrades_the_backup_and_repair_ends_it_once_space_returns() {
    let mut env = Env::with(Options {
        extra_networks: vec!["small".into()],
        verify_timeout_secs: 15,
        ..Options::default()
    });
    let disk = Tmpfs::mount(&env.network_dir("small"), "4m");
    env.start_all();
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 12 << 20);
    let want = snapshot(&src);
    let v = degraded_on(&env, &src, "small");
    wait_for(30, "the store worker to say the disk is full", || {
        env.serve_logs()
            .lines()
            .any(|l| l.contains("small") && l.contains("No space left on device"))
            .then_some(())
    });
    let id = id_of(&v);

    disk.grow("64m");
    let r = env.json(&["repair", &id, "--json"]);
    assert_eq!(r["ok"], true, "{r}");
    let (code, h) = env.health(&id, true);
    assert_eq!(code, 0, "{h}");
    assert_eq!(health_of(&h, "small")["missing"], 0, "{h}");
    let local = env.network_dir("local");
    let aside = env.path().join("local-aside");
    std::fs::rename(&local, &aside).unwrap();
    let out_dir = env.path().join("from-small");
    let r = env.json(&["restore", &id, "--to", out_dir.to_str().unwrap(), "--json"]);
    assert!(r["chunks_from"]["small"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(snapshot(&out_dir.join("src")), want);
    std::fs::rename(&aside, &local).unwrap();
}

/// The disk under JetStream's store fills up mid-backup (a filesystem the
/// test mounts under the broker's store, then fills with a ballast file as
/// another program would): the backup waits, the workers say why, and
/// nothing is lost. Once the ballast is gone (and the broker restarted, if
/// it turned JetStream off), the backup completes and restores identical,
/// and so does the one before.
#[test]
fn a_full_disk_under_jetstream_stops_the_backup_cleanly_and_it_completes_once_space_returns() {
    let mut env = Env::with(Options {
        verify_timeout_secs: 600,
        ..Options::default()
    });
    env.nats.stop();
    let _ = std::fs::remove_dir_all(&env.nats.store_dir);
    // Large enough for the streams' reservations (JetStream counts 75% of
    // the space free when it starts); a tmpfs only uses what is written.
    let _disk = Tmpfs::mount(&env.nats.store_dir, "3g");
    env.nats.start_again();
    env.start_all();
    let small = env.source_dir("small");
    random_file(&small.join("a.bin"), 1 << 20);
    let first = env.backup(&[small.to_str().unwrap()]);

    // All but 2 MiB of it taken.
    let ballast = env.nats.store_dir.join("ballast");
    let df = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(&env.nats.store_dir)
        .output()
        .unwrap();
    let free: u64 = String::from_utf8_lossy(&df.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df's answer");
    let s = std::process::Command::new("fallocate")
        .args(["-l", &(free - (2 << 20)).to_string()])
        .arg(&ballast)
        .status()
        .unwrap();
    assert!(s.success(), "fallocate the ballast");

    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 64 << 20);
    let want = snapshot(&src);
    let mut cmd = env.cmd();
    cmd.args([
        "backup",
        "--json",
        "--timeout",
        "300",
        src.to_str().unwrap(),
    ]);
    let mut child = Guarded::spawn(cmd);
    let said = wait_for(120, "the workers to say why nothing moves", || {
        env.serve_logs()
            .lines()
            .find(|l| {
                l.contains("JetStream is unavailable")
                    || l.contains("insufficient")
                    || l.contains("no space")
            })
            .map(str::to_string)
    });
    eprintln!("faults: JetStream's disk full: {said}");
    assert!(child.running(), "the backup waits rather than fails");
    std::fs::remove_file(&ballast).unwrap();
    // nats-server 2.9 stops answering JetStream requests once a write
    // fails for want of space, and does not come back by itself when
    // space does: an operator restarts it (its store is intact).
    let back = (0..40).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(500));
        env.serve_logs().contains("JetStream is available again")
    });
    if !back {
        eprintln!("faults: JetStream did not answer again with space back; the broker restarted");
        env.nats.stop();
        env.nats.start_again();
    }
    let v = completed_outcome(&child.wait_output());
    for (id, want, name) in [
        (id_of(&v), want, "src"),
        (id_of(&first), snapshot(&small), "small"),
    ] {
        let out = env.path().join(format!("out-{name}"));
        env.ok(&["restore", &id, "--to", out.to_str().unwrap()]);
        assert_eq!(snapshot(&out.join(name)), want);
    }
    env.ok(&["audit", "verify"]);
}

/// The ingest process running a backup is frozen mid-way (SIGSTOP: as a
/// host cut off or a process stalled looks to the others). Its lease on the
/// backup runs out and the other ingest replica takes the backup over as a
/// new run, which completes and restores identical. Then the frozen one
/// wakes: it finds its lease gone and gives its run up, and what an old run
/// sends late (here a manifest and its digest, published by hand as that
/// run) is passed over by store and the ledger, so every object stays as
/// recorded.
#[test]
fn an_ingest_frozen_mid_backup_is_taken_over_and_its_late_sends_change_nothing() {
    use cairn_events::{
        encode, BackupId, Envelope, Event, ObjectDigest, ObjectKey, Run, SealedObject,
    };
    let mut env = Env::new();
    // SEALED small and no store yet: the ingest stalls part-way, on
    // SEALED's bound, and is frozen there.
    env.set_env("CAIRN_NATS__SEALED_MAX_BYTES", &(24u64 << 20).to_string());
    env.init();
    let ingests = [env.serve(&["ingest"]), env.serve(&["ingest"])];
    for s in ["encrypt", "verify", "ledger"] {
        env.serve(&[s]);
    }
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 48 << 20);
    text_file(&src.join("b.txt"), 4 << 20, 7);
    let want = snapshot(&src);
    let backup = env.backup_under_way(&["--timeout", "240", src.to_str().unwrap()]);

    let log_of = |env: &Env, i: usize| -> String {
        let name = format!("serve-ingest-{}.log", i + 1);
        std::fs::read_to_string(env.logs_dir().join(name)).unwrap_or_default()
    };
    let first = wait_for(60, "an ingest replica to take the backup", || {
        (0..2).find(|&i| log_of(&env, i).contains("took the lease on this backup"))
    });
    let other = 1 - first;
    // Part-way: SEALED at its bound, the ingest waiting on it.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let frozen = env.worker(ingests[first]).pid().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-STOP", &frozen])
        .status()
        .unwrap()
        .success());
    wait_for(60, "the other replica to take the backup over", || {
        log_of(&env, other)
            .contains("stopped renewing its lease; running it here, as a new run")
            .then_some(())
    });
    env.serve(&["store"]);
    let out = backup.wait_output();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(v["status"], "completed", "{v}");
    let id = v["backup_id"].as_str().unwrap().to_string();

    // Its two runs: the ledger counts the later one's.
    let runs: Vec<Run> = logged_events(&env.db)
        .into_iter()
        .filter(|e| e.backup_id.as_str() == id)
        .filter_map(|e| match e.event {
            Event::BackupStarted { run, .. } => run,
            _ => None,
        })
        .collect();
    assert_eq!(runs.len(), 2, "two runs of backup {id}: {runs:?}");
    assert!(
        runs[1].supersedes(&runs[0]),
        "the later run is ordered after: {runs:?}"
    );
    let current = psql(
        &env.db,
        &format!("select run || ' ' || run_order from backups where backup_id = '{id}'"),
    );
    assert_eq!(
        current,
        format!("{} {}", runs[1].key.to_hex(), runs[1].order),
        "the ledger names the later run"
    );

    // The frozen replica wakes and gives its run up.
    assert!(std::process::Command::new("kill")
        .args(["-CONT", &frozen])
        .status()
        .unwrap()
        .success());
    wait_for(60, "the woken replica to give its run up", || {
        let log = log_of(&env, first);
        (log.contains("lease taken by another") || log.contains("lost the lease")).then_some(())
    });

    // A late manifest of the old run, as it would arrive from a host that
    // was cut off: onto SEALED for the store workers, and its digest as an
    // event for the ledger.
    let backup_id = BackupId::parse(&id).unwrap();
    let subjects = cairn_events::subjects::Subjects::new(&env.prefix).unwrap();
    let junk = b"a manifest from a run that no longer counts".to_vec();
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&junk));
    let object = ObjectKey::Manifest {
        backup_id: backup_id.clone(),
    };
    let late = SealedObject {
        schema: cairn_events::SCHEMA_VERSION,
        backup_id: backup_id.clone(),
        object: object.clone(),
        networks: vec!["local".into()],
        sha256: sha256.clone(),
        payload: junk.clone(),
        retain_until: None,
        run: Some(runs[0]),
        erasure: None,
    };
    publish_raw(&env, &subjects.sealed(&backup_id), &encode(&late));
    let sealed = Envelope::new(
        "ingest@elsewhere",
        backup_id.clone(),
        Event::ObjectSealed(ObjectDigest {
            object,
            sha256: sha256.clone(),
            len: junk.len() as u64,
            packed: Vec::new(),
            run: Some(runs[0]),
            shards: None,
        }),
        &[sha256.as_bytes()],
    );
    publish_raw(
        &env,
        &subjects.event(&sealed.event, &backup_id),
        &encode(&sealed),
    );
    wait_for(30, "store to pass the late manifest over", || {
        env.serve_logs()
            .contains("of a run this backup's ingest no longer counts; not written")
            .then_some(())
    });
    wait_until_idle(&env, 60);
    let recorded = psql(
        &env.db,
        &format!("select sha256 from object_digests where path = 'backups/{id}/manifest'"),
    );
    assert_ne!(
        recorded, sha256,
        "the ledger kept the current run's manifest"
    );

    let (code, h) = env.health(&id, true);
    assert_eq!(code, 0, "every object as recorded: {h}");
    let restored = env.path().join("out");
    env.ok(&["restore", &id, "--to", restored.to_str().unwrap()]);
    assert_eq!(snapshot(&restored.join("src")), want);
    env.ok(&["audit", "verify"]);
}

/// PostgreSQL restarted under the processes whose loops hold a connection
/// of their own (the repair loop, the checkpoint signer): each stops,
/// naming why, instead of failing every round until someone restarts it;
/// its service manager starts it again, and the new one works.
#[test]
fn a_postgresql_restart_stops_the_loops_holding_a_connection_naming_why() {
    use cairn_tests::postgres::Cluster;
    use std::os::unix::fs::PermissionsExt;
    let mut env = Env::with(Options::default());
    // The postgres user reaches its data directory under the test's.
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let pg = Cluster::init(&env.path().join("pg"), &[]);
    pg.start(&[]);
    env.set_env("CAIRN_POSTGRES__URL", &pg.url());
    env.set_env("CAIRN_REPAIR__INTERVAL_SECS", "1");
    let key = env.path().join("signing.key");
    env.ok(&[
        "audit",
        "keygen",
        "--origin",
        "cairn.test/faults",
        "--key-file",
        key.to_str().unwrap(),
    ]);
    env.set_env("CAIRN_AUDIT__SIGNING_KEY_FILE", key.to_str().unwrap());
    env.init();
    let loops = [env.serve(&["repair"]), env.serve(&["checkpoint"])];
    wait_for(30, "both to serve", || {
        (env.serve_logs().matches("serving").count() >= 2).then_some(())
    });
    pg.stop();
    pg.start(&[]);
    for (i, who) in loops
        .into_iter()
        .zip(["the repair loop", "the checkpoint signer"])
    {
        wait_for(30, &format!("{who} to stop"), || {
            env.worker(i).exited().then_some(())
        });
        let said = format!("{who}'s PostgreSQL connection is gone");
        assert!(env.serve_logs().contains(&said), "{}", env.serve_logs());
    }
    // Started again, as a service manager would: it works.
    env.serve(&["all"]);
    let src = source(&env);
    let b = env.backup(&[src.to_str().unwrap()]);
    assert_eq!(b["status"], "completed", "{b}");
}
