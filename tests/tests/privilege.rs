//! Least privilege on the bus (issue 16): a NATS server that speaks only
//! TLS (a CA this test makes) and knows one user per role, from `cairn
//! nats users`. Every stage runs in its own process as its own user and a
//! factory's backup completes and restores; then each role connects and
//! is shown what it is refused.

use cairn_bus::{Bus, NatsConfig};
use cairn_tests::env::Env;
use cairn_tests::fixtures::{random_file, snapshot};
use cairn_tests::postgres::{chown_postgres, Cluster};
use cairn_tests::process::wait_for;
use cairn_tests::tls::Ca;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The stages, each a process and a NATS user of its own.
const STAGES: [&str; 6] = [
    "ingest",
    "encrypt",
    "store",
    "verify",
    "ledger",
    "retention",
];

struct Users {
    dir: PathBuf,
    ca: PathBuf,
    /// The ledger's PostgreSQL, TLS only.
    pg: Cluster,
}

impl Users {
    fn seed(&self, role: &str) -> PathBuf {
        self.dir.join(format!("{role}.nk"))
    }
    /// The environment a process of `role` runs with.
    fn env(&self, role: &str) -> Vec<(String, String)> {
        vec![
            (
                "CAIRN_NATS__NKEY_FILE".into(),
                self.seed(role).display().to_string(),
            ),
            ("CAIRN_NATS__MANAGE_TOPOLOGY".into(), "false".into()),
        ]
    }
    fn config(&self, env: &Env, role: &str) -> NatsConfig {
        NatsConfig {
            url: env.nats.url(),
            prefix: env.prefix.clone(),
            nkey_file: Some(self.seed(role)),
            tls_ca_file: Some(self.ca.clone()),
            manage_topology: false,
            ..Default::default()
        }
    }
}

/// A PostgreSQL of the test's own for the ledger that accepts TLS only,
/// with a certificate from `ca`.
fn postgres_over_tls(env: &Env, ca: &Ca) -> Cluster {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = env.path().join("pg");
    std::fs::create_dir_all(&home).unwrap();
    let (cert, key) = ca.issue("postgres");
    let (c, k) = (home.join("server.pem"), home.join("server.key"));
    std::fs::copy(cert, &c).unwrap();
    std::fs::copy(key, &k).unwrap();
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
    chown_postgres(&home);
    let pg = Cluster::init(
        &home.join("data"),
        &[
            ("ssl", "on"),
            ("ssl_cert_file", c.to_str().unwrap()),
            ("ssl_key_file", k.to_str().unwrap()),
        ],
    );
    std::fs::write(
        pg.data.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 reject\n",
    )
    .unwrap();
    pg.start(&[]);
    pg
}

/// Runs `sql` on the ledger's database over TLS.
fn ledger_sql(users: &Users, sql: &str) -> String {
    let o = std::process::Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={} user=postgres dbname=cairn sslmode=verify-full sslrootcert={}",
            users.pg.port,
            users.ca.display()
        ))
        .args(["-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// TLS and one user per role on the test's broker; the operator's key and
/// the CA in cairn.toml; the ledger on a PostgreSQL that speaks only TLS.
fn lock_down(env: &mut Env) -> Users {
    let ca = Ca::new(&env.path().join("ca"));
    let pg = postgres_over_tls(env, &ca);
    let (cert, key) = ca.issue("nats");
    let dir = env.path().join("nats-users");
    let out = env.json(&[
        "nats",
        "users",
        "--dir",
        dir.to_str().unwrap(),
        "--factory",
        "gov=payroll",
        "--json",
    ]);
    let users = out["users"].as_array().unwrap();
    assert_eq!(users.len(), 9, "{out}");
    for u in users {
        let seed = Path::new(u["seed_file"].as_str().unwrap());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(seed).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is readable by others", seed.display());
    }
    let auth = std::fs::read_to_string(dir.join("authorization.conf")).unwrap();
    for u in users {
        let seed = std::fs::read_to_string(u["seed_file"].as_str().unwrap()).unwrap();
        assert!(seed.starts_with("SU"), "{seed}");
        assert!(!auth.contains(seed.trim()), "a seed in the server's config");
        assert!(auth.contains(u["public_key"].as_str().unwrap()));
    }
    env.nats.reconfigure(&format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  timeout: 5\n}}\n{auth}",
        cert.display(),
        key.display()
    ));
    let text = std::fs::read_to_string(&env.config).unwrap();
    let ledger = format!(
        "url = \"host=127.0.0.1 port=5432 user=postgres dbname={}\"\n",
        env.db
    );
    assert!(text.contains(&ledger));
    let text = text
        .replacen(
            "[nats]\n",
            &format!(
                "[nats]\ntls_ca_file = \"{}\"\nnkey_file = \"{}\"\n",
                ca.cert.display(),
                dir.join("operator.nk").display()
            ),
            1,
        )
        .replacen(
            &ledger,
            &format!(
                "url = \"host=127.0.0.1 port={} user=postgres dbname=cairn\"\ntls_ca_file = \"{}\"\n",
                pg.port,
                ca.cert.display()
            ),
            1,
        );
    std::fs::write(&env.config, text).unwrap();
    Users {
        dir,
        ca: ca.cert.clone(),
        pg,
    }
}

#[test]
fn every_stage_runs_as_its_own_user_over_tls_and_each_role_is_refused_the_rest() {
    let mut env = Env::new();
    let users = lock_down(&mut env);
    // The operator makes the streams and consumers; nobody else may.
    env.init();
    for stage in STAGES {
        let e = users.env(stage);
        let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.serve_with(&[stage], &e);
    }

    // A factory asks for a backup of its dataset: done by the stages, each
    // as its own user, and restored whole.
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 3 << 20);
    std::fs::write(src.join("b.txt"), "payroll, March").unwrap();
    let mut factory = env.cmd();
    for (k, v) in users.env("factory-gov") {
        factory.env(k, v);
    }
    let o = env.run_with(
        factory,
        &[
            "backup",
            "--dataset",
            "payroll",
            "--json",
            src.to_str().unwrap(),
        ],
        None,
    );
    let done: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "backup as the factory: {e}: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            env.serve_logs()
        )
    });
    assert_eq!(done["status"], "completed", "{done}");
    let id = done["backup_id"].as_str().unwrap().to_string();
    let out = env.path().join("out");
    env.ok(&["restore", &id, "--to", out.to_str().unwrap()]);
    assert_eq!(snapshot(&out.join("src")), snapshot(&src));

    // The same factory may not ask for another dataset: a clear error
    // naming the refusal, and no request recorded.
    let mut factory = env.cmd();
    for (k, v) in users.env("factory-gov") {
        factory.env(k, v);
    }
    let o = env.run_with(
        factory,
        &["backup", "--dataset", "hr", "--json", src.to_str().unwrap()],
        None,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("Permissions Violation for Publish") && err.contains(".hr\""),
        "{err}"
    );

    // The stages did their work without a single refusal (the one the
    // server logged is the factory's request for hr).
    let log = env.nats.log();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Violation") && !l.contains(".hr\""))
        .collect();
    assert!(
        refused.is_empty(),
        "a stage was refused something it needs:\n{}",
        refused.join("\n")
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(refusals(&env, &users));

    // A request whose subject names one dataset and whose body another is
    // dead-lettered by ingest with its reason, not backed up.
    let before = dead_letters(&users);
    rt.block_on(async {
        let op = Bus::connect(&users.config(&env, "operator"), "test-operator")
            .await
            .unwrap();
        let req = cairn_events::BackupRequest {
            dataset: "hr".into(),
            tags: vec![],
            source: cairn_events::Source::Paths {
                paths: vec![src.display().to_string()],
            },
            networks: vec![],
            min_copies: None,
            requested_by: "forger".into(),
            force_read: false,
        };
        let id = cairn_events::BackupId::generate();
        let env_ = cairn_events::Envelope::new(
            "forger",
            id.clone(),
            cairn_events::Event::BackupRequested(req),
            &[],
        );
        let subject = op.subjects.request(&id, "payroll");
        op.js
            .publish(subject, cairn_events::encode(&env_).into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
    let reason = wait_for(60, "ingest to dead-letter the forged request", || {
        (dead_letters(&users) > before).then(|| {
            ledger_sql(
                &users,
                "SELECT encode(entry, 'escape') FROM ledger_entries WHERE kind = 'event.deadlettered' ORDER BY seq DESC LIMIT 1",
            )
        })
    });
    assert!(reason.contains("belongs on"), "{reason}");
    // However they were provoked (garbage on seal.>, a forged request),
    // the stages themselves were never refused anything.
    let log = env.nats.log();
    let stages: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Violation") && l.contains("cairn-serve"))
        .collect();
    assert!(stages.is_empty(), "{}", stages.join("\n"));

    // The ledger's PostgreSQL takes no plaintext connection, and Cairn
    // trusts no server its CA did not sign.
    let plain = std::process::Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={} user=postgres dbname=cairn sslmode=disable",
            users.pg.port
        ))
        .args(["-qAtc", "SELECT 1"])
        .output()
        .unwrap();
    assert!(!plain.status.success());
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("no encryption"),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let other = Ca::new(&env.path().join("other-ca"));
    let mut c = env.cmd();
    c.env("CAIRN_POSTGRES__TLS_CA_FILE", &other.cert);
    let o = env.run_with(c, &["list", "--json"], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("PostgreSQL at 127.0.0.1"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

fn dead_letters(users: &Users) -> i64 {
    ledger_sql(
        users,
        "SELECT count(*) FROM ledger_entries WHERE kind = 'event.deadlettered'",
    )
    .parse()
    .unwrap()
}

/// Connects as `role`.
async fn connect(env: &Env, users: &Users, role: &str) -> Bus {
    Bus::connect(&users.config(env, role), &format!("test-{role}"))
        .await
        .unwrap_or_else(|e| panic!("{role}: {e}"))
}

/// Whether the server refused `role` a publish to `subject` (a core
/// publish the operator, listening, never sees, and the server's
/// violation naming it).
async fn publish_refused(env: &Env, users: &Users, role: &str, subject: &str) -> bool {
    let op = connect(env, users, "operator").await;
    let mut seen = op.client.subscribe(subject.to_string()).await.unwrap();
    op.client.flush().await.unwrap();
    let bus = connect(env, users, role).await;
    let before = std::time::Instant::now();
    bus.client
        .publish(subject.to_string(), "x".into())
        .await
        .unwrap();
    bus.client.flush().await.unwrap();
    let arrived = tokio::time::timeout(Duration::from_millis(700), seen.next())
        .await
        .is_ok();
    let said = wait_refused(before, subject).await;
    assert_eq!(
        arrived,
        said.is_none(),
        "{role} publishing {subject}: arrived {arrived}, refusal {said:?}"
    );
    !arrived
}

async fn wait_refused(since: std::time::Instant, subject: &str) -> Option<String> {
    for _ in 0..20 {
        if let Some(w) = cairn_bus::access::refused_since(since) {
            if w.contains(subject) {
                return Some(w);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Whether the server refused `role` a subscription to `subject`: the
/// violation, and nothing of what the operator publishes there arrives.
async fn subscribe_refused(env: &Env, users: &Users, role: &str, subject: &str) -> bool {
    let bus = connect(env, users, role).await;
    let before = std::time::Instant::now();
    let mut sub = bus.client.subscribe(subject.to_string()).await.unwrap();
    bus.client.flush().await.unwrap();
    let said = wait_refused(before, subject).await;
    let op = connect(env, users, "operator").await;
    let concrete = subject.replace(['>', '*'], "x");
    op.client.publish(concrete, "x".into()).await.unwrap();
    op.client.flush().await.unwrap();
    let arrived = tokio::time::timeout(Duration::from_millis(700), sub.next())
        .await
        .is_ok_and(|m| m.is_some());
    assert_eq!(
        arrived,
        said.is_none(),
        "{role} subscribing {subject}: arrived {arrived}, refusal {said:?}"
    );
    !arrived
}

async fn refusals(env: &Env, users: &Users) {
    let p = &env.prefix;
    let all: Vec<&str> = STAGES
        .into_iter()
        .chain(["console", "factory-gov"])
        .collect();
    // Plaintext: only encrypt may receive seal requests.
    for &role in &all {
        let refused = subscribe_refused(env, users, role, &format!("{p}.seal.>")).await;
        assert_eq!(refused, role != "encrypt", "{role} and plaintext");
    }
    // The ledger's copy: only the ledger writes entries and checkpoints.
    for &role in &all {
        let refused = publish_refused(
            env,
            users,
            role,
            &format!("{p}.audit.entry.backup.completed"),
        )
        .await;
        assert_eq!(refused, role != "ledger", "{role} writing audit.entry");
    }
    // The factory asks for its own datasets only; the console asks nothing.
    let b = cairn_events::BackupId::generate();
    for (role, subject, refused) in [
        (
            "factory-gov",
            format!("{p}.evt.backup.requested.{b}.payroll"),
            false,
        ),
        (
            "factory-gov",
            format!("{p}.evt.backup.requested.{b}.hr"),
            true,
        ),
        ("factory-gov", format!("{p}.evt.forget.requested.{b}"), true),
        (
            "console",
            format!("{p}.evt.backup.requested.{b}.payroll"),
            true,
        ),
        ("console", format!("{p}.evt.operator.action.{b}"), true),
        ("store", format!("{p}.evt.backup.completed.{b}"), true),
        ("store", format!("{p}.evt.object.stored.{b}"), false),
    ] {
        assert_eq!(
            publish_refused(env, users, role, &subject).await,
            refused,
            "{role} publishing {subject}"
        );
    }
    // The console reads the live feed.
    assert!(!subscribe_refused(env, users, "console", &format!("{p}.evt.>")).await);
    assert!(!subscribe_refused(env, users, "console", &format!("{p}.audit.entry.>")).await);
    // No service may remove a stream or another stage's consumer, nor
    // read another's replies.
    let events = format!("{}_EVENTS", p.to_uppercase());
    for &role in &all {
        for api in [
            format!("$JS.API.STREAM.DELETE.{events}"),
            format!("$JS.API.CONSUMER.DELETE.{events}.ledger"),
        ] {
            assert!(
                publish_refused(env, users, role, &api).await,
                "{role} {api}"
            );
        }
        assert!(
            subscribe_refused(env, users, role, "_INBOX.>").await,
            "{role} reading others' replies"
        );
    }

    // Without the CA (no TLS), or with a key the server does not know,
    // nobody gets in.
    let mut plain = users.config(env, "operator");
    plain.tls_ca_file = None;
    let e = Bus::connect(&plain, "test-plain")
        .await
        .err()
        .expect("a plaintext connection got in");
    eprintln!("without TLS: {e}");
    let stranger = env.path().join("stranger.nk");
    std::fs::write(&stranger, cairn_bus::access::new_user_key().0).unwrap();
    let mut unknown = users.config(env, "operator");
    unknown.nkey_file = Some(stranger);
    let e = Bus::connect(&unknown, "test-stranger")
        .await
        .err()
        .expect("an unknown key got in");
    assert!(e.to_string().contains("authorization violation"), "{e}");
    let mut nobody = users.config(env, "operator");
    nobody.nkey_file = None;
    let e = Bus::connect(&nobody, "test-nobody")
        .await
        .err()
        .expect("no user got in");
    assert!(e.to_string().contains("authorization violation"), "{e}");
}
