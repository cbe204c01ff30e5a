//! Repository formats: repositories made by earlier builds (kept in
//! `tests/fixtures/format2/` and `format3/`, each made once by
//! `tests/fixtures/make-repository.sh` with the build that wrote that
//! format) still restore byte for byte; they take no new backup until
//! `cairn key upgrade` (format 2: a key pair; format 3: per-dataset keys),
//! after which old and new backups restore side by side; and a repository
//! of a format newer than this build is refused by name, changing nothing.

use cairn_tests::*;
use sha2::Digest;
use std::path::Path;

fn fixture(format: u32) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/format{format}"))
}

fn copy_dir(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let dest = to.join(e.path().strip_prefix(from).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `SHA256SUMS` as the fixture script wrote it: "<hex>  ./<path>" lines.
fn sums(text: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(h, p)| (p.trim_start_matches("./").to_string(), h.to_string()))
        .collect();
    v.sort();
    v
}

fn sums_of(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().strip_prefix(dir).unwrap().display().to_string(),
                hex::encode(sha2::Sha256::digest(std::fs::read(e.path()).unwrap())),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_format2_repository_restores_upgrades_and_a_newer_format_is_refused() {
    an_older_repository_restores_and_upgrades(2);
}

#[test]
fn a_format3_repository_restores_upgrades_and_a_newer_format_is_refused() {
    an_older_repository_restores_and_upgrades(3);
}

fn an_older_repository_restores_and_upgrades(format: u32) {
    let fixture = || fixture(format);
    let mut env = Env::with(Options::default());
    let net = env.network_dir("local");
    copy_dir(&fixture().join("network"), &net);
    let old_id = std::fs::read_to_string(fixture().join("BACKUP_ID"))
        .unwrap()
        .trim()
        .to_string();
    let pass = std::fs::read_to_string(fixture().join("PASSPHRASE")).unwrap();
    env.set_env("CAIRN_PASSPHRASE", pass.trim());
    let want = sums(&std::fs::read_to_string(fixture().join("SHA256SUMS")).unwrap());
    assert!(want.len() >= 5, "the fixture lists its files");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(net.join("config")).unwrap()).unwrap();
    assert_eq!(
        config["format"], format,
        "the fixture is what format {format} wrote"
    );
    let original_public = config["public_key"].clone();

    // 1. Restores as it is, from the network alone.
    let out = env.restore_from_only("local", &old_id);
    assert_eq!(sums_of(&out.join("src")), want);
    let link = std::fs::read_link(out.join("src/docs/link")).unwrap();
    assert_eq!(link, Path::new("../large.bin"));

    // 2. A newer format than this build: refused by name, nothing changed.
    let before = contents(&net);
    let mut newer = config.clone();
    newer["format"] = 5.into();
    let original = std::fs::read(net.join("config")).unwrap();
    std::fs::write(net.join("config"), serde_json::to_vec(&newer).unwrap()).unwrap();
    for args in [
        vec!["restore", old_id.as_str(), "--to", "newer-out"],
        vec!["key", "list"],
    ] {
        let o = env.run_with(env.offline_with_only("local"), &args, None);
        assert!(!o.status.success(), "{args:?}");
        assert!(
            stderr(&o).contains("has format 5, this build reads 1 to 4"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    assert!(!env.path().join("newer-out").exists());
    std::fs::write(net.join("config"), &original).unwrap();
    assert_eq!(contents(&net), before);

    // 3. No new backup before the upgrade: the writer has no key pair.
    env.ok(&["setup"]);
    let o = env.run_with(
        env.cmd(),
        &["backup", "--stdin", "--dataset", "late"],
        Some(b"new data"),
    );
    assert!(!o.status.success());
    let why = if format == 2 {
        "predates write-only backups"
    } else {
        "this build writes format 4 (a key pair per dataset"
    };
    assert!(
        stderr(&o).contains(why) && stderr(&o).contains("cairn key upgrade"),
        "{}",
        stderr(&o)
    );
    assert_eq!(contents(&net), before);

    // 4. The upgrade: key files and config rewritten, nothing sealed.
    let up = env.json(&["key", "upgrade", "--json"]);
    assert_eq!(up["already"], false, "{up}");
    if format == 3 {
        assert_eq!(
            up["public_key"], original_public,
            "format 3's key pair is kept"
        );
    }
    assert_eq!(up["networks"], serde_json::json!(["local"]));
    let after = contents(&net);
    let changed: Vec<&String> = after
        .keys()
        .filter(|p| before.get(*p) != after.get(*p))
        .collect();
    assert!(
        changed
            .iter()
            .all(|p| p.as_str() == "config" || p.starts_with("keys/")),
        "only config and key files change: {changed:?}"
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(net.join("config")).unwrap()).unwrap();
    assert_eq!(config["format"], 4);
    assert_eq!(config["public_key"], up["public_key"]);
    let again = env.json(&["key", "upgrade", "--json"]);
    assert_eq!(again["already"], true, "{again}");
    assert_eq!(again["public_key"], up["public_key"]);

    // 5. New backups go in beside the old one; both restore.
    env.serve(&["all"]);
    let src = env.source_dir("src");
    std::fs::write(src.join("after-upgrade.txt"), b"written as format 4\n").unwrap();
    let b = env.json(&["backup", src.to_str().unwrap(), "--json"]);
    assert_eq!(b["status"], "completed", "{b}");
    let new_id = b["backup_id"].as_str().unwrap();
    assert!(net.join("datakeys").exists());
    assert!(net.join("datasets").exists(), "the dataset got its key");
    let out = env.restore_from_only("local", new_id);
    assert_eq!(snapshot(&out.join("src")), snapshot(&src));
    let listed = env.json(&["list", "--json"]);
    assert!(listed.to_string().contains(new_id), "{listed}");
    let out = env.path().join("old-again");
    env.ok(&["restore", &old_id, "--to", out.to_str().unwrap()]);
    assert_eq!(sums_of(&out.join("src")), want);
}
