//! Compliance profiles against real servers (NATS, PostgreSQL, a local
//! directory, and moto's S3 with Object Lock): requests a profile cannot
//! satisfy are refused before anything moves, every rule is judged per
//! backup with ledger evidence an auditor checks offline, time-bound rules
//! follow the clock they are given, and retention rules outrank forget,
//! the retention policy and shred.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_tests::*;
use std::process::Output;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The findings of the document's one backup, by rule id.
fn verdicts(doc: &serde_json::Value) -> Vec<(String, String)> {
    doc["backups"][0]["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings: {doc}"))
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn finding<'a>(doc: &'a serde_json::Value, rule: &str) -> &'a serde_json::Value {
    doc["backups"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == rule)
        .unwrap_or_else(|| panic!("no finding of {rule}: {doc}"))
}

fn failing(doc: &serde_json::Value) -> Vec<String> {
    verdicts(doc)
        .into_iter()
        .filter(|(_, v)| v == "fail")
        .map(|(r, _)| r)
        .collect()
}

/// `compliance check ARGS --json`: the document and the exit code.
fn check(env: &Env, args: &[&str]) -> (serde_json::Value, Option<i32>) {
    let mut a = vec!["compliance", "check", "--json"];
    a.extend_from_slice(args);
    let o = env.run(&a);
    let doc = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("compliance check {args:?}: {e}: {}", stderr(&o)));
    (doc, o.status.code())
}

/// Headless Chromium's rendering of `html` at A4's proportions.
fn render(html: &std::path::Path, png: &std::path::Path) {
    let profile = tempfile::tempdir().unwrap();
    let o = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1240,1754")
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("chromium (scripts/test.sh installs it)");
    assert!(
        png.exists(),
        "chromium: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A PNG's width and height (its IHDR chunk).
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let n = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
    (n(16), n(20))
}

/// Backs up a new directory `dataset` holding one random file, as
/// `dataset` with tag `tag`: the directory and the completed backup's id.
fn back_up_tagged(env: &Env, dataset: &str, tag: &str) -> (std::path::PathBuf, String) {
    let src = env.source_dir(dataset);
    random_file(&src.join("file.bin"), 300_000);
    let b = env.backup(&[src.to_str().unwrap(), "--dataset", dataset, "--tag", tag]);
    (src, b["backup_id"].as_str().unwrap().to_string())
}

/// How many `kind` entries the ledger holds for backup `id`.
fn entries_of(env: &Env, kind: &str, id: &str) -> u64 {
    psql(
        &env.db,
        &format!(
            "select count(*) from ledger_entries where kind = '{kind}' and backup_id = '{id}'"
        ),
    )
    .parse()
    .unwrap()
}

/// A deployment with `local` (EU) and `vault` (moto, Object Lock in
/// compliance mode, EU) and a US network `offshore`; dataset `books` held to
/// SOX, keeping only its newest backup by policy; a checkpoint signing key.
fn deployment(dir: &std::path::Path, moto: &MotoServer) -> (Env, String) {
    deployment_with(dir, moto, "")
}

fn deployment_with(dir: &std::path::Path, moto: &MotoServer, more: &str) -> (Env, String) {
    let key = dir.join("ledger.key");
    let mut o = Options {
        extra_networks: vec![],
        env: vec![
            ("CAIRN_VAULT_SECRET_ACCESS_KEY".into(), "test".into()),
            ("CAIRN_GOV_SECRET_ACCESS_KEY".into(), "test".into()),
            (
                "CAIRN_AUDIT__SIGNING_KEY_FILE".into(),
                key.display().to_string(),
            ),
        ],
        ..Options::default()
    };
    o.extra_toml = format!(
        "\n[[networks]]\nname = \"vault\"\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"vault\"\naccess_key_id = \"test\"\nobject_lock_days = 30\njurisdiction = \"eu\"\n\
         \n[[networks]]\nname = \"offshore\"\nkind = \"fs\"\njurisdiction = \"us\"\n\
         \n[datasets.books]\nnetworks = [\"local\", \"vault\"]\nprofiles = [\"sox\"]\n\
         \n[datasets.people]\nnetworks = [\"local\"]\n\
         \n[retention.policies.books]\nkeep_last = 1\n{more}",
        moto.endpoint
    );
    let env = Env::with(o);
    // `local` is in the EU too.
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text.replacen(
        "name = \"local\"\nkind = \"fs\"\n",
        "name = \"local\"\nkind = \"fs\"\njurisdiction = \"EU\"\n",
        1,
    );
    std::fs::write(&env.config, text).unwrap();
    let vkey = env.ok(&[
        "audit",
        "keygen",
        "--origin",
        "cairn.test/compliance",
        "--key-file",
        key.to_str().unwrap(),
    ]);
    (env, vkey.trim().to_string())
}

/// SOX end to end: a backup that could not satisfy the profile is refused
/// naming the rule, with nothing read or stored; one that can is judged
/// rule by rule, failing the drill and audit-trail rules until a drill and
/// a signed checkpoint exist; the drill rule fails again once the clock
/// passes its window; the document's proofs check offline and a tampered
/// one does not; the retention rule outranks forget and the policy.
#[test]
fn sox_rules_are_judged_with_evidence_and_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let moto = MotoServer::start(dir.path());
    moto.create_bucket("vault", true);
    let (mut env, vkey) = deployment(dir.path(), &moto);
    env.start_all();
    let src = env.source_dir("ledger");
    random_file(&src.join("q3.bin"), 1 << 20);
    let src = src.to_str().unwrap();

    // To `local` alone: no immutable copy, refused by name before anything
    // is read; nothing reaches the network.
    let before = env.data_objects("local").len();
    let o = env.run(&[
        "backup",
        src,
        "--dataset",
        "books",
        "--network",
        "local",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let refused: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(refused["status"], "failed", "{refused}");
    let reason = refused["reasons"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("compliance profile sox, rule sox-immutable")
            && reason.contains("SOX §802")
            && reason.contains("(local)")
            && reason.contains("nothing was read or stored"),
        "{refused}"
    );
    assert_eq!(refused["bytes_read"], 0, "{refused}");
    assert_eq!(env.data_objects("local").len(), before);
    // One copy to count as completed is not enough either.
    let o = env.run(&[
        "backup",
        src,
        "--dataset",
        "books",
        "--min-copies",
        "1",
        "--json",
    ]);
    let refused: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        refused["reasons"][0]
            .as_str()
            .unwrap_or_default()
            .contains("rule sox-copies"),
        "{refused}"
    );

    // Two copies, one under Object Lock: completed.
    let first = env.backup(&[src, "--dataset", "books"]);
    let first = first["backup_id"].as_str().unwrap().to_string();
    let (doc, code) = check(&env, &[&first]);
    assert_eq!(code, Some(5), "a failing rule exits 5: {doc}");
    assert_eq!(doc["backups"][0]["profiles"], serde_json::json!(["sox"]));
    assert_eq!(failing(&doc), ["sox-drill", "sox-audit-trail"], "{doc}");
    let imm = finding(&doc, "sox-immutable");
    assert!(
        imm["detail"]
            .as_str()
            .unwrap()
            .contains("vault (S3 Object Lock, compliance mode, 30 days"),
        "{imm}"
    );
    let copies = finding(&doc, "sox-copies");
    assert!(
        copies["detail"]
            .as_str()
            .unwrap()
            .contains("(2 of 2 needed)"),
        "{copies}"
    );
    assert_eq!(copies["evidence"][0]["kind"], "backup.completed");
    // (The service signs a checkpoint as it starts, before this backup.)
    assert!(
        finding(&doc, "sox-audit-trail")["detail"]
            .as_str()
            .unwrap()
            .contains("run `cairn audit checkpoint`")
            || finding(&doc, "sox-audit-trail")["detail"]
                .as_str()
                .unwrap()
                .contains("(`cairn audit checkpoint`"),
        "{doc}"
    );

    // A drill and a signed checkpoint: every rule passes, each with evidence.
    env.ok(&["drill", "--backup", &first]);
    settle(&env.db);
    env.ok(&["audit", "checkpoint"]);
    let out = env.path().join("sox.json");
    let (doc, code) = check(&env, &[&first, "--out", out.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{doc}");
    assert!(failing(&doc).is_empty(), "{doc}");
    assert_eq!(doc["tally"]["passed"], 6, "{doc}");
    let drill = finding(&doc, "sox-drill");
    assert_eq!(drill["evidence"][0]["kind"], "drill.completed", "{drill}");
    assert!(doc["unproven"].as_array().unwrap().is_empty(), "{doc}");
    // Every cited entry is in the document with its proof.
    let cited: Vec<u64> = doc["backups"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["evidence"].as_array().unwrap().clone())
        .filter(|c| c["type"] == "entry")
        .map(|c| c["seq"].as_u64().unwrap())
        .collect();
    let proven: Vec<u64> = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(
        cited.iter().all(|s| proven.contains(s)),
        "{cited:?} {proven:?}"
    );

    // Checked offline with the log's public key alone.
    let ok = env.run_with(
        env.offline_with_only("local"),
        &[
            "audit",
            "check-proof",
            out.to_str().unwrap(),
            "--key",
            &vkey,
        ],
        None,
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    let said = String::from_utf8_lossy(&ok.stdout);
    assert!(
        said.contains("6 rules passed, 0 failed")
            && said.contains(&format!(
                "all {} cited entries are in log cairn.test/compliance",
                proven.len()
            )),
        "{said}"
    );
    // And by an auditor's own script, from the published formats alone.
    let auditor = |doc: &std::path::Path| {
        std::process::Command::new("python3")
            .arg(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../scripts/audit/check-compliance.py"),
            )
            .arg(doc)
            .arg(&vkey)
            .output()
            .unwrap()
    };
    let ok = auditor(&out);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains(&format!(
            "6 passed, 0 failed, 0 not applicable; {} cited entries proven",
            proven.len()
        )),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    // A finding that cites an entry as what it is not, a forged verdict,
    // or an altered entry: refused, naming what is wrong.
    let text = std::fs::read_to_string(&out).unwrap();
    let mut forged: serde_json::Value = serde_json::from_str(&text).unwrap();
    let f = forged["backups"][0]["findings"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|f| f["rule"] == "sox-copies")
        .unwrap();
    f["evidence"][0]["kind"] = "drill.completed".into();
    let bad = env.path().join("forged.json");
    std::fs::write(&bad, forged.to_string()).unwrap();
    let o = env.run(&[
        "audit",
        "check-proof",
        bad.to_str().unwrap(),
        "--key",
        &vkey,
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("sox-copies cites it as drill.completed; it is backup.completed"),
        "{}",
        stderr(&o)
    );
    let o = auditor(&bad);
    assert!(
        o.status.code() == Some(1)
            && stderr(&o).contains("as drill.completed; it is backup.completed"),
        "{}",
        stderr(&o)
    );
    let mut forged: serde_json::Value = serde_json::from_str(&text).unwrap();
    forged["tally"]["failed"] = 1.into();
    forged["tally"]["passed"] = 5.into();
    std::fs::write(&bad, forged.to_string()).unwrap();
    let o = env.run(&[
        "audit",
        "check-proof",
        bad.to_str().unwrap(),
        "--key",
        &vkey,
    ]);
    assert!(stderr(&o).contains("tally"), "{}", stderr(&o));
    assert!(stderr(&auditor(&bad)).contains("tally"));
    let mut forged: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entry = forged["entries"][0]["entry"].as_str().unwrap().to_string();
    let mut bytes = B64.decode(&entry).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    forged["entries"][0]["entry"] = B64.encode(&bytes).into();
    std::fs::write(&bad, forged.to_string()).unwrap();
    let o = env.run(&[
        "audit",
        "check-proof",
        bad.to_str().unwrap(),
        "--key",
        &vkey,
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("not in the log"),
        "{}",
        stderr(&o)
    );
    let o = auditor(&bad);
    assert!(
        o.status.code() == Some(1) && stderr(&o).contains("is not in the log at this place"),
        "{}",
        stderr(&o)
    );
    // A checkpoint whose signature was altered is refused too.
    let mut forged: serde_json::Value = serde_json::from_str(&text).unwrap();
    let note = forged["checkpoint"].as_str().unwrap().to_string();
    let (body, sig) = note.split_once("\n\n").unwrap();
    let (who, sig_b64) = sig.trim().rsplit_once(' ').unwrap();
    let mut raw = B64.decode(sig_b64).unwrap();
    raw[10] ^= 1;
    forged["checkpoint"] = format!("{body}\n\n{who} {}\n", B64.encode(&raw)).into();
    std::fs::write(&bad, forged.to_string()).unwrap();
    let o = auditor(&bad);
    assert!(
        o.status.code() == Some(1)
            && stderr(&o).contains("signature by cairn.test/compliance is not valid"),
        "{}",
        stderr(&o)
    );
    let o = env.run(&[
        "audit",
        "check-proof",
        bad.to_str().unwrap(),
        "--key",
        &vkey,
    ]);
    assert!(!o.status.success(), "{}", stderr(&o));

    // The report for the auditor: HTML that prints well, its PDF, and the
    // evidence bundle beside it, which checks offline.
    let html = env.path().join("sox-q4.html");
    let pdf = env.path().join("sox-q4.pdf");
    let today = chrono::Utc::now().date_naive().to_string();
    let written = env.json(&[
        "compliance",
        "report",
        "--profile",
        "sox",
        "--from",
        "2026-01-01",
        "--to",
        &today,
        "--out",
        html.to_str().unwrap(),
        "--pdf",
        pdf.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(written["tally"]["failed"], 0, "{written}");
    let page = std::fs::read_to_string(&html).unwrap();
    for want in [
        "Compliance report: sox",
        "No finding failed",
        "SOX §802 (18 U.S.C. §1519)",
        first.as_str(),
        "sox-q4.evidence.json",
        "cairn.test/compliance",
    ] {
        assert!(page.contains(want), "the report lacks {want:?}");
    }
    let printed = std::fs::read(&pdf).unwrap();
    assert!(
        printed.starts_with(b"%PDF") && printed.len() > 10_000,
        "{} bytes",
        printed.len()
    );
    let bundle = env.path().join("sox-q4.evidence.json");
    let ok = env.run(&[
        "audit",
        "check-proof",
        bundle.to_str().unwrap(),
        "--key",
        &vkey,
    ]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    // Rendered, as a reader sees it; the committed example is such a
    // rendering (CAIRN_UPDATE_EXAMPLES=1 writes it again).
    let png = env.path().join("sox-q4.png");
    render(&html, &png);
    let (w, h) = png_size(&std::fs::read(&png).unwrap());
    assert_eq!((w, h), (1240, 1754));
    assert!(
        std::fs::metadata(&png).unwrap().len() > 50_000,
        "a blank page?"
    );
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/examples/compliance-report-sox.png");
    if std::env::var_os("CAIRN_UPDATE_EXAMPLES").is_some() {
        std::fs::create_dir_all(example.parent().unwrap()).unwrap();
        std::fs::copy(&png, &example).unwrap();
    }
    let committed = std::fs::read(&example).expect("docs/examples/compliance-report-sox.png");
    assert_eq!(
        png_size(&committed),
        (w, h),
        "the committed example is a rendering of this report"
    );

    // The clock given: 91 days on, the drill is too old.
    let later = (chrono::Utc::now() + chrono::Duration::days(91))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (doc, code) = check(&env, &[&first, "--as-of", &later]);
    assert_eq!(code, Some(5));
    assert_eq!(failing(&doc), ["sox-drill"], "{doc}");
    assert!(
        finding(&doc, "sox-drill")["detail"]
            .as_str()
            .unwrap()
            .contains("91 days before"),
        "{doc}"
    );
    let o = env.run(&["compliance", "check", &first, "--as-of", "next week"]);
    assert!(
        !o.status.success() && stderr(&o).contains("--as-of \"next week\""),
        "{}",
        stderr(&o)
    );

    // The text form names each rule, its control and its verdict.
    let o = env.run(&["compliance", "check", "--dataset", "books"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("pass  sox/sox-immutable")
            && text.contains("SOX §802 (18 U.S.C. §1519)")
            && text.contains("6 passed, 0 failed"),
        "{text}"
    );

    // Retention: the policy keeps only the newest, the SOX rule keeps the
    // first all the same; forget is refused by name and deletes nothing.
    let second = env.backup(&[src, "--dataset", "books"]);
    let second = second["backup_id"].as_str().unwrap();
    let plan = env.json(&["retention", "plan", "--dataset", "books", "--json"]);
    let decisions = plan["datasets"][0]["decisions"].as_array().unwrap();
    let kept = decisions.iter().find(|d| d["backup_id"] == first).unwrap();
    assert_eq!(kept["keep"], true, "{plan}");
    assert!(
        kept["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("compliance sox/sox-retention: kept until "),
        "{plan}"
    );
    assert!(decisions.iter().any(|d| d["backup_id"] == second));
    let o = env.run(&["forget", &first]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("sox/sox-retention") && stderr(&o).contains("nothing was deleted"),
        "{}",
        stderr(&o)
    );
    let listed = env.json(&["list", "--dataset", "books", "--json"]);
    assert!(listed.to_string().contains(&first), "{listed}");
    let o = env.run(&["shred", "--dataset", "books", "--confirm", "books"]);
    assert!(
        !o.status.success() && stderr(&o).contains("a compliance rule keeps"),
        "{}",
        stderr(&o)
    );
}

/// GDPR and ISO 27001 through tags and `--profile`: a request naming a US
/// network is refused by the jurisdiction rule; erasure is possible until a
/// legal hold blocks it; key custody passes only once the master key is
/// split; bad profile names are refused by name.
#[test]
fn gdpr_jurisdiction_erasure_and_key_custody() {
    let dir = tempfile::tempdir().unwrap();
    let moto = MotoServer::start(dir.path());
    moto.create_bucket("vault", true);
    let (mut env, _) = deployment(dir.path(), &moto);
    env.start_all();
    let src = env.source_dir("people");
    random_file(&src.join("crm.bin"), 300_000);
    let src = src.to_str().unwrap();

    let o = env.run(&[
        "backup",
        src,
        "--dataset",
        "people",
        "--tag",
        "gdpr",
        "--network",
        "local",
        "--network",
        "offshore",
        "--json",
    ]);
    let refused: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let reason = refused["reasons"][0].as_str().unwrap_or_default();
    assert!(
        reason.contains("rule gdpr-jurisdiction")
            && reason.contains("offshore (us)")
            && !reason.contains("local"),
        "{refused}"
    );
    assert!(env.data_objects("offshore").is_empty());

    let id = env.backup(&[src, "--dataset", "people", "--tag", "gdpr"]);
    let id = id["backup_id"].as_str().unwrap().to_string();
    let (doc, _) = check(&env, &[&id]);
    assert_eq!(doc["backups"][0]["profiles"], serde_json::json!(["gdpr"]));
    assert_eq!(
        finding(&doc, "gdpr-jurisdiction")["verdict"],
        "pass",
        "{doc}"
    );
    assert!(
        finding(&doc, "gdpr-jurisdiction")["detail"]
            .as_str()
            .unwrap()
            .contains("local (eu)"),
        "{doc}"
    );
    let erasure = finding(&doc, "gdpr-erasure");
    assert_eq!(erasure["verdict"], "pass", "{erasure}");
    assert!(erasure["detail"]
        .as_str()
        .unwrap()
        .contains("cairn shred people"));
    env.ok(&["hold", &id, "--reason", "case 9"]);
    let (doc, code) = check(&env, &[&id]);
    assert_eq!(code, Some(5));
    let erasure = finding(&doc, "gdpr-erasure");
    assert!(
        erasure["verdict"] == "fail" && erasure["detail"].as_str().unwrap().contains("legal hold"),
        "{erasure}"
    );

    // ISO 27001 asked for by name: key custody fails until a split.
    let (doc, _) = check(&env, &[&id, "--profile", "iso27001"]);
    assert_eq!(
        doc["backups"][0]["profiles"],
        serde_json::json!(["gdpr", "iso27001"])
    );
    let custody = finding(&doc, "iso-key-management");
    assert!(
        custody["verdict"] == "fail" && custody["detail"].as_str().unwrap().contains("never split"),
        "{custody}"
    );
    let shares = env.path().join("shares");
    env.ok(&[
        "key",
        "split",
        "--threshold",
        "2",
        "--shares",
        "3",
        "--out",
        shares.to_str().unwrap(),
    ]);
    let (doc, _) = check(&env, &[&id, "--profile", "iso27001"]);
    let custody = finding(&doc, "iso-key-management");
    assert_eq!(custody["verdict"], "pass", "{custody}");
    assert_eq!(custody["evidence"][0]["kind"], "key.split");
    // Backups outside every profile are left out of --all; a dataset none
    // of whose backups is held to one is refused by name.
    let plain = env.backup(&[src, "--dataset", "misc"]);
    let (doc, _) = check(&env, &["--all"]);
    assert!(!doc
        .to_string()
        .contains(plain["backup_id"].as_str().unwrap()));
    let o = env.run(&["compliance", "check", "--dataset", "misc"]);
    assert!(
        stderr(&o).contains("no backup of dataset \"misc\""),
        "{}",
        stderr(&o)
    );

    let o = env.run(&["compliance", "check", &id, "--profile", "soxx"]);
    assert!(
        !o.status.success() && stderr(&o).contains("unknown compliance profile \"soxx\""),
        "{}",
        stderr(&o)
    );
    let profiles = env.ok(&["compliance", "profiles"]);
    assert!(
        profiles.contains("gdpr-erasure") && profiles.contains("Art. 17"),
        "{profiles}"
    );

    // A dataset backed up to the object-locked vault as well: its key
    // never goes there (a lock would keep it past a shred), so the shred
    // destroys every copy of it and nothing of the dataset opens again.
    let crm = env.backup(&[
        src,
        "--dataset",
        "crm",
        "--tag",
        "gdpr",
        "--network",
        "local",
        "--network",
        "vault",
    ]);
    let crm = crm["backup_id"].as_str().unwrap().to_string();
    let listed = moto.curl("GET", "vault", "?list-type=2&prefix=datasets/", &[]);
    assert!(
        !listed.contains("<Key>"),
        "a dataset key on the vault: {listed}"
    );
    let (doc, _) = check(&env, &[&crm]);
    assert_eq!(finding(&doc, "gdpr-erasure")["verdict"], "pass", "{doc}");
    let shredded = env.json(&["shred", "--dataset", "crm", "--confirm", "crm", "--json"]);
    assert_eq!(
        shredded["keys_kept_on"],
        serde_json::json!(null),
        "{shredded}"
    );
    assert!(
        shredded["ciphertext_kept_on"].to_string().contains("vault"),
        "{shredded}"
    );
    let out = env.path().join("crm-out");
    let o = env.run_with(
        env.offline_with_only("vault"),
        &["restore", &crm, "--to", out.to_str().unwrap()],
        None,
    );
    // Its manifest is hidden there behind a delete marker; the locked
    // version would open with no key.
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not found on any network (vault)"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists(), "nothing was written");
}

/// S3 Object Lock follows a backup's retention: a backup a rule keeps 400
/// days has every object locked that long on each locking network, the
/// chunks it shares with an older backup (locked for the network's 30 days)
/// included, and `compliance check` says so. A legal hold puts the
/// storage's own legal hold on every object, which not even a governance
/// bypass gets past, and `release` lifts it. Governance mode is tested, not
/// read from config: a privileged delete gets past it, never past
/// compliance mode.
#[test]
fn object_lock_follows_retention_and_legal_hold() {
    let dir = tempfile::tempdir().unwrap();
    let moto = MotoServer::start(dir.path());
    moto.create_bucket("vault", true);
    moto.create_bucket("gov", true);
    let more = format!(
        "\n[[networks]]\nname = \"gov\"\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"gov\"\naccess_key_id = \"test\"\nobject_lock_days = 30\nobject_lock_mode = \"governance\"\njurisdiction = \"eu\"\n\
         \n[datasets.records]\nnetworks = [\"vault\", \"gov\"]\n\
         \n[compliance.profiles.keep]\nrules = [\n  {{ id = \"keep-400\", control = \"records policy 7.1\", kind = \"min_retention\", days = 400 }},\n  {{ id = \"keep-locked\", control = \"records policy 7.2\", kind = \"immutable_copy\", governance_ok = true }},\n]\n",
        moto.endpoint
    );
    let (mut env, _) = deployment_with(dir.path(), &moto, &more);
    env.start_all();
    let src = env.source_dir("records");
    random_file(&src.join("ledger.bin"), 1 << 20);
    let src = src.to_str().unwrap();

    let s3 = |method: &str, bucket: &str, path: &str, headers: &[&str]| {
        moto.curl(method, bucket, path, headers)
    };
    let days_left = |bucket: &str, path: &str| -> i64 {
        let head = s3("HEAD", bucket, path, &[]);
        let until = header(&head, "x-amz-object-lock-retain-until-date")
            .unwrap_or_else(|| panic!("{bucket}/{path} not locked: {head}"));
        let t = chrono::DateTime::parse_from_rfc3339(&until)
            .or_else(|_| chrono::DateTime::parse_from_rfc2822(&until))
            .unwrap_or_else(|e| panic!("{until}: {e}"));
        (t.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_days()
    };
    let legal_hold = |bucket: &str, path: &str| -> Option<String> {
        header(
            &s3("HEAD", bucket, path, &[]),
            "x-amz-object-lock-legal-hold",
        )
    };
    // The data objects a bucket holds (packs, and chunks stored alone).
    let data_objects = |bucket: &str| -> Vec<String> {
        let mut keys = Vec::new();
        for prefix in ["packs/", "chunks/"] {
            let list = s3("GET", bucket, &format!("?list-type=2&prefix={prefix}"), &[]);
            keys.extend(
                list.split("<Key>")
                    .skip(1)
                    .filter_map(|k| k.split("</Key>").next())
                    .map(str::to_string),
            );
        }
        keys
    };
    let manifest = |id: &str| format!("backups/{id}/manifest");

    // A backup no rule keeps: the networks' own 30 days.
    let plain = env.backup(&[src, "--dataset", "records"]);
    let plain = plain["backup_id"].as_str().unwrap().to_string();
    let shared = data_objects("vault");
    assert!(!shared.is_empty());
    for bucket in ["vault", "gov"] {
        assert!((29..=30).contains(&days_left(bucket, &manifest(&plain))));
        assert!((29..=30).contains(&days_left(bucket, &shared[0])));
    }

    // The same data, tagged `keep`: 400 days, its shared chunks included.
    let kept = env.backup(&[src, "--dataset", "records", "--tag", "keep"]);
    let kept = kept["backup_id"].as_str().unwrap().to_string();
    assert_eq!(data_objects("vault"), shared, "the data was deduplicated");
    for bucket in ["vault", "gov"] {
        assert!(days_left(bucket, &manifest(&kept)) >= 399, "{bucket}");
        for object in &shared {
            assert!(days_left(bucket, object) >= 399, "{bucket}/{object}");
        }
        // The older backup's own objects keep their 30 days.
        assert!(days_left(bucket, &manifest(&plain)) <= 30);
    }
    let head = s3("HEAD", "vault", &manifest(&kept), &[]);
    assert_eq!(
        header(&head, "x-amz-object-lock-mode").as_deref(),
        Some("COMPLIANCE")
    );
    let head = s3("HEAD", "gov", &manifest(&kept), &[]);
    assert_eq!(
        header(&head, "x-amz-object-lock-mode").as_deref(),
        Some("GOVERNANCE")
    );
    let (doc, code) = check(&env, &[&kept]);
    assert_eq!(doc["backups"][0]["profiles"], serde_json::json!(["keep"]));
    let locked = finding(&doc, "keep-locked");
    let until = (chrono::Utc::now() + chrono::Duration::days(400))
        .date_naive()
        .to_string();
    assert!(
        code == Some(0)
            && locked["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("every object locked until {until}")),
        "{doc}"
    );

    // A legal hold: on every object of the backup, on both networks.
    let held = env.json(&["hold", &kept, "--reason", "case 12", "--json"]);
    for r in held["locked"].as_array().unwrap() {
        assert_eq!(r["failed"], 0, "{held}");
        assert!(r["objects"].as_u64().unwrap() >= 4, "{held}");
    }
    assert_eq!(held["locked"].as_array().unwrap().len(), 2, "{held}");
    for bucket in ["vault", "gov"] {
        assert_eq!(legal_hold(bucket, &manifest(&kept)).as_deref(), Some("ON"));
        assert_eq!(legal_hold(bucket, &shared[0]).as_deref(), Some("ON"));
    }
    let (doc, _) = check(&env, &[&kept]);
    assert!(
        finding(&doc, "keep-locked")["detail"]
            .as_str()
            .unwrap()
            .contains("under legal hold"),
        "{doc}"
    );
    let version = |bucket: &str, path: &str| -> String {
        let v = s3("GET", bucket, &format!("?versions&prefix={path}"), &[]);
        v.split("<VersionId>")
            .nth(1)
            .and_then(|v| v.split("</VersionId>").next())
            .unwrap_or_else(|| panic!("no version of {path}: {v}"))
            .to_string()
    };
    let bypass = "x-amz-bypass-governance-retention: true";
    let gov_manifest = version("gov", &manifest(&kept));
    let del = s3(
        "DELETE",
        "gov",
        &format!("{}?versionId={gov_manifest}", manifest(&kept)),
        &[bypass],
    );
    assert!(
        del.contains("403"),
        "a legal hold outranks a governance bypass: {del}"
    );

    // Released: the storage's hold is lifted too; the lock stays.
    let released = env.json(&["release", &kept, "--reason", "case closed", "--json"]);
    assert_eq!(released["locked"][0]["failed"], 0, "{released}");
    for bucket in ["vault", "gov"] {
        assert_eq!(legal_hold(bucket, &manifest(&kept)).as_deref(), Some("OFF"));
        assert!(days_left(bucket, &manifest(&kept)) >= 399);
    }
    // Governance mode, as it behaves: refused without the bypass, allowed
    // with it (which is why SOX does not count it); compliance mode refuses
    // even a bypass.
    let del = s3(
        "DELETE",
        "gov",
        &format!("{}?versionId={gov_manifest}", manifest(&kept)),
        &[],
    );
    assert!(del.contains("403") && del.contains("AccessDenied"), "{del}");
    let vault_manifest = version("vault", &manifest(&kept));
    let del = s3(
        "DELETE",
        "vault",
        &format!("{}?versionId={vault_manifest}", manifest(&kept)),
        &[bypass],
    );
    assert!(del.contains("403"), "compliance mode has no bypass: {del}");
    let del = s3(
        "DELETE",
        "gov",
        &format!("{}?versionId={gov_manifest}", manifest(&kept)),
        &[bypass],
    );
    assert!(
        del.starts_with("HTTP/1.1 204"),
        "governance mode yields to a bypass: {del}"
    );
    let (doc, _) = check(&env, &[&kept, "--profile", "sox"]);
    let sox = finding(&doc, "sox-immutable");
    assert!(
        sox["verdict"] == "pass"
            && sox["detail"]
                .as_str()
                .unwrap()
                .contains("vault (S3 Object Lock, compliance mode")
            && !sox["detail"].as_str().unwrap().contains("gov ("),
        "{sox}"
    );
}

/// Migration to the archive a profile names: a backup on two regular
/// networks is copied to the object-locked archive, read back whole and
/// locked there, recorded, and only then taken off its regular networks. A
/// run killed (`kill -9`) mid-copy leaves it whole where it was; a run whose
/// migration the ledger does not record deletes nothing; the next run
/// finishes, and the backup restores from the archive alone. The collector
/// then frees its chunks on the networks it left.
#[test]
fn migration_to_an_archive_resumes_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let moto = MotoServer::start(dir.path());
    moto.create_bucket("vault", true);
    let more = "\n[datasets.minutes]\nnetworks = [\"local\", \"offshore\"]\n\
         \n[compliance.profiles.vaulted]\nrules = [\n  { id = \"to-vault\", control = \"records policy 9\", kind = \"immutable_copy\", archive = \"vault\", release_regular = true },\n  { id = \"keep\", control = \"records policy 9\", kind = \"min_retention\", days = 10 },\n]\n";
    let (mut env, _) = deployment_with(dir.path(), &moto, more);
    env.init();
    let _stages = env.serve(&["ingest", "encrypt", "store", "verify", "retention"]);
    let mut ledger = env.serve(&["ledger"]);
    let src = env.source_dir("minutes");
    // One chunk stored alone per file: enough objects to kill a copy halfway.
    for i in 0..120 {
        random_file(&src.join(format!("m{i:03}.bin")), 260 << 10);
    }
    let tree = snapshot(&src);
    let b = env.backup(&[
        src.to_str().unwrap(),
        "--dataset",
        "minutes",
        "--tag",
        "vaulted",
    ]);
    let id = b["backup_id"].as_str().unwrap().to_string();
    let manifest_on = |env: &Env, net: &str| {
        env.network_dir(net)
            .join(format!("backups/{id}/manifest"))
            .exists()
    };
    let on_vault = |path: &str| {
        moto.curl("HEAD", "vault", path, &[])
            .starts_with("HTTP/1.1 200")
    };
    let db = env.db.clone();
    let count = |sql: &str| -> u64 { psql(&db, sql).parse().unwrap() };
    let copies_on_vault = || count("select count(*) from chunk_copies where network = 'vault'");
    let logged = |kind: &str| {
        count(&format!(
            "select count(*) from ledger_entries where kind = '{kind}'"
        ))
    };
    let restored = |env: &Env, net: &str| {
        let r = env.restore_from_only(net, &id);
        assert_eq!(
            snapshot(&r.join("minutes")),
            tree,
            "restored from {net} alone"
        );
    };
    assert!(
        manifest_on(&env, "local")
            && manifest_on(&env, "offshore")
            && !on_vault(&format!("backups/{id}/manifest"))
    );
    let total = env.data_objects("local").len() as u64;
    assert!(total >= 120, "{total} data objects");

    // 1. Killed mid-copy: the backup is where it was, whole.
    let mut run = {
        let mut c = env.cmd();
        c.args(["compliance", "migrate", &id, "--json"]);
        Guarded::spawn(c)
    };
    wait_for(60, "the copy to the archive to begin", || {
        (copies_on_vault() >= 20).then_some(())
    });
    run.0.as_mut().unwrap().kill().unwrap();
    drop(run);
    let partial = copies_on_vault();
    assert!(
        partial < total,
        "killed halfway: {partial} of {total} objects copied"
    );
    assert_eq!((logged("backup.migrated"), logged("backup.left")), (0, 0));
    assert!(manifest_on(&env, "local") && manifest_on(&env, "offshore"));
    restored(&env, "local");

    // 2. The ledger away: the copy finishes, the migration is published but
    // not recorded, and nothing is deleted.
    env.worker(ledger).kill9();
    let o = env.run(&["compliance", "migrate", &id, "--timeout", "3", "--json"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["migrations"][0]["status"], "unrecorded", "{out}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("whole on their regular networks"));
    assert!(on_vault(&format!("backups/{id}/manifest")));
    assert!(manifest_on(&env, "local") && manifest_on(&env, "offshore"));

    // 3. The ledger back: the next run records it and only then leaves.
    ledger = env.serve(&["ledger"]);
    let _ = ledger;
    let done = env.json(&["compliance", "migrate", "--all", "--json"]);
    let m = &done["migrations"][0];
    assert_eq!(m["status"], "left", "{done}");
    assert_eq!(
        m["left"],
        serde_json::json!(["local", "offshore"]),
        "{done}"
    );
    wait_for(30, "the migration to be recorded", || {
        (logged("backup.left") == 1).then_some(())
    });
    assert_eq!(logged("backup.migrated"), 1);
    assert!(!manifest_on(&env, "local") && !manifest_on(&env, "offshore"));
    assert_eq!(copies_on_vault(), total, "every data object, once");
    restored(&env, "vault");
    // Locked there as long as the rule keeps it.
    let head = moto.curl("HEAD", "vault", &format!("backups/{id}/manifest"), &[]);
    assert_eq!(
        header(&head, "x-amz-object-lock-mode").as_deref(),
        Some("COMPLIANCE"),
        "{head}"
    );
    let listed = env.json(&["show", &id, "--json"]);
    assert_eq!(listed["networks"], serde_json::json!(["vault"]), "{listed}");
    let (doc, code) = check(&env, &[&id]);
    let imm = finding(&doc, "to-vault");
    let kinds: Vec<&str> = imm["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["kind"].as_str())
        .collect();
    assert!(
        code == Some(0)
            && imm["detail"]
                .as_str()
                .unwrap()
                .contains("vault (S3 Object Lock")
            && kinds.contains(&"backup.migrated")
            && kinds.contains(&"backup.left"),
        "{doc}"
    );
    // Again: nothing left to do.
    let again = env.json(&["compliance", "migrate", &id, "--json"]);
    assert_eq!(again["migrations"][0]["status"], "left");
    assert_eq!(again["migrations"][0]["copied"], 0);
    // The collector frees its chunks where it left.
    let gc = env.ok(&["gc", "--grace", "0s"]);
    assert!(
        env.data_objects("local").is_empty() && env.data_objects("offshore").is_empty(),
        "{gc}"
    );
    restored(&env, "vault");
}

/// The retention service migrates on its own (`[retention]
/// migrate_interval_secs`): a backup whose profile names an archive is
/// copied there and recorded without anyone asking, and one without
/// `release_regular` stays on its regular networks too.
#[test]
fn the_retention_service_migrates_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let moto = MotoServer::start(dir.path());
    moto.create_bucket("vault", true);
    let more = "\n[datasets.deeds]\nnetworks = [\"local\"]\n\
         \n[compliance.profiles.deeds]\nrules = [\n  { id = \"copy-to-vault\", control = \"deeds register §2\", kind = \"immutable_copy\", archive = \"vault\" },\n]\n";
    let (mut env, _) = deployment_with(dir.path(), &moto, more);
    env.set_env("CAIRN_RETENTION__MIGRATE_INTERVAL_SECS", "1");
    env.start_all();
    let (_, id) = back_up_tagged(&env, "deeds", "deeds");
    wait_for(60, "the service to migrate the backup", || {
        (entries_of(&env, "backup.migrated", &id) == 1).then_some(())
    });
    let head = moto.curl("HEAD", "vault", &format!("backups/{id}/manifest"), &[]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(env
        .network_dir("local")
        .join(format!("backups/{id}/manifest"))
        .exists());
    let show = env.json(&["show", &id, "--json"]);
    assert_eq!(
        show["networks"],
        serde_json::json!(["local", "vault"]),
        "{show}"
    );
    let (doc, code) = check(&env, &[&id]);
    assert_eq!(code, Some(0), "{doc}");
}

/// A held backup is copied to its archive and recorded there, but never
/// leaves its regular networks while the hold stands; released, the next
/// run lets it leave.
#[test]
fn a_held_backup_never_leaves_its_regular_networks() {
    let dir = tempfile::tempdir().unwrap();
    let moto = MotoServer::start(dir.path());
    moto.create_bucket("vault", true);
    let more = "\n[datasets.minutes]\nnetworks = [\"local\"]\n\
         \n[compliance.profiles.vaulted]\nrules = [\n  { id = \"to-vault\", control = \"records policy 9\", kind = \"immutable_copy\", archive = \"vault\", release_regular = true },\n]\n";
    let (mut env, _) = deployment_with(dir.path(), &moto, more);
    env.start_all();
    let (src, id) = back_up_tagged(&env, "minutes", "vaulted");
    let manifest = env
        .network_dir("local")
        .join(format!("backups/{id}/manifest"));
    env.ok(&["hold", &id, "--reason", "litigation 7"]);
    let o = env.run(&["compliance", "migrate", &id]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("under legal hold") && stderr(&o).contains("nothing was deleted"),
        "{}",
        stderr(&o)
    );
    assert!(manifest.exists(), "a held backup left its regular network");
    let on_vault = moto.curl("HEAD", "vault", &format!("backups/{id}/manifest"), &[]);
    assert!(on_vault.starts_with("HTTP/1.1 200"), "{on_vault}");
    wait_for(30, "the copy recorded", || {
        (entries_of(&env, "backup.migrated", &id) == 1).then_some(())
    });
    assert_eq!(entries_of(&env, "backup.left", &id), 0);

    env.ok(&["release", &id, "--reason", "case closed"]);
    env.ok(&["compliance", "migrate", &id]);
    assert!(!manifest.exists(), "released, it left");
    assert_eq!(entries_of(&env, "backup.left", &id), 1);
    let r = env.restore_from_only("vault", &id);
    assert_eq!(snapshot(&r.join("minutes")), snapshot(&src));
}
