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

/// `chromedriver` on a free port, stopped when dropped.
fn chromedriver(dir: &std::path::Path) -> (Guarded, u16) {
    let port = free_port();
    let log = std::fs::File::create(dir.join("chromedriver.log")).unwrap();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian: chromium-driver; scripts/test.sh installs it)");
    let g = Guarded(Some(child));
    wait_for(30, "chromedriver", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (g, port)
}

async fn browser(driver: u16) -> Client {
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
        .connect(&format!("http://127.0.0.1:{driver}"))
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
        assert!(
            std::time::Instant::now() < deadline,
            "{css} never read {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

#[test]
fn console_follows_a_backup_live_and_guards_actions() {
    let mut env = Env::new();
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
    env.start_all();
    // A first backup, so the list has something before the page opens.
    let src = env.source_dir("src");
    text_file(&src.join("a.txt"), 1 << 20, 1);
    let first = env.backup(&["--dataset", "docs", src.to_str().unwrap()]);
    let first = first["backup_id"].as_str().unwrap().to_string();

    let port = free_port();
    let mut c = env.cmd();
    let log = std::fs::File::create(env.logs_dir().join("console.log")).unwrap();
    c.args(["console", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null());
    let _console = Guarded(Some(c.spawn().unwrap()));
    wait_for(60, "the console", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
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

    let port = free_port();
    let mut c = env.cmd();
    c.args(["console", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _console = Guarded(Some(c.spawn().unwrap()));
    wait_for(60, "the console", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
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
    assert_eq!(operator_actions(&env), 0);
}
