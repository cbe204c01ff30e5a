//! Cairn on three hosts, as `deploy/README.md` ("Three hosts") lays it out:
//! network namespaces the test makes, each host running a node of the
//! JetStream cluster (streams at replication 3) and every stage (`cairn
//! serve all`), against a PostgreSQL on the machine reached over the veth
//! network. A backup completes and restores; then the link of the host
//! whose ingest runs the next backup is cut mid-way: the surviving hosts
//! take its work over (the ingest lease runs out and another host runs the
//! backup as a new run), the backup completes and restores, and once the
//! link is back the cut host gives its run up and takes part again.

use cairn_tests::hosts::Hosts;
use cairn_tests::*;

const LEASE_LINE: &str = "took the lease on this backup";

fn logs_of(env: &Env, worker: &str) -> String {
    std::fs::read_to_string(env.logs_dir().join(format!("{worker}.log"))).unwrap_or_default()
}

fn restores(
    env: &Env,
    id: &str,
    src: &std::path::Path,
    want: &std::collections::BTreeMap<String, String>,
) {
    let out = env.path().join(format!("out-{id}"));
    env.ok(&["restore", id, "--to", out.to_str().unwrap()]);
    let name = src.file_name().unwrap();
    assert_eq!(
        &snapshot(&out.join(name)),
        want,
        "backup {id} restores identical"
    );
}

#[test]
fn stages_on_three_hosts_survive_one_host_cut_off_mid_backup() {
    let hosts = Hosts::create(3);
    let mut env = Env::with(Options {
        ack_wait_secs: 5,
        // A message the cut host had asked for is delivered into the void
        // until its pull requests expire, and each time counts: with few
        // deliveries allowed, one could run out of them (deploy/README.md).
        max_deliver: 10,
        verify_timeout_secs: 120,
        ..Options::default()
    });
    let nodes = hosts.nats_cluster(&env.path().join("nats-hosts"));
    // The ledger's PostgreSQL, on the machine, reached over the bridge.
    use std::os::unix::fs::PermissionsExt;
    // The postgres user reaches its data directory under the test's.
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let pg = Cluster::init(&env.path().join("pg"), &[]);
    let hba = pg.data.join("pg_hba.conf");
    let mut text = std::fs::read_to_string(&hba).unwrap();
    text.push_str(&format!("host all all {}/24 trust\n", hosts.gateway()));
    std::fs::write(&hba, text).unwrap();
    pg.start_on(&[], &format!("127.0.0.1,{}", hosts.gateway()));
    env.set_env("CAIRN_NATS__URL", &hosts.nats_urls());
    env.set_env("CAIRN_NATS__REPLICAS", "3");
    env.set_env(
        "CAIRN_POSTGRES__URL",
        &format!(
            "host={} port={} user=postgres dbname=postgres",
            hosts.gateway(),
            pg.port
        ),
    );
    env.init();
    let (workers, mut serving): (Vec<String>, Vec<usize>) = (0..3)
        .map(|i| {
            let w = env.serve_as(&["all"], &[], |c| hosts.on(i, &c));
            (format!("serve-all-{}", i + 1), w)
        })
        .unzip();

    // Whole: a backup completes and restores.
    let src1 = env.source_dir("first");
    random_file(&src1.join("a.bin"), 6 << 20);
    text_file(&src1.join("b.txt"), 1 << 20, 1);
    let want1 = snapshot(&src1);
    // A worker may take a few seconds more than the CLI's default 5 to
    // take a request while the cluster settles.
    let b1 = env.backup(&["--start-timeout", "60", src1.to_str().unwrap()]);
    assert_eq!(b1["status"], "completed", "{b1}");
    let id1 = b1["backup_id"].as_str().unwrap().to_string();
    restores(&env, &id1, &src1, &want1);

    // The next backup: its ingest's host is cut off as soon as it starts.
    let leases = |env: &Env| -> Vec<usize> {
        workers
            .iter()
            .map(|w| logs_of(env, w).matches(LEASE_LINE).count())
            .collect()
    };
    let before = leases(&env);
    let src2 = env.source_dir("second");
    random_file(&src2.join("a.bin"), 64 << 20);
    text_file(&src2.join("b.txt"), 4 << 20, 2);
    let want2 = snapshot(&src2);
    let running = env.backup_under_way(&[
        "--timeout",
        "300",
        "--start-timeout",
        "60",
        src2.to_str().unwrap(),
    ]);
    let victim = wait_for(60, "a host's ingest to take the backup", || {
        let now = leases(&env);
        (0..3).find(|&i| now[i] > before[i])
    });
    // Mid-way: the ledger has it running (the client saw it start).
    wait_for(60, "the backup to start", || {
        let running = pg.sql("SELECT count(*) FROM backups WHERE status = 'running'");
        (running.ends_with('1')).then_some(())
    });
    let cut_at = std::time::Instant::now();
    hosts.cut(victim);
    eprintln!("hosts: cut host {} off mid-backup", victim + 1);
    let out = running.wait_output();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    // What the hosts said of the backups' course, should it not complete.
    let course = || -> String {
        workers
            .iter()
            .flat_map(|w| {
                logs_of(&env, w)
                    .lines()
                    .filter(|l| {
                        [
                            "result=",
                            "new run",
                            "giving the work up",
                            "took the lease",
                            "superseded",
                            "no longer counts",
                            "dead",
                        ]
                        .iter()
                        .any(|k| l.contains(k))
                    })
                    .map(|l| format!("{w}: {}", &l[..l.len().min(400)]))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        v["status"],
        "completed",
        "{v}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        course()
    );
    eprintln!(
        "hosts: backup completed {:.1} s after the cut",
        cut_at.elapsed().as_secs_f64()
    );
    let id2 = v["backup_id"].as_str().unwrap().to_string();
    // Its ingest moved: a surviving host ran it as a new run.
    let moved_to: Vec<usize> = (0..3)
        .filter(|&i| i != victim)
        .filter(|&i| {
            logs_of(&env, &workers[i])
                .lines()
                .any(|l| l.contains(&id2) && l.contains("running it here, as a new run"))
        })
        .collect();
    assert_eq!(
        moved_to.len(),
        1,
        "one surviving host took the ingest over (host {} was cut)",
        victim + 1
    );
    restores(&env, &id2, &src2, &want2);

    // The link back: the cut host's node catches up and its ingest gives
    // its run up.
    hosts.restore(victim);
    let back_at = std::time::Instant::now();
    // Its ingest gave its run up: told the lease was taken once its link
    // was back, or stopped already, its database connection gone (the
    // keepalives ended it during the cut), to be started again.
    wait_for(90, "the cut host's ingest to give its run up", || {
        let log = logs_of(&env, &workers[victim]);
        (log.contains("giving the work up") || log.contains("PostgreSQL connection is gone"))
            .then_some(())
    });
    // Caught up: nats-server's health check passes once its JetStream
    // streams and consumers are current.
    wait_for(120, "the cut host's node to catch up", || {
        let ok = |i: usize| {
            hosts
                .monitor(i, "/healthz")
                .is_some_and(|v| v["status"] == "ok")
        };
        (0..3).all(ok).then_some(())
    });
    let caught_up = back_at.elapsed();
    // As its service manager would: a stage that stopped is started again.
    if env.worker(serving[victim]).exited() {
        eprintln!("hosts: the cut host's serve had stopped; started again");
        serving[victim] = env.serve_as(&["all"], &[], |c| hosts.on(victim, &c));
    }

    eprintln!(
        "hosts: the cut host's node caught up {:.1} s after its link came back",
        caught_up.as_secs_f64()
    );
    // A third backup with every host back; all three verify whole.
    let src3 = env.source_dir("third");
    random_file(&src3.join("a.bin"), 6 << 20);
    let want3 = snapshot(&src3);
    let b3 = env.backup(&["--start-timeout", "60", src3.to_str().unwrap()]);
    assert_eq!(b3["status"], "completed", "{b3}");
    let id3 = b3["backup_id"].as_str().unwrap().to_string();
    restores(&env, &id3, &src3, &want3);
    for id in [&id1, &id2, &id3] {
        let (code, h) = env.health(id, true);
        assert_eq!(code, 0, "backup {id}: every object as recorded: {h}");
    }
    env.ok(&["audit", "verify"]);
    env.stop_workers();
    drop(nodes);
}
