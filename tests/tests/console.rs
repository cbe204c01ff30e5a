//! The ops console in a real headless Chromium (Debian's `chromium`, driven
//! through `chromedriver` over WebDriver): a backup appears in the open page
//! and completes there without a reload, its timeline and evidence open,
//! and a repair is refused without an operator's token and done (and
//! ledgered with the operator's name) with one. Screenshots go to the
//! test's directory and, with `CAIRN_UPDATE_EXAMPLES=1`, to
//! `docs/examples/` for the README.

use cairn_tests::*;
use fantoccini::{Client, ClientBuilder, Locator};
use sha2::{Digest, Sha256};
use std::process::{Command, Stdio};
use std::time::Duration;

const TOKEN: &str = "operator-token-for-the-test";

/// `chromedriver` on a free port under a path of its own, stopped when
/// dropped: its URL. The path tells it from another test's driver that
/// took the same port first (this one then exits, and another port is
/// tried).
fn chromedriver(dir: &std::path::Path) -> (Guarded, String) {
    for _ in 0..5 {
        let port = free_port();
        let base = format!("wd{}", hex::encode(rand::random::<[u8; 4]>()));
        let log = std::fs::File::create(dir.join("chromedriver.log")).unwrap();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg(format!("--url-base=/{base}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian: chromium-driver; scripts/test.sh installs it)");
        let mut g = Guarded(Some(child));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if g.0.as_mut().unwrap().try_wait().unwrap().is_some() {
                break;
            }
            if status_of(port, &format!("/{base}/status")) == Some(200) {
                return (g, format!("http://127.0.0.1:{port}/{base}/"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("chromedriver did not start (see chromedriver.log)");
}

/// The status of `GET path`, or `None` while nothing answers it.
fn status_of(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    // HTTP/1.1: chromedriver does not answer 1.0.
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

async fn browser(driver: String) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver)
        .await
        .expect("a WebDriver session in headless Chromium")
}

async fn text_of(c: &Client, css: &str) -> String {
    c.wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// Waits until the element at `css` reads `want` (or contains it).
async fn until_text(c: &Client, css: &str, want: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if t.contains(want) {
                    return t;
                }
            }
        }
        if std::time::Instant::now() >= deadline {
            // What the page held instead, for a failure seen only in CI.
            let source = c.source().await.unwrap_or_else(|e| e.to_string());
            let cut = (0..=source.len().min(4000))
                .rev()
                .find(|i| source.is_char_boundary(*i))
                .unwrap_or(0);
            panic!("{css} never read {want:?}; the page: {}", &source[..cut]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The attribute `name` of the element at `css`.
async fn attr(c: &Client, css: &str, name: &str) -> Option<String> {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .attr(name)
        .await
        .unwrap()
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn screenshot(c: &Client, env: &Env, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(env.logs_dir().join(format!("{name}.png")), &png).unwrap();
    if std::env::var_os("CAIRN_UPDATE_EXAMPLES").is_some() {
        let to = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../docs/examples/{name}.png"));
        std::fs::write(to, &png).unwrap();
    }
}

/// Makes alice an operator (her token: [`TOKEN`]).
fn alice(env: &mut Env) {
    let operators = env.path().join("operators");
    std::fs::write(
        &operators,
        format!(
            "# who may act\nalice {}\n",
            hex::encode(Sha256::digest(TOKEN.as_bytes()))
        ),
    )
    .unwrap();
    env.set_env("CAIRN_CONSOLE__OPERATORS_FILE", operators.to_str().unwrap());
}

/// `cairn console` on a loopback port the system picks (it prints the
/// address it took), its output in the logs.
fn console(env: &Env) -> (Guarded, u16) {
    use std::io::BufRead;
    let mut c = env.cmd();
    let log = std::fs::File::create(env.logs_dir().join("console.log")).unwrap();
    c.args(["console", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(log.try_clone().unwrap())
        .stdin(Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let g = Guarded(Some(child));
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port: u16 = line
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the console's first line names its address: {line:?}"));
    // The rest of what it prints goes to the log.
    std::thread::spawn(move || {
        let mut log = log;
        let _ = std::io::copy(&mut out, &mut log);
    });
    (g, port)
}

#[test]
fn console_follows_a_backup_live_and_guards_actions() {
    let mut env = Env::new();
    alice(&mut env);
    env.start_all();
    // A first backup, so the list has something before the page opens.
    let src = env.source_dir("src");
    text_file(&src.join("a.txt"), 1 << 20, 1);
    let first = env.backup(&["--dataset", "docs", src.to_str().unwrap()]);
    let first = first["backup_id"].as_str().unwrap().to_string();

    let (_console, port) = console(&env);
    let (_driver, driver) = chromedriver(&env.logs_dir());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = browser(driver).await;
        let url = format!("http://127.0.0.1:{port}/");
        b.goto(&url).await.unwrap();
        until_text(&b, "#live", "live").await;
        until_text(
            &b,
            &format!("tr[data-backup=\"{first}\"] [data-status]"),
            "completed",
        )
        .await;

        // A backup taken while the page is open appears in it and
        // completes there: no reload, the live feed.
        let big = env.source_dir("big");
        random_file(&big.join("b.bin"), 24 << 20);
        let big = big.to_str().unwrap().to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        let config = env.config.clone();
        let backup = std::thread::spawn(move || {
            let o = Command::new(cairn_bin())
                .env("CAIRN_CONFIG", &config)
                .env("CAIRN_PASSPHRASE", PASSPHRASE)
                .args(["backup", "--json", "--dataset", "docs", &big])
                .output()
                .unwrap();
            let _ = tx.send(());
            o
        });
        let row = wait_for_row(&b).await;
        let status = text_of(&b, &format!("tr[data-backup=\"{row}\"] [data-status]")).await;
        let seen_before_done = rx.try_recv().is_err();
        screenshot(&b, &env, "console-backups").await;
        let o = backup.join().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["backup_id"], row.as_str());
        assert!(
            seen_before_done || status != "completed",
            "the row appeared while the backup ran (status {status})"
        );
        until_text(
            &b,
            &format!("tr[data-backup=\"{row}\"] [data-status]"),
            "completed",
        )
        .await;
        let nets = text_of(&b, &format!("tr[data-backup=\"{row}\"] .net")).await;
        assert!(nets.contains("local") && nets.contains('✓'), "{nets}");

        // Its page: the way through the stages, and its evidence.
        click(&b, &format!("tr[data-backup=\"{row}\"] a")).await;
        until_text(&b, "#backup h2", &row).await;
        for kind in [
            "backup.requested",
            "backup.started",
            "object.stored",
            "backup.ingested",
            "backup.completed",
        ] {
            text_of(&b, &format!("#timeline li[data-kind=\"{kind}\"]")).await;
        }
        click(&b, "#evidence").await;
        let doc = until_text(&b, "#evidence-doc", "backup_id").await;
        assert!(doc.contains(&row), "the evidence is this backup's: {doc}");
        screenshot(&b, &env, "console-backup").await;

        // Repair: refused without a token, and with a wrong one; done with
        // an operator's, and ledgered with their name.
        click(&b, "#repair").await;
        let m = until_text(&b, "#message", "refused").await;
        assert!(m.contains("401") && m.contains("operator token"), "{m}");
        let token = b.find(Locator::Css("#token")).await.unwrap();
        token.send_keys("not-a-token").await.unwrap();
        click(&b, "#repair").await;
        let m = until_text(&b, "#message", "403").await;
        assert!(m.contains("not an operator"), "{m}");
        assert_eq!(operator_actions(&env), 0, "a refused action does nothing");
        token.clear().await.unwrap();
        token.send_keys(TOKEN).await.unwrap();
        click(&b, "#repair").await;
        let m = until_text(&b, "#message", "repaired by alice").await;
        assert!(m.contains("intact"), "{m}");

        // Storage per network, as the ledger counts it.
        b.goto(&format!("{url}#/networks")).await.unwrap();
        let cell = b
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css("tr[data-network=\"local\"] .bytes"))
            .await
            .unwrap();
        let shown: i64 = cell
            .attr("data-bytes")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        let counted: i64 = psql(
            &env.db,
            "SELECT coalesce(sum(len), 0) FROM network_objects WHERE network = 'local'",
        )
        .trim()
        .parse()
        .unwrap();
        assert_eq!(shown, counted, "the page shows the ledger's count");
        assert!(shown > 24 << 20);
        text_of(&b, "svg.bars rect").await;
        let local = text_of(&b, "tr[data-network=\"local\"]").await;
        assert!(
            local.contains("fs") && !local.contains(env.path().to_str().unwrap()),
            "the kind by name, none of its configuration: {local}"
        );
        // Which networks hold which backups: both backups verified on local.
        for id in [&first, &row] {
            let cell = b
                .wait()
                .at_most(Duration::from_secs(30))
                .for_element(Locator::Css(&format!(
                    "svg.holdings rect[data-backup=\"{id}\"][data-network=\"local\"]"
                )))
                .await
                .unwrap();
            assert_eq!(
                cell.attr("data-verdict").await.unwrap().as_deref(),
                Some("ok")
            );
        }
        screenshot(&b, &env, "console-networks").await;

        // The ledger page: its size, and a dead letter arriving live.
        b.goto(&format!("{url}#/ledger")).await.unwrap();
        until_text(&b, "#ledger-size", "entries").await;
        text_of(&b, "#no-dead-letters").await;
        // publish_raw runs a runtime of its own: off this one's thread.
        std::thread::scope(|t| {
            t.spawn(|| {
                publish_raw(
                    &env,
                    &format!("{}.evt.backup.ingested.bad", env.prefix),
                    b"\x92\xa3not an event",
                )
            })
            .join()
            .unwrap()
        });
        let letters = until_text(&b, "#dead-letters", "malformed").await;
        assert!(letters.contains("verify"), "{letters}");
        b.close().await.unwrap();
    });
    let n = wait_for(30, "the operator's action in the ledger", || {
        let n = operator_actions(&env);
        (n > 0).then_some(n)
    });
    assert_eq!(n, 1);
    let by = psql(
        &env.db,
        "SELECT position('alice'::bytea IN entry) > 0 AND position('repair'::bytea IN entry) > 0 FROM ledger_entries WHERE kind = 'operator.action'",
    );
    assert_eq!(
        by.trim(),
        "t",
        "the entry names the operator and the action"
    );
}

fn operator_actions(env: &Env) -> i64 {
    psql(
        &env.db,
        "SELECT count(*) FROM ledger_entries WHERE kind = 'operator.action'",
    )
    .trim()
    .parse()
    .unwrap()
}

/// The id of the second row to appear (the backup started after the page
/// opened).
async fn wait_for_row(b: &Client) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let rows = b.find_all(Locator::Css("#backups tbody tr")).await.unwrap();
        if rows.len() >= 2 {
            return rows[0].attr("data-backup").await.unwrap().unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new backup never appeared"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One request to the console: status and body; every answer is hardened.
fn api(port: u16, method: &str, path: &str) -> (u16, String) {
    let (status, head, body) = http(port, method, path);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-security-policy"),
        "every answer is hardened: {head}"
    );
    (status, body)
}

/// Bad input of each kind is refused by name: an address other machines
/// reach (unless allowed), a malformed operators file, a backup id that is
/// not one or not in the ledger, and an action without a token.
#[test]
fn console_refuses_bad_input_by_name() {
    let mut env = Env::new();
    env.start_all();
    let o = env.run(&["console", "--listen", "0.0.0.0:0"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("not a loopback address") && e.contains("allow_remote"),
        "{e}"
    );

    let operators = env.path().join("operators");
    std::fs::write(&operators, "alice not-a-digest\n").unwrap();
    let mut c = env.cmd();
    c.env("CAIRN_CONSOLE__OPERATORS_FILE", &operators)
        .args(["console", "--listen", "127.0.0.1:0"]);
    let o = c.output().unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("operators") && e.contains("line 1") && e.contains("not a SHA-256"),
        "{e}"
    );

    let (_console, port) = console(&env);
    let (status, body) = api(port, "GET", "/api/backups/no.such%20id");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("no.such id"), "{body}");
    let absent = "01900000-0000-7000-8000-000000000000";
    let (status, body) = api(port, "GET", &format!("/api/backups/{absent}"));
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("no backup") && body.contains(absent),
        "{body}"
    );
    let (status, body) = api(port, "POST", &format!("/api/backups/{absent}/repair"));
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("operator token"), "{body}");
    let (status, body) = api(port, "GET", "/api/backups?limit=0&status=completed");
    assert_eq!(status, 200, "{body}");
    for action in [
        format!("/api/backups/{absent}/hold"),
        format!("/api/backups/{absent}/release"),
        "/api/datasets/docs/drill".to_string(),
        "/api/deadletters/1/retry".to_string(),
    ] {
        let (status, body) = api(port, "POST", &action);
        assert_eq!(status, 401, "{action}: {body}");
    }
    assert_eq!(operator_actions(&env), 0);

    // The console's own database role reads what it shows and nothing
    // else: not the wrapped dataset keys nor the collector's marks, and it
    // writes nowhere.
    let as_console = |sql: &str| {
        Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", &env.db, "-tAc"])
            .arg(format!("SET ROLE cairn_console; {sql}"))
            .output()
            .unwrap()
    };
    let o = as_console("SELECT count(*) FROM backups");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for sql in [
        "SELECT count(*) FROM dataset_keys",
        "SELECT count(*) FROM chunk_marks",
        "INSERT INTO holds VALUES ('x', 'y', 'z', now())",
    ] {
        let o = as_console(sql);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("permission denied"), "{sql}: {e}");
    }
}

/// The operator's side of the console in Chromium: throughput and lag
/// drawn over time, a restore drill run from the health page, a legal hold
/// placed and lifted from a backup's page (and the retention plan keeping
/// the held backup because of it), a backup's health read from its
/// networks, the schedules, the compliance verdicts, the witness's
/// cosignatures, and a dead letter sent again. Every action is refused
/// without alice's token and ledgered with her name with it.
#[test]
fn console_runs_drills_holds_and_retries_and_shows_plans() {
    let keys = tempfile::tempdir().unwrap();
    let (log_key, witness_key) = (
        keys.path().join("ledger.key"),
        keys.path().join("witness.key"),
    );
    let mut env = Env::with(Options {
        extra_toml: "\n[datasets.docs]\nprofiles = [\"ops\"]\n\n[retention.policies.docs]\nkeep_last = 1\n\
            \n[compliance.profiles.ops]\nrules = [\n  { id = \"copied\", control = \"ops 1\", kind = \"min_networks\", count = 1 },\n  { id = \"drilled\", control = \"ops 2\", kind = \"drill_within\", days = 1 },\n]\n"
            .into(),
        env: vec![
            ("CAIRN_AUDIT__SIGNING_KEY_FILE".into(), log_key.display().to_string()),
            ("CAIRN_AUDIT__WITNESS_KEY_FILE".into(), witness_key.display().to_string()),
            ("CAIRN_AUDIT__CHECKPOINT_INTERVAL_SECS".into(), "1".into()),
        ],
        ..Options::default()
    });
    for (origin, file) in [
        ("cairn.test/ledger", &log_key),
        ("cairn.test/witness", &witness_key),
    ] {
        env.ok(&[
            "audit",
            "keygen",
            "--origin",
            origin,
            "--key-file",
            file.to_str().unwrap(),
        ]);
    }
    alice(&mut env);
    env.start_all();
    let src = env.source_dir("docs");
    text_file(&src.join("a.txt"), 2 << 20, 1);
    let older = env.backup(&["--dataset", "docs", src.to_str().unwrap()]);
    let older = older["backup_id"].as_str().unwrap().to_string();
    text_file(&src.join("b.txt"), 1 << 20, 2);
    let newer = env.backup(&["--dataset", "docs", src.to_str().unwrap()]);
    let newer = newer["backup_id"].as_str().unwrap().to_string();
    env.ok(&[
        "schedule",
        "add",
        "--dataset",
        "docs",
        "--cron",
        "0 3 * * *",
        src.to_str().unwrap(),
    ]);

    let (_console, port) = console(&env);
    // Refused by name before anything runs: no token, no reason, not a
    // ledger position, not a dead letter, not a dataset.
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let (status, _, body) = http_with(
        port,
        "POST",
        &format!("/api/backups/{older}/hold"),
        &[],
        r#"{"reason":"x"}"#,
    );
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = http_with(
        port,
        "POST",
        &format!("/api/backups/{older}/hold"),
        &[&bearer],
        "{}",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("reason"), "{body}");
    let (status, _, body) = http_with(
        port,
        "POST",
        "/api/deadletters/twelve/retry",
        &[&bearer],
        "",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not a ledger position"), "{body}");
    let (status, _, body) = http_with(port, "POST", "/api/deadletters/1/retry", &[&bearer], "");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("not a dead letter"), "{body}");
    let (status, _, body) = http_with(port, "POST", "/api/datasets/..%2Fetc/drill", &[&bearer], "");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not a dataset name"), "{body}");
    assert_eq!(operator_actions(&env), 0, "nothing refused was ledgered");

    let (_driver, driver) = chromedriver(&env.logs_dir());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = browser(driver).await;
        let url = format!("http://127.0.0.1:{port}/");

        // Compliance: both backups judged against the operators' profile;
        // no drill yet, so the drill rule fails.
        b.goto(&format!("{url}#/compliance")).await.unwrap();
        until_text(&b, "#live", "live").await;
        let tally = until_text(&b, "#tally", "passed").await;
        assert!(
            tally.starts_with("2 backup(s)") && tally.contains("2 failed"),
            "{tally}"
        );
        let verdicts = format!("#compliance tr[data-backup=\"{newer}\"]");
        let failing = until_text(&b, &verdicts, "ops/drilled").await;
        assert!(failing.contains("1 fail"), "{failing}");

        // Health: what was backed up, over time, and each consumer's lag.
        b.goto(&format!("{url}#/health")).await.unwrap();
        text_of(&b, "#throughput").await;
        let mut drawn = 0u64;
        for bar in b.find_all(Locator::Css("#throughput rect")).await.unwrap() {
            drawn += bar
                .attr("data-bytes")
                .await
                .unwrap()
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
        assert!(drawn >= 3 << 20, "both backups' bytes are drawn: {drawn}");
        let lines = b
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css("#lag g[data-consumer] polyline"))
            .await;
        assert!(lines.is_ok(), "a lag line per consumer");
        let consumers = b
            .find_all(Locator::Css("#lag g[data-consumer]"))
            .await
            .unwrap();
        assert!(
            consumers.len() >= 4,
            "every stage's consumer: {}",
            consumers.len()
        );

        // A drill from the page: refused without the token, done with it.
        let row = "#datasets tr[data-dataset=\"docs\"]";
        until_text(&b, &format!("{row} .drill"), "none").await;
        click(&b, &format!("{row} .run-drill")).await;
        let m = until_text(&b, "#message", "refused").await;
        assert!(m.contains("401"), "{m}");
        b.find(Locator::Css("#token"))
            .await
            .unwrap()
            .send_keys(TOKEN)
            .await
            .unwrap();
        click(&b, &format!("{row} .run-drill")).await;
        let m = until_text(&b, "#message", "drilled by alice").await;
        assert!(m.contains("restored and checked"), "{m}");
        let cell = until_text(&b, &format!("{row} .drill"), "ok").await;
        assert!(cell.contains("console:alice"), "{cell}");
        screenshot(&b, &env, "console-health").await;

        // With the drill, the compliance verdict turns.
        b.goto(&format!("{url}#/compliance")).await.unwrap();
        let tally = until_text(&b, "#tally", "0 failed").await;
        assert!(tally.contains("4 passed"), "{tally}");
        let row = b.find(Locator::Css(&verdicts)).await.unwrap();
        assert_eq!(row.attr("data-failed").await.unwrap().as_deref(), Some("0"));

        // The retention plan drops the older backup (keep_last = 1) ...
        b.goto(&format!("{url}#/retention")).await.unwrap();
        let plan = format!("tr[data-backup=\"{older}\"]");
        let why = until_text(&b, &format!("{plan} .why"), "").await;
        let keep = attr(&b, &plan, "data-keep").await;
        assert_eq!(keep.as_deref(), Some("drop"), "{why}");

        // ... until it is held, from its page.
        b.goto(&format!("{url}#/backup/{older}")).await.unwrap();
        until_text(&b, "#hold", "none").await;
        click(&b, "#hold-button").await;
        let m = until_text(&b, "#message", "refused").await;
        assert!(m.contains("400") && m.contains("needs a reason"), "{m}");
        b.find(Locator::Css("#hold-reason"))
            .await
            .unwrap()
            .send_keys("case 7")
            .await
            .unwrap();
        click(&b, "#hold-button").await;
        until_text(&b, "#message", "held by alice").await;
        let held = until_text(&b, "#hold", "case 7").await;
        assert!(held.contains("console:alice"), "{held}");
        b.goto(&format!("{url}#/retention")).await.unwrap();
        let why = until_text(&b, &format!("{plan} .why"), "legal hold: case 7").await;
        let keep = attr(&b, &plan, "data-keep").await;
        assert_eq!(keep.as_deref(), Some("keep"), "{why}");
        b.goto(&format!("{url}#/backup/{older}")).await.unwrap();
        until_text(&b, "#hold", "case 7").await;
        b.find(Locator::Css("#hold-reason"))
            .await
            .unwrap()
            .send_keys("case 7 closed")
            .await
            .unwrap();
        click(&b, "#release-button").await;
        until_text(&b, "#message", "released by alice").await;
        until_text(&b, "#hold", "none").await;

        // Its health, read from its networks.
        click(&b, "#check-health").await;
        let health = until_text(&b, "#health-report [data-health]", "healthy").await;
        assert_eq!(health, "healthy");
        until_text(&b, "#health-report tr[data-network=\"local\"]", "ok").await;

        // The schedules: the one added, its next slot at 03:00 UTC.
        b.goto(&format!("{url}#/schedules")).await.unwrap();
        let next = until_text(
            &b,
            "#schedules tr[data-dataset=\"docs\"] .next",
            "T03:00:00",
        )
        .await;
        assert!(next.ends_with('Z'), "{next}");
        let s = text_of(&b, "#schedules tr[data-dataset=\"docs\"]").await;
        assert!(s.contains("added by"), "{s}");
        text_of(
            &b,
            &format!("#schedules tr[data-dataset=\"docs\"] a[data-backup=\"{newer}\"]"),
        )
        .await;

        // The ledger: checkpoints, and the witness cosigning them.
        b.goto(&format!("{url}#/ledger")).await.unwrap();
        text_of(&b, "#checkpoints").await;
        let w = until_text(&b, "#witness .signers", "cairn.test/witness").await;
        assert!(
            w.contains("cairn.test/ledger"),
            "the log's signature and the witness's: {w}"
        );

        // A dead letter, sent again: verify gives up on it once more.
        std::thread::scope(|t| {
            t.spawn(|| {
                publish_raw(
                    &env,
                    &format!("{}.evt.backup.ingested.bad", env.prefix),
                    b"\x92\xa3not an event",
                )
            })
            .join()
            .unwrap()
        });
        until_text(&b, "#dead-letters", "malformed").await;
        // Every stage that reads the subject gives up on it: wait until
        // they all have, so that only the retry can add more.
        let mut before = (dead_letters(&env), std::time::Instant::now());
        while before.1.elapsed() < Duration::from_secs(4) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let n = dead_letters(&env);
            if n != before.0 {
                before = (n, std::time::Instant::now());
            }
        }
        let before = before.0;
        let seq: i64 = b
            .find(Locator::Css("#dead-letters tr[data-seq]"))
            .await
            .unwrap()
            .attr("data-seq")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        click(&b, &format!("tr[data-seq=\"{seq}\"] .retry")).await;
        let m = until_text(&b, "#message", "sent again by alice").await;
        assert!(m.contains("evt.backup.ingested.bad"), "{m}");
        until_text(
            &b,
            &format!("tr[data-seq=\"{seq}\"] .retried"),
            "retried by alice",
        )
        .await;
        wait_for(60, "the retried message dead-lettered again", || {
            (dead_letters(&env) > before).then_some(())
        });
        screenshot(&b, &env, "console-ledger").await;
        b.close().await.unwrap();
    });
    // No secret reaches a page: every answer the pages read, searched for
    // the passphrase and the key files' paths.
    for path in [
        "/".to_string(),
        "/app.js".to_string(),
        "/api/backups".to_string(),
        format!("/api/backups/{older}"),
        format!("/api/backups/{older}/health"),
        format!("/api/backups/{older}/evidence"),
        "/api/networks".to_string(),
        "/api/ledger".to_string(),
        "/api/deadletters".to_string(),
        "/api/schedules".to_string(),
        "/api/retention".to_string(),
        "/api/compliance".to_string(),
        "/api/trends".to_string(),
        "/api/datasets".to_string(),
    ] {
        let (status, _, body) = http(port, "GET", &path);
        assert_eq!(status, 200, "{path}: {body}");
        for secret in [
            PASSPHRASE,
            log_key.to_str().unwrap(),
            witness_key.to_str().unwrap(),
        ] {
            assert!(!body.contains(secret), "{path} shows {secret:?}");
        }
    }
    // Every action ledgered once, by alice, with what it was.
    let actions = psql(
        &env.db,
        "SELECT string_agg(CASE WHEN position('alice'::bytea IN entry) > 0 THEN 'alice' ELSE '?' END, ',') FROM ledger_entries WHERE kind = 'operator.action'",
    );
    assert_eq!(
        actions.trim(),
        "alice,alice,alice,alice",
        "drill, hold, release, retry"
    );
    let drilled = psql(
        &env.db,
        "SELECT count(*) FROM drills WHERE ok AND drilled_by = 'console:alice'",
    );
    assert!(drilled.trim().parse::<i64>().unwrap() >= 1, "{drilled}");
    let held = psql(&env.db, "SELECT count(*) FROM holds");
    assert_eq!(held.trim(), "0", "released");
}

fn dead_letters(env: &Env) -> i64 {
    psql(
        &env.db,
        "SELECT count(*) FROM ledger_entries WHERE kind = 'event.deadlettered'",
    )
    .trim()
    .parse()
    .unwrap()
}
